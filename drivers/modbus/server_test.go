package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floorlink/floorlink/drivers"
)

// testServer is a Modbus TCP server on 127.0.0.1 that tests can make misbehave through its
// handler. It is independent of the driver's code (no shared encoder), answers function codes
// 1-4 from its own tables, and serves each connection on its own goroutine; Cleanup closes
// everything and waits for those goroutines.
type testServer struct {
	tb   testing.TB
	ln   net.Listener
	quit chan struct{}
	wg   sync.WaitGroup

	mu        sync.Mutex
	holding   []uint16 // guarded by mu, 65536 entries
	input     []uint16 // guarded by mu
	coils     []bool   // guarded by mu
	discretes []bool   // guarded by mu
	handler   func(c *serverConn, req request)
	conns     map[net.Conn]struct{}

	accepts  atomic.Int64
	requests atomic.Int64
}

// request is a decoded MBAP request.
type request struct {
	n     int64 // 1-based, counted across connections
	txid  uint16
	unit  byte
	fc    byte
	addr  uint16
	count uint16
}

type serverConn struct {
	s    *testServer
	conn net.Conn
	// pbuf and wbuf hold the reply PDU and frame, so that a benchmark's allocation count is
	// the driver's alone.
	pbuf, wbuf [260]byte
}

func startServer(tb testing.TB) *testServer {
	tb.Helper()
	return startServerAt(tb, "127.0.0.1:0")
}

// startServerAt listens on addr, e.g. one reserved by reserveAddr.
func startServerAt(tb testing.TB, addr string) *testServer {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatalf("listen %s: %v", addr, err)
	}
	s := newServer(tb)
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	return s
}

// newPipeServer is a testServer without a listener, reached through its dial method over
// net.Pipe: for tests under testing/synctest, where a goroutine blocked on a real socket is not
// durably blocked.
func newPipeServer(tb testing.TB) *testServer { return newServer(tb) }

func newServer(tb testing.TB) *testServer {
	s := &testServer{
		tb:        tb,
		quit:      make(chan struct{}),
		holding:   make([]uint16, 65536),
		input:     make([]uint16, 65536),
		coils:     make([]bool, 65536),
		discretes: make([]bool, 65536),
		conns:     make(map[net.Conn]struct{}),
	}
	tb.Cleanup(s.close)
	return s
}

// dial is a dialFunc connecting to the server over net.Pipe.
func (s *testServer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	client, server := net.Pipe()
	s.mu.Lock()
	select {
	case <-s.quit:
		s.mu.Unlock()
		return nil, errors.New("test server closed")
	default:
	}
	s.conns[server] = struct{}{}
	s.mu.Unlock()
	s.accepts.Add(1)
	s.wg.Add(1)
	go s.serve(&serverConn{s: s, conn: server})
	return client, nil
}

// reserveAddr returns a free 127.0.0.1 address with nothing listening: connections to it are
// refused until a server starts there.
func reserveAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

func (s *testServer) close() {
	select {
	case <-s.quit:
		return
	default:
	}
	s.mu.Lock()
	close(s.quit)
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// dropConns closes every open connection from the server's side.
func (s *testServer) dropConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *testServer) setHandler(h func(c *serverConn, req request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = h
}

func (s *testServer) setHolding(addr int, v ...uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	copy(s.holding[addr:], v)
}

func (s *testServer) setInput(addr int, v ...uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	copy(s.input[addr:], v)
}

func (s *testServer) setCoils(addr int, v ...bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	copy(s.coils[addr:], v)
}

func (s *testServer) setDiscretes(addr int, v ...bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	copy(s.discretes[addr:], v)
}

func (s *testServer) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		select {
		case <-s.quit:
			s.mu.Unlock()
			conn.Close()
			return
		default:
		}
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.accepts.Add(1)
		s.wg.Add(1)
		go s.serve(&serverConn{s: s, conn: conn})
	}
}

func (s *testServer) serve(c *serverConn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c.conn)
		s.mu.Unlock()
		c.conn.Close()
	}()
	var buf [260]byte
	for {
		if _, err := io.ReadFull(c.conn, buf[:7]); err != nil {
			return
		}
		length := int(binary.BigEndian.Uint16(buf[4:]))
		if length < 2 || length > 254 {
			return
		}
		if _, err := io.ReadFull(c.conn, buf[7:6+length]); err != nil {
			return
		}
		req := request{
			n:    s.requests.Add(1),
			txid: binary.BigEndian.Uint16(buf[0:]),
			unit: buf[6],
			fc:   buf[7],
		}
		if length >= 6 {
			req.addr = binary.BigEndian.Uint16(buf[8:])
			req.count = binary.BigEndian.Uint16(buf[10:])
		}
		s.mu.Lock()
		h := s.handler
		s.mu.Unlock()
		if h == nil {
			h = (*serverConn).answer
		}
		h(c, req)
	}
}

