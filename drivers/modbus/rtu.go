package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/goburrow/serial"

	"github.com/floorlink/floorlink/drivers"
)

// RTU framing (MODBUS over Serial Line Specification and Implementation Guide V1.02, 2.5.1):
// unit id, PDU, CRC-16 low byte first; at most 256 bytes.
const (
	rtuMaxADU = 256
	// rtuMinQuiet is the floor of the silence that ends a resynchronisation. USB serial
	// adapters hand over what they received in chunks up to about 16 ms apart, so a shorter
	// silence is no proof that a frame ended.
	rtuMinQuiet = 20 * time.Millisecond
	// rtuPollSlice is the serial port's read timeout: the longest one Read blocks with nothing
	// to read. goburrow/serial fixes it when the port is opened, so the transport polls in
	// slices to honour its own per-request deadline and cancellation; it costs one wake-up per
	// millisecond while a reply is awaited, and nothing while the line delivers.
	rtuPollSlice = time.Millisecond
	// rtuLateSlack is the least time after its deadline that an answer to a request that timed
	// out is still told apart from the answers of later requests (see rtuTransport).
	rtuLateSlack = time.Second
)

// openFunc opens a serial port; goburrow/serial's Open in production, a fake in tests. Read on
// the port returns (0, serial.ErrTimeout) when nothing arrived within cfg.Timeout.
type openFunc func(cfg *serial.Config) (io.ReadWriteCloser, error)

func openSerial(cfg *serial.Config) (io.ReadWriteCloser, error) { return serial.Open(cfg) }

// serialConfig maps a device's line setting to goburrow/serial's.
func serialConfig(path string, s drivers.Serial) serial.Config {
	c := serial.Config{Address: path, BaudRate: s.Baud, DataBits: s.DataBits, StopBits: s.StopBits,
		Parity: "N", Timeout: rtuPollSlice}
	switch s.Parity {
	case "even":
		c.Parity = "E"
	case "odd":
		c.Parity = "O"
	}
	if c.BaudRate == 0 {
		c.BaudRate = 9600
	}
	if c.DataBits == 0 {
		c.DataBits = 8
	}
	if c.StopBits == 0 {
		c.StopBits = 1
	}
	return c
}

// staleReq is a request that timed out, or whose answer may have been a late one: its own
// answer may still come until until.
type staleReq struct {
	unit, fc  byte
	addr, qty uint16
	until     time.Time
}

// rtuTransport is our modbus.Transporter for Modbus RTU on a serial port, with goburrow's
// RTUClientHandler used only as the packager (CRC, unit id). goburrow's own serial transporter
// sleeps a fixed time before reading (request plus expected response at 750 µs a character above
// 19200 baud: 199 ms for a 125-register read, so at most 5 requests/s at 115200), never flushes
// input, has no lock, and takes a late answer for the next request's: research/modbus.md §1.
// This one:
//
//   - flushes input before each request (drops what arrives until the line has been quiet for
//     the inter-frame gap t3.5, which the protocol requires anyway);
//   - reads the reply framed by its expected length (unit id, function code, byte count;
//     exception frames are 5 bytes) under a per-request deadline of the wire time plus the
//     device's timeout, so chunked delivery (USB adapters) and fragmented frames are fine;
//     inter-character gaps never end a frame;
//   - checks the CRC; skips a whole, valid frame meant for another unit or another request (a
//     late answer), and slides over bytes that start no plausible frame (line noise);
//   - after a timeout or a garbled reply, resynchronises: drains until the line has been quiet
//     for ResyncQuiet (at least 20 ms);
//   - remembers requests that timed out for their timeout (and wire time) again, at least one
//     second more, and before sending a request whose answer could not be told from theirs
//     (same unit and function, other registers) waits that window out while draining, so a
//     late answer, even one that began after the resynchronisation, is never taken for another
//     request's (RTU has no transaction id); an identical request needs no wait, since a late
//     answer to it holds the same registers;
//   - polls the port in 1 ms slices, so cancelling the Run returns within a slice.
//
// It lives for one Run call and is used from that goroutine only; the cancel hook only sets a
// flag.
type rtuTransport struct {
	ctx      context.Context
	cfg      serial.Config
	open     openFunc
	timeout  time.Duration // of the current request; set by the poll loop before each one
	quiet    time.Duration // silence that ends a resynchronisation
	charTime time.Duration // one character on the wire
	gap      time.Duration // t3.5, the silence between frames
	stop     func() bool
	canceled atomic.Bool

	p io.ReadWriteCloser
	// buf[r:w] is what was read and not consumed yet. The frame Send returns aliases buf and,
	// like goburrow's data slices into it, is valid until the next Send.
	buf  [4 * rtuMaxADU]byte
	r, w int

	stale []staleReq
}

