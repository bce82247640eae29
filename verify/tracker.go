package verify

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"
)

// TrackerOptions tune a Tracker; the zero value judges each stream from the first seq it saw
// and lists up to 100 items per list.
type TrackerOptions struct {
	// FromStart expects every stream to begin at seq 1, the contract's first seq, so seqs
	// missing before the first one received are gaps. Set it when the verifier subscribed
	// before the gateways' epochs began (a test, a new installation). Otherwise a stream is
	// judged from the first seq received: the verifier cannot tell loss from having started
	// late.
	FromStart bool
	// MaxListed bounds each list in a Report (gaps, conflicting seqs, drop events, invalid
	// messages); the counts are always complete. Zero means 100.
	MaxListed int
}

// Tracker is the verifier's accounting: it reads record messages and keeps, per stream
// (gateway, epoch), which seqs arrived and a 64-bit hash of each payload, so that it can tell
// gaps, duplicates and conflicts apart. It does no I/O and starts no goroutine. Its methods
// are safe for concurrent use.
//
// A dense stream costs about 8.2 bytes of memory per seq (the hash, a bit, page headers);
// nothing is kept per message beyond that.
type Tracker struct {
	opts TrackerOptions
	seed maphash.Seed // hashes are compared only within this Tracker, so a random seed will do

	mu       sync.Mutex // guards the fields below
	streams  map[string]*stream
	key      []byte // scratch for stream keys
	ignored  uint64
	invalid  uint64
	invalids []Invalid
	connects int
	resumed  int
}

// stream is one (gateway, epoch).
type stream struct {
	gateway, epoch  string
	set             seqSet
	firstAt, lastAt time.Time
	through         uint64 // from Expect
	received        uint64
	duplicates      uint64
	outOfOrder      uint64
	historical      uint64
	conflicts       uint64
	conflictSeqs    []uint64
	drops           []Range // announced drops, sorted and merged
	dropEvents      uint64
	dropList        []Drop
}

// NewTracker returns an empty Tracker.
func NewTracker(opts TrackerOptions) *Tracker {
	if opts.MaxListed <= 0 {
		opts.MaxListed = 100
	}
	return &Tracker{opts: opts, seed: maphash.MakeSeed(), streams: make(map[string]*stream)}
}

// Observe accounts for one message that arrived at time at on topic. Gateway status and stats
// messages (floorlink/v1/{site}/gateway/{gateway}/status and /stats) are counted as ignored;
// any other message must be a record (docs/mqtt.md) and is counted as invalid when it is not.
// Observe keeps no reference to payload.
func (t *Tracker) Observe(topic string, payload []byte, at time.Time) {
	if statusOrStats(topic) {
		t.mu.Lock()
		t.ignored++
		t.mu.Unlock()
		return
	}
	var env envelope
	if err := parseEnvelope(payload, &env); err != nil {
		t.mu.Lock()
		t.invalid++
		if len(t.invalids) < t.opts.MaxListed {
			t.invalids = append(t.invalids, Invalid{Topic: topic, Reason: err.Error(), At: at})
		}
		t.mu.Unlock()
		return
	}
	var h maphash.Hash
	h.SetSeed(t.seed)
	h.Write(payload[:env.histStart])
	h.Write(payload[env.histEnd:])
	sum := h.Sum64()

	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stream(env.gateway, env.epoch, at)
	s.received++
	s.lastAt = at
	if env.historical {
		s.historical++
	}
	highest := s.set.max
	stored, added := s.set.add(env.seq, sum)
	switch {
	case !added && stored == sum:
		s.duplicates++
	case !added:
		s.conflicts++
		if len(s.conflictSeqs) < t.opts.MaxListed {
			s.conflictSeqs = append(s.conflictSeqs, env.seq)
		}
	case env.seq < highest:
		s.outOfOrder++
	}
	if added && env.drop != nil {
		d := env.drop
		s.dropEvents++
		if len(s.dropList) < t.opts.MaxListed {
			s.dropList = append(s.dropList, Drop{Seq: env.seq, First: d.first, Last: d.last, Count: d.count, Reason: d.reason})
		}
		s.drops = addRange(s.drops, Range{d.first, d.last})
	}
}

// Expect records that the stream (gateway, epoch) must hold every seq through seq through, for
// instance the gateway's buffer head read after the gateway stopped: seqs after the last one
// received become a gap. Without it, a loss at the end of a stream is invisible.
func (t *Tracker) Expect(gateway, epoch string, through uint64) {
	if through == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stream([]byte(gateway), []byte(epoch), time.Time{})
	s.through = max(s.through, through)
}

// connected is told by Run about each connection the broker accepted; resumed is the broker's
// session-present flag.
// Connected counts a connection of Run to the broker, and whether the broker resumed the
// verifier's session.
func (t *Tracker) Connected(resumed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.connects++
	if resumed {
		t.resumed++
	}
}

