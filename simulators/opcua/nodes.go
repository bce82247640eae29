package opcua

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/gopcua/opcua/id"

	"github.com/floorlink/floorlink/simulators/line"
)

// NamespaceURI is the URI of the namespace that holds the line (index NamespaceIndex). Index 1
// is a namespace of its own, empty, as on many PLCs whose server-local namespace comes first.
const (
	NamespaceURI   = "urn:floorlink:plcsim:line"
	NamespaceIndex = 2
)

// Epoch is the simulated clock's origin: Types.DateTime is Epoch + tick × step.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Variable describes one variable node of a machine: its name below Line1.M<k>, its OPC UA
// built-in data type (a ns=0 numeric id, e.g. id.Double), whether its value is a
// one-dimensional array, and the value at a tick.
type Variable struct {
	// Name below Line1.M<k>, e.g. "State" or "Types.Double"; the node id is
	// ns=2;s=Line1.M<k>.<Name>.
	Name string
	// DataType is the ns=0 numeric id of the DataType attribute (id.Int32, id.Enumeration…).
	DataType uint32
	// Array is true for a one-dimensional array (ValueRank 1).
	Array bool
	// Value returns the Go value served (bool, int8…uint64, float32, float64, string,
	// time.Time, []byte, []float64, []int32) for machine m at tick with step; k is the machine's
	// number (1-based).
	Value func(k int, m line.Machine, tick uint64, step time.Duration) any
}

// Variables returns the variables every machine serves, in browse order. Every type the
// driver supports is there: the Types folder holds one of each, mostly constants, with a few
// dynamic ones (Boolean, Byte, Double, DateTime, ByteString, the arrays). The slice is new.
func Variables() []Variable {
	return []Variable{
		{"State", id.Enumeration, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return int32(m.State) }},
		{"StateName", id.String, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return m.State.String() }},
		{"Tick", id.UInt32, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return m.Tick }},
		{"PartsTotal", id.UInt32, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return m.PartsTotal }},
		{"GoodTotal", id.UInt32, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return m.GoodTotal }},
		{"RejectTotal", id.UInt32, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return m.RejectTotal }},
		{"PartsTotal16", id.UInt16, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return uint16(m.PartsTotal) }},
		{"Temperature", id.Float, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return m.Temperature }},
		{"Pressure", id.Float, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return m.Pressure }},
		{"SpindleSpeed", id.Int32, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return m.SpindleSpeed }},
		{"CycleTimeMs", id.UInt16, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return m.CycleTimeMs }},
		{"IdealCycleTimeMs", id.UInt16, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return m.IdealCycleTimeMs }},
		{"AlarmCode", id.UInt16, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return m.AlarmCode }},
		{"TemperatureX10", id.Int16, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any {
			return int16(math.Round(float64(m.Temperature) * 10))
		}},
		{"Running", id.Boolean, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return m.State == line.Running }},
		{"Down", id.Boolean, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return m.State == line.Down }},

		{"Types.Boolean", id.Boolean, false, func(_ int, _ line.Machine, t uint64, _ time.Duration) any { return t%2 == 1 }},
		{"Types.SByte", id.SByte, false, func(_ int, _ line.Machine, _ uint64, _ time.Duration) any { return int8(-100) }},
		{"Types.Byte", id.Byte, false, func(_ int, _ line.Machine, t uint64, _ time.Duration) any { return uint8(t) }},
		{"Types.Int16", id.Int16, false, func(_ int, _ line.Machine, _ uint64, _ time.Duration) any { return int16(-12345) }},
		{"Types.UInt16", id.UInt16, false, func(_ int, _ line.Machine, _ uint64, _ time.Duration) any { return uint16(48879) }},
		{"Types.Int32", id.Int32, false, func(_ int, _ line.Machine, _ uint64, _ time.Duration) any { return int32(-123456789) }},
		{"Types.UInt32", id.UInt32, false, func(_ int, _ line.Machine, _ uint64, _ time.Duration) any { return uint32(3456789012) }},
		{"Types.Int64", id.Int64, false, func(_ int, _ line.Machine, _ uint64, _ time.Duration) any { return int64(-1234567890123456789) }},
		{"Types.UInt64", id.UInt64, false, func(_ int, _ line.Machine, _ uint64, _ time.Duration) any { return uint64(12345678901234567890) }},
		{"Types.Float", id.Float, false, func(_ int, _ line.Machine, _ uint64, _ time.Duration) any { return float32(3.1415927) }},
		{"Types.Double", id.Double, false, func(_ int, m line.Machine, _ uint64, _ time.Duration) any { return float64(m.Temperature) }},
		{"Types.String", id.String, false, func(k int, _ line.Machine, _ uint64, _ time.Duration) any { return "Press " + strconv.Itoa(k) }},
		{"Types.DateTime", id.DateTime, false, func(_ int, _ line.Machine, t uint64, step time.Duration) any {
			return Epoch.Add(time.Duration(t) * step)
		}},
		{"Types.ByteString", id.ByteString, false, func(k int, _ line.Machine, t uint64, _ time.Duration) any {
			return []byte{0xDE, 0xAD, byte(k), byte(t)}
		}},
		{"Types.DoubleArray", id.Double, true, func(_ int, m line.Machine, _ uint64, _ time.Duration) any {
			return []float64{float64(m.Temperature), float64(m.Pressure), float64(m.SpindleSpeed)}
		}},
		{"Types.Int32Array", id.Int32, true, func(_ int, m line.Machine, _ uint64, _ time.Duration) any {
			return []int32{int32(m.PartsTotal), int32(m.GoodTotal), int32(m.RejectTotal)}
		}},
	}
}

// NodeID returns the node id of machine k's variable name: "ns=2;s=Line1.M<k>.<name>".
func NodeID(k int, name string) string {
	return fmt.Sprintf("ns=%d;s=Line1.M%d.%s", NamespaceIndex, k, name)
}

// ExtraNodeID returns the node id of machine k's extra value i (line.Config.ExtraValues):
// "ns=2;s=Line1.M<k>.Extra.<i>", a UInt16 holding line.Machine.Extra(i).
func ExtraNodeID(k, i int) string {
	return fmt.Sprintf("ns=%d;s=Line1.M%d.Extra.%d", NamespaceIndex, k, i)
}
