package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goburrow/serial"
	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/drivers"
)

func rtuDevice(path string, unit uint8, tags ...drivers.Tag) drivers.Device {
	return drivers.Device{
		Name: fmt.Sprintf("meter-%d", unit), Protocol: "modbus-rtu", Address: path, UnitID: unit,
		PollInterval: 20 * time.Millisecond, Timeout: 5 * time.Second,
		Modbus: drivers.ModbusOptions{Serial: drivers.Serial{Baud: 115200}}, Tags: tags,
	}
}

// TestDriver_RTU_PTY_Layout reads every type in every byte order over a real pseudo-terminal,
// through goburrow/serial, from the in-test RTU device.
func TestDriver_RTU_PTY_Layout(t *testing.T) {
	p := startPTY(t)
	dev, regs, want := layoutDevice(p.path, 0)
	dev.Protocol, dev.UnitID, dev.Name = "modbus-rtu", 7, "meter-7"
	for r, v := range regs {
		p.tables.setHolding(r, v)
	}
	p.tables.setCoils(3, true)
	p.tables.setInput(5, 0xFFFF)
	dev.Tags = append(dev.Tags, tag("coil3", "co:3", drivers.TypeBool, ""), tag("in5", "ir:5", drivers.TypeInt16, ""))
	want = append(want, drivers.BoolValue(true), drivers.IntValue(-1))
	r := startDriver(t, dev, Options{})
	b := r.waitBatches(t, 1)[0]
	checkLayout(t, b, want)
	if b.Device != "meter-7" {
		t.Errorf("batch of %q", b.Device)
	}
	r.waitEvents(t, drivers.EventConnected)
}

// TestDriver_RTU_Stale_LateAnswerNeverTaken: the device answers one read of hr:0 after the
// driver gave up on it; the next read, of hr:100 on the same unit with the same function and
// quantity, would take that answer for its own (RTU has no transaction id). The driver waits
// such late answers out, so tag b never shows a's value, also when the late answer arrives in
// fragments 20 ms apart.
func TestDriver_RTU_Stale_LateAnswerNeverTaken(t *testing.T) {
	for _, fragmented := range []bool{false, true} {
		t.Run(fmt.Sprintf("fragmented=%v", fragmented), func(t *testing.T) {
			p := startPTY(t)
			p.tables.setHolding(0, 0xAAAA)
			p.tables.setHolding(100, 0xBBBB)
			var slowDone, readsOfA atomic.Int64
			p.setHandler(func(c *rtuConn, req request) {
				ans := c.reply(req)
				if req.addr == 0 {
					readsOfA.Add(1)
				}
				if n := readsOfA.Load(); req.addr == 0 && (n == 1 || n == 4) {
					// After the 500 ms timeout and the 50 ms resynchronisation.
					if !c.wait(800 * time.Millisecond) {
						return
					}
					slowDone.Add(1)
				}
				if fragmented {
					c.fragments(ans, 3, 20*time.Millisecond)
					return
				}
				c.write(ans)
			})
			dev := rtuDevice(p.path, 1, tag("a", "hr:0", drivers.TypeUint16, ""), tag("b", "hr:100", drivers.TypeUint16, ""))
			dev.Timeout = 500 * time.Millisecond
			r := startDriver(t, dev, Options{})
			waitFor(t, 10*time.Second, func() error {
				if slowDone.Load() < 2 {
					return errors.New("slow answers not sent yet")
				}
				return nil
			})
			n := len(r.waitBatches(t, 1))
			r.waitBatches(t, n+3)
			batches, _ := r.rec.snapshot()
			timeouts := 0
			for i, b := range batches {
				a, bb := b.Samples[0], b.Samples[1]
				if a.Quality == drivers.QualityGood && a.Value != drivers.UintValue(0xAAAA) ||
					bb.Quality == drivers.QualityGood && bb.Value != drivers.UintValue(0xBBBB) {
					t.Errorf("batch %d took another read's answer: %+v", i, b.Samples)
				}
				if a.Reason == reasonTimeout {
					timeouts++
				}
			}
			// Two late answers: two timeouts at least (a loaded machine may add some).
			if timeouts < 2 {
				t.Errorf("%d polls with a timeout, want 2", timeouts)
			}
		})
	}
}

