package agent

import (
	"errors"
	"log/slog"
	"math"
	"sync/atomic"

	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/buffer"
	"github.com/floorlink/floorlink/drivers"
)

// appender is the part of the buffer the pipeline writes to.
type appender interface {
	Append(payload []byte, states ...buffer.State) error
}

// counters are the pipeline's totals, shared by all device sinks.
type counters struct {
	records  atomic.Uint64 // appended to the buffer
	dropped  atomic.Uint64 // refused by the buffer (queue full or closed)
	unstored atomic.Uint64 // could not be encoded
}

// deviceSink is the drivers.Sink of one device. The driver calls it from its own goroutine, one
// call at a time, so the scratch record and buffer need no lock.
type deviceSink struct {
	dev    drivers.Device
	out    appender
	counts *counters
	log    *slog.Logger

	rec      record.Record
	buf      []byte
	dropping bool // a drop was logged and no append has succeeded since
}

func newDeviceSink(dev drivers.Device, out appender, counts *counters, log *slog.Logger) *deviceSink {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &deviceSink{dev: dev, out: out, counts: counts, log: log.With("device", dev.Name),
		rec: record.Record{Fields: make([]record.Field, 0, len(dev.Tags))}}
}

// Batch turns one poll cycle into a telemetry record.
func (s *deviceSink) Batch(b *drivers.Batch) {
	s.rec.Reset()
	s.rec.Kind = record.KindTelemetry
	s.rec.Source = s.dev.Name
	s.rec.Time = b.ReadTime
	for i := range b.Samples {
		smp := &b.Samples[i]
		if smp.Tag < 0 || smp.Tag >= len(s.dev.Tags) {
			continue // a driver bug; never index out of range on the hot path
		}
		tag := &s.dev.Tags[smp.Tag]
		s.rec.Fields = append(s.rec.Fields, toField(tag, smp))
	}
	s.store()
}

// Event turns a driver event into an event record.
func (s *deviceSink) Event(e drivers.Event) {
	s.rec.Reset()
	s.rec.Kind = record.KindEvent
	s.rec.Source = e.Device
	s.rec.Time = e.Time
	s.rec.Fields = append(s.rec.Fields, record.StringField("event", string(e.Kind)))
	if e.Err != nil {
		s.rec.Fields = append(s.rec.Fields, record.StringField("error", e.Err.Error()))
	}
	s.store()
}

func (s *deviceSink) store() {
	var err error
	s.buf, err = s.rec.AppendBinary(s.buf[:0])
	if err != nil {
		s.counts.unstored.Add(1)
		s.log.Error("encode record", "kind", s.rec.Kind, "err", err)
		return
	}
	if err := s.out.Append(s.buf); err != nil {
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
	}
	return f
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
