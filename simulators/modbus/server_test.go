package modbus_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/simulators/line"
	simmodbus "github.com/floorlink/floorlink/simulators/modbus"
)

// The decoding below is written from the register map in simulators/README.md, not from the
// server's encoder.

func u16(b []byte, reg int) uint16 { return binary.BigEndian.Uint16(b[2*reg:]) }
func u32(b []byte, reg int) uint32 { return uint32(u16(b, reg))<<16 | uint32(u16(b, reg+1)) }
func u32cdab(b []byte, reg int) uint32 {
	return uint32(u16(b, reg+1))<<16 | uint32(u16(b, reg))
}
func x10(f float32) int16 { return int16(math.Round(float64(f) * 10)) }

// bitAt returns bit i of a read coils/discrete inputs response: LSB of the first byte first.
func bitAt(b []byte, i int) bool { return b[i/8]>>(i%8)&1 == 1 }

type holding struct {
	State                     line.State
	Tick, Parts, Good, Reject uint32
	Parts16                   uint16
	Temperature, Pressure     float32
	CycleMs, IdealMs, Alarm   uint16
	Spindle                   int32
	TemperatureX10            int16
}

func decodeHolding(b []byte) holding {
	return holding{
		State:          line.State(u16(b, 0)),
		Tick:           u32(b, 1),
		Parts:          u32(b, 3),
		Good:           u32(b, 5),
		Reject:         u32(b, 7),
		Parts16:        u16(b, 9),
		Temperature:    math.Float32frombits(u32(b, 10)),
		Pressure:       math.Float32frombits(u32cdab(b, 12)),
		CycleMs:        u16(b, 14),
		IdealMs:        u16(b, 15),
		Alarm:          u16(b, 16),
		Spindle:        int32(u32(b, 17)),
		TemperatureX10: int16(u16(b, 19)),
	}
}

func wantHolding(m line.Machine) holding {
	return holding{
		State: m.State, Tick: m.Tick, Parts: m.PartsTotal, Good: m.GoodTotal, Reject: m.RejectTotal,
		Parts16: uint16(m.PartsTotal), Temperature: m.Temperature, Pressure: m.Pressure,
		CycleMs: m.CycleTimeMs, IdealMs: m.IdealCycleTimeMs, Alarm: m.AlarmCode,
		Spindle: m.SpindleSpeed, TemperatureX10: x10(m.Temperature),
	}
}

func TestServer_HoldingRegisters_Goburrow(t *testing.T) {
	// Initial parts near the 16-bit wrap, so that parts_total_16 differs from parts_total.
	f := start(t, line.Config{Seed: 5, InitialParts: 65_500}, simmodbus.Options{})
	f.step(6000) // 10 simulated minutes: counters, cycle times and a reverse spindle on machine 2
	for unit := 1; unit <= 3; unit++ {
		c, _ := f.client(t, byte(unit))
		b, err := c.ReadHoldingRegisters(0, 20)
		if err != nil {
			t.Fatalf("unit %d: read holding 0-19: %v", unit, err)
		}
		if len(b) != 40 {
			t.Fatalf("unit %d: got %d bytes, want 40", unit, len(b))
		}
		m := f.snapshot(unit)
		got, want := decodeHolding(b), wantHolding(m)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("unit %d: holding 0-19 (-snapshot +served):\n%s", unit, diff)
		}
		if got.Parts <= 65_536 {
			t.Errorf("unit %d: parts %d / %d: the test meant to cross the 16-bit wrap", unit, got.Parts, got.Parts16)
		}
		if unit == 2 && got.Spindle >= 0 && m.State == line.Running {
			t.Errorf("unit 2 spindle %d while running, want reverse (negative)", got.Spindle)
		}

		// 20..99 read as zero, in one request and at the edge.
		b, err = c.ReadHoldingRegisters(20, 80)
		if err != nil {
			t.Fatalf("unit %d: read holding 20-99: %v", unit, err)
		}
		for i := range 80 {
			if v := u16(b, i); v != 0 {
				t.Errorf("unit %d: holding %d = %d, want 0", unit, 20+i, v)
			}
		}
		// A single register read in the middle of a 32-bit pair gives that half.
		b, err = c.ReadHoldingRegisters(2, 1)
		if err != nil {
			t.Fatalf("unit %d: read holding 2: %v", unit, err)
		}
		if got := u16(b, 0); got != uint16(m.Tick) {
			t.Errorf("unit %d: holding 2 = %d, want low word of tick %d", unit, got, m.Tick)
		}
	}
}