// TestDriver_RTU_Fragmented: every answer comes in 3-byte pieces 20 ms apart, as a slow USB
// adapter hands them over: frames are read by their length, not ended by the gaps.
func TestDriver_RTU_Fragmented(t *testing.T) {
	p := startPTY(t)
	p.tables.setHolding(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	p.setHandler(func(c *rtuConn, req request) { c.fragments(c.reply(req), 3, 20*time.Millisecond) })
	tags := []drivers.Tag{}
	for i := range 10 {
		tags = append(tags, tag(fmt.Sprintf("t%d", i), fmt.Sprintf("hr:%d", i), drivers.TypeUint16, ""))
	}
	r := startDriver(t, rtuDevice(p.path, 1, tags...), Options{})
	for _, b := range r.waitBatches(t, 3)[:3] {
		for i, s := range b.Samples {
			if s.Quality != drivers.QualityGood || s.Value != drivers.UintValue(uint64(i+1)) {
				t.Fatalf("sample %d: %+v", i, s)
			}
		}
	}
	r.waitEvents(t, drivers.EventConnected)
}

// TestDriver_RTU_Noise: bytes of line noise before an answer are skipped; an answer with a bad
// CRC is garbled (retried when the device has retries, else a malformed-reply sample).
func TestDriver_RTU_Noise(t *testing.T) {
	for _, tc := range []struct {
		name    string
		retries int
		bad     func(c *rtuConn, req request)
		want    drivers.Sample
	}{
		{"noise before the answer", 0, func(c *rtuConn, req request) {
			c.write([]byte{0x00, 0xFF, 0x01, 0x03, 0x55})
			c.answer(req)
		}, good(0, drivers.UintValue(42))},
		{"bad CRC, no retry", 0, func(c *rtuConn, req request) {
			b := c.reply(req)
			b[len(b)-1] ^= 0xFF
			c.write(b)
		}, bad(0, reasonMalformed)},
		{"bad CRC, one retry", 1, func(c *rtuConn, req request) {
			b := c.reply(req)
			b[3] ^= 0x01
			c.write(b)
		}, good(0, drivers.UintValue(42))},
		{"another unit's answer first", 0, func(c *rtuConn, req request) {
			c.write(rtuFrame(9, []byte{3, 2, 0xDE, 0xAD}))
			c.answer(req)
		}, good(0, drivers.UintValue(42))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPTY(t)
			p.tables.setHolding(0, 42)
			var once atomic.Bool
			p.setHandler(func(c *rtuConn, req request) {
				if once.CompareAndSwap(false, true) {
					tc.bad(c, req)
					return
				}
				c.answer(req)
			})
			dev := rtuDevice(p.path, 1, tag("a", "hr:0", drivers.TypeUint16, ""))
			dev.Modbus.Retries = tc.retries
			r := startDriver(t, dev, Options{})
			b := r.waitBatches(t, 2)
			if diff := cmp.Diff(tc.want, b[0].Samples[0], cmp.AllowUnexported(drivers.Value{})); diff != "" {
				t.Errorf("first sample (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(good(0, drivers.UintValue(42)), b[1].Samples[0], cmp.AllowUnexported(drivers.Value{})); diff != "" {
				t.Errorf("second sample (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDriver_RTU_Bus: three meters on one port, the second silent. The others arrive good at
// every poll; the silent one is asked once per poll (its second read is not tried after the
// first timed out) and reported disconnected; exceptions of one unit stay its own.
func TestDriver_RTU_Bus(t *testing.T) {
	p := startPTY(t)
	p.tables.setHolding(0, 11)
	p.tables.setHolding(50, 22)
	p.setSilent(2, true)
	var perUnit [4]atomic.Int64
	p.setHandler(func(c *rtuConn, req request) {
		perUnit[req.unit].Add(1)
		if req.unit == 3 && req.addr == 50 {
			c.exception(req, 2)
			return
		}
		c.answer(req)
	})
	var devs []drivers.Device
	for unit := uint8(1); unit <= 3; unit++ {
		d := rtuDevice(p.path, unit, tag("a", "hr:0", drivers.TypeUint16, ""), tag("b", "hr:50", drivers.TypeUint16, ""))
		d.PollInterval = 300 * time.Millisecond
		if unit == 2 {
			d.Timeout = 100 * time.Millisecond // the silent one; the others have time to spare on a loaded machine
		}
		devs = append(devs, d)
	}
	r := startBus(t, devs, Options{})
	waitFor(t, 10*time.Second, func() error {
		if got := perUnit[1].Load(); got < 10 {
			return fmt.Errorf("unit 1 asked %d times", got)
		}
		return nil
	})
	batches, _ := r.rec.snapshot()
	per := map[string][]drivers.Batch{}
	for _, b := range batches {
		per[b.Device] = append(per[b.Device], b)
	}
	for _, b := range per["meter-1"] {
		want := []drivers.Sample{good(0, drivers.UintValue(11)), good(1, drivers.UintValue(22))}
		if diff := cmp.Diff(want, b.Samples, cmp.AllowUnexported(drivers.Value{})); diff != "" {
			t.Fatalf("meter-1 (-want +got):\n%s", diff)
		}
	}
	for _, b := range per["meter-2"] {
		if !allBad(reasonTimeout)(b) {
			t.Fatalf("meter-2: %+v", b.Samples)
		}
	}
	for _, b := range per["meter-3"] {
		want := []drivers.Sample{good(0, drivers.UintValue(11)), bad(1, "exception 2")}
		if diff := cmp.Diff(want, b.Samples, cmp.AllowUnexported(drivers.Value{})); diff != "" {
			t.Fatalf("meter-3 (-want +got):\n%s", diff)
		}
	}
	polls := len(per["meter-2"])
	if asked := p.tables.requests.Load() - perUnit[1].Load() - perUnit[3].Load(); asked > int64(polls)+1 || asked < int64(polls) {
		t.Errorf("the silent unit was asked %d times in %d polls, want once a poll", asked, polls)
	}
	_, ev := r.rec.snapshot()
	kinds := map[string][]drivers.EventKind{}
	for _, e := range ev {
		kinds[e.Device] = append(kinds[e.Device], e.Kind)
	}
	wantKinds := map[string][]drivers.EventKind{
		"meter-1": {drivers.EventConnected},
		"meter-2": {drivers.EventDisconnected},
		"meter-3": {drivers.EventConnected, drivers.EventFault},
	}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		t.Errorf("events per device (-want +got):\n%s", diff)
	}
}

// TestDriver_RTU_Cancel: cancelling the Run while a request waits on a device that never
// answers returns within a second, long before the request's timeout.
func TestDriver_RTU_Cancel(t *testing.T) {
	p := startPTY(t)
	p.setSilent(1, true)
	dev := rtuDevice(p.path, 1, tag("a", "hr:0", drivers.TypeUint16, ""))
	dev.Timeout = time.Minute
	r := startDriver(t, dev, Options{})
	waitFor(t, 10*time.Second, func() error {
		if p.tables.requests.Load() == 0 {
			return errors.New("no request reached the device")
		}
		return nil
	})
	start := time.Now()
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	t.Logf("Run returned %v after cancel", el)
	if el > time.Second {
		t.Errorf("Run returned %v after cancel, want under 1s", el)
	}
	if b, ev := r.rec.snapshot(); len(b) != 0 || len(ev) != 0 {
		t.Errorf("an aborted request reported %d batches and %d events", len(b), len(ev))
	}
}

// TestDriver_RTU_PortGone: the adapter disappears (the pty closes): the driver reports every
// device down and retries opening the port with backoff.
func TestDriver_RTU_PortGone(t *testing.T) {
	p := startPTY(t)
	p.tables.setHolding(0, 5)
	var opens atomic.Int64
	r := startDriver(t, rtuDevice(p.path, 1, tag("a", "hr:0", drivers.TypeUint16, "")),
		Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond},
		func(d *Driver) {
			open := d.open
			d.open = func(c *serial.Config) (io.ReadWriteCloser, error) {
				opens.Add(1)
				return open(c)
			}
		})
	r.waitBatch(t, "good", allGood)
	p.tty.Close()
	p.master.Close()
	r.waitBatch(t, "unreachable", allBad(reasonUnreachable))
	waitFor(t, 10*time.Second, func() error {
		if opens.Load() < 3 {
			return fmt.Errorf("%d opens", opens.Load())
		}
		return nil
	})
	ev := r.waitEvents(t, drivers.EventConnected, drivers.EventDisconnected)
	t.Logf("disconnected: %v", ev[1].Err)
}

// Tests below run under testing/synctest over in-memory ports (memBus): timing is exact.

func newRTUBubbleDriver(t *testing.T, b *memBus, opts Options, devs ...drivers.Device) *Driver {
	t.Helper()
	d, err := New(devs, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.open = b.open
	return d
}

// TestDriver_RTU_Synctest_SilentUnitCost: a silent unit costs the others on its bus exactly its
// timeout plus the resynchronisation per poll, whatever its number of reads.
func TestDriver_RTU_Synctest_SilentUnitCost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newMemBus(t)
		b.tables.setHolding(0, 1)
		b.setSilent(2, true)
		var sent []time.Duration
		start := time.Now()
		b.setHandler(func(c *rtuConn, req request) {
			sent = append(sent, time.Since(start))
			c.answer(req)
		})
		mk := func(unit uint8) drivers.Device {
			d := rtuDevice("/dev/ttyS9", unit, tag("a", "hr:0", drivers.TypeUint16, ""), tag("b", "hr:40", drivers.TypeUint16, ""),
				tag("c", "hr:80", drivers.TypeUint16, ""))
			d.PollInterval, d.Timeout = time.Second, 100*time.Millisecond
			return d
		}
		d := newRTUBubbleDriver(t, b, Options{}, mk(2), mk(1)) // the silent one first
		rec := &recorder{}
		stop := bubbleRun(t, d, rec)
		advance(2500 * time.Millisecond)
		stop()
		// Per poll: unit 2's first read times out (100 ms plus the wire time of the request
		// and a one-register answer, then 50 ms of resynchronisation), its other two are not
		// sent; unit 1's three reads follow.
		if len(sent) != 9 {
			t.Fatalf("unit 1 answered %d reads at %v, want 9 (3 polls × 3)", len(sent), sent)
		}
		for k := 0; k < 3; k++ {
			first := sent[3*k] - time.Duration(k)*time.Second
			if first < 150*time.Millisecond || first > 160*time.Millisecond {
				t.Errorf("poll %d: unit 1's first read at %v after the poll, want one timeout and resync (150-160ms)", k, first)
			}
		}
		batches, _ := rec.snapshot()
		if len(batches) != 6 {
			t.Errorf("%d batches, want 6", len(batches))
		}
	})
}

// TestDriver_RTU_Synctest_PortReopen: a port that cannot be opened (adapter unplugged) is
// retried with backoff; when it opens again, polling resumes.
func TestDriver_RTU_Synctest_PortReopen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newMemBus(t)
		b.tables.setHolding(0, 3)
		b.refuse.Store(true)
		dev := rtuDevice("/dev/ttyUSB0", 1, tag("a", "hr:0", drivers.TypeUint16, ""))
		dev.PollInterval = time.Second
		d := newRTUBubbleDriver(t, b, Options{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}, dev)
		rec := &recorder{}
		stop := bubbleRun(t, d, rec)
		advance(10 * time.Second)
		opens := b.opens.Load()
		if opens < 10 || opens > 20 {
			t.Errorf("%d open attempts in 10s with backoff 100ms..1s", opens)
		}
		b.refuse.Store(false)
		advance(2 * time.Second)
		last, _ := rec.lastBatch()
		if !allGood(last) {
			t.Errorf("last batch after the port came back: %+v", last.Samples)
		}
		if got := rec.kinds(); !cmp.Equal(got, []drivers.EventKind{drivers.EventDisconnected, drivers.EventConnected}) {
			t.Errorf("events %v", got)
		}
		ev := func() drivers.Event { _, e := rec.snapshot(); return e[0] }()
		if !strings.Contains(ev.Err.Error(), "open /dev/ttyUSB0") || !errors.Is(ev.Err, os.ErrNotExist) {
			t.Errorf("disconnected error %v", ev.Err)
		}
		stop()
	})
}

