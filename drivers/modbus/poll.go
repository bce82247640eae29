package modbus

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/goburrow/modbus"

	"github.com/floorlink/floorlink/drivers"
)

// outcome is how a read ended, as far as the rest of the poll is concerned.
type outcome uint8

const (
	outcomeOK       outcome = iota // answered: data, or an exception confined to the read
	outcomeSkip                    // the device is not answering: skip the rest of its poll
	outcomeConnDown                // the connection failed: end the poll, back off
)

// poll reads every read of g once, in turn, and hands the group's batch to the sink. It
// reports false when the connection failed (or could not be opened); it sends nothing when the
// Run's context ended meanwhile.
func (s *session) poll(g *group) bool {
	dev := g.dev
	s.t.setTimeout(dev.timeout)
	if err := s.t.connect(); err != nil {
		if s.ctx.Err() != nil {
			return false
		}
		s.unreachable(err)
		return false
	}
	samples := g.batch.Samples
	skip := ""
	for _, p := range g.reads {
		if skip != "" {
			setBad(samples, p.fields, skip)
			continue
		}
		out, reason, err := s.pollRead(g, p)
		if s.ctx.Err() != nil {
			return false
		}
		switch out {
		case outcomeSkip:
			skip = reason
		case outcomeConnDown:
			for _, q := range g.reads[slices.Index(g.reads, p):] {
				setBad(samples, q.fields, reasonUnreachable)
			}
			s.connDown(err)
			s.emit(g)
			return false
		}
	}
	s.emit(g)
	return true
}

// pollRead reads p (or the pieces exception isolation split it into) into the group's batch.
// For outcomeSkip it returns the reason to mark the rest of the poll with; for outcomeConnDown
// the connection's error.
func (s *session) pollRead(g *group, p *planned) (outcome, string, error) {
	if p.split != nil && time.Since(p.learned) < s.d.reprobe {
		return s.readPieces(g, p)
	}
	err := s.exec(g.dev, &p.read, g.batch.Samples)
	if code, ok := isolatable(err); ok && len(p.fields) > 1 {
		if p.split != nil {
			// A re-probe that still fails: keep what was learned, for another interval.
			p.learned = time.Now()
			return s.readPieces(g, p)
		}
		pieces, out, reason, berr := s.bisect(g, p.read, code)
		if out != outcomeOK {
			return out, reason, berr
		}
		p.split, p.learned, p.faulty = mergePieces(pieces, g.dev), time.Now(), false
		s.fault(g.dev, p, fmt.Errorf("%s: %w; split into %s", p.what, err, describePieces(p.split)))
		return outcomeOK, "", nil
	}
	out, reason, err := s.settle(g, &p.piece, err)
	switch {
	case err == nil:
		if p.split != nil {
			g.dev.log.Info("read heals: exception gone, reading it whole again", "read", p.what)
			p.split = nil
		}
		p.faulty = false
	case out == outcomeOK || isException(err):
		s.fault(g.dev, p, err)
	}
	return out, reason, err
}

// readPieces reads the pieces p was split into; a piece that now fails with an isolatable
// exception is split further.
func (s *session) readPieces(g *group, p *planned) (outcome, string, error) {
	var faultErr error
	for i := 0; i < len(p.split); i++ {
		pc := &p.split[i]
		err := s.exec(g.dev, &pc.read, g.batch.Samples)
		if code, ok := isolatable(err); ok && len(pc.fields) > 1 {
			sub, out, reason, berr := s.bisect(g, pc.read, code)
			if out != outcomeOK {
				markRest(g, p.split[i+1:], reason)
				return out, reason, berr
			}
			sub = mergePieces(sub, g.dev)
			p.split = slices.Concat(p.split[:i], sub, p.split[i+1:])
			i += len(sub) - 1
			if faultErr == nil {
				faultErr = fmt.Errorf("%s: %w; split into %s", pc.what, err, describePieces(sub))
			}
			continue
		}
		out, reason, err := s.settle(g, pc, err)
		if err != nil && faultErr == nil && (out == outcomeOK || isException(err)) {
			faultErr = err
		}
		if out != outcomeOK {
			markRest(g, p.split[i+1:], reason)
			if faultErr != nil {
				s.fault(g.dev, p, faultErr)
			}
			return out, reason, err
		}
	}
	if faultErr != nil {
		s.fault(g.dev, p, faultErr)
	} else {
		p.faulty = false
	}
	return outcomeOK, "", nil
}

// markRest marks the tags of the pieces a failed poll did not get to.
func markRest(g *group, rest []piece, reason string) {
	if reason == "" {
		reason = reasonUnreachable
	}
	for _, pc := range rest {
		setBad(g.batch.Samples, pc.fields, reason)
	}
}

