package modbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/drivers"
)

// running is a driver started by startDriver.
type running struct {
	d      *Driver
	rec    *recorder
	cancel context.CancelFunc
	done   chan error
	seen   int // batches before this index were already examined by waitBatch
}

// startDriver runs a driver for dev on its own goroutine; Cleanup stops it and checks that Run
// returned nil.
func startDriver(t *testing.T, dev drivers.Device, opts Options, setup ...func(d *Driver)) *running {
	t.Helper()
	return startBus(t, []drivers.Device{dev}, opts, setup...)
}

// startBus is startDriver for several devices on one connection.
func startBus(t *testing.T, devs []drivers.Device, opts Options, setup ...func(d *Driver)) *running {
	t.Helper()
	d, err := New(devs, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, rec: &recorder{}, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx, r.rec) }()
	t.Cleanup(func() {
		if err := r.stop(t); err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	})
	return r
}

// stop cancels Run and waits for it, at most 10 s; it is safe to call twice.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after cancel")
		return nil
	}
}

// waitBatches waits until the recorder holds at least n batches.
func (r *running) waitBatches(t *testing.T, n int) []drivers.Batch {
	t.Helper()
	var got []drivers.Batch
	waitFor(t, 10*time.Second, func() error {
		got, _ = r.rec.snapshot()
		if len(got) < n {
			return fmt.Errorf("got %d batches, want %d", len(got), n)
		}
		return nil
	})
	return got
}

// waitBatch waits for a batch satisfying ok, later than the one the previous waitBatch
// returned (so a short-lived state is not missed between two polls), and returns it.
func (r *running) waitBatch(t *testing.T, what string, ok func(b drivers.Batch) bool) drivers.Batch {
	t.Helper()
	var found drivers.Batch
	waitFor(t, 10*time.Second, func() error {
		batches, _ := r.rec.snapshot()
		for i := r.seen; i < len(batches); i++ {
			if ok(batches[i]) {
				found, r.seen = batches[i], i+1
				return nil
			}
		}
		if len(batches) == 0 {
			return fmt.Errorf("no batch with %s; none at all", what)
		}
		return fmt.Errorf("no batch with %s; last: %+v", what, batches[len(batches)-1].Samples)
	})
	return found
}

func (r *running) waitEvents(t *testing.T, want ...drivers.EventKind) []drivers.Event {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		if got := r.rec.kinds(); !cmp.Equal(got, want) {
			return fmt.Errorf("events %v, want %v", got, want)
		}
		return nil
	})
	_, ev := r.rec.snapshot()
	return ev
}

func tcpDevice(addr string, tags ...drivers.Tag) drivers.Device {
	return drivers.Device{
		Name: "press-1", Protocol: "modbus-tcp", Address: addr, UnitID: 1,
		PollInterval: 20 * time.Millisecond, Timeout: 5 * time.Second, Tags: tags,
	}
}

func tag(name, addr string, typ drivers.DataType, order string) drivers.Tag {
	return drivers.Tag{Name: name, Address: addr, Type: typ, ByteOrder: order}
}

// countReads is the number of reads a driver's plan makes per poll of every group.
func countReads(d *Driver) int {
	n := 0
	for _, g := range d.groups {
		n += len(g.reads)
	}
	return n
}

func good(tag int, v drivers.Value) drivers.Sample { return drivers.Sample{Tag: tag, Value: v} }

func bad(tag int, reason string) drivers.Sample {
	return drivers.Sample{Tag: tag, Quality: drivers.QualityBad, Reason: reason}
}

func allGood(b drivers.Batch) bool {
	for _, s := range b.Samples {
		if s.Quality != drivers.QualityGood {
			return false
		}
	}
	return true
}

func allBad(reason string) func(b drivers.Batch) bool {
	return func(b drivers.Batch) bool {
		for _, s := range b.Samples {
			if s.Quality != drivers.QualityBad || s.Reason != reason {
				return false
			}
		}
		return true
	}
}

