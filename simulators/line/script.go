package line

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Script replaces the random model of one machine by a timeline, so that a test knows its
// states and counters in advance. The package doc ("Scripted machines") defines the semantics.
type Script struct {
	// Machine is the scripted machine, 1..Config.Machines; at most one Script per machine.
	Machine int
	// Cycle is the actual cycle time at the start: the running time one part takes. At least
	// Config.Step, at most 65.535 s (served in ms as a uint16), in whole milliseconds.
	Cycle time.Duration
	// IdealCycle is the design cycle time at the start, served as IdealCycleTimeMs: more than 0,
	// at most 65.535 s, in whole milliseconds.
	IdealCycle time.Duration
	// RejectEvery makes every RejectEvery-th completed part (counted from the start of the line,
	// across counter resets) a reject. Zero means none.
	RejectEvery int
	// RejectRate is the probability, 0 <= RejectRate < 1, that a completed part which
	// RejectEvery did not reject is rejected, drawn from the machine's seeded stream. Zero
	// means none.
	RejectRate float64
	// StartParts is the PartsTotal and GoodTotal at the start (RejectTotal starts at 0), e.g.
	// 65530 to reach the 16-bit rollover within seconds. Config.InitialParts does not apply to
	// a scripted machine.
	StartParts uint32
	// Events is the timeline, in strictly increasing order of At. The first is at 0 and sets the
	// state.
	Events []Event
}

// Event is one point of a Script's timeline: what changes at offset At. Zero fields change
// nothing.
type Event struct {
	// At is the offset from the line's start (tick Config.InitialTick), a multiple of
	// Config.Step: the event shows in the snapshot of tick InitialTick + At/Step.
	At time.Duration
	// State is the state from At on; 0 keeps the current one.
	State State
	// Alarm is the AlarmCode served while this Down state lasts; only with State Down. Zero
	// means a down state without an alarm code.
	Alarm uint16
	// Cycle and IdealCycle, when non-zero, change the actual and the ideal cycle time from At
	// on (a product changeover), with the limits of Script's fields of the same name.
	Cycle, IdealCycle time.Duration
	// Reset sets PartsTotal, GoodTotal and RejectTotal to 0 at At, as a PLC restart does.
	Reset bool
}

// maxCycle is the longest cycle time the front ends can serve: milliseconds in a uint16.
const maxCycle = math.MaxUint16 * time.Millisecond

// check returns every problem of s on a line of n machines with the given step.
func (s *Script) check(n int, step time.Duration) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Machine < 1 || s.Machine > n {
		bad("machine %d outside 1..%d", s.Machine, n)
	}
	checkCycle := func(name string, d time.Duration, min time.Duration) {
		switch {
		case d < min || d > maxCycle:
			bad("%s %v outside %v..%v", name, d, min, maxCycle)
		case d%time.Millisecond != 0:
			bad("%s %v is not whole milliseconds", name, d)
		}
	}
	checkCycle("cycle", s.Cycle, step)
	checkCycle("ideal cycle", s.IdealCycle, time.Millisecond)
	if s.RejectEvery < 0 {
		bad("reject every %d is negative", s.RejectEvery)
	}
	if !(s.RejectRate >= 0 && s.RejectRate < 1) {
		bad("reject rate %v outside 0..1 (1 excluded)", s.RejectRate)
	}
	if len(s.Events) == 0 {
		bad("no events: the first, at 0, sets the state")
	}
	for i, e := range s.Events {
		at := func(format string, args ...any) {
			bad("event %d at %v: %s", i+1, e.At, fmt.Sprintf(format, args...))
		}
		switch {
		case i == 0 && e.At != 0:
			at("the first event must be at 0")
		case i > 0 && e.At <= s.Events[i-1].At:
			at("not after the event before it (%v)", s.Events[i-1].At)
		case e.At%step != 0:
			at("not a multiple of the step %v", step)
		}
		if i == 0 && e.State == 0 {
			at("the first event must set the state")
		}
		if e.State > Maintenance {
			at("state %d outside 1..%d", e.State, Maintenance)
		}
		if e.Alarm != 0 && e.State != Down {
			at("alarm %d without state down", e.Alarm)
		}
		if e.Cycle != 0 {
			checkCycle(fmt.Sprintf("event %d at %v: cycle", i+1, e.At), e.Cycle, step)
		}
		if e.IdealCycle != 0 {
			checkCycle(fmt.Sprintf("event %d at %v: ideal cycle", i+1, e.At), e.IdealCycle, time.Millisecond)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("script of machine %d: %w", s.Machine, err)
	}
	return nil
}

