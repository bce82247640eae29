package e2e_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/cmd/floorlink/floorlinktest"
)

// startOPCUAPlcsim builds plcsim and runs it serving OPC UA only on a free loopback port; it
// returns the endpoint it printed. The simulator is its own process, as on a plant network.
func startOPCUAPlcsim(t *testing.T) string {
	t.Helper()
	return floorlinktest.StartPlcsim(t, "opcua", "--opcua", "127.0.0.1:0")
}

// opcuaTags are machine 1's variables with the types the config gives them: one of each type
// the driver reads, and the line's tick, which changes every 100 ms.
const opcuaTags = `
      - {name: state, address: "ns=2;s=Line1.M1.State", type: int32}
      - {name: state_name, address: "ns=2;s=Line1.M1.StateName", type: string}
      - {name: tick, address: "ns=2;s=Line1.M1.Tick", type: uint32}
      - {name: temperature, address: "ns=2;s=Line1.M1.Temperature", type: float32}
      - {name: running, address: "ns=2;s=Line1.M1.Running", type: bool}
      - {name: t_bool, address: "ns=2;s=Line1.M1.Types.Boolean", type: bool}
      - {name: t_sbyte, address: "ns=2;s=Line1.M1.Types.SByte", type: int8}
      - {name: t_byte, address: "ns=2;s=Line1.M1.Types.Byte", type: uint8}
      - {name: t_int16, address: "ns=2;s=Line1.M1.Types.Int16", type: int16}
      - {name: t_uint16, address: "ns=2;s=Line1.M1.Types.UInt16", type: uint16}
      - {name: t_int32, address: "ns=2;s=Line1.M1.Types.Int32", type: int32}
      - {name: t_uint32, address: "ns=2;s=Line1.M1.Types.UInt32", type: uint32}
      - {name: t_int64, address: "ns=2;s=Line1.M1.Types.Int64", type: int64}
      - {name: t_uint64, address: "ns=2;s=Line1.M1.Types.UInt64", type: uint64}
      - {name: t_float, address: "ns=2;s=Line1.M1.Types.Float", type: float32}
      - {name: t_double, address: "ns=2;s=Line1.M1.Types.Double", type: float64}
      - {name: t_string, address: "ns=2;s=Line1.M1.Types.String", type: string}
      - {name: t_datetime, address: "ns=2;s=Line1.M1.Types.DateTime", type: datetime}
      - {name: t_bytes, address: "ns=2;s=Line1.M1.Types.ByteString", type: bytes}
      - {name: t_double_array, address: "ns=2;s=Line1.M1.Types.DoubleArray", type: float64}`

func opcuaConfig(dataDir, brokerURL, devices string) string {
	return fmt.Sprintf(`gateway: {id: gw-e2e, site: test-site, area: body, line: line-1, data_dir: %q}
mqtt:
  brokers: [%q]
  reconnect_min: 100ms
  reconnect_max: 500ms
  shutdown_grace: 2s
http: {listen: ""}
devices:
%s`, dataDir, brokerURL, devices)
}

// opcuaRecord is a telemetry message with its source timestamps.
type opcuaRecord struct {
	msg
	SourceTS map[string]time.Time `json:"source_ts"`
}

func opcuaRecords(t testing.TB, sub *mqtttest.Subscriber, device string) []opcuaRecord {
	t.Helper()
	var out []opcuaRecord
	for _, r := range records(t, sub.Messages()) {
		if r.Kind != "telemetry" || r.Source != device {
			continue
		}
		o := opcuaRecord{msg: r}
		if err := json.Unmarshal(r.Raw, &o); err != nil {
			t.Fatal(err)
		}
		o.msg = r
		out = append(out, o)
	}
	return out
}

// lastGood returns the last non-null value of every tag the device delivered.
func lastGood(recs []opcuaRecord) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for _, r := range recs {
		for k, v := range r.Values {
			if string(v) != "null" {
				out[k] = v
			}
		}
	}
	return out
}

