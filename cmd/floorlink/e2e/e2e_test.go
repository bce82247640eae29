package e2e_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/floorlink/floorlink/agent"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/buffer"
	"github.com/floorlink/floorlink/simulators/simtest"
)

var machines = map[string]int{"m1": 1, "m2": 2, "m3": 3}

// waitTelemetry waits until every device has at least n telemetry messages matching keep.
func waitTelemetry(t *testing.T, s *stack, n int, timeout time.Duration, keep func(msg) bool) {
	t.Helper()
	waitFor(t, timeout, func() error {
		count := map[string]int{}
		for _, r := range records(t, s.sub.Messages()) {
			if r.Kind == "telemetry" && (keep == nil || keep(r)) {
				count[r.Source]++
			}
		}
		for dev := range machines {
			if count[dev] < n {
				return fmt.Errorf("device %s: %d telemetry messages, waiting for %d (all: %v)", dev, count[dev], n, count)
			}
		}
		return nil
	})
}

// waitOffline waits for the agent's offline status of the given session, after which every
// record the agent published has reached the subscriber's connection.
func waitOffline(t *testing.T, s *stack, session int) {
	t.Helper()
	s.sub.WaitFor(t, 10*time.Second, func(msgs []mqtttest.Message) error {
		want := `{"state":"offline"`
		var seen []string
		for _, m := range msgs {
			if !strings.HasSuffix(m.Topic, "/gateway/gw-e2e/status") {
				continue
			}
			seen = append(seen, string(m.Payload))
			if strings.HasPrefix(string(m.Payload), want) && strings.HasSuffix(string(m.Payload), fmt.Sprintf(`"session":%d}`, session)) {
				return nil
			}
		}
		return fmt.Errorf("no offline status of session %d among %v", session, seen)
	})
}

// onlineAt returns when the online status of the given session arrived.
func onlineAt(t *testing.T, s *stack, session int) time.Time {
	t.Helper()
	for _, m := range s.sub.Messages() {
		if strings.HasSuffix(m.Topic, "/gateway/gw-e2e/status") && strings.HasPrefix(string(m.Payload), `{"state":"online"`) &&
			strings.HasSuffix(string(m.Payload), fmt.Sprintf(`"session":%d}`, session)) {
			return m.At
		}
	}
	t.Fatalf("no online status of session %d", session)
	return time.Time{}
}

