package modbus

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goburrow/serial"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/drivers"
	"github.com/floorlink/floorlink/simulators/simtest"
)

// Tests of issue 5's acceptance against plcsim, each over Modbus TCP (a real loopback socket)
// and Modbus RTU (a real pseudo-terminal, paced at 115200 baud by the simulator).

// simTransports are the two ways to reach a simtest.Sim started with Options.RTU.
var simTransports = []string{ProtocolTCP, ProtocolRTU}

// simUnit is a device for unit on sim over protocol.
func simUnit(sim *simtest.Sim, protocol string, unit uint8, tags ...drivers.Tag) drivers.Device {
	dev := drivers.Device{
		Name: fmt.Sprintf("machine-%d", unit), Protocol: protocol, Address: sim.ModbusAddr(), UnitID: unit,
		PollInterval: 20 * time.Millisecond, Timeout: 5 * time.Second, Tags: tags,
	}
	if protocol == ProtocolRTU {
		dev.Address = sim.RTUPath()
		dev.Modbus.Serial = drivers.Serial{Baud: 115200}
	}
	return dev
}

// layoutTag is the tag reading l, and the value it must read on unit at tick.
func layoutTag(l simtest.Layout, unit byte, tick uint32) (drivers.Tag, drivers.Value) {
	tg := drivers.Tag{Name: l.Name, Address: fmt.Sprintf("ir:%d", l.Address), Type: drivers.DataType(l.Type), ByteOrder: string(l.Order)}
	switch l.Type {
	case "bit":
		tg.Type, tg.Address = drivers.TypeBool, fmt.Sprintf("ir:%d.%d", l.Address, l.Bit)
	case "int16", "uint16", "bcd16":
		// One register has no word order: the simulator's ABCD and CDAB are AB, BADC and DCBA
		// are BA.
		tg.ByteOrder = "AB"
		if l.Order == "BADC" || l.Order == "DCBA" {
			tg.ByteOrder = "BA"
		}
	case "string":
		tg.Length = l.Registers
	}
	var want drivers.Value
	switch v := l.ValueAt(unit, tick).(type) {
	case int16:
		want = drivers.IntValue(int64(v))
	case int32:
		want = drivers.IntValue(int64(v))
	case int64:
		want = drivers.IntValue(v)
	case uint16:
		want = drivers.UintValue(uint64(v))
	case uint32:
		want = drivers.UintValue(uint64(v))
	case uint64:
		want = drivers.UintValue(v)
	case float32:
		want = drivers.FloatValue(float64(v))
	case float64:
		want = drivers.FloatValue(v)
	case string:
		want = drivers.StringValue(v)
	case bool:
		want = drivers.BoolValue(v)
	default:
		panic(fmt.Sprintf("layout %s: value %T", l.Name, v))
	}
	return tg, want
}

func layoutTags(unit byte, tick uint32) ([]drivers.Tag, []drivers.Value) {
	var tags []drivers.Tag
	var want []drivers.Value
	for _, l := range simtest.Layouts() {
		tg, v := layoutTag(l, unit, tick)
		tags, want = append(tags, tg), append(want, v)
	}
	return tags, want
}

