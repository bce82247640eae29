package line_test

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/simulators/line"
)

func newLine(t testing.TB, cfg line.Config) *line.Line {
	t.Helper()
	l, err := line.New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return l
}

func snapshots(l *line.Line) []line.Machine {
	out := make([]line.Machine, l.Machines())
	for k := range out {
		out[k] = l.Snapshot(k + 1)
	}
	return out
}

func TestLine_Step_Deterministic(t *testing.T) {
	const ticks = 50_000
	cfg := line.Config{Seed: 42, Machines: 4}
	a, b := newLine(t, cfg), newLine(t, cfg)
	for tick := range ticks {
		if sa, sb := snapshots(a), snapshots(b); !slices.Equal(sa, sb) {
			t.Fatalf("tick %d: same seed, snapshots differ (-a +b):\n%s", tick, cmp.Diff(sa, sb))
		}
		a.Step()
		// Interleave other work on b's side: pacing must not matter, only the number of Steps.
		_ = snapshots(b)
		b.Step()
	}
	if a.Tick() != ticks || b.Tick() != ticks {
		t.Fatalf("got ticks %d and %d, want %d", a.Tick(), b.Tick(), ticks)
	}
}

func TestLine_Step_SeedMatters(t *testing.T) {
	a := newLine(t, line.Config{Seed: 1})
	b := newLine(t, line.Config{Seed: 2})
	for range 1000 {
		if !slices.Equal(snapshots(a), snapshots(b)) {
			return
		}
		a.Step()
		b.Step()
	}
	t.Fatal("seeds 1 and 2 gave equal snapshots for 1000 ticks")
}

func TestLine_New_ConfigRoundTrip(t *testing.T) {
	a := newLine(t, line.Config{Seed: 7, LotSize: -1, MTBF: -1, RejectRate: -1})
	b := newLine(t, a.Config())
	for tick := range 5000 {
		if sa, sb := snapshots(a), snapshots(b); !slices.Equal(sa, sb) {
			t.Fatalf("tick %d: New(l.Config()) differs from l (-a +b):\n%s", tick, cmp.Diff(sa, sb))
		}
		a.Step()
		b.Step()
	}
}

