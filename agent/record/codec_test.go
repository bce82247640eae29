package record

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite testdata/v1.golden from the records in goldenRecords")

// t0 is a record time with all nine digits of nanoseconds in use.
var t0 = time.Date(2026, 11, 25, 7, 34, 41, 123456789, time.UTC)

// withQuality returns f with quality q, a reason and a source time.
func withQuality(f Field, q Quality, reason string, st time.Time) Field {
	f.Quality, f.Reason, f.SourceTime = q, reason, st
	return f
}

// telemetryRecord returns a telemetry record of n fields of every numeric kind, a few of them
// uncertain or bad with reasons and source times, as a device's poll cycle produces.
func telemetryRecord(n int) Record {
	r := Record{Kind: KindTelemetry, Source: "press-1", Time: t0}
	for i := range n {
		name := fmt.Sprintf("line1.press1.tag%03d", i)
		var f Field
		switch i % 5 {
		case 0:
			f = FloatField(name, 20+float64(i)/8)
		case 1:
			f = IntField(name, int64(-i*1000))
		case 2:
			f = UintField(name, uint64(i)<<33)
		case 3:
			f = BoolField(name, i%2 == 1)
		case 4:
			f = FloatField(name, math.Pi*float64(i))
			f.SourceTime = t0.Add(-time.Duration(i) * time.Millisecond)
		}
		if i%7 == 6 {
			f.Quality, f.Reason = Uncertain, "stale"
		}
		if i%11 == 10 {
			f = NullField(name, Bad, "timeout")
		}
		r.Fields = append(r.Fields, f)
	}
	return r
}

// goldenRecords are the records pinned in testdata/v1.golden, in file order.
func goldenRecords() []struct {
	name string
	rec  Record
} {
	negZero := math.Copysign(0, -1)
	nanPayload := math.Float64frombits(0x7ff8_0000_dead_beef)
	return []struct {
		name string
		rec  Record
	}{
		{"telemetry", Record{Kind: KindTelemetry, Source: "press-1", Time: t0, Fields: []Field{
			FloatField("temperature", 71.5),
			IntField("parts", 12345),
			UintField("ticks", 1<<40),
			BoolField("running", true),
			BoolField("door_open", false),
			withQuality(FloatField("spindle_rpm", 1200), Uncertain, "stale", t0.Add(-250*time.Millisecond)),
			NullField("pressure", Bad, "timeout"),
		}}},
		{"kpi", Record{Kind: KindKPI, Source: "line-1", Time: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC), Fields: []Field{
			FloatField("availability", 0.93),
			FloatField("performance", 0.871),
			FloatField("quality", 0.995),
			UintField("good_parts", 4711),
			UintField("reject_parts", 12),
			IntField("downtime_ms", 480000),
		}}},
		{"event", Record{Kind: KindEvent, Source: "press-1", Time: t0, Fields: []Field{
			StringField("event", "disconnected"),
			StringField("error", "dial tcp 10.0.0.5:502: i/o timeout"),
			UintField("dropped_first_seq", 100),
			UintField("dropped_last_seq", 199),
		}}},
		{"edge", Record{Kind: KindEvent, Fields: []Field{
			FloatField("nan", nanPayload),
			FloatField("-0", negZero),
			FloatField("+inf", math.Inf(1)),
			FloatField("-inf", math.Inf(-1)),
			IntField("min_int64", math.MinInt64),
			IntField("max_int64", math.MaxInt64),
			UintField("max_uint64", math.MaxUint64),
			withQuality(StringField("温度 ℃", ""), Good, "", time.Unix(0, 1).UTC()),
			withQuality(NullField(strings.Repeat("n", 130), Uncertain, ""), Uncertain, "", time.Unix(0, math.MinInt64+1).UTC()),
		}}},
	}
}

