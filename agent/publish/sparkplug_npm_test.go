package publish

// Issue 8, acceptance 2: every payload type the edge node emits, decoded by npm
// sparkplug-payload 1.0.3 (scripts/sparkplug/decode.js), an implementation that shares nothing
// with ours. DATA and UInt32 are compared on its raw wire view: its library view picks the value
// field by datatype, which alias-only DATA does not repeat, and reads UInt32 from long_value.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent/record"
)

// npmDecode runs decode.js over payloads and returns one JSON object per payload.
func npmDecode(t *testing.T, raw bool, payloads ...[]byte) []map[string]any {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	modules := filepath.Join(root, ".deps", "sparkplug", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "sparkplug-payload", "package.json")); err != nil {
		t.Fatalf("npm sparkplug-payload is not installed in %s: run `make deps`", modules)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (Node.js 20 runs the independent decoder): run `make deps`: %v", err)
	}
	dir := t.TempDir()
	args := []string{filepath.Join(root, "scripts", "sparkplug", "decode.js")}
	if raw {
		args = append(args, "--raw")
	}
	for i, p := range payloads {
		f := filepath.Join(dir, fmt.Sprintf("%d.bin", i))
		if err := os.WriteFile(f, p, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, f)
	}
	cmd := exec.Command(node, args...)
	cmd.Env = append(os.Environ(), "SPARKPLUG_NODE_MODULES="+modules)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node decode.js: %v: %s", err, stderr.String())
	}
	var views []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v map[string]any
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber() // numbers as printed, so that 64-bit values and floats compare exactly
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("decode.js printed %q: %v", sc.Text(), err)
		}
		views = append(views, v)
	}
	if len(views) != len(payloads) {
		t.Fatalf("decode.js printed %d views for %d payloads", len(views), len(payloads))
	}
	return views
}

// npmMetrics indexes a view's metrics by name (library view) or alias (raw view).
func npmMetrics(t *testing.T, view map[string]any, key string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	ms, _ := view["metrics"].([]any)
	for _, m := range ms {
		mm := m.(map[string]any)
		out[fmt.Sprint(mm[key])] = mm
	}
	return out
}

// allTypes is a device with one metric of each datatype and a record with a value for each.
func allTypes() ([]Metric, record.Record) {
	at := time.Date(2026, 11, 25, 8, 30, 15, 123000000, time.UTC)
	ms := []Metric{
		{"i8", TypeInt8}, {"i16", TypeInt16}, {"i32", TypeInt32}, {"i64", TypeInt64},
		{"u8", TypeUInt8}, {"u16", TypeUInt16}, {"u32", TypeUInt32}, {"u64", TypeUInt64},
		{"f32", TypeFloat}, {"f64", TypeDouble}, {"bool", TypeBoolean}, {"str", TypeString},
		{"when", TypeDateTime}, {"text", TypeText}, {"missing", TypeDouble}, {"shaky", TypeDouble},
	}
	rec := record.Record{Kind: record.KindTelemetry, Source: "press-1", Time: at, Fields: []record.Field{
		record.IntField("i8", -5), record.IntField("i16", -30000), record.IntField("i32", -123456789),
		record.IntField("i64", -4270929666821191986), record.UintField("u8", 200), record.UintField("u16", 65000),
		record.UintField("u32", 4000000000), record.UintField("u64", 16444743074749521625),
		record.FloatField("f32", float64(float32(65.3))), record.FloatField("f64", 1.5e300), record.BoolField("bool", false),
		record.StringField("str", "ünïcödé"), record.IntField("when", at.UnixMilli()), record.StringField("text", "long text"),
		record.NullField("missing", record.Bad, "timeout"),
		{Name: "shaky", Kind: record.Float, Bits: math.Float64bits(20.5), Quality: record.Uncertain, SourceTime: at.Add(-time.Second)},
	}}
	return ms, rec
}

