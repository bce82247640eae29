// Package e2e runs the built floorlink binary against real parts: plcsim's line over Modbus TCP
// on loopback, a real Mosquitto, and a subscriber connected straight to the broker.
package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent/publish"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/cmd/floorlink/floorlinktest"
	"github.com/floorlink/floorlink/simulators/simtest"
)

// agentBin is the floorlink binary, built once for the package without -race: the subprocess is
// the product, the race detector runs on the tests' own code.
var agentBin string

func TestMain(m *testing.M) { floorlinktest.Main(m, &agentBin) }

// stack is one test's plcsim, broker, subscriber and config.
type stack struct {
	sim     *simtest.Sim
	broker  *mqtttest.Broker
	proxy   *mqtttest.Proxy // between agent and broker, when asked for
	sub     *mqtttest.Subscriber
	dir     string
	dataDir string
	cfgPath string
}

type stackOptions struct {
	proxy          bool
	pollInterval   time.Duration
	commitInterval time.Duration
	httpListen     string // "" disables the agent's HTTP listener
}

func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	if o.pollInterval == 0 {
		o.pollInterval = 100 * time.Millisecond
	}
	s := &stack{dir: t.TempDir()}
	s.dataDir = filepath.Join(s.dir, "data")
	s.sim = simtest.Start(t, simtest.Options{Line: simtest.LineConfig{Seed: 42}})
	s.broker = mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	brokerURL := s.broker.URL()
	if o.proxy {
		s.proxy = mqtttest.StartProxy(t, s.broker.Addr())
		brokerURL = s.proxy.URL()
	}
	s.sub = mqtttest.Subscribe(t, s.broker.URL(), "floorlink/#")
	s.cfgPath = filepath.Join(s.dir, "floorlink.yaml")
	if err := os.WriteFile(s.cfgPath, []byte(lineConfig(s.dataDir, brokerURL, s.sim.ModbusAddr(), o)), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// deviceTags reads every layout the simulator serves: holding registers of each type and byte
// order, a scaled int16, a coil and input registers. The planner makes three reads of them per
// cycle (coils, input registers, holding registers, in that order), and both register reads
// carry the simulator's tick, so each value can be checked against the model at the tick it was
// read.
const deviceTags = `
      - {name: state, address: "40001", type: uint16}
      - {name: tick, address: "40002", type: uint32}
      - {name: parts_total, address: "40004", type: uint32}
      - {name: good_total, address: "40006", type: uint32}
      - {name: reject_total, address: "40008", type: uint32}
      - {name: parts_total_16, address: "40010", type: uint16}
      - {name: temperature, address: "40011", type: float32, unit: "°C"}
      - {name: pressure, address: "40013", type: float32, byte_order: CDAB, unit: bar}
      - {name: cycle_time_ms, address: "40015", type: uint16}
      - {name: spindle_speed, address: "40018", type: int32}
      - {name: temperature_c, address: "40020", type: int16, scale: 0.1}
      - {name: running, address: "00001", type: bool}
      - {name: pressure_x100, address: "30002", type: uint16}
      - {name: ir_tick, address: "30003", type: uint32}`

func lineConfig(dataDir, brokerURL, modbusAddr string, o stackOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, `gateway: {id: gw-e2e, site: test-site, area: body, line: line-1, data_dir: %q}
mqtt:
  brokers: [%q]
  reconnect_min: 100ms
  reconnect_max: 500ms
  shutdown_grace: 2s
http: {listen: %q}
buffer:
  commit_interval: %s
devices:
`, dataDir, brokerURL, o.httpListen, o.commitInterval)
	for m := 1; m <= 3; m++ {
		fmt.Fprintf(&b, `  - name: m%d
    protocol: modbus-tcp
    address: %q
    unit_id: %d
    poll_interval: %s
    timeout: 1s
    tags:%s
`, m, modbusAddr, m, o.pollInterval, deviceTags)
	}
	return b.String()
}

func startAgent(t *testing.T, cfgPath string) *floorlinktest.Agent {
	t.Helper()
	return floorlinktest.Start(t, agentBin, cfgPath)
}

// msg is one received record message, decoded.
type msg struct {
	Topic      string
	Raw        []byte
	Source     string                     // from the topic
	Kind       string                     // from the topic
	Gateway    string                     `json:"gateway"`
	Epoch      string                     `json:"epoch"`
	Seq        uint64                     `json:"seq"`
	TS         time.Time                  `json:"ts"`
	Historical bool                       `json:"historical"`
	Values     map[string]json.RawMessage `json:"values"`
	Quality    map[string]string          `json:"quality"`
}

const topicPrefix = "floorlink/v1/test-site/body/line-1/"