func TestServer_InputRegisters_Goburrow(t *testing.T) {
	f := start(t, line.Config{Seed: 6}, simmodbus.Options{})
	f.step(1200)
	for unit := 1; unit <= 3; unit++ {
		c, _ := f.client(t, byte(unit))
		b, err := c.ReadInputRegisters(0, 10)
		if err != nil {
			t.Fatalf("unit %d: read input 0-9: %v", unit, err)
		}
		m := f.snapshot(unit)
		if got, want := int16(u16(b, 0)), x10(m.Temperature); got != want {
			t.Errorf("unit %d: temperature_x10 %d, want %d", unit, got, want)
		}
		if got, want := u16(b, 1), uint16(math.Round(float64(m.Pressure)*100)); got != want {
			t.Errorf("unit %d: pressure_x100 %d, want %d", unit, got, want)
		}
		if got := u32(b, 2); got != m.Tick {
			t.Errorf("unit %d: tick %d, want %d", unit, got, m.Tick)
		}
		for i := 4; i < 10; i++ {
			if v := u16(b, i); v != 0 {
				t.Errorf("unit %d: input %d = %d, want 0", unit, i, v)
			}
		}
	}
}

// TestServer_Bits_Goburrow steps the line until each state shows up on some machine and checks
// the coils and discrete inputs against it.
func TestServer_Bits_Goburrow(t *testing.T) {
	f := start(t, line.Config{Seed: 8, MTBF: 5 * time.Minute, LotSize: 50, MaintenanceInterval: 20 * time.Minute}, simmodbus.Options{})
	clients := map[int]func() ([]byte, []byte, error){}
	for unit := 1; unit <= 3; unit++ {
		c, _ := f.client(t, byte(unit))
		clients[unit] = func() ([]byte, []byte, error) {
			coils, err := c.ReadCoils(0, 16)
			if err != nil {
				return nil, nil, err
			}
			di, err := c.ReadDiscreteInputs(0, 16)
			return coils, di, err
		}
	}
	states := []line.State{line.Running, line.Idle, line.Blocked, line.Down, line.Setup, line.Maintenance}
	for _, want := range states {
		unit := 0
		for range 200_000 {
			f.step(1)
			for u := 1; u <= 3; u++ {
				if f.snapshot(u).State == want {
					unit = u
				}
			}
			if unit != 0 {
				break
			}
		}
		if unit == 0 {
			t.Fatalf("no machine %v within 200000 ticks", want)
		}
		coils, di, err := clients[unit]()
		if err != nil {
			t.Fatalf("unit %d: %v", unit, err)
		}
		if len(coils) != 2 || len(di) != 2 {
			t.Fatalf("unit %d: got %d coil bytes and %d discrete bytes, want 2 and 2", unit, len(coils), len(di))
		}
		gotCoils := []bool{bitAt(coils, 0), bitAt(coils, 1), bitAt(coils, 2)}
		wantCoils := []bool{want == line.Running, want == line.Down, want == line.Setup}
		gotDI := []bool{bitAt(di, 0), bitAt(di, 1), bitAt(di, 2), bitAt(di, 3)}
		wantDI := []bool{want == line.Running, want == line.Down, want == line.Blocked, want == line.Idle}
		if diff := cmp.Diff(wantCoils, gotCoils); diff != "" {
			t.Errorf("%v on unit %d: coils 0-2 (-want +got):\n%s", want, unit, diff)
		}
		if diff := cmp.Diff(wantDI, gotDI); diff != "" {
			t.Errorf("%v on unit %d: discrete inputs 0-3 (-want +got):\n%s", want, unit, diff)
		}
		if coils[0]&^0b111 != 0 || coils[1] != 0 || di[0]&^0b1111 != 0 || di[1] != 0 {
			t.Errorf("%v on unit %d: spare bits set: coils %08b, discrete %08b", want, unit, coils, di)
		}
	}
}

