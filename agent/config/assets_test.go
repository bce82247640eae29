package config

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestParse_Assets pins what testdata/good/assets.yaml (the example of docs/kpi.md) decodes
// to, defaults included: windows, live_interval, counter bits from the tag type, the unit.
func TestParse_Assets(t *testing.T) {
	f, err := Load("testdata/good/assets.yaml", testOptions())
	if err != nil {
		t.Fatal(err)
	}
	seoul, _ := time.LoadLocation("Asia/Seoul")
	want := []Asset{
		{
			Name: "press-1-line",
			State: &AssetState{Device: "press-1", Tag: "state",
				Map: map[int64]string{1: "running", 2: "idle", 3: "blocked", 4: "down", 5: "setup", 6: "maintenance"}},
			Counters:   &Counters{Device: "press-1", Total: "parts_total", Good: "good_total", Reject: "reject_total", Bits: 32},
			IdealCycle: &IdealCycle{Value: 2 * time.Second},
			MicroStop:  10 * time.Second,
			Schedule: &Schedule{Timezone: "Asia/Seoul", Location: seoul, Shifts: []Shift{
				{Name: "A", Start: "06:00", End: "14:00", Breaks: []Break{{"10:00", "10:30"}}, Days: []string{"mon", "tue", "wed", "thu", "fri"}},
				{Name: "C", Start: "22:00", End: "06:00"},
			}, NonWorking: []string{"2026-12-25"}},
			Windows:      []string{"15m", "shift", "day"},
			LiveInterval: 10 * time.Second,
		},
		{
			Name:         "lathe-3-line",
			State:        &AssetState{Device: "lathe-3", Running: "run_bit", Fault: "fault_bit", Setup: "setup_bit"},
			Counters:     &Counters{Device: "lathe-3", Total: "parts", Reject: "scrap", Bits: 16},
			IdealCycle:   &IdealCycle{Device: "lathe-3", Tag: "ideal_cycle_time_ms", Unit: "ms"},
			Windows:      []string{"day"},
			LiveInterval: 10 * time.Second,
		},
	}
	if diff := cmp.Diff(want, f.Assets, fileCmp...); diff != "" {
		t.Errorf("assets (-want +got):\n%s", diff)
	}
	if got := f.Assets[1].State.Bits(); !cmp.Equal(got, [][2]string{{"down", "fault_bit"}, {"setup", "setup_bit"}, {"running", "run_bit"}}) {
		t.Errorf("Bits() = %v, want fault, setup, running in precedence order", got)
	}
	if got := f.Assets[1].IdealCycle.UnitDuration(); got != time.Millisecond {
		t.Errorf("UnitDuration() = %v, want 1ms", got)
	}
}

// TestParse_AssetDefaults: the state map comes from the tag's enum; windows and live_interval
// follow the schedule.
func TestParse_AssetDefaults(t *testing.T) {
	f := mustParse(t, "x.yaml", `
gateway: {id: g, site: s, area: a, line: l}
mqtt: {brokers: ["tcp://b:1883"]}
devices:
  - {name: d, protocol: modbus-tcp, address: "h:502", tags: [{name: st, address: "40001", type: int16, enum: {1: running, 9: down}}, {name: c, address: "40002", type: int32}, {name: g, address: "40004", type: uint16}]}
assets:
  - {name: a, state: {device: d, tag: st}, counters: {device: d, total: c, good: g}, schedule: {shifts: [{name: A, start: "06:00", end: "18:00"}]}}
  - {name: b, state: {device: d, tag: st}, windows: [1h], live_interval: 0s}
`)
	a, b := f.Assets[0], f.Assets[1]
	if !cmp.Equal(a.State.Map, map[int64]string{1: "running", 9: "down"}) {
		t.Errorf("state map %v, want the tag's enum", a.State.Map)
	}
	if a.Counters.Bits != 32 {
		t.Errorf("bits %d, want 32 (the widest counter tag)", a.Counters.Bits)
	}
	if !cmp.Equal(a.Windows, []string{"shift", "day"}) || a.LiveInterval != 10*time.Second {
		t.Errorf("windows %v, live %v; want [shift day] and 10s", a.Windows, a.LiveInterval)
	}
	if a.Schedule.Location != nil || a.Schedule.Timezone != "" {
		t.Errorf("schedule zone %q %v, want none (the gateway's)", a.Schedule.Timezone, a.Schedule.Location)
	}
	if !cmp.Equal(b.Windows, []string{"1h"}) || b.LiveInterval != 0 || b.IdealCycle != nil || b.Counters != nil || b.Schedule != nil {
		t.Errorf("asset b: %+v", b)
	}
}

func TestCheckWindow(t *testing.T) {
	for in, want := range map[string]string{"15m": "15m", "1h": "1h", "90m": "1h30m", "1h30m": "1h30m", "30s": "30s", "24h": "24h", "shift": "shift", "day": "day", "60m": "1h"} {
		if got, msg := checkWindow(in); got != want || msg != "" {
			t.Errorf("checkWindow(%q) = %q, %q; want %q", in, got, msg, want)
		}
	}
	for _, in := range []string{"7m", "0s", "1500ms", "48h", "Shift", ""} {
		if _, msg := checkWindow(in); msg == "" {
			t.Errorf("checkWindow(%q): got no problem", in)
		}
	}
}

// TestDocs_KPIExamples parses every ```yaml block of docs/kpi.md: each is a whole file without
// a problem, so integrators can copy it.
func TestDocs_KPIExamples(t *testing.T) {
	const path = "../../docs/kpi.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) == 0 {
		t.Fatalf("no yaml example in %s", path)
	}
	for i, blk := range blocks {
		if _, err := Parse(path+" example "+strconv.Itoa(i+1), []byte(blk[1]), testOptions()); err != nil {
			t.Errorf("example %d:\n%s\nproblems:\n%v", i+1, blk[1], err)
		}
	}
}
