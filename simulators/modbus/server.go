package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Server. The zero value is not usable: Source is required.
type Options struct {
	// Source provides the served values. Required.
	Source Source
	// Logger receives connection events at Debug and dropped malformed streams at Info. Nil
	// means no logging.
	Logger *slog.Logger
	// OnRequest, when set, observes every answered request once its response was written
	// (never one whose write failed). It is called from connection goroutines, concurrently, so
	// a client may hold an answer before its observer runs; order requests by Request.At. It
	// must not block: the connection waits for it.
	OnRequest func(Request)
	// Now stamps Request.At. Nil means time.Now.
	Now func() time.Time
}

// Request describes one answered request, for Options.OnRequest.
type Request struct {
	Unit     byte
	Function byte // the request's function code
	// Address and Quantity as decoded from the request; both 0 when its PDU was not 5 bytes
	// long (not a read request).
	Address, Quantity uint16
	// Exception is the exception answered, or 0 when Values were sent.
	Exception Exception
	// Values are the registers or bits (0 or 1) sent, a copy the observer may keep; nil on an
	// exception.
	Values []uint16
	// At is when the response was handed to the connection, just before the write. Requests
	// answered one after the other, even on different connections, have increasing At (with the
	// default Options.Now, which carries a monotonic reading). The client may still lose the
	// answer if the connection drops before it reads.
	At time.Time
}

// Server serves a Source over Modbus TCP (Run) and Modbus RTU (RunRTU), from one PDU core and one
// set of fault controls. Its fault controls are safe to call at any time, concurrently with
// serving; each takes effect for the requests answered after it returns.
type Server struct {
	src       Source
	log       *slog.Logger
	onRequest func(Request)
	now       func() time.Time

	// Fault controls (faults.go): read on every request, so atomics rather than a lock.
	refuse      atomic.Bool
	allDelay    atomic.Int64       // time.Duration for every unit
	unitDelay   [256]atomic.Int64  // time.Duration, overrides allDelay when non-zero
	unitFailure [256]atomic.Uint32 // Exception to answer, 0 for none
	silent      [256]atomic.Bool   // requests read and never answered
	late        [256]atomic.Int64  // time.Duration: answers held back without blocking
	addrFaults  atomic.Pointer[[]AddressException]
	fragments   atomic.Pointer[Fragments] // nil: every answer in one write

	mu   sync.Mutex
	sets map[*connSet]struct{} // one per running Run; guarded by mu
}

// New returns a Server for opts. It starts nothing: see Run.
func New(opts Options) (*Server, error) {
	if opts.Source == nil {
		return nil, errors.New("modbus server: no source")
	}
	s := &Server{
		src:       opts.Source,
		log:       opts.Logger,
		onRequest: opts.OnRequest,
		now:       opts.Now,
		sets:      map[*connSet]struct{}{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Run accepts and serves connections on ln, one goroutine each, until ctx ends; then it closes ln
// and every connection, waits for all its goroutines and returns nil. It returns an error if ln
// fails otherwise (closed by someone else). Run may serve several listeners at once, one call
// each.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	cs := &connSet{conns: map[net.Conn]context.CancelFunc{}}
	s.mu.Lock()
	s.sets[cs] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sets, cs)
		s.mu.Unlock()
	}()

	var wg sync.WaitGroup
	defer wg.Wait()
	stop := make(chan struct{})
	defer close(stop)
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		ln.Close()
		cs.closeAll(true)
	})

	log := s.log.With("listener", ln.Addr().String())
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept modbus tcp on %s: %w", ln.Addr(), err)
			}
			// Out of file descriptors and the like: back off and keep serving, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		if s.refuse.Load() {
			c.Close()
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		if !cs.add(c, cancel) {
			cancel()
			continue
		}
		wg.Go(func() {
			defer cs.remove(c)
			clog := log.With("remote", c.RemoteAddr().String())
			clog.Debug("connection opened")
			err := s.serveTCP(cctx, c)
			switch {
			case cctx.Err() != nil, err == nil:
				clog.Debug("connection closed")
			case errors.Is(err, errMalformed):
				clog.Info("connection dropped", "err", err)
			default:
				clog.Debug("connection closed", "err", err)
			}
		})
	}
}

// connSet holds the connections of one Run.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]context.CancelFunc // guarded by mu
	closed bool                            // Run is ending: close new connections at once; guarded by mu
}

// add registers c, or closes it and reports false when the set is closed.
func (cs *connSet) add(c net.Conn, cancel context.CancelFunc) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		c.Close()
		return false
	}
	cs.conns[c] = cancel
	return true
}

// remove closes c and forgets it.
func (cs *connSet) remove(c net.Conn) {
	cs.mu.Lock()
	cancel, ok := cs.conns[c]
	delete(cs.conns, c)
	cs.mu.Unlock()
	if ok {
		cancel()
	}
	c.Close()
}

// closeAll closes every connection; final also closes the set to new ones.
func (cs *connSet) closeAll(final bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.closed = cs.closed || final
	// Cancel first: a connection waiting out a delay must not answer after its socket is gone.
	for c, cancel := range cs.conns {
		cancel()
		c.Close()
	}
}

func (cs *connSet) len() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.conns)
}
