package modbus

import (
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/drivers"
	"github.com/floorlink/floorlink/simulators/simtest"
)

// simDevice is the whole register map of simulators/README.md for machine (unit) k.
func simDevice(addr string, unit uint8) drivers.Device {
	dev := tcpDevice(addr,
		tag("state", "40001", drivers.TypeUint16, ""),
		tag("tick", "40002", drivers.TypeUint32, "ABCD"),
		tag("parts_total", "hr:3", drivers.TypeUint32, ""),
		tag("good_total", "hr:5", drivers.TypeUint32, ""),
		tag("reject_total", "hr:7", drivers.TypeUint32, ""),
		tag("parts_total_16", "40010", drivers.TypeUint16, ""),
		tag("temperature", "40011", drivers.TypeFloat32, "ABCD"),
		tag("pressure", "hr:12", drivers.TypeFloat32, "CDAB"),
		tag("cycle_time_ms", "hr:14", drivers.TypeUint16, ""),
		tag("ideal_cycle_time_ms", "hr:15", drivers.TypeUint16, ""),
		tag("alarm_code", "hr:16", drivers.TypeUint16, ""),
		tag("spindle_speed", "400018", drivers.TypeInt32, ""),
		tag("temperature_x10", "hr:19", drivers.TypeInt16, ""),
		tag("in_temperature_x10", "30001", drivers.TypeInt16, ""),
		tag("in_pressure_x100", "ir:1", drivers.TypeUint16, ""),
		tag("in_tick", "ir:2", drivers.TypeUint32, ""),
		tag("coil_running", "00001", drivers.TypeBool, ""),
		tag("coil_down", "co:1", drivers.TypeBool, ""),
		tag("coil_setup", "co:2", drivers.TypeBool, ""),
		tag("di_running", "10001", drivers.TypeBool, ""),
		tag("di_down", "di:1", drivers.TypeBool, ""),
		tag("di_blocked", "di:2", drivers.TypeBool, ""),
		tag("di_idle", "di:3", drivers.TypeBool, ""),
	)
	dev.Name = fmt.Sprintf("machine-%d", unit)
	dev.UnitID = unit
	return dev
}

// simExpected is what the driver must read for m, in simDevice's tag order.
func simExpected(m simtest.Machine) []drivers.Sample {
	u := func(v uint64) drivers.Value { return drivers.UintValue(v) }
	vals := []drivers.Value{
		u(uint64(m.State)),
		u(uint64(m.Tick)),
		u(uint64(m.PartsTotal)),
		u(uint64(m.GoodTotal)),
		u(uint64(m.RejectTotal)),
		u(uint64(uint16(m.PartsTotal))),
		drivers.FloatValue(float64(m.Temperature)),
		drivers.FloatValue(float64(m.Pressure)),
		u(uint64(m.CycleTimeMs)),
		u(uint64(m.IdealCycleTimeMs)),
		u(uint64(m.AlarmCode)),
		drivers.IntValue(int64(m.SpindleSpeed)),
		drivers.IntValue(int64(math.Round(float64(m.Temperature) * 10))),
		drivers.IntValue(int64(math.Round(float64(m.Temperature) * 10))),
		u(uint64(math.Round(float64(m.Pressure) * 100))),
		u(uint64(m.Tick)),
		drivers.BoolValue(m.State == simtest.Running),
		drivers.BoolValue(m.State == simtest.Down),
		drivers.BoolValue(m.State == simtest.Setup),
		drivers.BoolValue(m.State == simtest.Running),
		drivers.BoolValue(m.State == simtest.Down),
		drivers.BoolValue(m.State == simtest.Blocked),
		drivers.BoolValue(m.State == simtest.Idle),
	}
	out := make([]drivers.Sample, len(vals))
	for i, v := range vals {
		out[i] = drivers.Sample{Tag: i, Value: v}
	}
	return out
}

// TestDriver_Simulator reads plcsim's whole register map for every machine through the driver
// and compares it with the line's own state, with the line stepped by hand so that both sides
// see the same tick.
func TestDriver_Simulator(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Manual: true})
	sim.Advance(36000) // an hour of line time: parts, rejects, warm machines, perhaps a failure

	runs := make([]*running, sim.Machines())
	for k := 1; k <= sim.Machines(); k++ {
		runs[k-1] = startDriver(t, simDevice(sim.ModbusAddr(), uint8(k)), Options{})
	}
	tickOf := func(b drivers.Batch) uint32 { return uint32(b.Samples[1].Value.Uint()) }

	for step := 0; step < 3; step++ {
		for k, r := range runs {
			m := sim.Current(k + 1)
			// A cycle reads coils, discrete inputs, input and holding registers in turn, so the
			// first batch with the new tick may hold coils read before Advance; the batch after
			// it was read entirely after.
			r.waitBatch(t, fmt.Sprintf("tick %d", m.Tick), func(b drivers.Batch) bool {
				return allGood(b) && tickOf(b) == m.Tick
			})
			b := r.waitBatch(t, "the next batch", func(drivers.Batch) bool { return true })
			if diff := cmp.Diff(simExpected(m), b.Samples, cmp.AllowUnexported(drivers.Value{})); diff != "" {
				t.Errorf("machine %d at tick %d (-simulator +driver):\n%s", k+1, m.Tick, diff)
			}
			if b.Device != fmt.Sprintf("machine-%d", k+1) {
				t.Errorf("batch device %q", b.Device)
			}
		}
		sim.Advance(1234)
	}
	for _, r := range runs {
		if got := countReads(r.d); got != 4 {
			t.Errorf("planned %d reads, want 4 (coils, discretes, input 0-3, holding 0-19)", got)
		}
		if got := r.rec.kinds(); !cmp.Equal(got, []drivers.EventKind{drivers.EventConnected}) {
			t.Errorf("events %v, want [connected]", got)
		}
	}
}

