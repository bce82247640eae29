package modbus

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"unsafe"

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
		{"float32/-inf", typeFloat32, orderCDAB, 0, []byte{0x00, 0x00, 0xFF, 0x80}, drivers.FloatValue(math.Inf(-1))},

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

		// 64-bit: 0x0102030405060708 in the four orders: ABCD big-endian, CDAB the words
		// reversed, BADC the bytes of each word swapped, DCBA little-endian.
		{"uint64/ABCD", typeUint64, orderABCD, 0, []byte{1, 2, 3, 4, 5, 6, 7, 8}, drivers.UintValue(0x0102030405060708)},
		{"uint64/CDAB", typeUint64, orderCDAB, 0, []byte{7, 8, 5, 6, 3, 4, 1, 2}, drivers.UintValue(0x0102030405060708)},
		{"uint64/BADC", typeUint64, orderBADC, 0, []byte{2, 1, 4, 3, 6, 5, 8, 7}, drivers.UintValue(0x0102030405060708)},
		{"uint64/DCBA", typeUint64, orderDCBA, 0, []byte{8, 7, 6, 5, 4, 3, 2, 1}, drivers.UintValue(0x0102030405060708)},
		{"uint64/max", typeUint64, orderABCD, 0, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, drivers.UintValue(math.MaxUint64)},
		{"int64/-2", typeInt64, orderABCD, 0, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE}, drivers.IntValue(-2)},
		{"int64/min DCBA", typeInt64, orderDCBA, 0, []byte{0, 0, 0, 0, 0, 0, 0, 0x80}, drivers.IntValue(math.MinInt64)},
		{"float64/ABCD", typeFloat64, orderABCD, 0, []byte{0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18}, drivers.FloatValue(math.Pi)},
		{"float64/CDAB", typeFloat64, orderCDAB, 0, []byte{0x2D, 0x18, 0x54, 0x44, 0x21, 0xFB, 0x40, 0x09}, drivers.FloatValue(math.Pi)},
		{"float64/-inf", typeFloat64, orderABCD, 0, []byte{0xFF, 0xF0, 0, 0, 0, 0, 0, 0}, drivers.FloatValue(math.Inf(-1))},

		{"int16/AB", typeInt16, orderABCD, 0, []byte{0xFB, 0x2E}, drivers.IntValue(-1234)},
		{"int16/BA", typeInt16, orderBADC, 0, []byte{0x2E, 0xFB}, drivers.IntValue(-1234)},
		{"int16/min", typeInt16, orderABCD, 0, []byte{0x80, 0x00}, drivers.IntValue(math.MinInt16)},
		{"int16/positive", typeInt16, orderABCD, 0, []byte{0x01, 0x00}, drivers.IntValue(256)},
		{"uint16/AB", typeUint16, orderABCD, 0, []byte{0xAB, 0xCD}, drivers.UintValue(0xABCD)},
		{"uint16/BA", typeUint16, orderBADC, 0, []byte{0xCD, 0xAB}, drivers.UintValue(0xABCD)},

		{"bcd16", typeBCD16, orderABCD, 0, []byte{0x12, 0x34}, drivers.UintValue(1234)},
		{"bcd16/BA", typeBCD16, orderBADC, 0, []byte{0x34, 0x12}, drivers.UintValue(1234)},
		{"bcd16/9999", typeBCD16, orderABCD, 0, []byte{0x99, 0x99}, drivers.UintValue(9999)},
		{"bcd32", typeBCD32, orderABCD, 0, []byte{0x12, 0x34, 0x56, 0x78}, drivers.UintValue(12345678)},
		{"bcd32/CDAB", typeBCD32, orderCDAB, 0, []byte{0x56, 0x78, 0x12, 0x34}, drivers.UintValue(12345678)},

		{"bit0/set", typeRegBit, orderABCD, 0, []byte{0x80, 0x01}, drivers.BoolValue(true)},
		{"bit1/clear", typeRegBit, orderABCD, 1, []byte{0x80, 0x01}, drivers.BoolValue(false)},
		{"bit15/set", typeRegBit, orderABCD, 15, []byte{0x80, 0x01}, drivers.BoolValue(true)},
		{"bit8/in-high-byte", typeRegBit, orderABCD, 8, []byte{0x01, 0x00}, drivers.BoolValue(true)},
		{"bit7/in-low-byte", typeRegBit, orderABCD, 7, []byte{0x01, 0x80}, drivers.BoolValue(true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := decodeValue(tc.typ, tc.order, tc.bit, tc.wire)
			if !ok || got != tc.want {
				t.Errorf("got %v (%v, ok %v), want %v (%v)", got, got.Kind(), ok, tc.want, tc.want.Kind())
			}
		})
	}
}