// TestIssue5_Layout reads plcsim's whole layout block (every type in every byte order: negative
// numbers, extremes, NaN and infinities, text, BCD, bits) over TCP and RTU, at ticks just before
// and just after each counter rolls over: counter16 from tick 65 to 66, counter32 from 85 to 86.
func TestIssue5_Layout(t *testing.T) {
	for _, protocol := range simTransports {
		t.Run(protocol, func(t *testing.T) {
			sim := simtest.Start(t, simtest.Options{Manual: true, RTU: true})
			sim.Advance(65) // counter16 is 65,000; one tick more and it wraps
			const unit = 2
			tags, _ := layoutTags(unit, uint32(sim.Tick()))
			r := startDriver(t, simUnit(sim, protocol, unit, tags...), Options{})
			var lastC16, lastC32 uint64
			for _, tick := range []uint32{65, 66, 85, 86} {
				sim.Advance(int(tick) - int(sim.Tick()))
				_, want := layoutTags(unit, tick)
				// A poll may straddle Advance; the next one after a batch with the new tick is
				// entirely after it.
				r.waitBatch(t, fmt.Sprintf("tick %d", tick), func(b drivers.Batch) bool {
					return b.Samples[1].Value == drivers.UintValue(uint64(tick))
				})
				b := r.waitBatch(t, "the next batch", func(drivers.Batch) bool { return true })
				checkLayout(t, b, want)
				c16, c32 := b.Samples[2].Value.Uint(), b.Samples[3].Value.Uint()
				t.Logf("tick %d: counter16 %d, counter32 %d", tick, c16, c32)
				if tick == 66 && c16 >= lastC16 {
					t.Errorf("counter16 did not roll over: %d then %d", lastC16, c16)
				}
				if tick == 86 && c32 >= lastC32 {
					t.Errorf("counter32 did not roll over: %d then %d", lastC32, c32)
				}
				lastC16, lastC32 = c16, c32
			}
			if got := countReads(r.d); got != 3 {
				t.Errorf("%d reads for the 350-register block, want 3", got)
			}
		})
	}
}

// TestIssue5_Layout_Cover: the plcsim block that TestIssue5_Layout reads holds every type of
// Types() in every byte order the driver accepts for it, a negative number and the minimum of
// every signed type, NaN and both infinities in both float types.
func TestIssue5_Layout_Cover(t *testing.T) {
	seen := map[string]bool{}
	values := map[string]bool{} // "float32 nan", "int16 negative", ...
	for _, l := range simtest.Layouts() {
		tg, _ := layoutTag(l, 1, 0)
		order := tg.ByteOrder
		if tg.Type == drivers.TypeBool {
			order = ""
		}
		seen[string(tg.Type)+"/"+order] = true
		switch v := l.Value.(type) {
		case int16:
			markInt(values, string(l.Type), int64(v), math.MinInt16)
		case int32:
			markInt(values, string(l.Type), int64(v), math.MinInt32)
		case int64:
			markInt(values, string(l.Type), v, math.MinInt64)
		case float32:
			markFloat(values, string(l.Type), float64(v))
		case float64:
			markFloat(values, string(l.Type), v)
		}
	}
	for _, typ := range Types() {
		var orders []string
		switch typ {
		case drivers.TypeBool:
			orders = []string{""}
		case drivers.TypeInt16, drivers.TypeUint16, drivers.TypeBCD16, drivers.TypeString:
			orders = []string{"AB", "BA"}
		default:
			orders = []string{"ABCD", "CDAB", "BADC", "DCBA"}
		}
		for _, o := range orders {
			k := string(typ) + "/" + o
			if !seen[k] {
				t.Errorf("plcsim's layout block has no %s in %q", typ, o)
			}
		}
	}
	for _, typ := range []string{"int16", "int32", "int64"} {
		for _, what := range []string{"negative", "min"} {
			if !values[typ+" "+what] {
				t.Errorf("plcsim's layout block has no %s %s", typ, what)
			}
		}
	}
	for _, typ := range []string{"float32", "float64"} {
		for _, what := range []string{"negative", "nan", "+inf", "-inf"} {
			if !values[typ+" "+what] {
				t.Errorf("plcsim's layout block has no %s %s", typ, what)
			}
		}
	}
}

func markInt(values map[string]bool, typ string, v, minimum int64) {
	if v < 0 {
		values[typ+" negative"] = true
	}
	if v == minimum {
		values[typ+" min"] = true
	}
}

func markFloat(values map[string]bool, typ string, v float64) {
	switch {
	case math.IsNaN(v):
		values[typ+" nan"] = true
	case math.IsInf(v, 1):
		values[typ+" +inf"] = true
	case math.IsInf(v, -1):
		values[typ+" -inf"] = true
	case v < 0:
		values[typ+" negative"] = true
	}
}

