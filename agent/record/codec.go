package record

// Record format, version 1
//
// The buffer stores records as opaque bytes for as long as an outage lasts, so a binary built
// today must read what any earlier binary wrote. The first byte says which format follows; a
// format is never changed once released: a new one gets the next type byte and Decode keeps
// reading the old ones (Prometheus tsdb/record does the same with its record types). The golden
// file testdata/v1.golden pins version 1.
//
// Notation: uvarint and varint are encoding/binary's (LEB128, 1 to 10 bytes; varint zigzag-encodes
// a signed value first), and must be minimal: the last byte of a varint longer than one byte is
// never 0x00. "str" is a uvarint byte length followed by that many bytes, not checked for UTF-8.
//
//	record:
//	  1 byte   type: 0x01 = format version 1 (0x00 is never used)
//	  1 byte   Kind: 1 telemetry, 2 kpi, 3 event
//	  str      Source (may be empty)
//	  varint   Time in Unix nanoseconds; math.MinInt64 (ff ff ff ff ff ff ff ff ff 01) stands for
//	           the zero time.Time, so the instant 1677-09-21T00:12:43.145224192Z is not encodable
//	  uvarint  number of fields, 0 to 65535, each encoded as below, in order
//
//	field:
//	  str      Name, 1 to 255 bytes, unique within the record
//	  1 byte   flags:
//	             bits 0-2  ValueKind: 0 null, 1 bool, 2 int, 3 uint, 4 float, 5 string
//	             bits 3-4  Quality: 0 good, 1 uncertain, 2 bad
//	             bit 5     a reason follows the value
//	             bit 6     a source time follows the value (and reason)
//	             bit 7     the value of a bool field: 1 true; always 0 for other kinds
//	  value, by ValueKind:
//	             null, bool  nothing (a bool lives in flags bit 7)
//	             int         varint of int64(Bits)
//	             uint        uvarint of Bits
//	             float       8 bytes: Bits (the IEEE 754 bits) little-endian, so NaN payloads and
//	                         -0 survive
//	             string      str
//	  str      Reason, only with flags bit 5; never empty
//	  varint   SourceTime, only with flags bit 6: its Unix nanoseconds minus those of the record's
//	           Time (0 if Time is zero), computed modulo 2^64; the result is never math.MinInt64
//
// Nothing follows the last field. Decode refuses every byte string that AppendBinary cannot
// produce (non-minimal varints, flag bits that do not apply, an empty reason, a repeated name, ...),
// so re-encoding a decoded record gives back the input, byte for byte.
//
// A field whose SourceTime equals the record's Time encodes a delta of 0 (one byte); leave it zero
// to spend no byte at all.

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"time"
)

const (
	typeV1 byte = 0x01

	maxNameLen = 255
	maxFields  = 65535

	flagKind       = 0x07
	flagQualShift  = 3
	flagQual       = 0x03 << flagQualShift
	flagReason     = 1 << 5
	flagSourceTime = 1 << 6
	flagTrue       = 1 << 7

	// zeroTimeNanos stands for the zero time.Time, whose Unix nanoseconds do not fit in an int64.
	zeroTimeNanos = math.MinInt64

	// minFieldLen is the smallest encoded field: a one-byte name with its length, and flags.
	minFieldLen = 3
)

// minTime and maxTime bound the instants whose Unix nanoseconds fit in an int64 (years 1677 to
// 2262), less math.MinInt64, which stands for the zero time. Never written to.
var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

// unixNanos returns the encoded form of t, and false if t is neither zero nor in range.
func unixNanos(t time.Time) (int64, bool) {
	if t.IsZero() {
		return zeroTimeNanos, true
	}
	if t.Before(minTime) || t.After(maxTime) {
		return 0, false
	}
	return t.UnixNano(), true
}

