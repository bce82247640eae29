package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goburrow/modbus"
)

// newTestClient is goburrow's client over our transport to addr, as Run builds it.
func newTestClient(t *testing.T, ctx context.Context, addr string, timeout time.Duration) (modbus.Client, *tcpTransport) {
	t.Helper()
	tr := newTCPTransport(ctx, addr, timeout, (&net.Dialer{}).DialContext)
	t.Cleanup(tr.release)
	pk := &modbus.TCPClientHandler{}
	pk.SlaveId = 1
	return modbus.NewClient2(pk, tr), tr
}

func readHR0(t *testing.T, c modbus.Client) (uint16, error) {
	t.Helper()
	b, err := c.ReadHoldingRegisters(0, 1)
	if err != nil {
		return 0, err
	}
	if len(b) != 2 {
		return 0, fmt.Errorf("got %d bytes", len(b))
	}
	return binary.BigEndian.Uint16(b), nil
}

func wantValue(t *testing.T, c modbus.Client, want uint16) {
	t.Helper()
	got, err := readHR0(t, c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if got != want {
		t.Fatalf("read: got %#x, want %#x", got, want)
	}
}

func wantConnError(t *testing.T, err error, timeout bool) {
	t.Helper()
	var ce *connError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v (%T), want a connection error", err, err)
	}
	if ce.timeout() != timeout {
		t.Fatalf("got %v with timeout() = %v, want %v", err, ce.timeout(), timeout)
	}
}

// staleDEAD is a reply frame for txid carrying 0xDEAD, a value no test serves.
func staleDEAD(txid uint16) []byte { return frame(txid, 1, []byte{3, 2, 0xDE, 0xAD}) }

func TestTransport_Send_Stale_LateReplyAfterTimeout(t *testing.T) {
	for _, single := range []bool{false, true} {
		t.Run(fmt.Sprintf("single=%v", single), func(t *testing.T) {
			s := startServer(t)
			s.setHolding(0, 7)
			release := make(chan struct{})
			var firstTxid atomic.Uint32
			s.setHandler(func(c *serverConn, req request) {
				switch req.n {
				case 1:
					// Answer only after the client gave up: a device slower than the timeout.
					firstTxid.Store(uint32(req.txid))
					select {
					case <-release:
					case <-c.s.quit:
					}
					c.conn.Write(staleDEAD(req.txid))
				case 2:
					// And, as a confused gateway might, replay that late answer ahead of the
					// right one.
					c.conn.Write(staleDEAD(uint16(firstTxid.Load())))
					c.answer(req)
				default:
					c.answer(req)
				}
			})
			c, tr := newTestClient(t, t.Context(), s.addr(), 300*time.Millisecond)
			tr.single = single

			_, err := readHR0(t, c)
			wantConnError(t, err, true)
			// One unit on the connection: a timeout closes it (the link may be half-open).
			// Several: it stays open for the others, and the late reply is dropped by its id.
			if tr.connected() == single {
				t.Fatalf("connection open %v after a timeout, want %v", tr.connected(), !single)
			}
			close(release)
			wantValue(t, c, 7) // its own answer, not the late 0xDEAD
			wantValue(t, c, 7)
			want := int64(1)
			if single {
				want = 2
			}
			if got := s.accepts.Load(); got != want {
				t.Errorf("server saw %d connections, want %d", got, want)
			}
		})
	}
}

// TestTransport_Send_TwoTimeoutsClose: a second timeout in a row closes a connection shared by
// several units: the link itself may be half-open.
func TestTransport_Send_TwoTimeoutsClose(t *testing.T) {
	s := startServer(t)
	s.setHolding(0, 7)
	s.setHandler(func(c *serverConn, req request) {
		if req.n <= 2 {
			return // no answer
		}
		c.answer(req)
	})
	c, tr := newTestClient(t, t.Context(), s.addr(), 200*time.Millisecond)
	_, err := readHR0(t, c)
	wantConnError(t, err, true)
	if !tr.connected() {
		t.Fatal("first timeout closed the connection")
	}
	_, err = readHR0(t, c)
	wantConnError(t, err, true)
	if tr.connected() {
		t.Fatal("second timeout in a row left the connection open")
	}
	wantValue(t, c, 7)
}

