package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Port is a serial line as RunRTU uses it: the *os.File of a pty master (OpenPTY) or of a serial
// device (OpenSerial) satisfies it. SetReadDeadline must work: silence is how RTU frames end.
type Port interface {
	io.ReadWriteCloser
	SetReadDeadline(t time.Time) error
}

// Parity of an RTU line's characters.
type Parity string

// The parities; the zero Parity means none.
const (
	ParityNone Parity = "none"
	ParityEven Parity = "even"
	ParityOdd  Parity = "odd"
)

// RTUOptions describe an RTU line. The zero value is 115200 baud, 8 data bits, no parity, one
// stop bit (8N1), paced at that speed.
type RTUOptions struct {
	// Baud is the line speed in bits per second. Zero means 115200.
	Baud int
	// Parity is none, even or odd. Empty means none (the Modbus default is even, but most
	// integrators' adapters and all of our tests use none).
	Parity Parity
	// StopBits is 1 or 2. Zero means 1.
	StopBits int
	// NoPacing writes answers as soon as they are ready. By default an answer is written no
	// sooner than a real line could have carried it (see RTUOptions.WireTime): a pty carries
	// bytes instantly, whatever baud rate it is set to.
	NoPacing bool
	// Silence is the quiet time that ends a frame in progress, so that the framer resynchronises
	// after garbage or a frame cut short. Zero means the spec's 3.5 character times (1.75 ms
	// above 19200 baud) but at least 20 ms, since USB serial adapters and ptys deliver one frame
	// in pieces up to ~16 ms apart. Frames are found by length and CRC, not by silence.
	Silence time.Duration
}

// withDefaults returns o with zero fields set, or an error naming the bad field.
func (o RTUOptions) withDefaults() (RTUOptions, error) {
	if o.Baud == 0 {
		o.Baud = 115200
	}
	if o.Parity == "" {
		o.Parity = ParityNone
	}
	if o.StopBits == 0 {
		o.StopBits = 1
	}
	var errs []error
	if o.Baud < 50 || o.Baud > 4_000_000 {
		errs = append(errs, fmt.Errorf("baud %d outside 50..4000000", o.Baud))
	}
	switch o.Parity {
	case ParityNone, ParityEven, ParityOdd:
	default:
		errs = append(errs, fmt.Errorf("parity %q: want none, even or odd", string(o.Parity)))
	}
	if o.StopBits != 1 && o.StopBits != 2 {
		errs = append(errs, fmt.Errorf("stop bits %d: want 1 or 2", o.StopBits))
	}
	if o.Silence < 0 {
		errs = append(errs, fmt.Errorf("silence %v is negative", o.Silence))
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("modbus rtu options: %w", err)
	}
	if o.Silence == 0 {
		o.Silence = max(o.frameGap(), 20*time.Millisecond)
	}
	return o, nil
}

// bitsPerChar is start bit, 8 data bits, parity bit if any, stop bits: 10 for 8N1, 11 for 8E1,
// 8O1 and 8N2 (spec 2.5.1).
func (o RTUOptions) bitsPerChar() int {
	n := 1 + 8 + o.StopBits
	if o.Parity == ParityEven || o.Parity == ParityOdd {
		n++
	}
	return n
}

// charTime is the time one character takes on the wire.
func (o RTUOptions) charTime() time.Duration {
	return time.Duration(o.bitsPerChar()) * time.Second / time.Duration(o.Baud)
}

// frameGap is the spec's minimum silence between frames: 3.5 character times, fixed at 1.75 ms
// above 19200 baud (spec 2.5.1.1, implementation note).
func (o RTUOptions) frameGap() time.Duration {
	if o.Baud > 19200 {
		return 1750 * time.Microsecond
	}
	return 7 * o.charTime() / 2
}

// WireTime is the least time a paced line takes from the client's write of an n-byte request to
// the last byte of an m-byte answer: both frames at the wire speed (bits per character / baud)
// plus the spec's 3.5-character silence between them. Zero fields take their defaults.
func (o RTUOptions) WireTime(request, answer int) time.Duration {
	o, err := o.withDefaults()
	if err != nil {
		return 0
	}
	return time.Duration(request+answer)*o.charTime() + o.frameGap()
}

// rtuRequest is one frame for a unit's worker.
type rtuRequest struct {
	frame []byte    // the whole ADU, CRC checked
	rx    time.Time // when its last byte was read
}

// RunRTU serves Modbus RTU on port until ctx ends, then closes port, waits for its goroutines and
// returns nil; it returns an error if opts are invalid or the port fails otherwise. Each unit the
// Source has (1..247) answers its own frames, as devices sharing an RS-485 bus: a delayed or
// silent unit holds up only itself (a unit still waiting out delays queues 16 frames and misses
// the ones beyond). Frames for other units, broadcasts (unit 0) and frames with a bad CRC are not
// answered, as the serial line spec requires; answers never collide on the line. RunRTU may run
// beside Run, on the same Server and faults.
func (s *Server) RunRTU(ctx context.Context, port Port, opts RTUOptions) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		port.Close() // unblocks the read below and any write
	})
	l := &rtuLine{w: port, now: s.now}
	if !o.NoPacing {
		l.char, l.gap = o.charTime(), o.frameGap()
	}
	err = s.readRTU(ctx, port, o, l, &wg)
	parentDone := ctx.Err() != nil
	cancel()
	wg.Wait()
	if parentDone {
		return nil
	}
	return err
}

