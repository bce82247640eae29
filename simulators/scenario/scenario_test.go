package scenario_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/simulators/line"
	"github.com/floorlink/floorlink/simulators/scenario"
)

// load builds a three-machine line with the given step over a file of simulators/scenarios.
func load(t *testing.T, name string, step time.Duration) (*scenario.Scenario, *line.Line) {
	t.Helper()
	sc, err := scenario.Load(filepath.Join("..", "scenarios", name))
	if err != nil {
		t.Fatal(err)
	}
	l, err := line.New(line.Config{Seed: 1, Step: step, Scripts: sc.Scripts})
	if err != nil {
		t.Fatal(err)
	}
	return sc, l
}

// TestShiftOEE0608 runs shift-oee-0608.yaml (no sockets) and checks what machine 1 serves
// against the arithmetic written in the file: the time in each state, the counters and alarm
// codes at chosen ticks, and A, P, Q and OEE computed from the served values alone.
func TestShiftOEE0608(t *testing.T) {
	for _, step := range []time.Duration{100 * time.Millisecond, time.Second} {
		t.Run("step="+step.String(), func(t *testing.T) {
			sc, l := load(t, "shift-oee-0608.yaml", step)
			seoul, err := time.LoadLocation("Asia/Seoul")
			if err != nil {
				t.Fatal(err)
			}
			if want := time.Date(2026, 3, 2, 6, 0, 0, 0, seoul); !sc.ClockStart.Equal(want) {
				t.Errorf("clock_start %v, want %v", sc.ClockStart, want)
			}
			tickOf := func(clock string) uint64 { // "09:15" → its tick
				c, err := time.Parse("15:04", clock)
				if err != nil {
					t.Fatal(err)
				}
				return uint64((time.Duration(c.Hour()-6)*time.Hour + time.Duration(c.Minute())*time.Minute) / step)
			}
			type want struct {
				state               line.State
				parts, good, reject uint32
				alarm               uint16
			}
			// Parts at a clock time are floor(running time before it / 2.5 s), rejects
			// floor(parts / 20).
			checks := map[uint64]want{
				0:                                        {line.Running, 0, 0, 0, 0},
				uint64(5 * time.Second / step):           {line.Running, 2, 2, 0, 0},
				uint64(50 * time.Second / step):          {line.Running, 20, 19, 1, 0},
				tickOf("07:00"):                          {line.Down, 1440, 1368, 72, 101},
				tickOf("07:30") - 1:                      {line.Down, 1440, 1368, 72, 101},
				tickOf("07:30"):                          {line.Running, 1440, 1368, 72, 0},
				tickOf("09:00"):                          {line.Idle, 3600, 3420, 180, 0}, // 3,600 + 5,400 s
				tickOf("10:00"):                          {line.Down, 4680, 4446, 234, 310},
				tickOf("11:30"):                          {line.Idle, 6264, 5951, 313, 0}, // + 3,960 s
				tickOf("12:30"):                          {line.Down, 6984, 6635, 349, 203},
				tickOf("13:00"):                          {line.Idle, 7272, 6909, 363, 0},
				tickOf("13:30"):                          {line.Down, 7632, 7251, 381, 511},
				tickOf("14:00") - 1:                      {line.Running, 8063, 7660, 403, 0},
				tickOf("14:00"):                          {line.Idle, 8064, 7661, 403, 0},
				tickOf("14:00") + uint64(time.Hour/step): {line.Idle, 8064, 7661, 403, 0},
			}
			end := tickOf("14:00")
			var ticks [line.Maintenance + 1]uint64 // ticks in each state within the shift
			var last uint64
			for tk := uint64(0); tk <= end+uint64(time.Hour/step); tk++ {
				if tk > 0 {
					l.Step()
				}
				m := l.Snapshot(1)
				if w, ok := checks[tk]; ok {
					got := want{m.State, m.PartsTotal, m.GoodTotal, m.RejectTotal, m.AlarmCode}
					if got != w {
						t.Errorf("tick %d (%v): got %+v, want %+v", tk, sc.ClockStart.Add(time.Duration(tk)*step).In(seoul).Format("15:04:05"), got, w)
					}
					last = tk
				}
				if m.IdealCycleTimeMs != 2000 || (m.PartsTotal > 0 && m.CycleTimeMs != 2500) {
					t.Fatalf("tick %d: cycle %d ms, ideal %d ms, want 2500 and 2000", tk, m.CycleTimeMs, m.IdealCycleTimeMs)
				}
				if tk < end {
					ticks[m.State]++ // the state served at tk holds for [tk, tk+1)
				}
			}
			if last != end+uint64(time.Hour/step) {
				t.Fatalf("checks stopped at tick %d", last)
			}
			sec := func(s line.State) float64 { return float64(time.Duration(ticks[s]) * step / time.Second) }
			if r, d, i := sec(line.Running), sec(line.Down), sec(line.Idle); r != 20160 || d != 5040 || i != 3600 {
				t.Errorf("running %v s, down %v s, idle %v s in the shift, want 20160, 5040 and 3600", r, d, i)
			}
			// The KPIs from the served values, as the agent should compute them.
			m := l.Snapshot(1)
			apt, pbt := sec(line.Running), sec(line.Running)+sec(line.Down)
			a := apt / pbt
			p := float64(m.IdealCycleTimeMs) / 1000 * float64(m.PartsTotal) / apt
			q := float64(m.GoodTotal) / float64(m.PartsTotal)
			for _, c := range []struct {
				name      string
				got, want float64
			}{
				{"availability", a, 0.8}, {"performance", p, 0.8}, {"quality", q, 7661.0 / 8064},
				{"oee", a * p * q, 0.608015873015873},
			} {
				if math.Abs(c.got-c.want) > 1e-9 {
					t.Errorf("%s %v, want %v", c.name, c.got, c.want)
				}
			}
		})
	}
}

