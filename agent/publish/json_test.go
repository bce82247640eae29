package publish

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/agent/record"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var ts = time.Date(2026, 11, 25, 8, 30, 15, 123456789, time.UTC)

func jsonCases() []struct {
	name string
	env  envelope
	rec  record.Record
} {
	env := envelope{gateway: "gw-press-01", epoch: "00c0ffee00c0ffee", seq: 42}
	return []struct {
		name string
		env  envelope
		rec  record.Record
	}{
		{"telemetry", env, record.Record{Kind: record.KindTelemetry, Source: "press-1", Time: ts, Fields: []record.Field{
			record.UintField("state", 1), record.UintField("parts_total", 123456), record.FloatField("oil_temp", float64(float32(65.3))),
			record.FloatField("pressure", 6.125), record.IntField("spindle_speed", -1500), record.BoolField("running", true),
		}}},
		{"quality", envelope{gateway: "gw", epoch: "00c0ffee00c0ffee", seq: 7, historical: true}, record.Record{Kind: record.KindTelemetry, Source: "press-1", Time: ts, Fields: []record.Field{
			record.NullField("state", record.Bad, "timeout"),
			{Name: "temp", Kind: record.Float, Bits: math.Float64bits(20.5), Quality: record.Uncertain, Reason: "sensor cal"},
			record.NullField("no_reason", record.Bad, ""),
			record.FloatField("nan", math.NaN()), record.FloatField("inf", math.Inf(-1)),
			{Name: "stamped", Kind: record.Int, Bits: 5, SourceTime: ts.Add(-1500 * time.Millisecond)},
			{Name: "same_ms", Kind: record.Int, Bits: 6, SourceTime: ts.Add(100 * time.Microsecond)},
		}}},
		{"big_ints", env, record.Record{Kind: record.KindTelemetry, Source: "meter", Time: ts, Fields: []record.Field{
			record.UintField("max_safe", 1<<53), record.UintField("beyond", 1<<53+1), record.IntField("neg_beyond", -(1<<53)-1),
			record.UintField("u64max", math.MaxUint64), record.IntField("i64min", math.MinInt64),
			record.FloatField("tiny", 1e-300), record.FloatField("huge", 1.5e300), record.FloatField("neg_zero", math.Copysign(0, -1)),
		}}},
		{"event", env, record.Record{Kind: record.KindEvent, Source: "press-1", Time: ts, Fields: []record.Field{
			record.StringField("event", "disconnected"),
			record.StringField("error", "dial tcp 127.0.0.1:5020: connect: \"refused\"\n\ttab \x01 ctl \xff bad utf8 ünïcödé"),
		}}},
		{"empty", env, record.Record{Kind: record.KindTelemetry, Source: "idle", Time: ts}},
	}
}

// TestAppendRecordJSON_Golden pins the exact bytes of the contract; -update rewrites them for
// review in the diff.
func TestAppendRecordJSON_Golden(t *testing.T) {
	schema := mqtttest.CompileSchema(t, "record.schema.json", mustRead(t, "schema/record.schema.json"))
	var got bytes.Buffer
	for _, c := range jsonCases() {
		msg := appendRecordJSON(nil, c.env, &c.rec)
		if !json.Valid(msg) {
			t.Fatalf("%s: invalid JSON: %s", c.name, msg)
		}
		if err := schema.Validate(msg); err != nil {
			t.Errorf("%s: does not validate against record.schema.json: %v\n%s", c.name, err, msg)
		}
		got.WriteString(c.name + "\n" + string(msg) + "\n")
	}
	golden := filepath.Join("testdata", "json.golden")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := mustRead(t, golden)
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("JSON differs from %s (run with -update and review the diff):\ngot:\n%s\nwant:\n%s", golden, got.Bytes(), want)
	}
}

func TestAppendRecordJSON_Values(t *testing.T) {
	c := jsonCases()[2]
	var m struct {
		Values  map[string]any    `json:"values"`
		Quality map[string]string `json:"quality"`
	}
	if err := json.Unmarshal(appendRecordJSON(nil, c.env, &c.rec), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"max_safe": float64(1 << 53), "beyond": "9007199254740993", "neg_beyond": "-9007199254740993",
		"u64max": "18446744073709551615", "i64min": "-9223372036854775808", "tiny": 1e-300, "huge": 1.5e300, "neg_zero": float64(0)}
	for k, v := range want {
		if m.Values[k] != v {
			t.Errorf("values[%s] = %#v, want %#v", k, m.Values[k], v)
		}
	}
	q := jsonCases()[1]
	if err := json.Unmarshal(appendRecordJSON(nil, q.env, &q.rec), &m); err != nil {
		t.Fatal(err)
	}
	wantQ := map[string]string{"state": "bad:timeout", "temp": "uncertain:sensor cal", "no_reason": "bad", "nan": "bad:nan", "inf": "bad:inf"}
	for k, v := range wantQ {
		if m.Quality[k] != v {
			t.Errorf("quality[%s] = %q, want %q", k, m.Quality[k], v)
		}
	}
	if len(m.Quality) != len(wantQ) {
		t.Errorf("quality = %v, want exactly %v", m.Quality, wantQ)
	}
}

func TestAppendStatusJSON_Schema(t *testing.T) {
	schema := mqtttest.CompileSchema(t, "status.schema.json", mustRead(t, "schema/status.schema.json"))
	for _, state := range []string{"online", "offline"} {
		msg := appendStatusJSON(nil, state, ts, 3)
		if err := schema.Validate(msg); err != nil {
			t.Errorf("%s status %s: %v", state, msg, err)
		}
	}
	if err := schema.Validate([]byte(`{"state":"maybe","ts":"2026-11-25T08:30:15.123Z","session":1}`)); err == nil {
		t.Error("schema accepts an unknown state")
	}
}

// TestSchemas_DocsCopy keeps the integrators' copy in docs/ equal to the embedded schemas.
func TestSchemas_DocsCopy(t *testing.T) {
	for _, name := range []string{"record.schema.json", "status.schema.json"} {
		embedded, err := Schemas.ReadFile("schema/" + name)
		if err != nil {
			t.Fatal(err)
		}
		docs := mustRead(t, filepath.Join("..", "..", "docs", "mqtt", name))
		if !bytes.Equal(embedded, docs) {
			t.Errorf("docs/mqtt/%s differs from agent/publish/schema/%s: copy it over", name, name)
		}
	}
}

func TestAppendRecordJSON_Allocs(t *testing.T) {
	c := jsonCases()[0]
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = appendRecordJSON(buf[:0], c.env, &c.rec)
	})
	if allocs != 0 {
		t.Errorf("appendRecordJSON allocates %.1f times per record, want 0", allocs)
	}
}

func BenchmarkAppendRecordJSON(b *testing.B) {
	for _, n := range []int{10, 100} {
		rec := record.Record{Kind: record.KindTelemetry, Source: "press-1", Time: ts}
		for i := range n {
			rec.Fields = append(rec.Fields, record.FloatField("tag_"+string(rune('a'+i%26))+string(rune('a'+i/26)), float64(i)*1.25))
		}
		b.Run(fmt.Sprintf("fields=%d", n), func(b *testing.B) {
			env := envelope{gateway: "gw", epoch: "00c0ffee00c0ffee", seq: 1}
			buf := make([]byte, 0, 8192)
			b.ReportAllocs()
			for b.Loop() {
				buf = appendRecordJSON(buf[:0], env, &rec)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