func TestDecodeValue_NaN(t *testing.T) {
	for _, tc := range []struct {
		typ  valueType
		wire []byte
	}{
		{typeFloat32, []byte{0x7F, 0xC0, 0, 0}},
		{typeFloat32, []byte{0xFF, 0xFF, 0xFF, 0xFF}},
		{typeFloat64, []byte{0x7F, 0xF8, 0, 0, 0, 0, 0, 1}},
	} {
		v, ok := decodeValue(tc.typ, orderABCD, 0, tc.wire)
		if !ok || v.Kind() != drivers.KindFloat || !math.IsNaN(v.Float()) {
			t.Errorf("% x: got %v, want NaN", tc.wire, v)
		}
	}
}

func TestDecodeValue_BadBCD(t *testing.T) {
	for _, wire := range [][]byte{{0x12, 0x3A}, {0xF0, 0x00}, {0x00, 0x00, 0x0B, 0x00}} {
		typ := typeBCD16
		if len(wire) == 4 {
			typ = typeBCD32
		}
		if v, ok := decodeValue(typ, orderABCD, 0, wire); ok {
			t.Errorf("% x decodes to %v, want a bad digit", wire, v)
		}
	}
	samples := badSamples(2)
	fields := []field{{slot: 0, off: 0, n: 1, typ: typeBCD16}, {slot: 1, off: 1, n: 1, typ: typeUint16}}
	if err := decodeRegisters(samples, fields, 2, []byte{0x1A, 0x00, 0, 7}); err != nil {
		t.Fatal(err)
	}
	if s := samples[0]; s.Quality != drivers.QualityBad || s.Reason != reasonBadBCD || s.Value.Kind() != drivers.KindNone {
		t.Errorf("bad BCD sample %+v", s)
	}
	if s := samples[1]; s.Quality != drivers.QualityGood || s.Value != drivers.UintValue(7) {
		t.Errorf("neighbour of a bad BCD sample %+v", s)
	}
}

func TestDecodeString(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order byteOrder
		wire  string
		want  string
	}{
		{"AB", orderABCD, "PRESS-01", "PRESS-01"},
		{"BA", orderBADC, "RPSE-S10", "PRESS-01"},
		{"trailing NUL", orderABCD, "AB\x00\x00", "AB"},
		{"odd length NUL", orderABCD, "ABC\x00", "ABC"},
		{"trailing spaces", orderABCD, "AB  ", "AB"},
		{"cut at the first NUL", orderABCD, "AB\x00C", "AB"},
		{"leading space kept", orderABCD, " A", " A"},
		{"empty", orderABCD, "\x00\x00", ""},
		{"BA odd", orderBADC, "BA\x00C", "ABC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := tc.wire
			if len(wire)%2 != 0 {
				wire += " "
			}
			var c strCache
			got := c.decode([]byte(wire), tc.order)
			if got != drivers.StringValue(tc.want) {
				t.Errorf("got %v, want %q", got, tc.want)
			}
		})
	}
}

// TestDecodeString_Reuse: an unchanged string is the same string, not a new one; a changed one
// is new and the old one is untouched.
func TestDecodeString_Reuse(t *testing.T) {
	c := strCache{raw: make([]byte, 0, 8)}
	b := []byte("LOT-0042")
	first := c.decode(b, orderABCD).Str()
	second := c.decode(b, orderABCD).Str()
	if unsafe.StringData(first) != unsafe.StringData(second) {
		t.Error("an unchanged string was allocated again")
	}
	copy(b, "LOT-0043")
	third := c.decode(b, orderABCD).Str()
	if third != "LOT-0043" || first != "LOT-0042" {
		t.Errorf("after a change: %q (old %q)", third, first)
	}
}

