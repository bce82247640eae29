package simtest_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/goburrow/modbus"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/floorlink/floorlink/simulators/simtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func client(t testing.TB, addr string, unit byte) (modbus.Client, *modbus.TCPClientHandler) {
	t.Helper()
	h := modbus.NewTCPClientHandler(addr)
	h.SlaveId = unit
	h.Timeout = 5 * time.Second
	t.Cleanup(func() { h.Close() })
	return modbus.NewClient(h), h
}

func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		<-time.After(5 * time.Millisecond) // poll interval
	}
}

// served is what a test decodes from holding registers 0-19, by the README's map.
type served struct {
	State          uint16
	Tick           uint32
	Parts, Good    uint32
	Temperature    float32
	Pressure       float32
	Spindle        int32
	TemperatureX10 int16
}

func decode(b []byte) served {
	r := func(i int) uint16 { return binary.BigEndian.Uint16(b[2*i:]) }
	abcd := func(i int) uint32 { return uint32(r(i))<<16 | uint32(r(i+1)) }
	return served{
		State:          r(0),
		Tick:           abcd(1),
		Parts:          abcd(3),
		Good:           abcd(5),
		Temperature:    math.Float32frombits(abcd(10)),
		Pressure:       math.Float32frombits(uint32(r(13))<<16 | uint32(r(12))),
		Spindle:        int32(abcd(17)),
		TemperatureX10: int16(r(19)),
	}
}

func expected(m simtest.Machine) served {
	return served{
		State: uint16(m.State), Tick: m.Tick, Parts: m.PartsTotal, Good: m.GoodTotal,
		Temperature: m.Temperature, Pressure: m.Pressure, Spindle: m.SpindleSpeed,
		TemperatureX10: int16(math.Round(float64(m.Temperature) * 10)),
	}
}

func TestStart_Manual(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Line: simtest.LineConfig{Seed: 11}, Manual: true})
	if sim.Machines() != 3 {
		t.Fatalf("%d machines, want 3", sim.Machines())
	}
	for _, advance := range []int{0, 10, 3000} {
		sim.Advance(advance)
		for unit := 1; unit <= 3; unit++ {
			c, _ := client(t, sim.ModbusAddr(), byte(unit))
			b, err := c.ReadHoldingRegisters(0, 20)
			if err != nil {
				t.Fatalf("unit %d: %v", unit, err)
			}
			got := decode(b)
			m, ok := sim.Snapshot(unit, got.Tick)
			if !ok {
				t.Fatalf("unit %d: no snapshot of served tick %d", unit, got.Tick)
			}
			if diff := cmp.Diff(expected(m), got); diff != "" {
				t.Errorf("unit %d tick %d (-snapshot +served):\n%s", unit, got.Tick, diff)
			}
			if cur := sim.Current(unit); cur != m {
				t.Errorf("unit %d: Current %+v differs from Snapshot at the current tick %+v", unit, cur, m)
			}
		}
	}
	// A read is recorded just after its response is written: the client may be faster.
	waitFor(t, 5*time.Second, func() error {
		for unit := 1; unit <= 3; unit++ {
			if n := len(sim.TickReads(unit)); n != 3 {
				return fmt.Errorf("unit %d: %d TickReads, want 3", unit, n)
			}
		}
		return nil
	})
	if got := sim.Tick(); got != 3010 {
		t.Errorf("Tick() = %d, want 3010", got)
	}
	for unit := 1; unit <= 3; unit++ {
		var ticks []uint32
		for _, r := range sim.TickReads(unit) {
			ticks = append(ticks, r.Tick)
		}
		if diff := cmp.Diff([]uint32{0, 10, 3010}, ticks); diff != "" {
			t.Errorf("unit %d TickReads (-want +got):\n%s", unit, diff)
		}
	}
	if _, ok := sim.Snapshot(1, 3011); ok {
		t.Error("Snapshot of a future tick reported ok")
	}
}

