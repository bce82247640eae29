package simtest_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/goburrow/modbus"

	"github.com/floorlink/floorlink/simulators/simtest"
)

func rtuClient(t testing.TB, path string, unit byte, timeout time.Duration) (modbus.Client, *modbus.RTUClientHandler) {
	t.Helper()
	h := modbus.NewRTUClientHandler(path)
	h.BaudRate, h.DataBits, h.Parity, h.StopBits = 115200, 8, "N", 1
	h.SlaveId = unit
	h.Timeout = timeout
	t.Cleanup(func() { h.Close() })
	return modbus.NewClient(h), h
}

func TestStart_RTU(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Line: simtest.LineConfig{Seed: 21}, Manual: true, RTU: true})
	if sim.RTUPath() == "" {
		t.Fatal("no RTU path")
	}
	sim.Advance(500)
	for unit := 1; unit <= 3; unit++ {
		c, _ := rtuClient(t, sim.RTUPath(), byte(unit), 2*time.Second)
		b, err := c.ReadHoldingRegisters(0, 20)
		if err != nil {
			t.Fatalf("unit %d over RTU: %v", unit, err)
		}
		got := decode(b)
		m, ok := sim.Snapshot(unit, got.Tick)
		if !ok || expected(m) != got {
			t.Errorf("unit %d: served %+v, snapshot %+v (%v)", unit, got, expected(m), ok)
		}
	}
	// RTU reads count for TickReads as TCP ones do.
	waitFor(t, 5*time.Second, func() error {
		if n := len(sim.TickReads(2)); n != 1 {
			return fmt.Errorf("%d tick reads of machine 2, want 1", n)
		}
		return nil
	})
	if simtest.Start(t, simtest.Options{Manual: true}).RTUPath() != "" {
		t.Error("RTUPath without Options.RTU is not empty")
	}
}

// TestStart_RTU_Faults: the fault controls act on the RTU line too.
func TestStart_RTU_Faults(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Manual: true, RTU: true, Serial: simtest.RTUOptions{Baud: 38400}})
	c1, _ := rtuClient(t, sim.RTUPath(), 1, 300*time.Millisecond)

	sim.SetUnitSilent(1, true)
	if _, err := c1.ReadHoldingRegisters(0, 1); err == nil {
		t.Error("silent unit answered")
	}
	sim.SetUnitSilent(1, false)

	sim.SetAddressExceptions(simtest.AddressException{Unit: 1, Table: simtest.HoldingRegisters, First: 5, Last: 6, Code: simtest.IllegalDataAddress})
	_, err := c1.ReadHoldingRegisters(0, 10)
	var me *modbus.ModbusError
	if !errors.As(err, &me) || me.ExceptionCode != 2 {
		t.Errorf("read covering 5-6: %v, want exception 2", err)
	}
	if _, err := c1.ReadHoldingRegisters(7, 3); err != nil {
		t.Errorf("read beside 5-6: %v", err)
	}
	sim.SetAddressExceptions()

	sim.SetFragments(simtest.Fragments{Gap: 20 * time.Millisecond})
	begin := time.Now()
	if _, err := c1.ReadHoldingRegisters(0, 10); err != nil {
		t.Errorf("fragmented answer: %v", err)
	}
	if took := time.Since(begin); took < 40*time.Millisecond {
		t.Errorf("fragmented answer after %v, want at least two 20ms gaps", took)
	}
	sim.SetFragments(simtest.Fragments{})
}

func TestStart_TCP_NewFaults(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Manual: true})
	c, h := client(t, sim.ModbusAddr(), 3)
	h.Timeout = 300 * time.Millisecond

	sim.SetUnitLate(3, time.Second)
	if _, err := c.ReadHoldingRegisters(0, 1); err == nil {
		t.Error("late answer within the timeout")
	}
	sim.SetUnitLate(3, 0)
	h.Close() // goburrow cannot resynchronise; a new connection can

	sim.SetUnitSilent(3, true)
	if _, err := c.ReadHoldingRegisters(0, 1); err == nil {
		t.Error("silent unit answered")
	}
	sim.SetUnitSilent(3, false)
	h.Close()
	if _, err := c.ReadHoldingRegisters(0, 1); err != nil {
		t.Errorf("after the faults: %v", err)
	}
}

// TestLayouts reads every value of the layout block as a consumer of simtest would, decoding by
// the README's byte orders, and compares it with Layout.ValueAt.
func TestLayouts(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Manual: true, Line: simtest.LineConfig{Seed: 2}})
	sim.Advance(70) // past a wrap of the 16-bit counter
	c, _ := client(t, sim.ModbusAddr(), 2)
	tick := sim.Current(2).Tick
	layouts := simtest.Layouts()
	if len(layouts) < 100 {
		t.Fatalf("%d layouts, want the whole table", len(layouts))
	}
	for _, l := range layouts {
		b, err := c.ReadInputRegisters(l.Address, uint16(l.Registers))
		if err != nil {
			t.Fatalf("%s: %v", l.Name, err)
		}
		got := decodeLayout(b, l)
		want := l.ValueAt(2, tick)
		if f, ok := want.(float64); ok && math.IsNaN(f) {
			if g, ok := got.(float64); !ok || math.Float64bits(g) != math.Float64bits(f) {
				t.Errorf("%s: %v, want NaN %#x", l.Name, got, math.Float64bits(f))
			}
			continue
		}
		if f, ok := want.(float32); ok && math.IsNaN(float64(f)) {
			if g, ok := got.(float32); !ok || math.Float32bits(g) != math.Float32bits(f) {
				t.Errorf("%s: %v, want NaN %#x", l.Name, got, math.Float32bits(f))
			}
			continue
		}
		if got != want {
			t.Errorf("%s at %d: decoded %v (%T), want %v (%T)", l.Name, l.Address, got, got, want, want)
		}
	}
}

// decodeLayout decodes b (as read) by l's type and order.
func decodeLayout(b []byte, l simtest.Layout) any {
	raw := slices.Clone(b)
	swap := func() {
		for i := 0; i+1 < len(raw); i += 2 {
			raw[i], raw[i+1] = raw[i+1], raw[i]
		}
	}
	switch l.Order {
	case simtest.DCBA:
		slices.Reverse(raw)
	case simtest.CDAB:
		slices.Reverse(raw)
		swap()
	case simtest.BADC, simtest.BA:
		swap()
	}
	be := binary.BigEndian
	bcd := func(v uint64, digits int) uint64 {
		var d uint64
		for i := digits - 1; i >= 0; i-- {
			d = d*10 + v>>(4*i)&0xF
		}
		return d
	}
	switch l.Type {
	case simtest.Int16:
		return int16(be.Uint16(raw))
	case simtest.Uint16:
		return be.Uint16(raw)
	case simtest.Int32:
		return int32(be.Uint32(raw))
	case simtest.Uint32:
		return be.Uint32(raw)
	case simtest.Int64:
		return int64(be.Uint64(raw))
	case simtest.Uint64:
		return be.Uint64(raw)
	case simtest.Float32:
		return math.Float32frombits(be.Uint32(raw))
	case simtest.Float64:
		return math.Float64frombits(be.Uint64(raw))
	case simtest.String:
		for len(raw) > 0 && raw[len(raw)-1] == 0 {
			raw = raw[:len(raw)-1]
		}
		return string(raw)
	case simtest.BCD16:
		return uint16(bcd(uint64(be.Uint16(raw)), 4))
	case simtest.BCD32:
		return uint32(bcd(uint64(be.Uint32(raw)), 8))
	case simtest.Bit:
		return be.Uint16(b)>>l.Bit&1 == 1
	}
	return nil
}