// pdu builds the correct reply PDU for req from the server's tables, or an exception 2 when the
// range runs past the table, 1 for a function code other than 1-4.
func (c *serverConn) pdu(req request) []byte {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	end := int(req.addr) + int(req.count)
	switch req.fc {
	case 1, 2:
		bits := s.coils
		if req.fc == 2 {
			bits = s.discretes
		}
		if req.count < 1 || req.count > 2000 || end > 65536 {
			return []byte{req.fc | 0x80, 2}
		}
		out := c.pbuf[:2+(req.count+7)/8]
		clear(out)
		out[0], out[1] = req.fc, byte((req.count+7)/8)
		for i := 0; i < int(req.count); i++ {
			if bits[int(req.addr)+i] {
				out[2+i/8] |= 1 << (i % 8)
			}
		}
		return out
	case 3, 4:
		regs := s.holding
		if req.fc == 4 {
			regs = s.input
		}
		if req.count < 1 || req.count > 125 || end > 65536 {
			return []byte{req.fc | 0x80, 2}
		}
		out := c.pbuf[:2+2*req.count]
		out[0], out[1] = req.fc, byte(2*req.count)
		for i := 0; i < int(req.count); i++ {
			binary.BigEndian.PutUint16(out[2+2*i:], regs[int(req.addr)+i])
		}
		return out
	}
	return []byte{req.fc | 0x80, 1}
}

// answer sends the correct reply.
func (c *serverConn) answer(req request) { c.send(req.txid, req.unit, c.pdu(req)) }

// exception sends exception code for req.
func (c *serverConn) exception(req request, code byte) {
	c.send(req.txid, req.unit, []byte{req.fc | 0x80, code})
}

// send writes one MBAP frame; write errors are ignored (the client may have gone).
func (c *serverConn) send(txid uint16, unit byte, pdu []byte) {
	b := c.wbuf[:7+len(pdu)]
	binary.BigEndian.PutUint16(b[0:], txid)
	binary.BigEndian.PutUint16(b[2:], 0)
	binary.BigEndian.PutUint16(b[4:], uint16(1+len(pdu)))
	b[6] = unit
	copy(b[7:], pdu)
	c.conn.Write(b)
}

func frame(txid uint16, unit byte, pdu []byte) []byte {
	b := make([]byte, 7+len(pdu))
	binary.BigEndian.PutUint16(b[0:], txid)
	binary.BigEndian.PutUint16(b[4:], uint16(1+len(pdu)))
	b[6] = unit
	copy(b[7:], pdu)
	return b
}

// hang blocks until the server shuts down: a device that accepted the request and never answers.
func (c *serverConn) hang() { <-c.s.quit }

// recorder is a drivers.Sink that keeps copies of everything it receives.
type recorder struct {
	mu      sync.Mutex
	batches []drivers.Batch
	events  []drivers.Event
	// onBatch, when set, runs on the driver's goroutine for each batch (synctest tests).
	onBatch func(b *drivers.Batch)
}

func (r *recorder) Batch(b *drivers.Batch) {
	c := *b
	c.Samples = append([]drivers.Sample(nil), b.Samples...)
	r.mu.Lock()
	r.batches = append(r.batches, c)
	f := r.onBatch
	r.mu.Unlock()
	if f != nil {
		f(b)
	}
}

func (r *recorder) Event(e drivers.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// setOnBatch sets onBatch while the driver runs.
func (r *recorder) setOnBatch(f func(b *drivers.Batch)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onBatch = f
}

func (r *recorder) snapshot() ([]drivers.Batch, []drivers.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]drivers.Batch(nil), r.batches...), append([]drivers.Event(nil), r.events...)
}

func (r *recorder) lastBatch() (drivers.Batch, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.batches) == 0 {
		return drivers.Batch{}, false
	}
	return r.batches[len(r.batches)-1], true
}

func (r *recorder) kinds() []drivers.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var k []drivers.EventKind
	for _, e := range r.events {
		k = append(k, e.Kind)
	}
	return k
}

// waitFor polls cond until it returns nil or timeout passes, then fails with cond's last error.
func waitFor(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %v", timeout, err)
		}
		<-tick.C
	}
}