// checkValues compares every telemetry message with the simulator's registers at the tick each
// read of the cycle saw: the holding registers exactly at the tick they carry, the input
// registers exactly at the tick they carry (ir_tick), and the coil, read first in the cycle, with
// a snapshot between the previous cycle's holding read and this cycle's input read.
func checkValues(t *testing.T, sim *simtest.Sim, recs []msg) int {
	t.Helper()
	checked := 0
	prevTick := map[string]uint64{}
	for _, r := range recs {
		if r.Kind != "telemetry" {
			continue
		}
		machine := machines[r.Source]
		tick, ok := r.uint(t, "tick")
		if !ok {
			continue // a bad-quality cycle
		}
		want, ok := sim.Snapshot(machine, uint32(tick))
		if !ok {
			t.Fatalf("seq %d: simulator has no snapshot of machine %d at tick %d", r.Seq, machine, tick)
		}
		got := func(tag string) uint64 {
			v, ok := r.uint(t, tag)
			if !ok {
				t.Fatalf("seq %d (%s tick %d): %s is null (quality %v)", r.Seq, r.Source, tick, tag, r.Quality)
			}
			return v
		}
		for tag, w := range map[string]uint64{
			"state": uint64(want.State), "parts_total": uint64(want.PartsTotal), "good_total": uint64(want.GoodTotal),
			"reject_total": uint64(want.RejectTotal), "parts_total_16": uint64(want.PartsTotal % 65536),
			"cycle_time_ms": uint64(want.CycleTimeMs),
		} {
			if g := got(tag); g != w {
				t.Fatalf("seq %d (%s tick %d): %s = %d, want %d", r.Seq, r.Source, tick, tag, g, w)
			}
		}
		if g := float32(r.float(t, "temperature")); g != want.Temperature {
			t.Fatalf("seq %d (%s tick %d): temperature = %v, want %v", r.Seq, r.Source, tick, g, want.Temperature)
		}
		if g := float32(r.float(t, "pressure")); g != want.Pressure {
			t.Fatalf("seq %d (%s tick %d): pressure (CDAB) = %v, want %v", r.Seq, r.Source, tick, g, want.Pressure)
		}
		if g := int32(r.float(t, "spindle_speed")); g != want.SpindleSpeed {
			t.Fatalf("seq %d (%s tick %d): spindle_speed = %d, want %d", r.Seq, r.Source, tick, g, want.SpindleSpeed)
		}
		if g := r.float(t, "temperature_c"); math.Abs(g-float64(want.Temperature)) > 0.05+1e-6 {
			t.Fatalf("seq %d (%s tick %d): temperature_c (int16 × 0.1) = %v, want %v ± 0.05", r.Seq, r.Source, tick, g, want.Temperature)
		}

		irTick := got("ir_tick")
		if irTick > tick {
			t.Fatalf("seq %d (%s): input registers read at tick %d, after the holding registers' %d", r.Seq, r.Source, irTick, tick)
		}
		inWant, ok := sim.Snapshot(machine, uint32(irTick))
		if !ok {
			t.Fatalf("seq %d: no snapshot of machine %d at tick %d", r.Seq, machine, irTick)
		}
		if g, w := got("pressure_x100"), uint64(math.Round(float64(inWant.Pressure)*100)); g != w {
			t.Fatalf("seq %d (%s input tick %d): pressure_x100 = %d, want %d", r.Seq, r.Source, irTick, g, w)
		}

		if string(r.Values["running"]) != "true" && string(r.Values["running"]) != "false" {
			t.Fatalf("seq %d: running = %s, want a bool", r.Seq, r.Values["running"])
		}
		running := string(r.Values["running"]) == "true"
		from, ok := prevTick[r.Source]
		if !ok || from > irTick {
			from = max(irTick, 20) - 20 // the first cycle, or a replayed duplicate
		}
		near := false
		for tk := from; tk <= irTick && !near; tk++ {
			m, ok := sim.Snapshot(machine, uint32(tk))
			near = ok && (m.State == simtest.Running) == running
		}
		if !near {
			t.Fatalf("seq %d (%s): running=%v matches no snapshot of ticks %d..%d", r.Seq, r.Source, running, from, irTick)
		}
		prevTick[r.Source] = tick
		checked++
	}
	return checked
}

// TestEndToEnd_Telemetry: plcsim → agent → Mosquitto → subscriber. Every value equals the
// simulator's registers, seq is gap-free, every message validates against the schema, and every
// tick the simulator served arrived.
func TestEndToEnd_Telemetry(t *testing.T) {
	s := startStack(t, stackOptions{})
	a := startAgent(t, s.cfgPath)
	waitTelemetry(t, s, 60, 60*time.Second, nil)
	if code := a.Stop(syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Fatalf("agent exit code %d after SIGTERM, want 0", code)
	}
	waitOffline(t, s, 1)

	recs := records(t, s.sub.Messages())
	checkSchema(t, recs)
	maxSeq, dups := checkSeqs(t, recs)
	checkFirstArrivalOrder(t, recs)
	checked := checkValues(t, s.sim, recs)
	online := onlineAt(t, s, 1)
	events, historical := 0, 0
	for _, r := range recs {
		if r.Kind == "event" && string(r.Values["event"]) == `"connected"` {
			events++
		}
		// Records taken before the MQTT session began are history by the contract; after it,
		// with no outage, none may be.
		if r.Historical {
			historical++
			if r.TS.After(online.Add(500 * time.Millisecond)) {
				t.Errorf("seq %d taken %v after the session began is historical", r.Seq, r.TS.Sub(online))
			}
		}
	}
	if events != 3 {
		t.Errorf("connected events = %d, want one per device", events)
	}
	ticks := deliveredTicks(t, recs)
	for dev, m := range machines {
		missing, served := missingTicks(s.sim, m, ticks[dev])
		if len(missing) > 0 {
			t.Errorf("device %s: %d of %d served ticks never arrived, first %v", dev, len(missing), served, missing[0])
		}
	}
	t.Logf("%d records (seq 1..%d, %d duplicates, %d taken before the first session), %d telemetry messages checked against the simulator",
		len(recs), maxSeq, dups, historical, checked)
}

