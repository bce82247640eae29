// Package record defines Record, what the buffer stores and the publisher sends, and its versioned
// binary codec.
//
// A record is self-describing: its values are keyed by tag name, never by position, so that a
// config edit made during an outage cannot rename the backlog. The codec appends to a caller's
// buffer and a Decoder reuses the caller's Record, so that the hot path allocates nothing per
// field once names have been seen.
//
// The package imports nothing of Floorlink's: the buffer stores its output as opaque bytes, and
// drivers, the KPI engine and the publisher all speak Record.
package record

import (
	"math"
	"time"
)

// Kind is what a record carries; it selects the topic it is published on.
type Kind uint8

// Record kinds. The numbers are part of the stored format: never renumber.
const (
	KindTelemetry Kind = 1 // one device's values from one poll cycle
	KindKPI       Kind = 2 // one asset's KPIs for one closed window
	KindEvent     Kind = 3 // a state change, a fault or a drop
)

func (k Kind) String() string {
	switch k {
	case KindTelemetry:
		return "telemetry"
	case KindKPI:
		return "kpi"
	case KindEvent:
		return "event"
	}
	return "unknown"
}

// ValueKind is the type of a field's value.
type ValueKind uint8

// Value kinds. The numbers are part of the stored format: never renumber.
const (
	Null   ValueKind = 0 // no good value
	Bool   ValueKind = 1
	Int    ValueKind = 2
	Uint   ValueKind = 3
	Float  ValueKind = 4
	String ValueKind = 5
)

// Quality of a field's value. The numbers are part of the stored format: never renumber.
type Quality uint8

// Qualities, as drivers.Quality.
const (
	Good      Quality = 0
	Uncertain Quality = 1
	Bad       Quality = 2
)

func (q Quality) String() string {
	switch q {
	case Good:
		return "good"
	case Uncertain:
		return "uncertain"
	case Bad:
		return "bad"
	}
	return "invalid"
}

// Field is one named value of a record.
type Field struct {
	// Name is the tag name (telemetry), KPI name or event attribute; unique within a record.
	Name string
	// Kind says which of Bits and Str holds the value.
	Kind ValueKind
	// Bits holds Bool (0 or 1), Int (two's complement), Uint, or Float (IEEE 754 bits).
	Bits uint64
	// Str holds a String value.
	Str string
	// Quality of the value, and why it is not Good ("timeout", "unreachable").
	Quality Quality
	Reason  string
	// SourceTime is when the device took the value; zero when unknown or equal to Record.Time.
	SourceTime time.Time
}

// BoolField, IntField, UintField, FloatField, StringField and NullField build good fields.
func BoolField(name string, b bool) Field {
	f := Field{Name: name, Kind: Bool}
	if b {
		f.Bits = 1
	}
	return f
}

// IntField returns a good signed integer field.
func IntField(name string, v int64) Field { return Field{Name: name, Kind: Int, Bits: uint64(v)} }

// UintField returns a good unsigned integer field.
func UintField(name string, v uint64) Field { return Field{Name: name, Kind: Uint, Bits: v} }

// FloatField returns a good float field.
func FloatField(name string, v float64) Field {
	return Field{Name: name, Kind: Float, Bits: math.Float64bits(v)}
}

// StringField returns a good string field.
func StringField(name, v string) Field { return Field{Name: name, Kind: String, Str: v} }

// NullField returns a field with no value, of the given quality and reason.
func NullField(name string, q Quality, reason string) Field {
	return Field{Name: name, Kind: Null, Quality: q, Reason: reason}
}

// BoolValue returns the value of a Bool field.
func (f *Field) BoolValue() bool { return f.Bits != 0 }

// IntValue returns the value of an Int field.
func (f *Field) IntValue() int64 { return int64(f.Bits) }

// FloatValue returns the value of a Float field.
func (f *Field) FloatValue() float64 { return math.Float64frombits(f.Bits) }

// Record is one message's worth of data: a device's cycle, an asset's window, or an event.
type Record struct {
	Kind Kind
	// Source is the device (telemetry, event) or asset (kpi) the record is about, or "" for an
	// event of the gateway itself.
	Source string
	// Time is when the record's data was taken: the batch's read time, the window's end, or the
	// event's time.
	Time time.Time
	// Fields in the order they were added.
	Fields []Field
}

// Reset empties r, keeping the capacity of Fields for reuse.
func (r *Record) Reset() {
	r.Kind, r.Source, r.Time = 0, "", time.Time{}
	r.Fields = r.Fields[:0]
}