func newRTUTransport(ctx context.Context, cfg serial.Config, timeout, quiet time.Duration, open openFunc) *rtuTransport {
	bits := 1 + cfg.DataBits + cfg.StopBits
	if cfg.Parity != "N" {
		bits++
	}
	t := &rtuTransport{ctx: ctx, cfg: cfg, open: open, timeout: timeout, quiet: max(quiet, rtuMinQuiet),
		charTime: time.Duration(bits) * time.Second / time.Duration(cfg.BaudRate)}
	// The spec fixes t3.5 at 1.75 ms above 19200 baud, where 3.5 characters would be shorter
	// than most UARTs and operating systems can time.
	t.gap = 1750 * time.Microsecond
	if cfg.BaudRate <= 19200 {
		t.gap = 7 * t.charTime / 2
	}
	t.stop = context.AfterFunc(ctx, func() { t.canceled.Store(true) })
	return t
}

func (t *rtuTransport) setTimeout(d time.Duration) { t.timeout = d }

func (t *rtuTransport) connected() bool { return t.p != nil }

func (t *rtuTransport) close() {
	if t.p != nil {
		t.p.Close()
		t.p = nil
	}
	t.r, t.w = 0, 0
}

func (t *rtuTransport) release() {
	t.stop()
	t.close()
}

// connect opens the port when it is not open.
func (t *rtuTransport) connect() error {
	if t.p != nil {
		return nil
	}
	if t.canceled.Load() {
		return &connError{err: context.Cause(t.ctx), dial: true}
	}
	p, err := t.open(&t.cfg)
	if err != nil {
		return &connError{err: fmt.Errorf("open %s: %w", t.cfg.Address, err), dial: true}
	}
	t.p = p
	t.r, t.w = 0, 0
	return nil
}

// wire is the time n characters take on the line.
func (t *rtuTransport) wire(n int) time.Duration { return time.Duration(n) * t.charTime }

// Send implements modbus.Transporter: it writes one request ADU and returns the reply framed
// as the type's comment says. The returned slice is valid until the next Send.
func (t *rtuTransport) Send(req []byte) ([]byte, error) {
	if len(req) < 4 || len(req) > rtuMaxADU {
		return nil, fmt.Errorf("request of %d bytes is not an RTU frame", len(req))
	}
	if err := t.connect(); err != nil {
		return nil, err
	}
	unit, fc := req[0], req[1]
	var addr, qty uint16
	want := -1 // expected byte count of a normal answer
	if len(req) == 8 && fc >= 1 && fc <= 4 {
		addr, qty = uint16(req[2])<<8|uint16(req[3]), uint16(req[4])<<8|uint16(req[5])
		want = 2 * int(qty)
		if fc <= 2 {
			want = (int(qty) + 7) / 8
		}
	}

	if err := t.settle(unit, fc, addr, qty); err != nil {
		return nil, err
	}
	// Flush: what is buffered or arrives before the line has been quiet for t3.5 belongs to
	// no request of ours. The wait is the inter-frame silence the protocol requires.
	if err := t.drain(t.gap, t.timeout, time.Time{}); err != nil {
		return nil, err
	}
	sent := time.Now()
	if err := t.write(req, sent.Add(t.timeout)); err != nil {
		return nil, err
	}
	respLen := 5
	if want >= 0 {
		respLen = 5 + want
	}
	window := t.wire(len(req)+respLen) + t.timeout
	// An answer that missed its deadline is still expected for as long again, and at least
	// rtuLateSlack more: a slow device's late answer lands there, and is known for one.
	late := sent.Add(window + max(window, rtuLateSlack))
	frame, err := t.readFrame(unit, fc, want, sent.Add(window))
	if err == nil {
		t.answered(unit, fc, addr, qty, late)
		return frame, nil
	}
	var ce *connError // after the nil check: errors.As makes them escape
	var fe *frameError
	switch {
	case errors.As(err, &ce) && ce.timeout():
		t.stale = append(t.stale, staleReq{unit: unit, fc: fc, addr: addr, qty: qty, until: late})
		if err := t.resync(); err != nil {
			return nil, err
		}
	case errors.As(err, &fe):
		if err := t.resync(); err != nil {
			return nil, err
		}
	}
	// Other errors: the port failed (fill closed it) or the Run was cancelled.
	return nil, err
}

