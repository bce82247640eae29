package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/verify"
)

// startRun runs verify.Run until the test ends. Each connection whose subscriptions the broker
// acknowledged sends on the returned channel.
func startRun(t *testing.T, opts verify.Options, tr *verify.Tracker) <-chan struct{} {
	t.Helper()
	subscribed := make(chan struct{}, 16)
	opts.Subscribed = func() { subscribed <- struct{}{} }
	if opts.Log == nil {
		opts.Log = testLogger(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- verify.Run(ctx, opts, tr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return within 15s of its context ending")
		}
	})
	return subscribed
}

func waitSubscribed(t *testing.T, subscribed <-chan struct{}) {
	t.Helper()
	select {
	case <-subscribed:
	case <-time.After(20 * time.Second):
		t.Fatal("verifier not subscribed within 20s")
	}
}

// testLogger writes to the test's log, which is shown only when the test fails.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// publisher is a plain paho QoS 1 publisher, standing in for a gateway.
type publisher struct {
	t      *testing.T
	client mqtt.Client
}

func newPublisher(t *testing.T, url string) *publisher {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("test-pub-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(true)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect to %s: %v", url, tok.Error())
	}
	p := &publisher{t: t, client: c}
	t.Cleanup(p.close)
	return p
}

func (p *publisher) close() { p.client.Disconnect(100) }

// publish sends the messages at QoS 1 with up to 64 in flight, in order, and returns when the
// broker acknowledged them all.
func (p *publisher) publish(msgs []msg, retained bool) {
	p.t.Helper()
	var window []mqtt.Token
	wait := func(tok mqtt.Token) {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			p.t.Fatalf("publish: %v", tok.Error())
		}
	}
	for _, m := range msgs {
		if len(window) == 64 {
			wait(window[0])
			window = window[1:]
		}
		window = append(window, p.client.Publish(m.topic, 1, retained, m.payload))
	}
	for _, tok := range window {
		wait(tok)
	}
}

// records returns telemetry messages of gw/ep1 for seqs first..last, without those in skip.
func records(first, last uint64, skip map[uint64]bool) []msg {
	var ms []msg
	for s := first; s <= last; s++ {
		if !skip[s] {
			ms = append(ms, msg{topic, record(gw, ep1, s, false, "")})
		}
	}
	return ms
}

// waitReport polls the tracker until ready accepts its report.
func waitReport(t *testing.T, tr *verify.Tracker, ready func(verify.Report) error) verify.Report {
	t.Helper()
	var r verify.Report
	waitFor(t, 30*time.Second, func() error {
		r = tr.Report()
		return ready(r)
	})
	return r
}

func received(n uint64) func(verify.Report) error {
	return func(r verify.Report) error {
		var got uint64
		for _, s := range r.Streams {
			got += s.Received
		}
		if got < n {
			return fmt.Errorf("received %d messages, want %d", got, n)
		}
		return nil
	}
}

