package verify_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/floorlink/floorlink/verify"
)

type msg struct {
	topic   string
	payload []byte
}

// seqs returns in-order telemetry messages of gw/ep1 for the given seqs.
func seqs(ss ...uint64) []msg {
	var ms []msg
	for _, s := range ss {
		ms = append(ms, msg{topic, record(gw, ep1, s, false, "")})
	}
	return ms
}

func span(first, last uint64) []uint64 {
	var ss []uint64
	for s := first; s <= last; s++ {
		ss = append(ss, s)
	}
	return ss
}

func join(parts ...[]msg) []msg { return slices.Concat(parts...) }

// clean is the Stream of gw/ep1 that received exactly first..last once each, in order.
func clean(first, last uint64) verify.Stream {
	n := last - first + 1
	return verify.Stream{Gateway: gw, Epoch: ep1, First: first, Last: last, Judged: verify.Range{First: first, Last: last},
		Received: n, Distinct: n}
}

// with returns s changed by fn, for table entries that differ from clean in a field or two.
func with(s verify.Stream, fn func(*verify.Stream)) verify.Stream {
	fn(&s)
	return s
}

var ignoreTimes = cmpopts.IgnoreFields(verify.Stream{}, "FirstAt", "LastAt")

func TestTracker_Observe(t *testing.T) {
	tests := []struct {
		name   string
		opts   verify.TrackerOptions
		msgs   []msg
		expect uint64 // Expect(gw, ep1, expect) after the messages, when not 0
		want   []verify.Stream
	}{
		{name: "in order", msgs: seqs(span(1, 5)...), want: []verify.Stream{clean(1, 5)}},
		{name: "gap at start, from start", opts: verify.TrackerOptions{FromStart: true}, msgs: seqs(3, 4, 5),
			want: []verify.Stream{with(clean(3, 5), func(s *verify.Stream) {
				s.Judged.First, s.Missing, s.GapRanges, s.Gaps = 1, 2, 1, []verify.Range{{First: 1, Last: 2}}
			})}},
		{name: "late start is not judged", msgs: seqs(3, 4, 5), want: []verify.Stream{clean(3, 5)}},
		{name: "gap in the middle", msgs: seqs(1, 2, 5, 6, 8),
			want: []verify.Stream{with(clean(1, 8), func(s *verify.Stream) {
				s.Received, s.Distinct = 5, 5
				s.Missing, s.GapRanges, s.Gaps = 3, 2, []verify.Range{{First: 3, Last: 4}, {First: 7, Last: 7}}
			})}},
		{name: "gap at end, expected through", msgs: seqs(1, 2, 3), expect: 6,
			want: []verify.Stream{with(clean(1, 3), func(s *verify.Stream) {
				s.Through, s.Judged.Last = 6, 6
				s.Missing, s.GapRanges, s.Gaps = 3, 1, []verify.Range{{First: 4, Last: 6}}
			})}},
		{name: "expected through what arrived", msgs: seqs(1, 2, 3), expect: 3,
			want: []verify.Stream{with(clean(1, 3), func(s *verify.Stream) { s.Through = 3 })}},
		{name: "duplicates", msgs: seqs(1, 2, 2, 3, 1, 3),
			want: []verify.Stream{with(clean(1, 3), func(s *verify.Stream) { s.Received, s.Duplicates = 6, 3 })}},
		{name: "re-sent as historical is a duplicate", msgs: join(seqs(1, 2), []msg{{topic, record(gw, ep1, 2, true, "")}}),
			want: []verify.Stream{with(clean(1, 2), func(s *verify.Stream) { s.Received, s.Duplicates, s.Historical = 3, 1, 1 })}},
		{name: "conflict", msgs: join(seqs(1, 2, 3), []msg{{topic, record(gw, ep1, 2, false, `{"n":-2}`)}}),
			want: []verify.Stream{with(clean(1, 3), func(s *verify.Stream) { s.Received, s.Conflicts, s.ConflictSeqs = 4, 1, []uint64{2} })}},
		{name: "conflict in the historical replay", msgs: join(seqs(1, 2), []msg{{topic, record(gw, ep1, 2, true, `{"n":0}`)}}),
			want: []verify.Stream{with(clean(1, 2), func(s *verify.Stream) {
				s.Received, s.Historical, s.Conflicts, s.ConflictSeqs = 3, 1, 1, []uint64{2}
			})}},
		{name: "out of order", msgs: seqs(1, 4, 2, 3, 5),
			want: []verify.Stream{with(clean(1, 5), func(s *verify.Stream) { s.OutOfOrder = 2 })}},
		{name: "a late duplicate is not out of order", msgs: seqs(1, 2, 3, 1),
			want: []verify.Stream{with(clean(1, 3), func(s *verify.Stream) { s.Received, s.Duplicates = 4, 1 })}},
		{name: "historical replay", msgs: join(seqs(1), []msg{{topic, record(gw, ep1, 2, true, "")}, {topic, record(gw, ep1, 3, true, "")}}, seqs(4)),
			want: []verify.Stream{with(clean(1, 4), func(s *verify.Stream) { s.Historical = 2 })}},
		{name: "new epoch is a new stream", msgs: join(seqs(1, 2, 3), []msg{{topic, record(gw, ep2, 1, false, "")}, {topic, record(gw, ep2, 2, false, "")}}),
			want: []verify.Stream{clean(1, 3), with(clean(1, 2), func(s *verify.Stream) { s.Epoch = ep2 })}},
		{name: "new epoch with a gap", opts: verify.TrackerOptions{FromStart: true},
			msgs: join(seqs(1, 2), []msg{{topic, record(gw, ep2, 2, false, "")}}),
			want: []verify.Stream{clean(1, 2), with(clean(2, 2), func(s *verify.Stream) {
				s.Epoch, s.Judged.First, s.Missing, s.GapRanges, s.Gaps = ep2, 1, 1, 1, []verify.Range{{First: 1, Last: 1}}
			})}},
		{name: "two gateways", msgs: join(seqs(1, 2), []msg{{"floorlink/v1/s/a/l/lathe/telemetry", record("gw2", ep1, 1, false, "")}}, seqs(4)),
			want: []verify.Stream{with(clean(1, 4), func(s *verify.Stream) {
				s.Received, s.Distinct, s.Missing, s.GapRanges, s.Gaps = 3, 3, 1, 1, []verify.Range{{First: 3, Last: 3}}
			}), with(clean(1, 1), func(s *verify.Stream) { s.Gateway = "gw2" })}},
		{name: "announced drop", msgs: join(seqs(1, 2), []msg{{topic, dropEvent(gw, ep1, 8, 3, 7, "max_bytes")}}, seqs(9)),
			want: []verify.Stream{with(clean(1, 9), func(s *verify.Stream) {
				s.Received, s.Distinct = 4, 4
				s.Dropped, s.DropEvents, s.Drops = 5, 1, []verify.Drop{{Seq: 8, First: 3, Last: 7, Count: 5, Reason: "max_bytes"}}
			})}},
		{name: "gaps around an announced drop", msgs: join(seqs(1), []msg{{topic, dropEvent(gw, ep1, 9, 4, 5, "max_age")}}, seqs(12)),
			want: []verify.Stream{with(clean(1, 12), func(s *verify.Stream) {
				s.Received, s.Distinct = 3, 3
				s.Dropped, s.DropEvents, s.Drops = 2, 1, []verify.Drop{{Seq: 9, First: 4, Last: 5, Count: 2, Reason: "max_age"}}
				s.Missing, s.GapRanges, s.Gaps = 7, 3, []verify.Range{{First: 2, Last: 3}, {First: 6, Last: 8}, {First: 10, Last: 11}}
			})}},
		{name: "adjacent drops merge, received ones are counted", msgs: join(seqs(1, 2, 3),
			[]msg{{topic, dropEvent(gw, ep1, 7, 2, 4, "max_bytes")}, {topic, dropEvent(gw, ep1, 8, 5, 6, "max_bytes")}}),
			want: []verify.Stream{with(clean(1, 8), func(s *verify.Stream) {
				s.Received, s.Distinct = 5, 5
				s.Dropped, s.DroppedReceived, s.DropEvents = 5, 2, 2
				s.Drops = []verify.Drop{{Seq: 7, First: 2, Last: 4, Count: 3, Reason: "max_bytes"}, {Seq: 8, First: 5, Last: 6, Count: 2, Reason: "max_bytes"}}
			})}},
		{name: "overlapping drops count once", msgs: join(seqs(1), []msg{{topic, dropEvent(gw, ep1, 10, 2, 5, "max_bytes")},
			{topic, dropEvent(gw, ep1, 11, 4, 6, "max_age")}}),
			want: []verify.Stream{with(clean(1, 11), func(s *verify.Stream) {
				s.Received, s.Distinct = 3, 3
				s.Dropped, s.DropEvents = 5, 2
				s.Drops = []verify.Drop{{Seq: 10, First: 2, Last: 5, Count: 4, Reason: "max_bytes"}, {Seq: 11, First: 4, Last: 6, Count: 3, Reason: "max_age"}}
				s.Missing, s.GapRanges, s.Gaps = 3, 1, []verify.Range{{First: 7, Last: 9}}
			})}},
		{name: "drop announced at the start, from start", opts: verify.TrackerOptions{FromStart: true},
			msgs: join([]msg{{topic, dropEvent(gw, ep1, 11, 1, 10, "max_bytes")}}, seqs(12)),
			want: []verify.Stream{with(clean(11, 12), func(s *verify.Stream) {
				s.Judged.First = 1
				s.Dropped, s.DropEvents, s.Drops = 10, 1, []verify.Drop{{Seq: 11, First: 1, Last: 10, Count: 10, Reason: "max_bytes"}}
			})}},
		{name: "a repeated drop event counts once", msgs: join(seqs(1), []msg{{topic, dropEvent(gw, ep1, 3, 2, 2, "")}, {topic, dropEvent(gw, ep1, 3, 2, 2, "")}}),
			want: []verify.Stream{with(clean(1, 3), func(s *verify.Stream) {
				s.Received, s.Distinct, s.Duplicates = 3, 2, 1
				s.Dropped, s.DropEvents, s.Drops = 1, 1, []verify.Drop{{Seq: 3, First: 2, Last: 2, Count: 1}}
			})}},
		{name: "other events are records", msgs: join(seqs(1), []msg{{"floorlink/v1/s/a/l/press/event", record(gw, ep1, 2, false, `{"event":"disconnected","error":"eof"}`)}}),
			want: []verify.Stream{clean(1, 2)}},
		{name: "status and stats are ignored", msgs: join(seqs(1), []msg{
			{"floorlink/v1/s/gateway/gw1/status", []byte(`{"state":"online","ts":"2026-11-25T08:00:00.000Z","session":1}`)},
			{"floorlink/v1/s/gateway/gw1/stats", []byte(`{"gateway":"gw1","epoch":"0123456789abcdef","session":1}`)},
		}, seqs(2)), want: []verify.Stream{clean(1, 2)}},
		{name: "nothing received, expected", expect: 4, want: []verify.Stream{{Gateway: gw, Epoch: ep1, Through: 4,
			Judged: verify.Range{First: 1, Last: 4}, Missing: 4, GapRanges: 1, Gaps: []verify.Range{{First: 1, Last: 4}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := verify.NewTracker(tt.opts)
			for i, m := range tt.msgs {
				tr.Observe(m.topic, m.payload, t0.Add(time.Duration(i)*time.Millisecond))
			}
			if tt.expect != 0 {
				tr.Expect(gw, ep1, tt.expect)
			}
			r := tr.Report()
			if diff := cmp.Diff(tt.want, r.Streams, ignoreTimes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("streams (-want +got):\n%s", diff)
			}
			if r.Invalid != 0 {
				t.Errorf("got %d invalid messages, want 0: %v", r.Invalid, r.InvalidMessages)
			}
			wantOK := true
			for _, s := range tt.want {
				wantOK = wantOK && s.Missing == 0 && s.Conflicts == 0
			}
			if r.OK() != wantOK {
				t.Errorf("OK() = %v, want %v; problems: %q", r.OK(), wantOK, r.Problems())
			}
			if wantOK != (len(r.Problems()) == 0) {
				t.Errorf("OK() = %v with problems %q", r.OK(), r.Problems())
			}
		})
	}
}

func TestTracker_Observe_Ignored(t *testing.T) {
	tr := verify.NewTracker(verify.TrackerOptions{})
	for _, topic := range []string{"floorlink/v1/s/gateway/gw1/status", "floorlink/v1/plant-2/gateway/gw-7/stats"} {
		tr.Observe(topic, []byte(`not even JSON`), t0)
	}
	r := tr.Report()
	if r.Ignored != 2 || r.Invalid != 0 || len(r.Streams) != 0 {
		t.Fatalf("got ignored %d, invalid %d, %d streams; want 2, 0, 0", r.Ignored, r.Invalid, len(r.Streams))
	}
	if !r.OK() {
		t.Errorf("not OK: %q", r.Problems())
	}
}

func TestTracker_Observe_Invalid(t *testing.T) {
	tests := []struct {
		name, topic string
		payload     string
		reason      string
	}{
		{"not JSON", topic, `{"gateway":"gw1",`, "not JSON"},
		{"not an object", topic, `[1,2]`, "not a JSON object"},
		{"status lookalike on a record topic", "floorlink/v1/s/a/l/status/telemetry", `{"state":"online"}`, "gateway: missing"},
		{"stats under another prefix", "plant/gateway/gw1/stats", `{"gateway":"gw1"}`, "epoch: missing"},
		{"seq missing", topic, `{"gateway":"gw1","epoch":"e","ts":"x","historical":false,"values":{}}`, "seq: missing"},
		{"seq zero", topic, string(record(gw, ep1, 0, false, "")), "seq: 0"},
		{"seq negative", topic, `{"gateway":"gw1","epoch":"e","seq":-1,"ts":"x","historical":false,"values":{}}`, "seq: -1 is not an integer"},
		{"seq fraction", topic, `{"gateway":"gw1","epoch":"e","seq":1.5,"ts":"x","historical":false,"values":{}}`, "seq: 1.5"},
		{"seq string", topic, `{"gateway":"gw1","epoch":"e","seq":"1","ts":"x","historical":false,"values":{}}`, `seq: "1"`},
		{"seq beyond uint64", topic, `{"gateway":"gw1","epoch":"e","seq":18446744073709551616,"ts":"x","historical":false,"values":{}}`, "seq: 18446744073709551616"},
		{"gateway empty", topic, `{"gateway":"","epoch":"e","seq":1,"ts":"x","historical":false,"values":{}}`, "gateway: empty"},
		{"epoch a number", topic, `{"gateway":"g","epoch":7,"seq":1,"ts":"x","historical":false,"values":{}}`, "epoch: 7 is not a string"},
		{"historical null", topic, `{"gateway":"g","epoch":"e","seq":1,"ts":"x","historical":null,"values":{}}`, "historical: null"},
		{"values an array", topic, `{"gateway":"g","epoch":"e","seq":1,"ts":"x","historical":true,"values":[]}`, "values: [] is not an object"},
		{"ts missing", topic, `{"gateway":"g","epoch":"e","seq":1,"historical":true,"values":{}}`, "ts: missing"},
		{"drop without last_seq", topic, string(record(gw, ep1, 3, false, `{"event":"drop","first_seq":1,"count":1}`)), "values.last_seq: missing"},
		{"drop with a wrong count", topic, string(record(gw, ep1, 3, false, `{"event":"drop","first_seq":1,"last_seq":2,"count":3}`)), "count 3 does not match"},
		{"drop range backwards", topic, string(record(gw, ep1, 3, false, `{"event":"drop","first_seq":2,"last_seq":1,"count":0}`)), "2-1 is empty"},
		{"drop seq a float", topic, string(record(gw, ep1, 3, false, `{"event":"drop","first_seq":1.0,"last_seq":1,"count":1}`)), "first_seq: 1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := verify.NewTracker(verify.TrackerOptions{})
			tr.Observe(tt.topic, []byte(tt.payload), t0)
			r := tr.Report()
			if r.Invalid != 1 || len(r.InvalidMessages) != 1 || len(r.Streams) != 0 {
				t.Fatalf("got invalid %d (%v), %d streams; want 1 invalid message, no stream", r.Invalid, r.InvalidMessages, len(r.Streams))
			}
			m := r.InvalidMessages[0]
			if m.Topic != tt.topic || !strings.Contains(m.Reason, tt.reason) || !m.At.Equal(t0) {
				t.Errorf("got %+v, want topic %s and a reason containing %q", m, tt.topic, tt.reason)
			}
			if r.OK() || len(r.Problems()) != 1 || !strings.Contains(r.Problems()[0], tt.topic) {
				t.Errorf("OK() = %v, problems %q; want not OK and one problem naming the topic", r.OK(), r.Problems())
			}
		})
	}
}

func TestTracker_Observe_Accepted(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		drop    bool
	}{
		{"members in any order, spaces", `{ "values" : {"a":[1,{"b":"}"}]} , "historical":true,"ts":"t","seq":7 ,"epoch":"e","gateway":"g"}`, false},
		{"unknown members", `{"gateway":"g","epoch":"e","seq":7,"ts":"t","historical":false,"values":{},"quality":{"a":"bad:x"},"extra":null}`, false},
		{"escaped key and string", `{"gate\u0077ay":"g","epoch":"\u0065","seq":7,"ts":"t","historical":false,"values":{}}`, false},
		{"repeated member: the last counts", `{"gateway":"g","epoch":"e","seq":"x","seq":7,"ts":"t","historical":false,"values":{}}`, false},
		{"drop with seqs as strings", `{"gateway":"g","epoch":"e","seq":7,"ts":"t","historical":false,"values":{"event":"drop","first_seq":"1","last_seq":"6","count":6}}`, true},
		{"event that is not a drop", `{"gateway":"g","epoch":"e","seq":7,"ts":"t","historical":false,"values":{"event":"fault","first_seq":"x"}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := verify.NewTracker(verify.TrackerOptions{})
			tr.Observe(topic, []byte(tt.payload), t0)
			r := tr.Report()
			if r.Invalid != 0 || len(r.Streams) != 1 {
				t.Fatalf("got invalid %d (%v), %d streams; want a valid record", r.Invalid, r.InvalidMessages, len(r.Streams))
			}
			s := r.Streams[0]
			if s.Gateway != "g" || s.Epoch != "e" || s.First != 7 || s.Last != 7 {
				t.Errorf("got gateway %q epoch %q seq %d-%d, want g e 7-7", s.Gateway, s.Epoch, s.First, s.Last)
			}
			if got := s.DropEvents == 1 && s.Dropped == 6; got != tt.drop {
				t.Errorf("got %d drop events, %d dropped; want a drop: %v", s.DropEvents, s.Dropped, tt.drop)
			}
		})
	}
}

func TestTracker_Report_Lists(t *testing.T) {
	tr := verify.NewTracker(verify.TrackerOptions{MaxListed: 2})
	for s := uint64(1); s <= 20; s += 2 { // 1, 3, ..., 19: 9 gaps of one seq
		tr.Observe(topic, record(gw, ep1, s, false, ""), t0)
		tr.Observe(topic, record(gw, ep1, s, false, `{"other":true}`), t0)
		tr.Observe(topic, []byte("junk"), t0)
	}
	r := tr.Report()
	s := r.Streams[0]
	if s.Missing != 9 || s.GapRanges != 9 || len(s.Gaps) != 2 || s.Conflicts != 10 || len(s.ConflictSeqs) != 2 ||
		r.Invalid != 10 || len(r.InvalidMessages) != 2 {
		t.Errorf("got missing %d in %d gaps, %d listed; %d conflicts, %d listed; %d invalid, %d listed; want 9 in 9, 2; 10, 2; 10, 2",
			s.Missing, s.GapRanges, len(s.Gaps), s.Conflicts, len(s.ConflictSeqs), r.Invalid, len(r.InvalidMessages))
	}
}

// TestTracker_Property feeds a random permutation of 1..n with some seqs removed and some
// repeated, as the same record (some as historical re-sends) or a different one, and checks
// every figure against a direct count.
func TestTracker_Property(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			n := uint64(1 + rng.IntN(5000))
			if seed%10 == 0 {
				n += 1 << 15 // dozens of pages
			}
			type arrival struct {
				seq     uint64
				variant int // 0 the record, 1 another record under the same seq
			}
			removed := map[uint64]bool{}
			var order []arrival
			for s := uint64(1); s <= n; s++ {
				// Leave out a few, sometimes in runs; never the last, which Expect below
				// would catch anyway.
				if s < n && rng.IntN(50) == 0 {
					for run := rng.IntN(3) + 1; run > 0 && s < n; run-- {
						removed[s] = true
						s++
					}
				}
				order = append(order, arrival{s, 0})
				switch rng.IntN(40) {
				case 0, 1:
					order = append(order, arrival{s, 0})
				case 2:
					order = append(order, arrival{s, 1})
				}
			}
			if seed%10 != 0 {
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			} else { // mostly in order: shuffle a few windows
				for i := 0; i+64 < len(order); i += 1000 + rng.IntN(1000) {
					w := order[i : i+64]
					rng.Shuffle(len(w), func(a, b int) { w[a], w[b] = w[b], w[a] })
				}
			}

			tr := verify.NewTracker(verify.TrackerOptions{FromStart: true, MaxListed: 1 << 20})
			var (
				highest                           uint64
				first                             = map[uint64]int{} // seq → variant of its first arrival
				duplicates, conflicts, outOfOrder uint64
				conflictSeqs                      []uint64
			)
			for i, a := range order {
				values := ""
				if a.variant == 1 {
					values = `{"n":-1}`
				}
				tr.Observe(topic, record(gw, ep1, a.seq, rng.IntN(2) == 0, values), t0.Add(time.Duration(i)))
				v, seen := first[a.seq]
				switch {
				case seen && v == a.variant:
					duplicates++
				case seen:
					conflicts++
					conflictSeqs = append(conflictSeqs, a.seq)
				case a.seq < highest:
					outOfOrder++
				}
				if !seen {
					first[a.seq] = a.variant
				}
				highest = max(highest, a.seq)
			}
			tr.Expect(gw, ep1, n)

			var wantGaps []verify.Range
			var missing uint64
			for s := uint64(1); s <= n; s++ {
				if !removed[s] {
					continue
				}
				missing++
				if k := len(wantGaps); k > 0 && wantGaps[k-1].Last == s-1 {
					wantGaps[k-1].Last = s
				} else {
					wantGaps = append(wantGaps, verify.Range{First: s, Last: s})
				}
			}
			r := tr.Report()
			if len(r.Streams) != 1 {
				t.Fatalf("got %d streams, want 1", len(r.Streams))
			}
			got := r.Streams[0]
			if diff := cmp.Diff(wantGaps, got.Gaps, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("n=%d: gaps (-want +got):\n%s", n, diff)
			}
			if diff := cmp.Diff(conflictSeqs, got.ConflictSeqs, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("n=%d: conflicting seqs (-want +got):\n%s", n, diff)
			}
			if got.Missing != missing || got.GapRanges != uint64(len(wantGaps)) || got.Distinct != n-missing ||
				got.Received != uint64(len(order)) || got.Duplicates != duplicates || got.Conflicts != conflicts ||
				got.OutOfOrder != outOfOrder {
				t.Errorf("n=%d: got missing %d in %d gaps, %d distinct, %d received, %d duplicates, %d conflicts, %d out of order; "+
					"want %d in %d, %d, %d, %d, %d, %d", n, got.Missing, got.GapRanges, got.Distinct, got.Received, got.Duplicates,
					got.Conflicts, got.OutOfOrder, missing, len(wantGaps), n-missing, len(order), duplicates, conflicts, outOfOrder)
			}
		})
	}
}

// TestTracker_Observe_FarSeqs checks seqs at the ends of the uint64 range and far apart: the
// gap between them is one range, found without walking the space between.
func TestTracker_Observe_FarSeqs(t *testing.T) {
	const top = ^uint64(0)
	tr := verify.NewTracker(verify.TrackerOptions{FromStart: true})
	for _, s := range []uint64{top, 1, top - 1, 1 << 40, top - 5000} {
		tr.Observe(topic, record(gw, ep1, s, false, ""), t0)
	}
	s := tr.Report().Streams[0]
	want := []verify.Range{{First: 2, Last: 1<<40 - 1}, {First: 1<<40 + 1, Last: top - 5001}, {First: top - 4999, Last: top - 2}}
	if diff := cmp.Diff(want, s.Gaps); diff != "" {
		t.Errorf("gaps (-want +got):\n%s", diff)
	}
	if s.First != 1 || s.Last != top || s.Distinct != 5 || s.OutOfOrder != 4 {
		t.Errorf("got seq %d-%d, %d distinct, %d out of order; want 1-%d, 5, 4", s.First, s.Last, s.Distinct, s.OutOfOrder, top)
	}
	if wantMissing := top - 5; s.Missing != wantMissing {
		t.Errorf("got %d missing, want %d", s.Missing, wantMissing)
	}
}

// TestTracker_Concurrent observes from several goroutines while reports are taken, for -race.
func TestTracker_Concurrent(t *testing.T) {
	tr := verify.NewTracker(verify.TrackerOptions{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for s := uint64(1); s <= 2000; s++ {
				tr.Observe(topic, record(fmt.Sprintf("gw%d", g%2), ep1, s, false, ""), t0)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			_ = tr.Report()
		}
	})
	wg.Wait()
	r := tr.Report()
	if len(r.Streams) != 2 || !r.OK() {
		t.Fatalf("got %d streams, problems %q; want 2, none", len(r.Streams), r.Problems())
	}
	for _, s := range r.Streams {
		if s.Distinct != 2000 || s.Duplicates != 2000 {
			t.Errorf("%s: got %d distinct, %d duplicates; want 2000, 2000", s.Gateway, s.Distinct, s.Duplicates)
		}
	}
}
