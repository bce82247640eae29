package kpi

// Snapshot format, version 1
//
// The agent stores the snapshot in the buffer's state with each KPI record (and every few
// seconds), and a later binary restores it, so a format is never changed once released: a new
// one gets the next version byte and Restore keeps reading the old ones. The golden file
// testdata/snapshot_v1.golden pins version 1.
//
// uvarint and varint are encoding/binary's; "str" is a uvarint length and that many bytes.
// Times are varints of Unix nanoseconds.
//
//	snapshot:
//	  5 bytes  "FLKPI"
//	  1 byte   version: 1
//	  uvarint  number of assets, then each asset
//	  uvarint  number of closed windows not yet returned by Next, then each closed window
//	  4 bytes  CRC-32 (Castagnoli), little-endian, of everything before it
//
//	asset:
//	  str      name
//	  8 bytes  fingerprint of the configuration (little-endian): a snapshot of an asset
//	           configured otherwise is not continued (see Restore)
//	  dyn      (below)
//	  uvarint  number of window kinds, each: str name, varint nextOpen
//	  uvarint  number of windows (open, or ended and held by a pending stop), each:
//	           uvarint kind index, window
//
//	dyn:
//	  1 byte   flags: 1 started, 2 in a stop, 4 stop pending, 8 prevInc set
//	  varint   acc, floor, period until; 1 byte period kind
//	  1 byte   state, 1 byte last known state; varint horizon, stop start, ideal, prevInc
//	  uvarint  number of state inputs (at most 6), each: varint raw, 1 byte good, varint last good
//	  3 ×      counter: uvarint last, 1 byte flags (1 valid, 2 gap)
//
//	window:
//	  varint   start, end; str shift; 1 byte flags (1 ended, 2 holds a pending stop's start)
//	  1 byte   counter roles
//	  varint × 48  the accumulators, in the order of accum.ints
//
//	closed window:
//	  str      asset, str window kind name, window

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"
)

const (
	snapMagic   = "FLKPI"
	snapVersion = 1
	// maxSnapCount bounds every count a decoder reads, before it allocates for it.
	maxSnapCount = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli) // read-only after start

// ints lists the accumulators of a window in snapshot order.
func (x *accum) ints() [48]*int64 {
	var out [48]*int64
	p := append(out[:0],
		&x.unscheduled, &x.plannedDown, &x.pbt, &x.unknown,
		&x.st[0], &x.st[1], &x.st[2], &x.st[3], &x.st[4], &x.st[5], &x.st[6],
		&x.microStop,
		&x.pend[0], &x.pend[1], &x.pend[2], &x.pend[3], &x.pend[4], &x.pend[5], &x.pend[6],
		&x.pendFailures, &x.stops, &x.microStops, &x.failures, &x.resets, &x.rollovers,
		&x.cnt[0][0], &x.cnt[0][1], &x.cnt[0][2], &x.cnt[1][0], &x.cnt[1][1], &x.cnt[1][2],
		&x.cnt[2][0], &x.cnt[2][1], &x.cnt[2][2],
		&x.noIdeal, &x.idealTime, &x.lastCycleNs, &x.lastCycleParts, &x.idealEnd,
	)
	// Room for accumulators a later version adds; version 1 writes them as 0.
	var spare [9]int64
	for i := range spare {
		p = append(p, &spare[i])
	}
	copy(out[:], p)
	return out
}

