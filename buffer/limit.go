package buffer

import "fmt"

// How Options.MaxBytes keeps the file bounded
//
// bbolt's file grows only in tx.Commit, by db.grow(sz) with sz = (pgid+1)*pageSize, where pgid is
// the page high-water mark (the next page id never used): if sz is over the file size, the file
// is truncated up to sz+AllocSize (or, while the mapping is at most AllocSize, to the mapping
// size, a power of two from 32 KiB). It never shrinks. So with AllocSize set below MaxBytes
// the file stays within MaxBytes as long as pgid never exceeds
//
//	hwmMax = (MaxBytes-AllocSize)/pageSize - 1
//
// (hwmFile: or the file's own end, if it is already larger).
//
// pgid moves up only when a commit allocates pages bbolt's freelist cannot supply: a page from
// the freelist is any free page for a one-page node, and a free run of n pages for an n-page
// node (entries over about a quarter page, and the freelist itself in files over 2 MiB). Pages
// freed by a transaction become reusable when the next write transaction begins, unless a read
// transaction that began before they were freed is still open.
//
// So before each commit the writer knows its room, in pages: R = hwmFile - pgid + F, where F is
// the free-page count bbolt took when the last write transaction closed (all of them go
// through txMu, so it is that of the last one), plus the pages that were pending then if no
// read transaction was open as this one began (beginWrite); if one was, rolling back and
// beginning again makes bbolt count what it could release. The writer bounds from above the
// pages the commit can allocate (appendPages, fixedPages: from the sizes of what it writes and
// of the tree's last leaf) and commits only as much of the queue as fits in R; the rest waits
// for the next commit. If not even a commit that only drops fits, it postpones the commit
// (errNoRoom). Ack checks its own room (ackPages) the same way.
//
// And it keeps the room from running out: when the room within MaxBytes (hwmMax - pgid + F,
// plus pages a reader still holds, since they come back) minus this commit's need would fall
// below a reserve (the need of a full batch, of an Ack, plus a margin of 1/64 of the file), it
// drops the oldest entries in the same transaction, enough of them that the pages they free
// make up the difference for the next commit. Dropped entries free at least (their bytes -
// dropWaste)/pageSize pages, whatever leaves they were in. The cursor moves past them in the
// same transaction.
//
// What the bound rests on: bbolt's node layout (a node is split at FillPercent of a page, with
// at least two keys per node; see appendPages), the depth of its trees (branch nodes at least a
// quarter full, as its rebalancing keeps those it touches), and its freelist handing out any
// free page for a one-page node. For multi-page nodes it also rests on the freelist having a
// free run of that length when it has that many free pages, which the margin makes very likely
// but which is not proven. The tests check, after every commit, that the pages bbolt allocated
// are within the bound and the high-water mark within hwmFile, with payloads from 8 bytes to
// MaxBytes/128, states, a lagging consumer and backups.

// pageHeader and elemOverhead are bbolt's page header and leaf element header, plus our 8-byte
// key: an entry with a payload of n bytes takes elemOverhead+stampLen+n bytes of a leaf.
const (
	pageHeader   = 16
	elemOverhead = 16 + 8
	// minPages is the least hwmMax: below it, one commit's room is most of the file.
	minPages = 128
	// boltAllocSize is bbolt's default AllocSize.
	boltAllocSize = 16 << 20
)

func elemSize(storedLen int) int64 { return int64(elemOverhead + storedLen) }

// limits is the page budget of a file with Options.MaxBytes. Immutable after Open.
type limits struct {
	maxBytes   int64
	pageSize   int64
	allocSize  int   // bbolt's AllocSize: the step the file grows by
	hwmMax     int64 // pages the high-water mark may reach for the file to stay within maxBytes
	hwmFile    int64 // pages it may reach without growing the file: at least hwmMax
	batchBytes int64 // element bytes one commit appends at most
	maxPayload int   // largest payload Append accepts
	depth      int64 // bound on the levels of branch pages of a bucket
	flPages    int64 // bound on the pages of the freelist
	margin     int64 // pages of the reserve beyond what the next commit and two Acks need
}