// TestStart_Paced polls a paced line the way a driver would and checks that every tick it was
// served is in the history, with the values it was served, and in TickReads in order.
func TestStart_Paced(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Line: simtest.LineConfig{Seed: 12}, Speed: 50})
	c, _ := client(t, sim.ModbusAddr(), 2)
	var got []uint32
	waitFor(t, 10*time.Second, func() error {
		b, err := c.ReadHoldingRegisters(0, 20)
		if err != nil {
			t.Fatal(err)
		}
		s := decode(b)
		m, ok := sim.Snapshot(2, s.Tick)
		if !ok {
			t.Fatalf("no snapshot of served tick %d", s.Tick)
		}
		if diff := cmp.Diff(expected(m), s); diff != "" {
			t.Fatalf("tick %d (-snapshot +served):\n%s", s.Tick, diff)
		}
		got = append(got, s.Tick)
		if s.Tick < 200 {
			return fmt.Errorf("served tick %d, want 200", s.Tick)
		}
		return nil
	})
	var reads []simtest.TickRead
	waitFor(t, 5*time.Second, func() error {
		if reads = sim.TickReads(2); len(reads) != len(got) {
			return fmt.Errorf("%d TickReads, want the %d reads made", len(reads), len(got))
		}
		return nil
	})
	for i, r := range reads {
		if r.Tick != got[i] || (i > 0 && (r.Tick < reads[i-1].Tick || r.At.Before(reads[i-1].At))) {
			t.Fatalf("TickReads[%d] = %+v, want tick %d, in order", i, r, got[i])
		}
	}
	if len(sim.TickReads(1)) != 0 || sim.TickReads(4) != nil {
		t.Error("TickReads for machines never read is not empty")
	}
}

// TestStart_PacingIndependent runs the same line paced and by hand: the snapshots agree tick for
// tick.
func TestStart_PacingIndependent(t *testing.T) {
	cfg := simtest.LineConfig{Seed: 13, Machines: 4}
	manual := simtest.Start(t, simtest.Options{Line: cfg, Manual: true})
	paced := simtest.Start(t, simtest.Options{Line: cfg, Speed: 1000})
	manual.Advance(1000)
	waitFor(t, 10*time.Second, func() error {
		if tick := paced.Tick(); tick < 1000 {
			return fmt.Errorf("paced line at tick %d, want 1000", tick)
		}
		return nil
	})
	for tick := range uint32(1001) {
		for k := 1; k <= 4; k++ {
			a, okA := manual.Snapshot(k, tick)
			b, okB := paced.Snapshot(k, tick)
			if !okA || !okB || a != b {
				t.Fatalf("machine %d tick %d: manual %+v (%v), paced %+v (%v)", k, tick, a, okA, b, okB)
			}
		}
	}
}

func TestStart_History(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Manual: true, History: 10})
	sim.Advance(25)
	for tick := range uint32(27) {
		_, ok := sim.Snapshot(1, tick)
		if want := tick >= 16 && tick <= 25; ok != want {
			t.Errorf("Snapshot(1, %d) ok = %v, want %v (history of 10, now at 25)", tick, ok, want)
		}
	}
	c, _ := client(t, sim.ModbusAddr(), 1)
	for range 25 {
		if _, err := c.ReadHoldingRegisters(1, 2); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, func() error {
		if n := len(sim.TickReads(1)); n != 10 {
			return fmt.Errorf("%d TickReads kept, want the newest 10", n)
		}
		return nil
	})
}

func TestStart_TickWrap(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Line: simtest.LineConfig{InitialTick: math.MaxUint32 - 4}, Manual: true})
	sim.Advance(10)
	for _, tick := range []uint32{math.MaxUint32 - 4, math.MaxUint32, 0, 5} {
		m, ok := sim.Snapshot(3, tick)
		if !ok || m.Tick != tick {
			t.Errorf("Snapshot(3, %d) = tick %d, %v; want that tick", tick, m.Tick, ok)
		}
	}
	if _, ok := sim.Snapshot(3, 6); ok {
		t.Error("Snapshot of tick 6 ok while the line is at 5")
	}
	if _, ok := sim.Snapshot(3, math.MaxUint32-5); ok {
		t.Error("Snapshot of the tick before the start ok")
	}
}

// TestStart_TickReads_Partial checks which reads count: only those covering both tick registers.
func TestStart_TickReads_Partial(t *testing.T) {
	var mu sync.Mutex
	var observed int
	sim := simtest.Start(t, simtest.Options{Line: simtest.LineConfig{InitialTick: 69_990}, Manual: true, OnRequest: func(simtest.Request) {
		mu.Lock()
		observed++
		mu.Unlock()
	}})
	sim.Advance(10) // tick 70000: high word 1, low word 4464
	c, _ := client(t, sim.ModbusAddr(), 1)
	reads := []struct{ addr, qty uint16 }{{0, 1}, {1, 1}, {2, 1}, {0, 2}, {1, 2}, {0, 3}, {2, 10}, {0, 100}}
	for _, r := range reads {
		if _, err := c.ReadHoldingRegisters(r.addr, r.qty); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.ReadInputRegisters(2, 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if observed != len(reads)+1 {
			return fmt.Errorf("OnRequest saw %d requests, want %d", observed, len(reads)+1)
		}
		return nil
	})
	var ticks []uint32
	for _, r := range sim.TickReads(1) {
		ticks = append(ticks, r.Tick)
	}
	if diff := cmp.Diff([]uint32{70_000, 70_000, 70_000}, ticks); diff != "" {
		t.Errorf("TickReads (-want +got):\n%s", diff)
	}
}

