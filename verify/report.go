package verify

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// textTime is how WriteText shows arrival times: RFC 3339 with milliseconds, as in the contract.
const textTime = "2006-01-02T15:04:05.000Z07:00"

// Range is the seqs First through Last, both included.
type Range struct {
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

// String is "7" or "7-9".
func (r Range) String() string {
	if r.First == r.Last {
		return strconv.FormatUint(r.First, 10)
	}
	return strconv.FormatUint(r.First, 10) + "-" + strconv.FormatUint(r.Last, 10)
}

// Drop is one drop event: the gateway announced that its buffer dropped records First through
// Last unsent (too old, or the buffer full). Seq is the event record's own seq.
type Drop struct {
	Seq    uint64 `json:"seq"`
	First  uint64 `json:"first_seq"`
	Last   uint64 `json:"last_seq"`
	Count  uint64 `json:"count"`
	Reason string `json:"reason,omitempty"`
}

// Invalid is a message on a record topic that is not a valid record.
type Invalid struct {
	Topic  string    `json:"topic"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Stream holds the figures of one (gateway, epoch). Counts of messages include every
// arrival; counts of seqs count each seq once. Lists hold at most TrackerOptions.MaxListed
// items; the counts next to them are complete.
type Stream struct {
	Gateway string `json:"gateway"`
	Epoch   string `json:"epoch"`
	// First and Last are the lowest and highest seq received; 0 when none was.
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
	// Through is the seq the stream must reach, from Tracker.Expect; 0 when not set.
	Through uint64 `json:"through,omitempty"`
	// Judged is the range checked for gaps: from 1 with TrackerOptions.FromStart, else from
	// First; to the larger of Last and Through.
	Judged Range `json:"judged"`
	// FirstAt and LastAt are when the first and the last message arrived.
	FirstAt time.Time `json:"first_at,omitzero"`
	LastAt  time.Time `json:"last_at,omitzero"`

	Received   uint64 `json:"received"`     // messages
	Distinct   uint64 `json:"distinct"`     // seqs
	Duplicates uint64 `json:"duplicates"`   // messages repeating a seq with the same payload
	OutOfOrder uint64 `json:"out_of_order"` // messages with a new seq lower than one received before
	Historical uint64 `json:"historical"`   // messages marked historical (replayed), duplicates included

	// Conflicts counts messages repeating a seq with a different payload (the historical flag
	// aside): two records under one seq, a failure.
	Conflicts    uint64   `json:"conflicts"`
	ConflictSeqs []uint64 `json:"conflict_seqs,omitempty"`

	// Missing counts the seqs of Judged neither received nor announced as dropped: unexplained
	// loss. GapRanges counts the maximal ranges they form; Gaps lists them.
	Missing   uint64  `json:"missing"`
	GapRanges uint64  `json:"gap_ranges"`
	Gaps      []Range `json:"gaps,omitempty"`

	// Dropped counts the seqs the gateway announced as dropped in DropEvents drop events
	// (listed in Drops); DroppedReceived counts those that arrived nevertheless.
	Dropped         uint64 `json:"dropped"`
	DroppedReceived uint64 `json:"dropped_received"`
	DropEvents      uint64 `json:"drop_events"`
	Drops           []Drop `json:"drops,omitempty"`
}

// OK reports whether the stream has no unexplained gap and no conflict.
func (s *Stream) OK() bool { return s.Missing == 0 && s.Conflicts == 0 }

// Report is a Tracker's figures at one moment. Streams are sorted by gateway, then by when
// their first message arrived.
type Report struct {
	Streams []Stream `json:"streams"`
	// Ignored counts gateway status and stats messages.
	Ignored uint64 `json:"ignored"`
	// Invalid counts messages that are not valid records; InvalidMessages lists them.
	Invalid         uint64    `json:"invalid"`
	InvalidMessages []Invalid `json:"invalid_messages,omitempty"`
	// Connects counts the connections Run made; Resumed those on which the broker still held
	// the verifier's session. A connection after the first that was not resumed means that
	// messages published in between were not delivered to the verifier: gaps then may be the
	// verifier's own.
	Connects int `json:"connects"`
	Resumed  int `json:"resumed"`
}

// OK reports whether no stream has an unexplained gap or a conflict and no message was
// invalid. A report without any stream is OK, and proves nothing: a caller that expects data
// checks Streams too.
func (r Report) OK() bool {
	if r.Invalid > 0 {
		return false
	}
	for i := range r.Streams {
		if !r.Streams[i].OK() {
			return false
		}
	}
	return true
}

// Problems lists what makes OK false, one line each.
func (r Report) Problems() []string {
	var ps []string
	for i := range r.Streams {
		s := &r.Streams[i]
		if s.Missing > 0 {
			ps = append(ps, fmt.Sprintf("%s: %d %s missing in %d %s: %s", s.name(), s.Missing, plural(s.Missing, "seq", "seqs"),
				s.GapRanges, plural(s.GapRanges, "gap", "gaps"), rangeList(s.Gaps, s.GapRanges, 10)))
		}
		if s.Conflicts > 0 {
			ps = append(ps, fmt.Sprintf("%s: %d %s (same seq, different payload): seq %s", s.name(), s.Conflicts,
				plural(s.Conflicts, "conflict", "conflicts"), seqList(s.ConflictSeqs, s.Conflicts, 10)))
		}
	}
	if r.Invalid > 0 {
		p := fmt.Sprintf("%d invalid %s", r.Invalid, plural(r.Invalid, "message", "messages"))
		if len(r.InvalidMessages) > 0 {
			m := r.InvalidMessages[0]
			p += fmt.Sprintf(", the first on %s: %s", m.Topic, m.Reason)
		}
		ps = append(ps, p)
	}
	return ps
}

func (s *Stream) name() string { return "gateway " + s.Gateway + " epoch " + s.Epoch }

// MarshalJSON writes the report with its verdict: the fields, plus "ok" and "problems".
func (r Report) MarshalJSON() ([]byte, error) {
	type report Report // without this method
	return json.Marshal(struct {
		OK       bool     `json:"ok"`
		Problems []string `json:"problems"`
		report
	}{r.OK(), append([]string{}, r.Problems()...), report(r)})
}

// WriteText writes a summary for people: one block per stream, then invalid messages, then
// the verdict.
func (r Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for i := range r.Streams {
		s := &r.Streams[i]
		verdict := "ok"
		if !s.OK() {
			verdict = "FAIL"
		}
		fmt.Fprintf(bw, "%s: %s\n", s.name(), verdict)
		if s.Distinct == 0 {
			fmt.Fprintf(bw, "  nothing received; expected seq %s\n", s.Judged)
		} else {
			fmt.Fprintf(bw, "  seq %s received", Range{s.First, s.Last})
			if s.Through > s.Last {
				fmt.Fprintf(bw, ", expected through %d", s.Through)
			}
			if s.Judged.First < s.First {
				fmt.Fprintf(bw, ", judged from %d", s.Judged.First)
			} else if s.First > 1 {
				fmt.Fprintf(bw, " (seqs before %d not judged: the verifier may have started late)", s.First)
			}
			fmt.Fprintf(bw, "\n  %d %s, %d distinct %s, %d %s, %d out of order, %d historical\n",
				s.Received, plural(s.Received, "message", "messages"), s.Distinct, plural(s.Distinct, "seq", "seqs"),
				s.Duplicates, plural(s.Duplicates, "duplicate", "duplicates"), s.OutOfOrder, s.Historical)
			fmt.Fprintf(bw, "  first message %s, last %s\n", s.FirstAt.Format(textTime), s.LastAt.Format(textTime))
		}
		if s.Missing > 0 {
			fmt.Fprintf(bw, "  gaps: %d %s missing in %d %s: %s\n", s.Missing, plural(s.Missing, "seq", "seqs"),
				s.GapRanges, plural(s.GapRanges, "range", "ranges"), rangeList(s.Gaps, s.GapRanges, len(s.Gaps)))
		}
		if s.Conflicts > 0 {
			fmt.Fprintf(bw, "  conflicts (same seq, different payload): %d: seq %s\n", s.Conflicts,
				seqList(s.ConflictSeqs, s.Conflicts, len(s.ConflictSeqs)))
		}
		if s.DropEvents > 0 {
			fmt.Fprintf(bw, "  dropped (announced): %d %s in %d %s", s.Dropped, plural(s.Dropped, "seq", "seqs"),
				s.DropEvents, plural(s.DropEvents, "event", "events"))
			if s.DroppedReceived > 0 {
				fmt.Fprintf(bw, ", %d of them received nevertheless", s.DroppedReceived)
			}
			bw.WriteString(":")
			for _, d := range s.Drops {
				fmt.Fprintf(bw, " %s", Range{d.First, d.Last})
				if d.Reason != "" {
					fmt.Fprintf(bw, " (%s)", d.Reason)
				}
			}
			if uint64(len(s.Drops)) < s.DropEvents {
				bw.WriteString(" …")
			}
			bw.WriteString("\n")
		}
	}
	if r.Invalid > 0 {
		fmt.Fprintf(bw, "invalid: %d %s\n", r.Invalid, plural(r.Invalid, "message", "messages"))
		for _, m := range r.InvalidMessages {
			fmt.Fprintf(bw, "  %s: %s\n", m.Topic, m.Reason)
		}
		if uint64(len(r.InvalidMessages)) < r.Invalid {
			bw.WriteString("  …\n")
		}
	}
	if r.Ignored > 0 {
		fmt.Fprintf(bw, "ignored: %d status and stats %s\n", r.Ignored, plural(r.Ignored, "message", "messages"))
	}
	if r.Connects > 1 && r.Resumed < r.Connects-1 {
		fmt.Fprintf(bw, "note: the verifier reconnected %d times, %d times without its session: messages published "+
			"while it was away were not delivered to it (use a persistent session)\n", r.Connects-1, r.Connects-1-r.Resumed)
	}
	switch {
	case len(r.Streams) == 0 && r.Invalid == 0:
		bw.WriteString("no records received\n")
	case r.OK():
		bw.WriteString("OK: no gap, no conflict, no invalid message\n")
	default:
		bw.WriteString("FAIL\n")
	}
	return bw.Flush()
}

// rangeList writes up to n of the listed ranges, and an ellipsis when total is larger.
func rangeList(rs []Range, total uint64, n int) string {
	var b strings.Builder
	for i, r := range rs[:min(n, len(rs))] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.String())
	}
	if uint64(min(n, len(rs))) < total {
		b.WriteString(", …")
	}
	return b.String()
}

func seqList(seqs []uint64, total uint64, n int) string {
	var b strings.Builder
	for i, s := range seqs[:min(n, len(seqs))] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatUint(s, 10))
	}
	if uint64(min(n, len(seqs))) < total {
		b.WriteString(", …")
	}
	return b.String()
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
