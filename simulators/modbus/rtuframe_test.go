package modbus

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The RTU framing below is checked against a reference written from the specifications
// (Modbus over Serial Line v1.02; Application Protocol v1.1b3, section 6), not from the framer.

// refCRC is the Modbus CRC-16 by table, the way the serial line spec (6.2.2) prints it: a
// different algorithm from the server's bitwise one, with the same results.
func refCRC(b []byte) uint16 {
	var table [256]uint16
	for i := range table {
		c := uint16(i)
		for range 8 {
			if c&1 == 1 {
				c = c>>1 ^ 0xA001
			} else {
				c >>= 1
			}
		}
		table[i] = c
	}
	crc := uint16(0xFFFF)
	for _, x := range b {
		crc = crc>>8 ^ table[byte(crc)^x]
	}
	return crc
}

func refFrame(b ...byte) []byte {
	c := refCRC(b)
	return append(b, byte(c), byte(c>>8))
}

func refCRCOK(f []byte) bool {
	return len(f) >= 4 && refCRC(f[:len(f)-2]) == binary.LittleEndian.Uint16(f[len(f)-2:])
}

// refLen is the request length by function code, from the application protocol's request
// layouts: > 0 known, 0 too short to tell, -1 unknown (ends at a silence).
func refLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	at := func(i int) int {
		if i < len(b) {
			return int(b[i])
		}
		return -1
	}
	switch b[1] {
	case 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08:
		return 1 + 1 + 4 + 2
	case 0x07, 0x0B, 0x0C, 0x11:
		return 1 + 1 + 2
	case 0x0F, 0x10:
		if n := at(6); n >= 0 {
			return 1 + 1 + 2 + 2 + 1 + n + 2
		}
		return 0
	case 0x14, 0x15:
		if n := at(2); n >= 0 {
			return 1 + 1 + 1 + n + 2
		}
		return 0
	case 0x16:
		return 1 + 1 + 6 + 2
	case 0x17:
		if n := at(10); n >= 0 {
			return 1 + 1 + 8 + 1 + n + 2
		}
		return 0
	case 0x18:
		return 1 + 1 + 2 + 2
	case 0x2B:
		switch at(2) {
		case -1:
			return 0
		case 0x0E:
			return 1 + 1 + 3 + 2
		}
	}
	return -1
}

func TestCRC16_KnownFrames(t *testing.T) {
	// Frames as printed in vendors' manuals.
	for _, f := range [][]byte{
		{0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD},
		{0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A},
		{0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87},
	} {
		if !crcValid(f) || !refCRCOK(f) {
			t.Errorf("% x: crcValid %v, reference %v; want both true", f, crcValid(f), refCRCOK(f))
		}
		if got := appendCRC(bytes.Clone(f[:len(f)-2])); !bytes.Equal(got, f) {
			t.Errorf("appendCRC gives % x, want % x", got, f)
		}
	}
}

type emitted struct {
	Off   int64
	Frame []byte
}

// feed runs a framer over stream cut into bursts (a silence after each) and, within each burst,
// into reads of the sizes chunk returns (nil: one read per burst).
func feed(stream []byte, bursts []int, chunk func(i int) int) []emitted {
	var fr rtuFramer
	var got []emitted
	emit := func(f []byte, off int64) { got = append(got, emitted{off, bytes.Clone(f)}) }
	start, reads := 0, 0
	for _, end := range bursts {
		for p := start; p < end; {
			n := end - p
			if chunk != nil {
				n = min(n, chunk(reads))
				reads++
			}
			fr.push(stream[p:p+n], emit)
			p += n
		}
		fr.gap(emit)
		start = end
	}
	return got
}

