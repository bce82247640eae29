package line_test

import (
	"strings"
	"testing"
	"time"

	"github.com/floorlink/floorlink/simulators/line"
)

// stepTo steps l until its tick is want.
func stepTo(t *testing.T, l *line.Line, want uint64) {
	t.Helper()
	if l.Tick() > want {
		t.Fatalf("at tick %d already, want %d", l.Tick(), want)
	}
	for l.Tick() < want {
		l.Step()
	}
}

// TestLine_Script_Semantics follows one scripted machine (step 100 ms, cycle 2.5 s) through a
// stop in mid-part, a reset, a changeover and rejects, against values computed by hand.
func TestLine_Script_Semantics(t *testing.T) {
	l := newLine(t, line.Config{Step: 100 * time.Millisecond, Scripts: []line.Script{{
		Machine: 2, Cycle: 2500 * time.Millisecond, IdealCycle: 2 * time.Second,
		RejectEvery: 3, StartParts: 10,
		Events: []line.Event{
			{At: 0, State: line.Running},
			{At: 6 * time.Second, State: line.Down, Alarm: 310}, // 6 s of running: 2 parts, 1 s of progress
			{At: 10 * time.Second, State: line.Running},         // the third part needs 1.5 s more: at 11.5 s
			{At: 20 * time.Second, Reset: true},                 // after R = 6 s + 10 s: 6 parts
			{At: 30 * time.Second, Cycle: 4 * time.Second, IdealCycle: 3500 * time.Millisecond},
			{At: 40 * time.Second, State: line.Setup},
		},
	}}})
	type want struct {
		tick                uint64
		state               line.State
		parts, good, reject uint32
		cycleMs, idealMs    uint16
		alarm               uint16
	}
	// Running time R(t): t for t <= 6 s, 6 s + (t − 10 s) from 10 s on, frozen at 40 s (36 s).
	// Parts since the start: floor(R/2.5 s) up to 30 s (R = 26 s: 10 parts, 1 s of progress),
	// then the changeover: 4 s cycles from that 1 s of progress, parts 11 and 12 at R = 29 s and
	// 33 s (t = 33 s, 37 s). Rejects: parts 3, 6, 9, 12.
	for _, w := range []want{
		{0, line.Running, 10, 10, 0, 0, 2000, 0},
		{24, line.Running, 10, 10, 0, 0, 2000, 0},    // 2.4 s: not yet
		{25, line.Running, 11, 11, 0, 2500, 2000, 0}, // 2.5 s: part 1
		{60, line.Down, 12, 12, 0, 2500, 2000, 310},  // part 2 at 5 s; down at 6 s
		{100, line.Running, 12, 12, 0, 2500, 2000, 0},
		{114, line.Running, 12, 12, 0, 2500, 2000, 0},
		{115, line.Running, 13, 12, 1, 2500, 2000, 0}, // part 3 (a reject) at 11.5 s
		{199, line.Running, 16, 14, 2, 2500, 2000, 0}, // R 15.9 s: 6 parts; 3 and 6 rejected
		{200, line.Running, 0, 0, 0, 2500, 2000, 0},   // R 16 s: part 6 counted, then the reset
		{300, line.Running, 4, 3, 1, 2500, 3500, 0},   // R 26 s: parts 7..10, 9 rejected
		{329, line.Running, 4, 3, 1, 2500, 3500, 0},
		{330, line.Running, 5, 4, 1, 4000, 3500, 0}, // part 11 at R 29 s
		{370, line.Running, 6, 4, 2, 4000, 3500, 0}, // part 12 (a reject) at R 33 s
		{400, line.Setup, 6, 4, 2, 4000, 3500, 0},   // R 36 s: part 13 would need 40 s
		{10000, line.Setup, 6, 4, 2, 4000, 3500, 0}, // the last event holds
	} {
		stepTo(t, l, w.tick)
		m := l.Snapshot(2)
		got := want{l.Tick(), m.State, m.PartsTotal, m.GoodTotal, m.RejectTotal, m.CycleTimeMs, m.IdealCycleTimeMs, m.AlarmCode}
		if got != w {
			t.Errorf("tick %d:\ngot  %+v\nwant %+v", w.tick, got, w)
		}
	}
}

// TestLine_Script_Neighbours: a scripted machine 1 feeds the random machines after it, and its
// own values follow the script while they run.
func TestLine_Script_Neighbours(t *testing.T) {
	l := newLine(t, line.Config{Seed: 4, Scripts: []line.Script{{
		Machine: 1, Cycle: 3 * time.Second, IdealCycle: 3 * time.Second,
		Events: []line.Event{{State: line.Running}},
	}}})
	stepTo(t, l, 36000) // 1 h
	if got := l.Snapshot(1).PartsTotal; got != 1200 {
		t.Errorf("machine 1 made %d parts in 1 h at 3 s, want 1200", got)
	}
	if got := l.Snapshot(3).PartsTotal; got < 600 {
		t.Errorf("machine 3 made %d parts in 1 h, want most of the 1200 fed to it", got)
	}
}

