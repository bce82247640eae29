package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// envelope is what the verifier reads of a record message (docs/mqtt.md). Byte slices point
// into the payload, or into memory the parser allocated when a string had escapes.
type envelope struct {
	gateway, epoch []byte
	seq            uint64
	historical     bool
	// hist is the span of the historical value: the payload hash leaves it out, since a
	// record re-sent in a later session says historical=true where the first send said false.
	histStart, histEnd int
	drop               *dropEvent // set when values.event is "drop"
}

// dropEvent is the values of an event record announcing that the gateway's buffer dropped
// records unsent.
type dropEvent struct {
	first, last, count uint64
	reason             string
}

// parseEnvelope reads a record message. It accepts only valid JSON (the whole payload), and
// requires the fields the contract marks required with the right types: gateway and epoch
// non-empty strings, seq an integer ≥ 1, ts a string, historical a boolean, values an object.
// Other members are not checked: proving the payload's schema is the schema test's job, not
// the verifier's. A member given twice counts once, the last time, as encoding/json does.
//
// It allocates only for strings that hold escapes or invalid UTF-8, which the agent never
// writes in a gateway id or epoch.
func parseEnvelope(payload []byte, env *envelope) error {
	*env = envelope{}
	if !json.Valid(payload) {
		return errors.New("not JSON")
	}
	var (
		gateway, epoch, seq, ts, historical, values []byte
		scratch                                     []byte
	)
	err := members(payload, func(key, val []byte, start, end int) {
		switch string(unescapeKey(key, &scratch)) {
		case "gateway":
			gateway = val
		case "epoch":
			epoch = val
		case "seq":
			seq = val
		case "ts":
			ts = val
		case "historical":
			historical = val
			env.histStart, env.histEnd = start, end
		case "values":
			values = val
		}
	})
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		val  []byte
	}{{"gateway", gateway}, {"epoch", epoch}, {"seq", seq}, {"ts", ts}, {"historical", historical}, {"values", values}} {
		if f.val == nil {
			return fmt.Errorf("%s: missing", f.name)
		}
	}
	if env.gateway, err = stringValue(gateway, "gateway"); err != nil {
		return err
	}
	if env.epoch, err = stringValue(epoch, "epoch"); err != nil {
		return err
	}
	if env.seq, err = uintValue(seq, "seq", false); err != nil {
		return err
	}
	switch {
	case len(env.gateway) == 0:
		return errors.New("gateway: empty")
	case len(env.epoch) == 0:
		return errors.New("epoch: empty")
	case env.seq == 0:
		return errors.New("seq: 0, want 1 or more")
	case ts[0] != '"':
		return fmt.Errorf("ts: %.20s is not a string", ts)
	case values[0] != '{':
		return fmt.Errorf("values: %.20s is not an object", values)
	}
	switch string(historical) {
	case "true", "false":
		env.historical = historical[0] == 't'
	default:
		return fmt.Errorf("historical: %.20s is not a boolean", historical)
	}
	return parseDrop(values, env)
}