// TestIssue5_ExceptionIsolation_Sim: plcsim answers exception 2 for any read covering one of 3
// registers inside a block of 100 (its extra registers): every other tag arrives good at every
// poll, the 3 carry the exception.
func TestIssue5_ExceptionIsolation_Sim(t *testing.T) {
	for _, protocol := range simTransports {
		t.Run(protocol, func(t *testing.T) {
			sim := simtest.Start(t, simtest.Options{Manual: true, RTU: true, Line: simtest.LineConfig{ExtraValues: 100}})
			bad := map[int]bool{17: true, 50: true, 83: true}
			var list []simtest.AddressException
			for i := range bad {
				a := uint16(simtest.HoldingExtra + i)
				list = append(list, simtest.AddressException{Unit: 1, Table: simtest.HoldingRegisters, First: a, Last: a, Code: simtest.IllegalDataAddress})
			}
			sim.SetAddressExceptions(list...)
			var tags []drivers.Tag
			for i := range 100 {
				tags = append(tags, tag(fmt.Sprintf("x%d", i), fmt.Sprintf("hr:%d", simtest.HoldingExtra+i), drivers.TypeUint16, ""))
			}
			r := startDriver(t, simUnit(sim, protocol, 1, tags...), Options{})
			tick := uint32(sim.Tick())
			for k, b := range r.waitBatches(t, 6) {
				for i, smp := range b.Samples {
					if bad[i] {
						if smp.Quality != drivers.QualityBad || smp.Reason != "exception 2" {
							t.Fatalf("batch %d: x%d = %+v, want exception 2", k, i, smp)
						}
						continue
					}
					if want := drivers.UintValue(uint64(i%256)<<8 | uint64(tick%256)); smp.Quality != drivers.QualityGood || smp.Value != want {
						t.Fatalf("batch %d: x%d = %+v, want good %v", k, i, smp, want)
					}
				}
			}
			r.waitEvents(t, drivers.EventConnected, drivers.EventFault)
		})
	}
}

// TestIssue5_LateAnswers: unit 1 answers late (after the driver's timeout) for a while, into
// the same stream, then on time again; unit 2 shares the connection. A sample never holds
// another read's value: unit 1's tags x and y (same unit, same function, same quantity, other
// registers) and unit 2's read their own registers and their own unit id, over TCP and RTU,
// with whole and fragmented answers.
func TestIssue5_LateAnswers(t *testing.T) {
	for _, protocol := range simTransports {
		for _, fragmented := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fragmented=%v", protocol, fragmented), func(t *testing.T) {
				sim := simtest.Start(t, simtest.Options{Manual: true, RTU: true, Line: simtest.LineConfig{ExtraValues: 200}})
				if fragmented {
					sim.SetFragments(simtest.Fragments{Gap: 20 * time.Millisecond})
				}
				var devs []drivers.Device
				for unit := uint8(1); unit <= 2; unit++ {
					d := simUnit(sim, protocol, unit,
						tag("uid", fmt.Sprintf("ir:%d", simtest.LayoutFirst), drivers.TypeUint16, ""),
						tag("x", fmt.Sprintf("hr:%d", simtest.HoldingExtra+10), drivers.TypeUint16, ""),
						tag("y", fmt.Sprintf("hr:%d", simtest.HoldingExtra+150), drivers.TypeUint16, ""))
					d.Timeout = 500 * time.Millisecond
					devs = append(devs, d)
				}
				r := startBus(t, devs, Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
				r.waitBatch(t, "good", allGood)
				sim.SetUnitLate(1, 800*time.Millisecond)
				<-time.After(2 * time.Second) // the late phase, not a wait for a result
				sim.SetUnitLate(1, 0)
				r.waitBatch(t, "machine-1 good again", func(b drivers.Batch) bool { return b.Device == "machine-1" && allGood(b) })
				n := len(r.waitBatches(t, 1))
				r.waitBatches(t, n+10)

				batches, _ := r.rec.snapshot()
				tick := uint64(sim.Tick() % 256)
				late := 0
				for i, b := range batches {
					unit := uint64(1)
					if b.Device == "machine-2" {
						unit = 2
					}
					want := []drivers.Value{drivers.UintValue(unit), drivers.UintValue(10<<8 | tick), drivers.UintValue(150<<8 | tick)}
					for k, smp := range b.Samples {
						if smp.Quality == drivers.QualityGood && smp.Value != want[k] {
							t.Errorf("batch %d of %s: %s = %v, want %v: another read's answer", i, b.Device, devs[0].Tags[k].Name, smp.Value, want[k])
						}
					}
					if b.Device == "machine-1" && b.Samples[0].Reason == reasonTimeout {
						late++
					}
				}
				if late == 0 {
					t.Error("no poll of machine-1 timed out: the late answers were not late")
				}
				t.Logf("%d batches, %d of machine-1 timed out", len(batches), late)
			})
		}
	}
}

