package e2e_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/cmd/floorlink/floorlinktest"
	"github.com/floorlink/floorlink/simulators/simtest"
)

// kpiStack is plcsim, a broker, a subscriber and a config of one machine with its asset, run on
// a simulated clock.
type kpiStack struct {
	sim     *simtest.Sim
	sub     *mqtttest.Subscriber
	cfgPath string
	clock   []string // the run flags of the simulated clock
	start   time.Time
	epoch   time.Time
	speed   float64
}

func startKPIStack(t *testing.T, speed float64) *kpiStack {
	t.Helper()
	dir := t.TempDir()
	s := &kpiStack{speed: speed, start: time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC), epoch: time.Now()}
	s.sim = simtest.Start(t, simtest.Options{Line: simtest.LineConfig{Seed: 42}, Speed: speed})
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	s.sub = mqtttest.Subscribe(t, broker.URL(), "floorlink/#")
	s.cfgPath = filepath.Join(dir, "floorlink.yaml")
	cfg := fmt.Sprintf(`gateway: {id: gw-e2e, site: test-site, area: body, line: line-1, data_dir: %q}
mqtt:
  brokers: [%q]
  reconnect_min: 100ms
  reconnect_max: 500ms
  shutdown_grace: 2s
http: {listen: ""}
buffer: {commit_interval: 50ms}
devices:
  - name: m1
    protocol: modbus-tcp
    address: %q
    unit_id: 1
    poll_interval: 20ms
    timeout: 1s
    tags:
      - {name: state, address: "40001", type: uint16}
      - {name: parts_total, address: "40004", type: uint32}
      - {name: good_total, address: "40006", type: uint32}
      - {name: reject_total, address: "40008", type: uint32}
assets:
  - name: press
    # max_age is simulated time (a real second here): the default, from the poll interval and
    # timeout, is real time, too short on a fast clock.
    state: {device: m1, tag: state, map: {1: running, 2: idle, 3: blocked, 4: down, 5: setup, 6: maintenance}, max_age: 60s}
    counters: {device: m1, total: parts_total, good: good_total, reject: reject_total, bits: 32}
    ideal_cycle: 2s
    windows: [1m]
`, filepath.Join(dir, "data"), broker.URL(), s.sim.ModbusAddr())
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.clock = []string{"--clock-start", s.start.Format(time.RFC3339Nano), "--clock-epoch", s.epoch.Format(time.RFC3339Nano),
		"--clock-speed", fmt.Sprint(speed)}
	return s
}

func (s *kpiStack) startAgent(t *testing.T) *floorlinktest.Agent {
	return floorlinktest.StartArgs(t, agentBin, append([]string{"run", "-c", s.cfgPath, "--log-level", "debug"}, s.clock...))
}

// simNow is the simulated time now.
func (s *kpiStack) simNow() time.Time {
	return s.start.Add(time.Duration(float64(time.Since(s.epoch)) * s.speed))
}

// kpiWindows returns the distinct KPI records (by seq) in window order, failing on two records
// of one window.
func kpiWindows(t *testing.T, recs []msg) []msg {
	t.Helper()
	bySeq := map[uint64]msg{}
	for _, r := range recs {
		if r.Kind == "kpi" {
			bySeq[r.Seq] = r
		}
	}
	var out []msg
	byStart := map[string]uint64{}
	for _, r := range bySeq {
		var start string
		if err := jsonString(r.Values["window_start"], &start); err != nil {
			t.Fatal(err)
		}
		if seq, dup := byStart[start]; dup {
			t.Fatalf("window %s published twice, as seq %d and %d", start, seq, r.Seq)
		}
		byStart[start] = r.Seq
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TS.Before(out[j].TS) })
	return out
}

