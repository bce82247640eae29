package modbus

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/floorlink/floorlink/drivers"
)

func TestDecodeValue(t *testing.T) {
	f32 := drivers.FloatValue(float64(float32(123.456)))
	for _, tc := range []struct {
		name  string
		typ   valueType
		order byteOrder
		bit   uint8
		wire  []byte
		want  drivers.Value
	}{
		{"float32/ABCD", typeFloat32, orderABCD, 0, []byte{0x42, 0xF6, 0xE9, 0x79}, f32},
		{"float32/CDAB", typeFloat32, orderCDAB, 0, []byte{0xE9, 0x79, 0x42, 0xF6}, f32},
		{"float32/BADC", typeFloat32, orderBADC, 0, []byte{0xF6, 0x42, 0x79, 0xE9}, f32},
		{"float32/DCBA", typeFloat32, orderDCBA, 0, []byte{0x79, 0xE9, 0xF6, 0x42}, f32},
		{"float32/negative", typeFloat32, orderABCD, 0, []byte{0xC0, 0x00, 0x00, 0x00}, drivers.FloatValue(-2)},
		{"float32/inf", typeFloat32, orderABCD, 0, []byte{0x7F, 0x80, 0x00, 0x00}, drivers.FloatValue(math.Inf(1))},

		{"int32/ABCD", typeInt32, orderABCD, 0, []byte{0xFF, 0xFF, 0xFF, 0xFE}, drivers.IntValue(-2)},
		{"int32/CDAB", typeInt32, orderCDAB, 0, []byte{0xFF, 0xFE, 0xFF, 0xFF}, drivers.IntValue(-2)},
		{"int32/BADC", typeInt32, orderBADC, 0, []byte{0xFF, 0xFF, 0xFE, 0xFF}, drivers.IntValue(-2)},
		{"int32/DCBA", typeInt32, orderDCBA, 0, []byte{0xFE, 0xFF, 0xFF, 0xFF}, drivers.IntValue(-2)},
		{"int32/min", typeInt32, orderABCD, 0, []byte{0x80, 0, 0, 0}, drivers.IntValue(math.MinInt32)},
		{"int32/positive", typeInt32, orderABCD, 0, []byte{0x00, 0x01, 0xE2, 0x40}, drivers.IntValue(123456)},

		{"uint32/ABCD", typeUint32, orderABCD, 0, []byte{0x12, 0x34, 0x56, 0x78}, drivers.UintValue(0x12345678)},
		{"uint32/CDAB", typeUint32, orderCDAB, 0, []byte{0x56, 0x78, 0x12, 0x34}, drivers.UintValue(0x12345678)},
		{"uint32/BADC", typeUint32, orderBADC, 0, []byte{0x34, 0x12, 0x78, 0x56}, drivers.UintValue(0x12345678)},
		{"uint32/DCBA", typeUint32, orderDCBA, 0, []byte{0x78, 0x56, 0x34, 0x12}, drivers.UintValue(0x12345678)},
		{"uint32/max", typeUint32, orderABCD, 0, []byte{0xFF, 0xFF, 0xFF, 0xFF}, drivers.UintValue(math.MaxUint32)},

		{"int16/AB", typeInt16, orderABCD, 0, []byte{0xFB, 0x2E}, drivers.IntValue(-1234)},
		{"int16/BA", typeInt16, orderBADC, 0, []byte{0x2E, 0xFB}, drivers.IntValue(-1234)},
		{"int16/min", typeInt16, orderABCD, 0, []byte{0x80, 0x00}, drivers.IntValue(math.MinInt16)},
		{"int16/positive", typeInt16, orderABCD, 0, []byte{0x01, 0x00}, drivers.IntValue(256)},
		{"uint16/AB", typeUint16, orderABCD, 0, []byte{0xAB, 0xCD}, drivers.UintValue(0xABCD)},
		{"uint16/BA", typeUint16, orderBADC, 0, []byte{0xCD, 0xAB}, drivers.UintValue(0xABCD)},

		{"bit0/set", typeRegBit, orderABCD, 0, []byte{0x80, 0x01}, drivers.BoolValue(true)},
		{"bit1/clear", typeRegBit, orderABCD, 1, []byte{0x80, 0x01}, drivers.BoolValue(false)},
		{"bit15/set", typeRegBit, orderABCD, 15, []byte{0x80, 0x01}, drivers.BoolValue(true)},
		{"bit8/in-high-byte", typeRegBit, orderABCD, 8, []byte{0x01, 0x00}, drivers.BoolValue(true)},
		{"bit7/in-low-byte", typeRegBit, orderABCD, 7, []byte{0x01, 0x80}, drivers.BoolValue(true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeValue(tc.typ, tc.order, tc.bit, tc.wire)
			if got != tc.want {
				t.Errorf("got %v (%v), want %v (%v)", got, got.Kind(), tc.want, tc.want.Kind())
			}
		})
	}
}