// bisect isolates the failing ranges of r, which was just answered with exception code: it
// splits r's tags in two halves, reads each (both in this poll, so every tag that can be read
// is), and splits again the halves that fail the same way, down to single tags, which keep the
// exception as their reason. It returns the pieces that replace r.
func (s *session) bisect(g *group, r read, code byte) ([]piece, outcome, string, error) {
	if len(r.fields) == 1 || sameRange(r.fields) {
		setBad(g.batch.Samples, r.fields, exceptionReason(code))
		pc := newPiece(r, g.dev)
		pc.failed = exceptionReason(code)
		return []piece{pc}, outcomeOK, "", nil
	}
	var out []piece
	h := len(r.fields) / 2
	halves := [][]field{r.fields[:h], r.fields[h:]}
	for k, half := range halves {
		sub := subRead(r, half)
		err := s.exec(g.dev, &sub, g.batch.Samples)
		o, reason := outcomeOK, ""
		if c, ok := isolatable(err); ok {
			var pieces []piece
			pieces, o, reason, err = s.bisect(g, sub, c)
			out = append(out, pieces...)
		} else {
			pc := newPiece(sub, g.dev)
			o, reason, err = s.settle(g, &pc, err)
			if err != nil {
				pc.failed = "failed"
			}
			out = append(out, pc)
		}
		if o != outcomeOK {
			// The device stopped answering (or the connection failed) half way: the tags of
			// r not read in this poll get the reason too.
			if reason == "" {
				reason = reasonUnreachable
			}
			for _, rest := range halves[k+1:] {
				setBad(g.batch.Samples, rest, reason)
			}
			return nil, o, reason, err
		}
	}
	return out, outcomeOK, "", nil
}

// sameRange reports whether every field covers the same registers: splitting them cannot
// isolate anything.
func sameRange(fs []field) bool {
	for _, f := range fs[1:] {
		if f.off != fs[0].off || f.n != fs[0].n {
			return false
		}
	}
	return true
}

// subRead is the read of fields (a part of r's, in address order) alone: from the first
// register of the first to the last of any.
func subRead(r read, fields []field) read {
	first, last := int(fields[0].off), 0
	for _, f := range fields {
		last = max(last, int(f.off)+int(f.n)-1)
	}
	out := read{space: r.space, start: r.start + uint16(first), count: uint16(last - first + 1), fields: slices.Clone(fields)}
	for i := range out.fields {
		out.fields[i].off -= uint16(first)
	}
	return out
}

// mergePieces joins neighbouring pieces that read fine and whose registers touch or overlap:
// bisection cut them apart only because a failing register was elsewhere in their parent, and
// every register of the joined read was just read.
func mergePieces(pieces []piece, dev *device) []piece {
	out := pieces[:0:0]
	for _, pc := range pieces {
		if n := len(out); n > 0 && out[n-1].failed == "" && pc.failed == "" && int(pc.start) <= out[n-1].last()+1 {
			prev := out[n-1].read
			first, last := int(prev.start), max(prev.last(), pc.last())
			fields := slices.Clone(prev.fields)
			for _, f := range pc.fields {
				f.off += pc.start - prev.start
				fields = append(fields, f)
			}
			out[n-1] = newPiece(read{space: prev.space, start: uint16(first), count: uint16(last - first + 1), fields: fields}, dev)
			continue
		}
		out = append(out, pc)
	}
	return out
}

// describePieces lists the pieces of a split for the fault event: the ranges read, and why
// those that fail do.
func describePieces(pieces []piece) string {
	var b strings.Builder
	for i, pc := range pieces {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d-%d", pc.start, pc.last())
		if pc.failed != "" {
			fmt.Fprintf(&b, " (%s)", pc.failed)
		}
	}
	return b.String()
}

// isolatable reports whether err is an exception that splitting the read may confine:
// 2 (illegal data address) and 3 (illegal data value, which some devices answer for a range
// that crosses a hole in their map).
func isolatable(err error) (byte, bool) {
	if err == nil {
		return 0, false
	}
	var exc *modbus.ModbusError // after the nil check: errors.As makes it escape
	if errors.As(err, &exc) && (exc.ExceptionCode == 2 || exc.ExceptionCode == 3) {
		return exc.ExceptionCode, true
	}
	return 0, false
}

func isException(err error) bool {
	var exc *modbus.ModbusError
	return errors.As(err, &exc)
}

