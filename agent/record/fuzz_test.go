package record

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// maxFuzzInput bounds fuzz inputs: records in the buffer are kilobytes, and a larger input only
// slows the fuzzer down.
const maxFuzzInput = 1 << 16

// FuzzDecode decodes arbitrary bytes. Decode must fail with a *DecodeError wrapping one of its
// sentinels, or succeed on an input that is exactly the encoding of what it decoded: the format
// has one encoding per record.
func FuzzDecode(f *testing.F) {
	for _, gr := range goldenRecords() {
		data, err := gr.rec.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	tel := telemetryRecord(20)
	data, err := tel.AppendBinary(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte{})
	f.Add([]byte{0x01, 0x01, 0x00, 0x00, 0x00})

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		var d Decoder
		var r Record
		err := d.Decode(data, &r)
		if err != nil {
			var de *DecodeError
			switch {
			case !errors.As(err, &de):
				t.Fatalf("got error of type %T, want *DecodeError: %v", err, err)
			case !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownVersion):
				t.Fatalf("got error %v, want ErrCorrupt or ErrUnknownVersion", err)
			case de.Offset < 0 || de.Offset > len(data):
				t.Fatalf("got offset %d, outside the %d bytes of input: %v", de.Offset, len(data), err)
			}
			if r.Kind != 0 || r.Source != "" || !r.Time.IsZero() || len(r.Fields) != 0 {
				t.Fatalf("got record %+v after error, want it reset", r)
			}
			return
		}
		checkUTC(t, &r)

		again, err := r.AppendBinary(nil)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs from the input:\n got %x\nwant %x", again, data)
		}
		var r2 Record
		if err := d.Decode(again, &r2); err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		if diff := cmp.Diff(r, r2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("second decode differs (-first +second):\n%s", diff)
		}

		// A Record and a Decoder that held another record give the same result.
		reused := telemetryRecord(30)
		var d2 Decoder
		if err := d2.Decode(data, &reused); err != nil {
			t.Fatalf("decode into a used Record: %v", err)
		}
		if diff := cmp.Diff(r, reused, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("decode into a used Record differs (-fresh +reused):\n%s", diff)
		}
	})
}

// FuzzRoundTrip builds a record from the fuzzer's inputs, valid or not. AppendBinary must refuse
// exactly the invalid ones, and Decode must give back the others.
//
// names holds the field names separated by '\n'; spec supplies one byte per field (repeating),
// laid out as the flags byte: value kind (bits 0-2, 6 and 7 invalid), quality (bits 3-4, 3
// invalid), reason (bit 5), source time (bit 6).
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(1), "press-1", t0.Unix(), int64(t0.Nanosecond()), "temperature\nparts\nrunning", []byte{0x04, 0x02, 0x01}, uint64(42), "", "stale", int64(-250e6))
	f.Add(uint8(3), "", int64(0), int64(0), "event\nerror", []byte{0x05, 0x25}, uint64(0), "disconnected", "timeout", int64(0))
	f.Add(uint8(2), "line-1", int64(-62135596800), int64(0), "a\na", []byte{0x44}, uint64(math.MaxUint64), "s", "", int64(math.MinInt64))
	f.Add(uint8(0), "x", int64(math.MaxInt64), int64(math.MaxInt64), "", []byte{}, uint64(1), "", "", int64(1))
	f.Add(uint8(1), "x", int64(1e10), int64(0), "a\n\nb", []byte{0x07, 0x18, 0x60}, uint64(1), "", "r", int64(1))

	f.Fuzz(func(t *testing.T, kind uint8, source string, sec, nsec int64, names string, spec []byte, bits uint64, str, reason string, stOffset int64) {
		if len(source)+len(names)+len(spec)+len(str)+len(reason) > maxFuzzInput {
			return
		}
		rec := Record{Kind: Kind(kind), Source: source, Time: time.Unix(sec, nsec)}
		valid := rec.Kind >= KindTelemetry && rec.Kind <= KindEvent && validTime(rec.Time)
		seen := map[string]bool{}
		if names != "" {
			for i, name := range strings.Split(names, "\n") {
				s := byte(i)
				if len(spec) > 0 {
					s = spec[i%len(spec)]
				}
				fd := Field{
					Name:    name,
					Kind:    ValueKind(s & 0x07),
					Bits:    bits * uint64(i+1),
					Str:     str,
					Quality: Quality(s >> 3 & 0x03),
				}
				if s&0x20 != 0 {
					fd.Reason = reason
				}
				if s&0x40 != 0 {
					fd.SourceTime = time.Unix(0, stOffset).Add(time.Duration(i)) // may be out of range
					valid = valid && validTime(fd.SourceTime)
				}
				valid = valid && name != "" && len(name) <= maxNameLen && !seen[name] && fd.Kind <= String && fd.Quality <= Bad
				seen[name] = true
				rec.Fields = append(rec.Fields, fd)
			}
		}

		data, err := rec.AppendBinary(nil)
		if !valid {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got error %v for an invalid record, want ErrInvalid", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("AppendBinary: %v", err)
		}
		var d Decoder
		var got Record
		if err := d.Decode(data, &got); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if diff := cmp.Diff(normalize(rec), got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("decoded record differs (-want +got):\n%s", diff)
		}
		checkUTC(t, &got)
	})
}

// validTime reports whether AppendBinary can encode t, computed without the codec's arithmetic:
// the zero time, or Unix nanoseconds in (math.MinInt64, math.MaxInt64].
func validTime(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	ns := new(big.Int).Mul(big.NewInt(t.Unix()), big.NewInt(1e9))
	ns.Add(ns, big.NewInt(int64(t.Nanosecond())))
	return ns.Cmp(big.NewInt(math.MinInt64)) > 0 && ns.Cmp(big.NewInt(math.MaxInt64)) <= 0
}