// TestEndToEnd_BrokerOutage cuts the agent off the broker for 10 s (refused, and the open
// connection cut) while it polls every 100 ms: after the outage every record arrives, in order,
// those of the outage marked historical, and no tick is missing.
func TestEndToEnd_BrokerOutage(t *testing.T) {
	s := startStack(t, stackOptions{proxy: true})
	a := startAgent(t, s.cfgPath)
	waitTelemetry(t, s, 20, 60*time.Second, nil)

	cut := time.Now()
	s.proxy.SetRefuse(true)
	s.proxy.Cut()
	<-time.After(10 * time.Second) // the outage itself is what this test is about
	heal := time.Now()
	s.proxy.SetRefuse(false)

	// Live data again: records taken two seconds after the heal reached the subscriber.
	waitTelemetry(t, s, 5, 60*time.Second, func(r msg) bool { return r.TS.After(heal.Add(2 * time.Second)) })
	if code := a.Stop(syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Fatalf("agent exit code %d, want 0", code)
	}
	waitOffline(t, s, 2)

	msgs := s.sub.Messages()
	recs := records(t, msgs)
	checkSchema(t, recs)
	maxSeq, dups := checkSeqs(t, recs)
	checkFirstArrivalOrder(t, recs)
	checkValues(t, s.sim, recs)

	// Nothing came through during the outage: it was real.
	for _, m := range msgs {
		if strings.HasPrefix(m.Topic, topicPrefix) && m.At.After(cut.Add(time.Second)) && m.At.Before(heal) {
			t.Fatalf("a record arrived at %v, during the outage", m.At.Sub(cut))
		}
	}
	first := map[uint64]bool{}
	outage := 0
	for _, r := range recs {
		if first[r.Seq] {
			continue
		}
		first[r.Seq] = true
		if r.TS.After(cut.Add(500*time.Millisecond)) && r.TS.Before(heal) {
			outage++
			if !r.Historical {
				t.Fatalf("seq %d taken during the outage (at +%v) arrived with historical=false", r.Seq, r.TS.Sub(cut))
			}
		}
	}
	// A sanity bound, not a speed claim: the tick coverage below proves no poll was lost.
	if outage < 30 {
		t.Errorf("%d records from the outage, want at least one per device per second of it", outage)
	}
	ticks := deliveredTicks(t, recs)
	for dev, m := range machines {
		if missing, served := missingTicks(s.sim, m, ticks[dev]); len(missing) > 0 {
			t.Errorf("device %s: %d of %d served ticks never arrived, first %v", dev, len(missing), served, missing[0])
		}
	}
	t.Logf("outage of %v: %d records replayed as historical; seq 1..%d, %d duplicates", heal.Sub(cut).Round(time.Millisecond), outage, maxSeq, dups)
}