// readRTU reads port until it fails, frames what it reads and hands frames to one worker
// goroutine per unit, started on the unit's first frame and owned by wg.
func (s *Server) readRTU(ctx context.Context, port Port, o RTUOptions, l *rtuLine, wg *sync.WaitGroup) error {
	var (
		fr      rtuFramer
		buf     [512]byte
		last    time.Time // when the last byte arrived
		workers [256]chan rtuRequest
		now     time.Time
	)
	emit := func(frame []byte, _ int64) {
		unit := frame[0]
		if !s.rtuAddressed(unit) {
			return
		}
		if workers[unit] == nil {
			workers[unit] = make(chan rtuRequest, 16)
			ch := workers[unit]
			wg.Go(func() { s.rtuWorker(ctx, ch, l, wg) })
		}
		select {
		case workers[unit] <- rtuRequest{frame: append([]byte(nil), frame...), rx: now}:
		default:
			// The unit is still busy with earlier frames (a long SetDelay): it misses this one,
			// as a device that is not listening, rather than stall the bus for the others.
			s.log.Debug("modbus rtu frame dropped: unit busy", "unit", unit)
		}
	}
	for {
		deadline := time.Time{}
		if fr.pending() {
			deadline = last.Add(o.Silence)
		}
		if err := port.SetReadDeadline(deadline); err != nil {
			return fmt.Errorf("set read deadline on modbus rtu port: %w", err)
		}
		n, err := port.Read(buf[:])
		now = time.Now()
		if n > 0 {
			if fr.pending() && now.Sub(last) >= o.Silence {
				fr.gap(emit)
			}
			last = now
			fr.push(buf[:n], emit)
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			fr.gap(emit)
		case ctx.Err() != nil:
			return nil
		default:
			return fmt.Errorf("read modbus rtu port: %w", err)
		}
	}
}

// rtuWorker answers one unit's frames in order until ctx ends.
func (s *Server) rtuWorker(ctx context.Context, reqs <-chan rtuRequest, l *rtuLine, wg *sync.WaitGroup) {
	var (
		sc  scratch
		out = make([]byte, 0, rtuMaxFrame)
	)
	for {
		var req rtuRequest
		select {
		case req = <-reqs:
		case <-ctx.Done():
			return
		}
		unit := req.frame[0]
		var sv served
		var err error
		out, sv, err = s.answerRTU(ctx, req.frame, out[:0], &sc)
		if err != nil {
			return
		}
		if sv.silent {
			continue
		}
		// The answer may start once the request could have crossed the wire and the line has
		// been quiet for 3.5 characters (spec 2.5.1.1).
		ready := req.rx.Add(time.Duration(len(req.frame))*l.char + l.gap)
		if d := s.lateBy(unit); d > 0 {
			adu := append([]byte(nil), out...)
			sv.values = append([]uint16(nil), sv.values...)
			ready = maxTime(ready, req.rx.Add(d))
			wg.Go(func() {
				if at, err := l.send(ctx, adu, ready, s.fragments.Load()); err == nil {
					s.observe(sv, at)
				}
			})
			continue
		}
		at, err := l.send(ctx, out, ready, s.fragments.Load())
		if err != nil {
			return
		}
		s.observe(sv, at)
	}
}

// rtuAddressed reports whether a frame for unit is answered on the line: not a broadcast (unit
// 0, which the spec never answers) and a unit the Source has. The others are devices on the bus
// that plcsim does not simulate; they stay silent rather than answer exception 0x0B as a TCP
// gateway would.
func (s *Server) rtuAddressed(unit byte) bool { return unit != 0 && s.src.HasUnit(unit) }

// answerRTU appends to dst the answer ADU to frame (a whole request ADU with a valid CRC, for a
// unit rtuAddressed accepts): unit id, response PDU, CRC. It waits out any delay first, and
// answers nothing when the unit is silent (served.silent).
func (s *Server) answerRTU(ctx context.Context, frame, dst []byte, sc *scratch) ([]byte, served, error) {
	unit, pdu := frame[0], frame[1:len(frame)-2]
	start := len(dst)
	dst, sv, err := s.respond(ctx, unit, pdu, append(dst, unit), sc)
	if err != nil || sv.silent {
		return dst[:start], sv, err
	}
	return appendCRC(dst), sv, nil
}

// rtuLine writes answers onto the line one frame at a time, paced like the wire.
type rtuLine struct {
	w    io.Writer
	now  func() time.Time
	char time.Duration // wire time of one character; 0: no pacing
	gap  time.Duration // silence between frames; 0: no pacing

	mu   sync.Mutex // one frame at a time on the line; guards free
	free time.Time  // when the line may carry the next frame
}

// send writes adu no sooner than ready, once the line is free, each piece (SetFragments) when
// its last byte would have left a real UART, and returns the time stamped just before the last
// write. The line is held from the first byte to the last (plus the silence after), never while
// waiting for ready. ctx ending abandons it.
func (l *rtuLine) send(ctx context.Context, adu []byte, ready time.Time, f *Fragments) (time.Time, error) {
	var buf [8]int
	sizes := f.pieces(buf[:0], len(adu))
	// Wait for ready without the line: a late answer must not hold up the others meanwhile.
	if err := sleepUntil(ctx, ready); err != nil {
		return time.Time{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := maxTime(ready, l.free)
	var at time.Time
	for i, n := range sizes {
		if i > 0 {
			t = maxTime(t, time.Now()).Add(f.Gap)
		}
		t = t.Add(time.Duration(n) * l.char)
		if err := sleepUntil(ctx, t); err != nil {
			return at, err
		}
		if i == len(sizes)-1 {
			at = l.now()
		}
		if _, err := l.w.Write(adu[:n]); err != nil {
			return at, err
		}
		adu = adu[n:]
	}
	l.free = maxTime(t, time.Now()).Add(l.gap)
	return at, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
