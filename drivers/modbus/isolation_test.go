package modbus

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/drivers"
)

// illegalAt makes s answer exception 2 to any holding-register read that covers one of bad
// while fail is set, and counts requests.
func illegalAt(s *testServer, fail *atomic.Bool, bad ...int) {
	s.setHandler(func(c *serverConn, req request) {
		if req.fc == 3 && fail.Load() {
			for _, b := range bad {
				if int(req.addr) <= b && b < int(req.addr)+int(req.count) {
					c.exception(req, 2)
					return
				}
			}
		}
		c.answer(req)
	})
}

// hundredTags is 100 uint16 tags on holding registers 0..99, holding 1000+i.
func hundredTags(s *testServer) []drivers.Tag {
	var tags []drivers.Tag
	for i := range 100 {
		s.setHolding(i, uint16(1000+i))
		tags = append(tags, tag(fmt.Sprintf("r%d", i), fmt.Sprintf("hr:%d", i), drivers.TypeUint16, ""))
	}
	return tags
}

// TestIssue5_ExceptionIsolation: exceptions on 3 addresses inside a 100-register block. Every
// other tag arrives good at every poll, from the first; the 3 carry "exception 2"; one fault
// event says how the read was split; later polls use the learned split (no new bisection).
func TestIssue5_ExceptionIsolation(t *testing.T) {
	s := startServer(t)
	var fail atomic.Bool
	fail.Store(true)
	illegalAt(s, &fail, 17, 50, 83)
	dev := tcpDevice(s.addr(), hundredTags(s)...)
	// The server's request count at each batch, taken on the driver's goroutine: exact per
	// poll.
	var mu sync.Mutex
	var reqAt []int64
	r := startDriver(t, dev, Options{})
	r.rec.setOnBatch(func(*drivers.Batch) {
		mu.Lock()
		reqAt = append(reqAt, s.requests.Load())
		mu.Unlock()
	})
	batches := r.waitBatches(t, 8)
	for i, b := range batches {
		for j, smp := range b.Samples {
			switch j {
			case 17, 50, 83:
				if smp.Quality != drivers.QualityBad || smp.Reason != "exception 2" {
					t.Fatalf("batch %d: tag %d = %+v, want bad exception 2", i, j, smp)
				}
			default:
				if smp.Quality != drivers.QualityGood || smp.Value != drivers.UintValue(uint64(1000+j)) {
					t.Fatalf("batch %d: tag %d = %+v, want good %d", i, j, smp, 1000+j)
				}
			}
		}
	}
	ev := r.waitEvents(t, drivers.EventConnected, drivers.EventFault)
	t.Logf("fault: %v", ev[1].Err)
	if !strings.Contains(ev[1].Err.Error(), "17-17 (exception 2)") || !strings.Contains(ev[1].Err.Error(), "83-83 (exception 2)") {
		t.Errorf("fault event %v does not list the failing registers", ev[1].Err)
	}
	if err := r.stop(t); err != nil { // the plan is the Run's until it returns
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	split := len(r.d.groups[0].reads[0].split)
	for k := len(reqAt) - 3; k < len(reqAt); k++ {
		if got := reqAt[k] - reqAt[k-1]; got != int64(split) {
			t.Errorf("%d requests in a poll once learned, want the %d pieces of the split", got, split)
		}
	}
	// Three bad single registers cut the block into four good runs and three bad reads.
	if split != 7 {
		t.Errorf("split into %d pieces, want 7", split)
	}
}

// TestDriver_Isolation_Heals: once the device's map is fixed, the next re-probe reads the
// block whole again.
func TestDriver_Isolation_Heals(t *testing.T) {
	s := startServer(t)
	var fail atomic.Bool
	fail.Store(true)
	illegalAt(s, &fail, 40)
	r := startDriver(t, tcpDevice(s.addr(), hundredTags(s)...), Options{ReprobeInterval: 100 * time.Millisecond})
	r.waitBatch(t, "tag 40 bad", func(b drivers.Batch) bool { return b.Samples[40].Reason == "exception 2" })
	fail.Store(false)
	r.waitBatch(t, "all good", allGood)
	var last, perPoll atomic.Int64
	r.rec.setOnBatch(func(*drivers.Batch) {
		n := s.requests.Load()
		perPoll.Store(n - last.Swap(n))
	})
	waitFor(t, 10*time.Second, func() error {
		if got := perPoll.Load(); got != 1 {
			return fmt.Errorf("%d requests in the last poll: still split", got)
		}
		return nil
	})
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if r.d.groups[0].reads[0].split != nil {
		t.Error("split remembered after the device healed")
	}
}

// TestDriver_Isolation_Gap: a hole inside a read (max_gap joined two tags over registers the
// device does not have) fails the read; the split reads both tags, and neither is bad.
func TestDriver_Isolation_Gap(t *testing.T) {
	s := startServer(t)
	var fail atomic.Bool
	fail.Store(true)
	illegalAt(s, &fail, 5)
	s.setHolding(0, 1)
	s.setHolding(10, 2)
	r := startDriver(t, tcpDevice(s.addr(), tag("a", "hr:0", drivers.TypeUint16, ""), tag("b", "hr:10", drivers.TypeUint16, "")), Options{})
	for _, b := range r.waitBatches(t, 3)[:3] {
		want := []drivers.Sample{good(0, drivers.UintValue(1)), good(1, drivers.UintValue(2))}
		if diff := cmp.Diff(want, b.Samples, cmp.AllowUnexported(drivers.Value{})); diff != "" {
			t.Fatalf("batch (-want +got):\n%s", diff)
		}
	}
}

// TestDriver_Isolation_OtherExceptions: exceptions other than 2 and 3 are not isolated (a busy
// or failing device would be split for nothing): the read's tags carry the code.
func TestDriver_Isolation_OtherExceptions(t *testing.T) {
	s := startServer(t)
	s.setHandler(func(c *serverConn, req request) { c.exception(req, 6) })
	r := startDriver(t, tcpDevice(s.addr(), tag("a", "hr:0", drivers.TypeUint16, ""), tag("b", "hr:1", drivers.TypeUint16, "")), Options{})
	r.waitBatch(t, "exception 6", allBad("exception 6"))
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if got := r.d.groups[0].reads[0].split; got != nil {
		t.Errorf("split on exception 6: %+v", got)
	}
}

// TestDriver_PollGroups: fast and slow tags of one device are polled on their own intervals;
// each batch carries the tags of the group read.
func TestDriver_PollGroups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeServer(t)
		s.setHolding(0, 1, 2, 3)
		dev := tcpDevice("plc:502",
			tag("slow_a", "hr:0", drivers.TypeUint16, ""),
			drivers.Tag{Name: "fast", Address: "hr:1", Type: drivers.TypeUint16, PollInterval: 100 * time.Millisecond},
			tag("slow_b", "hr:2", drivers.TypeUint16, ""))
		dev.PollInterval = time.Second
		d := newBubbleDriver(t, dev, Options{}, s.dial)
		rec := &recorder{}
		stop := bubbleRun(t, d, rec)
		advance(3*time.Second - time.Millisecond)
		stop()
		batches, _ := rec.snapshot()
		var slow, fast int
		for _, b := range batches {
			var names []string
			for _, smp := range b.Samples {
				names = append(names, dev.Tags[smp.Tag].Name)
				if smp.Quality != drivers.QualityGood || smp.Value != drivers.UintValue(uint64(smp.Tag+1)) {
					t.Errorf("sample %+v", smp)
				}
			}
			switch strings.Join(names, ",") {
			case "slow_a,slow_b":
				slow++
			case "fast":
				fast++
			default:
				t.Errorf("batch with tags %v", names)
			}
		}
		if slow != 3 || fast != 30 {
			t.Errorf("%d slow and %d fast batches in 3s, want 3 and 30", slow, fast)
		}
	})
}