// TestTransport_Send_UnitsShareTxids: two units behind one gateway, each with its own goburrow
// packager (whose transaction ids both start at 1): the transport numbers requests per
// connection, so a late answer to one unit is never taken for the other's.
func TestTransport_Send_UnitsShareTxids(t *testing.T) {
	s := startServer(t)
	var seen []uint16
	var mu sync.Mutex
	s.setHandler(func(c *serverConn, req request) {
		mu.Lock()
		seen = append(seen, req.txid)
		mu.Unlock()
		if req.n == 1 {
			return // unit 1's first request: answered late, below
		}
		if req.n == 2 {
			// unit 2 asks next; the gateway first delivers unit 1's late answer, with unit 1's
			// transaction id, then unit 2's.
			mu.Lock()
			late := seen[0]
			mu.Unlock()
			c.send(late, 1, []byte{3, 2, 0xDE, 0xAD})
		}
		c.send(req.txid, req.unit, []byte{3, 2, 0, req.unit})
	})
	tr := newTCPTransport(t.Context(), s.addr(), 300*time.Millisecond, (&net.Dialer{}).DialContext)
	t.Cleanup(tr.release)
	client := func(unit byte) modbus.Client {
		pk := &modbus.TCPClientHandler{}
		pk.SlaveId = unit
		return modbus.NewClient2(pk, tr)
	}
	u1, u2 := client(1), client(2)
	if _, err := u1.ReadHoldingRegisters(0, 1); err == nil {
		t.Fatal("unit 1's first read did not time out")
	}
	b, err := u2.ReadHoldingRegisters(0, 1)
	if err != nil || binary.BigEndian.Uint16(b) != 2 {
		t.Fatalf("unit 2 read %x, %v; want its own 0x0002", b, err)
	}
	b, err = u1.ReadHoldingRegisters(0, 1)
	if err != nil || binary.BigEndian.Uint16(b) != 1 {
		t.Fatalf("unit 1 read %x, %v; want its own 0x0001", b, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[0] == seen[1] || seen[1] == seen[2] || seen[0] == seen[2] {
		t.Errorf("transaction ids on the connection: %v, want three different ones", seen)
	}
}

func TestTransport_Send_Stale_DuplicateOnSameConnection(t *testing.T) {
	s := startServer(t)
	s.setHolding(0, 7)
	s.setHandler(func(c *serverConn, req request) {
		// Two stale frames, then the answer: a late duplicate of the previous reply and one
		// with a txid far off.
		c.conn.Write(staleDEAD(req.txid - 1))
		c.conn.Write(staleDEAD(req.txid + 1000))
		c.answer(req)
	})
	c, _ := newTestClient(t, t.Context(), s.addr(), time.Second)
	for range 5 {
		wantValue(t, c, 7)
	}
	if got := s.accepts.Load(); got != 1 {
		t.Errorf("server saw %d connections, want 1 (stale frames are no reason to reconnect)", got)
	}
}

func TestTransport_Send_WrongTxidOnlyTimesOut(t *testing.T) {
	s := startServer(t)
	s.setHandler(func(c *serverConn, req request) {
		if req.n == 1 {
			c.conn.Write(staleDEAD(req.txid + 1))
			return
		}
		c.answer(req)
	})
	s.setHolding(0, 9)
	c, _ := newTestClient(t, t.Context(), s.addr(), 300*time.Millisecond)
	_, err := readHR0(t, c)
	wantConnError(t, err, true)
	wantValue(t, c, 9)
}

func TestTransport_Send_ServerCloses(t *testing.T) {
	s := startServer(t)
	s.setHolding(0, 3)
	s.setHandler(func(c *serverConn, req request) {
		if req.n == 2 {
			c.conn.Close()
			return
		}
		c.answer(req)
	})
	c, tr := newTestClient(t, t.Context(), s.addr(), time.Second)
	wantValue(t, c, 3)
	_, err := readHR0(t, c)
	wantConnError(t, err, false)
	if tr.connected() {
		t.Fatal("connection still open after EOF")
	}
	wantValue(t, c, 3)
	if got := s.accepts.Load(); got != 2 {
		t.Errorf("server saw %d connections, want 2", got)
	}
}

func TestTransport_Send_BrokenFraming(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(req request) []byte
	}{
		{"protocol id 1", func(req request) []byte {
			b := frame(req.txid, 1, []byte{3, 2, 0, 1})
			b[3] = 1
			return b
		}},
		{"length 0", func(req request) []byte { return []byte{byte(req.txid >> 8), byte(req.txid), 0, 0, 0, 0, 1} }},
		{"length 1", func(req request) []byte { return []byte{byte(req.txid >> 8), byte(req.txid), 0, 0, 0, 1, 1} }},
		{"length 255", func(req request) []byte { return []byte{byte(req.txid >> 8), byte(req.txid), 0, 0, 0, 255, 1} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t)
			s.setHolding(0, 5)
			s.setHandler(func(c *serverConn, req request) {
				if req.n == 1 {
					c.conn.Write(tc.reply(req))
					return
				}
				c.answer(req)
			})
			c, tr := newTestClient(t, t.Context(), s.addr(), time.Second)
			_, err := readHR0(t, c)
			var fe *frameError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v (%T), want a framing error", err, err)
			}
			if tr.connected() {
				t.Fatal("connection still open after a framing error")
			}
			wantValue(t, c, 5)
		})
	}
}