// TestOPCUA_PollAndSubscribe runs the agent against plcsim's OPC UA server with machine 1 read
// twice: polled every 200 ms and subscribed (sampling 100 ms, publishing 200 ms). Both deliver
// every type with the server's values (the constants exactly) and source timestamps; the
// subscription delivers the tick's changes in order, each within a second of the last.
func TestOPCUA_PollAndSubscribe(t *testing.T) {
	endpoint := startOPCUAPlcsim(t)
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	sub := mqtttest.Subscribe(t, broker.URL(), "floorlink/#")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "floorlink.yaml")
	devices := fmt.Sprintf(`  - name: m1-poll
    protocol: opcua
    address: %q
    poll_interval: 200ms
    tags:%s
  - name: m1-sub
    protocol: opcua
    address: %q
    mode: subscribe
    sampling_interval: 100ms
    publishing_interval: 200ms
    queue_size: 10
    tags:%s
`, endpoint, opcuaTags, endpoint, opcuaTags)
	if err := os.WriteFile(cfgPath, []byte(opcuaConfig(filepath.Join(dir, "data"), broker.URL(), devices)), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := startAgent(t, cfgPath)

	const tags = 20
	for _, dev := range []string{"m1-poll", "m1-sub"} {
		waitFor(t, 30*time.Second, func() error {
			got := lastGood(opcuaRecords(t, sub, dev))
			if len(got) < tags {
				return fmt.Errorf("%s: good values of %d tags, want %d: %v", dev, len(got), tags, got)
			}
			ticks := 0
			for _, r := range opcuaRecords(t, sub, dev) {
				if _, ok := r.Values["tick"]; ok {
					ticks++
				}
			}
			if ticks < 10 {
				return fmt.Errorf("%s: %d records with a tick, want 10", dev, ticks)
			}
			return nil
		})
	}
	if code := agent.Stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("agent exit %d, want 0", code)
	}

	for _, dev := range []string{"m1-poll", "m1-sub"} {
		recs := opcuaRecords(t, sub, dev)
		got := lastGood(recs)
		for tag, want := range map[string]string{
			"t_sbyte": "-100", "t_int16": "-12345", "t_uint16": "48879", "t_int32": "-123456789",
			"t_uint32": "3456789012", "t_int64": `"-1234567890123456789"`, "t_uint64": `"12345678901234567890"`,
			"t_string": `"Press 1"`,
		} {
			if string(got[tag]) != want {
				t.Errorf("%s %s: got %s, want %s", dev, tag, got[tag], want)
			}
		}
		if f, err := strconv.ParseFloat(string(got["t_float"]), 64); err != nil || math.Abs(f-3.1415927) > 1e-6 {
			t.Errorf("%s t_float: got %s, want 3.1415927", dev, got["t_float"])
		}
		for _, tag := range []string{"state", "tick", "t_byte"} {
			if _, err := strconv.ParseUint(string(got[tag]), 10, 64); err != nil {
				t.Errorf("%s %s: got %s, want an unsigned integer", dev, tag, got[tag])
			}
		}
		for _, tag := range []string{"running", "t_bool"} {
			if s := string(got[tag]); s != "true" && s != "false" {
				t.Errorf("%s %s: got %s, want a boolean", dev, tag, s)
			}
		}
		var text struct{ dt, b64, arr, name string }
		for tag, dst := range map[string]*string{"t_datetime": &text.dt, "t_bytes": &text.b64, "t_double_array": &text.arr, "state_name": &text.name} {
			if err := json.Unmarshal(got[tag], dst); err != nil {
				t.Errorf("%s %s: got %s, want a string", dev, tag, got[tag])
			}
		}
		if ts, err := time.Parse(time.RFC3339Nano, text.dt); err != nil || ts.Year() != 2026 {
			t.Errorf("%s t_datetime: got %q (%v), want RFC 3339 text in 2026 (plcsim's epoch)", dev, text.dt, err)
		}
		if _, err := base64.StdEncoding.DecodeString(text.b64); err != nil || text.b64 == "" {
			t.Errorf("%s t_bytes: got %q, want base64 (%v)", dev, text.b64, err)
		}
		var arr []float64
		if err := json.Unmarshal([]byte(text.arr), &arr); err != nil || len(arr) != 3 {
			t.Errorf("%s t_double_array: got %q, want a JSON array of 3 numbers", dev, text.arr)
		}

		// Source timestamps: the server's time of each tick change, before the record's time and
		// close to it.
		var withSource int
		var ticks []uint64
		var arrivals []time.Time
		for _, r := range recs {
			if v, ok := r.uint(t, "tick"); ok {
				ticks = append(ticks, v)
				arrivals = append(arrivals, r.TS)
			}
			st, ok := r.SourceTS["tick"]
			if !ok {
				continue
			}
			withSource++
			if d := r.TS.Sub(st); d < -time.Second || d > 5*time.Second {
				t.Errorf("%s seq %d: tick source_ts %v is %v from the record's ts %v", dev, r.Seq, st, d, r.TS)
			}
		}
		if withSource < len(ticks)/2 {
			t.Errorf("%s: %d of %d records carry the tick's source timestamp, want most", dev, withSource, len(ticks))
		}
		for i := 1; i < len(ticks); i++ {
			if ticks[i] < ticks[i-1] {
				t.Errorf("%s: tick went back from %d to %d", dev, ticks[i-1], ticks[i])
			}
			if dev == "m1-sub" && arrivals[i].Sub(arrivals[i-1]) > time.Second {
				t.Errorf("%s: %v between the ticks %d and %d, want a change within 1s", dev, arrivals[i].Sub(arrivals[i-1]), ticks[i-1], ticks[i])
			}
		}
	}
}