// newLimits derives the page budget from maxBytes, the file's page size, its current high-water
// mark (pages) and its size.
func newLimits(maxBytes int64, pageSize int, hwm, fileSize int64) (*limits, error) {
	p := int64(pageSize)
	l := &limits{maxBytes: maxBytes, pageSize: p}
	// A growth step of 1/32 of the limit: fewer truncate+fsync calls than a page at a time,
	// at most 3% of the file left unused. bbolt's default is 16 MiB.
	alloc := min(maxBytes/32, boltAllocSize) / p * p
	l.allocSize = int(max(alloc, p))
	l.hwmMax = (maxBytes-int64(l.allocSize))/p - 1
	if l.hwmMax < minPages {
		return nil, fmt.Errorf("buffer options: MaxBytes %d is too small for the file's page size of %d bytes: need at least %d",
			maxBytes, pageSize, (minPages+1)*p+int64(l.allocSize))
	}
	// A file already larger (written without the limit) cannot shrink: commits may use it all,
	// while the drops keep the entries within the budget.
	l.hwmFile = max(l.hwmMax, fileSize/p-1)
	l.batchBytes = l.hwmMax * p / 32
	l.maxPayload = int(min(int64(maxPayload), maxBytes/128))
	pages := max(l.hwmMax, hwm)
	// Branch nodes hold at least a quarter page of 24-byte elements (bbolt rebalances those
	// below), so each level below the root (2 children or more) divides the pages by at least 42.
	l.depth = 1
	for n := pages / 2; n > 1; n /= 42 {
		l.depth++
	}
	// The freelist lists every free and pending page id, 8 bytes each (plus a count).
	l.flPages = ceilDiv(pageHeader+8*(pages+2), p)
	l.margin = max(4, l.hwmMax/64)
	return l, nil
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// batchStat sums what a commit appends.
type batchStat struct {
	n, bytes, maxElem int64
	small, big        int64 // entries of at most and over half a page
	states            int64 // state puts and deletes
	stateElem         int64 // largest state element
}

func (s *batchStat) add(e int64, states []State, half int64) {
	s.n++
	s.bytes += e
	s.maxElem = max(s.maxElem, e)
	if e > half {
		s.big++
	} else {
		s.small++
	}
	for _, st := range states {
		s.states++
		s.stateElem = max(s.stateElem, int64(elemOverhead-8+len(st.Key)+len(st.Value)))
	}
}

// lastLeaf bounds the entries tree's last leaf, the one appends go into.
type lastLeaf struct {
	bytes, maxElem, small, big int64
}

// tailSizes remembers the element sizes of the last entries appended, enough to bound the last
// leaf: bbolt leaves a node unsplit when it has at most 4 keys or is under a page, so the last
// leaf is a suffix of the entries that is either at most 4 of them or under a page.
type tailSizes struct {
	n  int // entries recorded, up to len(sz)
	at int // next slot
	sz [512]int32
}

func (t *tailSizes) add(e int64) {
	t.sz[t.at] = int32(min(e, 1<<31-1))
	t.at = (t.at + 1) % len(t.sz)
	t.n = min(t.n+1, len(t.sz))
}

func (t *tailSizes) last(p int64) lastLeaf {
	half := p / 2
	var four, under lastLeaf
	four.bytes, under.bytes = pageHeader, pageHeader
	complete := false // under is the longest suffix under a page
	for i := 0; i < t.n && !(complete && i >= 4); i++ {
		e := int64(t.sz[(t.at-1-i+2*len(t.sz))%len(t.sz)])
		if i < 4 {
			four.add(e, half)
		}
		if !complete {
			if under.bytes+e < p {
				under.add(e, half)
			} else {
				complete = true
			}
		}
	}
	if !complete && t.n == len(t.sz) {
		// The ring ran out before a page's worth: assume a page of the smallest entries.
		under = lastLeaf{bytes: p, maxElem: under.maxElem, small: p / (elemOverhead + stampLen), big: under.big}
	}
	return lastLeaf{
		bytes:   max(four.bytes, under.bytes),
		maxElem: max(four.maxElem, under.maxElem),
		small:   max(four.small, under.small),
		big:     max(four.big, under.big),
	}
}

func (l *lastLeaf) add(e, half int64) {
	l.bytes += e
	l.maxElem = max(l.maxElem, e)
	if e > half {
		l.big++
	} else {
		l.small++
	}
}

// appendPages bounds the pages that appending s after the last leaf allocates: the leaves the
// last leaf and the new entries are spilled into, and the branch pages above them.
//
// bbolt splits a node of more than 4 keys and at least a page into pieces, closing a piece at
// the first key (from the third on) that would take it over a page (FillPercent 1.0), and a
// piece of n bytes takes ceil(n/pageSize) pages. With every element at most E <= (page-16)/4,
// every piece fits a page and every piece but the last two (the last, and one closed early to
// leave the last two keys) holds more than page-E bytes. Otherwise two bounds hold, and so does
// the lesser: every piece but those two has two keys or more and takes at most bytes/page+1
// pages; and a piece of at least half a page takes at most 2*bytes/page pages, while a piece
// under half a page (one page) is closed by an element over half a page or is one of the two,
// and holds two keys or more.
func (l *limits) appendPages(s batchStat, last lastLeaf) int64 {
	if s.n == 0 {
		return 0
	}
	p := l.pageSize
	total := s.bytes + last.bytes
	var leaves int64
	if e := max(s.maxElem, last.maxElem); e <= (p-pageHeader)/4 {
		leaves = total/(p-e) + 2
	} else {
		keys := s.n + last.small + last.big
		leaves = min(total/p+keys/2, ceilDiv(2*total, p)+min(s.big+last.big, (s.small+last.small)/2)) + 2
	}
	// The branch pages on the way down are rewritten (and may split), and the new leaves add a
	// 24-byte element each to the level above: at least 100 fit a page.
	return leaves + 3*l.depth + leaves/100 + 2
}

// fixedPages bounds what else a writer commit allocates: the first leaf and the branches above
// it when it drops (a leaf left under a quarter page merges with its neighbour and may split
// again), the root page holding the buckets, the state bucket's pages it rewrites, and the
// freelist. maxElem is the largest element stored; stateBytes and stateElem bound the state
// bucket's size and its largest element.
func (l *limits) fixedPages(maxElem int64, s batchStat, stateBytes, stateElem int64) int64 {
	p := l.pageSize
	n := l.ackPages(maxElem)
	if s.states > 0 {
		// State bucket: FillPercent 0.5, so a node is at most half a page plus an element, or 4
		// elements; the leaves written are at most the number of puts, or of the bucket's
		// leaves (each at least an eighth full, bbolt merging those under a quarter).
		e := max(s.stateElem, stateElem)
		node := ceilDiv(max(p/2+e, pageHeader+4*e), p)
		leaves := min(s.states, 1+8*stateBytes/p)
		n += 2*leaves*node + 3*l.depth
	}
	return n
}

// ackPages bounds what an Ack allocates: the first leaf and its branches, the root and the
// freelist (all a drop-only commit allocates).
func (l *limits) ackPages(maxElem int64) int64 {
	p := l.pageSize
	leaf := ceilDiv(max(p, pageHeader+4*maxElem), p)
	return 2*leaf + 2*l.depth + 2 + 1 + l.flPages
}

// dropWaste bounds the bytes of dropped entries that share a leaf with the first entry kept,
// and so free no page, given the sizes of the last three dropped: a node holds at most 4 keys,
// or less than a page beyond its first two.
func (l *limits) dropWaste(last3 int64) int64 { return max(l.pageSize, last3) }
