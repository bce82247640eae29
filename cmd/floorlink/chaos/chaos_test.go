// Package chaos runs the agent through the failures a factory network and a gateway meet, all in
// one run, and proves that nothing the buffer accepted was lost: a broker outage, a half-open
// link, two SIGKILLs and a broker restart, under ≥ 2,000 samples/s.
package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/buffer"
	"github.com/floorlink/floorlink/cmd/floorlink/floorlinktest"
	"github.com/floorlink/floorlink/simulators/simtest"
	"github.com/floorlink/floorlink/verify"
)

var agentBin string

func TestMain(m *testing.M) { floorlinktest.Main(m, &agentBin) }

const (
	devices        = 20
	tagsPerDevice  = 13
	pollInterval   = 100 * time.Millisecond
	commitInterval = 50 * time.Millisecond
	maxInflight    = 64
	maxDrainRate   = 3000
	ackInterval    = 100 * time.Millisecond // the publisher's cursor-commit cadence
	// allowance is what a SIGKILL may cost (docs/delivery.md): the poll reads of the last group
	// commit, commit_interval plus the commit in progress, with slack for one fsync on CI's disk.
	allowance = commitInterval + 250*time.Millisecond
)

const tags = `
      - {name: state, address: "40001", type: uint16}
      - {name: tick, address: "40002", type: uint32}
      - {name: parts_total, address: "40004", type: uint32}
      - {name: good_total, address: "40006", type: uint32}
      - {name: reject_total, address: "40008", type: uint32}
      - {name: parts_total_16, address: "40010", type: uint16}
      - {name: temperature, address: "40011", type: float32}
      - {name: pressure, address: "40013", type: float32, byte_order: CDAB}
      - {name: cycle_time_ms, address: "40015", type: uint16}
      - {name: ideal_cycle_time_ms, address: "40016", type: uint16}
      - {name: alarm_code, address: "40017", type: uint16}
      - {name: spindle_speed, address: "40018", type: int32}
      - {name: temperature_c, address: "40020", type: int16, scale: 0.1}`

func config(dataDir, brokerURL, modbusAddr string) string {
	return configWith(dataDir, brokerURL, modbusAddr, "")
}

// configWith adds extra keys to the buffer section.
func configWith(dataDir, brokerURL, modbusAddr, bufferExtra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `gateway: {id: gw-chaos, site: chaos, area: a, line: l, data_dir: %q}
mqtt:
  brokers: [%q]
  keep_alive: 2s
  connect_timeout: 2s
  reconnect_min: 100ms
  reconnect_max: 1s
  shutdown_grace: 2s
  max_inflight: %d
  max_drain_rate: %d
http: {listen: ""}
buffer:
  commit_interval: %s
%s
devices:
`, dataDir, brokerURL, maxInflight, maxDrainRate, commitInterval, bufferExtra)
	for m := 1; m <= devices; m++ {
		fmt.Fprintf(&b, "  - {name: m%d, protocol: modbus-tcp, address: %q, unit_id: %d, poll_interval: %s, timeout: 1s, tags: [%s]}\n",
			m, modbusAddr, m, pollInterval, strings.ReplaceAll(strings.TrimSpace(strings.ReplaceAll(tags, "      - ", "")), "\n", ", "))
	}
	return b.String()
}

// ticks records, per device, the tick values delivered in telemetry, and feeds the verifier's
// tracker.
type ticks struct {
	*verify.Tracker
	mu  sync.Mutex
	got map[string]map[uint32]bool
}

func (tk *ticks) Observe(topic string, payload []byte, at time.Time) {
	tk.Tracker.Observe(topic, payload, at)
	if !strings.HasSuffix(topic, "/telemetry") {
		return
	}
	var m struct {
		Values struct {
			Tick *uint32 `json:"tick"`
		} `json:"values"`
	}
	if json.Unmarshal(payload, &m) != nil || m.Values.Tick == nil {
		return
	}
	parts := strings.Split(topic, "/")
	dev := parts[len(parts)-2]
	tk.mu.Lock()
	if tk.got[dev] == nil {
		tk.got[dev] = map[uint32]bool{}
	}
	tk.got[dev][*m.Values.Tick] = true
	tk.mu.Unlock()
}

func (tk *ticks) count() int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	n := 0
	for _, s := range tk.got {
		n += len(s)
	}
	return n
}

