package agent

import (
	"errors"
	"log/slog"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/buffer"
	"github.com/floorlink/floorlink/drivers"
)

// appender is the part of the buffer the pipeline writes to. Telemetry goes in with
// AppendDroppable, which the buffer refuses first when its disk stalls, so that events (and KPI
// records) always find room.
type appender interface {
	Append(payload []byte, states ...buffer.State) error
	AppendDroppable(payload []byte) error
}

// counters are the pipeline's totals, shared by all device sinks.
type counters struct {
	records  atomic.Uint64 // appended to the buffer
	dropped  atomic.Uint64 // refused by the buffer (queue full or closed)
	unstored atomic.Uint64 // could not be encoded
}

// connSink is the drivers.Sink of one connection: it hands each batch and event to the sink of
// the device it names. The driver calls it from its one goroutine, so the device sinks it holds
// are used by one goroutine at a time.
type connSink map[string]*deviceSink

func (c connSink) Batch(b *drivers.Batch) {
	if s, ok := c[b.Device]; ok {
		s.Batch(b)
	}
}

func (c connSink) Event(e drivers.Event) {
	if s, ok := c[e.Device]; ok {
		s.Event(e)
	}
}

// deviceSink is the drivers.Sink of one device. The driver calls it from its own goroutine, one
// call at a time, so the scratch record, buffer and report-by-exception state need no lock.
type deviceSink struct {
	dev    drivers.Device
	out    appender
	counts *counters
	log    *slog.Logger

	policy []tagPolicy // per tag, by index in dev.Tags
	last   []lastSent  // per tag: what was last published
	full   bool        // publish every tag in the next batch (after connect)

	status    *deviceStatus       // nil in tests that do not look at it
	onEvent   func(drivers.Event) // after the event's record is stored; nil: none
	kpi       *kpiRunner          // fed every batch, raw; nil without assets
	allFields []record.Field      // every sample of the batch, for the status
	allIdx    []int               // their tag indexes

	rec      record.Record
	buf      []byte
	dropping bool // a drop was logged and no append has succeeded since

	// A device that stays unreachable is logged once when it goes, then summarised at most
	// every summaryEvery, never once per poll.
	failingSince time.Time
	lastSummary  time.Time
	failedPolls  uint64
}

const summaryEvery = 10 * time.Minute

// tagPolicy is a tag's report-by-exception rule. The zero policy publishes every cycle.
type tagPolicy struct {
	deadband  float64 // least change worth publishing; 0 publishes every cycle
	percent   bool    // deadband is in percent of the last published value
	heartbeat time.Duration
}

// lastSent is the last published field of a tag, for its deadband and heartbeat.
type lastSent struct {
	field record.Field
	at    time.Time
	ok    bool
}

func newDeviceSink(dev drivers.Device, policy []tagPolicy, out appender, counts *counters, log *slog.Logger) *deviceSink {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(policy) != len(dev.Tags) {
		policy = make([]tagPolicy, len(dev.Tags))
	}
	return &deviceSink{dev: dev, out: out, counts: counts, log: log.With("device", dev.Name),
		policy: policy, last: make([]lastSent, len(dev.Tags)), full: true,
		rec: record.Record{Fields: make([]record.Field, 0, len(dev.Tags))}}
}