// normalize returns what Decode should give for r: only what AppendBinary encodes, times in UTC.
func normalize(r Record) Record {
	out := r
	if !out.Time.IsZero() {
		out.Time = out.Time.UTC()
	} else {
		out.Time = time.Time{}
	}
	out.Fields = make([]Field, len(r.Fields))
	for i, f := range r.Fields {
		switch f.Kind {
		case Null:
			f.Bits = 0
		case Bool:
			if f.Bits != 0 {
				f.Bits = 1
			}
		case String:
			f.Bits = 0
		}
		if f.Kind != String {
			f.Str = ""
		}
		if f.SourceTime.IsZero() {
			f.SourceTime = time.Time{}
		} else {
			f.SourceTime = f.SourceTime.UTC()
		}
		out.Fields[i] = f
	}
	return out
}

// sameRecord reports whether a and b hold the same data, times compared as instants and floats
// by their bits.
func sameRecord(a, b Record) bool {
	if a.Kind != b.Kind || a.Source != b.Source || !a.Time.Equal(b.Time) || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i := range a.Fields {
		fa, fb := a.Fields[i], b.Fields[i]
		if !fa.SourceTime.Equal(fb.SourceTime) {
			return false
		}
		fa.SourceTime, fb.SourceTime = time.Time{}, time.Time{}
		if fa != fb {
			return false
		}
	}
	return true
}

// checkUTC checks that r's times are in UTC: cmp compares times with Equal, which ignores the
// location. Float values compare exactly, NaN payloads included, since Field holds their Bits.
func checkUTC(t testing.TB, r *Record) {
	t.Helper()
	if !r.Time.IsZero() && r.Time.Location() != time.UTC {
		t.Errorf("record time %v: location %v, want UTC", r.Time, r.Time.Location())
	}
	for i := range r.Fields {
		if st := r.Fields[i].SourceTime; !st.IsZero() && st.Location() != time.UTC {
			t.Errorf("field %d source time %v: location %v, want UTC", i, st, st.Location())
		}
	}
}

// roundTrip encodes r, decodes it and checks the result against normalize(r), and that the
// encoding of the result is the same bytes. It returns the encoding.
func roundTrip(t testing.TB, r Record) []byte {
	t.Helper()
	enc, err := r.AppendBinary(nil)
	if err != nil {
		t.Fatalf("AppendBinary: %v", err)
	}
	var d Decoder
	var got Record
	if err := d.Decode(enc, &got); err != nil {
		t.Fatalf("Decode: %v\n%s", err, hex.Dump(enc))
	}
	// cmp is slow on 65535 fields under -race: use it only to show a difference.
	if want := normalize(r); !sameRecord(want, got) {
		t.Errorf("decoded record differs (-want +got):\n%s", cmp.Diff(want, got, cmpopts.EquateEmpty()))
	}
	checkUTC(t, &got)
	again, err := got.AppendBinary(nil)
	if err != nil {
		t.Fatalf("AppendBinary of decoded record: %v", err)
	}
	if !bytes.Equal(enc, again) {
		t.Errorf("re-encoding differs:\n%s\nwant\n%s", hex.Dump(again), hex.Dump(enc))
	}
	return enc
}

