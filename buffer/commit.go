package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// jumpThreshold is how far the wall clock may drift from the monotonic clock between two
// readings, plus 0.1 % of the time between them (NTP slews at most 0.05 %), before the buffer
// calls it a clock jump.
const jumpThreshold = 2 * time.Second

// Indexes of Stats counters and of report.drops.
const (
	reasonMaxBytes = iota
	reasonMaxAge
)

var reasons = [...]string{reasonMaxBytes: DropMaxBytes, reasonMaxAge: DropMaxAge}

// errNoRoom postpones a commit: the file is at MaxBytes and has no page to spare until a read
// transaction ends.
var errNoRoom = errors.New("file at max_bytes and the pages it could reuse are held by a read transaction")

// report is what a commit has to announce: drops once durable, a clock jump at once.
type report struct {
	committed bool // a transaction was committed
	drops     [2]Drop
	jump      *ClockJump
}

// commit runs one writer transaction: it appends up to n queued payloads (fewer when the file is
// at Options.MaxBytes and only fewer fit, see limit.go) with their states, drops the oldest
// entries that MaxAge or MaxBytes want gone, and writes a new age floor. It returns how many
// queued payloads it committed: on success they are released from the queue and Wait and Flush
// woken; on failure they stay queued, first in line. n == 0 commits only when there is
// something to drop by age or an age floor to write.
func (b *Buffer) commit(n int) (done int, rep report, err error) {
	b.txMu.Lock()
	defer b.txMu.Unlock()

	wall := b.opts.Now().Round(0) // the wall clock only: Sub must not use the monotonic reading
	rep.jump = b.checkClock(wall)
	ageCut := int64(math.MinInt64) // entries stamped before it are too old
	if b.opts.MaxAge > 0 {
		ageCut = wall.Add(-b.opts.MaxAge).UnixNano()
	}
	if n == 0 && !b.floorDirty && !b.ageDue(ageCut) {
		return 0, rep, nil
	}
	b.mu.Lock()
	start := b.qhead
	floor := b.ageFloor
	b.mu.Unlock()

	var (
		tx    *bolt.Tx
		plan  plan
		quiet bool
	)
	for attempt := 0; ; attempt++ {
		var free, pending int64
		tx, free, pending, quiet, err = b.beginWrite()
		if err != nil {
			b.countFailure()
			return 0, rep, dbErr(err)
		}
		// Pages still pending because a reader holds them come back once it ends: they count
		// towards the room the drops must make (not towards what this commit may allocate),
		// or every commit while a reader holds them would drop more, to no avail.
		var coming int64
		if !quiet {
			coming = pending
		}
		plan = b.plan(tx, start, n, free, coming)
		if plan.fits || quiet || attempt > 0 {
			break
		}
		// A read transaction may hold pages freed before: rolling back makes bbolt release what
		// it can and count it, and the second try sees that.
		_ = tx.Rollback()
	}
	if !plan.fits {
		_ = tx.Rollback()
		b.mu.Lock()
		b.stalls++
		b.mu.Unlock()
		return 0, rep, errNoRoom
	}
	defer func() {
		if err != nil && !errors.Is(err, errNoRoom) {
			_ = tx.Rollback()
			b.countFailure()
		}
	}()

	entries := tx.Bucket(bucketEntries)
	entries.FillPercent = 1.0 // keys only ever grow: full pages, no splits in the middle
	meta := tx.Bucket(bucketMeta)
	cursor := b.cursor.Load() // only changed under txMu

	// Drops, oldest first: by age while the oldest is too old (and appended after the last
	// clock jump), then by size while the room needs it.
	var freed int64 // pages freed at least: element bytes dropped minus the waste
	var droppedBytes int64
	var last3 [3]int64 // sizes of the last three dropped
	last := cursor
	phase := reasonMaxAge
	c := entries.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		seq := binary.BigEndian.Uint64(k)
		if phase == reasonMaxAge && (seq <= floor || int64(binary.BigEndian.Uint64(v)) >= ageCut) {
			phase = reasonMaxBytes
		}
		if phase == reasonMaxBytes && freed >= plan.dropPages {
			break
		}
		d := &rep.drops[phase]
		if d.Count == 0 {
			d.Reason, d.First = reasons[phase], seq
		}
		d.Last = seq
		d.Count++
		d.Bytes += int64(len(v) - stampLen)
		e := elemSize(len(v))
		droppedBytes += e
		last3[0], last3[1], last3[2] = last3[1], last3[2], e
		if b.lim != nil {
			freed = max(0, droppedBytes-b.lim.dropWaste(last3[0]+last3[1]+last3[2])) / b.lim.pageSize
		}
		last = seq
	}
	for seq := cursor + 1; seq <= last; seq++ {
		binary.BigEndian.PutUint64(b.key[:], seq)
		if err := entries.Delete(b.key[:]); err != nil {
			return 0, rep, fmt.Errorf("drop entry %d: %w", seq, err)
		}
	}
	if last > cursor {
		binary.BigEndian.PutUint64(b.cursorVal[:], last)
		if err := meta.Put(keyCursor, b.cursorVal[:]); err != nil {
			return 0, rep, fmt.Errorf("put cursor %d: %w", last, err)
		}
	}

	state := tx.Bucket(bucketState)
	head := b.head.Load() // only this goroutine stores head
	seq := head
	var appended int64
	stateBytes, stateElem := b.stateBytes, b.stateElem
	for i := range plan.n {
		it := &b.ring[(start+i)%len(b.ring)]
		seq++
		binary.BigEndian.PutUint64(b.key[:], seq) // bbolt copies keys
		if err := entries.Put(b.key[:], it.val); err != nil {
			return 0, rep, fmt.Errorf("put entry %d: %w", seq, err)
		}
		appended += int64(len(it.val) - stampLen)
		for _, s := range it.states {
			if b.lim != nil {
				stateBytes += stateDelta(state, s.Key, s.Value)
				stateElem = max(stateElem, stateElemSize(s.Key, s.Value))
			}
			if s.Value == nil {
				err = state.Delete([]byte(s.Key))
			} else {
				err = state.Put([]byte(s.Key), s.Value)
			}
			if err != nil {
				return 0, rep, fmt.Errorf("put state %q with entry %d: %w", s.Key, seq, err)
			}
		}
	}
	// bbolt keeps value slices until the commit: headVal and the others are not touched again
	// before then.
	if seq > head {
		binary.BigEndian.PutUint64(b.headVal[:], seq)
		if err := meta.Put(keyHead, b.headVal[:]); err != nil {
			return 0, rep, fmt.Errorf("put head %d: %w", seq, err)
		}
	}
	if b.floorDirty {
		binary.BigEndian.PutUint64(b.floorVal[:], floor)
		if err := meta.Put(keyAgeFloor, b.floorVal[:]); err != nil {
			return 0, rep, fmt.Errorf("put age floor %d: %w", floor, err)
		}
	}
	if seq == head && last == cursor && !b.floorDirty {
		_ = tx.Rollback()
		if n > 0 { // room for no payload, and nothing to drop that would make some
			b.mu.Lock()
			b.stalls++
			b.mu.Unlock()
			return 0, report{jump: rep.jump}, errNoRoom
		}
		return 0, report{jump: rep.jump}, nil // the oldest was not too old after all
	}
	var oldest int64
	if _, v := entries.Cursor().First(); v != nil {
		oldest = int64(binary.BigEndian.Uint64(v))
	}
	if b.beforeCommit != nil {
		if err := b.beforeCommit(); err != nil {
			return 0, rep, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, rep, dbErr(err) // Commit rolls back itself; the deferred Rollback is a no-op
	}
	rep.committed = true
	if b.afterPlan != nil {
		p := int64(b.db.Info().PageSize)
		st := tx.Stats()
		var hwm int64
		_ = b.db.View(func(tx *bolt.Tx) error { hwm = tx.Size() / p; return nil })
		b.afterPlan(plan.need, plan.room, st.GetPageAlloc()/p, hwm)
	}

	for i := range plan.n {
		it := &b.ring[(start+i)%len(b.ring)]
		e := elemSize(len(it.val))
		b.tail.add(e)
		b.maxElem = max(b.maxElem, e)
		*it = item{} // let the payload go
	}
	b.stateBytes, b.stateElem = stateBytes, stateElem
	b.floorDirty = false
	b.mu.Lock()
	b.qhead = (b.qhead + plan.n) % len(b.ring)
	b.qlen -= plan.n
	b.committed += uint64(plan.n)
	b.commits++
	b.cursor.Store(last)
	b.head.Store(seq)
	b.bytes += appended
	b.oldest = oldest
	firstDrop := b.dropped == [2]uint64{}
	for r, d := range rep.drops {
		b.dropped[r] += d.Count
		b.droppedBytes += d.Bytes
		b.bytes -= d.Bytes
	}
	b.broadcastLocked()
	b.mu.Unlock()
	if d := rep.drops[reasonMaxBytes]; firstDrop && d.Count > 0 {
		b.log.Warn("buffer file at max_bytes; dropping the oldest entries (logged once, counted in Stats)",
			"file", b.path, "max_bytes", b.opts.MaxBytes, "first_seq", d.First, "last_seq", d.Last)
	}
	return plan.n, rep, nil
}

