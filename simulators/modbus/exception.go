package modbus

import "fmt"

// Exception is a Modbus exception code, answered in place of data. It implements error so that a
// Source can return one.
type Exception byte

// Exception codes from the Modbus Application Protocol Specification v1.1b3, section 7.
const (
	IllegalFunction        Exception = 0x01
	IllegalDataAddress     Exception = 0x02
	IllegalDataValue       Exception = 0x03
	ServerDeviceFailure    Exception = 0x04
	GatewayPathUnavailable Exception = 0x0A
	// GatewayTargetFailed is the answer for a unit id the Source does not have.
	GatewayTargetFailed Exception = 0x0B
)

// Error returns the code and its name from the specification.
func (e Exception) Error() string {
	switch e {
	case IllegalFunction:
		return "modbus exception 1: illegal function"
	case IllegalDataAddress:
		return "modbus exception 2: illegal data address"
	case IllegalDataValue:
		return "modbus exception 3: illegal data value"
	case ServerDeviceFailure:
		return "modbus exception 4: server device failure"
	case GatewayPathUnavailable:
		return "modbus exception 10: gateway path unavailable"
	case GatewayTargetFailed:
		return "modbus exception 11: gateway target device failed to respond"
	}
	return fmt.Sprintf("modbus exception %d", byte(e))
}

// Table is one of the four Modbus data tables. Its value is the function code that reads it.
type Table byte

// The tables, each numbered by the function code that reads it.
const (
	Coils            Table = 1
	DiscreteInputs   Table = 2
	HoldingRegisters Table = 3
	InputRegisters   Table = 4
)

// String returns the table's name, as in the specification.
func (t Table) String() string {
	switch t {
	case Coils:
		return "coils"
	case DiscreteInputs:
		return "discrete inputs"
	case HoldingRegisters:
		return "holding registers"
	case InputRegisters:
		return "input registers"
	}
	return fmt.Sprintf("table(%d)", byte(t))
}

// Source is what a Server serves. Implementations must be safe for concurrent use: every
// connection calls them from its own goroutine.
type Source interface {
	// HasUnit reports whether unit is a device behind the server; requests to any other unit
	// are answered with GatewayTargetFailed.
	HasUnit(unit byte) bool
	// Read fills dst with len(dst) values of table t from address addr of unit, all from one
	// consistent state. Bit tables use 0 and 1. It returns an Exception (IllegalDataAddress for
	// a range outside the map); any other error is answered with ServerDeviceFailure. dst is
	// only valid during the call.
	Read(unit byte, t Table, addr uint16, dst []uint16) error
}