func TestRecord_AppendBinary_RoundTrip(t *testing.T) {
	rt := t0
	local := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		rec  Record
	}{
		{"no fields", Record{Kind: KindTelemetry, Source: "press-1", Time: t0}},
		{"zero time, empty source", Record{Kind: KindEvent, Fields: []Field{StringField("event", "started")}}},
		{"null", Record{Kind: KindTelemetry, Time: t0, Fields: []Field{NullField("x", Good, "")}}},
		{"bool true", Record{Kind: KindTelemetry, Time: t0, Fields: []Field{BoolField("x", true)}}},
		{"bool false", Record{Kind: KindTelemetry, Time: t0, Fields: []Field{BoolField("x", false)}}},
		{"bool bits other than 1", Record{Kind: KindTelemetry, Time: t0, Fields: []Field{{Name: "x", Kind: Bool, Bits: 0xff00}}}},
		{"int", Record{Kind: KindTelemetry, Time: t0, Fields: []Field{
			IntField("zero", 0), IntField("neg", -1), IntField("min", math.MinInt64), IntField("max", math.MaxInt64),
		}}},
		{"uint", Record{Kind: KindTelemetry, Time: t0, Fields: []Field{
			UintField("zero", 0), UintField("127", 127), UintField("128", 128), UintField("max", math.MaxUint64),
		}}},
		{"float", Record{Kind: KindTelemetry, Time: t0, Fields: []Field{
			FloatField("pi", math.Pi),
			FloatField("+0", 0),
			FloatField("-0", math.Copysign(0, -1)),
			FloatField("+inf", math.Inf(1)),
			FloatField("-inf", math.Inf(-1)),
			FloatField("nan", math.NaN()),
			{Name: "nan payload", Kind: Float, Bits: 0xfff0_0000_0000_0001}, // signalling, negative
			FloatField("smallest", math.SmallestNonzeroFloat64),
			FloatField("max", math.MaxFloat64),
		}}},
		{"string", Record{Kind: KindEvent, Time: t0, Fields: []Field{
			StringField("empty", ""), StringField("text", "dial tcp: i/o timeout"),
			StringField("binary", "\x00\xff\xfe"), StringField("long", strings.Repeat("x", 70000)),
		}}},
		{"unused parts are dropped", Record{Kind: KindTelemetry, Time: t0, Fields: []Field{
			{Name: "null", Kind: Null, Bits: 5, Str: "s"},
			{Name: "int", Kind: Int, Bits: 5, Str: "s"},
			{Name: "string", Kind: String, Bits: 5, Str: "s"},
		}}},
		{"qualities and reasons", Record{Kind: KindTelemetry, Time: t0, Fields: []Field{
			withQuality(FloatField("good", 1), Good, "", time.Time{}),
			withQuality(FloatField("good with reason", 1), Good, "recovered", time.Time{}),
			withQuality(FloatField("uncertain", 1), Uncertain, "stale", time.Time{}),
			withQuality(FloatField("uncertain without reason", 1), Uncertain, "", time.Time{}),
			NullField("bad", Bad, "timeout"),
			NullField("bad long reason", Bad, strings.Repeat("r", 300)),
		}}},
		{"source times", Record{Kind: KindTelemetry, Time: rt, Fields: []Field{
			withQuality(IntField("before", 1), Good, "", rt.Add(-time.Nanosecond)),
			withQuality(IntField("equal", 1), Good, "", rt),
			withQuality(IntField("after", 1), Good, "", rt.Add(time.Hour)),
			withQuality(IntField("far before", 1), Good, "", time.Unix(0, math.MinInt64+1)),
			withQuality(IntField("far after", 1), Good, "", time.Unix(0, math.MaxInt64)),
			withQuality(IntField("epoch", 1), Good, "", time.Unix(0, 0)),
			withQuality(IntField("local zone", 1), Good, "", rt.In(local)),
		}}},
		{"source time with zero record time", Record{Kind: KindEvent, Fields: []Field{
			withQuality(IntField("st", 1), Good, "", t0),
		}}},
		{"time extremes, source times wrap", Record{Kind: KindTelemetry, Time: time.Unix(0, math.MinInt64+1), Fields: []Field{
			withQuality(IntField("max", 1), Good, "", time.Unix(0, math.MaxInt64)),
		}}},
		{"max time", Record{Kind: KindTelemetry, Time: time.Unix(0, math.MaxInt64), Fields: []Field{
			withQuality(IntField("min", 1), Good, "", time.Unix(0, math.MinInt64+1)),
		}}},
		{"epoch time", Record{Kind: KindKPI, Time: time.Unix(0, 0)}},
		{"local time and monotonic reading", Record{Kind: KindTelemetry, Time: time.Now().In(local)}},
		{"unicode names", Record{Kind: KindTelemetry, Source: "Presse-Ä", Time: t0, Fields: []Field{
			FloatField("温度", 1), FloatField("Δp", 2), FloatField("🏭", 3), FloatField("\x00", 4),
		}}},
		{"names of 1 and 255 bytes", Record{Kind: KindTelemetry, Time: t0, Fields: []Field{
			FloatField("a", 1), FloatField(strings.Repeat("b", 255), 2),
		}}},
		{"telemetry 50", telemetryRecord(50)},
		{"telemetry 512, the most without a map", telemetryRecord(maxFiltered)},
		{"telemetry 513", telemetryRecord(maxFiltered + 1)},
		{"max fields", manyFields(maxFields)},
	}
	for _, gr := range goldenRecords() {
		tests = append(tests, struct {
			name string
			rec  Record
		}{"golden " + gr.name, gr.rec})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			roundTrip(t, tt.rec)
		})
	}
}