// answered notes that the request (unit, fc, addr, qty), sent while earlier identical ones were
// still possibly to be answered, got an answer: it may have been theirs, and then its own may
// come until until.
func (t *rtuTransport) answered(unit, fc byte, addr, qty uint16, until time.Time) {
	for i := range t.stale {
		s := &t.stale[i]
		if s.unit == unit && s.fc == fc && s.addr == addr && s.qty == qty && s.until.Before(until) {
			s.until = until
		}
	}
}

// settle waits, draining the line, until no request that timed out could still be answered
// with a frame that looks like the answer to (unit, fc, addr, qty): same unit and function,
// other registers (for an exception, any other registers). Identical requests need no wait:
// their late answer holds the same registers.
func (t *rtuTransport) settle(unit, fc byte, addr, qty uint16) error {
	now := time.Now()
	var until time.Time
	live := t.stale[:0]
	for _, s := range t.stale {
		if !now.Before(s.until) {
			continue
		}
		if s.unit == unit && s.fc == fc && (s.addr != addr || s.qty != qty) {
			until = maxTime(until, s.until)
			continue // waited out below
		}
		live = append(live, s)
	}
	clear(t.stale[len(live):])
	t.stale = live
	if until.IsZero() {
		return nil
	}
	return t.drain(0, 0, until)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// resync drains the line until it has been quiet for t.quiet, at most for the request timeout
// (a line that never falls quiet, such as one with another master on it, is left to the next
// request's framing).
func (t *rtuTransport) resync() error {
	return t.drain(t.quiet, max(t.timeout, t.quiet), time.Time{})
}

// drain reads and drops bytes, buffered ones included: until the line has been quiet for quiet
// (for at most limit), or until the time until when it is not zero. It fails only when the port
// fails (and closes it) or the Run is cancelled.
func (t *rtuTransport) drain(quiet, limit time.Duration, until time.Time) error {
	start := time.Now()
	last := start
	t.r, t.w = 0, 0
	for {
		if t.canceled.Load() {
			return &connError{err: context.Cause(t.ctx)}
		}
		now := time.Now()
		if until.IsZero() {
			if now.Sub(last) >= quiet || now.Sub(start) >= limit {
				return nil
			}
		} else if !now.Before(until) {
			return nil
		}
		n, err := t.p.Read(t.buf[:])
		if n > 0 {
			last = time.Now()
		}
		if err != nil && !isPollTimeout(err) {
			t.close()
			return &connError{err: fmt.Errorf("read: %w", err)}
		}
		if n <= 0 && err == nil {
			t.close()
			return &connError{err: fmt.Errorf("read: %w", io.EOF)}
		}
	}
}

// isPollTimeout reports whether a port Read found nothing to read within its slice.
func isPollTimeout(err error) bool {
	return errors.Is(err, serial.ErrTimeout) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR)
}

// write writes all of req before deadline. goburrow/serial's port is non-blocking: a full
// output buffer shows as EAGAIN or a short write.
func (t *rtuTransport) write(req []byte, deadline time.Time) error {
	for off := 0; off < len(req); {
		if t.canceled.Load() {
			return &connError{err: context.Cause(t.ctx)}
		}
		n, err := t.p.Write(req[off:])
		if n > 0 {
			off += n
		}
		switch {
		case err == nil:
		case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR):
			if !time.Now().Before(deadline) {
				return &connError{err: fmt.Errorf("write request: %w", os.ErrDeadlineExceeded)}
			}
			<-time.After(rtuPollSlice)
		default:
			t.close()
			return &connError{err: fmt.Errorf("write request: %w", err)}
		}
	}
	return nil
}