// records decodes the record messages (not status) among msgs, in arrival order.
func records(t testing.TB, msgs []mqtttest.Message) []msg {
	t.Helper()
	var out []msg
	for _, m := range msgs {
		rest, ok := strings.CutPrefix(m.Topic, topicPrefix)
		if !ok {
			continue
		}
		var r msg
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			t.Fatalf("message on %s: %v: %s", m.Topic, err, m.Payload)
		}
		r.Topic, r.Raw = m.Topic, m.Payload
		r.Source, r.Kind, _ = strings.Cut(rest, "/")
		out = append(out, r)
	}
	return out
}

func (r *msg) uint(t testing.TB, tag string) (uint64, bool) {
	raw, ok := r.Values[tag]
	if !ok || string(raw) == "null" {
		return 0, false
	}
	var v uint64
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("seq %d: %s = %s: %v", r.Seq, tag, raw, err)
	}
	return v, true
}

func (r *msg) float(t testing.TB, tag string) float64 {
	var v float64
	if err := json.Unmarshal(r.Values[tag], &v); err != nil {
		t.Fatalf("seq %d: %s = %s: %v", r.Seq, tag, r.Values[tag], err)
	}
	return v
}

// checkSeqs verifies that the distinct seqs of one epoch are exactly 1..max, and returns the
// number of duplicates (at-least-once re-sends).
func checkSeqs(t testing.TB, recs []msg) (maxSeq uint64, duplicates int) {
	t.Helper()
	seen := map[uint64]int{}
	epochs := map[string]bool{}
	for _, r := range recs {
		seen[r.Seq]++
		epochs[r.Epoch] = true
		if r.Gateway != "gw-e2e" {
			t.Fatalf("seq %d: gateway %q, want gw-e2e", r.Seq, r.Gateway)
		}
	}
	if len(epochs) != 1 {
		t.Fatalf("messages carry %d epochs, want 1: %v", len(epochs), epochs)
	}
	for s, n := range seen {
		maxSeq = max(maxSeq, s)
		duplicates += n - 1
	}
	var missing []uint64
	for s := uint64(1); s <= maxSeq; s++ {
		if seen[s] == 0 {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("seq has holes: %d of 1..%d missing, first %v", len(missing), maxSeq, missing[:min(len(missing), 10)])
	}
	return maxSeq, duplicates
}

// checkFirstArrivalOrder verifies that each seq first arrived after every smaller seq.
func checkFirstArrivalOrder(t testing.TB, recs []msg) {
	t.Helper()
	var next uint64 = 1
	for _, r := range recs {
		if r.Seq > next {
			t.Fatalf("seq %d arrived before seq %d", r.Seq, next)
		}
		if r.Seq == next {
			next++
		}
	}
}

// checkSchema validates every record message against the embedded JSON Schema.
func checkSchema(t testing.TB, recs []msg) {
	t.Helper()
	src, err := publish.Schemas.ReadFile("schema/record.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	schema := mqtttest.CompileSchema(t, "record.schema.json", src)
	for _, r := range recs {
		if err := schema.Validate(r.Raw); err != nil {
			t.Fatalf("seq %d on %s does not validate: %v\n%s", r.Seq, r.Topic, err, r.Raw)
		}
	}
}

// deliveredTicks returns, per device, the set of good tick values delivered in telemetry.
func deliveredTicks(t testing.TB, recs []msg) map[string]map[uint32]bool {
	out := map[string]map[uint32]bool{}
	for _, r := range recs {
		if r.Kind != "telemetry" {
			continue
		}
		tick, ok := r.uint(t, "tick")
		if !ok {
			continue
		}
		if out[r.Source] == nil {
			out[r.Source] = map[uint32]bool{}
		}
		out[r.Source][uint32(tick)] = true
	}
	return out
}

// missingTicks returns the tick reads the simulator served to machine m that never arrived, up
// to the last delivered one.
func missingTicks(sim *simtest.Sim, machine int, delivered map[uint32]bool) (missing []simtest.TickRead, served int) {
	var last uint32
	for tk := range delivered {
		last = max(last, tk)
	}
	for _, rd := range sim.TickReads(machine) {
		if rd.Tick > last {
			continue
		}
		served++
		if !delivered[rd.Tick] {
			missing = append(missing, rd)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].Tick < missing[j].Tick })
	return missing, served
}

func waitFor(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// telemetryCount returns how many telemetry messages arrived per device.
func telemetryCount(t testing.TB, sub *mqtttest.Subscriber) map[string]int {
	n := map[string]int{}
	for _, r := range records(t, sub.Messages()) {
		if r.Kind == "telemetry" {
			n[r.Source]++
		}
	}
	return n
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
