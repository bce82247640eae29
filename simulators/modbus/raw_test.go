package modbus_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/simulators/line"
	simmodbus "github.com/floorlink/floorlink/simulators/modbus"
)

// Raw-socket tests: what goburrow never sends (pipelining, split frames, bad headers, quantities
// it refuses client-side), framed by hand from Modbus Messaging on TCP/IP v1.0b.

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t testing.TB, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// frame is an MBAP frame with a read PDU: function, address, quantity.
func frame(txid uint16, unit, fc byte, addr, qty uint16) []byte {
	return rawFrame(txid, 0, unit, []byte{fc, byte(addr >> 8), byte(addr), byte(qty >> 8), byte(qty)})
}

// rawFrame is an MBAP frame around any PDU, with the length field computed.
func rawFrame(txid, proto uint16, unit byte, pdu []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, txid)
	b = binary.BigEndian.AppendUint16(b, proto)
	b = binary.BigEndian.AppendUint16(b, uint16(1+len(pdu)))
	b = append(b, unit)
	return append(b, pdu...)
}

type response struct {
	txid, proto uint16
	unit        byte
	pdu         []byte
}

func readFrame(t testing.TB, c net.Conn) response {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [7]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("read response header: %v", err)
	}
	r := response{
		txid:  binary.BigEndian.Uint16(hdr[0:]),
		proto: binary.BigEndian.Uint16(hdr[2:]),
		unit:  hdr[6],
	}
	n := binary.BigEndian.Uint16(hdr[4:])
	if n < 2 || n > 254 {
		t.Fatalf("response length field %d outside 2..254", n)
	}
	r.pdu = make([]byte, n-1)
	if _, err := io.ReadFull(c, r.pdu); err != nil {
		t.Fatalf("read response pdu: %v", err)
	}
	if r.proto != 0 {
		t.Errorf("response protocol id %d, want 0", r.proto)
	}
	return r
}

// expectClosed fails unless the server closes c (EOF or reset) within 5 s, sending nothing.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	n, err := c.Read(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("connection still open after 5s, want it closed")
	}
	if n != 0 || err == nil {
		t.Fatalf("read %d bytes (err %v), want the connection closed", n, err)
	}
}

func TestServer_TCP_TransactionIDEcho(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	c := dial(t, f.addr)
	for _, txid := range []uint16{0, 1, 0xBEEF, 0xFFFF} {
		send(t, c, frame(txid, 3, 3, 0, 1))
		r := readFrame(t, c)
		if r.txid != txid || r.unit != 3 {
			t.Errorf("sent transaction id %#x unit 3, got %#x unit %d", txid, r.txid, r.unit)
		}
		if want := []byte{3, 2}; !cmp.Equal(r.pdu[:2], want) || len(r.pdu) != 4 {
			t.Errorf("txid %#x: pdu % x, want 03 02 and one register", txid, r.pdu)
		}
	}
}

func TestServer_TCP_Pipelined(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	c := dial(t, f.addr)
	type req struct {
		unit, fc  byte
		addr, qty uint16
		wantPDU   int // response PDU length
	}
	reqs := []req{
		{1, 3, 0, 20, 2 + 40}, {2, 4, 0, 10, 2 + 20}, {3, 1, 0, 16, 2 + 2},
		{1, 2, 0, 5, 2 + 1}, {9, 3, 0, 1, 2}, {2, 3, 100, 1, 2}, {3, 3, 99, 1, 2 + 2},
	}
	var all []byte
	for i, r := range reqs {
		all = append(all, frame(uint16(100+i), r.unit, r.fc, r.addr, r.qty)...)
	}
	send(t, c, all)
	for i, r := range reqs {
		got := readFrame(t, c)
		if got.txid != uint16(100+i) || got.unit != r.unit || len(got.pdu) != r.wantPDU {
			t.Errorf("answer %d: txid %d unit %d pdu % x, want txid %d unit %d and %d pdu bytes",
				i, got.txid, got.unit, got.pdu, 100+i, r.unit, r.wantPDU)
		}
	}
}

func TestServer_TCP_SplitWrites(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	req := frame(7, 1, 3, 1, 2)
	tests := []struct {
		name   string
		chunks [][]byte
	}{
		{"header then pdu", [][]byte{req[:7], req[7:]}},
		{"inside the header", [][]byte{req[:3], req[3:]}},
		{"inside the pdu", [][]byte{req[:9], req[9:]}},
		{"byte by byte", func() [][]byte {
			var out [][]byte
			for i := range req {
				out = append(out, req[i:i+1])
			}
			return out
		}()},
		{"one and a half frames", [][]byte{append(append([]byte{}, req...), req[:5]...), req[5:]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, f.addr)
			for _, ch := range tt.chunks {
				send(t, c, ch)
			}
			want := 1
			if tt.name == "one and a half frames" {
				want = 2
			}
			for range want {
				r := readFrame(t, c)
				if r.txid != 7 || len(r.pdu) != 6 || r.pdu[0] != 3 || r.pdu[1] != 4 {
					t.Errorf("got txid %d pdu % x, want txid 7 and two registers", r.txid, r.pdu)
				}
			}
		})
	}
}

