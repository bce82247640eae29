package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/floorlink/floorlink/agent/publish/mqtttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lockedBuffer is a writer the test reads while Run writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestModel_Run_Plain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(Options{})
		var out lockedBuffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx, &out, RunOptions{}) }()
		synctest.Wait()
		if got := out.String(); got != "" {
			t.Fatalf("plain output before the first second: %q", got)
		}
		m.Handle("floorlink/v1/s/a/l/d/telemetry", []byte(`{"gateway":"g","seq":1,"values":{"tick":5}}`), time.Now())
		<-time.After(3 * time.Second) // the bubble's clock: three refreshes
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		got := out.String()
		for _, want := range []string{"t=1s gateway=g", "t=2s device=d", " tick=5\n", "t=3s messages=1 "} {
			if !strings.Contains(got, want) {
				t.Errorf("output lacks %q:\n%s", want, got)
			}
		}
		if n := strings.Count(got, " messages="); n != 3 {
			t.Errorf("%d refreshes in 3s, want 3:\n%s", n, got)
		}
	})
}

func TestModel_Run_Terminal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(Options{})
		var out lockedBuffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		sizes := 0
		go func() {
			done <- m.Run(ctx, &out, RunOptions{Terminal: true, Interval: 500 * time.Millisecond,
				Size: func() (int, int) { sizes++; return 40, 10 }})
		}()
		synctest.Wait()
		if n := strings.Count(out.String(), ansiHomeClear); n != 1 {
			t.Fatalf("%d frames at once, want 1", n)
		}
		<-time.After(time.Second) // the bubble's clock: one refresh
		synctest.Wait()
		cancel()
		<-done
		if n := strings.Count(out.String(), ansiHomeClear); n != 3 || sizes != 3 {
			t.Errorf("%d frames (%d sizes asked) after a second at 500ms, want 3", n, sizes)
		}
	})
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestModel_Run_WriteFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		err := New(Options{}).Run(context.Background(), failingWriter{}, RunOptions{Terminal: true})
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("Run: %v, want the writer's error", err)
		}
	})
}

// publish sends messages to the broker at url with a client of its own, QoS 1, retained when
// asked.
func publish(t *testing.T, url string, retained bool, msgs ...[2]string) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("test-pub-%d", time.Now().UnixNano())).
		SetAutoReconnect(false).SetProtocolVersion(4))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect publisher: %v", tok.Error())
	}
	defer c.Disconnect(100)
	for _, m := range msgs {
		if tok := c.Publish(m[0], 1, retained, m[1]); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", m[0], tok.Error())
		}
	}
}

func waitFor(t *testing.T, timeout time.Duration, fn func() error) {
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

// TestSubscribe_Mosquitto feeds a model from a real broker: a retained status published
// before the view subscribed, then telemetry and stats; the view survives the broker's restart
// and reports its connection.
func TestSubscribe_Mosquitto(t *testing.T) {
	b := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	publish(t, b.URL(), true, [2]string{"floorlink/v1/s/gateway/gw/status", `{"state":"online","session":1}`})

	m := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	subscribed := make(chan struct{}, 4)
	done := make(chan error, 1)
	go func() {
		done <- Subscribe(ctx, SubscribeOptions{Brokers: []string{b.URL()}, MinBackoff: 50 * time.Millisecond,
			MaxBackoff: 200 * time.Millisecond, Subscribed: func() { subscribed <- struct{}{} }}, m)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Subscribe: %v", err)
		}
	}()
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("not subscribed within 10s")
	}
	publish(t, b.URL(), false,
		[2]string{"floorlink/v1/s/a/l/m1/telemetry", `{"gateway":"gw","seq":1,"ts":"2026-11-25T08:00:00Z","values":{"tick":1}}`},
		[2]string{"floorlink/v1/s/a/l/m1/telemetry", `{"gateway":"gw","seq":2,"ts":"2026-11-25T08:00:01Z","values":{"tick":2}}`},
		[2]string{"floorlink/v1/s/gateway/gw/stats", `{"buffer":{"depth":3},"publish":{"published":2}}`},
		[2]string{"other/topic", `x`})
	plain := func() string { return string(m.AppendPlain(nil, time.Now())) }
	waitFor(t, 10*time.Second, func() error {
		p := plain()
		for _, want := range []string{"status=online", "depth=3", "device=m1", "seq=2", "tick=2", "messages=4 undecodable=0 broker=connected"} {
			if !strings.Contains(p, want) {
				return fmt.Errorf("view lacks %q:\n%s", want, p)
			}
		}
		return nil
	})

	b.Stop()
	waitFor(t, 10*time.Second, func() error {
		if p := plain(); !strings.Contains(p, "broker=disconnected") && !strings.Contains(p, "broker=connecting") {
			return fmt.Errorf("broker stopped, but the view says:\n%s", p)
		}
		return nil
	})
	b.Restart()
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("not subscribed again within 10s of the broker's restart")
	}
	publish(t, b.URL(), false, [2]string{"floorlink/v1/s/a/l/m1/telemetry", `{"gateway":"gw","seq":3,"values":{"tick":3}}`})
	waitFor(t, 10*time.Second, func() error {
		if p := plain(); !strings.Contains(p, "tick=3") || !strings.Contains(p, "broker=connected") {
			return fmt.Errorf("after the restart:\n%s", p)
		}
		return nil
	})
}

func TestSubscribe_Options(t *testing.T) {
	for _, c := range []struct {
		name string
		o    SubscribeOptions
		want string
	}{
		{"no broker", SubscribeOptions{}, "at least one broker"},
		{"bad scheme", SubscribeOptions{Brokers: []string{"http://127.0.0.1:1"}}, "not a broker address"},
	} {
		err := Subscribe(context.Background(), c.o, New(Options{}))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