// TestLine_Script_RejectRate: the random rejects of a script are seeded: the same seed gives the
// same counts, and the rate shows.
func TestLine_Script_RejectRate(t *testing.T) {
	run := func(seed int64) line.Machine {
		l := newLine(t, line.Config{Seed: seed, Step: time.Second, Scripts: []line.Script{{
			Machine: 1, Cycle: time.Second, IdealCycle: time.Second, RejectRate: 0.1,
			Events: []line.Event{{State: line.Running}},
		}}})
		stepTo(t, l, 10000)
		return l.Snapshot(1)
	}
	a, b := run(5), run(5)
	if a.RejectTotal != b.RejectTotal || a.PartsTotal != 10000 {
		t.Errorf("seed 5 twice: %d and %d rejects of %d parts, want equal of 10000", a.RejectTotal, b.RejectTotal, a.PartsTotal)
	}
	if a.RejectTotal < 800 || a.RejectTotal > 1200 {
		t.Errorf("%d rejects of 10000 at rate 0.1, want about 1000", a.RejectTotal)
	}
}

func TestLine_Script_Invalid(t *testing.T) {
	ok := line.Script{Machine: 1, Cycle: 2 * time.Second, IdealCycle: 2 * time.Second,
		Events: []line.Event{{State: line.Running}}}
	with := func(f func(s *line.Script)) []line.Script {
		s := ok
		s.Events = append([]line.Event(nil), ok.Events...)
		f(&s)
		return []line.Script{s}
	}
	tests := []struct {
		name    string
		scripts []line.Script
		want    string
	}{
		{"machine outside", with(func(s *line.Script) { s.Machine = 4 }), "machine 4 outside 1..3"},
		{"twice", []line.Script{ok, ok}, "two scripts for machine 1"},
		{"cycle below step", with(func(s *line.Script) { s.Cycle = 50 * time.Millisecond }), "cycle 50ms outside 100ms..1m5.535s"},
		{"ideal zero", with(func(s *line.Script) { s.IdealCycle = 0 }), "ideal cycle 0s outside"},
		{"cycle fraction", with(func(s *line.Script) { s.Cycle = 2*time.Second + 1 }), "not whole milliseconds"},
		{"reject every negative", with(func(s *line.Script) { s.RejectEvery = -1 }), "reject every -1"},
		{"reject rate one", with(func(s *line.Script) { s.RejectRate = 1 }), "reject rate 1 outside"},
		{"no events", with(func(s *line.Script) { s.Events = nil }), "no events"},
		{"first not at 0", with(func(s *line.Script) { s.Events[0].At = time.Second }), "first event must be at 0"},
		{"first without state", with(func(s *line.Script) { s.Events[0].State = 0 }), "must set the state"},
		{"not increasing", with(func(s *line.Script) {
			s.Events = append(s.Events, line.Event{At: time.Second, State: line.Idle}, line.Event{At: time.Second, State: line.Running})
		}), "event 3 at 1s: not after the event before it (1s)"},
		{"off step", with(func(s *line.Script) { s.Events = append(s.Events, line.Event{At: 150 * time.Millisecond, Reset: true}) }), "not a multiple of the step 100ms"},
		{"state outside", with(func(s *line.Script) { s.Events[0].State = 7 }), "state 7 outside 1..6"},
		{"alarm without down", with(func(s *line.Script) { s.Events[0].Alarm = 101 }), "alarm 101 without state down"},
		{"event cycle", with(func(s *line.Script) {
			s.Events = append(s.Events, line.Event{At: time.Second, Cycle: 70 * time.Second})
		}), "event 2 at 1s: cycle 1m10s outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := line.New(line.Config{Scripts: tt.scripts})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestLine_Script_Copied: New copies the scripts, so the caller may reuse its slices.
func TestLine_Script_Copied(t *testing.T) {
	events := []line.Event{{State: line.Running}, {At: time.Second, State: line.Down}}
	l := newLine(t, line.Config{Scripts: []line.Script{{Machine: 1, Cycle: time.Second, IdealCycle: time.Second, Events: events}}})
	events[1].State = line.Idle
	stepTo(t, l, 10)
	if got := l.Snapshot(1).State; got != line.Down {
		t.Errorf("state %v after the caller changed its slice, want down", got)
	}
}