func TestServer_Exceptions_Goburrow(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	c1, _ := f.client(t, 1)
	c9, _ := f.client(t, 9)
	c0, _ := f.client(t, 0)
	tests := []struct {
		name string
		call func() ([]byte, error)
		fc   byte
		want simmodbus.Exception
	}{
		{"write single register", func() ([]byte, error) { return c1.WriteSingleRegister(0, 1) }, 6, simmodbus.IllegalFunction},
		{"write single coil", func() ([]byte, error) { return c1.WriteSingleCoil(0, 0xFF00) }, 5, simmodbus.IllegalFunction},
		{"write multiple registers", func() ([]byte, error) { return c1.WriteMultipleRegisters(0, 1, []byte{0, 1}) }, 16, simmodbus.IllegalFunction},
		{"write multiple coils", func() ([]byte, error) { return c1.WriteMultipleCoils(0, 1, []byte{1}) }, 15, simmodbus.IllegalFunction},
		{"read fifo", func() ([]byte, error) { return c1.ReadFIFOQueue(0) }, 24, simmodbus.IllegalFunction},
		{"holding at 100", func() ([]byte, error) { return c1.ReadHoldingRegisters(100, 1) }, 3, simmodbus.IllegalDataAddress},
		{"holding 99-100", func() ([]byte, error) { return c1.ReadHoldingRegisters(99, 2) }, 3, simmodbus.IllegalDataAddress},
		{"holding at 65535", func() ([]byte, error) { return c1.ReadHoldingRegisters(65535, 125) }, 3, simmodbus.IllegalDataAddress},
		{"input at 10", func() ([]byte, error) { return c1.ReadInputRegisters(10, 1) }, 4, simmodbus.IllegalDataAddress},
		{"input 0-10", func() ([]byte, error) { return c1.ReadInputRegisters(0, 11) }, 4, simmodbus.IllegalDataAddress},
		{"coil 16", func() ([]byte, error) { return c1.ReadCoils(16, 1) }, 1, simmodbus.IllegalDataAddress},
		{"discrete 15-16", func() ([]byte, error) { return c1.ReadDiscreteInputs(15, 2) }, 2, simmodbus.IllegalDataAddress},
		{"unknown unit 9", func() ([]byte, error) { return c9.ReadHoldingRegisters(0, 1) }, 3, simmodbus.GatewayTargetFailed},
		{"unit 0", func() ([]byte, error) { return c0.ReadCoils(0, 1) }, 1, simmodbus.GatewayTargetFailed},
		{"write to unknown unit", func() ([]byte, error) { return c9.WriteSingleRegister(0, 1) }, 6, simmodbus.GatewayTargetFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.call()
			if got := exceptionCode(t, err, tt.fc); got != byte(tt.want) {
				t.Errorf("got exception %d, want %d", got, tt.want)
			}
		})
	}
	// The connection survives exceptions.
	if _, err := c1.ReadHoldingRegisters(0, 1); err != nil {
		t.Errorf("read after exceptions: %v", err)
	}
}

