package publish

import (
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/floorlink/floorlink/agent/record"
)

// Sparkplug quality codes of the "Quality" property (specification 6.4.9.1). Floorlink's
// uncertain becomes STALE: the value is there but not to be trusted; Sparkplug has no better word.
const (
	qualityBad   = 0
	qualityGood  = 192
	qualityStale = 500
)

// Field numbers of the Sparkplug payload (specification 6.4.1) that the DATA encoder writes.
const (
	fieldPayloadTimestamp protowire.Number = 1
	fieldPayloadMetrics   protowire.Number = 2
	fieldPayloadSeq       protowire.Number = 3

	fieldMetricAlias      protowire.Number = 2
	fieldMetricTimestamp  protowire.Number = 3
	fieldMetricHistorical protowire.Number = 5
	fieldMetricIsNull     protowire.Number = 7
	fieldMetricProperties protowire.Number = 9
	fieldMetricInt        protowire.Number = 10 // uint32 int_value
	fieldMetricLong       protowire.Number = 11 // uint64 long_value
	fieldMetricFloat      protowire.Number = 12
	fieldMetricDouble     protowire.Number = 13
	fieldMetricBool       protowire.Number = 14
	fieldMetricString     protowire.Number = 15

	fieldSetKeys        protowire.Number = 1
	fieldSetValues      protowire.Number = 2
	fieldPropType       protowire.Number = 1
	fieldPropInt        protowire.Number = 3
	propertyTypeInt32                    = 3 // DataType Int32: Quality's type
	qualityKey                           = "Quality"
	payloadSeqFieldSize                  = 3 // tag and a varint of at most 255
)

// wireValue is a metric's value as it travels: the oneof field that holds it (0: no value,
// is_null) and its bits or string, with the Sparkplug quality code.
type wireValue struct {
	field   protowire.Number
	bits    uint64
	str     string
	quality int32
}

// toWire converts f to datatype t per specification 6.4.16-17: Int8/16/32 sign-extended to 32
// bits in int_value (Int8 -5 travels as 4294967291), UInt8/16/32 in int_value (UInt32 too, as
// 6.4.17 says, although some decoders expect it in long_value), Int64/UInt64/DateTime in
// long_value (two's complement). A value the type cannot hold (out of range, NaN, a string for
// a number), or no value at all, is null with quality bad.
func toWire(t DataType, f *record.Field) wireValue {
	q := int32(qualityGood)
	switch f.Quality {
	case record.Uncertain:
		q = qualityStale
	case record.Bad:
		q = qualityBad
	}
	null := wireValue{quality: qualityBad}
	if f.Quality == record.Uncertain {
		null.quality = qualityStale
	}
	if f.Kind == record.Null {
		return null
	}
	switch t {
	case TypeInt8, TypeInt16, TypeInt32:
		hi := int64(math.MaxInt32)
		switch t {
		case TypeInt8:
			hi = math.MaxInt8
		case TypeInt16:
			hi = math.MaxInt16
		}
		v, ok := asInt(f)
		if !ok || v < -hi-1 || v > hi {
			return wireValue{quality: qualityBad}
		}
		return wireValue{field: fieldMetricInt, bits: uint64(uint32(int32(v))), quality: q}
	case TypeUInt8, TypeUInt16, TypeUInt32:
		limit := uint64(math.MaxUint32)
		switch t {
		case TypeUInt8:
			limit = math.MaxUint8
		case TypeUInt16:
			limit = math.MaxUint16
		}
		v, ok := asUint(f)
		if !ok || v > limit {
			return wireValue{quality: qualityBad}
		}
		return wireValue{field: fieldMetricInt, bits: v, quality: q}
	case TypeInt64, TypeDateTime:
		v, ok := asInt(f)
		if !ok {
			return wireValue{quality: qualityBad}
		}
		return wireValue{field: fieldMetricLong, bits: uint64(v), quality: q}
	case TypeUInt64:
		v, ok := asUint(f)
		if !ok {
			return wireValue{quality: qualityBad}
		}
		return wireValue{field: fieldMetricLong, bits: v, quality: q}
	case TypeFloat, TypeDouble:
		v, ok := asFloat(f)
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) || (t == TypeFloat && math.Abs(v) > math.MaxFloat32) {
			return wireValue{quality: qualityBad}
		}
		if t == TypeFloat {
			return wireValue{field: fieldMetricFloat, bits: uint64(math.Float32bits(float32(v))), quality: q}
		}
		return wireValue{field: fieldMetricDouble, bits: math.Float64bits(v), quality: q}
	case TypeBoolean:
		if f.Kind == record.String {
			return wireValue{quality: qualityBad}
		}
		v, _ := asFloat(f)
		var b uint64
		if v != 0 {
			b = 1
		}
		return wireValue{field: fieldMetricBool, bits: b, quality: q}
	case TypeString, TypeText:
		if f.Kind != record.String {
			return wireValue{quality: qualityBad}
		}
		return wireValue{field: fieldMetricString, str: f.Str, quality: q}
	}
	return wireValue{quality: qualityBad}
}

func asInt(f *record.Field) (int64, bool) {
	switch f.Kind {
	case record.Int, record.Bool:
		return int64(f.Bits), true
	case record.Uint:
		return int64(f.Bits), f.Bits <= math.MaxInt64
	case record.Float:
		v := f.FloatValue()
		return int64(v), v == math.Trunc(v) && v >= math.MinInt64 && v < math.MaxInt64
	}
	return 0, false
}