// TestDriver_RTU_Synctest_Retries: a read that times out is sent again Retries times, each
// after the device's request delay; the poll succeeds on the last.
func TestDriver_RTU_Synctest_Retries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newMemBus(t)
		b.tables.setHolding(0, 8)
		var at []time.Duration
		start := time.Now()
		b.setHandler(func(c *rtuConn, req request) {
			at = append(at, time.Since(start))
			if len(at) <= 2 {
				return // lost
			}
			c.answer(req)
		})
		dev := rtuDevice("/dev/ttyUSB0", 1, tag("a", "hr:0", drivers.TypeUint16, ""))
		dev.PollInterval, dev.Timeout = time.Hour, 100*time.Millisecond
		dev.Modbus.Retries, dev.Modbus.RequestDelay = 2, 30*time.Millisecond
		d := newRTUBubbleDriver(t, b, Options{}, dev)
		rec := &recorder{}
		stop := bubbleRun(t, d, rec)
		advance(time.Second)
		stop()
		if len(at) != 3 {
			t.Fatalf("%d requests, want 3", len(at))
		}
		for i := 1; i < 3; i++ {
			// timeout 100 ms + wire + resync 50 ms + delay 30 ms + flush.
			if gap := at[i] - at[i-1]; gap < 180*time.Millisecond || gap > 190*time.Millisecond {
				t.Errorf("retry %d after %v", i, gap)
			}
		}
		if batches, _ := rec.snapshot(); len(batches) != 1 || !allGood(batches[0]) {
			t.Errorf("batches %+v", batches)
		}
	})
}