// TestOPCUA_BrowseRoundTrip is issue 7's acceptance 4 on plcsim: `floorlink opcua browse
// --yaml` of machine 2, pasted as a device's tags, runs and delivers every browsed variable
// with the value the browse table showed (the constants) and a JSON kind that fits its type.
func TestOPCUA_BrowseRoundTrip(t *testing.T) {
	endpoint := startOPCUAPlcsim(t)
	browse := func(args ...string) string {
		out, err := exec.Command(agentBin, append([]string{"opcua", "browse", endpoint, "--node", "ns=2;s=Line1.M2"}, args...)...).Output()
		if err != nil {
			t.Fatalf("browse %v: %v", args, err)
		}
		return string(out)
	}
	table, tagsYAML := browse(), browse("--yaml")

	// The browsed types, by tag name, and the values of the table by node path.
	types := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^  - \{name: "([^"]+)", address: "[^"]+", type: (\w+)\}`).FindAllStringSubmatch(tagsYAML, -1) {
		types[m[1]] = m[2]
	}
	if len(types) < 25 {
		t.Fatalf("browse --yaml gave %d tags, want machine 2's 25 or more:\n%s", len(types), tagsYAML)
	}
	shown := map[string]string{}
	for _, l := range strings.Split(table, "\n") {
		f := strings.Fields(l)
		if len(f) == 5 && strings.HasPrefix(f[0], "ns=2;") {
			shown[strings.ReplaceAll(f[4], "/", ".")] = f[3]
		}
	}

	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	sub := mqtttest.Subscribe(t, broker.URL(), "floorlink/#")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "floorlink.yaml")
	var dev strings.Builder
	fmt.Fprintf(&dev, "  - name: m2\n    protocol: opcua\n    address: %q\n    poll_interval: 200ms\n", endpoint)
	for _, l := range strings.SplitAfter(tagsYAML, "\n") {
		dev.WriteString("    " + l)
	}
	if err := os.WriteFile(cfgPath, []byte(opcuaConfig(filepath.Join(dir, "data"), broker.URL(), dev.String())), 0o644); err != nil {
		t.Fatal(err)
	}
	startAgent(t, cfgPath)
	var got map[string]json.RawMessage
	waitFor(t, 30*time.Second, func() error {
		got = lastGood(opcuaRecords(t, sub, "m2"))
		for name := range types {
			if _, ok := got[name]; !ok {
				return fmt.Errorf("no good value of %s yet (%d of %d tags)", name, len(got), len(types))
			}
		}
		return nil
	})
	for name, typ := range types {
		v := got[name]
		var kindOK bool
		switch typ {
		case "bool":
			kindOK = string(v) == "true" || string(v) == "false"
		case "string", "datetime", "bytes":
			kindOK = v[0] == '"'
		case "float32", "float64":
			_, err := strconv.ParseFloat(string(v), 64)
			kindOK = err == nil || v[0] == '"' // an array is JSON text
		default: // integers; 64-bit ones beyond 2^53 are strings
			_, err := strconv.ParseInt(strings.Trim(string(v), `"`), 10, 64)
			_, uerr := strconv.ParseUint(strings.Trim(string(v), `"`), 10, 64)
			kindOK = err == nil || uerr == nil || v[0] == '"'
		}
		if !kindOK {
			t.Errorf("%s (%s): got %s, not a value of that type", name, typ, v)
		}
	}
	// The constants of the Types folder: the value the browse showed is the value delivered.
	for _, name := range []string{"Types.SByte", "Types.Int16", "Types.UInt16", "Types.Int32", "Types.UInt32", "Types.Int64", "Types.UInt64"} {
		if want, g := shown[name], strings.Trim(string(got[name]), `"`); want != g {
			t.Errorf("%s: browse showed %s, the agent delivered %s", name, want, got[name])
		}
	}
	if f, err := strconv.ParseFloat(shown["Types.Float"], 64); err != nil || math.Abs(f-3.1415927) > 1e-6 {
		t.Errorf("Types.Float: browse showed %q, want 3.1415927", shown["Types.Float"])
	}
}