// Snapshot appends the engine's state to dst: enough for Restore to continue every window
// exactly, and to return the closed windows Next has not returned yet.
func (e *Engine) Snapshot(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, snapMagic...)
	dst = append(dst, snapVersion)
	dst = binary.AppendUvarint(dst, uint64(len(e.assets)))
	for _, a := range e.assets {
		dst = appendStr(dst, a.name)
		dst = binary.LittleEndian.AppendUint64(dst, a.fingerprint)
		dst = appendDyn(dst, &a.d)
		dst = binary.AppendUvarint(dst, uint64(len(a.specs)))
		for i := range a.specs {
			dst = appendStr(dst, a.specs[i].name)
			dst = binary.AppendVarint(dst, a.specs[i].nextOpen)
		}
		dst = binary.AppendUvarint(dst, uint64(len(a.wins)))
		for _, w := range a.wins {
			dst = binary.AppendUvarint(dst, uint64(w.spec))
			dst = appendWindow(dst, w)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.queue)-e.qhead))
	for _, c := range e.queue[e.qhead:] {
		dst = appendStr(dst, c.asset)
		dst = appendStr(dst, c.spec)
		dst = appendWindow(dst, c.win)
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func bit(b bool, mask byte) byte {
	if b {
		return mask
	}
	return 0
}

func appendDyn(b []byte, d *dyn) []byte {
	b = append(b, bit(d.started, 1)|bit(d.inStop, 2)|bit(d.pending, 4)|bit(d.prevIncSet, 8))
	for _, v := range []int64{d.acc, d.floor, d.per.until} {
		b = binary.AppendVarint(b, v)
	}
	b = append(b, byte(d.per.kind), byte(d.state), byte(d.lastKnown))
	for _, v := range []int64{d.horizon, d.stopStart, d.ideal, d.prevInc} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(d.in)))
	for _, in := range d.in {
		b = binary.AppendVarint(b, in.raw)
		b = append(b, bit(in.good, 1))
		b = binary.AppendVarint(b, in.lastGood)
	}
	for _, c := range d.ctr {
		b = binary.AppendUvarint(b, c.last)
		b = append(b, bit(c.valid, 1)|bit(c.gap, 2))
	}
	return b
}

func appendWindow(b []byte, w *window) []byte {
	b = binary.AppendVarint(b, w.start)
	b = binary.AppendVarint(b, w.end)
	b = appendStr(b, w.shift)
	b = append(b, bit(w.ended, 1)|bit(w.a.holdsStart, 2), w.a.roles)
	for _, p := range w.a.ints() {
		b = binary.AppendVarint(b, *p)
	}
	return b
}

// snapReader reads a snapshot; the first fault sticks and every later read returns zeros.
type snapReader struct {
	b   []byte
	off int
	err error
}

func (r *snapReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("kpi snapshot at byte %d: %s: %w", r.off, fmt.Sprintf(format, args...), ErrSnapshotCorrupt)
	}
}

func (r *snapReader) byte1(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("truncated in %s", what)
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *snapReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad uvarint in %s", what)
		return 0
	}
	r.off += n
	return v
}

func (r *snapReader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad varint in %s", what)
		return 0
	}
	r.off += n
	return v
}

// count reads a count of items each at least min bytes long.
func (r *snapReader) count(what string, min int) int {
	n := r.uvarint(what)
	if r.err == nil && (n > maxSnapCount || n*uint64(min) > uint64(len(r.b)-r.off)) {
		r.fail("%s %d: more than the bytes left", what, n)
		return 0
	}
	return int(n)
}

func (r *snapReader) str(what string) string {
	n := r.count(what, 1)
	if r.err != nil {
		return ""
	}
	s := string(r.b[r.off : r.off+n])
	r.off += n
	return s
}

// maxSnapTime bounds the instants a snapshot may hold (the year 2200); never stands for none.
const maxSnapTime = int64(7_258_118_400) * 1e9

// instant reads a time; a negative one or one past maxSnapTime is corrupt, unless it is never.
func (r *snapReader) instant(what string) int64 {
	v := r.varint(what)
	if r.err == nil && v != never && (v < 0 || v > maxSnapTime) {
		r.fail("%s %d out of range", what, v)
	}
	return v
}