func TestServer_SetUnitException(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	c1, _ := f.client(t, 1)
	c2, _ := f.client(t, 2)
	f.srv.SetUnitException(2, simmodbus.ServerDeviceFailure)
	if _, err := c2.ReadHoldingRegisters(0, 2); exceptionCode(t, err, 3) != 4 {
		t.Errorf("unit 2: got %v, want exception 4", err)
	}
	if _, err := c1.ReadHoldingRegisters(0, 2); err != nil {
		t.Errorf("unit 1 while unit 2 fails: %v", err)
	}
	f.srv.SetUnitException(2, 0)
	if _, err := c2.ReadHoldingRegisters(0, 2); err != nil {
		t.Errorf("unit 2 after clearing: %v", err)
	}
}

func TestServer_SetUnitDelay(t *testing.T) {
	const delay = time.Second
	f := start(t, line.Config{}, simmodbus.Options{})
	c1, _ := f.client(t, 1)
	c2, _ := f.client(t, 2)
	f.srv.SetUnitDelay(1, delay)

	var wg sync.WaitGroup
	var slow time.Duration
	var slowErr error
	wg.Go(func() {
		begin := time.Now()
		_, slowErr = c1.ReadHoldingRegisters(0, 1)
		slow = time.Since(begin)
	})
	// Another connection is not held up by the delayed one.
	begin := time.Now()
	if _, err := c2.ReadHoldingRegisters(0, 1); err != nil {
		t.Errorf("unit 2: %v", err)
	}
	if fast := time.Since(begin); fast >= delay {
		t.Errorf("unit 2 answered after %v, want it not delayed by unit 1's %v", fast, delay)
	}
	wg.Wait()
	if slowErr != nil || slow < delay {
		t.Errorf("unit 1 answered after %v (err %v), want at least %v", slow, slowErr, delay)
	}

	f.srv.SetUnitDelay(1, 0)
	f.srv.SetDelay(delay)
	begin = time.Now()
	if _, err := c2.ReadHoldingRegisters(0, 1); err != nil || time.Since(begin) < delay {
		t.Errorf("unit 2 with SetDelay: %v after %v, want at least %v", err, time.Since(begin), delay)
	}
	f.srv.SetDelay(0)
}

func TestServer_DropConnections(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	c, h := f.client(t, 1)
	if _, err := c.ReadHoldingRegisters(0, 1); err != nil {
		t.Fatal(err)
	}
	f.srv.DropConnections()
	waitFor(t, 5*time.Second, func() error {
		if n := f.srv.Connections(); n != 0 {
			return fmt.Errorf("%d connections after the drop, want 0", n)
		}
		return nil
	})
	if _, err := c.ReadHoldingRegisters(0, 1); err == nil {
		t.Fatal("read on a dropped connection succeeded")
	}
	// goburrow keeps the dead socket until Close; then it dials again.
	h.Close()
	if _, err := c.ReadHoldingRegisters(0, 1); err != nil {
		t.Fatalf("read after reconnecting: %v", err)
	}
}

// TestServer_DropConnections_DuringDelay drops a connection whose request waits out a delay: the
// request is never answered and the connection's goroutine ends at once, not when the delay does.
func TestServer_DropConnections_DuringDelay(t *testing.T) {
	var mu sync.Mutex
	var reqs []simmodbus.Request
	f := start(t, line.Config{}, simmodbus.Options{OnRequest: func(r simmodbus.Request) {
		mu.Lock()
		reqs = append(reqs, r)
		mu.Unlock()
	}})
	f.srv.SetUnitDelay(1, time.Hour)
	conn := dial(t, f.addr)
	// Pipelined in one write: unit 2 is answered at once, then unit 1 waits for an hour.
	send(t, conn, append(frame(1, 2, 3, 0, 1), frame(2, 1, 3, 0, 1)...))
	if got := readFrame(t, conn); got.txid != 1 {
		t.Fatalf("first answer has transaction id %d, want 1", got.txid)
	}
	waitFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(reqs) != 1 {
			return fmt.Errorf("observed %d requests, want 1", len(reqs))
		}
		return nil
	})
	f.srv.DropConnections()
	waitFor(t, 5*time.Second, func() error {
		if n := f.srv.Connections(); n != 0 {
			return fmt.Errorf("%d connections after the drop, want 0", n)
		}
		return nil
	})
	expectClosed(t, conn)
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 1 {
		t.Errorf("observed %d requests, want only the undelayed one", len(reqs))
	}
}

