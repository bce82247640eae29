package modbus

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/drivers"
)

// Tests in this file run under testing/synctest: the clock is fake and advances only when every
// goroutine of the bubble is blocked, so backoff and tick timing is exact, and the device is a
// testServer reached over net.Pipe (a goroutine blocked on a real socket is not durably blocked).

// fakeDialer records every connection attempt and refuses while refuse is set.
type fakeDialer struct {
	s        *testServer
	mu       sync.Mutex
	refuse   bool
	attempts []time.Time
}

func (f *fakeDialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	f.mu.Lock()
	f.attempts = append(f.attempts, time.Now())
	refuse := f.refuse
	f.mu.Unlock()
	if refuse {
		return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	}
	return f.s.dial(ctx, network, address)
}

func (f *fakeDialer) setRefuse(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse = v
}

func (f *fakeDialer) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.attempts...)
}

// bubbleRun starts d.Run in the bubble and returns a stop function that cancels it and waits.
func bubbleRun(t *testing.T, d *Driver, rec *recorder) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, rec) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	}
}

// advance lets the fake clock run for d.
func advance(d time.Duration) {
	<-time.After(d) // fake time: returns as soon as the bubble is idle until then
	synctest.Wait()
}

func newBubbleDriver(t *testing.T, dev drivers.Device, opts Options, dial dialFunc) *Driver {
	t.Helper()
	d, err := New([]drivers.Device{dev}, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.dial = dial
	return d
}

func TestDriver_Run_Backoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		s.setHolding(0, 1)
		fd := &fakeDialer{s: s, refuse: true}
		dev := tcpDevice("plc:502", tag("a", "hr:0", drivers.TypeUint16, ""))
		dev.PollInterval = time.Second
		minB, maxB := 100*time.Millisecond, 2*time.Second
		d := newBubbleDriver(t, dev, Options{MinBackoff: minB, MaxBackoff: maxB}, fd.dial)
		rec := &recorder{}
		stop := bubbleRun(t, d, rec)

		advance(30 * time.Second)
		att := fd.times()
		if len(att) < 10 {
			t.Fatalf("%d attempts in 30s", len(att))
		}
		for k := 1; k < len(att); k++ {
			gap := att[k].Sub(att[k-1])
			ceil := min(maxB, minB<<min(k-1, 30))
			lo := max(minB, ceil/2)
			if gap < lo || gap > ceil {
				t.Errorf("wait before attempt %d: %v, want %v..%v", k+1, gap, lo, ceil)
			}
		}
		batches, _ := rec.snapshot()
		if len(batches) != len(att) {
			t.Errorf("%d batches for %d attempts, want one all-Bad batch per attempt", len(batches), len(att))
		}
		for i, b := range batches {
			if !allBad("unreachable")(b) {
				t.Errorf("batch %d while refused: %+v", i, b.Samples)
			}
		}
		if got := rec.kinds(); !cmp.Equal(got, []drivers.EventKind{drivers.EventDisconnected}) {
			t.Errorf("events %v, want one disconnected", got)
		}

		// The device comes up: within one capped wait the driver is connected and polls on
		// its interval again, one batch per second.
		fd.setRefuse(false)
		advance(maxB)
		if got := rec.kinds(); !cmp.Equal(got, []drivers.EventKind{drivers.EventDisconnected, drivers.EventConnected}) {
			t.Fatalf("events %v, want disconnected, connected", got)
		}
		before := len(fd.times())
		n0 := len(func() []drivers.Batch { b, _ := rec.snapshot(); return b }())
		advance(10 * time.Second)
		batches, _ = rec.snapshot()
		if got := len(batches) - n0; got != 10 {
			t.Errorf("%d batches in 10s at a 1s interval, want 10", got)
		}
		if got := len(fd.times()); got != before {
			t.Errorf("%d dials while connected, want none", got-before)
		}

		// It drops again: the backoff starts over from MinBackoff.
		fd.setRefuse(true)
		s.dropConns()
		advance(5 * time.Second) // the next poll finds the connection gone
		batches, _ = rec.snapshot()
		var failedAt time.Time
		for _, b := range batches[n0:] {
			if allBad("unreachable")(b) {
				failedAt = b.ReadTime
				break
			}
		}
		att = fd.times()[before:]
		if len(att) < 3 {
			t.Fatalf("%d attempts after the drop", len(att))
		}
		if got := att[0].Sub(failedAt); got != minB {
			t.Errorf("first retry %v after the failed poll, want MinBackoff %v", got, minB)
		}
		if got := att[1].Sub(att[0]); got < minB || got > 2*minB {
			t.Errorf("second retry after %v, want %v..%v", got, minB, 2*minB)
		}
		stop()
	})
}

