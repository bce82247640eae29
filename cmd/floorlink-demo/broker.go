package main

import (
	"bytes"
	"fmt"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// broker is the demo's embedded MQTT broker. It lets anyone connect and publish, which is why
// launch only ever binds it to loopback.
type broker struct {
	srv  *mqtt.Server
	addr string
}

// viewSubscription is the inline subscription's id; the broker needs one to remove it again.
const viewSubscription = 1

// startBroker binds addr and serves MQTT on it until Close.
func startBroker(addr string, log *slog.Logger) (*broker, error) {
	// Without a Logger, mochi logs to stdout, which would break the plain-line view.
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: log})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return nil, fmt.Errorf("broker auth hook: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "demo", Address: addr})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("listen mqtt: %w", err)
	}
	b := &broker{srv: srv, addr: tcp.Address()}
	if err := srv.Serve(); err != nil {
		b.Close()
		return nil, fmt.Errorf("serve mqtt: %w", err)
	}
	return b, nil
}

// URL is the broker's address for MQTT clients, with the port it got.
func (b *broker) URL() string { return "tcp://" + b.addr }

// Subscribe delivers every message published on filter, retained ones included, to fn. fn runs
// on the publishing client's goroutine, so it must be quick, and it must copy payload to keep it.
func (b *broker) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	return b.srv.Subscribe(filter, viewSubscription, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload)
	})
}

// Unsubscribe stops the deliveries of Subscribe.
func (b *broker) Unsubscribe(filter string) error {
	return b.srv.Unsubscribe(filter, viewSubscription)
}

// Close disconnects every client, closes the listener and waits for the client goroutines. Call
// it once.
func (b *broker) Close() error { return b.srv.Close() }

// allowAll lets every client connect and use every topic, as mochi's auth.AllowHook does. That
// package also pulls in a YAML library (for its ledger) that go.sum does not carry, for nothing
// the demo needs.
type allowAll struct{ mqtt.HookBase }

func (h *allowAll) ID() string { return "allow-all" }

func (h *allowAll) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (h *allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
