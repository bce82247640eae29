package modbus

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/floorlink/floorlink/simulators/line"
)

// chunked is a connection whose reads return the given parts, then EOF, as TCP may split a
// stream anywhere; writes are collected.
type chunked struct {
	parts [][]byte
	out   bytes.Buffer
}

func (c *chunked) Read(p []byte) (int, error) {
	for len(c.parts) > 0 && len(c.parts[0]) == 0 {
		c.parts = c.parts[1:]
	}
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts[0] = c.parts[0][n:]
	return n, nil
}

func (c *chunked) Write(p []byte) (int, error) { return c.out.Write(p) }

func fuzzServer(t testing.TB) *Server {
	l, err := line.New(line.Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range 3000 {
		l.Step()
	}
	s, err := New(Options{Source: NewLineSource(l, &sync.Mutex{})})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mbap(txid, proto uint16, unit byte, pdu ...byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, txid)
	b = binary.BigEndian.AppendUint16(b, proto)
	b = binary.BigEndian.AppendUint16(b, uint16(1+len(pdu)))
	return append(append(b, unit), pdu...)
}

// FuzzRequest feeds a byte stream, split in two reads at cut, to the TCP framer and checks that
// the answers do not depend on the split and match, frame by frame, what the MBAP framing of the
// input (parsed here independently) calls for.
func FuzzRequest(f *testing.F) {
	good := mbap(1, 0, 1, 3, 0, 0, 0, 20)
	f.Add(good, uint16(3))
	f.Add(append(append([]byte{}, good...), mbap(2, 0, 2, 1, 0, 0, 0, 16)...), uint16(15))
	f.Add(mbap(0xBEEF, 0, 3, 4, 0, 0, 0, 10), uint16(7))
	f.Add(mbap(3, 0, 1, 2, 0, 2, 0, 2), uint16(0))
	f.Add(mbap(4, 0, 1, 3, 0, 0, 0, 0), uint16(9))
	f.Add(mbap(5, 0, 9, 3, 0, 0, 0, 1), uint16(11))
	f.Add(mbap(6, 0, 1, 6, 0, 0, 0, 1), uint16(12))
	f.Add(mbap(7, 1, 1, 3, 0, 0, 0, 1), uint16(2))
	f.Add(mbap(8, 0, 1, 3, 0, 0, 0, 1, 0xFF), uint16(8))
	f.Add(mbap(9, 0, 1), uint16(6))
	f.Add([]byte{0, 1, 0, 0, 0, 0, 1}, uint16(4))
	f.Add([]byte{0, 1, 0, 0, 0xFF, 0xFF, 1, 3}, uint16(4))
	f.Add(append(append([]byte{}, good...), good[:9]...), uint16(20))

	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		if len(data) > 4096 {
			return
		}
		split := int(cut) % (len(data) + 1)
		whole := &chunked{parts: [][]byte{bytes.Clone(data)}}
		halves := &chunked{parts: [][]byte{bytes.Clone(data[:split]), bytes.Clone(data[split:])}}
		errWhole := s.serveTCP(context.Background(), whole)
		errHalves := s.serveTCP(context.Background(), halves)
		if !bytes.Equal(whole.out.Bytes(), halves.out.Bytes()) {
			t.Fatalf("answers differ between one read and a split at %d:\n% x\n% x", split, whole.out.Bytes(), halves.out.Bytes())
		}
		if errors.Is(errWhole, errMalformed) != errors.Is(errHalves, errMalformed) {
			t.Fatalf("errors differ between one read (%v) and a split at %d (%v)", errWhole, split, errHalves)
		}
		checkAnswers(t, data, whole.out.Bytes(), errWhole)
	})
}

// checkAnswers walks the request stream with its own MBAP parser and checks one answer per
// complete well-formed frame, in order.
func checkAnswers(t *testing.T, in, out []byte, serveErr error) {
	malformed := false
	for len(in) >= 7 {
		txid, proto, length, unit := binary.BigEndian.Uint16(in), binary.BigEndian.Uint16(in[2:]), int(binary.BigEndian.Uint16(in[4:])), in[6]
		if proto != 0 || length < 2 || length > 254 {
			malformed = true
			break
		}
		if len(in) < 6+length {
			break
		}
		pdu := in[7 : 6+length]
		in = in[6+length:]

		if len(out) < 9 {
			t.Fatalf("answer missing for txid %d (% x)", txid, pdu)
		}
		rl := int(binary.BigEndian.Uint16(out[4:]))
		if binary.BigEndian.Uint16(out) != txid || binary.BigEndian.Uint16(out[2:]) != 0 || out[6] != unit {
			t.Fatalf("answer header % x for request txid %d unit %d", out[:7], txid, unit)
		}
		if rl < 3 || len(out) < 6+rl {
			t.Fatalf("answer length field %d with %d bytes left", rl, len(out))
		}
		resp := out[7 : 6+rl]
		out = out[6+rl:]
		fc := pdu[0]
		if resp[0] == fc|0x80 && len(resp) == 2 {
			switch resp[1] {
			case 1, 2, 3, 0x0B:
			default:
				t.Fatalf("exception %d to % x", resp[1], pdu)
			}
			if fc >= 1 && fc <= 4 && len(pdu) == 5 && resp[1] == 1 {
				t.Fatalf("illegal function for a read request % x", pdu)
			}
			continue
		}
		if fc < 1 || fc > 4 || len(pdu) != 5 || resp[0] != fc {
			t.Fatalf("data answer % x to request % x", resp, pdu)
		}
		qty := int(binary.BigEndian.Uint16(pdu[3:]))
		want := 2 * qty
		if fc <= 2 {
			want = (qty + 7) / 8
		}
		if int(resp[1]) != want || len(resp) != 2+want {
			t.Fatalf("answer % x to % x: want %d data bytes", resp, pdu, want)
		}
		if unit < 1 || unit > 3 {
			t.Fatalf("data answered for unit %d, which the line does not have", unit)
		}
	}
	if len(out) != 0 {
		t.Fatalf("%d answer bytes left over: % x", len(out), out)
	}
	if malformed != errors.Is(serveErr, errMalformed) {
		t.Fatalf("malformed header seen: %v, but serveTCP returned %v", malformed, serveErr)
	}
}