// TestDriver_Gateway_SilentUnit: three units behind one TCP gateway, the second silent: the
// others arrive good at every poll over the one connection, which the silent unit's timeouts
// do not close.
func TestDriver_Gateway_SilentUnit(t *testing.T) {
	s := startServer(t)
	s.setHolding(0, 5)
	var mu sync.Mutex
	asked := map[byte]int{}
	s.setHandler(func(c *serverConn, req request) {
		mu.Lock()
		asked[req.unit]++
		mu.Unlock()
		if req.unit == 2 {
			return // the gateway forwards it and its device never answers
		}
		c.answer(req)
	})
	var devs []drivers.Device
	for u := uint8(1); u <= 3; u++ {
		d := tcpDevice(s.addr(), tag("a", "hr:0", drivers.TypeUint16, ""), tag("b", "hr:100", drivers.TypeUint16, ""))
		d.Name, d.UnitID, d.PollInterval = fmt.Sprintf("unit-%d", u), u, 150*time.Millisecond
		if u == 2 {
			d.Timeout = 100 * time.Millisecond // the silent one; the others have time to spare on a loaded machine
		}
		devs = append(devs, d)
	}
	r := startBus(t, devs, Options{})
	waitFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if asked[3] < 16 {
			return fmt.Errorf("unit 3 asked %d times", asked[3])
		}
		return nil
	})
	batches, ev := r.rec.snapshot()
	polls2 := 0
	for _, b := range batches {
		switch b.Device {
		case "unit-2":
			polls2++
			if !allBad(reasonTimeout)(b) {
				t.Fatalf("unit-2 batch %+v", b.Samples)
			}
		default:
			if !allGood(b) {
				t.Fatalf("%s batch %+v", b.Device, b.Samples)
			}
		}
	}
	mu.Lock()
	if asked[2] > polls2+1 {
		t.Errorf("silent unit asked %d times in %d polls, want once a poll", asked[2], polls2)
	}
	mu.Unlock()
	if got := s.accepts.Load(); got != 1 {
		t.Errorf("%d connections, want 1", got)
	}
	kinds := map[string][]drivers.EventKind{}
	for _, e := range ev {
		kinds[e.Device] = append(kinds[e.Device], e.Kind)
	}
	want := map[string][]drivers.EventKind{
		"unit-1": {drivers.EventConnected}, "unit-2": {drivers.EventDisconnected}, "unit-3": {drivers.EventConnected},
	}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
