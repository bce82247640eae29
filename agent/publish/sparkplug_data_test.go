package publish

import (
	"context"
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/floorlink/floorlink/agent/publish/sparkplugpb"
	"github.com/floorlink/floorlink/agent/record"
)

// decodeMetric decodes a DATA payload made of one metric with the generated code.
func decodeData(t testing.TB, b []byte) *sparkplugpb.Payload {
	t.Helper()
	var pl sparkplugpb.Payload
	if err := proto.Unmarshal(b, &pl); err != nil {
		t.Fatalf("generated code cannot decode the hand-made DATA: %v (% x)", err, b)
	}
	return &pl
}

func qualityOfMetric(m *sparkplugpb.Payload_Metric) (int32, bool) {
	ps := m.GetProperties()
	for i, k := range ps.GetKeys() {
		if k == "Quality" && i < len(ps.GetValues()) {
			v := ps.GetValues()[i]
			if v.GetType() != propertyTypeInt32 {
				return -1, true
			}
			return int32(v.GetIntValue()), true
		}
	}
	return qualityGood, false
}

// twos is v's two's complement, as Int64 travels in long_value.
func twos(v int64) uint64 { return uint64(v) }

// TestAppendDataMetric_RoundTrip: each datatype's values, encoded by the hand-made encoder,
// decode with the generated code to the field and value 6.4.16-17 give, with seq, timestamps,
// is_historical, is_null and Quality.
func TestAppendDataMetric_RoundTrip(t *testing.T) {
	long := make([]byte, 300) // a metric longer than 127 bytes moves its body
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	cases := []struct {
		name    string
		typ     DataType
		f       record.Field
		want    any // nil: is_null
		quality int32
	}{
		{"int8 negative sign-extended", TypeInt8, record.IntField("x", -5), uint32(4294967291), qualityGood},
		{"int16 negative", TypeInt16, record.IntField("x", -30000), uint32(0xffff8ad0), qualityGood},
		{"int32 min", TypeInt32, record.IntField("x", math.MinInt32), uint32(0x80000000), qualityGood},
		{"int8 out of range", TypeInt8, record.IntField("x", 300), nil, qualityBad},
		{"uint8", TypeUInt8, record.UintField("x", 255), uint32(255), qualityGood},
		{"uint16 from int", TypeUInt16, record.IntField("x", 65535), uint32(65535), qualityGood},
		{"uint32 in int_value", TypeUInt32, record.UintField("x", 4000000000), uint32(4000000000), qualityGood},
		{"uint32 negative", TypeUInt32, record.IntField("x", -1), nil, qualityBad},
		{"int64 negative", TypeInt64, record.IntField("x", -4270929666821191986), twos(-4270929666821191986), qualityGood},
		{"uint64 max", TypeUInt64, record.UintField("x", math.MaxUint64), uint64(math.MaxUint64), qualityGood},
		{"datetime", TypeDateTime, record.IntField("x", 1764059415123), uint64(1764059415123), qualityGood},
		{"float", TypeFloat, record.FloatField("x", 65.3), float32(65.3), qualityGood},
		{"float NaN", TypeFloat, record.FloatField("x", math.NaN()), nil, qualityBad},
		{"float overflow", TypeFloat, record.FloatField("x", 1e300), nil, qualityBad},
		{"double", TypeDouble, record.FloatField("x", 1.5e300), 1.5e300, qualityGood},
		{"double from int", TypeDouble, record.IntField("x", -7), -7.0, qualityGood},
		{"double inf", TypeDouble, record.FloatField("x", math.Inf(1)), nil, qualityBad},
		{"boolean true", TypeBoolean, record.BoolField("x", true), true, qualityGood},
		{"boolean false", TypeBoolean, record.BoolField("x", false), false, qualityGood},
		{"string utf8", TypeString, record.StringField("x", "ünïcödé"), "ünïcödé", qualityGood},
		{"text long", TypeText, record.StringField("x", string(long)), string(long), qualityGood},
		{"string from int", TypeString, record.IntField("x", 1), nil, qualityBad},
		{"null bad", TypeDouble, record.NullField("x", record.Bad, "timeout"), nil, qualityBad},
		{"null uncertain", TypeDouble, record.NullField("x", record.Uncertain, "stale"), nil, qualityStale},
		{"uncertain value stale", TypeDouble, record.Field{Name: "x", Kind: record.Float, Bits: math.Float64bits(20.5), Quality: record.Uncertain}, 20.5, qualityStale},
		{"bad with value", TypeInt32, record.Field{Name: "x", Kind: record.Int, Bits: 9, Quality: record.Bad}, uint32(9), qualityBad},
	}
	for _, c := range cases {
		for _, historical := range []bool{false, true} {
			t.Run(c.name, func(t *testing.T) {
				const alias, ts, now = 300, 1764059415123, 1764059416000
				b := appendDataStart(nil, now)
				b = appendDataMetric(b, alias, ts, historical, toWire(c.typ, &c.f))
				b = appendDataEnd(b, 0)
				pl := decodeData(t, b)
				if pl.Seq == nil || pl.GetSeq() != 0 || pl.GetTimestamp() != now || len(pl.GetMetrics()) != 1 {
					t.Fatalf("payload seq %v/%d timestamp %d metrics %d", pl.Seq != nil, pl.GetSeq(), pl.GetTimestamp(), len(pl.GetMetrics()))
				}
				m := pl.GetMetrics()[0]
				if m.Name != nil || m.Datatype != nil || m.GetAlias() != alias || m.GetTimestamp() != ts || m.GetIsHistorical() != historical {
					t.Fatalf("metric name %v datatype %v alias %d ts %d historical %v", m.Name != nil, m.Datatype != nil, m.GetAlias(), m.GetTimestamp(), m.GetIsHistorical())
				}
				var got any
				switch v := m.GetValue().(type) {
				case *sparkplugpb.Payload_Metric_IntValue:
					got = v.IntValue
				case *sparkplugpb.Payload_Metric_LongValue:
					got = v.LongValue
				case *sparkplugpb.Payload_Metric_FloatValue:
					got = v.FloatValue
				case *sparkplugpb.Payload_Metric_DoubleValue:
					got = v.DoubleValue
				case *sparkplugpb.Payload_Metric_BooleanValue:
					got = v.BooleanValue
				case *sparkplugpb.Payload_Metric_StringValue:
					got = v.StringValue
				}
				if got != c.want || m.GetIsNull() != (c.want == nil) {
					t.Fatalf("value %v (%T) is_null %v, want %v (%T)", got, got, m.GetIsNull(), c.want, c.want)
				}
				q, present := qualityOfMetric(m)
				if q != c.quality || present != (c.quality != qualityGood) {
					t.Fatalf("quality %d (property present %v), want %d", q, present, c.quality)
				}
			})
		}
	}
}