func TestDriver_Backoff_Bounds(t *testing.T) {
	d := &Driver{minWait: 500 * time.Millisecond, maxWait: 30 * time.Second}
	f := func(n int, jitter string, want time.Duration) {
		t.Helper()
		d.jitter = func(span time.Duration) time.Duration {
			if jitter == "max" {
				return span
			}
			return 0
		}
		if got := d.backoff(n); got != want {
			t.Errorf("backoff(%d) with %s jitter = %v, want %v", n, jitter, got, want)
		}
	}
	f(1, "min", 500*time.Millisecond) // c/2 = 250ms, raised to MinBackoff
	f(1, "max", 500*time.Millisecond)
	f(2, "min", 500*time.Millisecond)
	f(2, "max", time.Second)
	f(3, "min", time.Second)
	f(3, "max", 2*time.Second)
	f(6, "min", 8*time.Second)
	f(6, "max", 16*time.Second)
	f(7, "min", 15*time.Second) // 32s capped at 30s
	f(7, "max", 30*time.Second)
	f(8, "min", 15*time.Second) // the cap keeps its jitter: [MaxBackoff/2, MaxBackoff]
	f(8, "max", 30*time.Second)
	f(64, "max", 30*time.Second) // no overflow
	f(1000, "min", 15*time.Second)
}

// TestDriver_Run_OverrunSkipsTicks: a cycle that overruns the interval is followed by at most
// one immediate cycle; the missed ticks are dropped, not bursted.
func TestDriver_Run_OverrunSkipsTicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		s := newPipeServer(t)
		var mu sync.Mutex
		var at []time.Duration
		s.setHandler(func(c *serverConn, req request) {
			mu.Lock()
			at = append(at, time.Since(start))
			mu.Unlock()
			if req.n == 1 {
				<-time.After(5500 * time.Millisecond) // fake time: a slow first reply
			}
			c.answer(req)
		})
		dev := tcpDevice("plc:502", tag("a", "hr:0", drivers.TypeUint16, ""))
		dev.PollInterval, dev.Timeout = time.Second, 10*time.Second
		d := newBubbleDriver(t, dev, Options{}, s.dial)
		stop := bubbleRun(t, d, &recorder{})
		advance(9500 * time.Millisecond)
		stop()

		mu.Lock()
		defer mu.Unlock()
		want := []time.Duration{0, 5500 * time.Millisecond, 6 * time.Second, 7 * time.Second, 8 * time.Second, 9 * time.Second}
		if diff := cmp.Diff(want, at); diff != "" {
			t.Errorf("cycle starts (-want +got):\n%s", diff)
		}
	})
}

func TestDriver_Run_Shutdown_WhileDialing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dial := func(ctx context.Context, network, address string) (net.Conn, error) {
			<-ctx.Done() // a dial that hangs, as to a host that drops SYNs
			return nil, ctx.Err()
		}
		dev := tcpDevice("plc:502", tag("a", "hr:0", drivers.TypeUint16, ""))
		dev.Timeout = time.Hour
		d := newBubbleDriver(t, dev, Options{}, dial)
		rec := &recorder{}
		stop := bubbleRun(t, d, rec)
		advance(time.Minute)
		cancelAt := time.Now()
		stop()
		if el := time.Since(cancelAt); el != 0 {
			t.Errorf("Run returned %v after cancel", el)
		}
		if b, ev := rec.snapshot(); len(b) != 0 || len(ev) != 0 {
			t.Errorf("got %d batches and %d events from an aborted dial, want none", len(b), len(ev))
		}
	})
}

func TestDriver_Run_Shutdown_DuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fd := &fakeDialer{refuse: true}
		d := newBubbleDriver(t, tcpDevice("plc:502", tag("a", "hr:0", drivers.TypeUint16, "")),
			Options{MinBackoff: time.Hour, MaxBackoff: time.Hour}, fd.dial)
		stop := bubbleRun(t, d, &recorder{})
		advance(time.Minute)
		cancelAt := time.Now()
		stop()
		if el := time.Since(cancelAt); el != 0 {
			t.Errorf("Run returned %v after cancel", el)
		}
		if n := len(fd.times()); n != 1 {
			t.Errorf("%d dials, want 1", n)
		}
	})
}

func TestDriver_Run_Shutdown_AwaitingReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		s.setHandler(func(c *serverConn, req request) { c.hang() })
		dev := tcpDevice("plc:502", tag("a", "hr:0", drivers.TypeUint16, ""))
		dev.Timeout = time.Hour
		d := newBubbleDriver(t, dev, Options{}, s.dial)
		rec := &recorder{}
		stop := bubbleRun(t, d, rec)
		advance(time.Minute)
		if s.requests.Load() != 1 {
			t.Fatalf("server saw %d requests, want 1", s.requests.Load())
		}
		cancelAt := time.Now()
		stop()
		if el := time.Since(cancelAt); el != 0 {
			t.Errorf("Run returned %v after cancel", el)
		}
		if b, ev := rec.snapshot(); len(b) != 0 || len(ev) != 0 {
			t.Errorf("got %d batches and %d events from an aborted request, want none", len(b), len(ev))
		}
	})
}