// TestCounterResetRollover runs counter-reset-rollover.yaml against the arithmetic in the file,
// including the served 16-bit counter (parts mod 65536).
func TestCounterResetRollover(t *testing.T) {
	_, l := load(t, "counter-reset-rollover.yaml", 100*time.Millisecond)
	type want struct {
		state                   line.State
		parts, good, reject     uint32
		parts16                 uint16
		cycleMs, idealMs, alarm uint16
	}
	checks := []struct {
		sec float64
		w   want
	}{
		{0, want{line.Running, 65530, 65530, 0, 65530, 0, 2000, 0}},
		{11.9, want{line.Running, 65535, 65535, 0, 65535, 2000, 2000, 0}},
		{12, want{line.Running, 65536, 65536, 0, 0, 2000, 2000, 0}}, // the 16-bit rollover
		{60, want{line.Down, 65560, 65557, 3, 24, 2000, 2000, 420}},
		{119.9, want{line.Running, 65574, 65570, 4, 38, 2000, 2000, 0}},
		{120, want{line.Running, 0, 0, 0, 0, 2000, 2000, 0}}, // part 45, then the reset
		{180, want{line.Running, 30, 27, 3, 30, 2000, 2500, 0}},
		{183, want{line.Running, 31, 28, 3, 31, 3000, 2500, 0}},
		{240, want{line.Setup, 50, 45, 5, 50, 3000, 2500, 0}},
		{3600, want{line.Setup, 50, 45, 5, 50, 3000, 2500, 0}},
	}
	for _, c := range checks {
		tk := uint64(math.Round(c.sec * 10))
		for l.Tick() < tk {
			l.Step()
		}
		m := l.Snapshot(2)
		got := want{m.State, m.PartsTotal, m.GoodTotal, m.RejectTotal, uint16(m.PartsTotal), m.CycleTimeMs, m.IdealCycleTimeMs, m.AlarmCode}
		if got != c.w {
			t.Errorf("at %v s:\ngot  %+v\nwant %+v", c.sec, got, c.w)
		}
	}
}

