package modbus

import (
	"cmp"
	"slices"
)

// tagSpec is a validated tag as the planner sees it.
type tagSpec struct {
	tag   int // index in Device.Tags
	addr  address
	typ   valueType
	order byteOrder
}

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

// plan groups tags into the fewest reads it can, greedily: tags are sorted by space and first
// register, and each tag joins the current read when it stays within the size limit and the
// hole between the read's end and the tag (registers nobody asked for) is at most the gap limit;
// otherwise it starts a new read. A tag is never split across two reads, so a 32-bit value is
// always decoded from one reply; tags may share registers (bits of one register, overlapping
// 32-bit values). Reads come out ordered by space (coils, discrete inputs, input registers,
// holding registers) and address. Each read's fields alias one backing array.
//
// Greedy packing of the sorted tags is what Telegraf's max_insert and Neuron's tag_sort do; it
// is minimal for tags of one register and close to it with 32-bit tags in the mix, and it is
// predictable, which matters more when an operator compares the plan with a device's manual.
func plan(specs []tagSpec, lim limits) []read {
	sorted := slices.Clone(specs)
	slices.SortStableFunc(sorted, func(a, b tagSpec) int {
		if c := cmp.Compare(a.addr.space, b.addr.space); c != 0 {
			return c
		}
		if c := cmp.Compare(a.addr.reg, b.addr.reg); c != 0 {
			return c
		}
		return cmp.Compare(a.typ.width(), b.typ.width())
	})

	var reads []read
	var ends []int // ends[k]: fields[:ends[k]] belong to reads[:k+1]
	fields := make([]field, 0, len(sorted))
	for _, s := range sorted {
		first := int(s.addr.reg)
		last := first + s.typ.width() - 1
		size, gap := lim.maxRegisters, lim.maxGap
		if !s.addr.space.isRegister() {
			size, gap = lim.maxBits, 16*lim.maxGap
		}

		n := len(reads)
		join := n > 0 && reads[n-1].space == s.addr.space &&
			first-reads[n-1].last()-1 <= gap &&
			max(last, reads[n-1].last())-int(reads[n-1].start)+1 <= size
		if !join {
			reads = append(reads, read{space: s.addr.space, start: s.addr.reg})
			ends = append(ends, 0)
			n++
		}
		r := &reads[n-1]
		if end := max(last, r.last()); end-int(r.start)+1 > int(r.count) {
			r.count = uint16(end - int(r.start) + 1)
		}
		f := field{tag: s.tag, off: s.addr.reg - r.start, typ: s.typ, order: s.order}
		if s.addr.bit != noBit {
			f.bit = uint8(s.addr.bit)
		}
		fields = append(fields, f)
		ends[n-1] = len(fields)
	}

	// Fields were appended in read order, so each read's fields are one contiguous run.
	i := 0
	for k := range reads {
		reads[k].fields = fields[i:ends[k]:ends[k]]
		i = ends[k]
	}
	return reads
}
