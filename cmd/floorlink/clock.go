package main

import (
	"fmt"
	"time"
)

// simClock is the simulated clock of `run --clock-*`: at real time r it reads
// start + (r - epoch)·speed. plcsim takes the same three values, so a test or a demo can start
// the simulator and the agent separately and have both agree on the simulated time of a whole
// shift played in minutes.
type simClock struct {
	start, epoch time.Time
	speed        float64
}

// parseSimClock reads the flags; ok is false when --clock-start is not given (the real clock).
func parseSimClock(start, epoch string, speed float64) (c simClock, ok bool, err error) {
	if start == "" {
		if epoch != "" || speed != 1 {
			return c, false, fmt.Errorf("--clock-epoch and --clock-speed need --clock-start")
		}
		return c, false, nil
	}
	if c.start, err = time.Parse(time.RFC3339Nano, start); err != nil {
		return c, false, fmt.Errorf("--clock-start %q: want RFC 3339, e.g. 2026-03-02T06:00:00+09:00", start)
	}
	c.epoch = time.Now()
	if epoch != "" {
		if c.epoch, err = time.Parse(time.RFC3339Nano, epoch); err != nil {
			return c, false, fmt.Errorf("--clock-epoch %q: want RFC 3339 with fractions, the real time at which the simulated clock reads --clock-start", epoch)
		}
	}
	if !(speed > 0 && speed <= 100_000) {
		return c, false, fmt.Errorf("--clock-speed %v: want more than 0 and at most 100000", speed)
	}
	c.speed = speed
	return c, true, nil
}

// now reads the simulated clock, without a monotonic reading: its pace is not the wall clock's,
// and nothing must take it for a jump.
func (c simClock) now() time.Time {
	d := time.Duration(float64(time.Since(c.epoch)) * c.speed)
	return c.start.Add(d).Round(0)
}