// checkScripts returns every problem of the scripts on a line of n machines.
func checkScripts(scripts []Script, n int, step time.Duration) []error {
	var errs []error
	seen := map[int]bool{}
	for i := range scripts {
		s := &scripts[i]
		if err := s.check(n, step); err != nil {
			errs = append(errs, err)
		}
		if seen[s.Machine] {
			errs = append(errs, fmt.Errorf("two scripts for machine %d", s.Machine))
		}
		seen[s.Machine] = true
	}
	return errs
}

// scripted is the state of a scripted machine besides the fields machine shares with the random
// model (state, alarm, ideal, lastCycle, counters).
type scripted struct {
	s        *Script
	next     int           // index of the next event to apply
	cycle    time.Duration // the actual cycle time in force
	progress time.Duration // running time spent on the part in work
	count    uint64        // parts completed since the start, across resets, for RejectEvery
}

// startScript makes machine i follow s and applies its events at offset 0.
func (l *Line) startScript(i int, s *Script) {
	m := &l.m[i]
	m.script = &scripted{s: s, cycle: s.Cycle}
	m.ideal = s.IdealCycle
	m.parts, m.good, m.reject = s.StartParts, s.StartParts, 0
	l.applyEvents(m)
}

// moveScripted runs scripted machine i for dt: running time accumulates in the state shown at
// the previous tick, then the events due at the new tick apply.
func (l *Line) moveScripted(i int, dt time.Duration) {
	m := &l.m[i]
	sc := m.script
	if m.state == Running && dt > 0 {
		sc.progress += dt
		// A loop, not an if: a changeover to a shorter cycle may leave more than one cycle of
		// progress (the Step limit keeps it to one per tick otherwise).
		for sc.progress >= sc.cycle {
			sc.progress -= sc.cycle
			l.completeScripted(i)
		}
	}
	l.applyEvents(m)
}

// completeScripted counts one part of scripted machine i. It never starves or blocks: it takes
// a part from its input buffer when there is one and puts a good part into its output buffer
// when there is room (a full buffer loses it, as to a side conveyor), so that the random
// machines around it keep working.
func (l *Line) completeScripted(i int) {
	m := &l.m[i]
	sc := m.script
	sc.count++
	m.parts++
	m.lastCycle = sc.cycle
	if i > 0 && l.buf[i-1] > 0 {
		l.buf[i-1]--
	}
	reject := sc.s.RejectEvery > 0 && sc.count%uint64(sc.s.RejectEvery) == 0
	if !reject && sc.s.RejectRate > 0 {
		reject = m.rng.Float64() < sc.s.RejectRate
	}
	if reject {
		m.reject++
		return
	}
	m.good++
	l.put(i)
}

// applyEvents applies the events of m's script that are due at the line's current tick.
func (l *Line) applyEvents(m *machine) {
	sc := m.script
	now := time.Duration(l.tick-l.cfg.InitialTick) * l.cfg.Step
	for ; sc.next < len(sc.s.Events) && sc.s.Events[sc.next].At <= now; sc.next++ {
		e := &sc.s.Events[sc.next]
		if e.Reset {
			m.parts, m.good, m.reject = 0, 0, 0
		}
		if e.State != 0 {
			m.state = e.State
			m.alarm = e.Alarm
		}
		if e.Cycle != 0 {
			sc.cycle = e.Cycle
		}
		if e.IdealCycle != 0 {
			m.ideal = e.IdealCycle
		}
	}
}