func TestServer_TCP_MalformedHeader(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	withLength := func(n uint16) []byte {
		b := frame(1, 1, 3, 0, 1)
		binary.BigEndian.PutUint16(b[4:], n)
		return b
	}
	tests := []struct {
		name string
		bad  []byte
	}{
		{"protocol id 1", rawFrame(1, 1, 1, []byte{3, 0, 0, 0, 1})},
		{"protocol id 0xffff", rawFrame(1, 0xFFFF, 1, []byte{3, 0, 0, 0, 1})},
		{"length 0", withLength(0)},
		{"length 1", withLength(1)},
		{"length 255", withLength(255)},
		{"length 65535", withLength(65535)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, f.addr)
			// A good frame first, pipelined with the bad one: it is still answered.
			send(t, c, append(frame(5, 1, 3, 0, 1), tt.bad...))
			if r := readFrame(t, c); r.txid != 5 {
				t.Errorf("got txid %d, want the good frame's 5", r.txid)
			}
			expectClosed(t, c)
		})
	}
}

func TestServer_TCP_Exceptions(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	c := dial(t, f.addr)
	tests := []struct {
		name string
		pdu  []byte
		unit byte
		want []byte // response PDU
	}{
		{"holding quantity 0", []byte{3, 0, 0, 0, 0}, 1, []byte{0x83, 3}},
		{"holding quantity 126", []byte{3, 0, 0, 0, 126}, 1, []byte{0x83, 3}},
		{"input quantity 0xffff", []byte{4, 0, 0, 0xFF, 0xFF}, 1, []byte{0x84, 3}},
		{"coils quantity 0", []byte{1, 0, 0, 0, 0}, 1, []byte{0x81, 3}},
		{"coils quantity 2001", []byte{1, 0, 0, 0x07, 0xD1}, 1, []byte{0x81, 3}},
		{"discrete quantity 2000 past the map", []byte{2, 0, 0, 0x07, 0xD0}, 1, []byte{0x82, 2}},
		{"holding 125 past the map", []byte{3, 0, 0, 0, 125}, 1, []byte{0x83, 2}},
		{"quantity checked before address", []byte{3, 0xFF, 0xFF, 0, 0}, 1, []byte{0x83, 3}},
		{"pdu too long", []byte{3, 0, 0, 0, 1, 0}, 1, []byte{0x83, 3}},
		{"pdu too short", []byte{3, 0, 0}, 1, []byte{0x83, 3}},
		{"function only", []byte{3}, 1, []byte{0x83, 3}},
		{"function 0", []byte{0}, 1, []byte{0x80, 1}},
		{"function 0x2b", []byte{0x2B, 0x0E, 1, 0}, 1, []byte{0xAB, 1}},
		{"function 0x83", []byte{0x83, 0, 0, 0, 1}, 1, []byte{0x83, 1}},
		{"write single register", []byte{6, 0, 0, 0, 1}, 1, []byte{0x86, 1}},
		{"unknown unit before function", []byte{0x2B}, 200, []byte{0xAB, 0x0B}},
		{"unit 255", []byte{3, 0, 0, 0, 1}, 255, []byte{0x83, 0x0B}},
		{"largest read", []byte{3, 0, 0, 0, 100}, 1, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send(t, c, rawFrame(uint16(i), 0, tt.unit, tt.pdu))
			r := readFrame(t, c)
			if r.txid != uint16(i) || r.unit != tt.unit {
				t.Errorf("got txid %d unit %d, want %d and %d", r.txid, r.unit, i, tt.unit)
			}
			if tt.want == nil {
				if len(r.pdu) != 202 || r.pdu[1] != 200 {
					t.Errorf("got pdu of %d bytes (% x...), want 100 registers", len(r.pdu), r.pdu[:2])
				}
				return
			}
			if !cmp.Equal(tt.want, r.pdu) {
				t.Errorf("got pdu % x, want % x", r.pdu, tt.want)
			}
		})
	}
}

// TestServer_Run_ContextEnds checks that Run closes its listener and its connections and returns
// when its context ends.
func TestServer_Run_ContextEnds(t *testing.T) {
	l, err := line.New(line.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	srv, err := simmodbus.New(simmodbus.Options{Source: simmodbus.NewLineSource(l, &mu)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	c := dial(t, ln.Addr().String())
	send(t, c, frame(1, 1, 3, 0, 1))
	readFrame(t, c)
	srv.SetDelay(time.Hour)
	send(t, c, frame(2, 1, 3, 0, 1)) // waits out the delay when the context ends
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of its context ending")
	}
	expectClosed(t, c)
	if c2, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c2.Close()
		t.Error("listener still accepts after Run returned")
	}
	if n := srv.Connections(); n != 0 {
		t.Errorf("%d connections after Run returned, want 0", n)
	}
}

func TestServer_Run_ListenerClosed(t *testing.T) {
	l, _ := line.New(line.Config{})
	var mu sync.Mutex
	srv, _ := simmodbus.New(simmodbus.Options{Source: simmodbus.NewLineSource(l, &mu)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := srv.Run(context.Background(), ln); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Run on a closed listener returned %v, want net.ErrClosed", err)
	}
}
