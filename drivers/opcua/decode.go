package opcua

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/floorlink/floorlink/drivers"
)

// Reasons of bad samples that do not come from a StatusCode.
const (
	reasonNotRead      = "not read"
	reasonTypeMismatch = "type mismatch"
	reasonUnsupported  = "unsupported type"
	reasonNoValue      = "no value"
)

// quality maps a StatusCode to a quality and the code's name ("BadNodeIdUnknown"), a
// constant string from gopcua's table, so that marking samples allocates nothing.
func quality(sc ua.StatusCode) (drivers.Quality, string) {
	switch {
	case sc == ua.StatusOK:
		return drivers.QualityGood, ""
	case uint32(sc)&0xC0000000 == 0:
		return drivers.QualityGood, ""
	case uint32(sc)&0xC0000000 == 0x40000000:
		return drivers.QualityUncertain, statusName(sc)
	}
	return drivers.QualityBad, statusName(sc)
}

// statusName is the StatusCode's symbolic name without gopcua's "Status" prefix, e.g.
// "BadNodeIdUnknown"; the info bits (low 16) are ignored.
func statusName(sc ua.StatusCode) string {
	code := ua.StatusCode(uint32(sc) & 0xFFFF0000)
	if n, ok := statusNames[code]; ok {
		return n
	}
	return fmt.Sprintf("0x%08X", uint32(code))
}

// statusNames holds the spec's names of the StatusCodes, built once from gopcua's table, whose
// Go names spell Id, Uri and Tcp as ID, URI and TCP ("StatusBadNodeIDUnknown"). Read-only.
var statusNames = func() map[ua.StatusCode]string {
	r := strings.NewReplacer("ID", "Id", "URI", "Uri", "TCP", "Tcp")
	m := make(map[ua.StatusCode]string, len(ua.StatusCodes))
	for code, d := range ua.StatusCodes {
		m[code] = r.Replace(strings.TrimPrefix(d.Name, "Status"))
	}
	return m
}()

// decode turns a variant into a Value and the tag type it carries (an array yields its element
// type, array true). ok is false for a type the driver does not map.
func decode(v *ua.Variant) (val drivers.Value, typ drivers.DataType, array, ok bool) {
	if v == nil {
		return drivers.Value{}, "", false, false
	}
	switch x := v.Value().(type) {
	case bool:
		return drivers.BoolValue(x), drivers.TypeBool, false, true
	case int8:
		return drivers.IntValue(int64(x)), drivers.TypeInt8, false, true
	case uint8:
		return drivers.UintValue(uint64(x)), drivers.TypeUint8, false, true
	case int16:
		return drivers.IntValue(int64(x)), drivers.TypeInt16, false, true
	case uint16:
		return drivers.UintValue(uint64(x)), drivers.TypeUint16, false, true
	case int32:
		return drivers.IntValue(int64(x)), drivers.TypeInt32, false, true
	case uint32:
		return drivers.UintValue(uint64(x)), drivers.TypeUint32, false, true
	case int64:
		return drivers.IntValue(x), drivers.TypeInt64, false, true
	case uint64:
		return drivers.UintValue(x), drivers.TypeUint64, false, true
	case float32:
		return drivers.FloatValue(float64(x)), drivers.TypeFloat32, false, true
	case float64:
		return drivers.FloatValue(x), drivers.TypeFloat64, false, true
	case string:
		return drivers.StringValue(x), drivers.TypeString, false, true
	case time.Time:
		return drivers.StringValue(x.UTC().Format(time.RFC3339Nano)), drivers.TypeDateTime, false, true
	case []byte:
		return drivers.StringValue(base64.StdEncoding.EncodeToString(x)), drivers.TypeBytes, false, true
	case []int8:
		return arrayValue(x, func(b []byte, e int8) []byte { return strconv.AppendInt(b, int64(e), 10) }), drivers.TypeInt8, true, true
	case []int16:
		return arrayValue(x, func(b []byte, e int16) []byte { return strconv.AppendInt(b, int64(e), 10) }), drivers.TypeInt16, true, true
	case []uint16:
		return arrayValue(x, func(b []byte, e uint16) []byte { return strconv.AppendUint(b, uint64(e), 10) }), drivers.TypeUint16, true, true
	case []int32:
		return arrayValue(x, func(b []byte, e int32) []byte { return strconv.AppendInt(b, int64(e), 10) }), drivers.TypeInt32, true, true
	case []uint32:
		return arrayValue(x, func(b []byte, e uint32) []byte { return strconv.AppendUint(b, uint64(e), 10) }), drivers.TypeUint32, true, true
	case []int64:
		return arrayValue(x, func(b []byte, e int64) []byte { return strconv.AppendInt(b, e, 10) }), drivers.TypeInt64, true, true
	case []uint64:
		return arrayValue(x, func(b []byte, e uint64) []byte { return strconv.AppendUint(b, e, 10) }), drivers.TypeUint64, true, true
	case []float32:
		return arrayValue(x, func(b []byte, e float32) []byte { return appendFloat(b, float64(e), 32) }), drivers.TypeFloat32, true, true
	case []float64:
		return arrayValue(x, func(b []byte, e float64) []byte { return appendFloat(b, e, 64) }), drivers.TypeFloat64, true, true
	case []bool:
		return arrayValue(x, strconv.AppendBool), drivers.TypeBool, true, true
	}
	return drivers.Value{}, "", false, false
}