// FuzzAppendDataMetric: whatever the value, the hand-made metric decodes with the generated code
// to what toWire chose.
func FuzzAppendDataMetric(f *testing.F) {
	f.Add(uint8(2), uint8(3), uint64(5), "", uint8(0), uint64(1), uint64(2), true)
	f.Add(uint8(5), uint8(12), uint64(0), "x", uint8(1), uint64(1<<40), uint64(0), false)
	f.Add(uint8(4), uint8(9), math.Float64bits(65.3), "", uint8(2), uint64(0), uint64(1<<63), true)
	f.Fuzz(func(t *testing.T, kind, typ uint8, bits uint64, str string, quality uint8, alias, ts uint64, historical bool) {
		fld := record.Field{Name: "x", Kind: record.ValueKind(kind % 6), Bits: bits, Str: str, Quality: record.Quality(quality % 3)}
		v := toWire(DataType(typ%15), &fld)
		b := appendDataEnd(appendDataMetric(appendDataStart(nil, 1), alias, ts, historical, v), 7)
		pl := decodeData(t, b)
		m := pl.GetMetrics()[0]
		if pl.GetSeq() != 7 || m.GetAlias() != alias || m.GetTimestamp() != ts || m.GetIsHistorical() != historical || m.GetIsNull() != (v.field == 0) {
			t.Fatalf("round trip of %+v: %v", v, m)
		}
		if q, _ := qualityOfMetric(m); q != v.quality {
			t.Fatalf("quality %d, want %d", q, v.quality)
		}
		if v.field == fieldMetricString && m.GetStringValue() != v.str {
			t.Fatalf("string %q, want %q", m.GetStringValue(), v.str)
		}
	})
}

func benchRecord() record.Record {
	return record.Record{Kind: record.KindTelemetry, Source: "press-1", Time: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC), Fields: []record.Field{
		record.UintField("state", 1), record.UintField("tick", 123456), record.UintField("parts_total", 48213),
		record.UintField("good_total", 47250), record.UintField("reject_total", 963),
		record.FloatField("temperature", 64.87), record.FloatField("pressure", 6.02),
		record.UintField("cycle_time_ms", 2100), record.IntField("spindle_speed", -1995),
		record.BoolField("running", true),
	}}
}