func TestServer_SetRefuse(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	old, _ := f.client(t, 1)
	if _, err := old.ReadHoldingRegisters(0, 1); err != nil {
		t.Fatal(err)
	}
	f.srv.SetRefuse(true)
	fresh, _ := f.client(t, 1)
	if _, err := fresh.ReadHoldingRegisters(0, 1); err == nil {
		t.Error("new connection served while refusing")
	}
	if _, err := old.ReadHoldingRegisters(0, 1); err != nil {
		t.Errorf("existing connection while refusing: %v", err)
	}
	f.srv.SetRefuse(false)
	again, _ := f.client(t, 1)
	if _, err := again.ReadHoldingRegisters(0, 1); err != nil {
		t.Errorf("new connection after refusing: %v", err)
	}
}

func TestServer_OnRequest(t *testing.T) {
	var mu sync.Mutex
	var reqs []simmodbus.Request
	f := start(t, line.Config{}, simmodbus.Options{OnRequest: func(r simmodbus.Request) {
		mu.Lock()
		reqs = append(reqs, r)
		mu.Unlock()
	}})
	f.step(100)
	c, _ := f.client(t, 2)
	before := time.Now()
	b, err := c.ReadHoldingRegisters(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if _, err := c.ReadCoils(0, 3); err != nil {
		t.Fatal(err)
	}
	_, _ = c.ReadInputRegisters(10, 1)
	// The observer runs after the write, so the client may see the answer first.
	waitFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(reqs) != 3 {
			return fmt.Errorf("observed %d requests, want 3", len(reqs))
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if reqs[0].At.Before(before) || reqs[0].At.After(after) {
		t.Errorf("At %v outside the call %v..%v", reqs[0].At, before, after)
	}
	got := reqs
	for i := range got {
		got[i].At = time.Time{}
	}
	m := f.snapshot(2)
	coils := make([]uint16, 3)
	coils[0] = map[bool]uint16{true: 1}[m.State == line.Running]
	coils[1] = map[bool]uint16{true: 1}[m.State == line.Down]
	coils[2] = map[bool]uint16{true: 1}[m.State == line.Setup]
	want := []simmodbus.Request{
		{Unit: 2, Function: 3, Address: 1, Quantity: 2, Values: []uint16{u16(b, 0), u16(b, 1)}},
		{Unit: 2, Function: 1, Address: 0, Quantity: 3, Values: coils},
		{Unit: 2, Function: 4, Address: 10, Quantity: 1, Exception: simmodbus.IllegalDataAddress},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("observed requests (-want +got):\n%s", diff)
	}
	if tick := uint32(reqs[0].Values[0])<<16 | uint32(reqs[0].Values[1]); tick != m.Tick {
		t.Errorf("observed tick %d, want %d", tick, m.Tick)
	}
}

func TestNew_NoSource(t *testing.T) {
	if _, err := simmodbus.New(simmodbus.Options{}); err == nil {
		t.Error("New without a source succeeded")
	}
}

// BenchmarkServer_TCP_Goburrow is one client polling over loopback: the round trip a driver sees.
func BenchmarkServer_TCP_Goburrow(b *testing.B) {
	for _, regs := range []uint16{20, 100} {
		b.Run(fmt.Sprintf("regs=%d", regs), func(b *testing.B) {
			f := start(b, line.Config{}, simmodbus.Options{})
			c, _ := f.client(b, 1)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.ReadHoldingRegisters(0, regs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