func TestLine_New_Defaults(t *testing.T) {
	l := newLine(t, line.Config{})
	got := l.Config()
	want := line.Config{
		Machines: 3, Step: 100 * time.Millisecond, BufferSize: 4, MTBF: 20 * time.Minute,
		MTTR: 90 * time.Second, LotSize: 300, SetupTime: 3 * time.Minute,
		MaintenanceInterval: time.Hour, MaintenanceTime: 10 * time.Minute, RejectRate: 0.02,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	m1, m2, m3 := l.Snapshot(1), l.Snapshot(2), l.Snapshot(3)
	if m1.State != line.Running || m2.State != line.Idle || m3.State != line.Idle {
		t.Errorf("initial states %v %v %v, want running idle idle", m1.State, m2.State, m3.State)
	}
	ideal := []uint16{m1.IdealCycleTimeMs, m2.IdealCycleTimeMs, m3.IdealCycleTimeMs}
	if diff := cmp.Diff([]uint16{2000, 2500, 1800}, ideal); diff != "" {
		t.Errorf("ideal cycle times (-want +got):\n%s", diff)
	}
}

func TestLine_New_Invalid(t *testing.T) {
	tests := []struct {
		name string
		cfg  line.Config
		want string
	}{
		{"machines too many", line.Config{Machines: 248}, "machines 248"},
		{"machines negative", line.Config{Machines: -1}, "machines -1"},
		{"step too long", line.Config{Step: 2 * time.Second}, "step 2s"},
		{"step too short", line.Config{Step: time.Microsecond}, "step 1µs"},
		{"buffer negative", line.Config{BufferSize: -1}, "buffer size -1"},
		{"mttr negative", line.Config{MTTR: -time.Second}, "mttr -1s"},
		{"setup negative", line.Config{SetupTime: -time.Second}, "setup time -1s"},
		{"maintenance negative", line.Config{MaintenanceTime: -time.Second}, "maintenance time -1s"},
		{"reject rate one", line.Config{RejectRate: 1}, "reject rate 1"},
		{"reject rate NaN", line.Config{RejectRate: math.NaN()}, "reject rate NaN"},
		{"extra values negative", line.Config{ExtraValues: -1}, "extra values -1"},
		{"extra values too many", line.Config{ExtraValues: line.MaxExtraValues + 1}, "extra values 65437"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := line.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// Every problem at once, not just the first.
	_, err := line.New(line.Config{Machines: 300, Step: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "machines") || !strings.Contains(err.Error(), "step") {
		t.Errorf("got %v, want both the machines and the step problem", err)
	}
}

func TestMachine_Extra(t *testing.T) {
	f := func(tick uint32, i int, want uint16) {
		t.Helper()
		if got := (line.Machine{Tick: tick}).Extra(i); got != want {
			t.Errorf("Extra(%d) at tick %d = %#04x, want %#04x", i, tick, got, want)
		}
	}
	f(0, 0, 0x0000)
	f(263, 3, 0x0307)
	f(255, 255, 0xffff)
	f(256, 256, 0x0000)
	f(0x1234_5678, 0x1ff, 0xff78)
	f(math.MaxUint32, 499, 0xf3ff)
}

// TestLine_ExtraValues: extra values change nothing else (they draw nothing from the random
// streams), and the largest block is accepted.
func TestLine_ExtraValues(t *testing.T) {
	a := newLine(t, line.Config{Seed: 11})
	b := newLine(t, line.Config{Seed: 11, ExtraValues: 500})
	if got := b.Config().ExtraValues; got != 500 {
		t.Errorf("Config().ExtraValues = %d, want 500", got)
	}
	for tick := range 5000 {
		if sa, sb := snapshots(a), snapshots(b); !slices.Equal(sa, sb) {
			t.Fatalf("tick %d: extra values changed the snapshots (-none +500):\n%s", tick, cmp.Diff(sa, sb))
		}
		a.Step()
		b.Step()
	}
	newLine(t, line.Config{ExtraValues: line.MaxExtraValues})
}

func TestState_String(t *testing.T) {
	want := map[line.State]string{
		line.Running: "running", line.Idle: "idle", line.Blocked: "blocked", line.Down: "down",
		line.Setup: "setup", line.Maintenance: "maintenance", 0: "state(0)", 7: "state(7)",
	}
	for s, w := range want {
		if got := s.String(); got != w {
			t.Errorf("State(%d).String() = %q, want %q", uint16(s), got, w)
		}
	}
}

// TestLine_Step_Invariants runs the default line for 11 simulated hours and checks, tick by tick,
// what a PLC programmer would assert on the real line.
func TestLine_Step_Invariants(t *testing.T) {
	ticks := 400_000 // 11 h simulated
	if testing.Short() {
		ticks = 150_000
	}
	cfg := line.Config{Seed: 3}
	l := newLine(t, cfg)
	cfg = l.Config()
	n := l.Machines()
	last := l.Tick() // tick of prev
	prev := snapshots(l)
	seen := make([]map[line.State]int, n)
	for k := range seen {
		seen[k] = map[line.State]int{}
	}
	minSpeed, maxSpeed := make([]int32, n), make([]int32, n)
	for range ticks {
		l.Step()
		if l.Tick() != last+1 {
			t.Fatalf("Tick() went from %d to %d", last, l.Tick())
		}
		last = l.Tick()
		cur := snapshots(l)
		for k, m := range cur {
			p := prev[k]
			num := k + 1
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("tick %d machine %d: "+format+"\nprev %+v\ncur  %+v",
					append(append([]any{last, num}, args...), p, m)...)
			}
			seen[k][m.State]++
			minSpeed[k], maxSpeed[k] = min(minSpeed[k], m.SpindleSpeed), max(maxSpeed[k], m.SpindleSpeed)
			if m.Tick != uint32(last) {
				fail("Tick %d, want %d", m.Tick, uint32(last))
			}
			if m.State < line.Running || m.State > line.Maintenance {
				fail("invalid state %d", m.State)
			}
			dp, dg, dr := m.PartsTotal-p.PartsTotal, m.GoodTotal-p.GoodTotal, m.RejectTotal-p.RejectTotal
			if dp > 1 || dg > 1 || dr > 1 || dg+dr != dp {
				fail("counter steps parts %d good %d reject %d", dp, dg, dr)
			}
			if m.GoodTotal+m.RejectTotal != m.PartsTotal {
				fail("good %d + reject %d != parts %d", m.GoodTotal, m.RejectTotal, m.PartsTotal)
			}
			if dp == 1 {
				if m.State != line.Running {
					fail("part completed in state %v", m.State)
				}
				ct := time.Duration(m.CycleTimeMs) * time.Millisecond
				ideal := time.Duration(m.IdealCycleTimeMs) * time.Millisecond
				if ct < ideal || ct > ideal*5/4+cfg.Step {
					fail("cycle time %v outside ideal %v .. +25%%+step", ct, ideal)
				}
			} else if m.CycleTimeMs != p.CycleTimeMs {
				fail("cycle time changed without a completed part")
			}
			if (m.AlarmCode != 0) != (m.State == line.Down) {
				fail("alarm %d in state %v", m.AlarmCode, m.State)
			}
			if m.Queue < 0 || m.Queue > cfg.BufferSize {
				fail("queue %d outside 0..%d", m.Queue, cfg.BufferSize)
			}
			if num == 1 && m.State == line.Idle {
				fail("machine 1 starved, but its supply is unlimited")
			}
			if m.State == line.Idle && m.Queue != 0 {
				fail("idle with %d parts waiting", m.Queue)
			}
			if num == n && m.State == line.Blocked {
				fail("last machine blocked, but its sink is unlimited")
			}
			if m.State == line.Blocked && cur[k+1].Queue != cfg.BufferSize {
				fail("blocked while machine %d's queue holds %d of %d", num+1, cur[k+1].Queue, cfg.BufferSize)
			}
			if m.Pressure < 0 || math.IsNaN(float64(m.Pressure)) || m.Temperature < 0 || m.Temperature > 100 {
				fail("process values out of range")
			}
			if num > 1 {
				// Parts are conserved: every good part of the machine before is waiting in the
				// buffer, in work here (at most one), or still on that machine (blocked, one).
				up := cur[k-1]
				inFlight := int64(up.GoodTotal) - int64(m.PartsTotal) - int64(m.Queue)
				if inFlight < 0 || inFlight > 2 {
					fail("machine %d made %d good parts, this one %d with %d queued", num-1, up.GoodTotal, m.PartsTotal, m.Queue)
				}
			}
		}
		prev = cur
	}
	for k := range n {
		for _, s := range []line.State{line.Running, line.Down, line.Setup, line.Maintenance} {
			if seen[k][s] == 0 {
				t.Errorf("machine %d never %v in %d ticks: %v", k+1, s, ticks, seen[k])
			}
		}
		if prev[k].RejectTotal == 0 || prev[k].GoodTotal == 0 {
			t.Errorf("machine %d: good %d reject %d, want both > 0", k+1, prev[k].GoodTotal, prev[k].RejectTotal)
		}
	}
	// Machine 2 (2.5 s) is the bottleneck: machine 1 (2.0 s) waits for it and machine 3 (1.8 s)
	// starves behind it.
	if seen[0][line.Blocked] < ticks/50 {
		t.Errorf("machine 1 blocked %d of %d ticks, want it blocked often", seen[0][line.Blocked], ticks)
	}
	if seen[2][line.Idle] < ticks/50 {
		t.Errorf("machine 3 idle %d of %d ticks, want it starved often", seen[2][line.Idle], ticks)
	}
	if maxSpeed[0] < 1400 || minSpeed[1] > -1900 {
		t.Errorf("spindle ranges %d..%d and %d..%d, want machine 1 forward and 2 in reverse",
			minSpeed[0], maxSpeed[0], minSpeed[1], maxSpeed[1])
	}
	// Throughput cannot exceed the bottleneck's rate.
	simulated := time.Duration(ticks) * cfg.Step
	if got, limit := prev[n-1].PartsTotal, uint32(simulated/(2500*time.Millisecond)); got > limit || got < limit/3 {
		t.Errorf("last machine made %d parts in %v, want between %d and %d", got, simulated, limit/3, limit)
	}
}

func TestLine_Step_CounterRollover(t *testing.T) {
	tests := []struct {
		name    string
		initial uint32
	}{
		{"16-bit", math.MaxUint16 - 3},
		{"32-bit", math.MaxUint32 - 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLine(t, line.Config{InitialParts: tt.initial, MTBF: -1, LotSize: -1, MaintenanceInterval: -1})
			if got := l.Snapshot(1).PartsTotal; got != tt.initial {
				t.Fatalf("initial parts %d, want %d", got, tt.initial)
			}
			// 10 parts at about 2 s each: well within 1000 ticks of 100 ms.
			for range 1000 {
				l.Step()
				m := l.Snapshot(1)
				if m.PartsTotal-tt.initial >= 10 {
					if uint16(m.PartsTotal) >= uint16(tt.initial) {
						t.Fatalf("parts %d: low 16 bits did not wrap", m.PartsTotal)
					}
					if m.GoodTotal+m.RejectTotal != m.PartsTotal {
						t.Fatalf("good %d + reject %d != parts %d after the wrap", m.GoodTotal, m.RejectTotal, m.PartsTotal)
					}
					return
				}
			}
			t.Fatalf("parts %d after 1000 ticks, want 10 more than %d", l.Snapshot(1).PartsTotal, tt.initial)
		})
	}
}

func TestLine_Step_TickWraps(t *testing.T) {
	l := newLine(t, line.Config{InitialTick: math.MaxUint32 - 1})
	want := []uint32{math.MaxUint32 - 1, math.MaxUint32, 0, 1}
	for i, w := range want {
		if i > 0 {
			l.Step()
		}
		for k := 1; k <= l.Machines(); k++ {
			if got := l.Snapshot(k).Tick; got != w {
				t.Fatalf("step %d machine %d: tick %d, want %d", i, k, got, w)
			}
		}
	}
	if got := l.Tick(); got != math.MaxUint32+2 {
		t.Errorf("Tick() = %d, want %d", got, uint64(math.MaxUint32)+2)
	}
}

func TestLine_Step_DisabledFeatures(t *testing.T) {
	l := newLine(t, line.Config{Seed: 9, MTBF: -1, LotSize: -1, MaintenanceInterval: -1, RejectRate: -1})
	for range 100_000 {
		l.Step()
		for k := 1; k <= l.Machines(); k++ {
			switch m := l.Snapshot(k); m.State {
			case line.Down, line.Setup, line.Maintenance:
				t.Fatalf("machine %d %v with failures, setups and maintenance disabled", k, m.State)
			default:
				if m.RejectTotal != 0 {
					t.Fatalf("machine %d rejected %d parts with rejects disabled", k, m.RejectTotal)
				}
			}
		}
	}
}

func BenchmarkLine_Step(b *testing.B) {
	for _, n := range []int{3, 30} {
		b.Run("machines="+strconv.Itoa(n), func(b *testing.B) {
			l := newLine(b, line.Config{Machines: n})
			b.ReportAllocs()
			for b.Loop() {
				l.Step()
			}
		})
	}
}
