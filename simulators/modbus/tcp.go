package modbus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// MBAP header (Modbus Messaging on TCP/IP v1.0b, 3.1.3): transaction id, protocol id (0 for
// Modbus), length of what follows (unit id and PDU), unit id.
const (
	mbapHeaderLen = 7
	// maxMBAPLength is the unit id plus the largest PDU.
	maxMBAPLength = 1 + maxPDU
)

// errMalformed marks a stream that can no longer be framed; the connection is closed.
var errMalformed = errors.New("malformed mbap header")

// serveTCP answers the MBAP frames read from rw, in order, until reading fails, the stream is
// malformed or ctx ends. Frames may arrive split over reads or several in one read (a client may
// pipeline requests); each is answered with one write (or the pieces SetFragments asks for),
// transaction and unit id echoed. Late answers (SetUnitLate) are written by goroutines of their
// own into the same stream; serveTCP abandons and waits for them before it returns.
func (s *Server) serveTCP(ctx context.Context, rw io.ReadWriter) error {
	ctx, cancel := context.WithCancel(ctx)
	var late sync.WaitGroup
	defer late.Wait()
	defer cancel()
	var wmu sync.Mutex // one answer at a time into rw, late ones included

	br := bufio.NewReaderSize(rw, 1024)
	var (
		hdr [mbapHeaderLen]byte
		pdu [maxPDU]byte
		out = make([]byte, 0, mbapHeaderLen+maxPDU)
		sc  scratch
	)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read mbap header: %w", err)
		}
		rx := time.Now()
		proto := binary.BigEndian.Uint16(hdr[2:])
		length := binary.BigEndian.Uint16(hdr[4:])
		if proto != 0 {
			return fmt.Errorf("%w: protocol id %d, want 0", errMalformed, proto)
		}
		// Below 2 there is no function code to answer with; above 254 the PDU exceeds 253 bytes.
		if length < 2 || length > maxMBAPLength {
			return fmt.Errorf("%w: length %d outside 2..%d", errMalformed, length, maxMBAPLength)
		}
		req := pdu[:length-1]
		if _, err := io.ReadFull(br, req); err != nil {
			return fmt.Errorf("read pdu of %d bytes: %w", len(req), err)
		}
		unit := hdr[6]
		out = append(out[:0], hdr[:4]...) // transaction and protocol id echoed
		out = append(out, 0, 0, unit)     // length set below
		var sv served
		var err error
		out, sv, err = s.respond(ctx, unit, req, out, &sc)
		if err != nil {
			return err
		}
		if sv.silent {
			continue
		}
		binary.BigEndian.PutUint16(out[4:], uint16(len(out)-6))
		if d := s.lateBy(unit); d > 0 {
			adu := bytes.Clone(out)
			sv.values = slices.Clone(sv.values)
			late.Go(func() {
				if sleepUntil(ctx, rx.Add(d)) != nil {
					return
				}
				wmu.Lock()
				defer wmu.Unlock()
				if at, err := s.writeTCP(ctx, rw, adu); err == nil {
					s.observe(sv, at)
				}
			})
			continue
		}
		wmu.Lock()
		at, err := s.writeTCP(ctx, rw, out)
		wmu.Unlock()
		if err != nil {
			return fmt.Errorf("write response: %w", err)
		}
		s.observe(sv, at)
	}
}

// writeTCP writes one answer, whole or in the pieces SetFragments asks for. The time it returns is
// stamped before the (last) write: once a client holds an answer, any request it sends next is
// stamped later, whichever connection carries it and whenever the observers run.
func (s *Server) writeTCP(ctx context.Context, w io.Writer, adu []byte) (time.Time, error) {
	f := s.fragments.Load()
	if f == nil {
		var at time.Time
		if s.onRequest != nil {
			at = s.now()
		}
		_, err := w.Write(adu)
		return at, err
	}
	return writePieces(ctx, w, adu, f, s.now)
}

// observe hands sv, answered at at, to the OnRequest observer with a copy of its values.
func (s *Server) observe(sv served, at time.Time) {
	if s.onRequest == nil {
		return
	}
	r := Request{
		Unit:      sv.unit,
		Function:  sv.fc,
		Address:   sv.addr,
		Quantity:  sv.qty,
		Exception: sv.exception,
		At:        at,
	}
	if sv.values != nil {
		r.Values = append([]uint16(nil), sv.values...)
	}
	s.onRequest(r)
}
