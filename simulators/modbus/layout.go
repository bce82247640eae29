package modbus

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// DataType is how a layout's registers are read.
type DataType string

// The data types of the layout block.
const (
	Int16   DataType = "int16"
	Uint16  DataType = "uint16"
	Int32   DataType = "int32"
	Uint32  DataType = "uint32"
	Int64   DataType = "int64"
	Uint64  DataType = "uint64"
	Float32 DataType = "float32"
	Float64 DataType = "float64"
	// String is fixed-length ASCII, two characters per register, NUL-padded.
	String DataType = "string"
	// BCD16 is four decimal digits, one per nibble (1234 is 0x1234); BCD32 is eight, in two
	// registers.
	BCD16 DataType = "bcd16"
	BCD32 DataType = "bcd32"
	// Bit is one bit of a register, 0 the least significant.
	Bit DataType = "bit"
)

// ByteOrder is the order of a value's bytes in its registers, named by where the bytes of the
// big-endian value A B C D (A most significant) end up, register by register:
//
//	ABCD  big-endian words, most significant word first   [AB][CD]
//	CDAB  word order reversed                             [CD][AB]
//	BADC  bytes swapped within each word                  [BA][DC]
//	DCBA  full little-endian                              [DC][BA]
//
// 64-bit values generalise by words (A..H): ABCD is [AB][CD][EF][GH], CDAB [GH][EF][CD][AB], BADC
// [BA][DC][FE][HG], DCBA [HG][FE][DC][BA]. One register has no word order: 16-bit values in
// ABCD and CDAB are the same register (AB), in BADC and DCBA the same swapped register (BA).
// Strings use AB (first character in the high byte) and BA (in the low byte).
type ByteOrder string

// The byte orders.
const (
	ABCD ByteOrder = "ABCD"
	CDAB ByteOrder = "CDAB"
	BADC ByteOrder = "BADC"
	DCBA ByteOrder = "DCBA"
	AB   ByteOrder = "AB"
	BA   ByteOrder = "BA"
)

// Layout is one value of the layout block: every machine serves the block in its input
// registers (function 4), so that a driver's decoding can be checked against known values.
type Layout struct {
	// Name is unique: type, order and what the value is, e.g. "float32_cdab_nan".
	Name string
	// Table is where the value is: always InputRegisters.
	Table Table
	// Address is the value's first register; it takes Registers registers.
	Address   uint16
	Registers int
	Type      DataType
	// Order is the byte order of numbers and BCD32 (ABCD, CDAB, BADC, DCBA) and strings (AB, BA);
	// ABCD for BCD16, empty for bits.
	Order ByteOrder
	// Bit is the bit number of a Bit, 0 the least significant of the register; 0 otherwise.
	Bit int
	// Value is the constant served, in the Go type of Type: int16, uint16, int32, uint32, int64,
	// uint64, float32, float64, string (without its NUL padding), uint16 for BCD16 and uint32
	// for BCD32 (the decimal value: 1234), bool for Bit. Compare NaNs by their bits. Nil when
	// Dynamic.
	Value any
	// Dynamic values change with the tick: ValueAt gives them.
	Dynamic bool
}

// ValueAt returns the value served by unit at tick: Value for a constant, else the value of the
// formula documented in simulators/README.md (unit id, tick, counters).
func (l Layout) ValueAt(unit byte, tick uint32) any {
	switch l.Name {
	case "unit_id":
		return uint16(unit)
	case "tick":
		return tick
	case "counter16":
		return Counter16(tick)
	case "counter32_abcd", "counter32_cdab":
		return Counter32(tick)
	}
	return l.Value
}

// Counter16 is the layout block's 16-bit counter at tick: tick×1000 mod 2^16, so that it wraps
// about every 66 ticks (6.6 s at the default step).
func Counter16(tick uint32) uint16 { return uint16(tick * 1000) }

// Counter32 is the layout block's 32-bit counter at tick: tick×50,000,000 mod 2^32, so that it
// wraps about every 86 ticks (8.6 s at the default step) and both of its words change.
func Counter32(tick uint32) uint32 { return tick * 50_000_000 }

// Addresses of the layout block in the input registers (function 4) of every unit.
const (
	// LayoutFirst is the block's first input register, LayoutSize the number of its registers.
	// Registers of the block that hold no value read as 0; 10..LayoutFirst-1 and everything
	// from LayoutFirst+LayoutSize on answer exception 2.
	LayoutFirst = 1000
	LayoutSize  = 350
)

// Layouts returns the layout block's values, ordered by address; simulators/README.md has them
// as a table. The slice is a copy.
func Layouts() []Layout { return slices.Clone(layouts) }

// layouts and layoutImage are built once, when the package is initialised, and never change:
// layoutImage is the block's registers with every constant encoded (dynamic ones are 0).
var (
	layouts     = buildLayouts()
	layoutImage = buildImage(layouts)
)

