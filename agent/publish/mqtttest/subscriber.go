package mqtttest

import (
	"crypto/tls"
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Message is one message a Subscriber received.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
	QoS      byte
	At       time.Time
}

// Subscriber records every message on a topic filter, connected straight to a broker (not
// through any proxy a test puts in front of the agent).
type Subscriber struct {
	client mqtt.Client

	mu   sync.Mutex
	msgs []Message
}

// Subscribe connects a QoS 1 subscriber with a clean session to url and records what arrives on
// filter until the test ends.
func Subscribe(t testing.TB, url, filter string) *Subscriber {
	t.Helper()
	return SubscribeTLS(t, url, filter, nil)
}

// SubscribeTLS is Subscribe for a TLS broker (ssl:// URL) with the given client configuration.
func SubscribeTLS(t testing.TB, url, filter string, tlsConfig *tls.Config) *Subscriber {
	t.Helper()
	s := &Subscriber{}
	opts := mqtt.NewClientOptions().AddBroker(url).SetTLSConfig(tlsConfig).
		SetClientID(fmt.Sprintf("mqtttest-sub-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetOrderMatters(true).SetConnectTimeout(5 * time.Second)
	s.client = mqtt.NewClient(opts)
	if tok := s.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { s.client.Disconnect(100) })
	tok := s.client.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		s.mu.Lock()
		s.msgs = append(s.msgs, Message{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...),
			Retained: m.Retained(), QoS: m.Qos(), At: time.Now()})
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %q on %s: %v", filter, url, tok.Error())
	}
	return s
}

// Messages returns a copy of what arrived so far, in arrival order.
func (s *Subscriber) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Len is the number of messages received so far.
func (s *Subscriber) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// WaitFor polls fn over the received messages until it returns nil, failing the test with fn's
// last error after timeout.
func (s *Subscriber) WaitFor(t testing.TB, timeout time.Duration, fn func([]Message) error) {
	t.Helper()
	poll(t, timeout, func() error { return fn(s.Messages()) })
}

// poll calls fn every 20 ms until it returns nil, failing the test with fn's last error after
// timeout.
func poll(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		<-time.After(20 * time.Millisecond)
	}
}