// TestParse_Errors: every bad file gives file:line:col, the field and what is wrong.
func TestParse_Errors(t *testing.T) {
	const head = "machines:\n  - machine: 1\n    cycle: 2s\n    ideal_cycle: 2s\n"
	const run0 = "    timeline:\n      - {at: 0s, state: running}\n"
	tests := []struct {
		name, file string
		want       []string
	}{
		{"unknown top key", "machine: 1\n", []string{`f.yaml:1:1: machine: unknown field "machine"`}},
		{"unknown machine key", head + "    nope: 1\n" + run0, []string{`f.yaml:5:5: machines[0].nope: unknown field "nope"`}},
		{"unknown event key", head + run0 + "      - {at: 1s, sate: idle}\n", []string{`f.yaml:7:18: machines[0].timeline[1].sate: unknown field "sate"`}},
		{"machine not a number", "machines:\n  - machine: one\n", []string{"f.yaml:2:14: machines[0].machine: cannot unmarshal string into int"}},
		{"start parts negative", head + "    start_parts: -1\n" + run0, []string{"f.yaml:5:18: machines[0].start_parts: cannot unmarshal -1 into uint32: out of range"}},
		{"alarm too big", head + "    timeline:\n      - {at: 0s, state: down, alarm: 70000}\n", []string{"f.yaml:6:38: machines[0].timeline[0].alarm: cannot unmarshal 70000 into uint16: out of range"}},
		{"duplicate key", head + "    cycle: 3s\n" + run0, []string{`f.yaml:5:5: mapping key "cycle" already defined at [3:5]`}},
		{"syntax", "machines: [1,\n", []string{"f.yaml:1:11: sequence end token ']' not found"}},
		{"empty", "# nothing\n", []string{"f.yaml: empty: want a mapping with machines"}},
		{"two documents", head + run0 + "---\nmachines: []\n", []string{"f.yaml:7:1: a second YAML document"}},
		{"alias", "m: &m 1\nmachines:\n  - machine: *m\n", []string{
			"f.yaml:1:4: anchors, aliases and tags are not supported",
			"f.yaml:3:14: anchors, aliases and tags are not supported",
		}},
		{"not a mapping", "- 1\n", []string{"f.yaml:1:1: want a mapping with machines"}},
		{"no machines", "clock_start: 2026-03-02T06:00:00+09:00\n", []string{"f.yaml:1:1: machines: missing or empty"}},
		{"bad clock start", "clock_start: 06:00\n" + head + run0, []string{`f.yaml:1:14: clock_start: "06:00" is not an RFC 3339 time`}},
		{"values", "machines:\n  - machine: 0\n    cycle: 70s\n    ideal_cycle: 2.5\n    reject_every: -2\n    reject_rate: 1\n" +
			"    timeline:\n      - {at: 1s, state: runnin, alarm: 101}\n      - {at: 1s, state: down}\n      - {at: 2s}\n      - {at: -1s, reset: true}\n      - {at: 3.0005s, cycle: 0s}\n  - machine: 300\n",
			[]string{
				"f.yaml:2:14: machines[0].machine: 0 outside 1..247",
				"f.yaml:3:12: machines[0].cycle: 1m10s outside 1ms..1m5.535s",
				`f.yaml:4:18: machines[0].ideal_cycle: "2.5" is not a duration such as 2.5s or 1h30m`,
				"f.yaml:5:19: machines[0].reject_every: -2 is negative",
				"f.yaml:6:18: machines[0].reject_rate: 1 outside 0..1 (1 excluded)",
				"f.yaml:8:14: machines[0].timeline[0].at: the first event must be at 0s",
				`f.yaml:8:25: machines[0].timeline[0].state: "runnin" is not running, idle`,
				"f.yaml:8:40: machines[0].timeline[0].alarm: an alarm code needs state: down in the same event",
				"f.yaml:9:14: machines[0].timeline[1].at: 1s is not after the event before it (1s)",
				"f.yaml:10:9: machines[0].timeline[2]: the event changes nothing",
				"f.yaml:11:14: machines[0].timeline[3].at: -1s is negative",
				"f.yaml:12:14: machines[0].timeline[4].at: 3.0005s is not whole milliseconds",
				"f.yaml:12:30: machines[0].timeline[4].cycle: 0s outside 1ms..1m5.535s",
				"f.yaml:13:14: machines[1].machine: 300 outside 1..247",
				"f.yaml:13:5: machines[1]: cycle: missing",
				"f.yaml:13:5: machines[1]: ideal_cycle: missing",
				"f.yaml:13:5: machines[1]: timeline: missing or empty",
			}},
		{"first event", head + "    timeline:\n      - {at: 0s, reset: true}\n",
			[]string{"f.yaml:6:9: machines[0].timeline[0]: state: missing: the first event sets the state"}},
		{"twice", head + run0 + "  - machine: 1\n    cycle: 2s\n    ideal_cycle: 2s\n" + run0,
			[]string{"f.yaml:7:14: machines[1].machine: machine 1 is scripted already by machines[0]"}},
		{"missing at", head + "    timeline:\n      - state: running\n", []string{"f.yaml:6:9: machines[0].timeline[0]: at: missing"}},
		{"too large", "#" + strings.Repeat("x", scenario.MaxSize), []string{"f.yaml: larger than 1048576 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := scenario.Parse("f.yaml", []byte(tt.file))
			if err == nil {
				t.Fatalf("parsed %+v, want errors", sc)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("%d errors, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if i >= len(lines) || !strings.HasPrefix(lines[i], w) {
					t.Errorf("error %d:\ngot  %q\nwant %q...", i, lines[min(i, len(lines)-1)], w)
				}
			}
			var e *scenario.Error
			if !errors.As(err, &e) || e.File != "f.yaml" {
				t.Errorf("error %v is not a *scenario.Error of f.yaml", err)
			}
		})
	}
}

