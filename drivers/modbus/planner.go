package modbus

import (
	"cmp"
	"slices"
)

// tagSpec is a validated tag as the planner sees it.
type tagSpec struct {
	tag   int // index in Device.Tags
	slot  int // index in its poll group's batch
	addr  address
	typ   valueType
	order byteOrder
	n     int       // registers (bits for coils and discrete inputs) the value occupies, ≥ 1
	str   *strCache // for strings
}

func (s *tagSpec) first() int { return int(s.addr.reg) }
func (s *tagSpec) last() int  { return int(s.addr.reg) + s.n - 1 }

// read is one planned request: count registers (or bits) of one space from start.
type read struct {
	space  space
	start  uint16
	count  uint16
	fields []field
}

// last is the last register (or bit) the read covers.
func (r *read) last() int { return int(r.start) + int(r.count) - 1 }

// limits bound the planner. maxGap is in registers; for coils and discrete inputs the planner
// allows 16×maxGap bits, the same number of payload bytes.
type limits struct {
	maxRegisters int // 1..125
	maxBits      int // 1..2000
	maxGap       int // ≥ 0
}

// plan turns the tags of one unit (one poll group of one device) into the fewest reads, and
// among plans with that many reads, the one reading the fewest registers. A read spans at most
// maxRegisters registers (maxBits bits), never splits a tag, and never spans a hole of more
// than maxGap registers that no tag of the group covers (holes are where devices answer
// "illegal data address"). Tags may share registers: bits of one register, overlapping values.
// Reads come out ordered by space (coils, discrete inputs, input registers, holding registers)
// and address; each read's fields are in address order and alias one backing array.
//
// The algorithm is a dynamic program over the tags of each space sorted by first register,
// O(n·w) for n tags with at most w tags starting within maxRegisters of one another (see
// planSpace); 2,000 tags plan in well under a millisecond (BenchmarkPlan).
func plan(specs []tagSpec, lim limits) []read {
	sorted := slices.Clone(specs)
	slices.SortStableFunc(sorted, func(a, b tagSpec) int {
		if c := cmp.Compare(a.addr.space, b.addr.space); c != 0 {
			return c
		}
		if c := cmp.Compare(a.first(), b.first()); c != 0 {
			return c
		}
		return cmp.Compare(a.last(), b.last())
	})
	fields := make([]field, 0, len(sorted))
	var reads []read
	for i := 0; i < len(sorted); {
		j := i
		for j < len(sorted) && sorted[j].addr.space == sorted[i].addr.space {
			j++
		}
		sp := sorted[i].addr.space
		size, gap := lim.maxRegisters, lim.maxGap
		if !sp.isRegister() {
			size, gap = lim.maxBits, 16*lim.maxGap
		}
		for _, w := range planSpace(sorted[i:j], size, gap) {
			r := read{space: sp, start: uint16(w.first), count: uint16(w.last - w.first + 1)}
			at := len(fields)
			for _, s := range sorted[i+w.from : i+w.to] {
				f := field{slot: s.slot, tag: s.tag, off: uint16(s.first() - w.first), n: uint16(s.n),
					typ: s.typ, order: s.order, str: s.str}
				if s.addr.bit != noBit {
					f.bit = uint8(s.addr.bit)
				}
				fields = append(fields, f)
			}
			r.fields = fields[at:len(fields):len(fields)]
			reads = append(reads, r)
		}
		i = j
	}
	return reads
}

// window is one read chosen by planSpace: registers first..last, carrying tags[from:to] of the
// sorted tags it was given.
type window struct {
	first, last int
	from, to    int
}

// cost orders plans: fewer reads first, then fewer registers.
type cost struct{ reads, regs int }

func (c cost) less(d cost) bool { return c.reads < d.reads || c.reads == d.reads && c.regs < d.regs }