// manyFields returns a record of n null fields with distinct names.
func manyFields(n int) Record {
	r := Record{Kind: KindTelemetry, Time: t0, Fields: make([]Field, n)}
	for i := range r.Fields {
		r.Fields[i] = NullField(fmt.Sprintf("f%d", i), Good, "")
	}
	return r
}

func TestRecord_AppendBinary_AppendsToBuffer(t *testing.T) {
	r := goldenRecords()[0].rec
	alone, err := r.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	prefix := []byte("prefix")
	got, err := r.AppendBinary(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("prefix"), alone...); !bytes.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRecord_AppendBinary_Invalid(t *testing.T) {
	good := func(fs ...Field) Record { return Record{Kind: KindTelemetry, Time: t0, Fields: fs} }
	dup := func(n int) Record {
		r := manyFields(n)
		r.Fields[n-1].Name = r.Fields[n/2].Name
		return r
	}
	tests := []struct {
		name string
		rec  Record
		want string // in the error message
	}{
		{"kind 0", Record{Time: t0}, "kind 0"},
		{"kind 4", Record{Kind: 4, Time: t0}, "kind 4"},
		{"time before 1678", Record{Kind: KindTelemetry, Time: time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)}, "time 1600"},
		{"time after 2262", Record{Kind: KindTelemetry, Time: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}, "time 2300"},
		{"time is MinInt64 ns", Record{Kind: KindTelemetry, Time: time.Unix(0, math.MinInt64)}, "out of range"},
		{"source time out of range", good(withQuality(IntField("x", 1), Good, "", time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC))), `field 0 "x": source time`},
		{"empty name", good(IntField("", 1)), "field 0: empty name"},
		{"name of 256 bytes", good(IntField("a", 1), IntField(strings.Repeat("x", 256), 1)), "field 1: name"},
		{"value kind 6", good(Field{Name: "x", Kind: 6}), "value kind 6"},
		{"value kind 255", good(Field{Name: "x", Kind: 255}), "value kind 255"},
		{"quality 3", good(Field{Name: "x", Quality: 3}), "quality 3"},
		{"duplicate name", good(IntField("x", 1), IntField("y", 1), FloatField("x", 2)), `fields 0 and 2: duplicate name "x"`},
		{"duplicate name, 100 fields", dup(100), `fields 50 and 99: duplicate name "f50"`},
		{"duplicate name, 600 fields", dup(600), `fields 300 and 599: duplicate name "f300"`},
		{"too many fields", manyFields(maxFields + 1), "65536 fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix")
			got, err := tt.rec.AppendBinary(prefix)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got error %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want it to contain %q", err, tt.want)
			}
			if string(got) != "prefix" {
				t.Errorf("got buffer %q, want %q", got, "prefix")
			}
		})
	}
}

// enc builds test inputs: each argument is a byte, a string (appended as is), or a []byte.
func enc(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case int:
			b = append(b, byte(p))
		case byte:
			b = append(b, p)
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		default:
			panic(fmt.Sprintf("enc: %T", p))
		}
	}
	return b
}

func uv(v uint64) []byte { return binary.AppendUvarint(nil, v) }
func sv(v int64) []byte  { return binary.AppendVarint(nil, v) }

// hdr is a version 1 header of a telemetry record from "d" at t0 with n fields.
func hdr(n uint64) []byte { return enc(0x01, 0x01, 1, "d", sv(t0.UnixNano()), uv(n)) }

