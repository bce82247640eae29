package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// MBAP framing (Modbus Messaging on TCP/IP Implementation Guide v1.0b, 3.1.3): transaction id,
// protocol id (0), length (unit id + PDU, so at least 2 and, for a 253-byte PDU, at most 254),
// unit id.
const (
	mbapHeaderLen = 7
	mbapMinLength = 2
	mbapMaxLength = 254
	maxADU        = mbapHeaderLen - 1 + mbapMaxLength
)

// dialFunc opens a connection; net.Dialer.DialContext in production, a fake in tests.
type dialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// connError is a failure of the connection itself (dial or open, write, read, deadline): the
// device could not be reached or did not answer in time. The transport has closed the
// connection when it returns one, except after a timeout, which the TCP transport may keep (see
// tcpTransport) and the RTU transport always keeps (a serial line has no connection to lose).
type connError struct {
	err  error
	dial bool // the connection could not be opened
}

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// timeout reports whether the device did not answer within the request timeout.
func (e *connError) timeout() bool { return !e.dial && errors.Is(e.err, os.ErrDeadlineExceeded) }

// frameError is a reply that breaks framing. A TCP transport has closed the connection: once a
// length field is wrong, nothing tells where the next frame starts. An RTU transport has
// resynchronised (drained the line until it was quiet), and the request may be sent again.
type frameError struct{ msg string }

func (e *frameError) Error() string { return e.msg }

// tcpTransport is our modbus.Transporter for Modbus TCP. It replaces goburrow's tcpTransporter,
// which has no context (Close cannot abort a blocked read, so shutdown waits up to Timeout),
// leaves a connection open after a timeout without draining it (the late reply is then taken
// for the next request and every later one fails on a transaction id mismatch), and never
// closes a connection that the peer reset. See research/modbus.md §1.
//
// Several units share one connection behind a gateway, each with its own goburrow packager
// (the unit id lives there). Their transaction id counters are independent, so the transport
// overwrites each request's transaction id with its own connection-wide counter: a late reply
// to one unit can never carry the id of another unit's current request. The packager's Verify
// compares the reply with the request slice, which holds the rewritten id.
//
// After a timeout the connection stays open (replies to earlier requests are dropped by their
// transaction id), so that one silent unit behind a gateway does not cost the others a
// reconnect; but a second timeout in a row, a timeout on a connection that serves one unit, or
// a timeout in the middle of a frame closes it: the link itself may be half-open.
//
// A transport lives for one Run call and is used from that goroutine only; the context.AfterFunc
// callback is the one other goroutine that touches it, and only under mu.
type tcpTransport struct {
	// ctx is the Run's context: goburrow's Transporter.Send has no context parameter, and the
	// transport lives exactly as long as the Run call that owns ctx.
	ctx     context.Context
	address string
	timeout time.Duration // of the current request; set by the poll loop before each one
	dial    dialFunc
	stop    func() bool
	// single is set when one unit uses the connection: a timeout then closes it at once.
	single bool

	mu       sync.Mutex
	conn     net.Conn // guarded by mu for writes; read freely by the owning goroutine
	canceled bool     // guarded by mu: ctx is done, every deadline must stay in the past

	txid    uint16 // the last transaction id sent on this connection
	suspect bool   // the last request timed out

	// buf holds the last reply; the slice Send returns aliases it, and so do the register bytes
	// goburrow's client hands back, valid until the next Send.
	buf [maxADU]byte
}

func newTCPTransport(ctx context.Context, address string, timeout time.Duration, dial dialFunc) *tcpTransport {
	t := &tcpTransport{ctx: ctx, address: address, timeout: timeout, dial: dial}
	t.stop = context.AfterFunc(ctx, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.canceled = true
		if t.conn != nil {
			// A deadline in the past makes a blocked Read or Write return at once; unlike
			// Close it is safe while the owning goroutine is still using the conn.
			t.conn.SetDeadline(time.Unix(1, 0))
		}
	})
	return t
}