// TestEndToEnd_KillRestart SIGKILLs the agent mid-run and restarts it on the same data dir: no
// record the buffer had accepted is missing (seq stays gap-free in the same epoch), duplicates
// are counted, and only ticks read within the last group-commit interval before the kill are
// lost.
func TestEndToEnd_KillRestart(t *testing.T) {
	const commitInterval = 50 * time.Millisecond
	// The documented allowance (docs/delivery.md): a poll read within one group-commit interval
	// before a power cut or SIGKILL may be lost, plus the commit then in progress; the slack
	// covers one fsync on CI's noisy disk.
	const allowance = commitInterval + 250*time.Millisecond
	s := startStack(t, stackOptions{commitInterval: commitInterval})
	a := startAgent(t, s.cfgPath)
	waitTelemetry(t, s, 30, 60*time.Second, nil)

	killed := time.Now()
	if code := a.Stop(syscall.SIGKILL, 5*time.Second); code != -1 {
		t.Fatalf("exit code %d after SIGKILL, want -1 (killed)", code)
	}
	restarted := time.Now()
	b := startAgent(t, s.cfgPath)
	waitTelemetry(t, s, 30, 60*time.Second, func(r msg) bool { return r.TS.After(restarted) })
	if code := b.Stop(syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	waitOffline(t, s, 2)

	recs := records(t, s.sub.Messages())
	checkSchema(t, recs)
	maxSeq, dups := checkSeqs(t, recs) // one epoch, no holes: nothing committed was lost
	checkFirstArrivalOrder(t, recs)
	checkValues(t, s.sim, recs)

	ticks := deliveredTicks(t, recs)
	worst := time.Duration(0)
	lost := 0
	for dev, m := range machines {
		missing, _ := missingTicks(s.sim, m, ticks[dev])
		for _, rd := range missing {
			before := killed.Sub(rd.At)
			if before > allowance || before < -time.Second {
				t.Errorf("device %s: tick %d read %v before the kill never arrived; allowance is %v", dev, rd.Tick, before, allowance)
			}
			worst = max(worst, before)
			lost++
		}
	}
	t.Logf("SIGKILL then restart: seq 1..%d with no hole, %d duplicates re-sent, %d tick reads lost (oldest %v before the kill)",
		maxSeq, dups, lost, worst.Round(time.Millisecond))
}

// TestEndToEnd_NewerBufferFormat: a buffer file written by a newer Floorlink is refused with exit
// 1 and left untouched.
func TestEndToEnd_NewerBufferFormat(t *testing.T) {
	s := startStack(t, stackOptions{})
	if err := os.MkdirAll(s.dataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.dataDir, agent.BufferFile)
	buf, err := buffer.Open(path, buffer.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("format_version"), binary.BigEndian.AppendUint64(nil, 2))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, _ := os.ReadFile(path)
	st, _ := os.Stat(path)

	a := startAgent(t, s.cfgPath)
	if code := a.Wait(10 * time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if log := a.Log(); !strings.Contains(log, "newer") || !strings.Contains(log, path) {
		t.Errorf("error does not name the file and the newer format:\n%s", log)
	}
	after, _ := os.ReadFile(path)
	st2, _ := os.Stat(path)
	if string(before) != string(after) || !st.ModTime().Equal(st2.ModTime()) {
		t.Error("the newer buffer file was modified")
	}
}

// TestEndToEnd_TruncatedBuffer: a damaged buffer file is moved aside, the agent runs on a fresh
// one and says so in an event.
func TestEndToEnd_TruncatedBuffer(t *testing.T) {
	s := startStack(t, stackOptions{})
	if err := os.MkdirAll(s.dataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.dataDir, agent.BufferFile)
	buf, err := buffer.Open(path, buffer.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel()
	done := make(chan error, 1)
	go func() { done <- buf.Run(ctx) }()
	payload := make([]byte, 200)
	for i := 0; i < 20000; i++ {
		for buf.Append(payload) != nil {
			if err := buf.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := buf.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	buf.Close()
	st, _ := os.Stat(path)
	if err := os.Truncate(path, st.Size()/2); err != nil {
		t.Fatal(err)
	}

	a := startAgent(t, s.cfgPath)
	s.sub.WaitFor(t, 30*time.Second, func(msgs []mqtttest.Message) error {
		for _, r := range records(t, msgs) {
			if r.Source == "gw-e2e" && r.Kind == "event" && string(r.Values["event"]) == `"buffer_moved_aside"` {
				return nil
			}
		}
		return fmt.Errorf("no buffer_moved_aside event")
	})
	waitTelemetry(t, s, 5, 30*time.Second, nil)
	if code := a.Stop(syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	aside, _ := filepath.Glob(path + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("moved-aside files: %v, want one", aside)
	}
}