func (r *snapReader) dyn(d *dyn) {
	fl := r.byte1("dyn flags")
	if fl&^15 != 0 {
		r.fail("unknown dyn flags %#x", fl)
	}
	d.started, d.inStop, d.pending, d.prevIncSet = fl&1 != 0, fl&2 != 0, fl&4 != 0, fl&8 != 0
	d.acc, d.floor, d.per.until = r.instant("acc"), r.instant("floor"), r.instant("period")
	kind, st, lk := r.byte1("period kind"), r.byte1("state"), r.byte1("last state")
	if kind > byte(busy) || st >= byte(numStates) || lk >= byte(numStates) {
		r.fail("period kind %d or state %d or %d out of range", kind, st, lk)
	}
	d.per.kind, d.state, d.lastKnown = periodKind(kind), State(st), State(lk)
	d.horizon, d.stopStart = r.instant("horizon"), r.instant("stop start")
	d.ideal = r.varint("ideal")
	d.prevInc = r.instant("prevInc")
	if r.err == nil && (d.ideal < 0 || d.ideal >= nsDay) {
		r.fail("ideal cycle %d out of range", d.ideal)
	}
	n := r.count("state inputs", 3)
	if n > len(d.in) {
		r.fail("%d state inputs, more than %d", n, len(d.in))
		return
	}
	for i := range n {
		d.in[i].raw = r.varint("input")
		g := r.byte1("input good")
		if g > 1 {
			r.fail("input flags %#x", g)
		}
		d.in[i].good = g == 1
		d.in[i].lastGood = r.instant("input time")
	}
	for i := range d.ctr {
		d.ctr[i].last = r.uvarint("counter")
		f := r.byte1("counter flags")
		if f&^3 != 0 {
			r.fail("counter flags %#x", f)
		}
		d.ctr[i].valid, d.ctr[i].gap = f&1 != 0, f&2 != 0
	}
}

func (r *snapReader) window(w *window) {
	w.start, w.end = r.instant("window start"), r.instant("window end")
	w.shift = r.str("shift")
	fl := r.byte1("window flags")
	if fl&^3 != 0 {
		r.fail("window flags %#x", fl)
	}
	w.ended, w.a.holdsStart = fl&1 != 0, fl&2 != 0
	w.a.roles = r.byte1("roles")
	if w.a.roles&^7 != 0 {
		r.fail("roles %#x", w.a.roles)
	}
	for _, p := range w.a.ints() {
		*p = r.varint("accumulator")
	}
	if r.err == nil && w.end < w.start {
		r.fail("window ends before it starts")
	}
}

// snapAsset is one asset as a snapshot holds it.
type snapAsset struct {
	name        string
	fingerprint uint64
	d           dyn
	specs       []spec
	wins        []*window
}