func TestDecode_Exported(t *testing.T) {
	for _, tc := range []struct {
		typ   drivers.DataType
		order string
		wire  []byte
		want  string
	}{
		{drivers.TypeFloat32, "CDAB", []byte{0xE9, 0x79, 0x42, 0xF6}, "123.45600128173828"},
		{drivers.TypeUint16, "", []byte{0, 7}, "7"},
		{drivers.TypeString, "BA", []byte("BA"), `"AB"`},
		{drivers.TypeInt64, "DCBA", []byte{0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, "-2"},
	} {
		v, err := Decode(tc.typ, tc.order, tc.wire)
		if err != nil || v.String() != tc.want {
			t.Errorf("Decode(%s, %q, % x) = %v, %v; want %s", tc.typ, tc.order, tc.wire, v, err, tc.want)
		}
	}
	for _, tc := range []struct {
		typ   drivers.DataType
		order string
		wire  []byte
		want  string
	}{
		{drivers.TypeBool, "", []byte{0, 1}, "not a register type"},
		{drivers.TypeFloat32, "AB", []byte{0, 0, 0, 0}, "byte order"},
		{drivers.TypeFloat32, "", []byte{0, 0}, "got 1 registers, want 2"},
		{drivers.TypeString, "", []byte{0}, "not a whole number of registers"},
		{drivers.TypeBCD16, "", []byte{0xAA, 0}, reasonBadBCD},
	} {
		if _, err := Decode(tc.typ, tc.order, tc.wire); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%s, %q, % x) = %v, want an error with %q", tc.typ, tc.order, tc.wire, err, tc.want)
		}
	}
}

