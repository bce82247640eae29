package modbus

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/floorlink/floorlink/drivers"
)

// Protocol is the Device.Protocol this package serves.
const Protocol = "modbus-tcp"

// validateDevice checks dev and returns the planner's view of its tags, or every problem found
// as *drivers.FieldError values with paths relative to the device.
func validateDevice(dev drivers.Device) ([]tagSpec, []error) {
	var errs []error
	bad := func(path string, format string, args ...any) {
		errs = append(errs, &drivers.FieldError{Path: path, Err: fmt.Errorf(format, args...)})
	}

	if dev.Name == "" {
		bad("name", "empty: a device needs a name for its records, topics and logs")
	}
	if dev.Protocol != "" && dev.Protocol != Protocol {
		bad("protocol", "%q: the modbus driver serves %q only", dev.Protocol, Protocol)
	}
	if err := checkHostPort(dev.Address); err != nil {
		bad("address", "%w", err)
	}
	// The serial line spec reserves 248..254; Modbus TCP devices answer 0 or 255 when addressed
	// directly, and a gateway forwards 1..247 to its bus.
	if dev.UnitID >= 248 && dev.UnitID <= 254 {
		bad("unit_id", "%d is reserved: want 1..247 for a device behind a gateway, 0 or 255 for a device addressed directly", dev.UnitID)
	}
	if dev.PollInterval < 0 {
		bad("poll_interval", "%v is negative: want a positive duration, or zero for 1s", dev.PollInterval)
	}
	if dev.Timeout < 0 {
		bad("timeout", "%v is negative: want a positive duration, or zero for 2s", dev.Timeout)
	}
	if len(dev.Tags) == 0 {
		bad("tags", "none: a device needs at least one tag")
	}

	specs := make([]tagSpec, 0, len(dev.Tags))
	names := make(map[string]int, len(dev.Tags))
	for i, tag := range dev.Tags {
		path := "tags[" + strconv.Itoa(i) + "]"
		if tag.Name == "" {
			bad(path+".name", "empty: a tag needs a name")
		} else if j, dup := names[tag.Name]; dup {
			bad(path+".name", "%q is already the name of tags[%d]: names must be unique within a device", tag.Name, j)
		} else {
			names[tag.Name] = i
		}

		a, err := parseAddress(tag.Address)
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
		if last := int(a.reg) + typ.width() - 1; last > 65535 {
			bad(path+".address", "%q: %s takes %d registers and the last one, %d, is past 65535",
				tag.Address, tag.Type, typ.width(), last)
			continue
		}
		if orderErr == nil {
			specs = append(specs, tagSpec{tag: i, addr: a, typ: typ, order: order})
		}
	}
	return specs, errs
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
	}
	return 0, false
}

func listTypes() string {
	var b strings.Builder
	for i, t := range drivers.DataTypes() {
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
	case drivers.TypeInt16, drivers.TypeUint16:
		switch s {
		case "", "AB":
			return orderABCD, nil
		case "BA":
			return orderBADC, nil
		}
		return 0, fmt.Errorf("%q: want \"\", \"AB\" (big-endian, the default) or \"BA\" (byte-swapped) for %s", s, t)
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
