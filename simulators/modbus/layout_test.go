package modbus_test

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goburrow/modbus"
	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/simulators/line"
	simmodbus "github.com/floorlink/floorlink/simulators/modbus"
)

var update = flag.Bool("update", false, "rewrite the layout table in simulators/README.md")

// decodeLayout decodes a value from its registers as simulators/README.md defines the orders,
// written here without the server's encoder: the registers' bytes as read (high byte first),
// DCBA reversed whole, CDAB reversed by register, BADC swapped within each register, then read
// big-endian.
func decodeLayout(t testing.TB, regs []uint16, l simmodbus.Layout) any {
	t.Helper()
	var raw []byte
	for _, r := range regs {
		raw = append(raw, byte(r>>8), byte(r))
	}
	swapPairs := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			b[i], b[i+1] = b[i+1], b[i]
		}
	}
	switch l.Order {
	case simmodbus.DCBA:
		slices.Reverse(raw)
	case simmodbus.CDAB:
		slices.Reverse(raw)
		swapPairs(raw)
	case simmodbus.BADC, simmodbus.BA:
		swapPairs(raw)
	}
	digits := func(v uint64, n int) uint64 {
		var d uint64
		for i := n - 1; i >= 0; i-- {
			nib := v >> (4 * i) & 0xF
			if nib > 9 {
				t.Errorf("%s: nibble %#x is not a decimal digit", l.Name, nib)
			}
			d = d*10 + nib
		}
		return d
	}
	switch l.Type {
	case simmodbus.Int16:
		return int16(binary.BigEndian.Uint16(raw))
	case simmodbus.Uint16:
		return binary.BigEndian.Uint16(raw)
	case simmodbus.Int32:
		return int32(binary.BigEndian.Uint32(raw))
	case simmodbus.Uint32:
		return binary.BigEndian.Uint32(raw)
	case simmodbus.Float32:
		return math.Float32frombits(binary.BigEndian.Uint32(raw))
	case simmodbus.Int64:
		return int64(binary.BigEndian.Uint64(raw))
	case simmodbus.Uint64:
		return binary.BigEndian.Uint64(raw)
	case simmodbus.Float64:
		return math.Float64frombits(binary.BigEndian.Uint64(raw))
	case simmodbus.String:
		return string(bytes.TrimRight(raw, "\x00"))
	case simmodbus.BCD16:
		return uint16(digits(uint64(binary.BigEndian.Uint16(raw)), 4))
	case simmodbus.BCD32:
		return uint32(digits(uint64(binary.BigEndian.Uint32(raw)), 8))
	case simmodbus.Bit:
		return regs[0]>>l.Bit&1 == 1
	}
	t.Fatalf("%s: unknown type %q", l.Name, l.Type)
	return nil
}

// sameValue compares decoded values, NaNs by their bits.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case float32:
		y, ok := b.(float32)
		return ok && math.Float32bits(x) == math.Float32bits(y)
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	}
	return a == b
}

// readBlock reads the whole layout block in three requests.
func readBlock(t testing.TB, c modbus.Client) []uint16 {
	t.Helper()
	var regs []uint16
	for first := simmodbus.LayoutFirst; first < simmodbus.LayoutFirst+simmodbus.LayoutSize; first += 125 {
		n := min(125, simmodbus.LayoutFirst+simmodbus.LayoutSize-first)
		b, err := c.ReadInputRegisters(uint16(first), uint16(n))
		if err != nil {
			t.Fatalf("read input %d-%d: %v", first, first+n-1, err)
		}
		for i := range n {
			regs = append(regs, binary.BigEndian.Uint16(b[2*i:]))
		}
	}
	return regs
}

func checkBlock(t testing.TB, regs []uint16, unit byte, tick uint32) {
	t.Helper()
	for _, l := range simmodbus.Layouts() {
		off := int(l.Address) - simmodbus.LayoutFirst
		got := decodeLayout(t, regs[off:off+l.Registers], l)
		if want := l.ValueAt(unit, tick); !sameValue(got, want) {
			t.Errorf("unit %d tick %d: %s at %d: decoded %v (%T), want %v (%T)", unit, tick, l.Name, l.Address, got, got, want, want)
		}
	}
}