func TestTransport_Send_ExceptionKeepsConnection(t *testing.T) {
	s := startServer(t)
	s.setHolding(0, 5)
	s.setHandler(func(c *serverConn, req request) {
		if req.n == 1 {
			c.exception(req, 2)
			return
		}
		c.answer(req)
	})
	c, tr := newTestClient(t, t.Context(), s.addr(), time.Second)
	_, err := readHR0(t, c)
	var me *modbus.ModbusError
	if !errors.As(err, &me) || me.ExceptionCode != 2 {
		t.Fatalf("got %v, want exception 2", err)
	}
	if !tr.connected() {
		t.Fatal("an exception closed the connection")
	}
	wantValue(t, c, 5)
	if got := s.accepts.Load(); got != 1 {
		t.Errorf("server saw %d connections, want 1", got)
	}
}

func TestTransport_Send_DialRefused(t *testing.T) {
	c, _ := newTestClient(t, t.Context(), reserveAddr(t), time.Second)
	_, err := readHR0(t, c)
	var ce *connError
	if !errors.As(err, &ce) || !ce.dial {
		t.Fatalf("got %v, want a dial error", err)
	}
}

// TestTransport_Send_Shutdown: a request blocked on a device that accepted it and never answers
// returns as soon as the context ends, long before its timeout.
func TestTransport_Send_Shutdown(t *testing.T) {
	s := startServer(t)
	s.setHandler(func(c *serverConn, req request) { c.hang() })
	ctx, cancel := context.WithCancel(t.Context())
	c, _ := newTestClient(t, ctx, s.addr(), time.Minute)
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadHoldingRegisters(0, 1)
		done <- err
	}()
	waitFor(t, 5*time.Second, func() error {
		if s.requests.Load() == 0 {
			return errors.New("no request reached the server")
		}
		return nil
	})
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if el := time.Since(start); el > time.Second {
			t.Errorf("Send returned %v after cancel", el)
		}
		wantConnError(t, err, true)
	case <-time.After(10 * time.Second):
		t.Fatal("Send still blocked 10s after cancel")
	}
}

// FuzzTransport_Reply feeds arbitrary bytes, in two writes as TCP may split them, as the reply
// stream to one request. Send must never panic, and what it returns must be one whole frame
// carrying the request's transaction id, protocol 0 and a length that matches.
func FuzzTransport_Reply(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 5, 1, 3, 2, 0, 7}, uint8(3))
	f.Add(append(staleDEAD(0), frame(1, 1, []byte{3, 2, 0, 7})...), uint8(9))
	f.Add([]byte{0, 1, 0, 1, 0, 5, 1, 3, 2, 0, 7}, uint8(0))
	f.Add([]byte{0, 1, 0, 0, 0, 0, 1}, uint8(7))
	f.Add([]byte{0, 1, 0, 0, 0xFF, 0xFF, 1}, uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, split uint8) {
		if len(stream) > 1024 {
			return
		}
		cut := min(int(split), len(stream))
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			var req [12]byte
			if _, err := io.ReadFull(server, req[:]); err != nil {
				return
			}
			server.Write(stream[:cut])
			server.Write(stream[cut:])
			server.Close()
		}()
		dial := func(context.Context, string, string) (net.Conn, error) { return client, nil }
		tr := newTCPTransport(t.Context(), "pipe", time.Second, dial)
		req := frame(1, 1, []byte{3, 0, 0, 0, 1})
		resp, err := tr.Send(req)
		open := tr.connected()
		tr.release()
		<-done
		if err != nil {
			if open {
				t.Fatal("connection left open after an error")
			}
			return
		}
		if len(resp) < mbapHeaderLen+1 {
			t.Fatalf("reply of %d bytes", len(resp))
		}
		if binary.BigEndian.Uint16(resp) != 1 || binary.BigEndian.Uint16(resp[2:]) != 0 ||
			int(binary.BigEndian.Uint16(resp[4:])) != len(resp)-6 {
			t.Fatalf("reply % x does not match the request or its own length", resp)
		}
	})
}
