package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/floorlink/floorlink/drivers"
)

// valueType is a tag's data type as the decoder sees it: a bool read from a register bit is its
// own case because it is decoded differently from a coil.
type valueType uint8

const (
	typeBool   valueType = iota // a coil or discrete input
	typeRegBit                  // one bit of an input or holding register
	typeInt16
	typeUint16
	typeInt32
	typeUint32
	typeFloat32
	typeInt64
	typeUint64
	typeFloat64
	typeString // Tag.Length registers of ASCII
	typeBCD16  // four decimal digits in one register
	typeBCD32  // eight decimal digits in two registers
	numTypes
)

// width is the number of registers (or bits, for typeBool) a value of t occupies; strings have
// their own length and report 0 here.
func (t valueType) width() int {
	switch t {
	case typeInt32, typeUint32, typeFloat32, typeBCD32:
		return 2
	case typeInt64, typeUint64, typeFloat64:
		return 4
	case typeString:
		return 0
	}
	return 1
}

// byteOrder says how a value's bytes are laid out on the wire, as two independent swaps
// relative to big-endian (ABCD): swapBytes swaps the two bytes of each register (BA, BADC),
// swapWords reverses the order of the registers of a 32- or 64-bit value (CDAB). DCBA is both.
type byteOrder uint8

const (
	swapBytes byteOrder = 1 << iota
	swapWords

	orderABCD byteOrder = 0
	orderBADC           = swapBytes
	orderCDAB           = swapWords
	orderDCBA           = swapBytes | swapWords
)

// field is one tag inside a planned read.
type field struct {
	slot  int       // index in the poll group's batch Samples
	tag   int       // index in Device.Tags
	off   uint16    // first register (or bit) of the tag, relative to the read's start
	n     uint16    // registers (or bits) the tag occupies
	typ   valueType //
	order byteOrder //
	bit   uint8     // for typeRegBit: 0 is the least significant bit of the register
	// str keeps the last text of a typeString tag, so that an unchanged string is not
	// allocated again; nil for other types.
	str *strCache
}

// strCache is the last decoded text of one string tag: its bytes as read (after the byte swap)
// and the string made of them.
type strCache struct {
	raw []byte
	s   string
}

// Reasons for bad samples: constant strings, so that marking samples bad allocates nothing.
const (
	reasonTimeout     = "timeout"
	reasonUnreachable = "unreachable"
	reasonMalformed   = "malformed reply"
	reasonNotRead     = "not read"
	reasonBadBCD      = "invalid bcd digit"
)

// errReplyLength marks a reply whose payload does not hold exactly the registers or bits
// asked for. goburrow's client only checks the reply's byte count against the frame, not
// against the quantity requested, so a short or long answer would otherwise be decoded as
// garbage or panic on an index.
var errReplyLength = errors.New("reply length does not match the quantity requested")

// decodeRegisters stores the values of fields, decoded from data (the payload of a read of count
// registers), into samples[f.slot]. A value that cannot be decoded (a BCD digit above 9) is a
// bad sample with its reason; every other sample is good. It allocates nothing, except a new
// string for a string tag whose bytes changed. A payload that is not exactly 2×count bytes is an
// error and no sample is touched.
func decodeRegisters(samples []drivers.Sample, fields []field, count int, data []byte) error {
	if len(data) != 2*count {
		return fmt.Errorf("%w: got %d bytes for %d registers, want %d", errReplyLength, len(data), count, 2*count)
	}
	for i := range fields {
		f := &fields[i]
		s := &samples[f.slot]
		b := data[2*int(f.off) : 2*(int(f.off)+int(f.n))]
		if f.typ == typeString {
			s.Value, s.Quality, s.Reason = f.str.decode(b, f.order), drivers.QualityGood, ""
			continue
		}
		v, ok := decodeValue(f.typ, f.order, f.bit, b)
		if !ok {
			s.Value, s.Quality, s.Reason = drivers.Value{}, drivers.QualityBad, reasonBadBCD
			continue
		}
		s.Value, s.Quality, s.Reason = v, drivers.QualityGood, ""
	}
	return nil
}

// decodeBits is decodeRegisters for coils and discrete inputs: data packs count bits, the first
// one in the least significant bit of the first byte.
func decodeBits(samples []drivers.Sample, fields []field, count int, data []byte) error {
	if want := (count + 7) / 8; len(data) != want {
		return fmt.Errorf("%w: got %d bytes for %d bits, want %d", errReplyLength, len(data), count, want)
	}
	for i := range fields {
		f := &fields[i]
		s := &samples[f.slot]
		s.Value = drivers.BoolValue(data[f.off/8]>>(f.off%8)&1 == 1)
		s.Quality = drivers.QualityGood
		s.Reason = ""
	}
	return nil
}

