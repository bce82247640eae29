package agent

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/buffer"
	"github.com/floorlink/floorlink/drivers"
)

func TestApplyScale(t *testing.T) {
	cases := []struct {
		x, scale, offset, want float64
	}{
		{653, 0.1, 0, 65.3}, // not 65.30000000000001
		{-1234, 0.01, 0, -12.34},
		{7, 0.001, 0, 0.007},
		{10, 2.5, 1, 26},
		{10, 0, 0, 10}, // zero scale means 1
		{3, 1, -273.15, 3 - 273.15},
		{5, 0.3, 0, 5 * 0.3}, // not the inverse of a whole number: multiply
	}
	for _, c := range cases {
		if got := applyScale(c.x, c.scale, c.offset); got != c.want {
			t.Errorf("applyScale(%v, %v, %v) = %v, want %v", c.x, c.scale, c.offset, got, c.want)
		}
	}
}

func TestToField(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name string
		tag  drivers.Tag
		smp  drivers.Sample
		want record.Field
	}{
		{"uint", drivers.Tag{Name: "a"}, drivers.Sample{Value: drivers.UintValue(7)}, record.UintField("a", 7)},
		{"int", drivers.Tag{Name: "a"}, drivers.Sample{Value: drivers.IntValue(-7)}, record.IntField("a", -7)},
		{"bool", drivers.Tag{Name: "a"}, drivers.Sample{Value: drivers.BoolValue(true)}, record.BoolField("a", true)},
		{"float", drivers.Tag{Name: "a"}, drivers.Sample{Value: drivers.FloatValue(1.5)}, record.FloatField("a", 1.5)},
		{"scaled int", drivers.Tag{Name: "a", Scale: 0.1}, drivers.Sample{Value: drivers.IntValue(-653)}, record.FloatField("a", -65.3)},
		{"offset uint", drivers.Tag{Name: "a", Offset: 1}, drivers.Sample{Value: drivers.UintValue(2)}, record.FloatField("a", 3)},
		{"bad", drivers.Tag{Name: "a", Scale: 0.1}, drivers.Sample{Quality: drivers.QualityBad, Reason: "timeout"},
			record.NullField("a", record.Bad, "timeout")},
		{"uncertain keeps value", drivers.Tag{Name: "a"}, drivers.Sample{Value: drivers.UintValue(1), Quality: drivers.QualityUncertain, Reason: "stale"},
			record.Field{Name: "a", Kind: record.Uint, Bits: 1, Quality: record.Uncertain, Reason: "stale"}},
		{"source time", drivers.Tag{Name: "a"}, drivers.Sample{Value: drivers.UintValue(1), SourceTime: ts},
			record.Field{Name: "a", Kind: record.Uint, Bits: 1, SourceTime: ts}},
		{"string", drivers.Tag{Name: "a"}, drivers.Sample{Value: drivers.StringValue("LOT-42")}, record.StringField("a", "LOT-42")},
		{"enum", drivers.Tag{Name: "a", Enum: map[int64]string{1: "running", 4: "down"}}, drivers.Sample{Value: drivers.UintValue(4)},
			record.StringField("a", "down")},
		{"enum miss", drivers.Tag{Name: "a", Enum: map[int64]string{1: "running"}}, drivers.Sample{Value: drivers.IntValue(9)},
			record.Field{Name: "a", Kind: record.String, Str: "9", Quality: record.Uncertain, Reason: "not in enum"}},
		{"enum bool", drivers.Tag{Name: "a", Enum: map[int64]string{0: "open", 1: "closed"}}, drivers.Sample{Value: drivers.BoolValue(true)},
			record.StringField("a", "closed")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := toField(&c.tag, &c.smp)
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
	if got := toField(&drivers.Tag{Name: "nan"}, &drivers.Sample{Value: drivers.FloatValue(math.NaN())}); got.Kind != record.Float || !math.IsNaN(got.FloatValue()) {
		t.Errorf("NaN sample became %+v; the publisher decides how to show it", got)
	}
}

type appendFunc func(payload []byte, states ...buffer.State) error

func (f appendFunc) Append(payload []byte, states ...buffer.State) error {
	return f(payload, states...)
}

func (f appendFunc) AppendDroppable(payload []byte) error { return f(payload) }

// TestDeviceSink_Batch_DecodesToTagNames: a batch becomes one telemetry record keyed by tag
// name, in tag order, and a refused append is counted, not retried.
func TestDeviceSink_Batch(t *testing.T) {
	dev := drivers.Device{Name: "press-1", Tags: []drivers.Tag{{Name: "state"}, {Name: "temp", Scale: 0.1}}}
	var got [][]byte
	refuse := false
	out := appendFunc(func(p []byte, _ ...buffer.State) error {
		if refuse {
			return buffer.ErrQueueFull
		}
		got = append(got, append([]byte(nil), p...))
		return nil
	})
	var counts counters
	s := newDeviceSink(dev, nil, out, &counts, nil)
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	s.Batch(&drivers.Batch{Device: "press-1", ReadTime: now, Samples: []drivers.Sample{
		{Tag: 0, Value: drivers.UintValue(1)}, {Tag: 1, Value: drivers.IntValue(653)}, {Tag: 5, Value: drivers.IntValue(1)},
	}})
	s.Event(drivers.Event{Device: "press-1", Time: now, Kind: drivers.EventDisconnected, Err: errors.New("refused")})
	refuse = true
	s.Batch(&drivers.Batch{Device: "press-1", ReadTime: now})
	if len(got) != 2 || counts.records.Load() != 2 || counts.dropped.Load() != 1 {
		t.Fatalf("appended %d, counted %d, dropped %d; want 2, 2, 1", len(got), counts.records.Load(), counts.dropped.Load())
	}
	var dec record.Decoder
	var r record.Record
	if err := dec.Decode(got[0], &r); err != nil {
		t.Fatal(err)
	}
	if r.Kind != record.KindTelemetry || r.Source != "press-1" || !r.Time.Equal(now) || len(r.Fields) != 2 ||
		r.Fields[0] != record.UintField("state", 1) || r.Fields[1] != record.FloatField("temp", 65.3) {
		t.Fatalf("telemetry record %+v", r)
	}
	if err := dec.Decode(got[1], &r); err != nil {
		t.Fatal(err)
	}
	if r.Kind != record.KindEvent || r.Fields[0] != record.StringField("event", "disconnected") || r.Fields[1] != record.StringField("error", "refused") {
		t.Fatalf("event record %+v", r)
	}
}

func TestDeviceSink_Batch_Allocs(t *testing.T) {
	dev := drivers.Device{Name: "press-1"}
	batch := drivers.Batch{Device: "press-1", ReadTime: time.Now()}
	for i := range 50 {
		dev.Tags = append(dev.Tags, drivers.Tag{Name: "tag" + string(rune('A'+i%26)) + string(rune('a'+i/26)), Scale: 0.1})
		batch.Samples = append(batch.Samples, drivers.Sample{Tag: i, Value: drivers.IntValue(int64(i))})
	}
	var counts counters
	s := newDeviceSink(dev, nil, appendFunc(func([]byte, ...buffer.State) error { return nil }), &counts, nil)
	s.status = newDeviceStatus(dev)
	s.Batch(&batch) // warm the scratch buffers
	if allocs := testing.AllocsPerRun(100, func() { s.Batch(&batch) }); allocs != 0 {
		t.Errorf("a 50-tag batch allocates %.1f times in the pipeline, want 0", allocs)
	}
}

func TestTagPolicy_Due(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	sent := func(f record.Field) *lastSent { return &lastSent{field: f, at: t0, ok: true} }
	cases := []struct {
		name string
		p    tagPolicy
		last *lastSent
		f    record.Field
		now  time.Time
		want bool
	}{
		{"no deadband publishes every cycle", tagPolicy{}, sent(record.FloatField("a", 1)), record.FloatField("a", 1), t0, true},
		{"first value", tagPolicy{deadband: 1}, &lastSent{}, record.FloatField("a", 1), t0, true},
		{"within deadband", tagPolicy{deadband: 0.5}, sent(record.FloatField("a", 10)), record.FloatField("a", 10.5), t0, false},
		{"beyond deadband", tagPolicy{deadband: 0.5}, sent(record.FloatField("a", 10)), record.FloatField("a", 10.51), t0, true},
		{"beyond deadband downwards", tagPolicy{deadband: 0.5}, sent(record.IntField("a", 10)), record.IntField("a", 9), t0, true},
		{"percent within", tagPolicy{deadband: 2, percent: true}, sent(record.FloatField("a", 100)), record.FloatField("a", 101.9), t0, false},
		{"percent beyond", tagPolicy{deadband: 2, percent: true}, sent(record.FloatField("a", 100)), record.FloatField("a", 97.9), t0, true},
		{"percent from zero", tagPolicy{deadband: 2, percent: true}, sent(record.FloatField("a", 0)), record.FloatField("a", 0.001), t0, true},
		{"heartbeat due", tagPolicy{deadband: 5, heartbeat: time.Minute}, sent(record.FloatField("a", 1)), record.FloatField("a", 1), t0.Add(time.Minute), true},
		{"heartbeat not due", tagPolicy{deadband: 5, heartbeat: time.Minute}, sent(record.FloatField("a", 1)), record.FloatField("a", 1), t0.Add(59 * time.Second), false},
		{"quality change", tagPolicy{deadband: 5}, sent(record.FloatField("a", 1)), record.NullField("a", record.Bad, "timeout"), t0, true},
		{"still bad", tagPolicy{deadband: 5}, sent(record.NullField("a", record.Bad, "timeout")), record.NullField("a", record.Bad, "timeout"), t0, false},
		{"bool flips", tagPolicy{deadband: 5}, sent(record.BoolField("a", false)), record.BoolField("a", true), t0, true},
		{"bool same", tagPolicy{deadband: 5}, sent(record.BoolField("a", true)), record.BoolField("a", true), t0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.due(c.last, &c.f, c.now); got != c.want {
				t.Errorf("due = %v, want %v", got, c.want)
			}
		})
	}
}

