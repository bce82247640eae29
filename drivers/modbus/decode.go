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
)

// width is the number of registers (or bits, for typeBool) a value occupies.
func (t valueType) width() int {
	switch t {
	case typeInt32, typeUint32, typeFloat32:
		return 2
	}
	return 1
}

// byteOrder says how a value's bytes are laid out on the wire, as two independent swaps
// relative to big-endian (ABCD): swapBytes swaps the two bytes of each register (BA, BADC),
// swapWords swaps the two registers of a 32-bit value (CDAB). DCBA is both.
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
	tag   int       // index in Device.Tags and in the batch's Samples
	off   uint16    // first register (or bit) of the tag, relative to the read's start
	typ   valueType //
	order byteOrder //
	bit   uint8     // for typeRegBit: 0 is the least significant bit of the register
}

// errReplyLength marks a reply whose payload does not hold exactly the registers or bits
// asked for. goburrow's client only checks the reply's byte count against the frame, not
// against the quantity requested, so a short or long answer would otherwise be decoded as
// garbage or panic on an index.
var errReplyLength = errors.New("reply length does not match the quantity requested")

// decodeRegisters stores the values of fields, decoded from data (the payload of a read of count
// registers), into samples[f.tag], marking them good. It allocates nothing. A payload that is not
// exactly 2×count bytes is an error and no sample is touched.
func decodeRegisters(samples []drivers.Sample, fields []field, count int, data []byte) error {
	if len(data) != 2*count {
		return fmt.Errorf("%w: got %d bytes for %d registers, want %d", errReplyLength, len(data), count, 2*count)
	}
	for _, f := range fields {
		s := &samples[f.tag]
		s.Value = decodeValue(f.typ, f.order, f.bit, data[2*int(f.off):])
		s.Quality = drivers.QualityGood
		s.Reason = ""
	}
	return nil
}

// decodeBits is decodeRegisters for coils and discrete inputs: data packs count bits, the first
// one in the least significant bit of the first byte.
func decodeBits(samples []drivers.Sample, fields []field, count int, data []byte) error {
	if want := (count + 7) / 8; len(data) != want {
		return fmt.Errorf("%w: got %d bytes for %d bits, want %d", errReplyLength, len(data), count, want)
	}
	for _, f := range fields {
		s := &samples[f.tag]
		s.Value = drivers.BoolValue(data[f.off/8]>>(f.off%8)&1 == 1)
		s.Quality = drivers.QualityGood
		s.Reason = ""
	}
	return nil
}

// decodeValue decodes one register value from the start of b, which holds at least t.width()
// registers.
func decodeValue(t valueType, o byteOrder, bit uint8, b []byte) drivers.Value {
	switch t {
	case typeRegBit:
		return drivers.BoolValue(binary.BigEndian.Uint16(b)>>(bit&15)&1 == 1)
	case typeInt16:
		return drivers.IntValue(int64(int16(reg16(b, o))))
	case typeUint16:
		return drivers.UintValue(uint64(reg16(b, o)))
	case typeInt32:
		return drivers.IntValue(int64(int32(reg32(b, o))))
	case typeUint32:
		return drivers.UintValue(uint64(reg32(b, o)))
	case typeFloat32:
		return drivers.FloatValue(float64(math.Float32frombits(reg32(b, o))))
	}
	return drivers.Value{}
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