// decodeSnapshot parses snap completely before anything is applied.
func decodeSnapshot(snap []byte) ([]snapAsset, []closed, error) {
	if len(snap) < len(snapMagic)+1+4 || string(snap[:len(snapMagic)]) != snapMagic {
		return nil, nil, fmt.Errorf("kpi snapshot: no %q header: %w", snapMagic, ErrSnapshotCorrupt)
	}
	if v := snap[len(snapMagic)]; v != snapVersion {
		return nil, nil, fmt.Errorf("kpi snapshot: version %d: %w", v, ErrSnapshotVersion)
	}
	body := snap[:len(snap)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(snap[len(snap)-4:]) {
		return nil, nil, fmt.Errorf("kpi snapshot: checksum mismatch: %w", ErrSnapshotCorrupt)
	}
	r := &snapReader{b: body, off: len(snapMagic) + 1}
	var assets []snapAsset
	n := r.count("assets", 10)
	for range n {
		var sa snapAsset
		sa.name = r.str("asset name")
		if r.err == nil && r.off+8 > len(r.b) {
			r.fail("truncated fingerprint")
		}
		if r.err != nil {
			break
		}
		sa.fingerprint = binary.LittleEndian.Uint64(r.b[r.off:])
		r.off += 8
		r.dyn(&sa.d)
		ns := r.count("window kinds", 2)
		for range ns {
			sa.specs = append(sa.specs, spec{name: r.str("window kind"), nextOpen: r.instant("next open")})
		}
		nw := r.count("windows", 50)
		for range nw {
			w := &window{}
			si := r.uvarint("window kind index")
			if r.err == nil && si >= uint64(ns) {
				r.fail("window kind index %d of %d", si, ns)
			}
			w.spec = int(si)
			r.window(w)
			sa.wins = append(sa.wins, w)
		}
		assets = append(assets, sa)
	}
	var queue []closed
	nq := r.count("closed windows", 52)
	for range nq {
		c := closed{asset: r.str("closed asset"), spec: r.str("closed kind"), win: &window{}}
		r.window(c.win)
		queue = append(queue, c)
	}
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d bytes after the end", len(r.b)-r.off)
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	return assets, queue, nil
}

// Restore replaces the engine's state with a snapshot and makes the time from the snapshot to
// now unknown: the agent was not running then. Parts counted across that gap are
// produced_unknown, and the state needs a new sample. The closed windows the snapshot holds
// are returned by Next first; windows that closed during the gap come after them, with the gap
// as unknown time. Drain Next(now) before the first Observe.
//
// An asset is continued when the snapshot has it with the same configuration. One configured
// otherwise (schedule, windows, tags, maps) has its windows closed at the snapshot's time (a
// shorter window) and starts afresh after it; one the snapshot lacks starts afresh, and one
// the configuration lacks is dropped, except for its closed windows, which Next still returns.
//
// On error (ErrSnapshotCorrupt, ErrSnapshotVersion) the engine is left as it was.
func (e *Engine) Restore(snap []byte, now time.Time) error {
	assets, queue, err := decodeSnapshot(snap)
	if err != nil {
		return err
	}
	t := now.UnixNano()
	// Reset every asset to its state at New.
	for _, a := range e.assets {
		a.specs = resetSpecs(a.specs)
		a.wins = a.wins[:0]
		a.d = dyn{ideal: a.idealConst}
	}
	e.queue, e.qhead = append(e.queue[:0], queue...), 0
	e.lastSet = false
	var restored []*asset
	snapTime := int64(0)
	for _, sa := range assets {
		a := e.byName[sa.name]
		if a == nil {
			continue
		}
		if sa.fingerprint != a.fingerprint || !sa.d.started || len(sa.specs) != len(a.specs) {
			e.restoreOther(a, sa)
			continue
		}
		a.d = sa.d
		if a.idealConst > 0 {
			a.d.ideal = a.idealConst
		}
		for i := range a.specs {
			for _, ss := range sa.specs {
				if ss.name == a.specs[i].name {
					a.specs[i].nextOpen = ss.nextOpen
				}
			}
		}
		for _, w := range sa.wins {
			si := e.specIndex(a, sa.specs[w.spec].name)
			if si < 0 {
				continue
			}
			w.spec = si
			if !w.ended {
				if a.specs[si].cur != nil {
					w.ended = true // one open window per kind
				} else {
					a.specs[si].cur = w
				}
			}
			a.wins = append(a.wins, w)
		}
		if !a.d.pending {
			// Nothing can classify a pending share without a pending stop.
			for _, w := range a.wins {
				for s := range w.a.pend {
					w.a.st[s] += w.a.pend[s]
				}
				w.a.pend, w.a.pendFailures, w.a.holdsStart = [numStates]int64{}, 0, false
			}
			e.release(a)
		}
		restored = append(restored, a)
		snapTime = max(snapTime, a.d.acc)
	}
	// The snapshot's time is the latest any asset was accounted to. Up to it, the evidence
	// each asset had still holds; from it to now, the agent was not running.
	if t != snapTime {
		for _, a := range restored {
			if snapTime > a.d.acc {
				e.advance(a, snapTime)
			}
			e.forget(a)
		}
	}
	return nil
}

// restoreOther takes a snapshot of an asset configured otherwise: its windows close at the
// snapshot's time, and the asset starts afresh after it.
func (e *Engine) restoreOther(a *asset, sa snapAsset) {
	a.d.floor = max(sa.d.acc, sa.d.floor)
	if !sa.d.started {
		return
	}
	for _, w := range sa.wins {
		for s := range w.a.pend {
			w.a.st[s] += w.a.pend[s]
		}
		w.a.pend, w.a.pendFailures, w.a.holdsStart = [numStates]int64{}, 0, false
		if !w.ended {
			w.end = max(sa.d.acc, w.start)
		}
		e.queue = append(e.queue, closed{asset: sa.name, spec: sa.specs[w.spec].name, win: w})
	}
}

func (e *Engine) specIndex(a *asset, name string) int {
	for i := range a.specs {
		if a.specs[i].name == name {
			return i
		}
	}
	return -1
}

func resetSpecs(specs []spec) []spec {
	for i := range specs {
		specs[i].cur, specs[i].nextOpen = nil, never
	}
	return specs
}