// TestDeviceSink_Batch_Deadband: under a deadband only moved tags are published, a cycle where
// nothing moved stores nothing, and a connect makes the next record full.
func TestDeviceSink_Batch_Deadband(t *testing.T) {
	dev := drivers.Device{Name: "d", Tags: []drivers.Tag{{Name: "slow"}, {Name: "fast"}}}
	var stored []record.Record
	out := appendFunc(func(p []byte, _ ...buffer.State) error {
		var dec record.Decoder
		var r record.Record
		if err := dec.Decode(p, &r); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, r)
		return nil
	})
	var counts counters
	s := newDeviceSink(dev, []tagPolicy{{deadband: 1}, {deadband: 1}}, out, &counts, nil)
	now := time.Now()
	batch := func(slow, fast int64) {
		s.Batch(&drivers.Batch{Device: "d", ReadTime: now, Samples: []drivers.Sample{
			{Tag: 0, Value: drivers.IntValue(slow)}, {Tag: 1, Value: drivers.IntValue(fast)}}})
	}
	batch(10, 10) // first: full
	batch(10, 20) // only fast moved
	batch(10, 20) // nothing moved: no record
	s.Event(drivers.Event{Device: "d", Kind: drivers.EventConnected, Time: now})
	batch(10, 20) // after a connect: full
	var shapes []int
	for _, r := range stored {
		shapes = append(shapes, len(r.Fields))
	}
	want := []int{2, 1, 1 /* the connected event */, 2}
	if fmt.Sprint(shapes) != fmt.Sprint(want) {
		t.Fatalf("fields per stored record = %v, want %v", shapes, want)
	}
	if stored[1].Fields[0].Name != "fast" {
		t.Fatalf("second record holds %q, want fast", stored[1].Fields[0].Name)
	}
}