func TestRun_Mosquitto(t *testing.T) {
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	tr := verify.NewTracker(verify.TrackerOptions{FromStart: true})
	waitSubscribed(t, startRun(t, verify.Options{Brokers: []string{broker.URL()}}, tr))

	const n = 10_000
	skip := map[uint64]bool{17: true, 9999: true}
	for s := uint64(500); s <= 509; s++ {
		skip[s] = true
	}
	pub := newPublisher(t, broker.URL())
	pub.publish([]msg{{"floorlink/v1/s/gateway/gw1/status", []byte(`{"state":"online","ts":"2026-11-25T08:00:00.000Z","session":1}`)}}, true)
	pub.publish(records(1, n, skip), false)
	pub.publish([]msg{
		{topic, record(gw, ep1, 5000, false, `{"n":-5000}`)}, // a second record under seq 5000
		{topic, record(gw, ep1, 42, true, "")},               // seq 42 re-sent in a later session
		{"floorlink/v1/s/gateway/gw1/stats", []byte(`{"gateway":"gw1","epoch":"0123456789abcdef"}`)},
	}, false)
	r := waitReport(t, tr, received(n-12+2))
	tr.Expect(gw, ep1, n)
	r = tr.Report()

	want := []verify.Stream{{Gateway: gw, Epoch: ep1, First: 1, Last: n, Through: n, Judged: verify.Range{First: 1, Last: n},
		Received: n - 12 + 2, Distinct: n - 12, Duplicates: 1, Historical: 1, Conflicts: 1, ConflictSeqs: []uint64{5000},
		Missing: 12, GapRanges: 3, Gaps: []verify.Range{{First: 17, Last: 17}, {First: 500, Last: 509}, {First: 9999, Last: 9999}}}}
	if diff := cmp.Diff(want, r.Streams, ignoreTimes, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("streams (-want +got):\n%s", diff)
	}
	if r.Ignored != 2 || r.Invalid != 0 || r.Connects != 1 {
		t.Errorf("got %d ignored, %d invalid, %d connects; want 2, 0, 1", r.Ignored, r.Invalid, r.Connects)
	}
	if r.OK() {
		t.Error("OK() with gaps and a conflict")
	}
	var text strings.Builder
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"gaps: 12 seqs missing in 3 ranges: 17, 500-509, 9999", "conflicts (same seq, different payload): 1: seq 5000"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
}

// TestRun_BrokerRestart restarts a broker with persistence while a verifier is shut out of it
// (a proxy refuses it) and messages are published. With a persistent session the broker
// queues them for the verifier and nothing is missing; with a clean session they never reach
// it, and show as a gap, which is why the chaos test needs the persistent session.
func TestRun_BrokerRestart(t *testing.T) {
	for _, persistent := range []bool{true, false} {
		t.Run(fmt.Sprintf("persistent=%v", persistent), func(t *testing.T) {
			broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{Persistence: true})
			proxy := mqtttest.StartProxy(t, broker.Addr())
			tr := verify.NewTracker(verify.TrackerOptions{FromStart: true})
			subscribed := startRun(t, verify.Options{Brokers: []string{proxy.URL()}, ClientID: "verify-restart",
				Persistent: persistent, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}, tr)
			waitSubscribed(t, subscribed)

			pub := newPublisher(t, broker.URL())
			pub.publish(records(1, 1000, nil), false)
			waitReport(t, tr, received(1000))

			proxy.SetRefuse(true) // the verifier cannot come back until we say so
			pub.close()
			broker.Stop()
			broker.Restart()
			// Acknowledged by the broker while the verifier is away: queued for its session,
			// if the broker kept one.
			pub = newPublisher(t, broker.URL())
			pub.publish(records(1001, 2000, nil), false)
			proxy.SetRefuse(false)
			waitSubscribed(t, subscribed)
			pub.publish(records(2001, 3000, nil), false)

			r := waitReport(t, tr, func(r verify.Report) error {
				if len(r.Streams) != 1 || r.Streams[0].Last != 3000 {
					return fmt.Errorf("seq 3000 not received yet")
				}
				if persistent && r.Streams[0].Distinct < 3000 {
					return fmt.Errorf("%d of 3000 seqs received", r.Streams[0].Distinct)
				}
				return nil
			})
			s := r.Streams[0]
			if persistent {
				if !r.OK() || s.Distinct != 3000 || r.Connects != 2 || r.Resumed != 1 {
					t.Errorf("got %d distinct, %d connects, %d resumed, problems %q; want 3000, 2, 1, none",
						s.Distinct, r.Connects, r.Resumed, r.Problems())
				}
				return
			}
			wantGaps := []verify.Range{{First: 1001, Last: 2000}}
			if diff := cmp.Diff(wantGaps, s.Gaps); diff != "" || r.Connects != 2 || r.Resumed != 0 {
				t.Errorf("got %d connects, %d resumed, gaps (-want +got):\n%s; want 2 connects, 0 resumed", r.Connects, r.Resumed, diff)
			}
			var text strings.Builder
			_ = r.WriteText(&text)
			if !strings.Contains(text.String(), "without its session") {
				t.Errorf("report does not say the verifier reconnected without its session:\n%s", text.String())
			}
		})
	}
}

