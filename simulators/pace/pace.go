// Package pace steps a line.Line in real time, or by hand, holding the lock that the protocol
// front ends take to read it, so that every request sees one whole tick.
//
// The line itself stays pure (simulators/line has no clock and no lock); pace adds both, and
// nothing else: front ends read through the lock (Pacer.Locker, Pacer.View) and know nothing of
// the pacing.
//
// Caveats: when the process stalls (a suspended VM, a stopped debugger), Run catches up at most
// one second of real time worth of ticks and lets the rest go, so the line then runs behind the
// wall clock rather than bursting through hours of ticks.
package pace

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/floorlink/floorlink/simulators/line"
)

// Options configure a Pacer. The zero value paces at real time.
type Options struct {
	// Speed is simulated time per real time: 10 runs the line ten times faster than the wall
	// clock, one tick per Step/Speed. Zero means 1; negative is an error, and so is a speed that
	// makes a tick shorter than 1 µs of real time.
	Speed float64
	// Manual keeps Run from stepping: the line moves only by Advance.
	Manual bool
	// OnStep, when set, is called after every Step with the lock held, so it sees each tick
	// exactly once. It must be quick and must not call the Pacer's methods.
	OnStep func(l *line.Line)
}

// Pacer owns a line and the lock that guards it. Its methods are safe for concurrent use.
type Pacer struct {
	mu     sync.Mutex // guards line
	line   *line.Line
	period time.Duration // real time per tick
	manual bool
	onStep func(*line.Line)
}

// New returns a Pacer for l. From now on l must only be used through the Pacer: its lock guards
// it.
func New(l *line.Line, opts Options) (*Pacer, error) {
	speed := opts.Speed
	if speed == 0 {
		speed = 1
	}
	step := l.Config().Step
	period := time.Duration(float64(step) / speed)
	if !(speed > 0) || math.IsInf(speed, 0) || period < time.Microsecond {
		return nil, fmt.Errorf("pace: speed %v with step %v: want a tick of at least 1µs real time", opts.Speed, step)
	}
	return &Pacer{line: l, period: period, manual: opts.Manual, onStep: opts.OnStep}, nil
}

// Locker returns the lock that guards the line, for front ends that read it
// (simmodbus.NewLineSource).
func (p *Pacer) Locker() sync.Locker { return &p.mu }

// View calls fn with the line while holding the lock. fn must not keep l or call the Pacer.
func (p *Pacer) View(fn func(l *line.Line)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p.line)
}

// Period returns the real time per tick when paced.
func (p *Pacer) Period() time.Duration { return p.period }

// Advance steps the line n times at once, whatever the pacing.
func (p *Pacer) Advance(n int) {
	for n > 0 {
		// Batches release the lock now and then, so that a long catch-up does not starve readers.
		b := min(n, 1000)
		p.mu.Lock()
		for range b {
			p.line.Step()
			if p.onStep != nil {
				p.onStep(p.line)
			}
		}
		p.mu.Unlock()
		n -= b
	}
}

// Run steps the line once per period of real time until ctx ends, then returns nil. With
// Options.Manual it only waits for ctx. Run must not be called twice at once.
func (p *Pacer) Run(ctx context.Context) error {
	if p.manual {
		<-ctx.Done()
		return nil
	}
	maxBehind := uint64(max(time.Second/p.period, 1))
	start := time.Now()
	var done uint64 // ticks stepped since start
	timer := time.NewTimer(p.period)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		due := uint64(time.Since(start) / p.period)
		if due > done+maxBehind {
			// Stalled: give up the ticks beyond one second's worth and run behind from here.
			start = start.Add(time.Duration(due-done-maxBehind) * p.period)
			due = done + maxBehind
		}
		if due > done {
			p.Advance(int(due - done))
			done = due
		}
		timer.Reset(time.Until(start.Add(time.Duration(done+1) * p.period)))
	}
}
