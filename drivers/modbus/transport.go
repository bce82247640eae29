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

// connError is a failure of the connection itself (dial, write, read, deadline): the device
// could not be reached or did not answer in time. The transport has already closed the
// connection when it returns one.
type connError struct {
	err  error
	dial bool // the connection could not be opened
}

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// timeout reports whether the device did not answer within the request timeout.
func (e *connError) timeout() bool { return !e.dial && errors.Is(e.err, os.ErrDeadlineExceeded) }

// frameError is a reply that breaks MBAP framing. The transport has closed the connection: once
// a length field is wrong, nothing tells where the next frame starts.
type frameError struct{ msg string }

func (e *frameError) Error() string { return e.msg }

// transport is our modbus.Transporter for Modbus TCP. It replaces goburrow's tcpTransporter,
// which has no context (Close cannot abort a blocked read, so shutdown waits up to Timeout),
// leaves a connection open after a timeout (the late reply is then taken for the next request
// and every later one fails on a transaction id mismatch), and never closes a connection that
// the peer reset. See research/modbus.md §1.
//
// A transport lives for one Run call and is used from that goroutine only; the context.AfterFunc
// callback is the one other goroutine that touches it, and only under mu.
type transport struct {
	// ctx is the Run's context: goburrow's Transporter.Send has no context parameter, and the
	// transport lives exactly as long as the Run call that owns ctx.
	ctx     context.Context
	address string
	timeout time.Duration
	dial    dialFunc
	stop    func() bool

	mu       sync.Mutex
	conn     net.Conn // guarded by mu for writes; read freely by the owning goroutine
	canceled bool     // guarded by mu: ctx is done, every deadline must stay in the past

	// buf holds the last reply; the slice Send returns aliases it, and so do the register bytes
	// goburrow's client hands back, valid until the next Send.
	buf [maxADU]byte
}

func newTransport(ctx context.Context, address string, timeout time.Duration, dial dialFunc) *transport {
	t := &transport{ctx: ctx, address: address, timeout: timeout, dial: dial}
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

// release ends the transport: it stops the cancel hook and closes the connection.
func (t *transport) release() {
	t.stop()
	t.close()
}

// connected reports whether a connection is open.
func (t *transport) connected() bool { return t.conn != nil }

func (t *transport) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
}

func (t *transport) connect() error {
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

// Send implements modbus.Transporter: it writes one request ADU and returns the reply with the
// same transaction id. Replies to earlier requests are read and dropped until the deadline, so
// a late answer is never taken for the current one. Any error closes the connection, and the
// next Send dials again. The returned slice is valid until the next Send.
func (t *transport) Send(req []byte) ([]byte, error) {
	if len(req) < mbapHeaderLen {
		return nil, fmt.Errorf("request of %d bytes is shorter than an MBAP header", len(req))
	}
	if err := t.connect(); err != nil {
		return nil, err
	}
	resp, err := t.roundTrip(req)
	if err != nil {
		t.close()
	}
	return resp, err
}

func (t *transport) roundTrip(req []byte) ([]byte, error) {
	t.mu.Lock()
	canceled := t.canceled
	if !canceled {
		// Under mu so that the cancel hook's past deadline can never be overwritten by this
		// one: either the hook ran first (canceled is set) or it runs after and wins.
		t.conn.SetDeadline(time.Now().Add(t.timeout))
	}
	t.mu.Unlock()
	if canceled {
		return nil, &connError{err: context.Cause(t.ctx)}
	}

	if _, err := t.conn.Write(req); err != nil {
		return nil, &connError{err: fmt.Errorf("write request: %w", err)}
	}
	txid := binary.BigEndian.Uint16(req)
	for {
		h := t.buf[:mbapHeaderLen]
		if _, err := io.ReadFull(t.conn, h); err != nil {
			return nil, &connError{err: fmt.Errorf("read reply: %w", err)}
		}
		proto := binary.BigEndian.Uint16(h[2:])
		length := int(binary.BigEndian.Uint16(h[4:]))
		if proto != 0 {
			return nil, &frameError{fmt.Sprintf("reply has protocol id %d, want 0", proto)}
		}
		if length < mbapMinLength || length > mbapMaxLength {
			return nil, &frameError{fmt.Sprintf("reply length field %d out of %d..%d", length, mbapMinLength, mbapMaxLength)}
		}
		n := mbapHeaderLen - 1 + length
		if _, err := io.ReadFull(t.conn, t.buf[mbapHeaderLen:n]); err != nil {
			return nil, &connError{err: fmt.Errorf("read reply: %w", err)}
		}
		if binary.BigEndian.Uint16(h) == txid {
			return t.buf[:n], nil
		}
		// A reply to an earlier request (one we gave up on, or a duplicate): drop it and wait
		// for ours until the deadline.
	}
}
