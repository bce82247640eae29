package verify

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSeqSet_Model checks the seq set's queries against a plain map, with seqs packed around
// page and word boundaries.
func TestSeqSet_Model(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			base := rng.Uint64N(1 << 50)
			width := uint64(64 + rng.IntN(4*pageSize))
			var s seqSet
			model := map[uint64]uint64{}
			for range rng.IntN(int(width)) {
				seq := base + rng.Uint64N(width)
				h := rng.Uint64()
				stored, added := s.add(seq, h)
				if old, ok := model[seq]; ok {
					if added || stored != old {
						t.Fatalf("add(%d) again: got %d, %v; want %d, false", seq, stored, added, old)
					}
					continue
				}
				if !added || stored != h {
					t.Fatalf("add(%d): got %d, %v; want %d, true", seq, stored, added, h)
				}
				model[seq] = h
			}
			if s.n != uint64(len(model)) {
				t.Fatalf("got %d seqs, want %d", s.n, len(model))
			}
			// Every stored hash is where rank says it is.
			for seq, h := range model {
				p := s.pages[seq>>pageBits]
				if got := p.hashes[p.rank(int(seq&(pageSize-1)))]; got != h {
					t.Fatalf("hash of %d: got %x, want %x", seq, got, h)
				}
			}
			sc := newScan(&s)
			for range 200 {
				lo := base - 10 + rng.Uint64N(width+20)
				hi := lo + rng.Uint64N(width)
				var wantSet, wantClear uint64
				var foundSet, foundClear bool
				var wantCount uint64
				var wantAbsent []Range
				for q := lo; q <= hi; q++ {
					_, in := model[q]
					if in && !foundSet {
						wantSet, foundSet = q, true
					}
					if !in && !foundClear {
						wantClear, foundClear = q, true
					}
					if in {
						wantCount++
					} else if k := len(wantAbsent); k > 0 && wantAbsent[k-1].Last == q-1 {
						wantAbsent[k-1].Last = q
					} else {
						wantAbsent = append(wantAbsent, Range{q, q})
					}
				}
				if got, ok := sc.nextSet(lo); foundSet && (!ok || got != wantSet) {
					t.Fatalf("nextSet(%d): got %d, %v; want %d", lo, got, ok, wantSet)
				}
				if got, ok := sc.nextClear(lo); foundClear && (!ok || got != wantClear) {
					t.Fatalf("nextClear(%d): got %d, %v; want %d", lo, got, ok, wantClear)
				}
				if got := sc.countSet(lo, hi); got != wantCount {
					t.Fatalf("countSet(%d, %d): got %d, want %d", lo, hi, got, wantCount)
				}
				var gotAbsent []Range
				sc.absent(lo, hi, func(r Range) { gotAbsent = append(gotAbsent, r) })
				if !slices.Equal(gotAbsent, wantAbsent) {
					t.Fatalf("absent(%d, %d): got %v, want %v", lo, hi, gotAbsent, wantAbsent)
				}
			}
		})
	}
}

// TestAddRange checks the merged list of announced drops against a plain set.
func TestAddRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 200 {
		var rs []Range
		set := map[uint64]bool{}
		for range rng.IntN(20) {
			first := 1 + rng.Uint64N(200)
			r := Range{first, first + rng.Uint64N(20)}
			rs = addRange(rs, r)
			for q := r.First; q <= r.Last; q++ {
				set[q] = true
			}
		}
		var want []Range
		for q := uint64(1); q <= 300; q++ {
			if !set[q] {
				continue
			}
			if k := len(want); k > 0 && want[k-1].Last == q-1 {
				want[k-1].Last = q
			} else {
				want = append(want, Range{q, q})
			}
		}
		if !slices.Equal(rs, want) {
			t.Fatalf("round %d: got %v, want %v", round, rs, want)
		}
	}
	if got := addRange([]Range{{1, ^uint64(0) - 1}}, Range{^uint64(0), ^uint64(0)}); !slices.Equal(got, []Range{{1, ^uint64(0)}}) {
		t.Errorf("at the top of uint64: got %v", got)
	}
}
