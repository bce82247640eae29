package modbus

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pt is a tag for planner tests: an address and a type.
type pt struct {
	addr string
	typ  valueType
}

// pr is a planned read in short form: "hr:0+20 [0 1 2]" is 20 holding registers from 0
// covering tags 0, 1 and 2.
type pr string

func planOf(t *testing.T, tags []pt, lim limits) []pr {
	t.Helper()
	var specs []tagSpec
	for i, tg := range tags {
		a, err := parseAddress(tg.addr)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, tagSpec{tag: i, addr: a, typ: tg.typ})
	}
	var got []pr
	for _, r := range plan(specs, lim) {
		var tags []int
		for _, f := range r.fields {
			tags = append(tags, f.tag)
			if int(f.off)+f.typ.width() > int(r.count) {
				t.Errorf("tag %d runs past its read %+v", f.tag, r)
			}
		}
		got = append(got, pr(fmt.Sprintf("%s:%d+%d %v", r.space.prefix(), r.start, r.count, tags)))
	}
	return got
}

func TestPlan(t *testing.T) {
	std := limits{maxRegisters: 125, maxBits: 2000, maxGap: 16}
	noGap := limits{maxRegisters: 125, maxBits: 2000, maxGap: 0}
	wide := limits{maxRegisters: 125, maxBits: 2000, maxGap: 200}
	u16, f32, bit, coil := typeUint16, typeFloat32, typeRegBit, typeBool

	// 125 consecutive registers, and one more.
	var fill125, fill126 []pt
	var tags125, tags126 []int
	for i := 0; i < 126; i++ {
		tg := pt{fmt.Sprintf("hr:%d", i), u16}
		if i < 125 {
			fill125 = append(fill125, tg)
			tags125 = append(tags125, i)
		}
		fill126 = append(fill126, tg)
		tags126 = append(tags126, i)
	}

	for _, tc := range []struct {
		name string
		tags []pt
		lim  limits
		want []pr
	}{
		{"one", []pt{{"40001", u16}}, std, []pr{"hr:0+1 [0]"}},
		{"contiguous", []pt{{"hr:0", u16}, {"hr:1", u16}, {"hr:2", f32}}, std, []pr{"hr:0+4 [0 1 2]"}},
		{"unsorted input", []pt{{"hr:2", f32}, {"hr:0", u16}, {"hr:1", u16}}, std, []pr{"hr:0+4 [1 2 0]"}},
		{"gap within limit", []pt{{"hr:0", u16}, {"hr:17", u16}}, std, []pr{"hr:0+18 [0 1]"}},
		{"gap one over limit", []pt{{"hr:0", u16}, {"hr:18", u16}}, std, []pr{"hr:0+1 [0]", "hr:18+1 [1]"}},
		{"no gap allowed", []pt{{"hr:0", u16}, {"hr:2", u16}, {"hr:3", u16}}, noGap, []pr{"hr:0+1 [0]", "hr:2+2 [1 2]"}},
		{"exactly 125", fill125, std, []pr{pr(fmt.Sprintf("hr:0+125 %v", tags125))}},
		{"126 splits", fill126, std, []pr{pr(fmt.Sprintf("hr:0+125 %v", tags126[:125])), "hr:125+1 [125]"}},
		{"32-bit ending at 125", []pt{{"hr:0", u16}, {"hr:123", f32}}, wide, []pr{"hr:0+125 [0 1]"}},
		{"32-bit crossing 125 is not split", []pt{{"hr:0", u16}, {"hr:124", f32}}, wide, []pr{"hr:0+1 [0]", "hr:124+2 [1]"}},
		{"span over 125 splits", []pt{{"hr:0", u16}, {"hr:100", u16}, {"hr:110", u16}, {"hr:126", u16}}, limits{maxRegisters: 125, maxBits: 2000, maxGap: 100},
			[]pr{"hr:0+111 [0 1 2]", "hr:126+1 [3]"}},
		{"overlapping 32-bit", []pt{{"hr:0", f32}, {"hr:1", f32}, {"hr:1", u16}}, noGap, []pr{"hr:0+3 [0 2 1]"}},
		{"same register twice", []pt{{"hr:5", u16}, {"hr:5", typeInt16}}, noGap, []pr{"hr:5+1 [0 1]"}},
		{"bits of one register", []pt{{"40001.0", bit}, {"40001.15", bit}, {"hr:0.3", bit}, {"hr:0", u16}}, noGap, []pr{"hr:0+1 [0 1 2 3]"}},
		{"spaces kept apart", []pt{{"hr:0", u16}, {"ir:0", u16}, {"co:0", coil}, {"di:0", coil}, {"hr:1", u16}}, std,
			[]pr{"co:0+1 [2]", "di:0+1 [3]", "ir:0+1 [1]", "hr:0+2 [0 4]"}},
		{"small MaxRegisters", []pt{{"hr:0", u16}, {"hr:1", u16}, {"hr:2", u16}, {"hr:3", f32}}, limits{maxRegisters: 2, maxBits: 2000, maxGap: 16},
			[]pr{"hr:0+2 [0 1]", "hr:2+1 [2]", "hr:3+2 [3]"}},
		{"coil gap is 16 per register of MaxGap", []pt{{"co:0", coil}, {"co:257", coil}, {"co:600", coil}}, std,
			[]pr{"co:0+258 [0 1]", "co:600+1 [2]"}},
		{"2000 coils", []pt{{"co:0", coil}, {"co:1999", coil}, {"co:2000", coil}}, limits{maxRegisters: 125, maxBits: 2000, maxGap: 200},
			[]pr{"co:0+2000 [0 1]", "co:2000+1 [2]"}},
		{"last register", []pt{{"hr:65534", f32}, {"hr:65535", u16}}, std, []pr{"hr:65534+2 [0 1]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := planOf(t, tc.tags, tc.lim)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlan_Offsets(t *testing.T) {
	specs := []tagSpec{
		{tag: 0, addr: address{space: spaceHolding, reg: 10, bit: noBit}, typ: typeUint16},
		{tag: 1, addr: address{space: spaceHolding, reg: 12, bit: 7}, typ: typeRegBit},
		{tag: 2, addr: address{space: spaceHolding, reg: 13, bit: noBit}, typ: typeFloat32, order: orderCDAB},
	}
	reads := plan(specs, limits{maxRegisters: 125, maxBits: 2000, maxGap: 16})
	want := []read{{space: spaceHolding, start: 10, count: 5, fields: []field{
		{tag: 0, off: 0, typ: typeUint16},
		{tag: 1, off: 2, typ: typeRegBit, bit: 7},
		{tag: 2, off: 3, typ: typeFloat32, order: orderCDAB},
	}}}
	if diff := cmp.Diff(want, reads, cmp.AllowUnexported(read{}, field{})); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}