func (t *tcpTransport) setTimeout(d time.Duration) { t.timeout = d }

// release ends the transport: it stops the cancel hook and closes the connection.
func (t *tcpTransport) release() {
	t.stop()
	t.close()
}

// connected reports whether a connection is open.
func (t *tcpTransport) connected() bool { return t.conn != nil }

func (t *tcpTransport) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
	t.suspect = false
}

// connect dials when no connection is open.
func (t *tcpTransport) connect() error {
	if t.conn != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	conn, err := t.dial(ctx, "tcp", t.address)
	cancel()
	if err != nil {
		return &connError{err: err, dial: true}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.canceled {
		conn.Close()
		return &connError{err: context.Cause(t.ctx), dial: true}
	}
	t.conn = conn
	return nil
}

// Send implements modbus.Transporter: it writes one request ADU (with the transaction id
// replaced by the connection's own) and returns the reply with that transaction id. Replies to
// earlier requests are read and dropped until the deadline, so a late answer is never taken
// for the current one. Errors other than a timeout close the connection, and the next Send
// dials again; a timeout closes it as the type's comment says. The returned slice is valid
// until the next Send.
func (t *tcpTransport) Send(req []byte) ([]byte, error) {
	if len(req) < mbapHeaderLen {
		return nil, fmt.Errorf("request of %d bytes is shorter than an MBAP header", len(req))
	}
	if err := t.connect(); err != nil {
		return nil, err
	}
	t.txid++
	binary.BigEndian.PutUint16(req, t.txid)
	resp, partial, err := t.roundTrip(req)
	if err == nil {
		t.suspect = false
		return resp, nil
	}
	// Declared after the nil check: errors.As makes ce escape, and a steady poll loop must not
	// allocate.
	var ce *connError
	if errors.As(err, &ce) && ce.timeout() && !partial && !t.suspect && !t.single {
		t.suspect = true
	} else {
		t.close()
	}
	return nil, err
}

// roundTrip writes req and reads replies until the one with req's transaction id. partial
// reports that an error left a frame half read: the stream is then out of step.
func (t *tcpTransport) roundTrip(req []byte) (resp []byte, partial bool, err error) {
	t.mu.Lock()
	canceled := t.canceled
	if !canceled {
		// Under mu so that the cancel hook's past deadline can never be overwritten by this
		// one: either the hook ran first (canceled is set) or it runs after and wins.
		t.conn.SetDeadline(time.Now().Add(t.timeout))
	}
	t.mu.Unlock()
	if canceled {
		return nil, false, &connError{err: context.Cause(t.ctx)}
	}

	if _, err := t.conn.Write(req); err != nil {
		return nil, true, &connError{err: fmt.Errorf("write request: %w", err)}
	}
	txid := binary.BigEndian.Uint16(req)
	for {
		h := t.buf[:mbapHeaderLen]
		if n, err := io.ReadFull(t.conn, h); err != nil {
			return nil, n > 0, &connError{err: fmt.Errorf("read reply: %w", err)}
		}
		proto := binary.BigEndian.Uint16(h[2:])
		length := int(binary.BigEndian.Uint16(h[4:]))
		if proto != 0 {
			return nil, true, &frameError{fmt.Sprintf("reply has protocol id %d, want 0", proto)}
		}
		if length < mbapMinLength || length > mbapMaxLength {
			return nil, true, &frameError{fmt.Sprintf("reply length field %d out of %d..%d", length, mbapMinLength, mbapMaxLength)}
		}
		n := mbapHeaderLen - 1 + length
		if _, err := io.ReadFull(t.conn, t.buf[mbapHeaderLen:n]); err != nil {
			return nil, true, &connError{err: fmt.Errorf("read reply: %w", err)}
		}
		if binary.BigEndian.Uint16(h) == txid {
			return t.buf[:n], false, nil
		}
		// A reply to an earlier request (one we gave up on, or a duplicate): drop it and wait
		// for ours until the deadline.
	}
}
