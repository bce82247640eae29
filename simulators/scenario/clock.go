package scenario

import (
	"context"
	"math"
	"time"
)

// Clock is an accelerated clock that separate processes can share: given the same Epoch, Speed
// and Step, plcsim and a test (or the agent) agree on the tick, and so on the simulated time, at
// every real time, to within a poll, without talking to each other.
//
// At real time r the tick is floor((r − Epoch) × Speed / Step), and 0 before Epoch; tick k is
// simulated time Start + k × Step. A Clock is a value, safe for concurrent use.
type Clock struct {
	// Start is the simulated time of tick 0 (plcsim --clock-start). Zero means unknown: Sim
	// then counts from the zero Time.
	Start time.Time
	// Epoch is the real (wall-clock) time at which tick 0 is served (plcsim --clock-epoch).
	Epoch time.Time
	// Speed is simulated time per real time. Zero means 1; it must not be negative.
	Speed float64
	// Step is the simulated time of one tick. Zero means 100 ms, the line's default.
	Step time.Duration
}

func (c Clock) speed() float64 {
	if c.Speed == 0 {
		return 1
	}
	return c.Speed
}

func (c Clock) step() time.Duration {
	if c.Step == 0 {
		return 100 * time.Millisecond
	}
	return c.Step
}

// Tick returns the tick at real time r.
func (c Clock) Tick(r time.Time) uint64 {
	d := r.Sub(c.Epoch)
	if d <= 0 {
		return 0
	}
	// float64 is exact here for the products that matter: d in ns stays below 2^53 for 104
	// days, and a correctly rounded quotient that is a whole number is that number.
	return uint64(math.Floor(float64(d) * c.speed() / float64(c.step())))
}

// Real returns the real time from which tick k is served (to within a nanosecond of rounding).
func (c Clock) Real(k uint64) time.Time {
	return c.Epoch.Add(time.Duration(math.Ceil(float64(k) * float64(c.step()) / c.speed())))
}

// Sim returns the simulated time of tick k: Start + k × Step.
func (c Clock) Sim(k uint64) time.Time {
	return c.Start.Add(time.Duration(k) * c.step())
}

// minWake bounds how often Run wakes: at high speeds it advances several ticks at once rather
// than burning a core on sub-millisecond timers.
const minWake = time.Millisecond

// Run calls advance with the number of ticks due whenever the clock has moved past done (the
// tick the caller is at), until ctx ends; it returns nil then. Unlike pace.Pacer.Run it never
// gives ticks up after a stall: it catches up at once, so that the tick stays the clock's
// (advance should take the ticks in batches, as pace.Pacer.Advance does).
func (c Clock) Run(ctx context.Context, done uint64, advance func(n int)) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if due := c.Tick(time.Now()); due > done {
			advance(int(due - done))
			done = due
		}
		timer.Reset(max(time.Until(c.Real(done+1)), minWake))
	}
}