func TestDecodeRegisters(t *testing.T) {
	fields := []field{
		{tag: 2, off: 0, typ: typeUint16},
		{tag: 0, off: 1, typ: typeFloat32, order: orderCDAB},
		{tag: 1, off: 2, typ: typeInt16}, // shares a register with the float's low word
		{tag: 3, off: 0, typ: typeRegBit, bit: 0},
	}
	data := []byte{0x00, 0x07, 0xE9, 0x79, 0x42, 0xF6}
	samples := badSamples(4)
	if err := decodeRegisters(samples, fields, 3, data); err != nil {
		t.Fatal(err)
	}
	want := []drivers.Sample{
		{Tag: 0, Value: drivers.FloatValue(float64(float32(123.456)))},
		{Tag: 1, Value: drivers.IntValue(0x42F6)},
		{Tag: 2, Value: drivers.UintValue(7)},
		{Tag: 3, Value: drivers.BoolValue(true)},
	}
	for i := range want {
		if samples[i] != want[i] {
			t.Errorf("samples[%d] = %+v, want %+v", i, samples[i], want[i])
		}
	}
}

func TestDecodeRegisters_WrongLength(t *testing.T) {
	fields := []field{{tag: 0, off: 0, typ: typeUint16}}
	for _, n := range []int{0, 1, 3, 5, 250} {
		samples := badSamples(1)
		err := decodeRegisters(samples, fields, 2, make([]byte, n))
		if !errors.Is(err, errReplyLength) {
			t.Errorf("%d bytes for 2 registers: got %v, want errReplyLength", n, err)
		}
		if samples[0].Quality != drivers.QualityBad {
			t.Errorf("%d bytes: sample touched on error: %+v", n, samples[0])
		}
	}
}

func TestDecodeBits(t *testing.T) {
	// 10 bits from the first bit: 1,0,1,1,0,0,0,0 | 0,1
	data := []byte{0b0000_1101, 0b0000_0010}
	fields := []field{{tag: 0, off: 0}, {tag: 1, off: 1}, {tag: 2, off: 3}, {tag: 3, off: 8}, {tag: 4, off: 9}}
	samples := badSamples(5)
	if err := decodeBits(samples, fields, 10, data); err != nil {
		t.Fatal(err)
	}
	want := []bool{true, false, true, false, true}
	for i, w := range want {
		if samples[i].Quality != drivers.QualityGood || samples[i].Value != drivers.BoolValue(w) {
			t.Errorf("samples[%d] = %+v, want good %v", i, samples[i], w)
		}
	}
	for _, n := range []int{1, 3} {
		if err := decodeBits(badSamples(5), fields, 10, make([]byte, n)); !errors.Is(err, errReplyLength) {
			t.Errorf("%d bytes for 10 bits: got %v, want errReplyLength", n, err)
		}
	}
}

func badSamples(n int) []drivers.Sample {
	s := make([]drivers.Sample, n)
	for i := range s {
		s[i] = drivers.Sample{Tag: i, Quality: drivers.QualityBad, Reason: reasonNotRead}
	}
	return s
}

