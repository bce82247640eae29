package publish

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/floorlink/floorlink/agent/record"
)

// jsonTime is RFC 3339 in UTC with milliseconds, the contract's single time format.
const jsonTime = "2006-01-02T15:04:05.000Z07:00"

// maxSafeInt is 2^53: integers beyond it lose precision in JavaScript and in float64 decoders, so
// the contract sends them as decimal strings.
const maxSafeInt = 1 << 53

// envelope is what the publisher adds to a record to make a message.
type envelope struct {
	gateway    string
	epoch      string
	seq        uint64
	historical bool
	// part and parts number the pieces of a record split to fit mqtt.max_message_bytes; parts
	// is 0 for a record sent whole.
	part, parts int
}

// appendRecordJSON appends the JSON message of r to dst (record.schema.json). It allocates
// nothing: strings are escaped in place and numbers formatted with strconv's append functions.
func appendRecordJSON(dst []byte, env envelope, r *record.Record) []byte {
	dst = append(dst, `{"gateway":`...)
	dst = appendJSONString(dst, env.gateway)
	dst = append(dst, `,"epoch":`...)
	dst = appendJSONString(dst, env.epoch)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, env.seq, 10)
	dst = append(dst, `,"ts":"`...)
	dst = appendTime(dst, r.Time)
	dst = append(dst, `","historical":`...)
	dst = strconv.AppendBool(dst, env.historical)
	if env.parts > 0 {
		dst = append(dst, `,"part":`...)
		dst = strconv.AppendInt(dst, int64(env.part), 10)
		dst = append(dst, `,"parts":`...)
		dst = strconv.AppendInt(dst, int64(env.parts), 10)
	}

	dst = append(dst, `,"values":{`...)
	var nQuality, nSourceTS int
	for i := range r.Fields {
		f := &r.Fields[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, f.Name)
		dst = append(dst, ':')
		dst = appendValue(dst, f)
		if qualityOf(f) != "" {
			nQuality++
		}
		if hasSourceTime(r, f) {
			nSourceTS++
		}
	}
	dst = append(dst, '}')

	if nQuality > 0 {
		dst = append(dst, `,"quality":{`...)
		n := 0
		for i := range r.Fields {
			f := &r.Fields[i]
			q := qualityOf(f)
			if q == "" {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = appendJSONString(dst, f.Name)
			dst = append(dst, `:"`...)
			dst = append(dst, q...)
			reason := f.Reason
			if f.Quality == record.Good { // a good float that is NaN or infinite
				reason = nonFiniteReason(f)
			}
			if reason != "" {
				dst = append(dst, ':')
				dst = appendJSONStringBody(dst, reason)
			}
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	}

	if nSourceTS > 0 {
		dst = append(dst, `,"source_ts":{`...)
		n := 0
		for i := range r.Fields {
			f := &r.Fields[i]
			if !hasSourceTime(r, f) {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = appendJSONString(dst, f.Name)
			dst = append(dst, `:"`...)
			dst = appendTime(dst, f.SourceTime)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// splitRecordJSON encodes r as parts of at most limit bytes each, splitting its fields in
// order. It fails when one field alone cannot fit. Records this large are rare, so it favours
// simplicity over allocation.
func splitRecordJSON(env envelope, r *record.Record, limit int) ([][]byte, error) {
	// Sizes are measured with a part count of more digits than any real one, so the estimate
	// can only be too large.
	env.part, env.parts = 99999, 99999
	part := record.Record{Kind: r.Kind, Source: r.Source, Time: r.Time}
	base := len(appendRecordJSON(nil, env, &part))
	var groups [][2]int // field ranges [from, to)
	from, size := 0, base
	for i := range r.Fields {
		part.Fields = r.Fields[i : i+1]
		cost := len(appendRecordJSON(nil, env, &part)) - base + 1 // +1 for a comma
		if base+cost > limit {
			return nil, fmt.Errorf("value of %q alone needs %d bytes, more than max_message_bytes (%d)", r.Fields[i].Name, base+cost, limit)
		}
		if size+cost > limit {
			groups = append(groups, [2]int{from, i})
			from, size = i, base
		}
		size += cost
	}
	groups = append(groups, [2]int{from, len(r.Fields)})
	out := make([][]byte, len(groups))
	env.parts = len(groups)
	for k, g := range groups {
		env.part = k + 1
		part.Fields = r.Fields[g[0]:g[1]]
		out[k] = appendRecordJSON(nil, env, &part)
		if len(out[k]) > limit {
			return nil, fmt.Errorf("part %d of %d is %d bytes, more than max_message_bytes (%d)", k+1, len(groups), len(out[k]), limit)
		}
	}
	return out, nil
}

// appendStatusJSON appends the retained status payload (status.schema.json).
func appendStatusJSON(dst []byte, state string, ts time.Time, session uint64) []byte {
	dst = append(dst, `{"state":"`...)
	dst = append(dst, state...)
	dst = append(dst, `","ts":"`...)
	dst = appendTime(dst, ts)
	dst = append(dst, `","session":`...)
	dst = strconv.AppendUint(dst, session, 10)
	return append(dst, '}')
}

func appendTime(dst []byte, t time.Time) []byte {
	return t.UTC().Truncate(time.Millisecond).AppendFormat(dst, jsonTime)
}

// hasSourceTime reports whether f's device time differs from the record's at the contract's
// millisecond resolution.
func hasSourceTime(r *record.Record, f *record.Field) bool {
	if f.SourceTime.IsZero() {
		return false
	}
	return f.SourceTime.UnixMilli() != r.Time.UnixMilli()
}

// qualityOf returns the quality class to publish for f, or "" when f is good. A good float that
// is NaN or infinite is published as null, so it is reported bad: null must always be explained.
func qualityOf(f *record.Field) string {
	switch f.Quality {
	case record.Uncertain:
		return "uncertain"
	case record.Bad:
		return "bad"
	}
	if nonFiniteReason(f) != "" {
		return "bad"
	}
	if f.Kind == record.Null {
		return "bad"
	}
	return ""
}

func nonFiniteReason(f *record.Field) string {
	if f.Kind != record.Float {
		return ""
	}
	v := f.FloatValue()
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 0):
		return "inf"
	}
	return ""
}

func appendValue(dst []byte, f *record.Field) []byte {
	switch f.Kind {
	case record.Bool:
		return strconv.AppendBool(dst, f.BoolValue())
	case record.Int:
		v := f.IntValue()
		if v > maxSafeInt || v < -maxSafeInt {
			dst = append(dst, '"')
			dst = strconv.AppendInt(dst, v, 10)
			return append(dst, '"')
		}
		return strconv.AppendInt(dst, v, 10)
	case record.Uint:
		if f.Bits > maxSafeInt {
			dst = append(dst, '"')
			dst = strconv.AppendUint(dst, f.Bits, 10)
			return append(dst, '"')
		}
		return strconv.AppendUint(dst, f.Bits, 10)
	case record.Float:
		return appendFloat(dst, f.FloatValue())
	case record.String:
		return appendJSONString(dst, f.Str)
	}
	return append(dst, "null"...)
}

// appendFloat writes v in the shortest form that reads back as v. A value that is exactly a
// float32 (what a PLC's REAL register holds) is written in float32's shortest form, so 65.3 read
// from a register prints as 65.3, not 65.30000305175781.
func appendFloat(dst []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(dst, "null"...)
	}
	bits := 64
	if float64(float32(v)) == v {
		bits = 32
	}
	return strconv.AppendFloat(dst, v, 'g', -1, bits)
}

func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendJSONStringBody(dst, s)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONStringBody escapes s per RFC 8259; invalid UTF-8 becomes U+FFFD so that the message
// always parses.
func appendJSONStringBody(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
			i++
			continue
		}
		dst = append(dst, s[i:i+size]...)
		i += size
	}
	return dst
}

// AppendMessage appends the JSON message of record r with the given envelope, exactly as the
// publisher sends it (whole; never split), for tools that show stored records, such as
// `floorlink buffer dump`.
func AppendMessage(dst []byte, gateway, epoch string, seq uint64, historical bool, r *record.Record) []byte {
	return appendRecordJSON(dst, envelope{gateway: gateway, epoch: epoch, seq: seq, historical: historical}, r)
}