// decodeValue decodes one value of type t (not a string) from the start of b, which holds at
// least t.width() registers. ok is false for a BCD value with a digit above 9.
func decodeValue(t valueType, o byteOrder, bit uint8, b []byte) (v drivers.Value, ok bool) {
	switch t {
	case typeRegBit:
		return drivers.BoolValue(binary.BigEndian.Uint16(b)>>(bit&15)&1 == 1), true
	case typeInt16:
		return drivers.IntValue(int64(int16(reg16(b, o)))), true
	case typeUint16:
		return drivers.UintValue(uint64(reg16(b, o))), true
	case typeInt32:
		return drivers.IntValue(int64(int32(reg32(b, o)))), true
	case typeUint32:
		return drivers.UintValue(uint64(reg32(b, o))), true
	case typeFloat32:
		return drivers.FloatValue(float64(math.Float32frombits(reg32(b, o)))), true
	case typeInt64:
		return drivers.IntValue(int64(reg64(b, o))), true
	case typeUint64:
		return drivers.UintValue(reg64(b, o)), true
	case typeFloat64:
		return drivers.FloatValue(math.Float64frombits(reg64(b, o))), true
	case typeBCD16:
		d, ok := bcd(uint64(reg16(b, o)), 4)
		return drivers.UintValue(d), ok
	case typeBCD32:
		d, ok := bcd(uint64(reg32(b, o)), 8)
		return drivers.UintValue(d), ok
	}
	return drivers.Value{}, false
}

// bcd decodes the low digits nibbles of x, most significant first; ok is false when a nibble is
// above 9.
func bcd(x uint64, digits int) (uint64, bool) {
	var d uint64
	for i := digits - 1; i >= 0; i-- {
		n := x >> (4 * i) & 0xF
		if n > 9 {
			return 0, false
		}
		d = d*10 + n
	}
	return d, true
}

func reg16(b []byte, o byteOrder) uint16 {
	if o&swapBytes != 0 {
		return uint16(b[1])<<8 | uint16(b[0])
	}
	return uint16(b[0])<<8 | uint16(b[1])
}

func reg32(b []byte, o byteOrder) uint32 {
	hi, lo := reg16(b[0:2], o), reg16(b[2:4], o)
	if o&swapWords != 0 {
		hi, lo = lo, hi
	}
	return uint32(hi)<<16 | uint32(lo)
}

// reg64 reads four registers: ABCD is big-endian with the most significant word first; swapWords
// reverses the order of all four words (the 64-bit CDAB: least significant word first).
func reg64(b []byte, o byteOrder) uint64 {
	w0, w1, w2, w3 := reg16(b[0:2], o), reg16(b[2:4], o), reg16(b[4:6], o), reg16(b[6:8], o)
	if o&swapWords != 0 {
		w0, w1, w2, w3 = w3, w2, w1, w0
	}
	return uint64(w0)<<48 | uint64(w1)<<32 | uint64(w2)<<16 | uint64(w3)
}

// decode returns the text in b (registers of two characters, AB: first character in the high
// byte; BA: in the low byte), cut at the first NUL with trailing spaces trimmed. While the bytes
// are those of the previous call it returns the previous string, so that polling an unchanged
// string allocates nothing.
func (c *strCache) decode(b []byte, o byteOrder) drivers.Value {
	same := len(b) == len(c.raw)
	for i := 0; same && i < len(b); i++ {
		same = c.raw[i] == b[i^int(o&swapBytes)]
	}
	if same {
		return drivers.StringValue(c.s)
	}
	c.raw = c.raw[:0]
	for i := range b {
		c.raw = append(c.raw, b[i^int(o&swapBytes)])
	}
	c.s = trimText(c.raw)
	return drivers.StringValue(c.s)
}

// trimText cuts b at its first NUL and drops trailing spaces.
func trimText(b []byte) string {
	n := len(b)
	for i, c := range b {
		if c == 0 {
			n = i
			break
		}
	}
	for n > 0 && b[n-1] == ' ' {
		n--
	}
	return string(b[:n])
}

// Decode decodes one value of type typ in byteOrder (as in a tag's byte_order: "" for the
// default) from data, the bytes of the registers as they come off the wire (each register
// big-endian, in address order). A string takes every register of data; every other type needs
// exactly its width. It is the driver's own decoder, exported for tools such as `floorlink modbus
// scan` that show what a tag of that type would read; it returns an error for a bool, which is
// not decoded from register bytes, and for a BCD digit above 9.
func Decode(typ drivers.DataType, byteOrder string, data []byte) (drivers.Value, error) {
	t, ok := checkType(typ)
	if !ok || t == typeBool {
		return drivers.Value{}, fmt.Errorf("decode %q: not a register type", typ)
	}
	o, err := checkByteOrder(typ, byteOrder)
	if err != nil {
		return drivers.Value{}, fmt.Errorf("decode %s: byte order %w", typ, err)
	}
	if len(data)%2 != 0 {
		return drivers.Value{}, fmt.Errorf("decode %s: %d bytes is not a whole number of registers", typ, len(data))
	}
	if t == typeString {
		var c strCache
		return c.decode(data, o), nil
	}
	if len(data) != 2*t.width() {
		return drivers.Value{}, fmt.Errorf("decode %s: got %d registers, want %d", typ, len(data)/2, t.width())
	}
	v, ok := decodeValue(t, o, 0, data)
	if !ok {
		return drivers.Value{}, fmt.Errorf("decode %s: %s", typ, reasonBadBCD)
	}
	return v, nil
}