// TestDriver_Simulator_UnknownUnit: plcsim answers a unit id that is not a machine with
// exception 11 (gateway target failed to respond): the first read reports one fault, the rest
// of the poll is not asked (the gateway would only spend its timeout again), every tag is Bad
// with the exception, and the connection stays up.
func TestDriver_Simulator_UnknownUnit(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Manual: true})
	dev := simDevice(sim.ModbusAddr(), 9)
	dev.PollInterval = 10 * time.Millisecond
	r := startDriver(t, dev, Options{})
	r.waitBatches(t, 3)
	r.waitBatch(t, "exception 11", allBad("exception 11"))
	ev := r.waitEvents(t, drivers.EventConnected, drivers.EventFault)
	if !strings.Contains(ev[1].Err.Error(), `read coils 0-2 on device "machine-9" (unit 9): modbus: exception '11'`) {
		t.Errorf("first fault: %v", ev[1].Err)
	}
	if got := sim.ModbusConnections(); got != 1 {
		t.Errorf("%d connections to the simulator, want 1", got)
	}
}

// TestIssue5_Reconnect: plcsim drops every connection and refuses new ones (accepts and closes
// them at once, as a PLC whose connection slots are full) for 30 s; the driver keeps trying,
// every attempt fails and every poll in the outage is Bad, and it reconnects within its backoff
// cap (1 s here) of the simulator's return, without a restart, with one disconnected and one
// connected event.
func TestIssue5_Reconnect(t *testing.T) {
	t.Parallel()
	sim := simtest.Start(t, simtest.Options{Manual: true})
	dev := simDevice(sim.ModbusAddr(), 1)
	dev.PollInterval = 100 * time.Millisecond
	const (
		maxBackoff = time.Second
		outage     = 30 * time.Second
	)
	var dials atomic.Int64
	r := startDriver(t, dev, Options{MinBackoff: 50 * time.Millisecond, MaxBackoff: maxBackoff}, func(d *Driver) {
		dial := d.dial
		d.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
			dials.Add(1)
			return dial(ctx, network, address)
		}
	})
	r.waitBatch(t, "good", allGood)

	sim.SetRefuse(true)
	sim.DropConnections()
	down := r.waitBatch(t, "unreachable", allBad(reasonUnreachable))
	dials0 := dials.Load()
	<-time.After(outage) // the outage itself, not a wait for a result
	dialsOut := dials.Load() - dials0
	back := time.Now()
	sim.SetRefuse(false)
	b := r.waitBatch(t, "good again", allGood)
	late := b.ReadTime.Sub(back)
	t.Logf("outage %v: %d connection attempts refused; first good poll %v after the simulator's return", outage, dialsOut, late)
	if late > maxBackoff+500*time.Millisecond {
		t.Errorf("reconnected %v after the simulator came back, want within the %v backoff cap", late, maxBackoff)
	}
	// The refusal really lasted: the driver kept dialling at its capped backoff (about one
	// attempt per 0.5-1 s once at the cap) and no poll from the first Bad one until the return
	// read anything.
	if dialsOut < int64(outage/maxBackoff)/2 {
		t.Errorf("%d connection attempts in the %v outage, want at least %d at a %v backoff cap", dialsOut, outage, int64(outage/maxBackoff)/2, maxBackoff)
	}
	batches, _ := r.rec.snapshot()
	inOutage := 0
	for _, ob := range batches {
		if ob.ReadTime.Before(down.ReadTime) || !ob.ReadTime.Before(back) {
			continue
		}
		inOutage++
		if !allBad(reasonUnreachable)(ob) {
			t.Fatalf("a poll at %v, %v into the outage, read %+v: the simulator did not refuse", ob.ReadTime, ob.ReadTime.Sub(down.ReadTime), ob.Samples)
		}
	}
	if inOutage < 10 {
		t.Errorf("%d polls in the outage, want one per connection attempt", inOutage)
	}
	r.waitEvents(t, drivers.EventConnected, drivers.EventDisconnected, drivers.EventConnected)
}