// settle applies the result err of reading pc: good samples are already in the batch; a
// failure marks pc's tags Bad with its reason and updates the device's link. It returns the
// outcome for the rest of the poll, and err named after the read when the read failed (a fault
// to report) or the connection did.
func (s *session) settle(g *group, pc *piece, err error) (outcome, string, error) {
	dev := g.dev
	if err == nil {
		s.up(dev)
		return outcomeOK, "", nil
	}
	if s.ctx.Err() != nil {
		// Cancelled: nothing about this poll is reported.
		return outcomeConnDown, "", err
	}
	err = fmt.Errorf("%s: %w", pc.what, err)
	var exc *modbus.ModbusError
	var ce *connError
	var fe *frameError
	switch {
	case errors.As(err, &exc):
		// The device (or its gateway) answered: the connection is fine, only this read is not.
		s.up(dev)
		reason := exceptionReason(exc.ExceptionCode)
		setBad(g.batch.Samples, pc.fields, reason)
		if exc.ExceptionCode == 10 || exc.ExceptionCode == 11 {
			// The gateway could not reach the device: asking again in this poll only costs
			// the gateway's timeout again.
			return outcomeSkip, reason, err
		}
		return outcomeOK, "", err
	case errors.As(err, &ce) && ce.timeout():
		setBad(g.batch.Samples, pc.fields, reasonTimeout)
		s.down(dev, err)
		return outcomeSkip, reasonTimeout, err
	case errors.As(err, &ce):
		setBad(g.batch.Samples, pc.fields, reasonUnreachable)
		return outcomeConnDown, "", err
	case errors.As(err, &fe) && s.d.protocol == ProtocolRTU:
		// A garbled frame on a serial line (the transport resynchronised): the device is
		// there, the line is noisy.
		setBad(g.batch.Samples, pc.fields, reasonMalformed)
		return outcomeOK, "", err
	default:
		// A reply that breaks framing or does not hold what we asked for: on TCP the stream
		// may be out of step, so drop the connection; the next read dials again.
		if s.d.protocol == ProtocolTCP {
			s.t.close()
		}
		s.up(dev)
		setBad(g.batch.Samples, pc.fields, reasonMalformed)
		return outcomeOK, "", err
	}
}

// exec performs r for dev, after the device's request delay, sending it again up to the
// device's retries when it times out (or, on a serial line, comes back garbled). It decodes the
// reply into samples.
func (s *session) exec(dev *device, r *read, samples []drivers.Sample) error {
	for attempt := 0; ; attempt++ {
		if dev.delay > 0 && !s.sleep(dev.delay) {
			return &connError{err: s.ctx.Err()}
		}
		err := s.read(dev, r, samples)
		if err == nil || attempt >= dev.retries || s.ctx.Err() != nil {
			return err
		}
		var ce *connError
		var fe *frameError
		retry := errors.As(err, &ce) && ce.timeout() || errors.As(err, &fe) && s.d.protocol == ProtocolRTU
		if !retry {
			return err
		}
	}
}

// read performs r once and decodes its reply into samples.
func (s *session) read(dev *device, r *read, samples []drivers.Sample) error {
	var data []byte
	var err error
	switch r.space {
	case spaceCoil:
		data, err = dev.client.ReadCoils(r.start, r.count)
	case spaceDiscrete:
		data, err = dev.client.ReadDiscreteInputs(r.start, r.count)
	case spaceInput:
		data, err = dev.client.ReadInputRegisters(r.start, r.count)
	default:
		data, err = dev.client.ReadHoldingRegisters(r.start, r.count)
	}
	if err != nil {
		return err
	}
	if r.space.isRegister() {
		return decodeRegisters(samples, r.fields, int(r.count), data)
	}
	return decodeBits(samples, r.fields, int(r.count), data)
}

func setBad(samples []drivers.Sample, fields []field, reason string) {
	for _, f := range fields {
		samples[f.slot] = drivers.Sample{Tag: samples[f.slot].Tag, Quality: drivers.QualityBad, Reason: reason}
	}
}

// unreachable reports a connection that could not be opened: every group's tags are Bad and
// every device is down.
func (s *session) unreachable(err error) {
	s.connDown(err)
	for _, g := range s.d.groups {
		for _, p := range g.reads {
			setBad(g.batch.Samples, p.fields, reasonUnreachable)
		}
		s.emit(g)
	}
}

// connDown marks every device of the connection down.
func (s *session) connDown(err error) {
	for _, dev := range s.d.devs {
		s.down(dev, err)
	}
}

func (s *session) emit(g *group) {
	g.batch.ReadTime = s.d.now()
	s.sink.Batch(&g.batch)
}

func (s *session) up(dev *device) {
	if dev.link == linkUp {
		return
	}
	dev.link = linkUp
	dev.log.Info("connected", "unit", dev.unit)
	s.sink.Event(drivers.Event{Device: dev.name, Time: s.d.now(), Kind: drivers.EventConnected})
}

func (s *session) down(dev *device, err error) {
	if dev.link == linkDown {
		return
	}
	dev.link = linkDown
	dev.log.Info("disconnected", "unit", dev.unit, "err", err)
	s.sink.Event(drivers.Event{Device: dev.name, Time: s.d.now(), Kind: drivers.EventDisconnected, Err: err})
}

func (s *session) fault(dev *device, p *planned, err error) {
	if p.faulty {
		return
	}
	p.faulty = true
	dev.log.Warn("read fault", "err", err)
	s.sink.Event(drivers.Event{Device: dev.name, Time: s.d.now(), Kind: drivers.EventFault, Err: err})
}