// The constants. Every value's bytes differ from each other where possible, so that a wrong order
// cannot decode to the right number.
var (
	pi32  = float32(math.Pi)
	nan32 = math.Float32frombits(0x7FC0_0000)
	nan64 = math.Float64frombits(0x7FF8_0000_0000_0000)
)

func buildLayouts() []Layout {
	var b layoutBuilder
	orders := []ByteOrder{ABCD, CDAB, BADC, DCBA}
	numbers := func(at uint16, t DataType, regs int, values []namedValue) {
		b.at(at)
		for _, v := range values {
			for _, o := range orders {
				b.add(Layout{Name: fmt.Sprintf("%s_%s_%s", t, lower(o), v.name), Type: t, Order: o, Registers: regs, Value: v.v})
			}
		}
	}

	b.at(LayoutFirst)
	b.add(Layout{Name: "unit_id", Type: Uint16, Order: ABCD, Registers: 1, Dynamic: true})
	b.add(Layout{Name: "tick", Type: Uint32, Order: ABCD, Registers: 2, Dynamic: true})
	b.add(Layout{Name: "counter16", Type: Uint16, Order: ABCD, Registers: 1, Dynamic: true})
	b.add(Layout{Name: "counter32_abcd", Type: Uint32, Order: ABCD, Registers: 2, Dynamic: true})
	b.add(Layout{Name: "counter32_cdab", Type: Uint32, Order: CDAB, Registers: 2, Dynamic: true})

	const bits = 0xA5C3 // 1010 0101 1100 0011
	b.at(1010)
	b.add(Layout{Name: "bits", Type: Uint16, Order: ABCD, Registers: 1, Value: uint16(bits)})
	for i := range 16 {
		b.addAt(1010, Layout{Name: fmt.Sprintf("bit_%d", i), Type: Bit, Registers: 1, Bit: i, Value: bits>>i&1 == 1})
	}

	numbers(1020, Int16, 1, []namedValue{{"neg", int16(-12345)}, {"max", int16(math.MaxInt16)}, {"min", int16(math.MinInt16)}})
	numbers(1032, Uint16, 1, []namedValue{{"beef", uint16(0xBEEF)}, {"max", uint16(math.MaxUint16)}})
	numbers(1040, Int32, 2, []namedValue{{"neg", int32(-123456789)}, {"max", int32(math.MaxInt32)}, {"min", int32(math.MinInt32)}})
	numbers(1064, Uint32, 2, []namedValue{{"big", uint32(3456789012)}, {"max", uint32(math.MaxUint32)}})
	numbers(1080, Float32, 2, []namedValue{
		{"neg", float32(-123.456)}, {"pi", pi32}, {"nan", nan32},
		{"pos_inf", float32(math.Inf(1))}, {"neg_inf", float32(math.Inf(-1))}, {"max", float32(math.MaxFloat32)},
	})
	numbers(1130, Int64, 4, []namedValue{{"neg", int64(-1234567890123456789)}, {"max", int64(math.MaxInt64)}, {"min", int64(math.MinInt64)}})
	numbers(1178, Uint64, 4, []namedValue{{"big", uint64(12345678901234567890)}, {"max", uint64(math.MaxUint64)}})
	numbers(1210, Float64, 4, []namedValue{
		{"neg", -123456.789}, {"pi", math.Pi}, {"nan", nan64},
		{"pos_inf", math.Inf(1)}, {"neg_inf", math.Inf(-1)}, {"max", math.MaxFloat64},
	})

	b.at(1310)
	for _, s := range []struct {
		name, text string
		regs       int
	}{{"full", "FLOORLINK-PLCSIM", 8}, {"padded", "Press 7", 5}} {
		for _, o := range []ByteOrder{AB, BA} {
			b.add(Layout{Name: fmt.Sprintf("string_%s_%s", lower(o), s.name), Type: String, Order: o, Registers: s.regs, Value: s.text})
		}
	}

	// BCD in the swapped orders, in what was left of the block.
	b.at(1336)
	b.add(Layout{Name: "bcd32_badc_12345678", Type: BCD32, Order: BADC, Registers: 2, Value: uint32(12345678)})
	b.add(Layout{Name: "bcd32_dcba_12345678", Type: BCD32, Order: DCBA, Registers: 2, Value: uint32(12345678)})
	b.at(1340)
	b.add(Layout{Name: "bcd16_1234", Type: BCD16, Order: ABCD, Registers: 1, Value: uint16(1234)})
	b.add(Layout{Name: "bcd16_9999", Type: BCD16, Order: ABCD, Registers: 1, Value: uint16(9999)})
	b.add(Layout{Name: "bcd32_abcd_12345678", Type: BCD32, Order: ABCD, Registers: 2, Value: uint32(12345678)})
	b.add(Layout{Name: "bcd32_cdab_12345678", Type: BCD32, Order: CDAB, Registers: 2, Value: uint32(12345678)})
	b.add(Layout{Name: "bcd32_abcd_99999999", Type: BCD32, Order: ABCD, Registers: 2, Value: uint32(99999999)})
	b.add(Layout{Name: "bcd16_ba_1234", Type: BCD16, Order: BADC, Registers: 1, Value: uint16(1234)})
	return b.list
}

