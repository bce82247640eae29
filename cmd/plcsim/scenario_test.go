package main_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goburrow/modbus"

	"github.com/floorlink/floorlink/simulators/scenario"
)

// holding is what a read of holding registers 0-19 of one unit served, with the real times
// around the request.
type holding struct {
	sent, got                        time.Time
	state                            uint16
	tick, parts, good, reject        uint32
	parts16, cycleMs, idealMs, alarm uint16
}

func readHolding(t *testing.T, c modbus.Client) holding {
	t.Helper()
	h := holding{sent: time.Now()}
	b, err := c.ReadHoldingRegisters(0, 20)
	h.got = time.Now()
	if err != nil {
		t.Fatalf("read holding 0-19: %v", err)
	}
	u16 := func(r int) uint16 { return binary.BigEndian.Uint16(b[2*r:]) }
	u32 := func(r int) uint32 { return binary.BigEndian.Uint32(b[2*r:]) }
	h.state, h.tick, h.parts, h.good, h.reject = u16(0), u32(1), u32(3), u32(5), u32(7)
	h.parts16, h.cycleMs, h.idealMs, h.alarm = u16(9), u16(14), u16(15), u16(16)
	return h
}

// checkClock fails unless h's tick is the shared clock's at some real time during the request,
// allowing plcsim to lag by up to lag (a loaded machine), never to run ahead.
func checkClock(t *testing.T, c scenario.Clock, h holding, lag time.Duration) {
	t.Helper()
	lo, hi := c.Tick(h.sent.Add(-lag)), c.Tick(h.got)
	if uint64(h.tick) < lo || uint64(h.tick) > hi {
		t.Fatalf("served tick %d during a request at %v..%v from the epoch, want %d..%d",
			h.tick, h.sent.Sub(c.Epoch), h.got.Sub(c.Epoch), lo, hi)
	}
}