// TestDriver_RTU_Synctest_Shutdown: cancelling while a request waits returns at once (within
// one 1 ms poll slice of the port), reporting nothing.
func TestDriver_RTU_Synctest_Shutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newMemBus(t)
		b.setSilent(1, true)
		dev := rtuDevice("/dev/ttyUSB0", 1, tag("a", "hr:0", drivers.TypeUint16, ""))
		dev.Timeout = time.Hour
		d := newRTUBubbleDriver(t, b, Options{}, dev)
		rec := &recorder{}
		stop := bubbleRun(t, d, rec)
		advance(time.Minute)
		at := time.Now()
		stop()
		if el := time.Since(at); el > rtuPollSlice {
			t.Errorf("Run returned %v after cancel", el)
		}
		if bs, ev := rec.snapshot(); len(bs) != 0 || len(ev) != 0 {
			t.Errorf("%d batches, %d events from an aborted request", len(bs), len(ev))
		}
	})
}

// FuzzRTU_ReadFrame feeds arbitrary bytes, in two chunks as a USB adapter may deliver them, as
// the line after a request for unit 1, function 3, 2 registers (4 bytes). The frame reader must
// never panic, and whatever it returns must be a whole frame for that request: unit 1, function
// 3 with byte count 4 or an exception to function 3, and a good CRC.
func FuzzRTU_ReadFrame(f *testing.F) {
	ok := rtuFrame(1, []byte{3, 4, 0, 1, 0, 2})
	f.Add(ok, uint8(3))
	f.Add(append(rtuFrame(2, []byte{3, 4, 9, 9, 9, 9}), ok...), uint8(5))
	f.Add(append([]byte{0, 0xFF, 1}, ok...), uint8(1))
	f.Add(rtuFrame(1, []byte{0x83, 2}), uint8(2))
	f.Add(append(rtuFrame(1, []byte{3, 2, 0, 1}), ok...), uint8(9))
	f.Add([]byte{1, 3, 4, 0, 1, 0, 2, 0, 0}, uint8(4))
	f.Fuzz(func(t *testing.T, stream []byte, split uint8) {
		if len(stream) > 1024 {
			return
		}
		cut := min(int(split), len(stream))
		port := &chunkPort{chunks: [][]byte{stream[:cut], stream[cut:]}}
		tr := &rtuTransport{ctx: context.Background(), p: port}
		frame, err := tr.readFrame(1, 3, 4, time.Now().Add(time.Minute))
		if err != nil {
			var ce *connError
			var fe *frameError
			if !errors.As(err, &ce) && !errors.As(err, &fe) {
				t.Fatalf("error %v (%T)", err, err)
			}
			return
		}
		n := len(frame)
		if frame[0] != 1 || crcRef(frame[:n-2]) != binary.LittleEndian.Uint16(frame[n-2:]) {
			t.Fatalf("frame % x: not unit 1 or bad CRC", frame)
		}
		if !(frame[1] == 3 && frame[2] == 4 && n == 9) && !(frame[1] == 0x83 && n == 5) {
			t.Fatalf("frame % x does not answer the request", frame)
		}
	})
}

// chunkPort hands out its chunks one Read at a time, then fails as a closed port.
type chunkPort struct{ chunks [][]byte }

func (p *chunkPort) Read(b []byte) (int, error) {
	for len(p.chunks) > 0 {
		c := p.chunks[0]
		n := copy(b, c)
		if n == len(c) {
			p.chunks = p.chunks[1:]
		} else {
			p.chunks[0] = c[n:]
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, os.ErrClosed
}
func (p *chunkPort) Write(b []byte) (int, error) { return len(b), nil }
func (p *chunkPort) Close() error                { return nil }
