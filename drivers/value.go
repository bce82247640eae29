package drivers

import (
	"math"
	"strconv"
)

// Kind is the type of a Value.
type Kind uint8

// Value kinds. KindNone is the zero Value: no reading.
const (
	KindNone Kind = iota
	KindBool
	KindInt
	KindUint
	KindFloat
	KindString
)

// Value is a typed scalar held without allocation: a kind and 64 bits, as log/slog.Value does
// for numbers, or a string. The zero Value has KindNone.
type Value struct {
	kind Kind
	bits uint64
	str  string
}

// BoolValue returns a bool Value.
func BoolValue(b bool) Value {
	if b {
		return Value{kind: KindBool, bits: 1}
	}
	return Value{kind: KindBool}
}

// IntValue returns a signed integer Value.
func IntValue(i int64) Value { return Value{kind: KindInt, bits: uint64(i)} }

// UintValue returns an unsigned integer Value.
func UintValue(u uint64) Value { return Value{kind: KindUint, bits: u} }

// FloatValue returns a float Value.
func FloatValue(f float64) Value { return Value{kind: KindFloat, bits: math.Float64bits(f)} }

// StringValue returns a string Value. Drivers that decode text keep the last string of each
// tag and reuse it while the bytes do not change, so that polling allocates nothing.
func StringValue(s string) Value { return Value{kind: KindString, str: s} }

// Kind returns the kind of v.
func (v Value) Kind() Kind { return v.kind }

// Bool returns v as a bool; it is only meaningful for KindBool.
func (v Value) Bool() bool { return v.bits != 0 }

// Int returns v as an int64; it is only meaningful for KindInt.
func (v Value) Int() int64 { return int64(v.bits) }

// Uint returns v as a uint64; it is only meaningful for KindUint.
func (v Value) Uint() uint64 { return v.bits }

// Float returns v as a float64; it is only meaningful for KindFloat.
func (v Value) Float() float64 { return math.Float64frombits(v.bits) }

// Str returns v as a string; it is only meaningful for KindString.
func (v Value) Str() string { return v.str }

// Float64 converts any numeric or bool Value to float64 (true is 1). ok is false for KindNone.
func (v Value) Float64() (f float64, ok bool) {
	switch v.kind {
	case KindBool:
		if v.Bool() {
			return 1, true
		}
		return 0, true
	case KindInt:
		return float64(v.Int()), true
	case KindUint:
		return float64(v.Uint()), true
	case KindFloat:
		return v.Float(), true
	}
	return 0, false
}

// String formats v for logs and tests.
func (v Value) String() string {
	switch v.kind {
	case KindBool:
		return strconv.FormatBool(v.Bool())
	case KindInt:
		return strconv.FormatInt(v.Int(), 10)
	case KindUint:
		return strconv.FormatUint(v.Uint(), 10)
	case KindFloat:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case KindString:
		return strconv.Quote(v.str)
	}
	return "<none>"
}