// TestIssue5_Cancel: cancelling while a request waits on a silent unit returns within 1 s
// (the request timeout is a minute), over TCP and RTU. BenchmarkIssue5_Cancel has the real
// figure.
func TestIssue5_Cancel(t *testing.T) {
	for _, protocol := range simTransports {
		t.Run(protocol, func(t *testing.T) {
			sim := simtest.Start(t, simtest.Options{Manual: true, RTU: true})
			sim.SetUnitSilent(1, true)
			dev := simUnit(sim, protocol, 1, tag("state", "40001", drivers.TypeUint16, ""))
			dev.Timeout = time.Minute
			d, err := New([]drivers.Device{dev}, Options{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			sent := signalWait(d)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx, &recorder{}) }()
			select {
			case <-sent:
			case <-time.After(10 * time.Second):
				t.Fatal("no request sent and waiting within 10s")
			}
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				el := time.Since(start)
				t.Logf("Run returned %v after cancel", el)
				if err != nil || el > time.Second {
					t.Errorf("Run returned %v after %v, want nil within 1s", err, el)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run still blocked 10s after cancel")
			}
		})
	}
}

// TestIssue5_SilentUnit_Sim: on plcsim's RTU bus, machine 2 goes silent: machines 1 and 3 keep
// arriving good at every poll. (What the silent one costs the others, exactly one timeout and
// the resynchronisation per poll, is TestDriver_RTU_Synctest_SilentUnitCost's, in fake time.)
func TestIssue5_SilentUnit_Sim(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Manual: true, RTU: true})
	sim.SetUnitSilent(2, true)
	var devs []drivers.Device
	for unit := uint8(1); unit <= 3; unit++ {
		d := simUnit(sim, ProtocolRTU, unit, tag("state", "40001", drivers.TypeUint16, ""),
			tag("uid", fmt.Sprintf("ir:%d", simtest.LayoutFirst), drivers.TypeUint16, ""), tag("running", "00001", drivers.TypeBool, ""))
		d.PollInterval = 500 * time.Millisecond
		if unit == 2 {
			d.Timeout = 100 * time.Millisecond // the others keep 5s: time to spare on a loaded machine
		}
		devs = append(devs, d)
	}
	r := startBus(t, devs, Options{})
	batches := r.waitBatches(t, 15)
	for _, b := range batches {
		switch b.Device {
		case "machine-2":
			if !allBad(reasonTimeout)(b) {
				t.Errorf("machine-2: %+v", b.Samples)
			}
		default:
			if !allGood(b) {
				t.Errorf("%s: %+v", b.Device, b.Samples)
			}
		}
	}
	_, ev := r.rec.snapshot()
	kinds := map[string][]drivers.EventKind{}
	for _, e := range ev {
		kinds[e.Device] = append(kinds[e.Device], e.Kind)
	}
	want := map[string][]drivers.EventKind{"machine-1": {drivers.EventConnected}, "machine-2": {drivers.EventDisconnected}, "machine-3": {drivers.EventConnected}}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// BenchmarkRTU_Sim reads 10 or 125 input registers per op from plcsim over its pty, paced at 115200