func TestRTUFramer(t *testing.T) {
	good := refFrame(1, 3, 0, 0, 0, 10)
	good2 := refFrame(2, 4, 0, 1, 0, 2)
	bad := bytes.Clone(good)
	bad[7] ^= 0xFF
	write16 := refFrame(1, 16, 0, 5, 0, 2, 4, 0xAA, 0xBB, 0xCC, 0xDD)
	odd := refFrame(1, 0x41, 9, 9, 9) // user-defined function: ends by silence only
	longStart := []byte{7, 16, 0, 0, 0, 100, 200}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	tests := []struct {
		name   string
		bursts [][]byte
		want   []int64 // offsets of the frames found
	}{
		{"one frame", [][]byte{good}, []int64{0}},
		{"back to back", [][]byte{cat(good, good2, write16)}, []int64{0, 8, 16}},
		{"bad crc", [][]byte{bad}, nil},
		{"bad crc then good, no silence", [][]byte{cat(bad, good)}, []int64{8}},
		{"garbage then frame", [][]byte{cat([]byte{0xFF, 0x00, 0x13}, good)}, []int64{3}},
		{"garbage, silence, frame", [][]byte{{0xFF, 0x00, 0x13}, good}, []int64{3}},
		{"long frame start swallows until the silence", [][]byte{cat(longStart, good)}, []int64{7}},
		{"frame cut short by a silence", [][]byte{good[:5], good}, []int64{5}},
		{"unknown function at the end", [][]byte{cat(good, odd)}, []int64{0, 8}},
		{"unknown function then frame needs the silence", [][]byte{cat(odd, good)}, []int64{7}},
		{"frame after 300 bytes of garbage", [][]byte{cat(bytes.Repeat([]byte{0x41}, 300), good)}, []int64{300}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := bytes.Join(tt.bursts, nil)
			var bursts []int
			n := 0
			for _, b := range tt.bursts {
				n += len(b)
				bursts = append(bursts, n)
			}
			for _, chunk := range []func(int) int{nil, func(int) int { return 1 }, func(i int) int { return 1 + i%5 }} {
				var offs []int64
				for _, e := range feed(stream, bursts, chunk) {
					offs = append(offs, e.Off)
				}
				if diff := cmp.Diff(tt.want, offs); diff != "" {
					t.Errorf("frame offsets (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// FuzzRTUFrame builds a byte stream from segs: segments of up to 63 bytes, each optionally given
// a valid CRC (a frame, if its length suits its function) and optionally followed by a silence;
// plan cuts the bursts into reads the way a UART driver delivers them. It checks that:
//   - framing does not depend on how reads split a burst;
//   - every frame found is one burst's bytes with a valid CRC and the length its function code
//     calls for, found once;
//   - in every burst that parses, by the reference, as a sequence of frames, exactly those frames
//     are found; in the others, at least the frames before the first garbage;
//   - every frame for a unit of the line gets one well-formed answer, and no other frame does.
func FuzzRTUFrame(f *testing.F) {
	seg := func(crc, gap bool, body ...byte) []byte {
		h := byte(len(body))
		if crc {
			h |= 0x40
		}
		if gap {
			h |= 0x80
		}
		return append([]byte{h}, body...)
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	f.Add(seg(true, true, 1, 3, 0, 0, 0, 10), []byte{3})
	f.Add(cat(seg(true, false, 1, 3, 0, 0, 0, 10), seg(true, true, 2, 4, 0, 0, 0, 2)), []byte{1, 2, 3})
	f.Add(cat(seg(false, false, 0xFF, 0x00), seg(true, true, 3, 1, 0, 0, 0, 16)), []byte{5, 0x83})
	f.Add(cat(seg(false, true, 1, 16, 0, 0, 0, 100, 200), seg(true, true, 1, 2, 0, 0, 0, 8)), []byte{})
	f.Add(cat(seg(true, false, 1, 16, 0, 1, 0, 2, 4, 1, 2, 3, 4), seg(true, true, 9, 3, 0, 0, 0, 1)), []byte{7})
	f.Add(cat(seg(true, false, 1, 0x41, 1, 2), seg(true, true, 0, 3, 0, 0, 0, 1)), []byte{2, 9})
	f.Add(cat(seg(true, true, 2, 0x2B, 0x0E, 1, 0), seg(true, true, 1, 6, 0, 1, 0, 1)), []byte{4})
	f.Add(seg(true, true, 1, 3, 0, 0, 0, 126), []byte{1})
	f.Add(seg(true, true, 1, 23, 0, 0, 0, 2, 0, 9, 0, 1, 2, 0, 7), []byte{6})

	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, segs, plan []byte) {
		if len(segs) > 4096 || len(plan) > 64 {
			return
		}
		var stream []byte
		var bursts []int
		for i := 0; i < len(segs); {
			h := segs[i]
			body := segs[i+1 : min(i+1+int(h&0x3F), len(segs))]
			i += 1 + len(body)
			if h&0x40 != 0 {
				body = refFrame(bytes.Clone(body)...)
			}
			stream = append(stream, body...)
			if h&0x80 != 0 || i >= len(segs) {
				bursts = append(bursts, len(stream))
			}
		}
		whole := feed(stream, bursts, nil)
		if len(plan) > 0 {
			chunked := feed(stream, bursts, func(i int) int { return 1 + int(plan[i%len(plan)])%17 })
			if diff := cmp.Diff(whole, chunked); diff != "" {
				t.Fatalf("frames differ between whole and chunked reads (-whole +chunked):\n%s", diff)
			}
		}
		checkFrames(t, stream, bursts, whole)
		checkRTUAnswers(t, s, whole)
	})
}

func checkFrames(t *testing.T, stream []byte, bursts []int, got []emitted) {
	t.Helper()
	next := int64(0) // frames may not overlap
	start := 0
	k := 0 // index into got
	for _, end := range bursts {
		// The frames found in this burst.
		var in []emitted
		for k < len(got) && got[k].Off < int64(end) {
			e := got[k]
			a, b := int(e.Off), int(e.Off)+len(e.Frame)
			if e.Off < next || a < start || b > end || !bytes.Equal(stream[a:b], e.Frame) {
				t.Fatalf("frame at %d (% x) overlaps another or crosses a silence (burst %d-%d)", e.Off, e.Frame, start, end)
			}
			if !refCRCOK(e.Frame) || len(e.Frame) > 256 {
				t.Fatalf("frame at %d (% x): bad CRC or too long", e.Off, e.Frame)
			}
			if n := refLen(e.Frame); (n > 0 && n != len(e.Frame)) || (n < 0 && b != end) || n == 0 {
				t.Fatalf("frame at %d (% x) of %d bytes: its function calls for %d (-1: up to the silence)", e.Off, e.Frame, len(e.Frame), n)
			}
			next = int64(b)
			in = append(in, e)
			k++
		}
		// The reference parse of the burst.
		var want []emitted
		p, parsed := start, true
		for p < end {
			b := stream[p:end]
			n := refLen(b)
			switch {
			case n > 0 && n <= len(b) && n <= 256 && refCRCOK(b[:n]):
			case n < 0 && len(b) <= 256 && refCRCOK(b):
				n = len(b)
			default:
				parsed = false
			}
			if !parsed {
				break
			}
			want = append(want, emitted{int64(p), bytes.Clone(b[:n])})
			p += n
		}
		if parsed {
			if diff := cmp.Diff(want, in); diff != "" {
				t.Fatalf("burst %d-%d, well formed: frames (-want +got):\n%s", start, end, diff)
			}
		} else if len(in) < len(want) || (len(want) > 0 && !cmp.Equal(want, in[:len(want)])) {
			t.Fatalf("burst %d-%d: the frames before the garbage %v are not the first found %v", start, end, want, in)
		}
		start = end
	}
	if k != len(got) {
		t.Fatalf("%d frames found beyond the stream", len(got)-k)
	}
}

// checkRTUAnswers answers every frame as the line would and checks each answer.
func checkRTUAnswers(t *testing.T, s *Server, frames []emitted) {
	t.Helper()
	var sc scratch
	for _, e := range frames {
		req := e.Frame
		unit, fc := req[0], req[1]
		if !s.rtuAddressed(unit) {
			if unit >= 1 && unit <= 3 {
				t.Fatalf("frame % x for unit %d of the line not answered", req, unit)
			}
			continue
		}
		if unit < 1 || unit > 3 {
			t.Fatalf("frame % x answered for unit %d, which the line does not have", req, unit)
		}
		out, sv, err := s.answerRTU(context.Background(), req, nil, &sc)
		if err != nil || sv.silent {
			t.Fatalf("answer to % x: %v, silent %v", req, err, sv.silent)
		}
		if !refCRCOK(out) || out[0] != unit {
			t.Fatalf("answer % x to % x: bad CRC or unit", out, req)
		}
		resp := out[1 : len(out)-2]
		if resp[0] == fc|0x80 && len(resp) == 2 {
			switch resp[1] {
			case 1, 2, 3:
			default:
				t.Fatalf("exception %d to % x", resp[1], req)
			}
			if fc >= 1 && fc <= 4 && resp[1] == 1 {
				t.Fatalf("illegal function for the read % x", req)
			}
			continue
		}
		if fc < 1 || fc > 4 || resp[0] != fc {
			t.Fatalf("data answer % x to % x", resp, req)
		}
		qty := int(binary.BigEndian.Uint16(req[4:]))
		want := 2 * qty
		if fc <= 2 {
			want = (qty + 7) / 8
		}
		if int(resp[1]) != want || len(resp) != 2+want {
			t.Fatalf("answer % x to % x: want %d data bytes", resp, req, want)
		}
	}
}

func ExampleRTUOptions_WireTime() {
	// A read of 10 holding registers: an 8-byte request, a 25-byte answer.
	for _, o := range []RTUOptions{{Baud: 9600, Parity: ParityNone}, {Baud: 9600, Parity: ParityEven}, {Baud: 115200, Parity: ParityNone}} {
		fmt.Printf("%d baud, parity %s: %v\n", o.Baud, o.Parity, o.WireTime(8, 25))
	}
	// Output:
	// 9600 baud, parity none: 38.020809ms
	// 9600 baud, parity even: 41.822904ms
	// 115200 baud, parity none: 4.614565ms
}
