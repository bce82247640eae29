package modbus

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"
)

// Fault controls. Each is safe to call at any time, concurrently with serving, and takes effect
// for the requests answered after it returns. Unless a method says otherwise it acts on both
// framings, TCP (Run) and RTU (RunRTU).

// SetDelay delays the answer to every request by d (0 for none), unless SetUnitDelay set a delay
// for its unit. A delayed TCP connection answers nothing else meanwhile, as a single-threaded PLC;
// on an RTU line every unit is a device of its own, so a delayed unit holds up only its own later
// requests.
func (s *Server) SetDelay(d time.Duration) { s.allDelay.Store(int64(d)) }

// SetUnitDelay delays the answers to requests for unit by d, overriding SetDelay; 0 removes the
// override.
func (s *Server) SetUnitDelay(unit byte, d time.Duration) { s.unitDelay[unit].Store(int64(d)) }

// SetUnitException answers every request for unit with exception e; 0 restores normal answers.
func (s *Server) SetUnitException(unit byte, e Exception) { s.unitFailure[unit].Store(uint32(e)) }

// SetUnitSilent makes unit stop answering (on true): its requests are read and dropped, the TCP
// connection stays open, the RTU line stays quiet, as a device that hangs or is unplugged from
// the bus. False makes it answer again.
func (s *Server) SetUnitSilent(unit byte, on bool) { s.silent[unit].Store(on) }

// SetUnitLate holds back every answer for unit by d after its request arrived (0 for none),
// without holding up anything else: the connection or line goes on reading and answering other
// requests, and the late answer is written when due into the same stream (the same TCP
// connection, with the request's transaction id; the same RTU line), where a client that gave up
// waiting finds it in front of its next answer. A connection that closes first never gets it.
// Late answers come after any SetDelay, and may overtake each other only if d shrinks meanwhile.
func (s *Server) SetUnitLate(unit byte, d time.Duration) { s.late[unit].Store(int64(d)) }

// AddressException answers Code for every read of Table on Unit that covers any address from
// First to Last (inclusive), as a PLC program that rejects some registers of a block: a read of
// the registers around them is answered normally.
type AddressException struct {
	Unit        byte
	Table       Table
	First, Last uint16
	Code        Exception
}

// String returns the range in plcsim's --exception syntax, unit:table:first-last:code.
func (a AddressException) String() string {
	return fmt.Sprintf("%d:%s:%d-%d:%d", a.Unit, tableFlagName(a.Table), a.First, a.Last, byte(a.Code))
}

// SetAddressExceptions replaces the injected address exceptions with list (none clears them).
// When several ranges cover a read, the first in list wins. An entry with First > Last or Code 0
// matches nothing.
func (s *Server) SetAddressExceptions(list ...AddressException) {
	if len(list) == 0 {
		s.addrFaults.Store(nil)
		return
	}
	l := slices.Clone(list)
	s.addrFaults.Store(&l)
}

// AddressExceptions returns a copy of the injected address exceptions.
func (s *Server) AddressExceptions() []AddressException {
	if p := s.addrFaults.Load(); p != nil {
		return slices.Clone(*p)
	}
	return nil
}

// addressException returns the injected exception for a read of qty values from addr, or 0.
func (s *Server) addressException(unit byte, t Table, addr, qty uint16) Exception {
	p := s.addrFaults.Load()
	if p == nil {
		return 0
	}
	last := int(addr) + int(qty) - 1
	for _, a := range *p {
		if a.Unit == unit && a.Table == t && a.Code != 0 && int(a.First) <= last && int(a.Last) >= int(addr) {
			return a.Code
		}
	}
	return 0
}

// Fragments splits every answer into pieces written one at a time with a pause between them, as
// a slow gateway or a USB serial adapter delivers a frame. The zero value sends each answer in
// one write.
type Fragments struct {
	// Gap is the pause between two pieces (on RTU, on top of each piece's wire time). Zero turns
	// fragmenting off.
	Gap time.Duration
	// Size is the number of bytes per piece, the last one shorter. Zero means three pieces of
	// about equal size, so that the added time is 2×Gap whatever the answer's length.
	Size int
}

// SetFragments writes every answer, on TCP and RTU, in pieces as f says; the zero Fragments
// restores whole writes.
func (s *Server) SetFragments(f Fragments) {
	if f.Gap <= 0 {
		s.fragments.Store(nil)
		return
	}
	s.fragments.Store(&f)
}

// pieces returns the sizes of the pieces of an n-byte answer, appended to dst.
func (f *Fragments) pieces(dst []int, n int) []int {
	if f == nil || f.Gap <= 0 || n <= 1 {
		return append(dst, n)
	}
	size := f.Size
	if size <= 0 {
		size = (n + 2) / 3
	}
	for n > 0 {
		p := min(size, n)
		dst = append(dst, p)
		n -= p
	}
	return dst
}

func (s *Server) delay(unit byte) time.Duration {
	if d := s.unitDelay[unit].Load(); d != 0 {
		return time.Duration(d)
	}
	return time.Duration(s.allDelay.Load())
}

func (s *Server) injected(unit byte) Exception {
	return Exception(s.unitFailure[unit].Load())
}

func (s *Server) lateBy(unit byte) time.Duration { return time.Duration(s.late[unit].Load()) }

// SetRefuse makes the server accept new TCP connections and close them at once (on true), as a
// PLC whose connection slots are full; current connections are served on. RTU is not affected.
func (s *Server) SetRefuse(on bool) { s.refuse.Store(on) }

// DropConnections closes every current TCP connection now, including ones waiting out a delay or
// holding late answers, which then answer nothing. New connections are accepted as usual. RTU
// lines are not affected.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for cs := range s.sets {
		cs.closeAll(false)
	}
}

// Connections returns the number of TCP connections being served.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for cs := range s.sets {
		n += cs.len()
	}
	return n
}

// sleepUntil waits until t, or returns ctx's error if ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writePieces writes b to w in the pieces f asks for, pausing f.Gap between them, and returns
// when the last piece was handed to w (stamped by now just before that write). ctx ending during
// a pause abandons the rest.
func writePieces(ctx context.Context, w io.Writer, b []byte, f *Fragments, now func() time.Time) (time.Time, error) {
	var buf [8]int
	sizes := f.pieces(buf[:0], len(b))
	var at time.Time
	for i, n := range sizes {
		if i > 0 {
			if err := sleepUntil(ctx, time.Now().Add(f.Gap)); err != nil {
				return at, err
			}
		}
		if i == len(sizes)-1 {
			at = now()
		}
		if _, err := w.Write(b[:n]); err != nil {
			return at, err
		}
		b = b[n:]
	}
	return at, nil
}

// tableFlagName is the word for t in plcsim's --exception flag.
func tableFlagName(t Table) string {
	switch t {
	case Coils:
		return "coils"
	case DiscreteInputs:
		return "discrete"
	case HoldingRegisters:
		return "holding"
	case InputRegisters:
		return "input"
	}
	return fmt.Sprintf("table%d", byte(t))
}