func TestLayouts_TCP_Goburrow(t *testing.T) {
	f := start(t, line.Config{InitialTick: 1_000_000}, simmodbus.Options{})
	f.step(123)
	covered := map[int]bool{}
	for _, l := range simmodbus.Layouts() {
		for r := range l.Registers {
			covered[int(l.Address)+r] = true
		}
	}
	for unit := byte(1); unit <= 3; unit++ {
		c, _ := f.client(t, unit)
		regs := readBlock(t, c)
		checkBlock(t, regs, unit, f.snapshot(int(unit)).Tick)
		for i, r := range regs {
			if addr := simmodbus.LayoutFirst + i; !covered[addr] && r != 0 {
				t.Errorf("unit %d: input %d holds no value but reads %#04x, want 0", unit, addr, r)
			}
		}
	}
	// Every value read on its own, exactly its registers.
	c, _ := f.client(t, 2)
	tick := f.snapshot(2).Tick
	for _, l := range simmodbus.Layouts() {
		b, err := c.ReadInputRegisters(l.Address, uint16(l.Registers))
		if err != nil {
			t.Fatalf("%s: read input %d+%d: %v", l.Name, l.Address, l.Registers, err)
		}
		regs := make([]uint16, l.Registers)
		for i := range regs {
			regs[i] = binary.BigEndian.Uint16(b[2*i:])
		}
		if got, want := decodeLayout(t, regs, l), l.ValueAt(2, tick); !sameValue(got, want) {
			t.Errorf("%s read alone: decoded %v, want %v", l.Name, got, want)
		}
	}
	// The block's edges.
	for _, r := range [][2]uint16{{10, 1}, {999, 1}, {995, 10}, {1349, 2}, {1350, 1}, {9, 2}} {
		_, err := c.ReadInputRegisters(r[0], r[1])
		if got := exceptionCode(t, err, 4); got != byte(simmodbus.IllegalDataAddress) {
			t.Errorf("input %d+%d: exception %d, want 2", r[0], r[1], got)
		}
	}
}

func TestLayouts_RTU_Goburrow(t *testing.T) {
	// goburrow sleeps ~200 ms before reading 125 registers whatever the line: two units will do.
	f := startRTU(t, line.Config{}, simmodbus.Options{}, simmodbus.RTUOptions{NoPacing: true})
	f.step(99)
	for _, unit := range []byte{1, 3} {
		c, _ := f.rtuClient(t, unit, 2*time.Second)
		checkBlock(t, readBlock(t, c), unit, f.snapshot(int(unit)).Tick)
	}
}

// TestLayouts_Counters steps through several rollovers of both counters, by the README's
// formulas, written again here.
func TestLayouts_Counters(t *testing.T) {
	f := start(t, line.Config{InitialTick: math.MaxUint32 - 100}, simmodbus.Options{})
	c, _ := f.client(t, 1)
	var wraps16, wraps32 int
	var last16 uint16
	var last32 uint32
	for i := range 300 { // through the 32-bit wrap of the tick, too
		b, err := c.ReadInputRegisters(1001, 7)
		if err != nil {
			t.Fatal(err)
		}
		tick, c16 := u32(b, 0), u16(b, 2)
		c32, c32cdab := u32(b, 3), uint32(u16(b, 6))<<16|uint32(u16(b, 5))
		if tick != f.snapshot(1).Tick {
			t.Fatalf("tick %d, want %d", tick, f.snapshot(1).Tick)
		}
		if want := uint16(uint64(tick) * 1000 % 65536); c16 != want {
			t.Fatalf("tick %d: counter16 %d, want %d", tick, c16, want)
		}
		if want := uint32(uint64(tick) * 50_000_000 % (1 << 32)); c32 != want || c32cdab != want {
			t.Fatalf("tick %d: counter32 %d and %d (CDAB), want %d", tick, c32, c32cdab, want)
		}
		if i > 0 && c16 < last16 {
			wraps16++
		}
		if i > 0 && c32 < last32 {
			wraps32++
		}
		last16, last32 = c16, c32
		f.step(1)
	}
	if wraps16 < 4 || wraps32 < 3 {
		t.Errorf("saw %d wraps of counter16 and %d of counter32 in 300 ticks, want at least 4 and 3", wraps16, wraps32)
	}
}

