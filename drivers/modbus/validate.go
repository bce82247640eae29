package modbus

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/floorlink/floorlink/drivers"
)

// The Device.Protocol values this package serves. An empty Protocol means ProtocolTCP.
const (
	ProtocolTCP = "modbus-tcp"
	ProtocolRTU = "modbus-rtu"
)

// devConfig is a validated device with its defaults applied.
type devConfig struct {
	dev      drivers.Device
	protocol string
	interval time.Duration
	timeout  time.Duration
	retries  int
	delay    time.Duration
	lim      limits
	// groups are the device's poll intervals, each with the tags polled at it, in the order
	// of their first tag.
	groups []groupConfig
}

type groupConfig struct {
	interval time.Duration
	specs    []tagSpec // slot is the index here
}

// validateDevice checks dev and returns it with defaults applied, or every problem found as
// *drivers.FieldError values with paths relative to the device. Paths are the config file's
// keys ("max_registers", "serial.baud", "tags[3].address").
func validateDevice(dev drivers.Device, opts *Options) (devConfig, []error) {
	var errs []error
	bad := func(path string, format string, args ...any) {
		errs = append(errs, &drivers.FieldError{Device: dev.Name, Path: path, Err: fmt.Errorf(format, args...)})
	}
	c := devConfig{dev: dev, protocol: dev.Protocol}
	if c.protocol == "" {
		c.protocol = ProtocolTCP
	}

	if dev.Name == "" {
		bad("name", "empty: a device needs a name for its records, topics and logs")
	}
	switch c.protocol {
	case ProtocolTCP:
		if err := checkHostPort(dev.Address); err != nil {
			bad("address", "%w", err)
		}
		// The serial line spec reserves 248..254; Modbus TCP devices answer 0 or 255 when
		// addressed directly, and a gateway forwards 1..247 to its bus.
		if dev.UnitID >= 248 && dev.UnitID <= 254 {
			bad("unit_id", "%d is reserved: want 1..247 for a device behind a gateway, 0 or 255 for a device addressed directly", dev.UnitID)
		}
		if dev.Modbus.Serial != (drivers.Serial{}) {
			bad("serial", "only for modbus-rtu: a modbus-tcp device has no serial line")
		}
	case ProtocolRTU:
		if dev.Address == "" {
			bad("address", "empty: want the serial device's path, e.g. \"/dev/ttyUSB0\"")
		}
		if dev.UnitID < 1 || dev.UnitID > 247 {
			bad("unit_id", "%d: want 1..247 on a serial line (0 is broadcast, which no device answers)", dev.UnitID)
		}
		checkSerial(dev.Modbus.Serial, bad)
	default:
		bad("protocol", "%q: the modbus driver serves %q and %q", dev.Protocol, ProtocolTCP, ProtocolRTU)
	}
	if dev.SourceTime {
		bad("timestamp", "source: modbus devices carry no clock: use timestamp: gateway")
	}
	if dev.PollInterval < 0 {
		bad("poll_interval", "%v is negative: want a positive duration, or zero for 1s", dev.PollInterval)
	}
	if dev.Timeout < 0 {
		bad("timeout", "%v is negative: want a positive duration, or zero for 2s", dev.Timeout)
	}
	c.interval = cmpOr(dev.PollInterval, DefaultPollInterval)
	c.timeout = cmpOr(dev.Timeout, DefaultTimeout)

	mo := dev.Modbus
	c.retries, c.delay = mo.Retries, mo.RequestDelay
	if mo.Retries < 0 || mo.Retries > 10 {
		bad("retries", "%d: want 0..10", mo.Retries)
	}
	if mo.RequestDelay < 0 || mo.RequestDelay > 10*time.Second {
		bad("request_delay", "%v: want 0 to 10s", mo.RequestDelay)
	}
	c.lim = limits{maxRegisters: mo.MaxRegisters, maxBits: opts.MaxBits, maxGap: mo.MaxGap}
	if c.lim.maxRegisters == 0 {
		c.lim.maxRegisters = DefaultMaxRegisters
	}
	if c.lim.maxRegisters < 1 || c.lim.maxRegisters > 125 {
		bad("max_registers", "%d: want 1..125 (the protocol's limit for one read), or 0 for 125", mo.MaxRegisters)
		c.lim.maxRegisters = DefaultMaxRegisters
	}
	if c.lim.maxBits == 0 {
		c.lim.maxBits = DefaultMaxBits
	}
	switch {
	case c.lim.maxGap == 0:
		c.lim.maxGap = DefaultMaxGap
	case c.lim.maxGap < 0:
		c.lim.maxGap = 0
	}
	if mo.AddressBase != 0 && mo.AddressBase != 1 {
		bad("address_base", "%d: want 0 (hr:0 is the first holding register) or 1 (hr:1 is); %s", mo.AddressBase, baseHint)
	}
	base := mo.AddressBase

	if len(dev.Tags) == 0 {
		bad("tags", "none: a device needs at least one tag")
	}
	names := make(map[string]int, len(dev.Tags))
	groupOf := map[time.Duration]int{}
	for i, tag := range dev.Tags {
		path := "tags[" + strconv.Itoa(i) + "]"
		if tag.Name == "" {
			bad(path+".name", "empty: a tag needs a name")
		} else if j, dup := names[tag.Name]; dup {
			bad(path+".name", "%q is already the name of tags[%d]: names must be unique within a device", tag.Name, j)
		} else {
			names[tag.Name] = i
		}
		if tag.PollInterval < 0 {
			bad(path+".poll_interval", "%v is negative: want a positive duration, or zero for the device's", tag.PollInterval)
		}

		a, err := parseAddress(tag.Address, base)
		if err != nil {
			bad(path+".address", "%w", err)
		}
		typ, typeOK := checkType(tag.Type)
		if !typeOK {
			bad(path+".type", "%q: want one of %s", tag.Type, listTypes())
		}
		order, orderErr := checkByteOrder(tag.Type, tag.ByteOrder)
		if typeOK && orderErr != nil {
			bad(path+".byte_order", "%w", orderErr)
		}
		width := typ.width()
		switch {
		case !typeOK:
		case typ == typeString && (tag.Length < 1 || tag.Length > 123):
			bad(path+".length", "%d: a string needs its length in registers (two characters each), 1..123", tag.Length)
			typeOK = false
		case typ == typeString:
			width = tag.Length
		case tag.Length != 0:
			bad(path+".length", "%d: only strings have a length (in registers); remove it from this %s", tag.Length, tag.Type)
		}
		if err != nil || !typeOK {
			continue
		}

		// The address and the type are each valid; now check that they go together.
		switch {
		case typ == typeBool && a.space.isRegister() && a.bit == noBit:
			bad(path+".address", "%q: a bool on a register needs a bit, e.g. %q", tag.Address, tag.Address+".0")
			continue
		case typ == typeBool && a.space.isRegister():
			typ = typeRegBit
		case typ != typeBool && !a.space.isRegister():
			bad(path+".type", "%s needs an input or holding register (3xxxx, 4xxxx, ir:N, hr:N); %q is a %s, which holds a bool",
				tag.Type, tag.Address, a.space.singular())
			continue
		case typ != typeBool && a.bit != noBit:
			bad(path+".type", "%s at %q: a register bit holds a bool only", tag.Type, tag.Address)
			continue
		}
		if last := int(a.reg) + width - 1; last > 65535 {
			bad(path+".address", "%q: %s takes %d registers and the last one, %d, is past 65535",
				tag.Address, tag.Type, width, last)
			continue
		}
		if a.space.isRegister() && width > c.lim.maxRegisters {
			what := path + ".length"
			if typ != typeString {
				what = path + ".type"
			}
			bad(what, "a %s of %d registers does not fit in one read of max_registers %d", tag.Type, width, c.lim.maxRegisters)
			continue
		}
		if orderErr != nil {
			continue
		}
		interval := cmpOr(tag.PollInterval, c.interval)
		g, ok := groupOf[interval]
		if !ok {
			g = len(c.groups)
			groupOf[interval] = g
			c.groups = append(c.groups, groupConfig{interval: interval})
		}
		s := tagSpec{tag: i, slot: len(c.groups[g].specs), addr: a, typ: typ, order: order, n: width}
		if typ == typeString {
			s.str = &strCache{raw: make([]byte, 0, 2*width)}
		}
		c.groups[g].specs = append(c.groups[g].specs, s)
	}
	return c, errs
}