// Batch turns one poll cycle into a telemetry record: every tag without a deadband, and the tags
// under a deadband whose value moved beyond it, whose quality changed or whose heartbeat is due.
// The first batch after a connect carries every tag. A cycle with nothing to publish stores no
// record.
func (s *deviceSink) Batch(b *drivers.Batch) {
	if s.kpi != nil {
		s.kpi.observe(b) // raw values: the asset maps name the PLC's numbers, not the enum texts
	}
	s.rec.Reset()
	s.rec.Kind = record.KindTelemetry
	s.rec.Source = s.dev.Name
	s.rec.Time = b.ReadTime
	s.allFields, s.allIdx = s.allFields[:0], s.allIdx[:0]
	for i := range b.Samples {
		smp := &b.Samples[i]
		if smp.Tag < 0 || smp.Tag >= len(s.dev.Tags) {
			continue // a driver bug; never index out of range on the hot path
		}
		f := toField(&s.dev.Tags[smp.Tag], smp)
		s.allFields, s.allIdx = append(s.allFields, f), append(s.allIdx, smp.Tag)
		last := &s.last[smp.Tag]
		if !s.full && !s.policy[smp.Tag].due(last, &f, b.ReadTime) {
			continue
		}
		*last = lastSent{field: f, at: b.ReadTime, ok: true}
		s.rec.Fields = append(s.rec.Fields, f)
	}
	s.full = false
	if s.status != nil {
		s.status.batch(b, s.allFields, s.allIdx)
	}
	s.summarise(b)
	if len(s.rec.Fields) == 0 && len(b.Samples) > 0 {
		return
	}
	s.store()
}

// summarise logs a periodic summary while every sample of the device's cycles is bad.
func (s *deviceSink) summarise(b *drivers.Batch) {
	good := false
	for i := range s.allFields {
		if s.allFields[i].Quality == record.Good && s.allFields[i].Kind != record.Null {
			good = true
			break
		}
	}
	switch {
	case good:
		s.failingSince, s.failedPolls = time.Time{}, 0
	case s.failingSince.IsZero():
		s.failingSince, s.lastSummary, s.failedPolls = b.ReadTime, b.ReadTime, 1
	default:
		s.failedPolls++
		if b.ReadTime.Sub(s.lastSummary) >= summaryEvery {
			s.lastSummary = b.ReadTime
			s.log.Warn("device still without a good reading", "since", s.failingSince, "failed_cycles", s.failedPolls)
		}
	}
}

// due reports whether f must be published given what was last published.
func (p tagPolicy) due(last *lastSent, f *record.Field, now time.Time) bool {
	if p.deadband == 0 || !last.ok {
		return true
	}
	if p.heartbeat > 0 && now.Sub(last.at) >= p.heartbeat {
		return true
	}
	prev := &last.field
	if prev.Quality != f.Quality || prev.Reason != f.Reason || prev.Kind != f.Kind {
		return true
	}
	x, okX := numeric(f)
	y, okY := numeric(prev)
	if !okX || !okY {
		return prev.Bits != f.Bits || prev.Str != f.Str
	}
	limit := p.deadband
	if p.percent {
		limit = math.Abs(y) * p.deadband / 100
	}
	// Exceeding, not reaching, the deadband publishes (as OPC UA's absolute deadband does); with
	// a percent deadband on a last value of 0, any change publishes.
	return math.Abs(x-y) > limit || (limit == 0 && x != y)
}

func numeric(f *record.Field) (float64, bool) {
	switch f.Kind {
	case record.Int:
		return float64(f.IntValue()), true
	case record.Uint:
		return float64(f.Bits), true
	case record.Float:
		return f.FloatValue(), true
	}
	return 0, false
}

// Event turns a driver event into an event record. A connect makes the next batch a full one,
// so the backend has every tag's value after a gap.
func (s *deviceSink) Event(e drivers.Event) {
	if e.Kind == drivers.EventConnected {
		s.full = true
	}
	if s.status != nil {
		s.status.event(e)
	}
	s.rec.Reset()
	s.rec.Kind = record.KindEvent
	s.rec.Source = e.Device
	s.rec.Time = e.Time
	s.rec.Fields = append(s.rec.Fields, record.StringField("event", string(e.Kind)))
	if e.Err != nil {
		s.rec.Fields = append(s.rec.Fields, record.StringField("error", e.Err.Error()))
	}
	s.store()
	if s.onEvent != nil {
		s.onEvent(e)
	}
}

