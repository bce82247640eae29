package publish_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/floorlink/floorlink/agent/publish"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/agent/record"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

// telemetry encodes a record whose "n" field equals i, so a test can tell messages apart.
func telemetry(t testing.TB, source string, i int) []byte {
	t.Helper()
	r := record.Record{Kind: record.KindTelemetry, Source: source, Time: t0.Add(time.Duration(i) * time.Millisecond),
		Fields: []record.Field{record.IntField("n", int64(i)), record.FloatField("temp", 65.3)}}
	b, err := r.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type message struct {
	Gateway    string         `json:"gateway"`
	Epoch      string         `json:"epoch"`
	Seq        uint64         `json:"seq"`
	TS         string         `json:"ts"`
	Historical bool           `json:"historical"`
	Values     map[string]any `json:"values"`
}

func decode(t testing.TB, m mqtttest.Message) message {
	t.Helper()
	var msg message
	if err := json.Unmarshal(m.Payload, &msg); err != nil {
		t.Fatalf("message on %s is not JSON: %v: %s", m.Topic, err, m.Payload)
	}
	return msg
}

func options(brokerURL string) publish.Options {
	return publish.Options{
		Brokers: []string{brokerURL}, Gateway: "gw1", Site: "s", Area: "a", Line: "l",
		Epoch: "0123456789abcdef", MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Grace: 2 * time.Second,
	}
}

// startPublisher runs p until the test ends and returns a function that stops it and waits.
func startPublisher(t *testing.T, p *publish.Publisher) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("publisher did not stop within 10s")
			}
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// seqsOn returns the seqs of the data messages received, in arrival order.
func seqsOn(t testing.TB, msgs []mqtttest.Message, suffix string) []uint64 {
	var out []uint64
	for _, m := range msgs {
		if strings.HasSuffix(m.Topic, suffix) {
			out = append(out, decode(t, m).Seq)
		}
	}
	return out
}

// inOrderThrough checks that seqs, with duplicates of re-sent windows removed, are exactly
// 1..n in order of first arrival.
func inOrderThrough(seqs []uint64, n uint64) error {
	var next uint64 = 1
	for _, s := range seqs {
		switch {
		case s == next:
			next++
		case s < next:
			// a re-sent message: allowed (at least once)
		default:
			return fmt.Errorf("seq %d arrived before %d", s, next)
		}
	}
	if next != n+1 {
		return fmt.Errorf("got seqs through %d, want through %d", next-1, n)
	}
	return nil
}