func checkSerial(s drivers.Serial, bad func(path string, format string, args ...any)) {
	switch s.Baud {
	case 0, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400:
	default:
		bad("serial.baud", "%d: want 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200 or 230400 (0 for 9600)", s.Baud)
	}
	if s.DataBits != 0 && s.DataBits != 7 && s.DataBits != 8 {
		bad("serial.data_bits", "%d: want 7 or 8 (0 for 8)", s.DataBits)
	}
	switch s.Parity {
	case "", "none", "even", "odd":
	default:
		bad("serial.parity", "%q: want \"none\", \"even\" or \"odd\"", s.Parity)
	}
	if s.StopBits != 0 && s.StopBits != 1 && s.StopBits != 2 {
		bad("serial.stop_bits", "%d: want 1 or 2 (0 for 1)", s.StopBits)
	}
}

// normSerial is s with its defaults filled in, to compare the line settings of two devices.
func normSerial(s drivers.Serial) drivers.Serial {
	if s.Baud == 0 {
		s.Baud = 9600
	}
	if s.DataBits == 0 {
		s.DataBits = 8
	}
	if s.Parity == "" {
		s.Parity = "none"
	}
	if s.StopBits == 0 {
		s.StopBits = 1
	}
	return s
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port, e.g. \"192.0.2.10:502\"", s)
	}
	if host == "" {
		return fmt.Errorf("%q: empty host: want host:port, e.g. \"192.0.2.10:502\"", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q: want 1..65535 (Modbus TCP's is 502)", s, port)
	}
	return nil
}

func checkType(t drivers.DataType) (valueType, bool) {
	switch t {
	case drivers.TypeBool:
		return typeBool, true
	case drivers.TypeInt16:
		return typeInt16, true
	case drivers.TypeUint16:
		return typeUint16, true
	case drivers.TypeInt32:
		return typeInt32, true
	case drivers.TypeUint32:
		return typeUint32, true
	case drivers.TypeFloat32:
		return typeFloat32, true
	case drivers.TypeInt64:
		return typeInt64, true
	case drivers.TypeUint64:
		return typeUint64, true
	case drivers.TypeFloat64:
		return typeFloat64, true
	case drivers.TypeString:
		return typeString, true
	case drivers.TypeBCD16:
		return typeBCD16, true
	case drivers.TypeBCD32:
		return typeBCD32, true
	}
	return 0, false
}

// Types are the data types a Modbus tag can have: the register encodings PLCs use. OPC UA's
// int8, datetime and the rest have no agreed register layout, so they are refused here.
func Types() []drivers.DataType {
	return []drivers.DataType{drivers.TypeBool, drivers.TypeInt16, drivers.TypeUint16, drivers.TypeInt32, drivers.TypeUint32,
		drivers.TypeInt64, drivers.TypeUint64, drivers.TypeFloat32, drivers.TypeFloat64, drivers.TypeString, drivers.TypeBCD16, drivers.TypeBCD32}
}

func listTypes() string {
	var b strings.Builder
	for i, t := range Types() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(t))
	}
	return b.String()
}