// planSpace plans the tags of one space, sorted by (first, last) register, into windows of at
// most size registers that cross no hole longer than gap, minimising (reads, registers).
//
// A plan's windows can be taken sorted by start with strictly increasing ends (a window nested
// in another is redundant), and can be shrunk to start at a tag's first register. Let p_0 < p_1 <
// … be the distinct first registers. Then a tag starting at p with p_k ≤ p < p_k+1 (window k+1
// the next one) is covered by window k, whose end must reach it; tags starting later are the
// later windows' business. So with F(k) the cheapest cover of every tag starting at p_k or later
// by windows of which the first starts at p_k:
//
//	F(k) = min over ends b of  (1, b−p_k+1) + min { F(j) : k < j ≤ s(u) }   (or just (1, b−p_k+1)
//	       when every tag from p_k on ends by b)
//
// where u is the first tag (in sorted order, from p_k on) that ends after b and s(u) the index
// of its first register. Only ends b that are the running maximum of the tags' ends from p_k
// on are worth trying (any b in between covers the same tags with more registers), and as b
// grows, u and s(u) only move forward, so the inner minimum is kept incrementally: O(w) per k.
func planSpace(tags []tagSpec, size, gap int) []window {
	n := len(tags)
	if n == 0 {
		return nil
	}
	// Segments: a hole of more than gap registers no tag covers is a boundary no window crosses.
	segEnd := make([]int, n) // the last register of the tag's segment
	{
		startIdx, reach := 0, tags[0].last()
		for i := 1; i <= n; i++ {
			if i == n || tags[i].first()-reach-1 > gap {
				for t := startIdx; t < i; t++ {
					segEnd[t] = reach
				}
				if i == n {
					break
				}
				startIdx = i
			}
			reach = max(reach, tags[i].last())
		}
	}
	// Distinct first registers: starts[k] is the index of the first tag starting at p_k;
	// startOf[i] is k for tag i.
	var starts []int
	startOf := make([]int, n)
	for i := range tags {
		if i == 0 || tags[i].first() != tags[i-1].first() {
			starts = append(starts, i)
		}
		startOf[i] = len(starts) - 1
	}
	m := len(starts)
	const inf = int(^uint(0) >> 1)
	best := make([]cost, m+1)
	endAt := make([]int, m)  // chosen window end
	nextAt := make([]int, m) // index of the next window's start, m for none
	for k := m - 1; k >= 0; k-- {
		best[k] = cost{inf, inf}
		a := tags[starts[k]].first()
		lastOfK := n
		if k+1 < m {
			lastOfK = starts[k+1]
		}
		reach := -1
		minJ, minCost := -1, cost{inf, inf} // running min of F(j) for k < j ≤ s(u)
		scanned := k                        // F(j) folded into minCost for j ≤ scanned
		for i := starts[k]; i < n; i++ {
			reach = max(reach, tags[i].last())
			if reach-a+1 > size || reach > segEnd[starts[k]] {
				break
			}
			if i+1 < lastOfK || i+1 < n && tags[i+1].last() <= reach {
				// Every tag starting at p_k must be in this window; and a b that also covers
				// the next tag is tried with it.
				continue
			}
			c := cost{1, reach - a + 1}
			if i+1 < n {
				for su := startOf[i+1]; scanned < su; {
					scanned++
					if best[scanned].less(minCost) {
						minJ, minCost = scanned, best[scanned]
					}
				}
				if minJ < 0 || minCost.reads == inf {
					continue
				}
				c = cost{c.reads + minCost.reads, c.regs + minCost.regs}
			}
			if !best[k].less(c) { // on a tie, the longer first read (the plan reads front-loaded)
				best[k], endAt[k], nextAt[k] = c, reach, m
				if i+1 < n {
					nextAt[k] = minJ
				}
			}
		}
	}
	var out []window
	if best[0].reads == inf {
		// Unreachable for validated tags (each fits in size); one read per tag is always valid.
		for i, t := range tags {
			out = append(out, window{first: t.first(), last: t.last(), from: i, to: i + 1})
		}
		return out
	}
	for k := 0; k < m; k = nextAt[k] {
		to := n
		if nextAt[k] < m {
			to = starts[nextAt[k]]
		}
		out = append(out, window{first: tags[starts[k]].first(), last: endAt[k], from: starts[k], to: to})
	}
	return out
}
