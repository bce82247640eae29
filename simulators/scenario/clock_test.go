package scenario_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/floorlink/floorlink/simulators/scenario"
)

func TestClock_Tick(t *testing.T) {
	epoch := time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)
	c := scenario.Clock{Epoch: epoch, Speed: 60, Step: 100 * time.Millisecond}
	f := func(d time.Duration, want uint64) {
		t.Helper()
		if got := c.Tick(epoch.Add(d)); got != want {
			t.Errorf("Tick(epoch%+v) = %d, want %d", d, got, want)
		}
	}
	f(-time.Hour, 0)
	f(0, 0)
	f(1666666*time.Nanosecond, 0) // 99.99996 ms simulated
	f(1666667*time.Nanosecond, 1)
	f(time.Second, 600)
	f(8*time.Minute, 288000) // an 8-hour shift at 60×
	for _, k := range []uint64{1, 7, 600, 288000, 1 << 30} {
		if got := c.Tick(c.Real(k)); got != k {
			t.Errorf("Tick(Real(%d)) = %d", k, got)
		}
		if got := c.Tick(c.Real(k).Add(-time.Nanosecond)); got != k-1 {
			t.Errorf("Tick(Real(%d) - 1ns) = %d, want %d", k, got, k-1)
		}
	}
	start := time.Date(2026, 3, 2, 6, 0, 0, 0, time.FixedZone("KST", 9*3600))
	c.Start = start
	if got, want := c.Sim(288000), start.Add(8*time.Hour); !got.Equal(want) {
		t.Errorf("Sim(288000) = %v, want %v", got, want)
	}
	// Zero Speed and Step mean 1 and 100 ms.
	if got := (scenario.Clock{Epoch: epoch}).Tick(epoch.Add(time.Second)); got != 10 {
		t.Errorf("zero clock: %d ticks after 1 s, want 10", got)
	}
}

// TestClock_Run: Run keeps the caller's tick equal to the clock's, waits for an epoch in the
// future and catches up at once on an epoch in the past.
func TestClock_Run(t *testing.T) {
	for _, tt := range []struct {
		name  string
		epoch time.Duration // from now
		speed float64
	}{
		{"future epoch", 2 * time.Second, 10},
		{"past epoch", -time.Hour, 60},
		{"fast", 0, 600},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := scenario.Clock{Epoch: time.Now().Add(tt.epoch), Speed: tt.speed, Step: 100 * time.Millisecond}
				var mu sync.Mutex
				var tick uint64
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() {
					done <- c.Run(ctx, 0, func(n int) {
						mu.Lock()
						tick += uint64(n)
						mu.Unlock()
					})
				}()
				for range 50 {
					<-time.After(77 * time.Millisecond) // the bubble's fake clock: lets it run, not a wait for a result
					synctest.Wait()
					mu.Lock()
					got, want := tick, c.Tick(time.Now())
					mu.Unlock()
					// Within one wake-up (1 ms of real time) of the clock.
					if slack := c.Tick(time.Now()) - c.Tick(time.Now().Add(-time.Millisecond)); got > want || want-got > slack {
						t.Fatalf("at %v from the epoch: tick %d, want %d", time.Since(c.Epoch), got, want)
					}
				}
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
		})
	}
}