func TestStart_Faults(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Manual: true})
	c, h := client(t, sim.ModbusAddr(), 2)
	sim.SetUnitException(2, simtest.ServerDeviceFailure)
	_, err := c.ReadHoldingRegisters(0, 1)
	var me *modbus.ModbusError
	if !errors.As(err, &me) || me.ExceptionCode != byte(simtest.ServerDeviceFailure) {
		t.Errorf("got %v, want exception 4", err)
	}
	sim.SetUnitException(2, 0)

	sim.SetUnitDelay(2, 300*time.Millisecond)
	begin := time.Now()
	if _, err := c.ReadHoldingRegisters(0, 1); err != nil || time.Since(begin) < 300*time.Millisecond {
		t.Errorf("delayed read: %v after %v, want at least 300ms", err, time.Since(begin))
	}
	sim.SetUnitDelay(2, 0)

	if sim.ModbusConnections() != 1 {
		t.Errorf("%d connections, want 1", sim.ModbusConnections())
	}
	sim.DropConnections()
	waitFor(t, 5*time.Second, func() error {
		if n := sim.ModbusConnections(); n != 0 {
			return fmt.Errorf("%d connections after the drop", n)
		}
		return nil
	})
	h.Close()
	sim.SetRefuse(true)
	if _, err := c.ReadHoldingRegisters(0, 1); err == nil {
		t.Error("read succeeded while refusing connections")
	}
	h.Close()
	sim.SetRefuse(false)
	if _, err := c.ReadHoldingRegisters(0, 1); err != nil {
		t.Errorf("read after refusing: %v", err)
	}
}

// TestStart_Cleanup checks that a Sim is gone when its test ends: nothing listens any more (and
// goleak checks that no goroutine is left).
func TestStart_Cleanup(t *testing.T) {
	var addr string
	t.Run("sim", func(t *testing.T) {
		sim := simtest.Start(t, simtest.Options{Speed: 10})
		addr = sim.ModbusAddr()
		c, _ := client(t, addr, 1)
		if _, err := c.ReadHoldingRegisters(0, 1); err != nil {
			t.Fatal(err)
		}
	})
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after the test ended", addr)
	}
}

// TestStart_WideLine is the throughput tests' shape: 20 machines with 500 extra registers each,
// read in 125-register requests like a driver's, every value by the README's formula at the tick
// the same request carries, and the tick read recorded.
func TestStart_WideLine(t *testing.T) {
	const machines, extra = 20, 500
	sim := simtest.Start(t, simtest.Options{Line: simtest.LineConfig{Seed: 4, Machines: machines, ExtraValues: extra}, Manual: true})
	sim.Advance(1000)
	for unit := 1; unit <= machines; unit++ {
		c, _ := client(t, sim.ModbusAddr(), byte(unit))
		for first := 0; first < simtest.HoldingExtra+extra; first += 125 {
			n := min(125, simtest.HoldingExtra+extra-first)
			b, err := c.ReadHoldingRegisters(uint16(first), uint16(n))
			if err != nil {
				t.Fatalf("unit %d: read holding %d-%d: %v", unit, first, first+n-1, err)
			}
			tick := sim.Current(unit).Tick
			for j := max(simtest.HoldingExtra-first, 0); j < n; j++ {
				i := first + j - simtest.HoldingExtra
				if got, want := binary.BigEndian.Uint16(b[2*j:]), uint16(i%256)<<8|uint16(tick%256); got != want {
					t.Fatalf("unit %d: holding %d = %#04x, want %#04x", unit, first+j, got, want)
				}
			}
		}
	}
	waitFor(t, 5*time.Second, func() error {
		for unit := 1; unit <= machines; unit++ {
			if reads := sim.TickReads(unit); len(reads) != 1 || reads[0].Tick != 1000 {
				return fmt.Errorf("machine %d: tick reads %v, want one of tick 1000", unit, reads)
			}
		}
		return nil
	})
}