func TestDriver_Run_ReadsEveryType(t *testing.T) {
	s := startServer(t)
	s.setHolding(0, 7)                 // uint16
	s.setHolding(1, 0x42F6, 0xE979)    // float32 123.456 ABCD
	s.setHolding(3, 0xE979, 0x42F6)    // float32 123.456 CDAB
	s.setHolding(5, 0xFB2E)            // int16 -1234
	s.setHolding(6, 0xFFFF, 0xFFFE)    // int32 -2
	s.setHolding(8, 0x7856, 0x3412)    // uint32 0x12345678 DCBA
	s.setHolding(10, 0x8001)           // bits 0 and 15
	s.setHolding(1000, 0x3412, 0x7856) // uint32 0x12345678 BADC, far away: its own read
	s.setInput(0, 0xCDAB)              // uint16 0xABCD BA
	s.setInput(65534, 0xFFFF, 0xFFFE)  // int32 -2 at the very end
	s.setCoils(0, true, false, false, false, false, false, false, false, false, false, true)
	s.setDiscretes(3, true)

	dev := tcpDevice(s.addr(),
		tag("state", "40001", drivers.TypeUint16, ""),
		tag("temp", "hr:1", drivers.TypeFloat32, ""),
		tag("temp_cdab", "400004", drivers.TypeFloat32, "CDAB"),
		tag("delta", "40006", drivers.TypeInt16, "AB"),
		tag("count", "hr:6", drivers.TypeInt32, "ABCD"),
		tag("total", "hr:8", drivers.TypeUint32, "DCBA"),
		tag("bit0", "40011.0", drivers.TypeBool, ""),
		tag("bit1", "hr:10.1", drivers.TypeBool, ""),
		tag("bit15", "hr:10.15", drivers.TypeBool, ""),
		tag("far", "hr:1000", drivers.TypeUint32, "BADC"),
		tag("in", "30001", drivers.TypeUint16, "BA"),
		tag("in_end", "ir:65534", drivers.TypeInt32, ""),
		tag("coil0", "00001", drivers.TypeBool, ""),
		tag("coil1", "co:1", drivers.TypeBool, ""),
		tag("coil10", "00011", drivers.TypeBool, ""),
		tag("di3", "di:3", drivers.TypeBool, ""),
	)
	at := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	r := startDriver(t, dev, Options{Now: func() time.Time { return at }})
	b := r.waitBatches(t, 1)[0]

	f32 := drivers.FloatValue(float64(float32(123.456)))
	want := drivers.Batch{Device: "press-1", ReadTime: at, Samples: []drivers.Sample{
		good(0, drivers.UintValue(7)),
		good(1, f32),
		good(2, f32),
		good(3, drivers.IntValue(-1234)),
		good(4, drivers.IntValue(-2)),
		good(5, drivers.UintValue(0x12345678)),
		good(6, drivers.BoolValue(true)),
		good(7, drivers.BoolValue(false)),
		good(8, drivers.BoolValue(true)),
		good(9, drivers.UintValue(0x12345678)),
		good(10, drivers.UintValue(0xABCD)),
		good(11, drivers.IntValue(-2)),
		good(12, drivers.BoolValue(true)),
		good(13, drivers.BoolValue(false)),
		good(14, drivers.BoolValue(true)),
		good(15, drivers.BoolValue(true)),
	}}
	if diff := cmp.Diff(want, b, cmp.AllowUnexported(drivers.Value{})); diff != "" {
		t.Errorf("first batch (-want +got):\n%s", diff)
	}
	ev := r.waitEvents(t, drivers.EventConnected)
	if ev[0].Device != "press-1" || !ev[0].Time.Equal(at) || ev[0].Err != nil {
		t.Errorf("connected event %+v", ev[0])
	}
	// coils 0-10, discrete 3, input 0, input 65534-65535, holding 0-10, holding 1000-1001.
	if got := countReads(r.d); got != 6 {
		t.Errorf("planned %d reads, want 6", got)
	}
}