func TestDecodeRegisters(t *testing.T) {
	fields := []field{
		{slot: 2, off: 0, n: 1, typ: typeUint16},
		{slot: 0, off: 1, n: 2, typ: typeFloat32, order: orderCDAB},
		{slot: 1, off: 2, n: 1, typ: typeInt16}, // shares a register with the float's low word
		{slot: 3, off: 0, n: 1, typ: typeRegBit, bit: 0},
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
	fields := []field{{slot: 0, off: 0, n: 1, typ: typeUint16}}
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
	fields := []field{{slot: 0, off: 0, n: 1}, {slot: 1, off: 1, n: 1}, {slot: 2, off: 3, n: 1}, {slot: 3, off: 8, n: 1}, {slot: 4, off: 9, n: 1}}
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

// allTypesFields is one field of every register type and byte order, over 120 registers, and
// the payload it reads: a decode of every kind of sample.
func allTypesFields() ([]field, []byte) {
	var fields []field
	off := 0
	types := []valueType{typeInt16, typeUint16, typeInt32, typeUint32, typeFloat32, typeInt64, typeUint64, typeFloat64, typeBCD16, typeBCD32, typeString, typeRegBit}
	for i := 0; off < 110; i++ {
		typ := types[i%len(types)]
		f := field{slot: i, off: uint16(off), n: uint16(max(typ.width(), 1)), typ: typ, order: byteOrder(i % 4), bit: uint8(i % 16)}
		if typ == typeString {
			f.n = 4
			f.order &= swapBytes
			f.str = &strCache{raw: make([]byte, 0, 8)}
		}
		if typ == typeBCD16 || typ == typeInt16 || typ == typeUint16 {
			f.order &= swapBytes
		}
		fields = append(fields, f)
		off += int(f.n)
	}
	data := make([]byte, 240)
	for i := range data {
		data[i] = byte(i % 10) // valid BCD digits, printable enough text
	}
	return fields, data
}

// TestDecode_Allocs proves the decode path allocates nothing per sample: every type, every
// byte order, strings that do not change, coils.
func TestDecode_Allocs(t *testing.T) {
	fields, data := allTypesFields()
	samples := badSamples(len(fields))
	bits := make([]byte, 250)
	bitFields := []field{{slot: 0, off: 0, n: 1}, {slot: 1, off: 1999, n: 1}}
	if err := decodeRegisters(samples, fields, 120, data); err != nil { // the strings' first value
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := decodeRegisters(samples, fields, 120, data); err != nil {
			t.Fatal(err)
		}
		if err := decodeBits(samples, bitFields, 2000, bits); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("decode allocates %v times per read of %d samples, want 0", allocs, len(fields))
	}
}

// BenchmarkDecodeRegisters is the decode of one full 120-register read of every type and byte
// order; ns/sample and allocs are per decoded sample's share.
func BenchmarkDecodeRegisters(b *testing.B) {
	fields, data := allTypesFields()
	samples := badSamples(len(fields))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := decodeRegisters(samples, fields, 120, data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(fields)), "ns/sample")
}

// permute lays out the big-endian bytes be of a value of len(be)/2 registers in order o, the
// inverse of the decoder's reg16/reg32/reg64.
func permute(be []byte, o byteOrder) []byte {
	n := len(be) / 2
	out := make([]byte, len(be))
	for w := range n {
		src := w
		if o&swapWords != 0 {
			src = n - 1 - w
		}
		hi, lo := be[2*src], be[2*src+1]
		if o&swapBytes != 0 {
			hi, lo = lo, hi
		}
		out[2*w], out[2*w+1] = hi, lo
	}
	return out
}

// FuzzDecode feeds arbitrary payloads and field layouts to the register and bit decoders: they
// must never panic, must reject a payload of the wrong length, and every byte order must decode
// its own layout of a value to what ABCD decodes from the big-endian bytes (a round trip through
// the layout).
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x42, 0xF6, 0xE9, 0x79}, uint8(6), uint8(1), uint8(0), uint16(0), uint16(2))
	f.Add([]byte{0xFF, 0xFE}, uint8(2), uint8(0), uint8(0), uint16(0), uint16(1))
	f.Add([]byte{0x80, 0x01}, uint8(1), uint8(0), uint8(15), uint16(0), uint16(1))
	f.Add([]byte{0x0D, 0x02}, uint8(0), uint8(0), uint8(0), uint16(9), uint16(10))
	f.Add([]byte{}, uint8(4), uint8(3), uint8(0), uint16(124), uint16(125))
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, uint8(9), uint8(3), uint8(0), uint16(0), uint16(4))
	f.Add([]byte("PRESS-01"), uint8(10), uint8(1), uint8(4), uint16(0), uint16(4))
	f.Add([]byte{0x12, 0x3A}, uint8(11), uint8(0), uint8(0), uint16(0), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, typ, order, bit uint8, off, count uint16) {
		if len(data) > 300 {
			return
		}
		fl := field{slot: 0, off: off, typ: valueType(typ % uint8(numTypes)), order: byteOrder(order % 4), bit: bit % 16}
		fl.n = uint16(max(fl.typ.width(), 1))
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
		if fl.typ == typeString {
			fl.n = uint16(bit%16) + 1
			fl.str = &strCache{}
		}
		n := int(count%125) + 1
		n = max(n, int(fl.n))
		fl.off %= uint16(n - int(fl.n) + 1)
		err := decodeRegisters(samples, []field{fl}, n, data)
		if (err == nil) != (len(data) == 2*n) {
			t.Fatalf("decodeRegisters(%d bytes, %d registers) = %v", len(data), n, err)
		}
		if err != nil {
			if samples[0].Quality != drivers.QualityBad || samples[0].Reason != reasonNotRead {
				t.Fatal("sample touched on a length error")
			}
			return
		}
		wire := data[2*int(fl.off):][:2*int(fl.n)]
		switch fl.typ {
		case typeString:
			s := samples[0].Value.Str()
			if strings.ContainsRune(s, 0) || strings.HasSuffix(s, " ") || len(s) > len(wire) {
				t.Fatalf("string %q from % x", s, wire)
			}
			return
		case typeRegBit:
			return
		}
		// Undo the layout to big-endian bytes, lay them out again, decode both ways.
		var be []byte
		switch fl.n {
		case 1:
			be = binary.BigEndian.AppendUint16(nil, reg16(wire, fl.order))
		case 2:
			be = binary.BigEndian.AppendUint32(nil, reg32(wire, fl.order))
		case 4:
			be = binary.BigEndian.AppendUint64(nil, reg64(wire, fl.order))
		}
		if string(permute(be, fl.order)) != string(wire) && (fl.n > 1 || fl.order&swapWords == 0) {
			t.Fatalf("layout %d of % x is % x, want % x", fl.order, be, permute(be, fl.order), wire)
		}
		want, okW := decodeValue(fl.typ, orderABCD, 0, be)
		got, okG := decodeValue(fl.typ, fl.order, 0, wire)
		if okW != okG || got != want && !(got.Kind() == drivers.KindFloat && math.IsNaN(got.Float()) && math.IsNaN(want.Float())) {
			t.Fatalf("% x in order %d decodes to %v, want %v", wire, fl.order, got, want)
		}
		if s := samples[0]; okG != (s.Quality == drivers.QualityGood) {
			t.Fatalf("sample %+v for a value that decodes ok=%v", s, okG)
		}
	})
}