// TestParse_Full: every key, in block and flow style, reaches the scripts.
func TestParse_Full(t *testing.T) {
	sc, err := scenario.Parse("f.yaml", []byte(`
clock_start: 2026-03-02T06:00:00.5+09:00
machines:
  - machine: 3
    cycle: 2.5s
    ideal_cycle: 2s
    reject_every: 20
    reject_rate: 0.01
    start_parts: 65500
    timeline:
      - at: 0s
        state: running
      - {at: 1h, state: down, alarm: 101}
      - {at: 1h30m, state: running, cycle: 3s, ideal_cycle: 2.4s}
      - {at: 2h, reset: true}
      - {at: 2h0m0.1s, state: maintenance}
  - machine: 1
    cycle: 1s
    ideal_cycle: 1s
    timeline: [{at: 0s, state: blocked}, {at: 1ms, state: idle}, {at: 2ms, state: setup}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 2, 6, 0, 0, 5e8, time.FixedZone("", 9*3600)); !sc.ClockStart.Equal(want) {
		t.Errorf("clock start %v, want %v", sc.ClockStart, want)
	}
	want := []line.Script{
		{Machine: 3, Cycle: 2500 * time.Millisecond, IdealCycle: 2 * time.Second, RejectEvery: 20, RejectRate: 0.01, StartParts: 65500,
			Events: []line.Event{
				{At: 0, State: line.Running},
				{At: time.Hour, State: line.Down, Alarm: 101},
				{At: 90 * time.Minute, State: line.Running, Cycle: 3 * time.Second, IdealCycle: 2400 * time.Millisecond},
				{At: 2 * time.Hour, Reset: true},
				{At: 2*time.Hour + 100*time.Millisecond, State: line.Maintenance},
			}},
		{Machine: 1, Cycle: time.Second, IdealCycle: time.Second,
			Events: []line.Event{{State: line.Blocked}, {At: time.Millisecond, State: line.Idle}, {At: 2 * time.Millisecond, State: line.Setup}}},
	}
	if d := cmp.Diff(want, sc.Scripts); d != "" {
		t.Errorf("scripts (-want +got):\n%s", d)
	}
}

// TestLoad_Files: every file in simulators/scenarios loads and builds a line at the default step.
func TestLoad_Files(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "scenarios", "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("scenario files %v (%v), want at least 2", files, err)
	}
	for _, f := range files {
		sc, err := scenario.Load(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if _, err := line.New(line.Config{Scripts: sc.Scripts}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := scenario.Load(filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want os.ErrNotExist", err)
	}
}