// stream returns the stream of (gateway, epoch), creating it. t.mu must be held.
func (t *Tracker) stream(gateway, epoch []byte, at time.Time) *stream {
	// Length-prefixed, so that no two (gateway, epoch) pairs share a key.
	t.key = binary.AppendUvarint(t.key[:0], uint64(len(gateway)))
	t.key = append(append(t.key, gateway...), epoch...)
	s := t.streams[string(t.key)]
	if s == nil {
		s = &stream{gateway: string(gateway), epoch: string(epoch), firstAt: at}
		t.streams[string(t.key)] = s
	}
	if s.firstAt.IsZero() {
		s.firstAt = at
	}
	return s
}

// statusOrStats reports whether topic is floorlink/v1/{site}/gateway/{gateway}/status or
// /stats: messages that are not records and carry no seq.
func statusOrStats(topic string) bool {
	rest, ok := strings.CutPrefix(topic, "floorlink/v1/")
	if !ok {
		return false
	}
	site, rest, ok := strings.Cut(rest, "/")
	if !ok || site == "" {
		return false
	}
	rest, ok = strings.CutPrefix(rest, "gateway/")
	if !ok {
		return false
	}
	gw, kind, ok := strings.Cut(rest, "/")
	return ok && gw != "" && (kind == "status" || kind == "stats")
}

// addRange adds r to rs, a sorted list of disjoint, non-adjacent ranges, merging as needed.
func addRange(rs []Range, r Range) []Range {
	// i is the first range that ends at or after r.First-1, so touches r or comes after it.
	// Seqs start at 1, so First-1 cannot wrap.
	i, _ := slices.BinarySearchFunc(rs, r.First, func(x Range, first uint64) int {
		if x.Last < first-1 {
			return -1
		}
		return 1
	})
	j := i
	for j < len(rs) && rs[j].First-1 <= r.Last {
		r.First, r.Last = min(r.First, rs[j].First), max(r.Last, rs[j].Last)
		j++
	}
	return slices.Replace(rs, i, j, r)
}

// Report returns a snapshot of the figures so far. It scans the seq sets while holding the
// Tracker's lock: 4 ms for a stream of 10 million seqs with 10,000 gaps.
func (t *Tracker) Report() Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := Report{Ignored: t.ignored, Invalid: t.invalid, InvalidMessages: slices.Clone(t.invalids),
		Connects: t.connects, Resumed: t.resumed}
	for _, s := range t.streams {
		r.Streams = append(r.Streams, t.streamReport(s))
	}
	slices.SortFunc(r.Streams, func(a, b Stream) int {
		if c := strings.Compare(a.Gateway, b.Gateway); c != 0 {
			return c
		}
		if c := a.FirstAt.Compare(b.FirstAt); c != 0 {
			return c
		}
		return strings.Compare(a.Epoch, b.Epoch)
	})
	return r
}

func (t *Tracker) streamReport(s *stream) Stream {
	sc := newScan(&s.set)
	out := Stream{
		Gateway: s.gateway, Epoch: s.epoch, Through: s.through,
		FirstAt: s.firstAt, LastAt: s.lastAt,
		Received: s.received, Distinct: s.set.n, Duplicates: s.duplicates,
		Conflicts: s.conflicts, ConflictSeqs: slices.Clone(s.conflictSeqs),
		OutOfOrder: s.outOfOrder, Historical: s.historical,
		DropEvents: s.dropEvents, Drops: slices.Clone(s.dropList),
	}
	if s.set.n > 0 {
		out.First, _ = sc.nextSet(0)
		out.Last = s.set.max
	}
	for _, d := range s.drops {
		out.Dropped += d.Last - d.First + 1
		out.DroppedReceived += sc.countSet(d.First, d.Last)
	}
	lo, hi := out.First, max(out.Last, out.Through)
	if t.opts.FromStart || s.set.n == 0 {
		lo = 1
	}
	if hi == 0 {
		return out
	}
	out.Judged = Range{lo, hi}
	drops := s.drops
	sc.absent(lo, hi, func(g Range) {
		// Take out what the gateway announced as dropped.
		for g.First <= g.Last {
			for len(drops) > 0 && drops[0].Last < g.First {
				drops = drops[1:]
			}
			piece := g
			if len(drops) > 0 && drops[0].First <= g.Last {
				if drops[0].First > g.First {
					piece.Last = drops[0].First - 1
				} else {
					piece.First = 0 // g starts inside a drop: nothing unexplained here
					piece.Last = min(drops[0].Last, g.Last)
				}
			}
			if piece.First != 0 {
				out.Missing += piece.Last - piece.First + 1
				out.GapRanges++
				if len(out.Gaps) < t.opts.MaxListed {
					out.Gaps = append(out.Gaps, piece)
				}
			}
			if piece.Last == g.Last {
				break
			}
			g.First = piece.Last + 1
		}
	})
	return out
}