// TestPlcsim_Scenario runs counter-reset-rollover.yaml at 60x on a clock whose epoch the test
// chose, and reads machine 2 over Modbus TCP until the script ends: every read's tick is the
// clock's, and its state and counters are the file's arithmetic at that tick.
func TestPlcsim_Scenario(t *testing.T) {
	file, err := filepath.Abs(filepath.Join("..", "..", "simulators", "scenarios", "counter-reset-rollover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c := scenario.Clock{
		Start: time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC),
		Epoch: time.Now().Add(2 * time.Second).Round(time.Millisecond),
		Speed: 60, Step: 100 * time.Millisecond,
	}
	p := startPlcsim(t, "--modbus-tcp", "127.0.0.1:0", "--scenario", file, "--speed", "60",
		"--clock-start", c.Start.Format(time.RFC3339), "--clock-epoch", c.Epoch.Format(time.RFC3339Nano))
	mh := modbus.NewTCPClientHandler(p.addr)
	mh.SlaveId = 2
	mh.Timeout = 5 * time.Second
	defer mh.Close()
	mc := modbus.NewClient(mh)

	type span struct{ from, to uint32 } // ticks, inclusive
	seen := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	// A poll every 5 ms is three ticks at 60x: every part of the script gets many reads,
	// without a busy loop on a shared machine.
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for {
		h := readHolding(t, mc)
		checkClock(t, c, h, 250*time.Millisecond)
		fail := func(what string, w holding) {
			t.Helper()
			t.Fatalf("tick %d (%s): got %+v\nwant state %d parts %d good %d reject %d parts16 %d cycle %d ideal %d alarm %d",
				h.tick, what, h, w.state, w.parts, w.good, w.reject, w.parts16, w.cycleMs, w.idealMs, w.alarm)
		}
		check := func(what string, w holding) {
			t.Helper()
			w.parts16 = uint16(w.parts)
			if h.state != w.state || h.parts != w.parts || h.good != w.good || h.reject != w.reject ||
				h.parts16 != w.parts16 || h.cycleMs != w.cycleMs || h.idealMs != w.idealMs || h.alarm != w.alarm {
				fail(what, w)
			}
			seen[what]++
		}
		// Parts since the start (k) at tick t while running at 2 s, and the rejects among them
		// (every 10th): the arithmetic of the file's comment.
		in := func(s span) bool { return h.tick >= s.from && h.tick <= s.to }
		switch tk := h.tick; {
		case in(span{0, 599}): // running from 65,530
			k := tk / 20
			cyc := uint16(2000)
			if k == 0 {
				cyc = 0
			}
			check("first minute", holding{state: 1, parts: 65530 + k, good: 65530 + k - k/10, reject: k / 10, cycleMs: cyc, idealMs: 2000})
		case in(span{600, 899}):
			check("down", holding{state: 4, parts: 65560, good: 65557, reject: 3, cycleMs: 2000, idealMs: 2000, alarm: 420})
		case in(span{900, 1199}):
			k := 30 + (tk-900)/20
			check("before the reset", holding{state: 1, parts: 65530 + k, good: 65530 + k - k/10, reject: k / 10, cycleMs: 2000, idealMs: 2000})
		case in(span{1200, 1799}):
			k := 45 + (tk-1200)/20 // parts since the reset: k - 45
			check("after the reset", holding{state: 1, parts: k - 45, good: k - 45 - (k/10 - 4), reject: k/10 - 4, cycleMs: 2000, idealMs: 2000})
		case in(span{1800, 2399}):
			k := 75 + (tk-1800)/30
			cyc := uint16(3000)
			if k == 75 {
				cyc = 2000
			}
			check("changeover", holding{state: 1, parts: k - 45, good: k - 45 - (k/10 - 4), reject: k/10 - 4, cycleMs: cyc, idealMs: 2500})
		default:
			check("setup", holding{state: 5, parts: 50, good: 45, reject: 5, cycleMs: 3000, idealMs: 2500})
		}
		if seen["setup"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the script did not reach its end (tick 2400) within 30 s; last tick %d", h.tick)
		}
		<-poll.C
	}
	t.Logf("reads per part of the script: %v", seen)
	for _, what := range []string{"first minute", "down", "before the reset", "after the reset", "changeover"} {
		if seen[what] == 0 {
			t.Errorf("no read in the %q part of the script; reads: %v", what, seen)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if !strings.Contains(p.stderr.String(), "clock_epoch="+c.Epoch.Format(time.RFC3339Nano)) {
		t.Errorf("stderr lacks the clock epoch:\n%s", p.stderr)
	}
}

// TestPlcsim_ClockEpochPast: an epoch an hour ago at speed 1 serves tick 36,000 at once (the
// line catches up rather than starting from 0), and keeps to the clock.
func TestPlcsim_ClockEpochPast(t *testing.T) {
	c := scenario.Clock{Epoch: time.Now().Add(-time.Hour), Speed: 1, Step: 100 * time.Millisecond}
	p := startPlcsim(t, "--modbus-tcp", "127.0.0.1:0", "--clock-epoch", c.Epoch.Format(time.RFC3339Nano))
	mh := modbus.NewTCPClientHandler(p.addr)
	mh.SlaveId = 1
	mh.Timeout = 5 * time.Second
	defer mh.Close()
	mc := modbus.NewClient(mh)
	for range 5 {
		h := readHolding(t, mc)
		if h.tick < 36000 {
			t.Fatalf("tick %d an hour after the epoch, want at least 36000", h.tick)
		}
		checkClock(t, c, h, 250*time.Millisecond)
	}
}

func TestPlcsim_ScenarioBadFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := "clock_start: 2026-03-02T06:00:00+09:00\nmachines:\n  - {machine: 1, cycle: 2s, ideal_cycle: 2s, timeline: [{at: 0s, state: running}]}\n"
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad clock start", []string{"--clock-start", "06:00"}, 2, "invalid value \"06:00\" for flag -clock-start"},
		{"bad clock epoch", []string{"--clock-epoch", "now"}, 2, "invalid value \"now\" for flag -clock-epoch"},
		{"missing file", []string{"--scenario", filepath.Join(dir, "none.yaml")}, 1, "none.yaml: no such file"},
		{"bad file", []string{"--scenario", write("bad.yaml", "machines:\n  - machine: 1\n    cycel: 2s\n")}, 1, "bad.yaml:3:5: machines[0].cycel: unknown field"},
		{"clock start differs", []string{"--scenario", write("good.yaml", good), "--clock-start", "2026-03-02T07:00:00+09:00"}, 1, "differs from clock_start 2026-03-02T06:00:00+09:00"},
		{"machine outside", []string{"--scenario", write("m4.yaml", strings.Replace(good, "machine: 1", "machine: 4", 1))}, 1, "machine 4 outside 1..3"},
		{"offset off step", []string{"--step", "1s", "--scenario", write("off.yaml", strings.Replace(good, "}]}", "}, {at: 1500ms, state: idle}]}", 1))}, 1, "not a multiple of the step 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"--modbus-tcp", "127.0.0.1:0"}, tt.args...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.Stdout = io.Discard
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit code %d, stderr:\n%s\nwant code %d and %q", code, stderr.String(), tt.code, tt.want)
			}
		})
	}
}