func asUint(f *record.Field) (uint64, bool) {
	switch f.Kind {
	case record.Uint, record.Bool:
		return f.Bits, true
	case record.Int:
		return f.Bits, int64(f.Bits) >= 0
	case record.Float:
		v := f.FloatValue()
		return uint64(v), v == math.Trunc(v) && v >= 0 && v < math.MaxUint64
	}
	return 0, false
}

func asFloat(f *record.Field) (float64, bool) {
	switch f.Kind {
	case record.Float:
		return f.FloatValue(), true
	case record.Int:
		return float64(int64(f.Bits)), true
	case record.Uint, record.Bool:
		return float64(f.Bits), true
	}
	return 0, false
}

// msTime is t in ms since the Unix epoch, as Sparkplug's uint64 timestamps.
func msTime(t time.Time) uint64 { return uint64(t.UnixMilli()) }

// appendDataStart begins a DATA payload: its timestamp, the publish time.
func appendDataStart(dst []byte, now uint64) []byte {
	dst = protowire.AppendTag(dst, fieldPayloadTimestamp, protowire.VarintType)
	return protowire.AppendVarint(dst, now)
}

// appendDataEnd ends a DATA payload with its seq, present even when 0 (proto2).
func appendDataEnd(dst []byte, seq uint8) []byte {
	dst = protowire.AppendTag(dst, fieldPayloadSeq, protowire.VarintType)
	return protowire.AppendVarint(dst, uint64(seq))
}

// appendDataMetric appends one alias-only metric of a DATA payload (6.4.21-22): alias,
// timestamp, is_historical when set, is_null or the value, and the Quality property unless the
// value is good; no name, no datatype. It allocates nothing while dst has room.
func appendDataMetric(dst []byte, alias, ts uint64, historical bool, v wireValue) []byte {
	dst = protowire.AppendTag(dst, fieldPayloadMetrics, protowire.BytesType)
	// The metric's length comes before it. Nearly every metric is shorter than 128 bytes, so
	// reserve one byte and make room afterwards in the rare other case.
	at := len(dst)
	dst = append(dst, 0)
	dst = protowire.AppendTag(dst, fieldMetricAlias, protowire.VarintType)
	dst = protowire.AppendVarint(dst, alias)
	dst = protowire.AppendTag(dst, fieldMetricTimestamp, protowire.VarintType)
	dst = protowire.AppendVarint(dst, ts)
	if historical {
		dst = protowire.AppendTag(dst, fieldMetricHistorical, protowire.VarintType)
		dst = protowire.AppendVarint(dst, 1)
	}
	if v.field == 0 {
		dst = protowire.AppendTag(dst, fieldMetricIsNull, protowire.VarintType)
		dst = protowire.AppendVarint(dst, 1)
	}
	if v.quality != qualityGood {
		dst = appendQuality(dst, v.quality)
	}
	switch v.field {
	case fieldMetricInt, fieldMetricLong, fieldMetricBool:
		dst = protowire.AppendTag(dst, v.field, protowire.VarintType)
		dst = protowire.AppendVarint(dst, v.bits)
	case fieldMetricFloat:
		dst = protowire.AppendTag(dst, v.field, protowire.Fixed32Type)
		dst = protowire.AppendFixed32(dst, uint32(v.bits))
	case fieldMetricDouble:
		dst = protowire.AppendTag(dst, v.field, protowire.Fixed64Type)
		dst = protowire.AppendFixed64(dst, v.bits)
	case fieldMetricString:
		dst = protowire.AppendTag(dst, v.field, protowire.BytesType)
		dst = protowire.AppendString(dst, v.str)
	}
	return fixLength(dst, at)
}

// fixLength writes the length of dst[at+1:] as a varint at dst[at], where one byte was
// reserved, moving the body when the length needs more.
func fixLength(dst []byte, at int) []byte {
	n := len(dst) - at - 1
	if n < 0x80 {
		dst[at] = byte(n)
		return dst
	}
	k := protowire.SizeVarint(uint64(n))
	dst = append(dst, make([]byte, k-1)...)
	copy(dst[at+k:], dst[at+1:at+1+n])
	protowire.AppendVarint(dst[at:at], uint64(n))
	return dst
}

// appendQuality appends the metric's properties: {"Quality": Int32 q}.
func appendQuality(dst []byte, q int32) []byte {
	dst = protowire.AppendTag(dst, fieldMetricProperties, protowire.BytesType)
	set := len(dst)
	dst = append(dst, 0)
	dst = protowire.AppendTag(dst, fieldSetKeys, protowire.BytesType)
	dst = protowire.AppendString(dst, qualityKey)
	dst = protowire.AppendTag(dst, fieldSetValues, protowire.BytesType)
	val := len(dst)
	dst = append(dst, 0)
	dst = protowire.AppendTag(dst, fieldPropType, protowire.VarintType)
	dst = protowire.AppendVarint(dst, propertyTypeInt32)
	dst = protowire.AppendTag(dst, fieldPropInt, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(uint32(q)))
	dst = fixLength(dst, val)
	return fixLength(dst, set)
}