// TestKPI_RestartMidWindow kills the agent (SIGKILL) in the middle of a KPI window and starts it
// again: the windows still tile the time without a duplicate or a hole, the parts they count
// add up exactly to what the counter moved, and the time the agent was away is unknown time,
// never running or down.
func TestKPI_RestartMidWindow(t *testing.T) {
	s := startKPIStack(t, 60) // a simulated minute, one window, per second
	agent := s.startAgent(t)
	windows := func(n int) func([]mqtttest.Message) error {
		return func(ms []mqtttest.Message) error {
			got := 0
			for _, r := range records(t, ms) {
				if r.Kind == "kpi" {
					got++
				}
			}
			if got < n {
				return fmt.Errorf("%d KPI records, want %d", got, n)
			}
			return nil
		}
	}
	s.sub.WaitFor(t, 30*time.Second, windows(3))
	// Mid-window: between 20 and 40 simulated seconds into a minute.
	waitFor(t, 5*time.Second, func() error {
		if sec := s.simNow().Second(); sec < 20 || sec >= 40 {
			return fmt.Errorf("second %d of the minute", sec)
		}
		return nil
	})
	killedAt := s.simNow()
	agent.Stop(syscall.SIGKILL, 5*time.Second)
	<-time.After(500 * time.Millisecond) // the agent stays away for half a second (30 simulated)
	agent = s.startAgent(t)
	before := len(kpiWindows(t, records(t, s.sub.Messages())))
	s.sub.WaitFor(t, 30*time.Second, windows(before+3))
	if code := agent.Stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("agent exit code %d", code)
	}

	recs := records(t, s.sub.Messages())
	wins := kpiWindows(t, recs)
	var telemetry []msg
	for _, r := range recs {
		if r.Kind == "telemetry" {
			telemetry = append(telemetry, r)
		}
	}
	sort.Slice(telemetry, func(i, j int) bool { return telemetry[i].TS.Before(telemetry[j].TS) })
	// The windows tile the time: each begins where the one before ended.
	var produced, unknown float64
	gapWindow := -1
	for i, w := range wins {
		var start string
		jsonString(w.Values["window_start"], &start)
		if i > 0 {
			if want := wins[i-1].TS.UTC().Format("2006-01-02T15:04:05.000Z07:00"); start != want {
				t.Fatalf("window %d starts at %s, the one before ended at %s", i, start, want)
			}
			unknown += w.float(t, "unknown_s") // the first began before the first sample
		}
		produced += w.float(t, "produced")
		wStart, _ := time.Parse(time.RFC3339, start)
		if !killedAt.Before(wStart) && killedAt.Before(w.TS) {
			gapWindow = i
		}
	}
	if gapWindow < 1 {
		t.Fatalf("no window holds the kill at %v", killedAt)
	}
	// Parts: every increment of the counter from the first sample to the last one in a closed
	// window is in exactly one window.
	first, _ := telemetry[0].uint(t, "parts_total")
	var last uint64
	var lastBefore, firstAfter time.Time
	for _, r := range telemetry {
		if r.TS.After(wins[len(wins)-1].TS) {
			break
		}
		last, _ = r.uint(t, "parts_total")
		if r.TS.Before(killedAt) {
			lastBefore = r.TS
		} else if firstAfter.IsZero() {
			firstAfter = r.TS
		}
	}
	if want := float64(last - first); produced != want {
		t.Errorf("the windows count %v parts, the counter moved %v (from %d to %d)", produced, want, first, last)
	}
	// Time: the agent was away from its last delivered sample to its first after the restart
	// (less up to one commit lost to the kill, 3 simulated s), and at most one window more: the
	// snapshot it restarts from is taken with every window.
	away := firstAfter.Sub(lastBefore).Seconds()
	if unknown < away-3-2 || unknown > away+60+2 {
		for _, w := range wins {
			t.Logf("window to %v: unknown_s %v", w.TS, w.float(t, "unknown_s"))
		}
		t.Errorf("unknown time %v s; the agent was away %v s", unknown, away)
	}
	if u := wins[gapWindow].float(t, "unknown_s"); u <= 0 {
		t.Errorf("the window of the kill has unknown_s %v", u)
	}
	t.Logf("%d windows, %v parts, away %.1f s, unknown %.1f s", len(wins), produced, away, unknown)
}

func jsonString(raw []byte, dst *string) error {
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%s: %w", raw, err)
	}
	return nil
}
