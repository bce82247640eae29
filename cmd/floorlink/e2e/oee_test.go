package e2e_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/cmd/floorlink/floorlinktest"
)

// TestKPI_ShiftOEE plays the scripted shift of simulators/scenarios/shift-oee-0608.yaml (8 h,
// 1 h of breaks, down for exactly 20% of the rest, ideal cycle 2 s against 2.5 s, every 20th
// part scrap) in 48 s: plcsim and the agent share a simulated clock 600 times faster than the
// wall, and the agent's shift record carries the OEE known in advance: A 0.8, P 0.8,
// Q 7661/8064, OEE 0.608, each within ±0.01.
func TestKPI_ShiftOEE(t *testing.T) {
	scenario, err := filepath.Abs("../../../simulators/scenarios/shift-oee-0608.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const speed = 600
	start := "2026-03-02T06:00:00+09:00"
	// Both processes start before the epoch, so that neither misses the shift's first minutes.
	epoch := time.Now().Add(3 * time.Second).Format(time.RFC3339Nano)
	modbusAddr := floorlinktest.StartPlcsim(t, "modbus-tcp", "--modbus-tcp", "127.0.0.1:0", "--scenario", scenario, "--step", "1s",
		"--speed", fmt.Sprint(speed), "--clock-start", start, "--clock-epoch", epoch)

	dir := t.TempDir()
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	sub := mqtttest.Subscribe(t, broker.URL(), "floorlink/#")
	cfgPath := filepath.Join(dir, "floorlink.yaml")
	cfg := fmt.Sprintf(`gateway: {id: gw-e2e, site: test-site, area: body, line: line-1, data_dir: %q, timezone: Asia/Seoul}
mqtt:
  brokers: [%q]
  shutdown_grace: 2s
http: {listen: ""}
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
      - {name: ideal_cycle_time_ms, address: "40016", type: uint16}
assets:
  - name: press
    # max_age is simulated time: 120 s is 0.2 s of the wall at 600x.
    state: {device: m1, tag: state, map: {1: running, 2: idle, 3: blocked, 4: down, 5: setup, 6: maintenance}, max_age: 120s}
    counters: {device: m1, total: parts_total, good: good_total, reject: reject_total, bits: 32}
    ideal_cycle: {device: m1, tag: ideal_cycle_time_ms, unit: ms}
    schedule:
      shifts:
        - name: A
          start: "06:00"
          end: "14:00"
          breaks: [{start: "09:00", end: "09:15"}, {start: "11:30", end: "12:00"}, {start: "13:00", end: "13:15"}]
    windows: [shift]
`, filepath.Join(dir, "data"), broker.URL(), modbusAddr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := floorlinktest.StartArgs(t, agentBin, []string{"run", "-c", cfgPath,
		"--clock-start", start, "--clock-epoch", epoch, "--clock-speed", fmt.Sprint(speed)})

	var shift msg
	sub.WaitFor(t, 120*time.Second, func(msgs []mqtttest.Message) error {
		for _, r := range records(t, msgs) {
			if r.Kind == "kpi" {
				shift = r
				return nil
			}
		}
		return fmt.Errorf("no shift record yet")
	})
	if code := agent.Stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("agent exit code %d", code)
	}
	var window, name string
	json.Unmarshal(shift.Values["window"], &window)
	json.Unmarshal(shift.Values["shift"], &name)
	if window != "shift" || name != "A" {
		t.Fatalf("first KPI record is window %q shift %q: %s", window, name, shift.Raw)
	}
	for _, c := range []struct {
		field string
		want  float64
	}{
		{"availability", 0.8}, {"performance", 0.8}, {"quality", 7661.0 / 8064}, {"oee", 0.8 * 0.8 * 7661 / 8064},
		{"pbt_s", 25200}, {"planned_down_s", 3600},
	} {
		got := shift.float(t, c.field)
		tol := 0.01
		if strings.HasSuffix(c.field, "_s") {
			tol = 1e-6
		}
		if math.Abs(got-c.want) > tol {
			t.Errorf("%s = %v, want %v ± %v", c.field, got, c.want, tol)
		}
	}
	// A part counts in the window of the read that sees it: the parts made after the agent's last
	// read before 14:00 belong to the next window. At 600x a poll late by 50 ms of the wall is
	// 30 s of the shift (12 parts), so the count is checked against the agent's own reads, from
	// its telemetry (all delivered: the agent has stopped), and only loosely against 8064.
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	end := time.Date(2026, 3, 2, 14, 0, 0, 0, seoul)
	var first, last *msg
	recs := records(t, sub.Messages())
	for i := range recs {
		r := &recs[i]
		if _, ok := r.uint(t, "parts_total"); !ok || r.Source != "m1" {
			continue
		}
		if first == nil || r.TS.Before(first.TS) {
			first = r
		}
		if r.TS.Before(end) && (last == nil || r.TS.After(last.TS)) {
			last = r
		}
	}
	if first == nil || last == nil {
		t.Fatal("no telemetry with parts_total before 14:00")
	}
	p0, _ := first.uint(t, "parts_total")
	p1, _ := last.uint(t, "parts_total")
	produced := shift.float(t, "produced")
	if produced != float64(p1-p0) {
		t.Errorf("produced %v, but parts_total moved by %d between the agent's first read (%v) and its last before 14:00 (%v)",
			produced, p1-p0, first.TS.In(seoul).Format(time.TimeOnly), last.TS.In(seoul).Format(time.TimeOnly))
	}
	if produced < 8064-100 || produced > 8064 { // 100 parts: about the ±0.01 of performance
		t.Errorf("produced %v, want 8064 less the parts made after the last read before 14:00 (its read at %v)",
			produced, last.TS.In(seoul).Format(time.TimeOnly))
	}
	t.Logf("A %.4f P %.4f Q %.4f OEE %.4f; produced %v, down %v s, unknown %v s, coverage %.4f",
		shift.float(t, "availability"), shift.float(t, "performance"), shift.float(t, "quality"), shift.float(t, "oee"),
		produced, shift.float(t, "down_s"), shift.float(t, "unknown_s"), shift.float(t, "coverage"))
}