func waitFor(t *testing.T, what string, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after %v: %v", what, timeout, err)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// TestChaos: ≥ 2,000 samples/s from 20 simulated machines through a loopback proxy to a
// persistent Mosquitto, while the proxy refuses for 30 s, the link goes half-open, the agent is
// SIGKILLed twice and the broker restarts. The verifier, on a persistent QoS 1 session straight to
// the broker, proves zero loss by seq; the simulator's tick registers prove that only poll reads
// within a group-commit interval of a kill were lost; duplicates stay within the documented
// bound.
func TestChaos(t *testing.T) {
	start := time.Now()
	sim := simtest.Start(t, simtest.Options{Line: simtest.LineConfig{Seed: 11, Machines: devices}})
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{Persistence: true})
	proxy := mqtttest.StartProxy(t, broker.Addr())
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "chaos.yaml")
	if err := os.WriteFile(cfg, []byte(config(dataDir, proxy.URL(), sim.ModbusAddr())), 0o644); err != nil {
		t.Fatal(err)
	}

	obs := &ticks{Tracker: verify.NewTracker(verify.TrackerOptions{FromStart: true}), got: map[string]map[uint32]bool{}}
	vctx, stopVerifier := context.WithCancel(context.Background())
	subscribed := make(chan struct{}, 8)
	verified := make(chan error, 1)
	go func() {
		verified <- verify.Run(vctx, verify.Options{Brokers: []string{broker.URL()}, ClientID: "chaos-verifier",
			Persistent: true, MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
			Subscribed: func() {
				select {
				case subscribed <- struct{}{}:
				default:
				}
			}}, obs)
	}()
	defer func() { stopVerifier(); <-verified }()
	<-subscribed

	// caughtUp waits until every device's latest delivered tick is within a second of the
	// simulator's: the backlog of the last disruption has drained (records leave in order) and
	// live data flows again.
	caughtUp := func(what string) {
		t.Helper()
		since := uint32(sim.Tick()) + 10 // data read after the disruption, by the agent running now
		waitFor(t, what, 90*time.Second, func() error {
			now := uint32(sim.Tick())
			obs.mu.Lock()
			defer obs.mu.Unlock()
			for m := 1; m <= devices; m++ {
				var last uint32
				for tk := range obs.got[fmt.Sprintf("m%d", m)] {
					last = max(last, tk)
				}
				if last < since || last+10 < now {
					return fmt.Errorf("m%d delivered through tick %d, the simulator is at %d", m, last, now)
				}
			}
			return nil
		})
	}

	a := floorlinktest.Start(t, agentBin, cfg)
	agentStart := time.Now()
	caughtUp("first records")

	t.Log("broker unreachable for 30 s: refused, open connection cut")
	proxy.SetRefuse(true)
	proxy.Cut()
	<-time.After(30 * time.Second)
	proxy.SetRefuse(false)
	caughtUp("after the outage")

	var kills []time.Time
	kill := func() {
		t.Helper()
		kills = append(kills, time.Now())
		if code := a.Stop(syscall.SIGKILL, 10*time.Second); code != -1 {
			t.Fatalf("exit %d after SIGKILL", code)
		}
		a = floorlinktest.Start(t, agentBin, cfg)
	}
	t.Log("SIGKILL 1")
	kill()
	caughtUp("after kill 1")

	t.Log("half-open link for 8 s")
	proxy.SetStall(true)
	<-time.After(8 * time.Second)
	proxy.SetStall(false)
	caughtUp("after the half-open link")

	t.Log("broker restart")
	broker.Stop()
	broker.Restart()
	caughtUp("after the broker restart")

	t.Log("SIGKILL 2")
	kill()
	caughtUp("after kill 2")

	if code := a.Stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	stopped := time.Now()
	buf, err := buffer.OpenReadOnly(filepath.Join(dataDir, agent.BufferFile))
	if err != nil {
		t.Fatal(err)
	}
	epoch, cursor, head := buf.Epoch(), buf.Cursor(), buf.Head()
	buf.Close()
	// Everything the broker acknowledged must reach the verifier.
	obs.Expect("gw-chaos", epoch, cursor)
	var report verify.Report
	waitFor(t, "verifier catching up", 60*time.Second, func() error {
		report = obs.Report()
		if len(report.Streams) != 1 {
			return fmt.Errorf("%d streams, want 1", len(report.Streams))
		}
		if s := report.Streams[0]; s.Missing > 0 {
			return fmt.Errorf("%d seqs missing: %v", s.Missing, s.Gaps)
		}
		return nil
	})
	var text strings.Builder
	report.WriteText(&text)
	t.Logf("verifier report (buffer head %d, cursor %d):\n%s", head, cursor, text.String())
	if !report.OK() {
		t.Fatalf("verifier: %v", report.Problems())
	}
	s := report.Streams[0]

	// Each session loss re-sends at most the window in flight plus what was acknowledged
	// since the last cursor commit; five losses here (outage, two kills, half-open, restart).
	const losses = 5
	bound := uint64(losses * (maxInflight + maxDrainRate*ackInterval/time.Second))
	if s.Duplicates > bound {
		t.Errorf("%d duplicates, more than the bound of %d (%d losses × (window %d + %v of acknowledgements at %d/s))",
			s.Duplicates, bound, losses, maxInflight, ackInterval, maxDrainRate)
	}

	// Tick coverage: every tick the simulator served reached the broker, except reads within
	// the allowance before a kill.
	obs.mu.Lock()
	defer obs.mu.Unlock()
	lost, served := 0, 0
	for m := 1; m <= devices; m++ {
		got := obs.got[fmt.Sprintf("m%d", m)]
		var last uint32
		for tk := range got {
			last = max(last, tk)
		}
		for _, rd := range sim.TickReads(m) {
			if rd.Tick > last {
				continue
			}
			served++
			if got[rd.Tick] {
				continue
			}
			lost++
			explained := false
			for _, k := range kills {
				if d := k.Sub(rd.At); d >= -time.Second && d <= allowance {
					explained = true
				}
			}
			if !explained {
				t.Errorf("m%d: tick %d read at %v never arrived and no kill explains it", m, rd.Tick, rd.At.Format(time.StampMilli))
			}
		}
	}
	// The agent's ingest: telemetry records (one per device per poll) times tags, over the time
	// agents ran, kills and restarts included.
	rate := float64(head*tagsPerDevice) / stopped.Sub(agentStart).Seconds()
	t.Logf("%d records stored at %.0f samples/s (%d tags each); %d poll reads served, %d lost to the 2 kills; %d messages, %d duplicates (bound %d), %d historical; %v",
		head, rate, tagsPerDevice, served, lost, s.Received, s.Duplicates, bound, s.Historical, time.Since(start).Round(time.Second))
	if rate < 2000 {
		t.Errorf("the run carried %.0f samples/s, want at least 2000 for this test to mean something", rate)
	}
}