func (s *deviceSink) store() {
	var err error
	s.buf, err = s.rec.AppendBinary(s.buf[:0])
	if err != nil {
		s.counts.unstored.Add(1)
		s.log.Error("encode record", "kind", s.rec.Kind, "err", err)
		return
	}
	if s.rec.Kind == record.KindTelemetry {
		err = s.out.AppendDroppable(s.buf)
	} else {
		err = s.out.Append(s.buf)
	}
	if err != nil {
		s.counts.dropped.Add(1)
		if !s.dropping {
			s.dropping = true
			level := slog.LevelError
			if errors.Is(err, buffer.ErrClosed) {
				level = slog.LevelWarn
			}
			s.log.Log(nil, level, "drop record: buffer refused it", "kind", s.rec.Kind, "err", err)
		}
		return
	}
	s.dropping = false
	s.counts.records.Add(1)
}

// toField converts a sample to a record field, applying the tag's scale and offset.
func toField(tag *drivers.Tag, smp *drivers.Sample) record.Field {
	if smp.Quality == drivers.QualityBad || smp.Value.Kind() == drivers.KindNone {
		q := record.Bad
		if smp.Quality == drivers.QualityUncertain {
			q = record.Uncertain
		}
		return record.Field{Name: tag.Name, Kind: record.Null, Quality: q, Reason: smp.Reason, SourceTime: smp.SourceTime}
	}
	f := record.Field{Name: tag.Name, SourceTime: smp.SourceTime, Reason: smp.Reason}
	if smp.Quality == drivers.QualityUncertain {
		f.Quality = record.Uncertain
	}
	v := smp.Value
	if tag.Enum != nil {
		if f, ok := enumField(tag, v, f); ok {
			return f
		}
	}
	if scaled(tag) {
		x, _ := v.Float64()
		f.Kind, f.Bits = record.Float, math.Float64bits(applyScale(x, tag.Scale, tag.Offset))
		return f
	}
	switch v.Kind() {
	case drivers.KindBool:
		f.Kind = record.Bool
		if v.Bool() {
			f.Bits = 1
		}
	case drivers.KindInt:
		f.Kind, f.Bits = record.Int, uint64(v.Int())
	case drivers.KindUint:
		f.Kind, f.Bits = record.Uint, v.Uint()
	case drivers.KindFloat:
		f.Kind, f.Bits = record.Float, math.Float64bits(v.Float())
	case drivers.KindString:
		f.Kind, f.Str = record.String, v.Str()
	}
	return f
}

// enumField maps an integer sample through the tag's enum to its name. A value the map lacks
// keeps its number, marked uncertain, so that a PLC program change is visible rather than
// hidden. ok is false for a sample that is not an integer (the map does not apply).
func enumField(tag *drivers.Tag, v drivers.Value, f record.Field) (record.Field, bool) {
	var n int64
	switch v.Kind() {
	case drivers.KindInt:
		n = v.Int()
	case drivers.KindUint:
		if v.Uint() > math.MaxInt64 {
			return f, false
		}
		n = int64(v.Uint())
	case drivers.KindBool:
		if v.Bool() {
			n = 1
		}
	default:
		return f, false
	}
	if name, ok := tag.Enum[n]; ok {
		f.Kind, f.Str = record.String, name
		return f, true
	}
	// The number goes out as text, so that the tag keeps one type (Sparkplug declares it once).
	f.Kind, f.Str = record.String, strconv.FormatInt(n, 10)
	f.Quality, f.Reason = record.Uncertain, "not in enum"
	return f, true
}

func scaled(tag *drivers.Tag) bool {
	return (tag.Scale != 0 && tag.Scale != 1) || tag.Offset != 0
}

// applyScale returns x*scale + offset. A scale that is the inverse of a whole number (0.1, 0.01)
// divides instead, because 653*0.1 is 65.30000000000001 while 653/10 is 65.3: integrators read
// these values on dashboards.
func applyScale(x, scale, offset float64) float64 {
	if scale == 0 {
		scale = 1
	}
	if scale > 0 && scale < 1 {
		inv := math.Round(1 / scale)
		if inv <= 1e9 && 1/inv == scale {
			return x/inv + offset
		}
	}
	return x*scale + offset
}