// fill reads until buf[r:] holds at least n bytes, or deadline passes (a timeout connError),
// the Run is cancelled or the port fails (a connError; the port is closed).
func (t *rtuTransport) fill(n int, deadline time.Time) error {
	for t.w-t.r < n {
		if t.canceled.Load() {
			return &connError{err: context.Cause(t.ctx)}
		}
		if !time.Now().Before(deadline) {
			return &connError{err: fmt.Errorf("read reply: %w", os.ErrDeadlineExceeded)}
		}
		if len(t.buf)-t.r < rtuMaxADU+8 {
			t.w = copy(t.buf[:], t.buf[t.r:t.w])
			t.r = 0
		}
		m, err := t.p.Read(t.buf[t.w:])
		if m > 0 {
			t.w += m
		}
		if err != nil && !isPollTimeout(err) {
			t.close()
			return &connError{err: fmt.Errorf("read reply: %w", err)}
		}
		if m <= 0 && err == nil {
			t.close()
			return &connError{err: fmt.Errorf("read reply: %w", io.EOF)}
		}
	}
	return nil
}

// readFrame returns the next valid frame answering (unit, fc) with a byte count of want (-1:
// any), or an exception for it. Whole frames with a valid CRC for another unit or request are
// dropped; bytes that start no plausible frame, or a plausible frame with a bad CRC, are
// skipped one at a time; a frame that has the expected header and a bad CRC is our answer
// garbled: a frameError. While it waits for the rest of a frame that is not ours (noise can
// look like the header of a long one), it watches for a whole frame of ours behind it.
func (t *rtuTransport) readFrame(unit, fc byte, want int, deadline time.Time) ([]byte, error) {
	for {
		if err := t.fill(3, deadline); err != nil {
			return nil, err
		}
		n, ours := frameLen(t.buf[t.r:t.r+3], unit, fc, want)
		if n == 0 {
			t.r++
			continue
		}
		for t.w-t.r < n {
			if !ours {
				if k := t.findOurs(unit, fc, want); k > 0 {
					t.r = k
					break
				}
			}
			if err := t.fill(t.w-t.r+1, deadline); err != nil {
				return nil, err
			}
		}
		if t.w-t.r < n {
			continue // jumped to a frame of ours
		}
		frame := t.buf[t.r : t.r+n]
		if crc16(frame[:n-2]) != uint16(frame[n-2])|uint16(frame[n-1])<<8 {
			if ours {
				t.r += n
				return nil, &frameError{fmt.Sprintf("reply % x...: CRC does not match", frame[:3])}
			}
			t.r++
			continue
		}
		t.r += n
		if ours {
			return frame, nil
		}
	}
}

// findOurs returns the offset in buf, after t.r, of a whole frame with a good CRC that answers
// (unit, fc) with want bytes, or 0.
func (t *rtuTransport) findOurs(unit, fc byte, want int) int {
	for k := t.r + 1; k+3 <= t.w; k++ {
		if t.buf[k] != unit {
			continue
		}
		n, ours := frameLen(t.buf[k:k+3], unit, fc, want)
		if !ours || k+n > t.w {
			continue
		}
		if f := t.buf[k : k+n]; crc16(f[:n-2]) == uint16(f[n-2])|uint16(f[n-1])<<8 {
			return k
		}
	}
	return 0
}

// frameLen returns the length of the frame that the header h (unit, function, byte count or
// exception code) starts, 0 if it starts none that a master reading with function codes 1-4
// could see, and whether it answers (unit, fc) with want bytes.
func frameLen(h []byte, unit, fc byte, want int) (n int, ours bool) {
	u, f, c := h[0], h[1], h[2]
	switch {
	case f >= 1 && f <= 4:
		if c == 0 || c > 250 {
			return 0, false
		}
		return 5 + int(c), u == unit && f == fc && (want < 0 || int(c) == want)
	case f >= 0x81 && f <= 0x84 || f == fc|0x80:
		if c == 0 {
			return 0, false
		}
		return 5, u == unit && f == fc|0x80
	}
	return 0, false
}

// crc16 is the Modbus CRC (polynomial 0xA001 reflected, initial 0xFFFF). Our own, not
// goburrow's, so that the frame reader can check a candidate frame before the packager sees it.
func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