// plan is what a commit writes: the first n queued payloads, and enough of the oldest entries
// to free dropPages pages for the next commit. fits is false when not even the drops fit in
// the file's room.
type plan struct {
	n         int
	dropPages int64
	fits      bool
	need      int64 // pages the commit allocates at most
	room      int64 // pages it may allocate
}

// plan decides how many of the n queued payloads from ring slot start the commit in tx takes,
// and how much it drops, given free pages bbolt can reuse now and pages coming back soon (see
// limit.go).
func (b *Buffer) plan(tx *bolt.Tx, start, n int, free, coming int64) plan {
	l := b.lim
	if l == nil {
		return plan{n: n, fits: true}
	}
	p := l.pageSize
	hwm := tx.Size() / p
	room := l.hwmFile - hwm + free  // what this commit may allocate: the file does not grow
	budget := l.hwmMax - hwm + free // the same within MaxBytes: what the drops restore
	lastLeaf := b.tail.last(p)
	var all, fit batchStat
	k := 0
	need := l.fixedPages(b.maxElem, fit, b.stateBytes, b.stateElem)
	fits := need <= room
	for i := range n {
		it := &b.ring[(start+i)%len(b.ring)]
		e := elemSize(len(it.val))
		if i > 0 && all.bytes+e > l.batchBytes {
			break
		}
		all.add(e, it.states, p/2)
		if a := l.appendPages(all, lastLeaf) + l.fixedPages(max(b.maxElem, all.maxElem), all, b.stateBytes, b.stateElem); a <= room && k == i {
			fit, k, need, fits = all, i+1, a, true
		}
	}
	full := l.appendPages(all, lastLeaf) + l.fixedPages(max(b.maxElem, all.maxElem), all, b.stateBytes, b.stateElem)
	// An Ack between two commits allocates too; a second one finds the pages the first freed.
	reserve := full + l.ackPages(max(b.maxElem, all.maxElem)) + l.margin
	pl := plan{n: k, fits: fits, need: need, room: room}
	if short := reserve - (budget + coming - need); short > 0 {
		pl.dropPages = short
	}
	return pl
}

