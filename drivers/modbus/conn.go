package modbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/goburrow/modbus"

	"github.com/floorlink/floorlink/drivers"
)

// Table names one of the four Modbus data tables: "co" (coils), "di" (discrete inputs), "ir"
// (input registers), "hr" (holding registers), as in the explicit address forms.
type Table string

// The tables.
const (
	Coils            Table = "co"
	DiscreteInputs   Table = "di"
	InputRegisters   Table = "ir"
	HoldingRegisters Table = "hr"
)

func (t Table) space() (space, bool) {
	switch t {
	case Coils:
		return spaceCoil, true
	case DiscreteInputs:
		return spaceDiscrete, true
	case InputRegisters:
		return spaceInput, true
	case HoldingRegisters:
		return spaceHolding, true
	}
	return 0, false
}

// Conn is a bare connection to a Modbus TCP endpoint or serial port, over the driver's own
// transports (context-aware, resynchronising, see the package doc), for tools such as
// `floorlink modbus scan` that read ranges of registers rather than tags. It is not safe for
// concurrent use.
type Conn struct {
	protocol string
	address  string
	t        transport
	clients  map[uint8]modbus.Client
}

// Dial prepares a connection for protocol (ProtocolTCP or ProtocolRTU) to address (host:port,
// or a serial device path with its line setting s), each request bounded by timeout (zero: 2s).
// ctx bounds the connection's life: when it ends, a read in progress returns at once. Dial
// opens the connection, so that a wrong address fails here.
func Dial(ctx context.Context, protocol, address string, s drivers.Serial, timeout time.Duration) (*Conn, error) {
	timeout = cmpOr(timeout, DefaultTimeout)
	c := &Conn{protocol: protocol, address: address, clients: map[uint8]modbus.Client{}}
	switch protocol {
	case ProtocolTCP, "":
		if err := checkHostPort(address); err != nil {
			return nil, fmt.Errorf("dial modbus-tcp: address %w", err)
		}
		c.protocol = ProtocolTCP
		c.t = newTCPTransport(ctx, address, timeout, (&net.Dialer{}).DialContext)
	case ProtocolRTU:
		var errs []error
		checkSerial(s, func(path, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
		})
		if address == "" {
			errs = append(errs, errors.New("empty serial device path"))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("dial modbus-rtu %s: %w", address, err)
		}
		c.t = newRTUTransport(ctx, serialConfig(address, s), timeout, DefaultResyncQuiet, openSerial)
	default:
		return nil, fmt.Errorf("dial: protocol %q: want %q or %q", protocol, ProtocolTCP, ProtocolRTU)
	}
	if err := c.t.connect(); err != nil {
		c.t.release()
		return nil, fmt.Errorf("dial %s %s: %w", c.protocol, address, err)
	}
	return c, nil
}

// Read reads count registers (or bits) of table from start on unit, in one request: count is
// 1..125 for registers, 1..2000 for bits. It returns the reply's payload: two bytes per
// register, each big-endian, in address order; or the bits packed eight to a byte, the first in
// the least significant bit of the first byte. The slice is valid until the next Read. An
// exception comes back as a *modbus.ModbusError from github.com/goburrow/modbus (errors.As).
func (c *Conn) Read(unit uint8, table Table, start, count uint16) ([]byte, error) {
	sp, ok := table.space()
	if !ok {
		return nil, fmt.Errorf("read: table %q: want co, di, ir or hr", table)
	}
	cl, ok := c.clients[unit]
	if !ok {
		var pk modbus.Packager
		if c.protocol == ProtocolRTU {
			h := &modbus.RTUClientHandler{}
			h.SlaveId = unit
			pk = h
		} else {
			h := &modbus.TCPClientHandler{}
			h.SlaveId = unit
			pk = h
		}
		cl = modbus.NewClient2(pk, c.t)
		c.clients[unit] = cl
	}
	var data []byte
	var err error
	switch sp {
	case spaceCoil:
		data, err = cl.ReadCoils(start, count)
	case spaceDiscrete:
		data, err = cl.ReadDiscreteInputs(start, count)
	case spaceInput:
		data, err = cl.ReadInputRegisters(start, count)
	default:
		data, err = cl.ReadHoldingRegisters(start, count)
	}
	if err == nil {
		want := 2 * int(count)
		if !sp.isRegister() {
			want = (int(count) + 7) / 8
		}
		if len(data) != want {
			err = fmt.Errorf("%w: got %d bytes, want %d", errReplyLength, len(data), want)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %d-%d on %s (unit %d): %w", sp.noun(), start, int(start)+int(count)-1, c.address, unit, err)
	}
	return data, nil
}

// Close closes the connection. It is safe to call twice.
func (c *Conn) Close() error {
	c.t.release()
	return nil
}