func benchSparkplug(tb testing.TB) *sparkplug {
	tb.Helper()
	rec := benchRecord()
	types := []DataType{TypeUInt16, TypeUInt32, TypeUInt32, TypeUInt32, TypeUInt32, TypeFloat, TypeDouble, TypeUInt32, TypeInt16, TypeBoolean}
	var ms []Metric
	for i, f := range rec.Fields {
		ms = append(ms, Metric{Name: f.Name, Type: types[i]})
	}
	p, err := New(nopSource{}, Options{Brokers: []string{"tcp://127.0.0.1:1"}, Gateway: "gw", Site: "s", Epoch: "e",
		Format: FormatSparkplug, Sparkplug: SparkplugOptions{GroupID: "g",
			Devices: []SparkplugDevice{{Source: "press-1", Metrics: ms}}}}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	s := p.mode.(*sparkplug)
	s.devices[0].born = true
	return s
}

// TestSparkplugEncode_NoAllocs: a DATA message costs no allocation per metric (nor per message)
// once the buffers have grown.
func TestSparkplugEncode_NoAllocs(t *testing.T) {
	s := benchSparkplug(t)
	rec := benchRecord()
	out := make([]slot, 0, 4)
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(1000, func() {
		out, _ = s.encode(out[:0], 1, &rec, true, buf[:0])
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per DATA message of %d metrics, want 0", allocs, len(rec.Fields))
	}
	pl := decodeData(t, out[0].buf)
	if len(pl.GetMetrics()) != len(rec.Fields) {
		t.Fatalf("%d metrics, want %d", len(pl.GetMetrics()), len(rec.Fields))
	}
}

// BenchmarkSparkplugEncode is the cost of one DATA message per metric count.
func BenchmarkSparkplugEncode(b *testing.B) {
	s := benchSparkplug(b)
	rec := benchRecord()
	out := make([]slot, 0, 4)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		out, _ = s.encode(out[:0], 1, &rec, true, buf[:0])
	}
	b.SetBytes(int64(len(out[0].buf)))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rec.Fields)), "ns/metric")
}

// BenchmarkJSONEncode is the same record as a JSON message, for comparison.
func BenchmarkJSONEncode(b *testing.B) {
	rec := benchRecord()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRecordJSON(buf[:0], envelope{gateway: "gw", epoch: "e", seq: 1, historical: true}, &rec)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rec.Fields)), "ns/metric")
}

// TestSparkplugEncode_Split: a record larger than MaxMessageBytes goes as several DDATA, each
// within the limit and with its own seq; a value alone too large goes as null, bad.
func TestSparkplugEncode_Split(t *testing.T) {
	s := benchSparkplug(t)
	s.p.opts.MaxMessageBytes = 40
	rec := benchRecord()
	out, err := s.encode(nil, 9, &rec, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 2 {
		t.Fatalf("%d messages, want a split", len(out))
	}
	n := 0
	for i, sl := range out {
		if len(sl.buf) > 40 || sl.seq != 9 || sl.more != (i < len(out)-1) {
			t.Fatalf("part %d: %d bytes, seq %d, more %v", i, len(sl.buf), sl.seq, sl.more)
		}
		pl := decodeData(t, sl.buf)
		if pl.GetSeq() != uint64(i) {
			t.Fatalf("part %d has seq %d", i, pl.GetSeq())
		}
		n += len(pl.GetMetrics())
	}
	if n != len(rec.Fields) {
		t.Fatalf("%d metrics in the parts, want %d", n, len(rec.Fields))
	}
}

// TestHorizon: the cursor passes a confirmed seq only HoldBack after its confirmation.
func TestHorizon(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := horizon{d: 10 * time.Second, passed: 5, last: 5}
	h.confirm(10, t0)
	h.confirm(20, t0.Add(4*time.Second))
	h.confirm(20, t0.Add(5*time.Second)) // nothing new
	if got := h.ready(20, t0.Add(9*time.Second)); got != 5 {
		t.Fatalf("ready at 9 s = %d, want 5", got)
	}
	if got := h.ready(20, t0.Add(10*time.Second)); got != 10 {
		t.Fatalf("ready at 10 s = %d, want 10", got)
	}
	if got := h.ready(20, t0.Add(14*time.Second)); got != 20 {
		t.Fatalf("ready at 14 s = %d, want 20", got)
	}
	if h.due(t0) != nil {
		t.Fatal("a timer with nothing held")
	}
	if got := (&horizon{}).ready(7, t0); got != 7 {
		t.Fatalf("no hold-back: ready = %d, want 7", got)
	}
}

type nopSource struct{}

func (nopSource) ReadAfter(uint64, int, func(uint64, []byte) error) error { return nil }
func (nopSource) Ack(uint64) error                                        { return nil }
func (nopSource) Cursor() uint64                                          { return 0 }
func (nopSource) Head() uint64                                            { return 0 }
func (nopSource) Wait(ctx context.Context, _ uint64) error                { <-ctx.Done(); return ctx.Err() }
