package publish_test

// Drain throughput to a real Mosquitto (issue 4, acceptance 4): the Publisher draining a backlog
// against plain paho with the same window, in the same run.
//
//	go test -run '^$' -bench 'Drain' -benchmem -count 6 ./agent/publish/ | tee drain.txt
//	benchstat -col /impl drain.txt   # or compare BenchmarkDrain/window=W with BenchmarkDrainRawPaho/window=W
//
// The ratio publisher/raw per window is the claim (target ≥ 0.8 at window=64); absolute msgs/s
// move with the machine's load. CPU profile of the Publisher alone:
//
//	go test -run '^$' -bench 'Drain/window=64' -count 1 -benchtime 5s -cpuprofile cpu.out ./agent/publish/
//	go tool pprof -top -cum publish.test cpu.out

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorlink/floorlink/agent/publish"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/agent/record"
)

// drainWindows are the windows of issue 4: one in flight, and the two sizes the research measured.
var drainWindows = []int{1, 16, 64}

// drainRecord is the benchmarks' record: 10 samples of a press, about 300 bytes as JSON.
func drainRecord(tb testing.TB) []byte {
	tb.Helper()
	r := record.Record{Kind: record.KindTelemetry, Source: "press-1", Time: t0, Fields: []record.Field{
		record.UintField("state", 1), record.UintField("tick", 123456), record.UintField("parts_total", 48213),
		record.UintField("good_total", 47250), record.UintField("reject_total", 963),
		record.FloatField("temperature", 64.87), record.FloatField("pressure", 6.02),
		record.UintField("cycle_time_ms", 2100), record.IntField("spindle_speed", -1995),
		record.BoolField("running", true),
	}}
	b, err := r.AppendBinary(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// backlogSource is a Source holding a backlog of head copies of one payload (seq 1..head), made
// up on read so a backlog of any length costs no memory. Ack wakes waitAcked. Its shape follows
// memSource in source_test.go.
type backlogSource struct {
	payload []byte
	head    uint64
	cursor  atomic.Uint64
	acked   chan struct{} // one token after any Ack that moved the cursor
}

func newBacklogSource(payload []byte, head uint64) *backlogSource {
	return &backlogSource{payload: payload, head: head, acked: make(chan struct{}, 1)}
}

func (s *backlogSource) ReadAfter(after uint64, max int, fn func(uint64, []byte) error) error {
	if c := s.cursor.Load(); after < c {
		return fmt.Errorf("read after %d: before cursor %d", after, c)
	}
	for seq := after + 1; seq <= s.head && max > 0; seq, max = seq+1, max-1 {
		if err := fn(seq, s.payload); err != nil {
			return err
		}
	}
	return nil
}

func (s *backlogSource) Ack(through uint64) error {
	if through > s.head {
		return fmt.Errorf("ack %d beyond head %d", through, s.head)
	}
	if through > s.cursor.Load() {
		s.cursor.Store(through) // only the publisher's goroutine acks
		select {
		case s.acked <- struct{}{}:
		default:
		}
	}
	return nil
}

func (s *backlogSource) Cursor() uint64 { return s.cursor.Load() }
func (s *backlogSource) Head() uint64   { return s.head }

// Wait returns at once while there is a backlog; the backlog never grows.
func (s *backlogSource) Wait(ctx context.Context, after uint64) error {
	if s.head > after {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

// waitAcked blocks until the cursor reaches seq, failing when ctx ends first. (One context for
// the whole run rather than a timer per wait, which would add to the allocations measured.)
func (s *backlogSource) waitAcked(ctx context.Context, tb testing.TB, seq uint64) {
	for s.cursor.Load() < seq {
		select {
		case <-s.acked:
		case <-ctx.Done():
			tb.Fatalf("cursor at %d, waiting for %d: %v", s.cursor.Load(), seq, ctx.Err())
		}
	}
}

// benchDeadline bounds one benchmark run; far above any run that works.
const benchDeadline = 5 * time.Minute

// runPublisher runs a Publisher with window w over src until the returned stop is called.
func runPublisher(tb testing.TB, brokerURL string, src publish.Source, w int) (stop func()) {
	tb.Helper()
	opts := publish.Options{Brokers: []string{brokerURL}, Gateway: "gw-bench", Site: "s", Area: "a", Line: "l",
		Epoch: "0123456789abcdef", MaxInflight: w, Grace: time.Second}
	p, err := publish.New(src, opts, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("publisher: %v", err)
				}
			case <-time.After(10 * time.Second):
				tb.Fatal("publisher did not stop within 10s")
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// BenchmarkDrain is the Publisher draining a backlog (every record historical) to Mosquitto with
// MaxInflight = window, no rate limit. One op is one record acknowledged by the broker and
// recorded by the Source (the cursor moves in steps of at most the window); allocations count the
// whole process: publisher, paho and this loop.
func BenchmarkDrain(b *testing.B) {
	broker := mqtttest.StartBroker(b, mqtttest.BrokerOptions{})
	payload := drainRecord(b)
	for _, w := range drainWindows {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), benchDeadline)
			defer cancel()
			src := newBacklogSource(payload, 1<<40)
			stop := runPublisher(b, broker.URL(), src, w)
			// Connected and draining before the clock starts: the connect is not the drain.
			src.waitAcked(ctx, b, 1)
			start := src.Cursor()
			b.ReportAllocs()
			var i uint64
			for b.Loop() {
				i++
				src.waitAcked(ctx, b, start+i)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			stop()
		})
	}
}

// BenchmarkDrainRawPaho is the baseline: plain paho, QoS 1, a sliding window of W tokens (wait on
// the oldest when W are in flight), with the Publisher's client options, topic and payload (the
// JSON the Publisher sends for drainRecord, captured from the broker), and nothing else: no
// source, no encoding, no cursor. One op is one message published; the at most W still in flight
// when the loop ends are waited for after the clock stops.
func BenchmarkDrainRawPaho(b *testing.B) {
	broker := mqtttest.StartBroker(b, mqtttest.BrokerOptions{})
	topic, payload := publisherMessage(b, broker.URL())
	b.Logf("payload %d bytes on %s", len(payload), topic)
	for _, w := range drainWindows {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), benchDeadline)
			defer cancel()
			lost := make(chan error, 1)
			opts := mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID(fmt.Sprintf("raw-%d", w)).
				SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
				SetKeepAlive(30 * time.Second).SetConnectTimeout(10 * time.Second).
				SetWriteTimeout(10 * time.Second).SetOrderMatters(true).
				SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
			c := mqtt.NewClient(opts)
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatalf("connect: %v", tok.Error())
			}
			defer c.Disconnect(250)
			window := make([]mqtt.Token, 0, w) // FIFO, window[0] the oldest
			wait := func(t mqtt.Token) {
				select {
				case <-t.Done():
				case err := <-lost:
					b.Fatalf("connection lost: %v", err)
				case <-ctx.Done():
					b.Fatalf("waiting for a PUBACK: %v", ctx.Err())
				}
				if err := t.Error(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if len(window) == w {
					wait(window[0])
					window = window[:copy(window, window[1:])]
				}
				window = append(window, c.Publish(topic, 1, false, payload))
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			for _, t := range window {
				wait(t)
			}
		})
	}
}