func TestDecoder_Decode_Corrupt(t *testing.T) {
	h := len(hdr(1)) // offset of the first field
	validField := enc(1, "a", 0x02, sv(7))
	tests := []struct {
		name    string
		in      []byte
		wantErr error
		wantOff int
		want    string // in the error message
	}{
		{"empty", nil, ErrCorrupt, 0, "empty input"},
		{"type 0x00", enc(0x00, 0x01, 0, 0, 0), ErrUnknownVersion, 0, "type byte 0x00"},
		{"type 0x02", enc(0x02, 0x01, 0, 0, 0), ErrUnknownVersion, 0, "type byte 0x02"},
		{"type 0xff", enc(0xff), ErrUnknownVersion, 0, "type byte 0xff"},
		{"kind 0", enc(0x01, 0, 0, 0, 0), ErrCorrupt, 1, "unknown kind 0"},
		{"kind 4", enc(0x01, 4, 0, 0, 0), ErrCorrupt, 1, "unknown kind 4"},
		{"source beyond input", enc(0x01, 1, 5, "abc"), ErrCorrupt, 2, "source: length 5 beyond input (3 bytes left)"},
		{"source length overflows", enc(0x01, 1, bytes.Repeat([]byte{0xff}, 10), 0x01), ErrCorrupt, 2, "source: varint overflows"},
		{"source length not minimal", enc(0x01, 1, 0x80, 0x00, 0, 0), ErrCorrupt, 2, "source: varint of 2 bytes is not minimal"},
		{"time truncated", enc(0x01, 1, 0, 0x80), ErrCorrupt, 3, "time: truncated varint"},
		{"time not minimal", enc(0x01, 1, 0, 0x81, 0x80, 0x00, 0), ErrCorrupt, 3, "time: varint of 3 bytes is not minimal"},
		{"time overflows", enc(0x01, 1, 0, bytes.Repeat([]byte{0x80}, 9), 0x02, 0), ErrCorrupt, 3, "time: varint overflows"},
		{"field count above 65535", enc(0x01, 1, 0, 0, uv(65536)), ErrCorrupt, 4, "field count 65536, more than 65535"},
		{"field count 1e9 in 9 bytes", enc(0x01, 1, 0, 0, uv(1e9)), ErrCorrupt, 4, "more than 65535"},
		{"field count beyond input", enc(0x01, 1, 0, 0, uv(65535), "abcdef"), ErrCorrupt, 4, "field count 65535 needs at least 196605 bytes, 6 left"},
		{"field count one beyond input", enc(0x01, 1, 0, 0, 2, 1, "a", 0), ErrCorrupt, 4, "field count 2 needs"},
		{"empty name", enc(hdr(1), 0, 0, 0), ErrCorrupt, h, "field 0: empty name"},
		{"name of 256 bytes", enc(hdr(1), uv(256), strings.Repeat("x", 256), 0), ErrCorrupt, h, "field 0: name of 256 bytes"},
		{"name beyond input", enc(hdr(1), 5, "ab"), ErrCorrupt, h, "field 0: name: length 5 beyond input"},
		{"flags missing", enc(hdr(1), 2, "ab"), ErrCorrupt, h + 3, `field 0 "ab": truncated before flags`},
		{"value kind 6", enc(hdr(1), 1, "a", 0x06), ErrCorrupt, h + 2, `field 0 "a": flags 0x06: unknown value kind 6`},
		{"value kind 7", enc(hdr(1), 1, "a", 0x07), ErrCorrupt, h + 2, "unknown value kind 7"},
		{"quality 3", enc(hdr(1), 1, "a", 0x18), ErrCorrupt, h + 2, "flags 0x18: unknown quality 3"},
		{"bool bit on int", enc(hdr(1), 1, "a", 0x82, 0), ErrCorrupt, h + 2, "bool value bit on value kind 2"},
		{"bool bit on null", enc(hdr(1), 1, "a", 0x80), ErrCorrupt, h + 2, "bool value bit on value kind 0"},
		{"int truncated", enc(hdr(1), 1, "a", 0x02, 0x80), ErrCorrupt, h + 3, "int value: truncated varint"},
		{"int overflows", enc(hdr(1), 1, "a", 0x02, bytes.Repeat([]byte{0xff}, 11)), ErrCorrupt, h + 3, "int value: varint overflows"},
		{"uint not minimal", enc(hdr(1), 1, "a", 0x03, 0xff, 0x00), ErrCorrupt, h + 3, "uint value: varint of 2 bytes is not minimal"},
		{"float truncated", enc(hdr(1), 1, "a", 0x04, 1, 2, 3), ErrCorrupt, h + 3, "float value: truncated: 3 of 8 bytes"},
		{"string beyond input", enc(hdr(1), 1, "a", 0x05, 9, "abc"), ErrCorrupt, h + 3, "string value: length 9 beyond input (3 bytes left)"},
		{"reason missing", enc(hdr(1), 1, "a", 0x20), ErrCorrupt, h + 3, "reason: truncated varint"},
		{"reason empty", enc(hdr(1), 1, "a", 0x20, 0), ErrCorrupt, h + 3, "empty reason, though flags 0x20 announce one"},
		{"reason beyond input", enc(hdr(1), 1, "a", 0x20, 4, "ab"), ErrCorrupt, h + 3, "reason: length 4 beyond input"},
		{"source time missing", enc(hdr(1), 1, "a", 0x40), ErrCorrupt, h + 3, "source time: truncated varint"},
		{"source time is MinInt64", enc(hdr(1), 1, "a", 0x40, sv(math.MinInt64-t0.UnixNano())), ErrCorrupt, h + 3, "source time delta"},
		{"source time is MinInt64, zero record time", enc(0x01, 1, 0, sv(math.MinInt64), 1, 1, "a", 0x40, sv(math.MinInt64)), ErrCorrupt, 17, "out of range"},
		{"second field truncated", enc(hdr(2), validField, 1, "b", 0x04, 0, 0), ErrCorrupt, h + len(validField) + 3, `field 1 "b": float value: truncated`},
		{"duplicate name", enc(hdr(3), validField, 1, "b", 0, validField), ErrCorrupt, h + len(validField) + 3, `field 2 "a": name repeats field 0`},
		{"trailing byte", enc(hdr(1), validField, 0), ErrCorrupt, h + len(validField), "1 trailing bytes"},
		{"trailing record", enc(hdr(0), hdr(0)), ErrCorrupt, len(hdr(0)), "trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Decoder
			r := goldenRecords()[0].rec // Decode must reset it
			err := d.Decode(tt.in, &r)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("got error of type %T, want *DecodeError", err)
			}
			if de.Offset != tt.wantOff {
				t.Errorf("got offset %d, want %d (%v)", de.Offset, tt.wantOff, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want it to contain %q", err, tt.want)
			}
			if r.Kind != 0 || r.Source != "" || !r.Time.IsZero() || len(r.Fields) != 0 {
				t.Errorf("got record %+v after error, want it reset", r)
			}
		})
	}
}