func TestDriver_Run_ExceptionFaultsOnceAndClears(t *testing.T) {
	s := startServer(t)
	s.setHolding(0, 1)
	s.setHolding(100, 2)
	var fail atomic.Bool
	fail.Store(true)
	s.setHandler(func(c *serverConn, req request) {
		if req.addr == 100 && fail.Load() {
			c.exception(req, 2)
			return
		}
		c.answer(req)
	})
	r := startDriver(t, tcpDevice(s.addr(),
		tag("a", "hr:0", drivers.TypeUint16, ""),
		tag("b", "hr:100", drivers.TypeUint16, ""),
	), Options{})

	batches := r.waitBatches(t, 3)
	for _, b := range batches[:3] {
		want := []drivers.Sample{good(0, drivers.UintValue(1)), bad(1, "exception 2")}
		if diff := cmp.Diff(want, b.Samples, cmp.AllowUnexported(drivers.Value{})); diff != "" {
			t.Fatalf("batch during the exception (-want +got):\n%s", diff)
		}
	}
	ev := r.waitEvents(t, drivers.EventConnected, drivers.EventFault)
	wantErr := `read holding registers 100-100 on device "press-1" (unit 1): modbus: exception '2' (illegal data address)`
	if ev[1].Err == nil || !strings.HasPrefix(ev[1].Err.Error(), wantErr) {
		t.Errorf("fault error %v, want it to start with %s", ev[1].Err, wantErr)
	}

	fail.Store(false)
	r.waitBatch(t, "b good", allGood)
	n := len(r.waitBatches(t, 1))
	r.waitBatches(t, n+3)
	r.waitEvents(t, drivers.EventConnected, drivers.EventFault) // cleared silently

	fail.Store(true)
	r.waitBatch(t, "b bad again", func(b drivers.Batch) bool { return b.Samples[1].Reason == "exception 2" })
	r.waitEvents(t, drivers.EventConnected, drivers.EventFault, drivers.EventFault)
	if got := s.accepts.Load(); got != 1 {
		t.Errorf("server saw %d connections, want 1: an exception must not close the connection", got)
	}
}

func TestDriver_Run_MalformedReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		pdu  []byte
	}{
		{"short", []byte{3, 2, 0, 1}},
		{"long", []byte{3, 6, 0, 1, 0, 2, 0, 3}},
		{"empty", []byte{3, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t)
			s.setHolding(0, 1, 2)
			s.setCoils(0, true)
			var broken atomic.Bool
			broken.Store(true)
			s.setHandler(func(c *serverConn, req request) {
				if req.fc == 3 && broken.Load() {
					c.send(req.txid, req.unit, tc.pdu)
					return
				}
				c.answer(req)
			})
			r := startDriver(t, tcpDevice(s.addr(),
				tag("c", "co:0", drivers.TypeBool, ""),
				tag("a", "hr:0", drivers.TypeUint16, ""),
				tag("b", "hr:1", drivers.TypeUint16, ""),
			), Options{})
			batches := r.waitBatches(t, 3)
			want := []drivers.Sample{good(0, drivers.BoolValue(true)), bad(1, "malformed reply"), bad(2, "malformed reply")}
			for _, b := range batches[:3] {
				if diff := cmp.Diff(want, b.Samples, cmp.AllowUnexported(drivers.Value{})); diff != "" {
					t.Fatalf("batch (-want +got):\n%s", diff)
				}
			}
			// The stream may be out of step after a malformed reply: the driver redials.
			if got := s.accepts.Load(); got < 3 {
				t.Errorf("server saw %d connections after 3 malformed replies, want ≥ 3", got)
			}
			broken.Store(false)
			r.waitBatch(t, "all good", allGood)
			ev := r.waitEvents(t, drivers.EventConnected, drivers.EventFault)
			if !errors.Is(ev[1].Err, errReplyLength) && !strings.Contains(ev[1].Err.Error(), "response data") {
				t.Errorf("fault error %v", ev[1].Err)
			}
			if !strings.HasPrefix(ev[1].Err.Error(), `read holding registers 0-1 on device "press-1" (unit 1): `) {
				t.Errorf("fault error %v does not name the read", ev[1].Err)
			}
		})
	}
}

