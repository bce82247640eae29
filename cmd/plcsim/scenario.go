package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/floorlink/floorlink/simulators/line"
	"github.com/floorlink/floorlink/simulators/pace"
	"github.com/floorlink/floorlink/simulators/scenario"
)

// scenarioFlags are --scenario, --clock-start and --clock-epoch.
type scenarioFlags struct {
	file         string
	start, epoch time.Time // zero when not given
	began        time.Time // when run started: the default epoch
	clock        scenario.Clock
}

func (s *scenarioFlags) register(fs *flag.FlagSet) {
	s.began = time.Now()
	fs.StringVar(&s.file, "scenario", "", "scenario `FILE` (YAML) scripting machines of the line; offsets count from tick 0 (simulators/README.md)")
	fs.Func("clock-start", "`RFC3339` simulated time of tick 0, e.g. 2026-03-02T06:00:00+09:00; with --clock-epoch, paces the line by the shared clock", func(v string) error {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("want an RFC 3339 time such as 2026-03-02T06:00:00+09:00")
		}
		s.start = t
		return nil
	})
	fs.Func("clock-epoch", "`RFC3339Nano` real time at which tick 0 is served (default: when plcsim starts); the tick at real time r is floor((r - epoch) x speed / step)", func(v string) error {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("want an RFC 3339 time such as 2026-11-25T11:02:47.913926244Z")
		}
		s.epoch = t
		return nil
	})
}

// clocked reports whether the shared clock paces the line: when --clock-start or --clock-epoch
// is given. Otherwise pace.Pacer paces it as before (and gives ticks up after a stall).
func (s *scenarioFlags) clocked() bool { return !s.start.IsZero() || !s.epoch.IsZero() }

// load reads the scenario file, if any, and sets up the clock; it returns the scripts for
// line.Config.
func (s *scenarioFlags) load(speed float64, step time.Duration) ([]line.Script, error) {
	s.clock = scenario.Clock{Start: s.start, Epoch: s.epoch, Speed: speed, Step: step}
	if s.clock.Epoch.IsZero() {
		s.clock.Epoch = s.began
	}
	if s.file == "" {
		return nil, nil
	}
	sc, err := scenario.Load(s.file)
	if err != nil {
		return nil, err
	}
	switch {
	case sc.ClockStart.IsZero():
	case s.start.IsZero():
		s.clock.Start = sc.ClockStart
	case !s.start.Equal(sc.ClockStart):
		return nil, fmt.Errorf("--clock-start %s differs from clock_start %s of scenario %s",
			s.start.Format(time.RFC3339Nano), sc.ClockStart.Format(time.RFC3339Nano), s.file)
	}
	return sc.Scripts, nil
}

// attrs are the log attributes of the scenario and the clock.
func (s *scenarioFlags) attrs() []any {
	var a []any
	if s.file != "" {
		a = append(a, "scenario", s.file)
	}
	if !s.clock.Start.IsZero() {
		a = append(a, "clock_start", s.clock.Start.Format(time.RFC3339Nano))
	}
	if s.clocked() {
		a = append(a, "clock_epoch", s.clock.Epoch.Format(time.RFC3339Nano))
	}
	return a
}

// catchUp steps p to the clock's tick now, for an epoch in the past.
func (s *scenarioFlags) catchUp(p *pace.Pacer) {
	var tick uint64
	p.View(func(l *line.Line) { tick = l.Tick() })
	if due := s.clock.Tick(time.Now()); due > tick {
		p.Advance(int(due - tick))
	}
}

// run paces p (made with Options.Manual) by the shared clock until ctx ends.
func (s *scenarioFlags) run(ctx context.Context, p *pace.Pacer) error {
	var tick uint64
	p.View(func(l *line.Line) { tick = l.Tick() })
	return s.clock.Run(ctx, tick, p.Advance)
}