// AppendBinary appends the encoding of r to b and returns the extended buffer, in the shape of
// encoding.BinaryAppender. It allocates only to grow b, and, for a record of more than 512 fields,
// a map to check that names are unique.
//
// It returns an error wrapping ErrInvalid for an unknown Kind, ValueKind or Quality, a field name
// that is empty, longer than 255 bytes or repeated, more than 65535 fields, or a Time or
// SourceTime outside the years 1677 to 2262 (other than the zero time). On error it returns b with
// its original length; bytes past it in b's capacity may have been overwritten.
//
// The encoding keeps the instant of each time but not its location or monotonic clock reading:
// Decode returns times in UTC. Only the part of a Field its Kind selects is encoded: Str of a
// non-String field and Bits of a Null or String field are dropped, and a Bool's Bits decode as 0
// or 1. The format is described at the top of codec.go.
func (r *Record) AppendBinary(b []byte) ([]byte, error) {
	if r.Kind < KindTelemetry || r.Kind > KindEvent {
		return b, fmt.Errorf("encode record: kind %d: %w", r.Kind, ErrInvalid)
	}
	t, ok := unixNanos(r.Time)
	if !ok {
		return b, fmt.Errorf("encode record: time %v out of range: %w", r.Time, ErrInvalid)
	}
	base := t
	if t == zeroTimeNanos {
		base = 0
	}
	if len(r.Fields) > maxFields {
		return b, fmt.Errorf("encode record: %d fields, more than %d: %w", len(r.Fields), maxFields, ErrInvalid)
	}
	var names nameSet
	names.init(len(r.Fields))

	orig := b
	b = append(b, typeV1, byte(r.Kind))
	b = appendStr(b, r.Source)
	b = binary.AppendVarint(b, t)
	b = binary.AppendUvarint(b, uint64(len(r.Fields)))
	for i := range r.Fields {
		f := &r.Fields[i]
		if err := f.check(); err != nil {
			return orig, fmt.Errorf("encode record: field %d: %w", i, err)
		}
		if j := names.add(r.Fields, i); j >= 0 {
			return orig, fmt.Errorf("encode record: fields %d and %d: duplicate name %q: %w", j, i, f.Name, ErrInvalid)
		}
		flags := byte(f.Kind) | byte(f.Quality)<<flagQualShift
		if f.Kind == Bool && f.Bits != 0 {
			flags |= flagTrue
		}
		if f.Reason != "" {
			flags |= flagReason
		}
		var delta int64
		if !f.SourceTime.IsZero() {
			st, ok := unixNanos(f.SourceTime)
			if !ok {
				return orig, fmt.Errorf("encode record: field %d %q: source time %v out of range: %w", i, f.Name, f.SourceTime, ErrInvalid)
			}
			flags |= flagSourceTime
			delta = st - base // wraps; Decode adds base back modulo 2^64
		}

		b = appendStr(b, f.Name)
		b = append(b, flags)
		switch f.Kind {
		case Int:
			b = binary.AppendVarint(b, int64(f.Bits))
		case Uint:
			b = binary.AppendUvarint(b, f.Bits)
		case Float:
			b = binary.LittleEndian.AppendUint64(b, f.Bits)
		case String:
			b = appendStr(b, f.Str)
		}
		if flags&flagReason != 0 {
			b = appendStr(b, f.Reason)
		}
		if flags&flagSourceTime != 0 {
			b = binary.AppendVarint(b, delta)
		}
	}
	return b, nil
}