func TestDecodeError_Error(t *testing.T) {
	err := (&DecodeError{Offset: 17, What: `field 2 "a": float value: truncated`, Err: ErrCorrupt}).Error()
	want := `decode record at byte 17: field 2 "a": float value: truncated: corrupt record`
	if err != want {
		t.Errorf("got %q, want %q", err, want)
	}
}

// Every proper prefix of a valid encoding is corrupt, not a shorter record and not a panic.
func TestDecoder_Decode_Truncated(t *testing.T) {
	recs := goldenRecords()
	recs = append(recs, struct {
		name string
		rec  Record
	}{"telemetry 50", telemetryRecord(50)})
	for _, gr := range recs {
		t.Run(gr.name, func(t *testing.T) {
			full, err := gr.rec.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			var d Decoder
			var r Record
			for n := range len(full) {
				// A fresh copy, so that reading past n is caught by the bounds check.
				in := bytes.Clone(full[:n])
				if err := d.Decode(in, &r); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("prefix of %d of %d bytes: got error %v, want ErrCorrupt", n, len(full), err)
				}
			}
		})
	}
}

// A tiny input claiming many fields must not allocate them before finding that it is short.
func TestDecoder_Decode_HugeCountAllocatesLittle(t *testing.T) {
	inputs := map[string][]byte{
		"count 1e9":   enc(0x01, 1, 0, 0, uv(1e9)),
		"count 65535": enc(0x01, 1, 0, 0, uv(65535), "abc"),
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			var d Decoder
			var r Record
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for range 100 {
				if err := d.Decode(in, &r); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("got error %v, want ErrCorrupt", err)
				}
			}
			runtime.ReadMemStats(&m1)
			if perOp := (m1.TotalAlloc - m0.TotalAlloc) / 100; perOp > 1024 {
				t.Errorf("got %d bytes allocated per Decode, want at most 1024", perOp)
			}
		})
	}
}