// TestDecode_Allocs proves the decode path allocates nothing per cycle.
func TestDecode_Allocs(t *testing.T) {
	var fields []field
	for i := 0; i < 60; i++ {
		fields = append(fields, field{tag: i, off: uint16(2 * i), typ: valueType(2 + i%5), order: byteOrder(i % 4)})
	}
	fields = append(fields, field{tag: 60, off: 0, typ: typeRegBit, bit: 3})
	samples := badSamples(len(fields))
	data := make([]byte, 240)
	bits := make([]byte, 250)
	bitFields := []field{{tag: 0, off: 0}, {tag: 1, off: 1999}}
	allocs := testing.AllocsPerRun(100, func() {
		if err := decodeRegisters(samples, fields, 120, data); err != nil {
			t.Fatal(err)
		}
		if err := decodeBits(samples, bitFields, 2000, bits); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("decode allocates %v times per cycle, want 0", allocs)
	}
}

// permute lays out the big-endian bytes b of a 32-bit value in order o, the inverse of reg32.
func permute(b [4]byte, o byteOrder) []byte {
	w := [2][2]byte{{b[0], b[1]}, {b[2], b[3]}}
	if o&swapWords != 0 {
		w[0], w[1] = w[1], w[0]
	}
	if o&swapBytes != 0 {
		w[0][0], w[0][1] = w[0][1], w[0][0]
		w[1][0], w[1][1] = w[1][1], w[1][0]
	}
	return []byte{w[0][0], w[0][1], w[1][0], w[1][1]}
}

// FuzzDecode feeds arbitrary payloads and field layouts to the register and bit decoders: they
// must never panic, must reject a payload of the wrong length, and every byte order must decode
// its own layout of a value to what ABCD decodes from the big-endian bytes.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x42, 0xF6, 0xE9, 0x79}, uint8(6), uint8(1), uint8(0), uint16(0), uint16(2))
	f.Add([]byte{0xFF, 0xFE}, uint8(2), uint8(0), uint8(0), uint16(0), uint16(1))
	f.Add([]byte{0x80, 0x01}, uint8(1), uint8(0), uint8(15), uint16(0), uint16(1))
	f.Add([]byte{0x0D, 0x02}, uint8(0), uint8(0), uint8(0), uint16(9), uint16(10))
	f.Add([]byte{}, uint8(4), uint8(3), uint8(0), uint16(124), uint16(125))
	f.Fuzz(func(t *testing.T, data []byte, typ, order, bit uint8, off, count uint16) {
		if len(data) > 300 {
			return
		}
		fl := field{tag: 0, off: off, typ: valueType(typ % 7), order: byteOrder(order % 4), bit: bit % 16}
		samples := badSamples(1)
		if fl.typ == typeBool {
			n := int(count%2000) + 1
			fl.off %= uint16(n)
			err := decodeBits(samples, []field{fl}, n, data)
			if (err == nil) != (len(data) == (n+7)/8) {
				t.Fatalf("decodeBits(%d bytes, %d bits) = %v", len(data), n, err)
			}
			return
		}
		n := int(count%125) + 1
		if fl.typ.width() > n {
			n = fl.typ.width()
		}
		fl.off %= uint16(n - fl.typ.width() + 1)
		err := decodeRegisters(samples, []field{fl}, n, data)
		if (err == nil) != (len(data) == 2*n) {
			t.Fatalf("decodeRegisters(%d bytes, %d registers) = %v", len(data), n, err)
		}
		if err != nil {
			if samples[0].Quality != drivers.QualityBad {
				t.Fatal("sample marked good on a length error")
			}
			return
		}
		if fl.typ.width() == 2 {
			wire := data[2*int(fl.off):][:4]
			var be [4]byte
			binary.BigEndian.PutUint32(be[:], reg32(wire, fl.order))
			want := decodeValue(fl.typ, orderABCD, 0, be[:])
			got := decodeValue(fl.typ, fl.order, 0, permute(be, fl.order))
			if got != want && !(fl.typ == typeFloat32 && math.IsNaN(got.Float()) && math.IsNaN(want.Float())) {
				t.Fatalf("%v in order %d decodes to %v, want %v", be, fl.order, got, want)
			}
		}
	})
}