// check reports what AppendBinary cannot encode about f, other than its source time and a
// repeated name.
func (f *Field) check() error {
	switch {
	case f.Name == "":
		return fmt.Errorf("empty name: %w", ErrInvalid)
	case len(f.Name) > maxNameLen:
		return fmt.Errorf("name %.20q... is %d bytes, more than %d: %w", f.Name, len(f.Name), maxNameLen, ErrInvalid)
	case f.Kind > String:
		return fmt.Errorf("%q: value kind %d: %w", f.Name, f.Kind, ErrInvalid)
	case f.Quality > Bad:
		return fmt.Errorf("%q: quality %d: %w", f.Name, f.Quality, ErrInvalid)
	}
	return nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// nameSeed seeds the hash of nameSet's filter. Random per process, so that no input can be
// crafted to make every name collide; never written to after start.
var nameSeed = maphash.MakeSeed()

// maxFiltered is the most fields nameSet checks without allocating. Its filter has 4096 bits, so
// up to here a new name rarely hits a set bit (which costs a scan of the earlier names); above,
// the filter fills and a map is cheaper.
const maxFiltered = 512

// nameSet finds repeated names among a record's fields as they are added in order. Telemetry
// records are encoded and decoded once per device per cycle, so the common case must not
// allocate, and comparing every pair costs microseconds at fifty fields.
type nameSet struct {
	filter [64]uint64     // a one-hash Bloom filter of the names added so far
	big    map[string]int // name to index; replaces filter above maxFiltered fields
}

// init prepares s for a record of n fields.
func (s *nameSet) init(n int) {
	if n > maxFiltered {
		s.big = make(map[string]int, n)
	}
}

// add adds fields[i].Name, having added fields[:i] before, and returns the index of an earlier
// field with the same name, or -1.
func (s *nameSet) add(fields []Field, i int) int {
	name := fields[i].Name
	if s.big != nil {
		if j, ok := s.big[name]; ok {
			return j
		}
		s.big[name] = i
		return -1
	}
	h := maphash.String(nameSeed, name) & 4095
	w, bit := h>>6, uint64(1)<<(h&63)
	if s.filter[w]&bit != 0 {
		for j := range fields[:i] {
			if fields[j].Name == name {
				return j
			}
		}
	}
	s.filter[w] |= bit
	return -1
}

// Interning limits: a stream of records with ever new names or reasons must not grow a
// long-lived Decoder without bound. Longer strings are not interned.
const (
	maxInterned    = 4096 // entries; the table is emptied when it is full
	maxInternedLen = 256  // bytes
)

// A Decoder decodes records, interning the names, sources and reasons it has seen so that
// decoding a stream of records of the same shape allocates nothing once the first is decoded,
// other than for String values. The zero Decoder is ready to use. The table holds at most 4096
// strings of at most 256 bytes each; when full it is emptied and refills from the records that
// follow.
//
// A Decoder is not safe for concurrent use: give each goroutine its own.
type Decoder struct {
	strs map[string]string // interned strings, each its own key
}

// Decode decodes the record data holds, which must be exactly one encoding made by
// AppendBinary, into r. It overwrites r, including the elements in the capacity of r.Fields,
// which it reuses. The decoded strings do not alias data, which the caller may reuse at once.
//
// Times are in UTC (time.Unix(0, n).UTC()), without a monotonic clock reading; the zero Time
// decodes as the zero Time.
//
// On error r is Reset, and the error is a *DecodeError wrapping ErrUnknownVersion if the first
// byte names no known format, and ErrCorrupt for any other fault. Decode never panics, and
// allocates in proportion to len(data) at most: a count or length is checked against the bytes
// left before anything is allocated for it.
func (d *Decoder) Decode(data []byte, r *Record) error {
	if err := d.decode(data, r); err != nil {
		r.Reset()
		return err
	}
	return nil
}

func (d *Decoder) decode(data []byte, r *Record) error {
	rd := reader{buf: data, field: -1}
	if len(data) == 0 {
		return rd.errorf(0, "empty input")
	}
	switch data[0] {
	case typeV1:
		rd.off = 1
		return d.decodeV1(&rd, r)
	}
	return &DecodeError{Offset: 0, What: fmt.Sprintf("type byte 0x%02x", data[0]), Err: ErrUnknownVersion}
}

func (d *Decoder) decodeV1(rd *reader, r *Record) error {
	if rd.off >= len(rd.buf) {
		return rd.errorf(rd.off, "truncated before kind")
	}
	kind := Kind(rd.buf[rd.off])
	if kind < KindTelemetry || kind > KindEvent {
		return rd.errorf(rd.off, "unknown kind %d", kind)
	}
	rd.off++
	src, err := rd.str("source")
	if err != nil {
		return err
	}
	tn, err := rd.varint("time")
	if err != nil {
		return err
	}
	var t time.Time
	base := int64(0)
	if tn != zeroTimeNanos {
		t, base = time.Unix(0, tn).UTC(), tn
	}
	countOff := rd.off
	count, err := rd.uvarint("field count")
	if err != nil {
		return err
	}
	if count > maxFields {
		return rd.errorf(countOff, "field count %d, more than %d", count, maxFields)
	}
	if left := len(rd.buf) - rd.off; count > uint64(left/minFieldLen) {
		return rd.errorf(countOff, "field count %d needs at least %d bytes, %d left", count, count*minFieldLen, left)
	}
	n := int(count)

	fields := r.Fields[:0]
	if cap(fields) < n {
		fields = make([]Field, n)
	}
	fields = fields[:n]
	var names nameSet
	names.init(n)
	for i := range fields {
		rd.field, rd.name = i, ""
		if err := d.decodeField(rd, &fields[i], base); err != nil {
			return err
		}
		if j := names.add(fields, i); j >= 0 {
			return rd.errorf(rd.fieldOff, "name repeats field %d", j)
		}
	}
	rd.field = -1
	if rd.off != len(rd.buf) {
		return rd.errorf(rd.off, "%d trailing bytes", len(rd.buf)-rd.off)
	}

	r.Kind, r.Source, r.Time, r.Fields = kind, d.intern(src, r.Source), t, fields
	return nil
}

func (d *Decoder) decodeField(rd *reader, f *Field, base int64) error {
	rd.fieldOff = rd.off
	name, err := rd.str("name")
	if err != nil {
		return err
	}
	switch {
	case len(name) == 0:
		return rd.errorf(rd.fieldOff, "empty name")
	case len(name) > maxNameLen:
		return rd.errorf(rd.fieldOff, "name of %d bytes, more than %d", len(name), maxNameLen)
	}
	prevReason := f.Reason
	*f = Field{Name: d.intern(name, f.Name)}
	rd.name = f.Name

	if rd.off >= len(rd.buf) {
		return rd.errorf(rd.off, "truncated before flags")
	}
	flagsOff, flags := rd.off, rd.buf[rd.off]
	rd.off++
	f.Kind = ValueKind(flags & flagKind)
	f.Quality = Quality((flags & flagQual) >> flagQualShift)
	switch {
	case f.Kind > String:
		return rd.errorf(flagsOff, "flags 0x%02x: unknown value kind %d", flags, f.Kind)
	case f.Quality > Bad:
		return rd.errorf(flagsOff, "flags 0x%02x: unknown quality %d", flags, f.Quality)
	case flags&flagTrue != 0 && f.Kind != Bool:
		return rd.errorf(flagsOff, "flags 0x%02x: bool value bit on value kind %d", flags, f.Kind)
	}

	switch f.Kind {
	case Bool:
		if flags&flagTrue != 0 {
			f.Bits = 1
		}
	case Int:
		v, err := rd.varint("int value")
		if err != nil {
			return err
		}
		f.Bits = uint64(v)
	case Uint:
		if f.Bits, err = rd.uvarint("uint value"); err != nil {
			return err
		}
	case Float:
		if len(rd.buf)-rd.off < 8 {
			return rd.errorf(rd.off, "float value: truncated: %d of 8 bytes", len(rd.buf)-rd.off)
		}
		f.Bits = binary.LittleEndian.Uint64(rd.buf[rd.off:])
		rd.off += 8
	case String:
		s, err := rd.str("string value")
		if err != nil {
			return err
		}
		f.Str = string(s)
	}

	if flags&flagReason != 0 {
		off := rd.off
		s, err := rd.str("reason")
		if err != nil {
			return err
		}
		if len(s) == 0 {
			return rd.errorf(off, "empty reason, though flags 0x%02x announce one", flags)
		}
		f.Reason = d.intern(s, prevReason)
	}
	if flags&flagSourceTime != 0 {
		off := rd.off
		delta, err := rd.varint("source time")
		if err != nil {
			return err
		}
		st := base + delta // wraps, as in AppendBinary
		if st == zeroTimeNanos {
			return rd.errorf(off, "source time delta %d: out of range", delta)
		}
		f.SourceTime = time.Unix(0, st).UTC()
	}
	return nil
}

// intern returns b as a string, allocating only the first time d sees it. prev is the string
// the decoded Record held in the same place: records of a stream mostly have the same shape, and
// comparing with it is cheaper than hashing b.
func (d *Decoder) intern(b []byte, prev string) string {
	if string(b) == prev {
		return prev
	}
	if len(b) == 0 {
		return ""
	}
	if len(b) > maxInternedLen {
		return string(b)
	}
	if s, ok := d.strs[string(b)]; ok { // does not allocate
		return s
	}
	if d.strs == nil {
		d.strs = make(map[string]string)
	} else if len(d.strs) >= maxInterned {
		clear(d.strs)
	}
	s := string(b)
	d.strs[s] = s
	return s
}

// reader walks an encoding, remembering where it is for error messages.
type reader struct {
	buf      []byte
	off      int
	field    int    // index of the field being decoded, or -1
	fieldOff int    // offset of that field
	name     string // its name, once decoded
}

// errorf returns an ErrCorrupt about the item at byte off.
func (rd *reader) errorf(off int, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	switch {
	case rd.field >= 0 && rd.name != "":
		what = fmt.Sprintf("field %d %q: %s", rd.field, rd.name, what)
	case rd.field >= 0:
		what = fmt.Sprintf("field %d: %s", rd.field, what)
	}
	return &DecodeError{Offset: off, What: what, Err: ErrCorrupt}
}

func (rd *reader) uvarint(what string) (uint64, error) {
	start := rd.off
	if start < len(rd.buf) && rd.buf[start] < 0x80 {
		rd.off++
		return uint64(rd.buf[start]), nil
	}
	v, n := binary.Uvarint(rd.buf[start:])
	switch {
	case n == 0:
		return 0, rd.errorf(start, "%s: truncated varint", what)
	case n < 0:
		return 0, rd.errorf(start, "%s: varint overflows 64 bits", what)
	case rd.buf[start+n-1] == 0:
		return 0, rd.errorf(start, "%s: varint of %d bytes is not minimal", what, n)
	}
	rd.off += n
	return v, nil
}

func (rd *reader) varint(what string) (int64, error) {
	u, err := rd.uvarint(what)
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x, err
}

// str returns the next length-prefixed byte string, aliasing rd.buf.
func (rd *reader) str(what string) ([]byte, error) {
	start := rd.off
	n, err := rd.uvarint(what)
	if err != nil {
		return nil, err
	}
	if left := len(rd.buf) - rd.off; n > uint64(left) {
		return nil, rd.errorf(start, "%s: length %d beyond input (%d bytes left)", what, n, left)
	}
	b := rd.buf[rd.off : rd.off+int(n)]
	rd.off += int(n)
	return b, nil
}