// stateElemSize is the bytes a state takes in a leaf of the state bucket.
func stateElemSize(key string, value []byte) int64 {
	return int64(elemOverhead - 8 + len(key) + len(value))
}

// stateDelta is how much writing value (nil: deleting) under key changes the state bucket's
// bytes.
func stateDelta(state *bolt.Bucket, key string, value []byte) int64 {
	var d int64
	if old := state.Get([]byte(key)); old != nil {
		d -= stateElemSize(key, old)
	}
	if value != nil {
		d += stateElemSize(key, value)
	}
	return d
}

// beginWrite begins a write transaction and returns with it the pages it can reuse: bbolt's
// free-page count from when the last write transaction closed (they all go through txMu), plus
// the pages pending then if no read transaction was open while this one began, since bbolt
// then released them all. quiet says whether it added them; pending is that count.
func (b *Buffer) beginWrite() (tx *bolt.Tx, free, pending int64, quiet bool, err error) {
	// Readers count themselves started before they begin and ended after they end. If none
	// was open at e0 and none started up to s1 (after Begin), none was open during Begin.
	e0 := b.readsEnded.Load()
	s0 := b.readsStarted.Load()
	tx, err = b.db.Begin(true)
	if err != nil {
		return nil, 0, 0, false, err
	}
	quiet = s0 == e0 && b.readsStarted.Load() == s0
	st := b.db.Stats()
	free, pending = int64(st.FreePageN), int64(st.PendingPageN)
	if quiet {
		free += pending
	}
	return tx, free, pending, quiet, nil
}

// checkClock compares the wall clock with the monotonic clock since the last reading. On a
// jump it moves the age floor past every entry committed or queued (all stamped before now) and
// returns the jump. Under txMu.
func (b *Buffer) checkClock(wall time.Time) *ClockJump {
	mono := b.mono()
	dw, dm := wall.Sub(b.lastWall), mono-b.lastMono
	b.lastWall, b.lastMono = wall, mono
	if (dw - dm).Abs() <= jumpThreshold+dm/1000 {
		return nil
	}
	b.mu.Lock()
	floor := b.head.Load() + uint64(b.qlen)
	if floor > b.ageFloor {
		b.ageFloor = floor
		b.floorDirty = true
	}
	b.clockJumps++
	b.mu.Unlock()
	return &ClockJump{Wall: dw, Monotonic: dm, AgeFloor: floor}
}

// ageDue reports whether the oldest entry is older than cut and not exempt.
func (b *Buffer) ageDue(cut int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	first := b.cursor.Load() + 1
	return b.head.Load() >= first && first > b.ageFloor && b.oldest < cut
}

func (b *Buffer) countFailure() {
	b.mu.Lock()
	b.commitFailures++
	b.mu.Unlock()
}