func TestPublisher_Run_DeliversInOrderAndAcks(t *testing.T) {
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	sub := mqtttest.Subscribe(t, broker.URL(), "floorlink/#")
	src := newMemSource()
	const n = 2000
	for i := 1; i <= n/2; i++ {
		src.add(telemetry(t, "press-1", i))
	}
	p, err := publish.New(src, options(broker.URL()), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := startPublisher(t, p)
	// The second half arrives while the session is live: after the online status.
	sub.WaitFor(t, 10*time.Second, func(msgs []mqtttest.Message) error {
		for _, m := range msgs {
			if m.Topic == p.StatusTopic() && strings.Contains(string(m.Payload), "online") {
				return nil
			}
		}
		return fmt.Errorf("no online status yet")
	})
	for i := n/2 + 1; i <= n; i++ {
		src.add(telemetry(t, "press-1", i))
	}
	sub.WaitFor(t, 20*time.Second, func(msgs []mqtttest.Message) error {
		if err := inOrderThrough(seqsOn(t, msgs, "/telemetry"), n); err != nil {
			return fmt.Errorf("%w (publisher %+v, source head %d)", err, p.Stats(), src.Head())
		}
		return nil
	})
	waitFor(t, 5*time.Second, func() error {
		if c := src.Cursor(); c != n {
			return fmt.Errorf("cursor %d, want %d", c, n)
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	msgs := sub.Messages()
	var historical, live int
	for _, m := range msgs {
		if !strings.HasSuffix(m.Topic, "/telemetry") {
			continue
		}
		if m.Topic != "floorlink/v1/s/a/l/press-1/telemetry" {
			t.Fatalf("topic %q, want floorlink/v1/s/a/l/press-1/telemetry", m.Topic)
		}
		msg := decode(t, m)
		if msg.Gateway != "gw1" || msg.Epoch != "0123456789abcdef" {
			t.Fatalf("envelope %+v", msg)
		}
		if got := msg.Values["n"].(float64); uint64(got) != msg.Seq {
			t.Fatalf("seq %d carries n=%v: payloads out of step with seqs", msg.Seq, got)
		}
		if msg.Historical {
			historical++
			if msg.Seq > n/2 {
				t.Fatalf("seq %d appended during the session is marked historical", msg.Seq)
			}
		} else {
			live++
		}
	}
	if historical != n/2 {
		t.Errorf("historical messages = %d, want %d (those stored before the session)", historical, n/2)
	}
	// Acks are batched: far fewer cursor commits than messages.
	if src.acks >= n/2 {
		t.Errorf("cursor committed %d times for %d messages; want batching", src.acks, n)
	}
	t.Logf("delivered %d messages (%d historical) with %d cursor commits", historical+live, historical, src.acks)
}

func TestPublisher_Run_StatusOnlineThenOffline(t *testing.T) {
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	src := newMemSource()
	p, err := publish.New(src, options(broker.URL()), nil)
	if err != nil {
		t.Fatal(err)
	}
	sub := mqtttest.Subscribe(t, broker.URL(), p.StatusTopic())
	stop := startPublisher(t, p)
	sub.WaitFor(t, 10*time.Second, func(msgs []mqtttest.Message) error {
		for _, m := range msgs {
			if strings.Contains(string(m.Payload), `"state":"online"`) {
				return nil
			}
		}
		return fmt.Errorf("no online status among %d messages", len(msgs))
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	sub.WaitFor(t, 10*time.Second, func(msgs []mqtttest.Message) error {
		last := msgs[len(msgs)-1]
		if !strings.Contains(string(last.Payload), `"state":"offline"`) {
			return fmt.Errorf("last status %s, want offline", last.Payload)
		}
		return nil
	})
	// A late subscriber sees the retained offline status.
	late := mqtttest.Subscribe(t, broker.URL(), p.StatusTopic())
	late.WaitFor(t, 10*time.Second, func(msgs []mqtttest.Message) error {
		if len(msgs) == 0 || !msgs[0].Retained || !strings.Contains(string(msgs[0].Payload), `"offline"`) {
			return fmt.Errorf("retained status = %v", msgs)
		}
		return nil
	})
}

// TestPublisher_Run_WillOnCut: a connection that dies without DISCONNECT makes the broker
// publish the offline Will, and the publisher reconnects and goes online with a new session.
func TestPublisher_Run_WillOnCut(t *testing.T) {
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	proxy := mqtttest.StartProxy(t, broker.Addr())
	src := newMemSource()
	o := options(proxy.URL())
	o.KeepAlive = 2 * time.Second
	p, err := publish.New(src, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub := mqtttest.Subscribe(t, broker.URL(), p.StatusTopic())
	startPublisher(t, p)
	waitStatus := func(state string, session int) {
		t.Helper()
		sub.WaitFor(t, 15*time.Second, func(msgs []mqtttest.Message) error {
			want := fmt.Sprintf(`"state":"%s"`, state)
			for _, m := range msgs {
				if strings.Contains(string(m.Payload), want) && strings.Contains(string(m.Payload), fmt.Sprintf(`"session":%d}`, session)) {
					return nil
				}
			}
			return fmt.Errorf("no %s status of session %d in %d messages", state, session, len(msgs))
		})
	}
	waitStatus("online", 1)
	proxy.Cut()
	waitStatus("offline", 1) // the Will
	waitStatus("online", 2)
}

// TestPublisher_Run_ResendsWindowAfterCut cuts the connection repeatedly while a backlog
// drains: every record still arrives, in order of first arrival, and the cursor reaches the end.
func TestPublisher_Run_ResendsWindowAfterCut(t *testing.T) {
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	proxy := mqtttest.StartProxy(t, broker.Addr())
	sub := mqtttest.Subscribe(t, broker.URL(), "floorlink/#")
	src := newMemSource()
	const n = 5000
	for i := 1; i <= n; i++ {
		src.add(telemetry(t, "press-1", i))
	}
	p, err := publish.New(src, options(proxy.URL()), nil)
	if err != nil {
		t.Fatal(err)
	}
	startPublisher(t, p)
	for cut := 1; cut <= 3; cut++ {
		target := cut * 1000
		sub.WaitFor(t, 20*time.Second, func(msgs []mqtttest.Message) error {
			if got := len(seqsOn(t, msgs, "/telemetry")); got < target {
				return fmt.Errorf("%d messages, waiting for %d", got, target)
			}
			return nil
		})
		proxy.Cut()
	}
	sub.WaitFor(t, 30*time.Second, func(msgs []mqtttest.Message) error {
		return inOrderThrough(seqsOn(t, msgs, "/telemetry"), n)
	})
	waitFor(t, 10*time.Second, func() error {
		if c := src.Cursor(); c != n {
			return fmt.Errorf("cursor %d, want %d", c, n)
		}
		return nil
	})
	seqs := seqsOn(t, sub.Messages(), "/telemetry")
	t.Logf("%d messages for %d records: %d duplicates after 3 cuts", len(seqs), n, len(seqs)-n)
}

func TestNew_RejectsBadOptions(t *testing.T) {
	src := newMemSource()
	cases := map[string]func(*publish.Options){
		"no brokers":     func(o *publish.Options) { o.Brokers = nil },
		"bad broker":     func(o *publish.Options) { o.Brokers = []string{"127.0.0.1:1883"} },
		"no gateway":     func(o *publish.Options) { o.Gateway = "" },
		"wildcard site":  func(o *publish.Options) { o.Site = "a/b" },
		"bad template":   func(o *publish.Options) { o.TopicTemplate = "x/{nope}/{source}/{kind}" },
		"template kind":  func(o *publish.Options) { o.TopicTemplate = "x/{source}" },
		"no epoch":       func(o *publish.Options) { o.Epoch = "" },
		"inflight range": func(o *publish.Options) { o.MaxInflight = 70000 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			o := options("tcp://127.0.0.1:1")
			mutate(&o)
			if _, err := publish.New(src, o, nil); err == nil {
				t.Fatal("New accepted bad options")
			}
		})
	}
}

func waitFor(t testing.TB, timeout time.Duration, fn func() error) {
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
		<-time.After(10 * time.Millisecond)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestPublisher_Run_TLS delivers over TLS to a Mosquitto that requires a client certificate.
func TestPublisher_Run_TLS(t *testing.T) {
	files := mqtttest.NewTLSFiles(t, t.TempDir())
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{TLS: &files})
	sub := mqtttest.SubscribeTLS(t, broker.URL(), "floorlink/#", files.ClientConfig(t))
	src := newMemSource()
	for i := 1; i <= 100; i++ {
		src.add(telemetry(t, "press-1", i))
	}
	o := options(broker.URL())
	o.TLS = files.ClientConfig(t)
	p, err := publish.New(src, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	startPublisher(t, p)
	sub.WaitFor(t, 20*time.Second, func(msgs []mqtttest.Message) error {
		return inOrderThrough(seqsOn(t, msgs, "/telemetry"), 100)
	})
}

// TestPublisher_Run_SplitAndDeadLetter: a record too large for one message arrives in parts
// sharing its seq; an undecodable record and one with a value larger than a message are
// skipped and reported, and delivery goes on past them.
func TestPublisher_Run_SplitAndDeadLetter(t *testing.T) {
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	sub := mqtttest.Subscribe(t, broker.URL(), "floorlink/#")
	src := newMemSource()
	src.add(telemetry(t, "press-1", 1))
	big := record.Record{Kind: record.KindTelemetry, Source: "press-1", Time: t0}
	for i := range 300 {
		big.Fields = append(big.Fields, record.FloatField(fmt.Sprintf("tag_%03d", i), float64(i)+0.5))
	}
	b, _ := big.AppendBinary(nil)
	src.add(b)                  // seq 2: split
	src.add([]byte{0xff, 0x00}) // seq 3: undecodable
	huge := record.Record{Kind: record.KindEvent, Source: "press-1", Time: t0,
		Fields: []record.Field{record.StringField("error", strings.Repeat("x", 5000))}}
	b, _ = huge.AppendBinary(nil)
	src.add(b)                          // seq 4: one value larger than a message
	src.add(telemetry(t, "press-1", 5)) // seq 5

	var dead []uint64
	var mu sync.Mutex
	o := options(broker.URL())
	o.MaxMessageBytes = 2048
	o.OnDeadLetter = func(seq uint64, err error) {
		mu.Lock()
		dead = append(dead, seq)
		mu.Unlock()
	}
	p, err := publish.New(src, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	startPublisher(t, p)
	waitFor(t, 20*time.Second, func() error {
		if c := src.Cursor(); c != 5 {
			return fmt.Errorf("cursor %d, want 5", c)
		}
		return nil
	})
	schema := mqtttest.CompileSchema(t, "record.schema.json", mustReadSchema(t))
	var parts []map[string]any
	values := map[string]bool{}
	sub.WaitFor(t, 10*time.Second, func(msgs []mqtttest.Message) error {
		parts, values = nil, map[string]bool{}
		seen5 := false
		for _, m := range msgs {
			if !strings.HasSuffix(m.Topic, "/telemetry") {
				continue
			}
			if len(m.Payload) > 2048 {
				return fmt.Errorf("a message of %d bytes, more than max_message_bytes", len(m.Payload))
			}
			if err := schema.Validate(m.Payload); err != nil {
				return fmt.Errorf("%v: %s", err, m.Payload)
			}
			var msg map[string]any
			json.Unmarshal(m.Payload, &msg)
			switch msg["seq"].(float64) {
			case 2:
				parts = append(parts, msg)
				for k := range msg["values"].(map[string]any) {
					values[k] = true
				}
			case 5:
				seen5 = true
			}
		}
		if !seen5 || len(values) != 300 {
			return fmt.Errorf("seq 5 seen %v, %d of 300 values of seq 2 in %d parts", seen5, len(values), len(parts))
		}
		return nil
	})
	for i, m := range parts {
		if int(m["part"].(float64)) != i+1 || int(m["parts"].(float64)) != len(parts) {
			t.Fatalf("part %d says part %v of %v", i+1, m["part"], m["parts"])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(dead) != "[3 4]" {
		t.Fatalf("dead letters %v, want [3 4]", dead)
	}
	if st := p.Stats(); st.DeadLetters != 2 || st.Split != 1 {
		t.Fatalf("stats %+v, want 2 dead letters and 1 split record", st)
	}
	t.Logf("a 300-value record went out in %d parts of at most 2048 bytes", len(parts))
}

func mustReadSchema(t testing.TB) []byte {
	b, err := publish.Schemas.ReadFile("schema/record.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