func TestSparkplug_NpmDecoder(t *testing.T) {
	ms, rec := allTypes()
	now := time.Date(2026, 11, 25, 8, 30, 16, 0, time.UTC)
	p, err := New(nopSource{}, Options{Brokers: []string{"tcp://127.0.0.1:1"}, Gateway: "gw", Site: "s", Epoch: "e",
		Now: func() time.Time { return now }, Format: FormatSparkplug, Sparkplug: SparkplugOptions{GroupID: "g",
			NodeMetrics: []Metric{{"Event/event", TypeString}},
			Devices:     []SparkplugDevice{{Source: "press-1", Metrics: ms}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := p.mode.(*sparkplug)
	s.bdSeq = 7
	d := s.devices[0]
	d.born = true
	s.seq = 3
	ddata, _ := s.encode(nil, 1, &rec, true, nil) // seq 3; also the values the birth shows
	ev := record.Record{Kind: record.KindEvent, Time: now, Fields: []record.Field{record.StringField("event", "clock_jump")}}
	ndata, _ := s.encode(nil, 2, &ev, false, nil) // seq 4
	payloads := [][]byte{
		s.nodeBirth(now, 0),
		s.deviceBirth(d, now, 1),
		ddata[0].buf,
		ndata[0].buf,
		s.deviceDeath(now, 5),
		s.deathPayload(now),
	}
	lib := npmDecode(t, false, payloads...)
	wire := npmDecode(t, true, payloads...)
	nowMS := strconv.FormatInt(now.UnixMilli(), 10)
	eq := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v (%T), want %v", what, got, got, want)
		}
	}

	t.Run("NBIRTH", func(t *testing.T) {
		v := lib[0]
		eq("seq", v["seq"], "0")
		eq("timestamp", v["timestamp"], nowMS)
		m := npmMetrics(t, v, "name")
		eq("bdSeq type", m["bdSeq"]["type"], "Int64")
		eq("bdSeq", m["bdSeq"]["value"], "7")
		eq("rebirth type", m["Node Control/Rebirth"]["type"], "Boolean")
		eq("rebirth", m["Node Control/Rebirth"]["value"], false)
		eq("rebirth alias", m["Node Control/Rebirth"]["alias"], nil)
		eq("event type", m["Event/event"]["type"], "String")
	})
	t.Run("DBIRTH", func(t *testing.T) {
		v := lib[1]
		eq("seq", v["seq"], "1")
		m := npmMetrics(t, v, "name")
		want := map[string][2]any{
			"i8": {"Int8", -5}, "i16": {"Int16", -30000}, "i32": {"Int32", -123456789},
			"i64": {"Int64", "-4270929666821191986"}, "u8": {"UInt8", 200}, "u16": {"UInt16", 65000},
			"u64": {"UInt64", "16444743074749521625"}, "f64": {"Double", "1.5e+300"}, "bool": {"Boolean", false},
			"str": {"String", "ünïcödé"}, "when": {"DateTime", strconv.FormatInt(rec.Time.UnixMilli(), 10)},
			"text": {"Text", "long text"}, "missing": {"Double", nil}, "shaky": {"Double", 20.5},
			"u32": {"UInt32", nil}, // the library reads UInt32 from long_value: see the wire view
		}
		for name, tv := range want {
			eq(name+" type", m[name]["type"], tv[0])
			eq(name+" value", m[name]["value"], tv[1])
			ts := rec.Time.UnixMilli()
			if name == "shaky" {
				ts -= 1000 // its source time
			}
			eq(name+" timestamp", m[name]["timestamp"], ts)
		}
		if f, _ := strconv.ParseFloat(fmt.Sprint(m["f32"]["value"]), 64); float32(f) != float32(65.3) {
			t.Errorf("f32 = %v, want 65.3 as float32", m["f32"]["value"])
		}
		eq("missing quality", m["missing"]["properties"], map[string]any{"Quality": map[string]any{"type": "Int32", "value": 0}})
		eq("shaky quality", m["shaky"]["properties"], map[string]any{"Quality": map[string]any{"type": "Int32", "value": 500}})
		raw := npmMetrics(t, wire[1], "name")
		eq("u32 on the wire", raw["u32"]["intValue"], 4000000000)
		eq("u32 oneof", raw["u32"]["value"], "intValue")
		eq("i8 on the wire", raw["i8"]["intValue"], 4294967291)
		eq("missing is_null on the wire", raw["missing"]["isNull"], true)
		eq("missing value on the wire", raw["missing"]["value"], nil)
	})
	aliases := map[string]string{} // alias → name, from the birth
	for name, m := range npmMetrics(t, lib[1], "name") {
		aliases[fmt.Sprint(m["alias"])] = name
	}
	t.Run("DDATA_raw", func(t *testing.T) {
		v := wire[2]
		eq("seq", v["seq"], "3")
		eq("timestamp", v["timestamp"], nowMS)
		byAlias := npmMetrics(t, v, "alias")
		if len(byAlias) != len(rec.Fields) {
			t.Fatalf("%d metrics, want %d", len(byAlias), len(rec.Fields))
		}
		want := map[string][2]any{
			"i8": {"intValue", 4294967291}, "i16": {"intValue", 4294937296}, "i32": {"intValue", 4171510507},
			"i64": {"longValue", strconv.FormatUint(uint64(rec.Fields[3].IntValue()), 10)}, "u8": {"intValue", 200}, "u16": {"intValue", 65000},
			"u32": {"intValue", 4000000000}, "u64": {"longValue", "16444743074749521625"},
			"f64": {"doubleValue", "1.5e+300"}, "bool": {"booleanValue", false}, "str": {"stringValue", "ünïcödé"},
			"when": {"longValue", strconv.FormatInt(rec.Time.UnixMilli(), 10)}, "text": {"stringValue", "long text"},
			"shaky": {"doubleValue", 20.5},
		}
		for alias, m := range byAlias {
			name := aliases[alias]
			if m["name"] != nil || m["datatype"] != nil {
				t.Errorf("%s: name %v datatype %v in DATA", name, m["name"], m["datatype"])
			}
			eq(name+" historical", m["isHistorical"], true)
			ts := rec.Time.UnixMilli()
			if name == "shaky" {
				ts -= 1000
			}
			eq(name+" timestamp", m["timestamp"], strconv.FormatInt(ts, 10))
			if w, ok := want[name]; ok {
				eq(name+" field", m["value"], w[0])
				eq(name+" value", m[w[0].(string)], w[1])
			}
		}
		for alias, m := range byAlias {
			if aliases[alias] == "missing" {
				eq("missing is_null", m["isNull"], true)
				eq("missing value", m["value"], nil)
			}
		}
	})
	t.Run("NDATA_raw", func(t *testing.T) {
		v := wire[3]
		eq("seq", v["seq"], "4")
		ms, _ := v["metrics"].([]any)
		if len(ms) != 1 {
			t.Fatalf("%d metrics", len(ms))
		}
		m := ms[0].(map[string]any)
		eq("event", m["stringValue"], "clock_jump")
		eq("historical", m["isHistorical"], nil)
	})
	t.Run("DDEATH", func(t *testing.T) {
		eq("seq", lib[4]["seq"], "5")
		eq("timestamp", lib[4]["timestamp"], nowMS)
		if ms, _ := lib[4]["metrics"].([]any); len(ms) != 0 {
			t.Errorf("DDEATH has %d metrics", len(ms))
		}
	})
	t.Run("NDEATH", func(t *testing.T) {
		v := lib[5]
		eq("seq", v["seq"], nil)
		m := npmMetrics(t, v, "name")
		eq("bdSeq type", m["bdSeq"]["type"], "Int64")
		eq("bdSeq", m["bdSeq"]["value"], "7")
		if len(m) != 1 {
			t.Errorf("%d metrics, want bdSeq alone", len(m))
		}
	})
}
