package mqtttest

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Event is one thing a SpyBroker saw, in the order it saw them: a packet a client sent
// (CONNECT, SUBSCRIBE, PUBLISH, DISCONNECT), a Will the broker sent, or a message the test
// injected. These are what a plain subscriber cannot see: clean session, the Will's QoS and
// retain flag, subscription QoS, and the QoS and retain flag a publisher used.
type Event struct {
	Kind   EventKind
	Client string
	At     time.Time

	// CONNECT.
	Clean                 bool
	WillFlag              bool
	WillTopic             string
	WillPayload           []byte
	WillQoS               byte
	WillRetain            bool
	KeepAlive             uint16
	ProtocolVersion       byte
	SubscriptionFilters   []string // SUBSCRIBE: the filters
	SubscriptionQoS       []byte   // SUBSCRIBE: their QoS
	Topic                 string   // PUBLISH, Will, Injected
	Payload               []byte
	QoS                   byte
	Retain                bool
	DisconnectedWithError error // EventClosed: why the broker dropped the client
}

// EventKind says what an Event is.
type EventKind string

// Event kinds.
const (
	EventConnect    EventKind = "CONNECT"
	EventSubscribe  EventKind = "SUBSCRIBE"
	EventPublish    EventKind = "PUBLISH"
	EventDisconnect EventKind = "DISCONNECT" // the client sent DISCONNECT
	EventClosed     EventKind = "CLOSED"     // the connection ended, for whatever reason
	EventWill       EventKind = "WILL"       // the broker published the client's Will
	EventInjected   EventKind = "INJECTED"   // the test published through the broker (Publish)
)

// SpyBroker is an in-process MQTT broker (mochi-mqtt) on a free port of 127.0.0.1 that records
// what its clients do, for conformance tests that check the MQTT side of a protocol the way the
// Sparkplug TCK's broker extension does.
type SpyBroker struct {
	t   testing.TB
	srv *mochi.Server
	tcp *listeners.TCP

	mu     sync.Mutex
	events []Event
}

// StartSpyBroker starts the broker and stops it in t.Cleanup. It returns once it accepts.
func StartSpyBroker(t testing.TB) *SpyBroker {
	t.Helper()
	b := &SpyBroker{t: t}
	b.srv = mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := b.srv.AddHook(&spyHook{b: b}, nil); err != nil {
		t.Fatal(err)
	}
	b.tcp = listeners.NewTCP(listeners.Config{ID: "spy", Address: "127.0.0.1:0"})
	if err := b.srv.AddListener(b.tcp); err != nil {
		t.Fatalf("spy broker listen: %v", err)
	}
	if err := b.srv.Serve(); err != nil {
		t.Fatalf("spy broker serve: %v", err)
	}
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

// URL is the broker's address for an MQTT client.
func (b *SpyBroker) URL() string { return "tcp://" + b.tcp.Address() }

// Events returns a copy of what the broker saw so far.
func (b *SpyBroker) Events() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Event(nil), b.events...)
}

// Len is the number of events so far, a mark for "what happened after this".
func (b *SpyBroker) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.events)
}

func (b *SpyBroker) add(e Event) {
	e.At = time.Now()
	b.mu.Lock()
	b.events = append(b.events, e)
	b.mu.Unlock()
}

// Publish sends a message to the broker's subscribers as if a client had (a host's STATE or
// NCMD), and records it as Injected. The QoS is that of the delivery to subscribers.
func (b *SpyBroker) Publish(topic string, payload []byte, retain bool, qos byte) {
	b.t.Helper()
	b.add(Event{Kind: EventInjected, Topic: topic, Payload: append([]byte(nil), payload...), QoS: qos, Retain: retain})
	if err := b.srv.Publish(topic, payload, retain, qos); err != nil {
		b.t.Fatalf("spy broker publish %s: %v", topic, err)
	}
}

// Drop closes a client's connection without a DISCONNECT, so the broker sends its Will.
func (b *SpyBroker) Drop(clientID string) error {
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok {
		return fmt.Errorf("no client %q", clientID)
	}
	cl.Stop(errors.New("dropped by the test"))
	return nil
}

// WaitFor polls fn over the events until it returns nil, failing the test with fn's last error
// after timeout.
func (b *SpyBroker) WaitFor(t testing.TB, timeout time.Duration, fn func([]Event) error) {
	t.Helper()
	poll(t, timeout, func() error { return fn(b.Events()) })
}

// Never checks for d that fn keeps returning nil, failing the test at its first error: proof
// that something does not happen within a window.
func (b *SpyBroker) Never(t testing.TB, d time.Duration, fn func([]Event) error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := fn(b.Events()); err != nil {
			t.Fatal(err)
		}
		<-time.After(10 * time.Millisecond)
	}
}

type spyHook struct {
	mochi.HookBase
	b *SpyBroker
}

func (h *spyHook) ID() string { return "floorlink-spy" }

func (h *spyHook) Provides(b byte) bool {
	switch b {
	case mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPacketRead, mochi.OnWillSent, mochi.OnDisconnect:
		return true
	}
	return false
}

// OnConnectAuthenticate and OnACLCheck let everyone in: the broker listens on loopback only.
func (h *spyHook) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

func (h *spyHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }

func (h *spyHook) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	e := Event{Client: cl.ID}
	switch pk.FixedHeader.Type {
	case packets.Connect:
		c := pk.Connect
		e.Kind, e.Client = EventConnect, c.ClientIdentifier
		e.Clean, e.WillFlag, e.WillTopic, e.WillQoS, e.WillRetain = c.Clean, c.WillFlag, c.WillTopic, c.WillQos, c.WillRetain
		e.WillPayload = append([]byte(nil), c.WillPayload...)
		e.KeepAlive, e.ProtocolVersion = c.Keepalive, pk.ProtocolVersion
	case packets.Subscribe:
		e.Kind = EventSubscribe
		for _, f := range pk.Filters {
			e.SubscriptionFilters = append(e.SubscriptionFilters, f.Filter)
			e.SubscriptionQoS = append(e.SubscriptionQoS, f.Qos)
		}
	case packets.Publish:
		e.Kind, e.Topic, e.QoS, e.Retain = EventPublish, pk.TopicName, pk.FixedHeader.Qos, pk.FixedHeader.Retain
		e.Payload = append([]byte(nil), pk.Payload...)
	case packets.Disconnect:
		e.Kind = EventDisconnect
	default:
		return pk, nil
	}
	h.b.add(e)
	return pk, nil
}

func (h *spyHook) OnWillSent(cl *mochi.Client, pk packets.Packet) {
	h.b.add(Event{Kind: EventWill, Client: cl.ID, Topic: pk.TopicName, Payload: append([]byte(nil), pk.Payload...),
		QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain})
}

func (h *spyHook) OnDisconnect(cl *mochi.Client, err error, _ bool) {
	h.b.add(Event{Kind: EventClosed, Client: cl.ID, DisconnectedWithError: err})
}
