package modbus_test

import (
	"fmt"
	"testing"

	"github.com/floorlink/floorlink/simulators/line"
	simmodbus "github.com/floorlink/floorlink/simulators/modbus"
)

// wantExtra is register 100+i as simulators/README.md documents it, written from the table and
// not from line.Machine.Extra: (i mod 256) in the high byte, (tick mod 256) in the low byte.
func wantExtra(tick uint32, i int) uint16 { return uint16(i%256)*256 + uint16(tick%256) }

// TestServer_ExtraRegisters_Goburrow reads the extra block of a wide line (20 machines, 500 extra
// registers, the throughput test's shape) in the 125-register requests a driver makes, plus reads
// straddling its edges, and checks every register against the documented formula at the tick
// holding registers 1-2 carry.
func TestServer_ExtraRegisters_Goburrow(t *testing.T) {
	const machines, extra = 20, 500
	f := start(t, line.Config{Seed: 3, Machines: machines, ExtraValues: extra, InitialTick: 0x1_2345}, simmodbus.Options{})
	f.step(300) // low byte of the tick 0x2471: 0x71
	for unit := 1; unit <= machines; unit++ {
		c, _ := f.client(t, byte(unit))
		tick := f.snapshot(unit).Tick
		// One request from register 0: the fixed table and the first 25 extras at one tick.
		b, err := c.ReadHoldingRegisters(0, 125)
		if err != nil {
			t.Fatalf("unit %d: read holding 0-124: %v", unit, err)
		}
		if got := u32(b, 1); got != tick {
			t.Fatalf("unit %d: tick %d, want %d", unit, got, tick)
		}
		for r := 20; r < 100; r++ {
			if v := u16(b, r); v != 0 {
				t.Errorf("unit %d: holding %d = %d, want 0", unit, r, v)
			}
		}
		for r := 100; r < 125; r++ {
			if got, want := u16(b, r), wantExtra(tick, r-100); got != want {
				t.Errorf("unit %d: holding %d = %#04x, want %#04x", unit, r, got, want)
			}
		}
		for first := 100; first < 100+extra; first += 125 {
			n := min(125, 100+extra-first)
			b, err := c.ReadHoldingRegisters(uint16(first), uint16(n))
			if err != nil {
				t.Fatalf("unit %d: read holding %d-%d: %v", unit, first, first+n-1, err)
			}
			for j := range n {
				if got, want := u16(b, j), wantExtra(tick, first+j-100); got != want {
					t.Fatalf("unit %d: holding %d = %#04x, want %#04x", unit, first+j, got, want)
				}
			}
		}
		// The last register exists; one past it does not.
		if b, err := c.ReadHoldingRegisters(99+extra, 1); err != nil || u16(b, 0) != wantExtra(tick, extra-1) {
			t.Errorf("unit %d: holding %d: % x, %v; want %#04x", unit, 99+extra, b, err, wantExtra(tick, extra-1))
		}
		for _, r := range [][2]uint16{{100 + extra, 1}, {90 + extra, 11}, {100 + extra, 125}} {
			_, err := c.ReadHoldingRegisters(r[0], r[1])
			if got := exceptionCode(t, err, 3); got != byte(simmodbus.IllegalDataAddress) {
				t.Errorf("unit %d: holding %d+%d: exception %d, want 2", unit, r[0], r[1], got)
			}
		}
	}

	// The values follow the tick: 256 ticks later they are the same, one tick later the low byte
	// moves.
	c, _ := f.client(t, 7)
	for _, steps := range []int{1, 255, 1} {
		f.step(steps)
		tick := f.snapshot(7).Tick
		b, err := c.ReadHoldingRegisters(1, 125)
		if err != nil {
			t.Fatal(err)
		}
		if got := u32(b, 0); got != tick {
			t.Fatalf("tick %d, want %d", got, tick)
		}
		for r := 100; r < 126; r++ {
			if got, want := u16(b, r-1), wantExtra(tick, r-100); got != want {
				t.Fatalf("tick %#x: holding %d = %#04x, want %#04x", tick, r, got, want)
			}
		}
	}
}

// TestServer_ExtraRegisters_Edges: without extra values the holding table ends at 99 (exception 2
// from 100 on), as before the extra block existed; with a few, it ends right after them; the
// largest block reaches register 65535.
func TestServer_ExtraRegisters_Edges(t *testing.T) {
	for _, extra := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("extra=%d", extra), func(t *testing.T) {
			f := start(t, line.Config{ExtraValues: extra}, simmodbus.Options{})
			c, _ := f.client(t, 1)
			end := uint16(100 + extra)
			if _, err := c.ReadHoldingRegisters(0, end); err != nil {
				t.Errorf("read holding 0-%d: %v", end-1, err)
			}
			_, err := c.ReadHoldingRegisters(end, 1)
			if got := exceptionCode(t, err, 3); got != byte(simmodbus.IllegalDataAddress) {
				t.Errorf("holding %d: exception %d, want 2", end, got)
			}
			_, err = c.ReadHoldingRegisters(end-1, 2)
			if got := exceptionCode(t, err, 3); got != byte(simmodbus.IllegalDataAddress) {
				t.Errorf("holding %d-%d: exception %d, want 2", end-1, end, got)
			}
		})
	}
}

func TestServer_ExtraRegisters_Max(t *testing.T) {
	f := start(t, line.Config{ExtraValues: line.MaxExtraValues}, simmodbus.Options{})
	c, _ := f.client(t, 2)
	b, err := c.ReadHoldingRegisters(65536-125, 125)
	if err != nil {
		t.Fatalf("read holding 65411-65535: %v", err)
	}
	tick := f.snapshot(2).Tick
	for j := range 125 {
		if got, want := u16(b, j), wantExtra(tick, 65536-125+j-100); got != want {
			t.Fatalf("holding %d = %#04x, want %#04x", 65536-125+j, got, want)
		}
	}
}
