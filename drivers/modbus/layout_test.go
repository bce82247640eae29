package modbus

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/floorlink/floorlink/drivers"
)

// layoutCase is one tag of the layout block: a type, a byte order and a known value, with the
// registers that hold it, encoded by the test (encodeLayout), not by the driver.
type layoutCase struct {
	typ   drivers.DataType
	order string
	want  drivers.Value
	regs  []uint16
}

// encodeLayout lays out the big-endian bytes be (2 per register) in the byte order a tag names:
// the words reversed for CDAB and DCBA, the bytes of each word swapped for BA, BADC and DCBA.
func encodeLayout(be []byte, order string) []uint16 {
	n := len(be) / 2
	regs := make([]uint16, n)
	for w := range n {
		src := w
		if order == "CDAB" || order == "DCBA" {
			src = n - 1 - w
		}
		hi, lo := be[2*src], be[2*src+1]
		if order == "BA" || order == "BADC" || order == "DCBA" {
			hi, lo = lo, hi
		}
		regs[w] = uint16(hi)<<8 | uint16(lo)
	}
	return regs
}

// layoutCases is every register type in every byte order at known values: negative numbers,
// extremes, NaN and infinities, a counter just past its rollover, text and BCD.
func layoutCases() []layoutCase {
	be16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	be64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	var cases []layoutCase
	add := func(typ drivers.DataType, orders []string, be []byte, want drivers.Value) {
		for _, o := range orders {
			cases = append(cases, layoutCase{typ: typ, order: o, want: want, regs: encodeLayout(be, o)})
		}
	}
	o16 := []string{"AB", "BA"}
	o32 := []string{"ABCD", "CDAB", "BADC", "DCBA"}
	add(drivers.TypeInt16, o16, be16(uint16(0xFB2E)), drivers.IntValue(-1234))
	add(drivers.TypeInt16, o16, be16(0x8000), drivers.IntValue(math.MinInt16))
	add(drivers.TypeUint16, o16, be16(54321), drivers.UintValue(54321))
	add(drivers.TypeUint16, o16, be16(0), drivers.UintValue(0)) // a 16-bit counter just rolled over
	add(drivers.TypeInt32, o32, be32(uint32(0xF8A432EB)), drivers.IntValue(-123456789))
	add(drivers.TypeUint32, o32, be32(4_000_000_000), drivers.UintValue(4_000_000_000))
	add(drivers.TypeUint32, o32, be32(1), drivers.UintValue(1)) // a 32-bit counter just past its rollover
	add(drivers.TypeFloat32, o32, be32(math.Float32bits(-273.15)), drivers.FloatValue(float64(float32(-273.15))))
	add(drivers.TypeFloat32, o32, be32(math.Float32bits(float32(math.Inf(1)))), drivers.FloatValue(math.Inf(1)))
	add(drivers.TypeFloat32, o32, be32(math.Float32bits(float32(math.Inf(-1)))), drivers.FloatValue(math.Inf(-1)))
	add(drivers.TypeFloat32, o32, be32(0x7FC00000), drivers.FloatValue(math.NaN()))
	add(drivers.TypeInt64, o32, be64(uint64(0xFFFFFEE08E04FB35)), drivers.IntValue(-1234567890123))
	add(drivers.TypeUint64, o32, be64(18_000_000_000_000_000_000), drivers.UintValue(18_000_000_000_000_000_000))
	add(drivers.TypeFloat64, o32, be64(math.Float64bits(6.02214076e23)), drivers.FloatValue(6.02214076e23))
	add(drivers.TypeFloat64, o32, be64(math.Float64bits(math.Inf(-1))), drivers.FloatValue(math.Inf(-1)))
	add(drivers.TypeFloat64, o32, be64(0x7FF8000000000001), drivers.FloatValue(math.NaN()))
	add(drivers.TypeBCD16, o16, be16(0x1234), drivers.UintValue(1234))
	add(drivers.TypeBCD32, o32, be32(0x12345678), drivers.UintValue(12345678))
	add(drivers.TypeString, o16, []byte("PRESS-01\x00\x00"), drivers.StringValue("PRESS-01"))
	return cases
}

// layoutDevice is a device with one tag per layout case, each in its own registers from base,
// plus two register bits, and the register values to serve.
func layoutDevice(addr string, base int) (drivers.Device, map[int]uint16, []drivers.Value) {
	dev := tcpDevice(addr)
	regs := map[int]uint16{}
	var want []drivers.Value
	reg := base
	for i, c := range layoutCases() {
		order := c.order
		if i%7 == 0 && (order == "AB" || order == "ABCD") {
			order = "" // the default, now and then
		}
		tg := drivers.Tag{Name: fmt.Sprintf("%s_%s_%d", c.typ, c.order, i), Address: fmt.Sprintf("hr:%d", reg), Type: c.typ, ByteOrder: order}
		if c.typ == drivers.TypeString {
			tg.Length = len(c.regs)
		}
		dev.Tags = append(dev.Tags, tg)
		for k, v := range c.regs {
			regs[reg+k] = v
		}
		want = append(want, c.want)
		reg += len(c.regs)
	}
	regs[reg] = 0x8001
	dev.Tags = append(dev.Tags,
		drivers.Tag{Name: "bit15", Address: fmt.Sprintf("hr:%d.15", reg), Type: drivers.TypeBool},
		drivers.Tag{Name: "bit1", Address: fmt.Sprintf("hr:%d.1", reg), Type: drivers.TypeBool})
	want = append(want, drivers.BoolValue(true), drivers.BoolValue(false))
	return dev, regs, want
}

// checkLayout compares a batch of layoutDevice's tags with want, NaN equal to NaN.
func checkLayout(t *testing.T, b drivers.Batch, want []drivers.Value) {
	t.Helper()
	var got []drivers.Value
	for i, s := range b.Samples {
		if s.Quality != drivers.QualityGood {
			t.Errorf("sample %d: %v %s", i, s.Quality, s.Reason)
		}
		got = append(got, s.Value)
	}
	nanEqual := cmp.Comparer(func(a, b drivers.Value) bool {
		if a.Kind() == drivers.KindFloat && b.Kind() == drivers.KindFloat && math.IsNaN(a.Float()) && math.IsNaN(b.Float()) {
			return true
		}
		return a == b
	})
	if diff := cmp.Diff(want, got, nanEqual, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("layout values (-want +got):\n%s", diff)
	}
}

func TestLayoutCases_Cover(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range layoutCases() {
		seen[string(c.typ)+"/"+c.order] = true
	}
	for _, typ := range Types() {
		if typ == drivers.TypeBool {
			continue
		}
		orders := []string{"ABCD", "CDAB", "BADC", "DCBA"}
		switch typ {
		case drivers.TypeInt16, drivers.TypeUint16, drivers.TypeBCD16, drivers.TypeString:
			orders = []string{"AB", "BA"}
		}
		for _, o := range orders {
			if !seen[string(typ)+"/"+o] {
				t.Errorf("no layout case for %s in %s", typ, o)
			}
		}
	}
}

// TestDriver_Layout_TCP reads the layout block over a real loopback socket.
func TestDriver_Layout_TCP(t *testing.T) {
	s := startServer(t)
	dev, regs, want := layoutDevice(s.addr(), 1000)
	for r, v := range regs {
		s.setHolding(r, v)
	}
	r := startDriver(t, dev, Options{})
	checkLayout(t, r.waitBatches(t, 1)[0], want)
}