func TestDecoder_Decode_ReusesFieldsAndInterns(t *testing.T) {
	want := telemetryRecord(50)
	data, err := want.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	var d Decoder
	r := Record{Fields: make([]Field, 3, 64)}
	backing := &r.Fields[:1][0]
	if err := d.Decode(data, &r); err != nil {
		t.Fatal(err)
	}
	if &r.Fields[0] != backing {
		t.Errorf("Decode allocated new fields though r.Fields had capacity 64")
	}
	first := r.Fields[6]

	var r2 Record
	if err := d.Decode(bytes.Clone(data), &r2); err != nil {
		t.Fatal(err)
	}
	second := r2.Fields[6]
	if first.Reason == "" {
		t.Fatal("test record has no reason on field 6")
	}
	for _, s := range [][2]string{{first.Name, second.Name}, {first.Reason, second.Reason}, {r.Source, r2.Source}} {
		if unsafe.StringData(s[0]) != unsafe.StringData(s[1]) {
			t.Errorf("%q was not interned: two decodes gave two copies", s[0])
		}
	}
	// The decoded strings must not alias the input.
	clear(data)
	if diff := cmp.Diff(normalize(want), r); diff != "" {
		t.Errorf("record changed when its input was cleared (-want +got):\n%s", diff)
	}
}

// A stream of ever new names fills the intern table only up to its bound.
func TestDecoder_Decode_InternTableBounded(t *testing.T) {
	var d Decoder
	var r Record
	var buf []byte
	for i := range 3 * maxInterned {
		rec := Record{Kind: KindTelemetry, Source: fmt.Sprintf("dev%d", i), Time: t0, Fields: []Field{
			NullField(fmt.Sprintf("tag%d", i), Bad, fmt.Sprintf("reason %d", i)),
			NullField("long", Bad, strings.Repeat("x", maxInternedLen)+fmt.Sprint(i%10)),
		}}
		var err error
		if buf, err = rec.AppendBinary(buf[:0]); err != nil {
			t.Fatal(err)
		}
		if err := d.Decode(buf, &r); err != nil {
			t.Fatal(err)
		}
		if len(d.strs) > maxInterned {
			t.Fatalf("after %d records: intern table has %d entries, want at most %d", i+1, len(d.strs), maxInterned)
		}
		if r.Fields[0].Name != fmt.Sprintf("tag%d", i) {
			t.Fatalf("got name %q, want tag%d", r.Fields[0].Name, i)
		}
	}
	for s := range d.strs {
		if len(s) > maxInternedLen {
			t.Errorf("interned a string of %d bytes, want at most %d", len(s), maxInternedLen)
		}
	}
}

// The zero Decoder and a Decoder that has decoded other records give the same result, and a
// reused Record keeps nothing of the record it held before.
func TestDecoder_Decode_ReusedRecordKeepsNothing(t *testing.T) {
	recs := goldenRecords()
	var d Decoder
	r := telemetryRecord(50)
	for range 2 {
		for _, gr := range recs {
			data, err := gr.rec.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Decode(data, &r); err != nil {
				t.Fatalf("%s: %v", gr.name, err)
			}
			if diff := cmp.Diff(normalize(gr.rec), r); diff != "" {
				t.Errorf("%s (-want +got):\n%s", gr.name, diff)
			}
		}
	}
}