// publisherMessage runs a Publisher over a one-record backlog of drainRecord and returns the
// topic and payload it sent, as the broker delivered them. Its subscriber disconnects before it
// returns, so that the broker forwards nothing during the benchmark.
func publisherMessage(tb testing.TB, brokerURL string) (topic string, payload []byte) {
	tb.Helper()
	got := make(chan mqtt.Message, 1)
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID("probe").
		SetCleanSession(true).SetAutoReconnect(false))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("probe connect: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	tok := sub.Subscribe("floorlink/v1/s/a/l/+/telemetry", 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- m:
		default:
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("probe subscribe: %v", tok.Error())
	}
	stop := runPublisher(tb, brokerURL, newBacklogSource(drainRecord(tb), 1), 1)
	defer stop()
	select {
	case m := <-got:
		return m.Topic(), append([]byte(nil), m.Payload()...)
	case <-time.After(10 * time.Second):
		tb.Fatal("no telemetry message from the publisher within 10s")
		return "", nil
	}
}

// BenchmarkReceived is what a subscriber receives per second while the Publisher drains a
// backlog of drainRecord (10 values) to Mosquitto, in JSON mode (QoS 1, a window of 64) and in
// Sparkplug mode (DDATA at QoS 0 behind a QoS 1 barrier every 16), in the same run. One op is
// one data message received by a QoS 1 subscriber on the data topics.
//
//	go test -run '^$' -bench 'Received' -benchtime 20000x -count 6 ./agent/publish/
func BenchmarkReceived(b *testing.B) {
	broker := mqtttest.StartBroker(b, mqtttest.BrokerOptions{})
	payload := drainRecord(b)
	var rec record.Record
	var dec record.Decoder
	if err := dec.Decode(payload, &rec); err != nil {
		b.Fatal(err)
	}
	var metrics []publish.Metric
	types := []publish.DataType{publish.TypeUInt16, publish.TypeUInt32, publish.TypeUInt32, publish.TypeUInt32,
		publish.TypeUInt32, publish.TypeDouble, publish.TypeDouble, publish.TypeUInt32, publish.TypeInt16, publish.TypeBoolean}
	for i, f := range rec.Fields {
		metrics = append(metrics, publish.Metric{Name: f.Name, Type: types[i]})
	}
	for _, format := range []publish.Format{publish.FormatJSON, publish.FormatSparkplug} {
		b.Run("format="+string(format), func(b *testing.B) {
			filter := "floorlink/v1/s/a/l/+/telemetry"
			if format == publish.FormatSparkplug {
				filter = "spBv1.0/plant/DDATA/#"
			}
			var got atomic.Int64
			arrived := make(chan struct{}, 1)
			sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("count-" + string(format)).
				SetCleanSession(true).SetAutoReconnect(false))
			if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatalf("subscriber connect: %v", tok.Error())
			}
			defer sub.Disconnect(100)
			if tok := sub.Subscribe(filter, 1, func(mqtt.Client, mqtt.Message) {
				got.Add(1)
				select {
				case arrived <- struct{}{}:
				default:
				}
			}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatalf("subscribe: %v", tok.Error())
			}
			opts := publish.Options{Brokers: []string{broker.URL()}, Gateway: "gw-bench", Site: "s", Area: "a", Line: "l",
				Epoch: "0123456789abcdef", MaxInflight: 64, Grace: time.Second, Format: format,
				Sparkplug: publish.SparkplugOptions{GroupID: "plant",
					Devices: []publish.SparkplugDevice{{Source: "press-1", Metrics: metrics}}}}
			p, err := publish.New(newBacklogSource(payload, 1<<40), opts, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			defer func() { cancel(); <-done }()
			deadline := time.After(benchDeadline)
			wait := func(n int64) {
				for got.Load() < n {
					select {
					case <-arrived:
					case <-deadline:
						b.Fatalf("received %d, waiting for %d", got.Load(), n)
					}
				}
			}
			wait(1)
			start := got.Load()
			b.ReportAllocs()
			var i int64
			for b.Loop() {
				i++
				wait(start + i)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