// checkByteOrder maps a tag's byte order, given its type, to the decoder's swaps.
func checkByteOrder(t drivers.DataType, s string) (byteOrder, error) {
	switch t {
	case drivers.TypeBool:
		if s == "" {
			return orderABCD, nil
		}
		return 0, fmt.Errorf("%q: a bool has no byte order: want \"\"", s)
	case drivers.TypeInt16, drivers.TypeUint16, drivers.TypeBCD16, drivers.TypeString:
		switch s {
		case "", "AB":
			return orderABCD, nil
		case "BA":
			return orderBADC, nil
		}
		what := "byte-swapped"
		if t == drivers.TypeString {
			what = "the first character in the low byte"
		}
		return 0, fmt.Errorf("%q: want \"\", \"AB\" (big-endian, the default) or \"BA\" (%s) for %s", s, what, t)
	}
	switch s {
	case "", "ABCD":
		return orderABCD, nil
	case "CDAB":
		return orderCDAB, nil
	case "BADC":
		return orderBADC, nil
	case "DCBA":
		return orderDCBA, nil
	}
	return 0, fmt.Errorf("%q: want \"\" or \"ABCD\" (big-endian, the default), \"CDAB\" (word-swapped), "+
		"\"BADC\" (byte-swapped) or \"DCBA\" (little-endian) for %s", s, t)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