func TestDecoder_Decode_TimesAreUTCWithoutMonotonic(t *testing.T) {
	now := time.Now() // has a monotonic reading
	rec := Record{Kind: KindTelemetry, Time: now.In(time.FixedZone("X", -7200)), Fields: []Field{
		withQuality(IntField("x", 1), Good, "", now.Add(time.Second)),
	}}
	data, err := rec.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	var d Decoder
	var r Record
	if err := d.Decode(data, &r); err != nil {
		t.Fatal(err)
	}
	checkUTC(t, &r)
	if got, want := r.Time, now.Round(0).UTC(); got != want {
		t.Errorf("got time %#v, want %#v (== comparison: UTC, no monotonic reading)", got, want)
	}
	if got, want := r.Fields[0].SourceTime, now.Add(time.Second).Round(0).UTC(); got != want {
		t.Errorf("got source time %#v, want %#v", got, want)
	}

	zero := Record{Kind: KindEvent}
	if data, err = zero.AppendBinary(nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode(data, &r); err != nil {
		t.Fatal(err)
	}
	if r.Time != (time.Time{}) {
		t.Errorf("got time %#v, want the zero time", r.Time)
	}
}

// goldenPath holds the encodings of goldenRecords as hex dumps, each after a line "== name".
// The format is frozen: data written by old binaries must stay readable, so a change here is a
// new format version, not an edit.
var goldenPath = filepath.Join("testdata", "v1.golden")

const goldenHeader = `# Record format version 1: the encodings of goldenRecords in codec_test.go, as hex dumps.
# TestDecoder_Decode_Golden decodes these bytes, so old data stays readable.
# Regenerate with: go test ./agent/record -run Golden -update, and review the diff.
`

func TestRecord_AppendBinary_Golden(t *testing.T) {
	var out strings.Builder
	out.WriteString(goldenHeader)
	for _, gr := range goldenRecords() {
		data, err := gr.rec.AppendBinary(nil)
		if err != nil {
			t.Fatalf("%s: %v", gr.name, err)
		}
		fmt.Fprintf(&out, "\n== %s\n%s", gr.name, hex.Dump(data))
	}
	if *update {
		if err := os.WriteFile(goldenPath, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), out.String()); diff != "" {
		t.Errorf("encodings differ from %s (-file +now); a format change needs a new version:\n%s", goldenPath, diff)
	}
}

func TestDecoder_Decode_Golden(t *testing.T) {
	golden := readGolden(t)
	recs := goldenRecords()
	if len(golden) != len(recs) {
		t.Errorf("got %d records in %s, want %d", len(golden), goldenPath, len(recs))
	}
	var d Decoder
	for _, gr := range recs {
		data, ok := golden[gr.name]
		if !ok {
			t.Errorf("%s: not in %s", gr.name, goldenPath)
			continue
		}
		var r Record
		if err := d.Decode(data, &r); err != nil {
			t.Errorf("%s: %v", gr.name, err)
			continue
		}
		if diff := cmp.Diff(normalize(gr.rec), r); diff != "" {
			t.Errorf("%s (-want +got):\n%s", gr.name, diff)
		}
	}
}

// readGolden parses goldenPath into the bytes of each named record.
func readGolden(t testing.TB) map[string][]byte {
	t.Helper()
	text, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	name := ""
	for i, line := range strings.Split(string(text), "\n") {
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "== "):
			name = strings.TrimPrefix(line, "== ")
			out[name] = []byte{}
		default:
			// 00000000  01 01 07 70 72 65 73 73  2d 31 aa 9e 9a 8a f9 9e  |...press-1......|
			bar := strings.IndexByte(line, '|')
			if name == "" || bar < 10 {
				t.Fatalf("%s:%d: not a hex dump line under a name: %q", goldenPath, i+1, line)
			}
			for _, h := range strings.Fields(line[10:bar]) {
				b, err := hex.DecodeString(h)
				if err != nil || len(b) != 1 {
					t.Fatalf("%s:%d: bad byte %q", goldenPath, i+1, h)
				}
				out[name] = append(out[name], b[0])
			}
		}
	}
	return out
}

func TestRecord_AppendBinary_Allocs(t *testing.T) {
	r := telemetryRecord(50)
	buf := make([]byte, 0, 4096)
	var err error
	allocs := testing.AllocsPerRun(100, func() {
		buf, err = r.AppendBinary(buf[:0])
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Errorf("got %v allocations to encode 50 fields into a large enough buffer, want 0", allocs)
	}
}

func TestDecoder_Decode_Allocs(t *testing.T) {
	rec := telemetryRecord(50)
	data, err := rec.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	var d Decoder
	var r Record
	if err := d.Decode(data, &r); err != nil { // warms d and r
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		err = d.Decode(data, &r)
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Errorf("got %v allocations to decode 50 fields with a warm Decoder and Record, want 0", allocs)
	}
}

var _ encoding.BinaryAppender = (*Record)(nil)