// arrayValue formats a numeric array as a JSON array, the text form a record carries.
func arrayValue[T any](xs []T, app func([]byte, T) []byte) drivers.Value {
	b := make([]byte, 0, 2+8*len(xs))
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = app(b, x)
	}
	return drivers.StringValue(string(append(b, ']')))
}

// appendFloat writes a float as JSON does; NaN and ±Inf, which JSON lacks, become null.
func appendFloat(b []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// matches reports whether a value of type got satisfies a tag of type want. Enumerations
// arrive as Int32.
func matches(want, got drivers.DataType) bool {
	return want == drivers.TypeAuto || want == got
}

// builtinTypes names the OPC UA built-in data types by their ns=0 id, with the tag type that
// holds them ("" when the driver does not map it).
var builtinTypes = map[uint32]struct {
	name string
	typ  drivers.DataType
}{
	id.Boolean: {"Boolean", drivers.TypeBool}, id.SByte: {"SByte", drivers.TypeInt8}, id.Byte: {"Byte", drivers.TypeUint8},
	id.Int16: {"Int16", drivers.TypeInt16}, id.UInt16: {"UInt16", drivers.TypeUint16}, id.Int32: {"Int32", drivers.TypeInt32},
	id.UInt32: {"UInt32", drivers.TypeUint32}, id.Int64: {"Int64", drivers.TypeInt64}, id.UInt64: {"UInt64", drivers.TypeUint64},
	id.Float: {"Float", drivers.TypeFloat32}, id.Double: {"Double", drivers.TypeFloat64}, id.String: {"String", drivers.TypeString},
	id.DateTime: {"DateTime", drivers.TypeDateTime}, id.ByteString: {"ByteString", drivers.TypeBytes},
	id.Enumeration: {"Enumeration", drivers.TypeInt32}, id.GUID: {"Guid", ""}, id.LocalizedText: {"LocalizedText", ""},
	id.QualifiedName: {"QualifiedName", ""}, id.NodeID: {"NodeId", ""}, id.StatusCode: {"StatusCode", ""},
	id.BaseDataType: {"BaseDataType", ""}, id.Number: {"Number", ""}, id.Integer: {"Integer", ""}, id.UInteger: {"UInteger", ""},
	id.UtcTime: {"UtcTime", drivers.TypeDateTime}, id.Duration: {"Duration", drivers.TypeFloat64},
}