// TestLayouts_Table checks that the table covers what issue 5 asks for.
func TestLayouts_Table(t *testing.T) {
	ls := simmodbus.Layouts()
	names := map[string]bool{}
	kinds := map[string]bool{} // type/order
	values := map[string]bool{}
	used := map[uint16]string{}
	for _, l := range ls {
		if names[l.Name] {
			t.Errorf("name %s twice", l.Name)
		}
		names[l.Name] = true
		kinds[string(l.Type)+"/"+string(l.Order)] = true
		if l.Table != simmodbus.InputRegisters || int(l.Address) < simmodbus.LayoutFirst ||
			int(l.Address)+l.Registers > simmodbus.LayoutFirst+simmodbus.LayoutSize {
			t.Errorf("%s: table %v at %d+%d, outside the block", l.Name, l.Table, l.Address, l.Registers)
		}
		if l.Dynamic != (l.Value == nil) {
			t.Errorf("%s: dynamic %v with value %v", l.Name, l.Dynamic, l.Value)
		}
		if l.Type != simmodbus.Bit {
			for r := l.Address; r < l.Address+uint16(l.Registers); r++ {
				if other, ok := used[r]; ok {
					t.Errorf("%s and %s share register %d", l.Name, other, r)
				}
				used[r] = l.Name
			}
		}
		if !l.Dynamic {
			values[fmt.Sprintf("%s:%v", l.Type, l.Value)] = true
		}
	}
	for _, typ := range []string{"int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"} {
		for _, o := range []string{"ABCD", "CDAB", "BADC", "DCBA"} {
			if !kinds[typ+"/"+o] {
				t.Errorf("no %s in %s", typ, o)
			}
		}
	}
	for _, k := range []string{"string/AB", "string/BA", "bcd16/ABCD", "bcd32/ABCD", "bcd32/CDAB", "bit/"} {
		if !kinds[k] {
			t.Errorf("no %s", k)
		}
	}
	for _, v := range []string{
		"int16:-32768", "int16:32767", "int32:-2147483648", "int32:2147483647",
		"int64:-9223372036854775808", "int64:9223372036854775807",
		"uint16:65535", "uint32:4294967295", "uint64:18446744073709551615",
		"float32:NaN", "float32:+Inf", "float32:-Inf", "float64:NaN", "float64:+Inf", "float64:-Inf",
		"float32:-123.456", "float64:-123456.789",
	} {
		if !values[v] {
			t.Errorf("no value %s", v)
		}
	}
	bits := 0
	for _, l := range ls {
		if l.Type == simmodbus.Bit {
			bits++
		}
	}
	if bits != 16 {
		t.Errorf("%d bits, want all 16 of a register", bits)
	}
}

// TestLayouts_README checks that simulators/README.md's layout table is the one the server serves
// (registers as read from it at tick 0); -update rewrites it.
func TestLayouts_README(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	c, _ := f.client(t, 1)
	regs := readBlock(t, c)
	var b strings.Builder
	b.WriteString("| address | reference | name | type | order | registers (hex) | value |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, l := range simmodbus.Layouts() {
		off := int(l.Address) - simmodbus.LayoutFirst
		var hex []string
		for _, r := range regs[off : off+l.Registers] {
			hex = append(hex, fmt.Sprintf("%04X", r))
		}
		addr := strconv.Itoa(int(l.Address))
		if l.Registers > 1 {
			addr += "–" + strconv.Itoa(int(l.Address)+l.Registers-1)
		}
		typ, order, value := string(l.Type), string(l.Order), formatValue(l.Value)
		switch {
		case l.Type == simmodbus.Bit:
			typ = fmt.Sprintf("bit %d", l.Bit)
			order = "—"
		case l.Dynamic:
			hex = []string{"—"}
			value = map[string]string{
				"unit_id":        "the unit id",
				"tick":           "the tick, as holding 1–2",
				"counter16":      "tick × 1000 mod 2^16",
				"counter32_abcd": "tick × 50,000,000 mod 2^32",
				"counter32_cdab": "tick × 50,000,000 mod 2^32",
			}[l.Name]
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s |\n", addr, 30001+int(l.Address), l.Name, typ, order, strings.Join(hex, " "), value)
	}
	const path = "../README.md"
	const begin, end = "<!-- layouts: begin (go test ./simulators/modbus -run TestLayouts_README -update) -->\n", "<!-- layouts: end -->\n"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q and %q", path, begin, end)
	}
	got, want := string(doc[i+len(begin):j]), b.String()
	if *update {
		out := slices.Concat(doc[:i+len(begin)], []byte(want), doc[j:])
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s layout table is stale; run with -update (-served +README):\n%s", path, diff)
	}
}

func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return strconv.Quote(x)
	}
	return fmt.Sprint(v)
}