type namedValue struct {
	name string
	v    any
}

func lower(o ByteOrder) string {
	b := []byte(o)
	for i, c := range b {
		b[i] = c | 0x20
	}
	return string(b)
}

// layoutBuilder lays values out one after the other from the address set by at.
type layoutBuilder struct {
	next uint16
	list []Layout
}

func (b *layoutBuilder) at(addr uint16) {
	if addr < b.next {
		panic(fmt.Sprintf("layout at %d overlaps the previous value, which ends at %d", addr, b.next))
	}
	b.next = addr
}

func (b *layoutBuilder) add(l Layout) {
	b.addAt(b.next, l)
	b.next += uint16(l.Registers)
}

func (b *layoutBuilder) addAt(addr uint16, l Layout) {
	l.Table, l.Address = InputRegisters, addr
	if int(addr)+l.Registers > LayoutFirst+LayoutSize {
		panic(fmt.Sprintf("layout %s at %d does not fit the block", l.Name, addr))
	}
	b.list = append(b.list, l)
}

// buildImage encodes every constant of list into the block's registers.
func buildImage(list []Layout) *[LayoutSize]uint16 {
	var img [LayoutSize]uint16
	for _, l := range list {
		if l.Dynamic || l.Type == Bit {
			continue // a bit's register is served whole by another entry
		}
		encodeLayout(img[int(l.Address)-LayoutFirst:][:l.Registers], l, l.Value)
	}
	return &img
}

// encodeLayout writes v, of l's type, into regs in l's order.
func encodeLayout(regs []uint16, l Layout, v any) {
	var be [8]byte // the value big-endian, A first
	var n int
	switch x := v.(type) {
	case int16:
		binary.BigEndian.PutUint16(be[:], uint16(x))
		n = 2
	case uint16:
		if l.Type == BCD16 {
			x = uint16(bcd(uint64(x)))
		}
		binary.BigEndian.PutUint16(be[:], x)
		n = 2
	case int32:
		binary.BigEndian.PutUint32(be[:], uint32(x))
		n = 4
	case uint32:
		if l.Type == BCD32 {
			x = uint32(bcd(uint64(x)))
		}
		binary.BigEndian.PutUint32(be[:], x)
		n = 4
	case float32:
		binary.BigEndian.PutUint32(be[:], math.Float32bits(x))
		n = 4
	case int64:
		binary.BigEndian.PutUint64(be[:], uint64(x))
		n = 8
	case uint64:
		binary.BigEndian.PutUint64(be[:], x)
		n = 8
	case float64:
		binary.BigEndian.PutUint64(be[:], math.Float64bits(x))
		n = 8
	case string:
		for i := range regs {
			var hi, lo byte
			if 2*i < len(x) {
				hi = x[2*i]
			}
			if 2*i+1 < len(x) {
				lo = x[2*i+1]
			}
			if l.Order == BA {
				hi, lo = lo, hi
			}
			regs[i] = uint16(hi)<<8 | uint16(lo)
		}
		return
	default:
		panic(fmt.Sprintf("layout %s: value of type %T", l.Name, v))
	}
	words := n / 2
	for i := range words {
		w := i
		if l.Order == CDAB || l.Order == DCBA {
			w = words - 1 - i
		}
		hi, lo := be[2*w], be[2*w+1]
		if l.Order == BADC || l.Order == DCBA {
			hi, lo = lo, hi
		}
		regs[i] = uint16(hi)<<8 | uint16(lo)
	}
}

// bcd returns v's decimal digits, one per nibble.
func bcd(v uint64) uint64 {
	var out uint64
	for shift := 0; v > 0; shift += 4 {
		out |= (v % 10) << shift
		v /= 10
	}
	return out
}

// readLayout fills dst with the block's registers from addr (within the block) for unit at tick.
func readLayout(dst []uint16, addr uint16, unit byte, tick uint32) {
	off := int(addr) - LayoutFirst
	copy(dst, layoutImage[off:])
	// The dynamic values sit in the first registers of the block.
	if off >= 8 {
		return
	}
	var dyn [8]uint16
	dyn[0] = uint16(unit)
	dyn[1], dyn[2] = uint16(tick>>16), uint16(tick)
	dyn[3] = Counter16(tick)
	c := Counter32(tick)
	dyn[4], dyn[5] = uint16(c>>16), uint16(c)
	dyn[6], dyn[7] = uint16(c), uint16(c>>16)
	copy(dst, dyn[off:])
}