func TestDriver_Run_Reconnects(t *testing.T) {
	s := startServer(t)
	s.setHolding(0, 42)
	var drop atomic.Bool
	s.setHandler(func(c *serverConn, req request) {
		if drop.CompareAndSwap(true, false) {
			c.conn.Close()
			return
		}
		c.answer(req)
	})
	r := startDriver(t, tcpDevice(s.addr(), tag("a", "hr:0", drivers.TypeUint16, "")),
		Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	r.waitBatch(t, "a good", allGood)

	drop.Store(true)
	r.waitBatch(t, "a unreachable", allBad("unreachable"))
	r.waitBatch(t, "a good again", allGood)
	ev := r.waitEvents(t, drivers.EventConnected, drivers.EventDisconnected, drivers.EventConnected)
	if want := `read holding registers 0-0 on device "press-1" (unit 1): read reply: EOF`; ev[1].Err == nil || ev[1].Err.Error() != want {
		t.Errorf("disconnected error %v, want %s", ev[1].Err, want)
	}
	if got := s.accepts.Load(); got != 2 {
		t.Errorf("server saw %d connections, want 2", got)
	}
}

func TestDriver_Run_Timeout(t *testing.T) {
	s := startServer(t)
	s.setHolding(0, 42)
	var silent atomic.Bool
	s.setHandler(func(c *serverConn, req request) {
		if silent.Load() {
			c.hang()
			return
		}
		c.answer(req)
	})
	dev := tcpDevice(s.addr(), tag("a", "hr:0", drivers.TypeUint16, ""), tag("b", "co:0", drivers.TypeBool, ""))
	dev.Timeout = 300 * time.Millisecond
	r := startDriver(t, dev, Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	r.waitBatch(t, "good", allGood)

	silent.Store(true)
	r.waitBatch(t, "timeout", allBad("timeout"))
	silent.Store(false)
	r.waitBatch(t, "good again", allGood)
	ev := r.waitEvents(t, drivers.EventConnected, drivers.EventDisconnected, drivers.EventConnected)
	if !errors.Is(ev[1].Err, os.ErrDeadlineExceeded) {
		t.Errorf("disconnected error %v, want a deadline error", ev[1].Err)
	}
}

// TestDriver_Run_DownAtStart: a device that refuses connections at start is retried with
// backoff, one all-Bad batch per attempt, one disconnected event, then connected once it is up.
func TestDriver_Run_DownAtStart(t *testing.T) {
	addr := reserveAddr(t)
	var dials, failed atomic.Int64
	var badAtFirstGood atomic.Int64
	badAtFirstGood.Store(-1)
	r := startDriver(t, tcpDevice(addr, tag("a", "hr:0", drivers.TypeUint16, "")),
		Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond},
		func(d *Driver) {
			dial := d.dial
			d.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
				dials.Add(1)
				c, err := dial(ctx, network, address)
				if err != nil {
					failed.Add(1)
				}
				return c, err
			}
		})
	batches := r.waitBatches(t, 3)
	for _, b := range batches {
		if !allBad("unreachable")(b) {
			t.Fatalf("batch while down: %+v", b.Samples)
		}
	}
	r.waitEvents(t, drivers.EventDisconnected)

	s := startServerAt(t, addr)
	s.setHolding(0, 5)
	r.waitBatch(t, "good", allGood)
	r.waitEvents(t, drivers.EventDisconnected, drivers.EventConnected)

	batches, _ = r.rec.snapshot()
	nBad := 0
	for _, b := range batches {
		if allGood(b) {
			break
		}
		nBad++
	}
	if got := failed.Load(); int64(nBad) != got {
		t.Errorf("%d all-Bad batches before the first good one, %d failed dials: want one batch per attempt", nBad, got)
	}
}

