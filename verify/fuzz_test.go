package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

// oracleEnvelope reads a record message with encoding/json, the slow and obvious way, as the
// reference parseEnvelope must agree with.
func oracleEnvelope(payload []byte) (envelope, error) {
	var env envelope
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return env, err
	}
	if m == nil {
		return env, errors.New("null")
	}
	str := func(name string) ([]byte, error) {
		raw, ok := m[name]
		if !ok || raw[0] != '"' {
			return nil, fmt.Errorf("%s: not a string", name)
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		if s == "" && name != "ts" {
			return nil, fmt.Errorf("%s: empty", name)
		}
		return []byte(s), nil
	}
	var err error
	if env.gateway, err = str("gateway"); err != nil {
		return env, err
	}
	if env.epoch, err = str("epoch"); err != nil {
		return env, err
	}
	if _, err = str("ts"); err != nil {
		return env, err
	}
	if err := json.Unmarshal(m["seq"], &env.seq); err != nil || env.seq == 0 || m["seq"][0] == '"' {
		return env, fmt.Errorf("seq: %v", err)
	}
	switch string(m["historical"]) {
	case "true", "false":
		env.historical = m["historical"][0] == 't'
	default:
		return env, errors.New("historical")
	}
	values := m["values"]
	if len(values) == 0 || values[0] != '{' {
		return env, errors.New("values")
	}
	var vm map[string]json.RawMessage
	if err := json.Unmarshal(values, &vm); err != nil {
		return env, err
	}
	var event string
	if raw := vm["event"]; len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &event) != nil || event != "drop" {
		return env, nil
	}
	num := func(name string) (uint64, error) {
		raw, ok := vm[name]
		if !ok {
			return 0, fmt.Errorf("%s missing", name)
		}
		if raw[0] == '"' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return 0, err
			}
			// Only plain digits, as in a JSON integer.
			if s == "" || (len(s) > 1 && s[0] == '0') || bytes.ContainsFunc([]byte(s), func(r rune) bool { return r < '0' || r > '9' }) {
				return 0, fmt.Errorf("%s: %q", name, s)
			}
			raw = json.RawMessage(s)
		}
		var v uint64
		err := json.Unmarshal(raw, &v)
		return v, err
	}
	d := &dropEvent{}
	if d.first, err = num("first_seq"); err != nil {
		return env, err
	}
	if d.last, err = num("last_seq"); err != nil {
		return env, err
	}
	if d.count, err = num("count"); err != nil {
		return env, err
	}
	if d.first == 0 || d.last < d.first || d.count != d.last-d.first+1 {
		return env, errors.New("drop range")
	}
	if raw, ok := vm["reason"]; ok && string(raw) != "null" {
		var r string
		if raw[0] != '"' || json.Unmarshal(raw, &r) != nil {
			return env, errors.New("reason")
		}
		d.reason = r
	}
	env.drop = d
	return env, nil
}

// FuzzObserve checks the envelope parser against encoding/json (same verdict, same fields),
// that the payload hash ignores exactly the historical flag, and that a Tracker's figures stay
// consistent for any input.
func FuzzObserve(f *testing.F) {
	f.Add([]byte(`{"gateway":"gw1","epoch":"0123456789abcdef","seq":1,"ts":"2026-11-25T08:30:15.123Z","historical":false,"values":{"n":1}}`))
	f.Add([]byte(`{"gateway":"gw1","epoch":"0123456789abcdef","seq":9,"ts":"2026-11-25T08:30:15.123Z","historical":true,` +
		`"values":{"event":"drop","first_seq":3,"last_seq":"7","count":5,"reason":"max_bytes"}}`))
	f.Add([]byte(`{"gateway":"g\u00e9","epoch":"e","seq":18446744073709551615,"ts":"","historical":false,"values":{"a":[{"}":"]"}]},"seq":2}`))
	f.Add([]byte(`{"state":"online","ts":"2026-11-25T08:00:00.000Z","session":12}`))
	f.Add([]byte(`{"gateway":"gw1","epoch":"e","seq":1e3,"ts":"t","historical":false,"values":{}}`))
	f.Add([]byte(`[{"gateway":"gw1"}]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > 4096 {
			return
		}
		var got envelope
		gotErr := parseEnvelope(payload, &got)
		want, wantErr := oracleEnvelope(payload)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("parseEnvelope: %v; encoding/json: %v", gotErr, wantErr)
		}
		if gotErr == nil {
			if !bytes.Equal(got.gateway, want.gateway) || !bytes.Equal(got.epoch, want.epoch) || got.seq != want.seq ||
				got.historical != want.historical || (got.drop == nil) != (want.drop == nil) ||
				(got.drop != nil && *got.drop != *want.drop) {
				t.Fatalf("parseEnvelope: %+v %+v; encoding/json: %+v %+v", got, got.drop, want, want.drop)
			}
			if v := string(payload[got.histStart:got.histEnd]); v != "true" && v != "false" {
				t.Fatalf("historical span holds %q", v)
			}
		}

		tr := NewTracker(TrackerOptions{})
		at := time.Unix(0, 0)
		tr.Observe("floorlink/v1/s/a/l/d/telemetry", payload, at)
		tr.Observe("floorlink/v1/s/a/l/d/telemetry", payload, at)
		if gotErr == nil {
			// The same record re-sent with the historical flag flipped is a duplicate.
			flipped := "true"
			if got.historical {
				flipped = "false"
			}
			resent := append(append(append([]byte(nil), payload[:got.histStart]...), flipped...), payload[got.histEnd:]...)
			tr.Observe("floorlink/v1/s/a/l/d/telemetry", resent, at)
		}
		r := tr.Report()
		var received uint64
		for _, s := range r.Streams {
			received += s.Received
			if s.Received != s.Distinct+s.Duplicates+s.Conflicts || s.Conflicts != 0 {
				t.Fatalf("stream %+v: received ≠ distinct + duplicates + conflicts, or a conflict", s)
			}
			if s.Missing > s.Judged.Last-s.Judged.First+1 || uint64(len(s.Gaps)) > s.GapRanges {
				t.Fatalf("stream %+v: more missing than judged", s)
			}
		}
		if gotErr == nil && (len(r.Streams) != 1 || received != 3 || r.Streams[0].Duplicates != 2) {
			t.Fatalf("a valid record three times: got %+v", r)
		}
		if gotErr != nil && (len(r.Streams) != 0 || r.Invalid != 2) {
			t.Fatalf("an invalid record twice: got %+v", r)
		}
	})
}
