package verify

import (
	"math"
	"math/bits"
	"slices"
)

// pageBits sets the page size: 1024 seqs, a 128-byte bitmap. Dense streams pay the bitmap
// (1/8 byte per seq) and the page header (about 0.2 byte per seq); a seq far from all others
// pays one page header, about 200 bytes, so scattered garbage seqs cannot exhaust memory as
// fast as fixed-size hash pages would (8 KiB each).
const (
	pageBits  = 10
	pageSize  = 1 << pageBits
	pageWords = pageSize / 64
)

// page holds the seqs of one aligned block of pageSize: which are present, and the payload hash
// of each present one, in seq order (hashes[i] belongs to the i-th set bit).
type page struct {
	bits   [pageWords]uint64
	hashes []uint64
}

// rank is the number of present seqs in the page before offset off.
func (p *page) rank(off int) int {
	w := off >> 6
	n := 0
	for _, x := range p.bits[:w] {
		n += bits.OnesCount64(x)
	}
	return n + bits.OnesCount64(p.bits[w]&(1<<(off&63)-1))
}

func (p *page) has(off int) bool { return p.bits[off>>6]&(1<<(off&63)) != 0 }

// full reports whether every seq of the page is present.
func (p *page) full() bool { return len(p.hashes) == pageSize }

// nextSet returns the first present offset ≥ off, or pageSize.
func (p *page) nextSet(off int) int {
	for w := off >> 6; w < pageWords; w++ {
		x := p.bits[w]
		if w == off>>6 {
			x &^= 1<<(off&63) - 1
		}
		if x != 0 {
			return w<<6 + bits.TrailingZeros64(x)
		}
	}
	return pageSize
}

// nextClear returns the first absent offset ≥ off, or pageSize.
func (p *page) nextClear(off int) int {
	for w := off >> 6; w < pageWords; w++ {
		x := ^p.bits[w]
		if w == off>>6 {
			x &^= 1<<(off&63) - 1
		}
		if x != 0 {
			return w<<6 + bits.TrailingZeros64(x)
		}
	}
	return pageSize
}

// countSet counts the present offsets in [lo, hi].
func (p *page) countSet(lo, hi int) int {
	n := 0
	for w := lo >> 6; w <= hi>>6; w++ {
		x := p.bits[w]
		if w == lo>>6 {
			x &^= 1<<(lo&63) - 1
		}
		if w == hi>>6 && hi&63 != 63 {
			x &= 1<<(hi&63+1) - 1
		}
		n += bits.OnesCount64(x)
	}
	return n
}

// seqSet is the set of seqs seen on one stream with a 64-bit payload hash per seq. It is built
// for streams that are mostly dense and mostly in order (8.2 bytes per seq, no allocation per
// seq), and stays correct for any order and any seq values.
type seqSet struct {
	pages map[uint64]*page // by seq >> pageBits
	last  *page            // the page of the last add, the usual target of the next one
	lastN uint64
	max   uint64 // highest seq added, 0 when empty
	n     uint64 // distinct seqs
}

func (s *seqSet) page(idx uint64) *page {
	if s.last != nil && s.lastN == idx {
		return s.last
	}
	p := s.pages[idx]
	if p != nil {
		s.last, s.lastN = p, idx
	}
	return p
}

// add records seq with hash h. When seq is already present it returns the stored hash and
// false, and changes nothing.
func (s *seqSet) add(seq, h uint64) (stored uint64, added bool) {
	idx, off := seq>>pageBits, int(seq&(pageSize-1))
	p := s.page(idx)
	if p == nil {
		p = &page{}
		// A page opened by the next seq of an in-order stream will fill up: give it its full
		// capacity at once rather than growing it eight times (which would allocate twice the
		// final size). Any other page, a stream's first included, grows from a few slots, so
		// that garbage (random seqs, or random gateway ids) costs little memory.
		if s.n > 0 && seq == s.max+1 {
			p.hashes = make([]uint64, 0, pageSize)
		}
		if s.pages == nil {
			s.pages = make(map[uint64]*page)
		}
		s.pages[idx] = p
		s.last, s.lastN = p, idx
	}
	if p.has(off) {
		return p.hashes[p.rank(off)], false
	}
	p.bits[off>>6] |= 1 << (off & 63)
	r := len(p.hashes)
	if seq < s.max {
		r = p.rank(off) // not the page's highest seq: insert in the middle
	}
	if len(p.hashes) == cap(p.hashes) {
		grown := make([]uint64, len(p.hashes), min(max(2*cap(p.hashes), 4), pageSize))
		copy(grown, p.hashes)
		p.hashes = grown
	}
	p.hashes = slices.Insert(p.hashes, r, h)
	s.n++
	s.max = max(s.max, seq)
	return h, true
}

// sortedPages returns the page indices in ascending order.
func (s *seqSet) sortedPages() []uint64 {
	idx := make([]uint64, 0, len(s.pages))
	for k := range s.pages {
		idx = append(idx, k)
	}
	slices.Sort(idx)
	return idx
}

// scan walks a seqSet in seq order for a report: it answers "next present" and "next absent"
// queries with the page indices sorted once, so a query never visits the empty space between
// pages (seqs may be as far apart as uint64 allows).
type scan struct {
	s   *seqSet
	idx []uint64
}

func newScan(s *seqSet) scan { return scan{s: s, idx: s.sortedPages()} }

// nextSet returns the first present seq ≥ seq, or false.
func (sc scan) nextSet(seq uint64) (uint64, bool) {
	pi := seq >> pageBits
	off := int(seq & (pageSize - 1))
	i, _ := slices.BinarySearch(sc.idx, pi)
	for ; i < len(sc.idx); i++ {
		k := sc.idx[i]
		if k != pi {
			off = 0
		}
		if o := sc.s.pages[k].nextSet(off); o < pageSize {
			return k<<pageBits | uint64(o), true
		}
	}
	return 0, false
}

// nextClear returns the first absent seq ≥ seq, or false when every seq from seq up to the
// largest uint64 is present.
func (sc scan) nextClear(seq uint64) (uint64, bool) {
	for {
		pi := seq >> pageBits
		p := sc.s.pages[pi]
		if p == nil {
			return seq, true
		}
		if o := p.nextClear(int(seq & (pageSize - 1))); o < pageSize {
			return pi<<pageBits | uint64(o), true
		}
		if pi == math.MaxUint64>>pageBits {
			return 0, false
		}
		seq = (pi + 1) << pageBits
	}
}

// countSet counts the present seqs in [lo, hi].
func (sc scan) countSet(lo, hi uint64) uint64 {
	var n uint64
	i, _ := slices.BinarySearch(sc.idx, lo>>pageBits)
	for ; i < len(sc.idx) && sc.idx[i] <= hi>>pageBits; i++ {
		k := sc.idx[i]
		a, b := 0, pageSize-1
		if k == lo>>pageBits {
			a = int(lo & (pageSize - 1))
		}
		if k == hi>>pageBits {
			b = int(hi & (pageSize - 1))
		}
		n += uint64(sc.s.pages[k].countSet(a, b))
	}
	return n
}

// absent calls fn for each maximal range of absent seqs within [lo, hi], in order.
func (sc scan) absent(lo, hi uint64, fn func(Range)) {
	for lo <= hi {
		a, ok := sc.nextClear(lo)
		if !ok || a > hi {
			return
		}
		b := hi
		if next, ok := sc.nextSet(a); ok && next-1 < hi {
			b = next - 1
		}
		fn(Range{a, b})
		if b == math.MaxUint64 {
			return
		}
		lo = b + 1
	}
}