// baud 8N1, and reports requests/s and the wire-time limit (request and answer at the wire
// speed, each followed by the 3.5-character silence, 1.75 ms above 19200 baud: what a real
// line allows back to back).
func BenchmarkRTU_Sim(b *testing.B) {
	for _, regs := range []int{10, 125} {
		b.Run(fmt.Sprintf("registers=%d", regs), func(b *testing.B) {
			sim := simtest.Start(b, simtest.Options{Manual: true, RTU: true})
			var tags []drivers.Tag
			for i := range regs {
				tags = append(tags, tag(fmt.Sprintf("r%d", i), fmt.Sprintf("ir:%d", simtest.LayoutFirst+i), drivers.TypeUint16, ""))
			}
			d, err := New([]drivers.Device{simUnit(sim, ProtocolRTU, 1, tags...)}, Options{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			s := d.newSession(b.Context(), &discardSink{})
			defer s.t.release()
			g := d.groups[0]
			if !s.poll(g) || !allGood(g.batch) {
				b.Fatalf("first poll: %+v", g.batch.Samples)
			}
			for b.Loop() {
				if !s.poll(g) {
					b.Fatal("poll failed")
				}
			}
			// One request after another: the request, the silence that ends it, the answer and
			// the silence that ends it, before the next request may start.
			wire := simtest.RTUOptions{}.WireTime(8, 5+2*regs) + simtest.RTUOptions{}.WireTime(0, 0)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(float64(time.Second)/float64(wire), "wire-limit-req/s")
		})
	}
}

// writeSignal is a connection that closes waiting when it is first read after a write: the
// request is out and the driver is reading (or about to block reading) its answer.
type writeSignal struct {
	io.ReadWriteCloser
	waiting chan struct{}
	wrote   atomic.Bool
	once    sync.Once
}

func (w *writeSignal) Write(p []byte) (int, error) {
	n, err := w.ReadWriteCloser.Write(p)
	w.wrote.Store(true)
	return n, err
}

func (w *writeSignal) Read(p []byte) (int, error) {
	if w.wrote.Load() {
		w.once.Do(func() { close(w.waiting) })
	}
	return w.ReadWriteCloser.Read(p)
}

type connSignal struct {
	net.Conn
	w *writeSignal
}

func (c connSignal) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c connSignal) Read(p []byte) (int, error)  { return c.w.Read(p) }

// signalWait makes d's next connection (TCP or serial) close the returned channel when the
// driver starts reading the answer to its first request.
func signalWait(d *Driver) <-chan struct{} {
	sent := make(chan struct{})
	dial, open := d.dial, d.open
	d.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := dial(ctx, network, address)
		if err != nil {
			return nil, err
		}
		return connSignal{c, &writeSignal{ReadWriteCloser: c, waiting: sent}}, nil
	}
	d.open = func(cfg *serial.Config) (io.ReadWriteCloser, error) {
		p, err := open(cfg)
		if err != nil {
			return nil, err
		}
		return &writeSignal{ReadWriteCloser: p, waiting: sent}, nil
	}
	return sent
}

// BenchmarkIssue5_Cancel is the real figure behind TestIssue5_Cancel's 1 s bound: per op, the
// driver is started on a unit of plcsim that never answers (a request timeout of a minute), its
// request goes out (the op waits until the driver reads for the answer), and the time from
// cancelling Run's context to Run's return is the op's ns/op; over TCP and over the pty at
// 115200 baud (where the port is polled in 1 ms slices).
func BenchmarkIssue5_Cancel(b *testing.B) {
	for _, protocol := range simTransports {
		b.Run("protocol="+protocol, func(b *testing.B) {
			sim := simtest.Start(b, simtest.Options{Manual: true, RTU: true})
			sim.SetUnitSilent(1, true)
			dev := simUnit(sim, protocol, 1, tag("state", "40001", drivers.TypeUint16, ""))
			dev.Timeout = time.Minute
			var total time.Duration
			for b.Loop() {
				d, err := New([]drivers.Device{dev}, Options{}, nil)
				if err != nil {
					b.Fatal(err)
				}
				sent := signalWait(d)
				ctx, cancel := context.WithCancel(b.Context())
				done := make(chan error, 1)
				go func() { done <- d.Run(ctx, &discardSink{}) }()
				select {
				case <-sent:
				case <-time.After(10 * time.Second):
					b.Fatal("no request sent and waiting within 10s")
				}
				start := time.Now()
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
		})
	}
}