// parseDrop sets env.drop when values announce dropped records: {"event":"drop",
// "first_seq":F, "last_seq":L, "count":N, "reason":R} with 1 ≤ F ≤ L and N = L-F+1. The seqs
// and the count may be numbers or decimal strings (the contract writes integers beyond 2^53 as
// strings); reason is optional (absent or null).
func parseDrop(values []byte, env *envelope) error {
	var (
		event, reason      []byte
		first, last, count []byte
		scratch            []byte
	)
	err := members(values, func(key, val []byte, _, _ int) {
		switch string(unescapeKey(key, &scratch)) {
		case "event":
			event = val
		case "first_seq":
			first = val
		case "last_seq":
			last = val
		case "count":
			count = val
		case "reason":
			reason = val
		}
	})
	if err != nil {
		return err
	}
	if event == nil || event[0] != '"' {
		return nil
	}
	if name, err := stringValue(event, "values.event"); err != nil || string(name) != "drop" {
		return err
	}
	d := &dropEvent{}
	for _, f := range []struct {
		name string
		raw  []byte
		dst  *uint64
	}{{"first_seq", first, &d.first}, {"last_seq", last, &d.last}, {"count", count, &d.count}} {
		if f.raw == nil {
			return fmt.Errorf("drop event: values.%s: missing", f.name)
		}
		v, err := uintValue(f.raw, "drop event: values."+f.name, true)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	switch {
	case d.first == 0 || d.last < d.first:
		return fmt.Errorf("drop event: seq range %d-%d is empty or starts at 0", d.first, d.last)
	case d.count != d.last-d.first+1:
		return fmt.Errorf("drop event: count %d does not match seq range %d-%d", d.count, d.first, d.last)
	}
	if reason != nil && string(reason) != "null" {
		r, err := stringValue(reason, "drop event: values.reason")
		if err != nil {
			return err
		}
		d.reason = string(r)
	}
	env.drop = d
	return nil
}

// members calls fn for each member of the JSON object obj, which must be valid JSON, with the
// raw key (without quotes), the raw value and the value's offsets in obj. It fails when obj
// is not an object. Keys are raw: escapes unresolved.
func members(obj []byte, fn func(key, val []byte, start, end int)) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errors.New("not a JSON object")
	}
	i = skipSpace(obj, i+1)
	if obj[i] == '}' {
		return nil
	}
	for {
		ke := skipValue(obj, i)
		key := obj[i+1 : ke-1]
		i = skipSpace(obj, ke)
		i = skipSpace(obj, i+1) // ':'
		ve := skipValue(obj, i)
		fn(key, obj[i:ve], i, ve)
		i = skipSpace(obj, ve)
		if obj[i] == '}' {
			return nil
		}
		i = skipSpace(obj, i+1) // ','
	}
}

// skipValue returns the offset just after the JSON value that starts at i in valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		for i++; ; i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipValue(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	default: // number, true, false, null
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i
			}
		}
		return i
	}
}

func skipSpace(b []byte, i int) int {
	for ; i < len(b); i++ {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
		default:
			return i
		}
	}
	return i
}

// unescapeKey returns the key as encoding/json would decode it. Keys the agent writes are
// plain ASCII and come back as they are.
func unescapeKey(raw []byte, scratch *[]byte) []byte {
	if !needsDecode(raw) {
		return raw
	}
	var s string
	_ = json.Unmarshal(append(append(append((*scratch)[:0], '"'), raw...), '"'), &s)
	*scratch = append((*scratch)[:0], s...)
	return *scratch
}

func needsDecode(raw []byte) bool {
	return bytes.IndexByte(raw, '\\') >= 0 || !utf8.Valid(raw)
}

// stringValue returns the contents of the JSON string val, decoded as encoding/json decodes
// them (escapes resolved, invalid UTF-8 replaced).
func stringValue(val []byte, name string) ([]byte, error) {
	if val[0] != '"' {
		return nil, fmt.Errorf("%s: %.20s is not a string", name, val)
	}
	raw := val[1 : len(val)-1]
	if !needsDecode(raw) {
		return raw, nil
	}
	var s string
	if err := json.Unmarshal(val, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return []byte(s), nil
}

// uintValue reads a JSON integer without sign, fraction, exponent or leading zero; with quoted,
// also one written as a decimal string.
func uintValue(val []byte, name string, quoted bool) (uint64, error) {
	digits := val
	if quoted && val[0] == '"' {
		var err error
		if digits, err = stringValue(val, name); err != nil {
			return 0, err
		}
	}
	var v uint64
	ok := len(digits) > 0 && (len(digits) == 1 || digits[0] != '0')
	for _, c := range digits {
		if c < '0' || c > '9' || v > (math.MaxUint64-uint64(c-'0'))/10 {
			ok = false
			break
		}
		v = v*10 + uint64(c-'0')
	}
	if !ok {
		return 0, fmt.Errorf("%s: %.24s is not an integer in 0..2^64-1", name, val)
	}
	return v, nil
}