// TestDriver_Run_Shutdown: Run returns at once when ctx ends while a request waits on a device
// that accepted it and never answers, far sooner than the request timeout, and reports nothing
// about the aborted cycle.
func TestDriver_Run_Shutdown(t *testing.T) {
	s := startServer(t)
	s.setHandler(func(c *serverConn, req request) { c.hang() })
	dev := tcpDevice(s.addr(), tag("a", "hr:0", drivers.TypeUint16, ""))
	dev.Timeout = time.Minute
	r := startDriver(t, dev, Options{})
	waitFor(t, 10*time.Second, func() error {
		if s.requests.Load() == 0 {
			return errors.New("no request reached the server")
		}
		return nil
	})
	start := time.Now()
	if err := r.stop(t); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	el := time.Since(start)
	t.Logf("Run returned %v after cancel", el)
	if el > time.Second {
		t.Errorf("Run returned %v after cancel, want well under the 1m timeout", el)
	}
	if b, ev := r.rec.snapshot(); len(b) != 0 || len(ev) != 0 {
		t.Errorf("Run reported %d batches and events %v for an aborted cycle, want none", len(b), r.rec.kinds())
	}
}

func TestDriver_Run_Stale_LateReplyNeverTaken(t *testing.T) {
	s := startServer(t)
	s.setHolding(0, 7)
	var prev atomic.Uint32
	var slow atomic.Bool
	s.setHandler(func(c *serverConn, req request) {
		// Before each answer, the answer to the previous request again, with other values.
		c.conn.Write(staleDEAD(uint16(prev.Load())))
		prev.Store(uint32(req.txid))
		if slow.CompareAndSwap(true, false) {
			select {
			case <-time.After(time.Second): // past the driver's 300ms timeout
			case <-c.s.quit:
			}
			c.conn.Write(staleDEAD(req.txid))
			return
		}
		c.answer(req)
	})
	dev := tcpDevice(s.addr(), tag("a", "hr:0", drivers.TypeUint16, ""))
	dev.Timeout = 300 * time.Millisecond
	r := startDriver(t, dev, Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	r.waitBatches(t, 3)
	slow.Store(true)
	r.waitBatch(t, "timeout", allBad("timeout"))
	n := len(r.waitBatches(t, 1))
	r.waitBatches(t, n+5)
	batches, _ := r.rec.snapshot()
	for i, b := range batches {
		if v := b.Samples[0]; v.Quality == drivers.QualityGood && v.Value != drivers.UintValue(7) {
			t.Errorf("batch %d took a stale reply: %v", i, v.Value)
		}
	}
	r.waitEvents(t, drivers.EventConnected, drivers.EventDisconnected, drivers.EventConnected)
}

func TestDriver_Run_AlreadyRunning(t *testing.T) {
	s := startServer(t)
	r := startDriver(t, tcpDevice(s.addr(), tag("a", "hr:0", drivers.TypeUint16, "")), Options{})
	r.waitBatches(t, 1)
	if err := r.d.Run(t.Context(), &recorder{}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Run: %v, want an already-running error", err)
	}
}

// TestDriver_Run_Again: Run may be called again after it returned; the second run starts fresh.
func TestDriver_Run_Again(t *testing.T) {
	s := startServer(t)
	s.setHolding(0, 3)
	d, err := NewDevice(tcpDevice(s.addr(), tag("a", "hr:0", drivers.TypeUint16, "")), Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		ctx, cancel := context.WithCancel(t.Context())
		rec := &recorder{onBatch: func(*drivers.Batch) { cancel() }}
		if err := d.Run(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if got := rec.kinds(); !cmp.Equal(got, []drivers.EventKind{drivers.EventConnected}) {
			t.Errorf("events %v, want [connected]", got)
		}
		if b, _ := rec.lastBatch(); !allGood(b) || b.Samples[0].Value.Uint() != 3 {
			t.Errorf("batch %+v", b.Samples)
		}
	}
}
