package pace_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/floorlink/floorlink/simulators/line"
	"github.com/floorlink/floorlink/simulators/pace"
)

func newPacer(t testing.TB, cfg line.Config, opts pace.Options) *pace.Pacer {
	t.Helper()
	l, err := line.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pace.New(l, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func tick(p *pace.Pacer) (n uint64) {
	p.View(func(l *line.Line) { n = l.Tick() })
	return n
}

// run starts p.Run in the bubble and returns a stop function that ends it and checks its result.
func run(t *testing.T, p *pace.Pacer) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func TestPacer_Run_RealTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(t, line.Config{}, pace.Options{})
		stop := run(t, p)
		defer stop()
		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		if got := tick(p); got != 100 {
			t.Errorf("tick %d after 10s at 100ms per tick, want 100", got)
		}
	})
}

func TestPacer_Run_Speed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var steps []uint64
		p := newPacer(t, line.Config{Step: 50 * time.Millisecond}, pace.Options{
			Speed:  100,
			OnStep: func(l *line.Line) { steps = append(steps, l.Tick()) },
		})
		if got := p.Period(); got != 500*time.Microsecond {
			t.Fatalf("period %v, want 500µs", got)
		}
		stop := run(t, p)
		time.Sleep(time.Second + time.Microsecond)
		synctest.Wait()
		stop()
		if len(steps) != 2000 {
			t.Fatalf("%d steps in 1s at 500µs per tick, want 2000", len(steps))
		}
		for i, s := range steps {
			if s != uint64(i+1) {
				t.Fatalf("OnStep %d saw tick %d, want %d: every tick exactly once", i, s, i+1)
			}
		}
	})
}

func TestPacer_Run_Manual(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(t, line.Config{}, pace.Options{Manual: true})
		stop := run(t, p)
		defer stop()
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := tick(p); got != 0 {
			t.Errorf("tick %d after an hour in manual mode, want 0", got)
		}
		p.Advance(2500)
		if got := tick(p); got != 2500 {
			t.Errorf("tick %d after Advance(2500), want 2500", got)
		}
	})
}

func TestPacer_Advance_Concurrent(t *testing.T) {
	p := newPacer(t, line.Config{}, pace.Options{Manual: true})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { p.Advance(500) })
		wg.Go(func() {
			mu := p.Locker()
			mu.Lock()
			mu.Unlock()
		})
	}
	wg.Wait()
	if got := tick(p); got != 2000 {
		t.Errorf("tick %d, want 2000", got)
	}
}

func TestPacer_New_Invalid(t *testing.T) {
	l, err := line.New(line.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, speed := range []float64{-1, 1e9} {
		if _, err := pace.New(l, pace.Options{Speed: speed}); err == nil {
			t.Errorf("speed %v accepted", speed)
		}
	}
}

// TestPacer_Run_Stall stalls the pacer for an hour inside a step: afterwards it catches up one
// second's worth of ticks, not an hour's, and paces on from there.
func TestPacer_Run_Stall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stalled := false
		p := newPacer(t, line.Config{}, pace.Options{OnStep: func(l *line.Line) {
			if l.Tick() == 5 && !stalled {
				stalled = true
				time.Sleep(time.Hour)
			}
		}})
		stop := run(t, p)
		defer stop()
		time.Sleep(time.Hour + 500*time.Millisecond + time.Millisecond)
		synctest.Wait()
		// 5 ticks, the stall, 10 ticks (1 s) of catch-up; the catch-up batch ended at about
		// 1h+0.5s, so a few more may follow but nowhere near an hour's 36000.
		if got := tick(p); got < 15 || got > 16 {
			t.Errorf("tick %d after an hour's stall, want about 15", got)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := tick(p); got < 115 || got > 125 {
			t.Errorf("tick %d 10s after the stall, want about 100 more", got)
		}
	})
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