// TestRun_TLS connects through a TLS-terminating proxy in front of Mosquitto, trusting only
// the test's own certificate authority.
func TestRun_TLS(t *testing.T) {
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", broker.Addr())
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(up, c); up.Close() })
			wg.Go(func() { _, _ = io.Copy(c, up); c.Close() })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})

	tr := verify.NewTracker(verify.TrackerOptions{FromStart: true})
	waitSubscribed(t, startRun(t, verify.Options{Brokers: []string{"ssl://" + ln.Addr().String()},
		TLS: &tls.Config{RootCAs: pool}, Username: "verifier", Password: "secret"}, tr))
	newPublisher(t, broker.URL()).publish(records(1, 100, nil), false)
	r := waitReport(t, tr, received(100))
	if !r.OK() || r.Streams[0].Distinct != 100 {
		t.Errorf("got %+v, problems %q; want 100 seqs, OK", r.Streams, r.Problems())
	}
}

// selfSigned returns a certificate for 127.0.0.1 and a pool trusting only it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "verify test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestRun_Refused: a broker that refuses the credentials ends Run with the reason, rather
// than retrying forever.
func TestRun_Refused(t *testing.T) {
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{Config: "allow_anonymous false"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := verify.Run(ctx, verify.Options{Brokers: []string{broker.URL()}, Log: testLogger(t)}, verify.NewTracker(verify.TrackerOptions{}))
	if err == nil || !strings.Contains(err.Error(), "connect to "+broker.URL()) || ctx.Err() != nil {
		t.Fatalf("got %v (context: %v), want a refused connection at once", err, ctx.Err())
	}
	t.Log(err)
}

func TestRun_Options(t *testing.T) {
	tests := []struct {
		name string
		opts verify.Options
		want string
	}{
		{"no broker", verify.Options{}, "brokers: at least one broker is required"},
		{"bad scheme", verify.Options{Brokers: []string{"http://127.0.0.1:1883"}}, `brokers[0]: "http://127.0.0.1:1883" is not a broker address`},
		{"no host", verify.Options{Brokers: []string{"127.0.0.1:1883"}}, "is not a broker address"},
		{"persistent without client id", verify.Options{Brokers: []string{"tcp://127.0.0.1:1883"}, Persistent: true}, "client id: required"},
		{"empty topic", verify.Options{Brokers: []string{"tcp://127.0.0.1:1883"}, Topics: []string{""}}, "topics[0]: empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verify.Run(context.Background(), tt.opts, verify.NewTracker(verify.TrackerOptions{}))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestRun_Cancel: with no broker to reach, Run keeps retrying and returns nil, leaving no
// goroutine behind (goleak), once its context ends.
func TestRun_Cancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	tr := verify.NewTracker(verify.TrackerOptions{})
	var attempts int
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(countWriter{&mu, &attempts}, nil))
	go func() {
		done <- verify.Run(ctx, verify.Options{Brokers: []string{"tcp://" + addr}, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Log: log}, tr)
	}()
	waitFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if attempts < 3 {
			return fmt.Errorf("%d connection attempts, want 3", attempts)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("got %v, want nil after the context ended", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of its context ending")
	}
	if r := tr.Report(); r.Connects != 0 {
		t.Errorf("got %d connects, want 0", r.Connects)
	}
}

// countWriter counts log lines about ended sessions, i.e. failed attempts.
type countWriter struct {
	mu *sync.Mutex
	n  *int
}

func (w countWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), "mqtt session ended") {
		w.mu.Lock()
		*w.n++
		w.mu.Unlock()
	}
	return len(p), nil
}
