package kpi

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Times inside the engine are Unix nanoseconds (int64): durations add exactly, so splitting an
// interval anywhere (a window boundary, a snapshot, a call to Next) never changes a sum.
const (
	nsHour = int64(time.Hour)
	nsDay  = 24 * nsHour
	never  = int64(math.MaxInt64)
)

// periodKind is what the schedule plans for a stretch of time.
type periodKind uint8

const (
	unscheduled periodKind = iota // outside every shift, or a non-working day
	plannedDown                   // a break within a shift (ISO 22400: planned downtime)
	busy                          // planned busy time (PBT)
)

// period is a stretch of constant periodKind, up to until (exclusive).
type period struct {
	kind  periodKind
	until int64
}

// schedule is a compiled Schedule.
type schedule struct {
	loc        *time.Location
	shifts     []Shift
	days       []uint8 // per shift: bit i set when it starts on time.Weekday(i)
	nonWorking []Date  // sorted
}

// occ is one occurrence of a shift: the shift started on date.
type occ struct {
	shift      int
	date       Date
	start, end int64
}

func compileSchedule(s Schedule, def *time.Location) (schedule, []fieldErr) {
	c := schedule{loc: s.Location}
	if c.loc == nil {
		c.loc = def
	}
	if c.loc == nil {
		c.loc = time.UTC
	}
	var errs []fieldErr
	shifts := s.Shifts
	if len(shifts) == 0 {
		// 24/7: one whole-day shift every day, so non-working days still apply.
		shifts = []Shift{{}}
	}
	for i, sh := range shifts {
		p := fmt.Sprintf("schedule.shifts[%d]", i)
		if sh.Start < 0 || sh.Start >= 24*time.Hour {
			errs = append(errs, fieldErr{p + ".start", fmt.Errorf("want a time of day from 00:00 to 23:59, got %v", sh.Start)})
		}
		if sh.End < 0 || sh.End > 24*time.Hour {
			errs = append(errs, fieldErr{p + ".end", fmt.Errorf("want a time of day from 00:00 to 24:00, got %v", sh.End)})
		}
		length := shiftLength(sh)
		for j, b := range sh.Breaks {
			rs, re := rel(sh, b.Start), rel(sh, b.End)
			if re == 0 && b.End != sh.Start {
				re = nsDay
			}
			if b.End%(24*time.Hour) == sh.End%(24*time.Hour) {
				re = length
			}
			if rs >= re || re > length {
				errs = append(errs, fieldErr{fmt.Sprintf("%s.breaks[%d]", p, j), fmt.Errorf("break %s-%s is not within its shift %s-%s",
					clock(b.Start), clock(b.End), clock(sh.Start), clock(sh.End))})
			}
		}
		var mask uint8
		for _, d := range sh.Days {
			mask |= 1 << d
		}
		if mask == 0 {
			mask = 0x7f
		}
		c.days = append(c.days, mask)
	}
	c.shifts = shifts
	c.nonWorking = slices.Clone(s.NonWorking)
	slices.SortFunc(c.nonWorking, func(a, b Date) int { return dateCmp(a, b) })
	if msg := overlap(shifts, c.days); msg != nil {
		errs = append(errs, *msg)
	}
	return c, errs
}

type fieldErr struct {
	path string
	err  error
}

// shiftLength is the wall-clock length of a shift: (End - Start) mod 24h, 24h when they are
// equal.
func shiftLength(sh Shift) int64 {
	l := mod(int64(sh.End-sh.Start), nsDay)
	if l == 0 {
		return nsDay
	}
	return l
}

// rel is where a time of day falls in a shift, from its start.
func rel(sh Shift, tod time.Duration) int64 { return mod(int64(tod-sh.Start), nsDay) }

func clock(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// overlap finds two shifts that overlap on the weekly wall clock.
func overlap(shifts []Shift, days []uint8) *fieldErr {
	const week = 7 * nsDay
	type span struct {
		shift      int
		start, end int64
	}
	var spans []span
	for i, sh := range shifts {
		for d := range 7 {
			if days[i]&(1<<d) != 0 {
				s := int64(d)*nsDay + int64(sh.Start)
				spans = append(spans, span{i, s, s + shiftLength(sh)})
			}
		}
	}
	for x := range spans {
		for y := x + 1; y < len(spans); y++ {
			a, b := spans[x], spans[y]
			// On a circle of one week: shift b by a week either way.
			for _, k := range []int64{-week, 0, week} {
				if a.start < b.end+k && b.start+k < a.end {
					i, j := min(a.shift, b.shift), max(a.shift, b.shift)
					if i == j {
						continue
					}
					return &fieldErr{fmt.Sprintf("schedule.shifts[%d]", j), fmt.Errorf("overlaps shifts[%d] (%q %s-%s)",
						i, shifts[i].Name, clock(shifts[i].Start), clock(shifts[i].End))}
				}
			}
		}
	}
	return nil
}

func dateCmp(a, b Date) int {
	switch {
	case a.Year != b.Year:
		return a.Year - b.Year
	case a.Month != b.Month:
		return int(a.Month) - int(b.Month)
	}
	return a.Day - b.Day
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func addDays(d Date, n int) Date {
	t := time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC)
	return Date{t.Year(), t.Month(), t.Day()}
}

func weekday(d Date) time.Weekday {
	return time.Date(d.Year, d.Month, d.Day, 12, 0, 0, 0, time.UTC).Weekday()
}

// localDate is the date of instant t in loc.
func localDate(t int64, loc *time.Location) Date {
	y, m, d := time.Unix(0, t).In(loc).Date()
	return Date{y, m, d}
}

// wallInstant returns the instant at which the wall clock of loc shows tod on date d. A wall
// time that occurs twice (fall back) is its first occurrence; one the clock skips (spring
// forward) is the instant the clock skips to.
func wallInstant(d Date, tod int64, loc *time.Location) int64 {
	// w is the wall time read as if it were UTC; the instant is w minus the offset in effect.
	w := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC).UnixNano() + tod
	best := never
	for _, probe := range [...]int64{-26, -13, 0, 13, 26} {
		_, off := time.Unix(0, w+probe*nsHour).In(loc).Zone()
		c := w - int64(off)*1e9
		if _, off2 := time.Unix(0, c).In(loc).Zone(); off2 == off && c < best {
			best = c
		}
	}
	if best != never {
		return best
	}
	// In a gap: the earliest zone change after which the wall clock is past w.
	for _, probe := range [...]int64{-26, -13, 0, 13, 26} {
		_, off := time.Unix(0, w+probe*nsHour).In(loc).Zone()
		ct := time.Unix(0, w-int64(off)*1e9).In(loc)
		_, end := ct.ZoneBounds()
		if end.IsZero() {
			continue
		}
		e := end.UnixNano()
		if _, offE := end.In(loc).Zone(); e+int64(offE)*1e9 >= w && e < best {
			best = e
		}
	}
	if best == never {
		_, off := time.Unix(0, w).In(loc).Zone()
		return w - int64(off)*1e9
	}
	return best
}

// occurs reports whether shift i starts on date d.
func (s *schedule) occurs(i int, d Date) bool {
	if s.days[i]&(1<<weekday(d)) == 0 {
		return false
	}
	_, found := slices.BinarySearchFunc(s.nonWorking, d, dateCmp)
	return !found
}

func (s *schedule) occurrence(i int, d Date) occ {
	sh := s.shifts[i]
	start := wallInstant(d, int64(sh.Start), s.loc)
	endDate := d
	if sh.End <= sh.Start {
		endDate = addDays(d, 1)
	}
	end := wallInstant(endDate, int64(sh.End), s.loc)
	return occ{shift: i, date: d, start: start, end: max(end, start)}
}

// occurrenceAt returns the occurrence that contains t.
func (s *schedule) occurrenceAt(t int64) (occ, bool) {
	today := localDate(t, s.loc)
	for _, d := range [...]Date{addDays(today, -1), today} {
		for i := range s.shifts {
			if !s.occurs(i, d) {
				continue
			}
			if o := s.occurrence(i, d); o.start <= t && t < o.end {
				return o, true
			}
		}
	}
	return occ{}, false
}

// lookahead bounds the search for the next shift: past it, unscheduled time is re-checked at
// the next midnight after this many days (a schedule of only non-working days stays
// unscheduled).
const lookahead = 16

// nextStart returns the start of the first occurrence after t, or a point at most lookahead
// days away at which to look again.
func (s *schedule) nextStart(t int64) (occ, bool, int64) {
	today := localDate(t, s.loc)
	best, found := occ{start: never}, false
	for k := -1; k <= lookahead; k++ {
		d := addDays(today, k)
		for i := range s.shifts {
			if !s.occurs(i, d) {
				continue
			}
			if o := s.occurrence(i, d); o.start > t && o.start < best.start {
				best, found = o, true
			}
		}
		if found && k >= 1 {
			break
		}
	}
	if found {
		return best, true, best.start
	}
	return occ{}, false, wallInstant(addDays(today, lookahead), 0, s.loc)
}

// breakSpan returns break j of occurrence o as instants, clamped to the occurrence.
func (s *schedule) breakSpan(o occ, j int) (int64, int64) {
	sh := s.shifts[o.shift]
	b := sh.Breaks[j]
	at := func(tod time.Duration) int64 {
		x := int64(sh.Start) + rel(sh, tod)
		if b.End%(24*time.Hour) == sh.End%(24*time.Hour) && tod == b.End {
			x = int64(sh.Start) + shiftLength(sh)
		}
		return wallInstant(addDays(o.date, int(x/nsDay)), x%nsDay, s.loc)
	}
	bs, be := at(b.Start), at(b.End)
	bs, be = min(max(bs, o.start), o.end), min(max(be, o.start), o.end)
	return bs, max(be, bs)
}

// periodAt returns the period that contains t.
func (s *schedule) periodAt(t int64) period {
	o, ok := s.occurrenceAt(t)
	if !ok {
		_, _, next := s.nextStart(t)
		return period{kind: unscheduled, until: next}
	}
	until := o.end
	for j := range s.shifts[o.shift].Breaks {
		bs, be := s.breakSpan(o, j)
		if bs <= t && t < be {
			return period{kind: plannedDown, until: be}
		}
		if bs > t && bs < until {
			until = bs
		}
	}
	return period{kind: busy, until: until}
}

// tumbleAfter returns the first boundary of every-long windows strictly after t: the first
// instant at which the wall clock of loc shows a multiple of every since midnight.
func tumbleAfter(t, every int64, loc *time.Location) int64 {
	for range 64 { // zones change a few times a year; the bound only guards odd inputs
		tt := time.Unix(0, t).In(loc)
		_, off := tt.Zone()
		o := int64(off) * 1e9
		b := floorDiv(t+o, every)*every + every - o
		_, end := tt.ZoneBounds()
		if end.IsZero() {
			return b
		}
		e := end.UnixNano()
		if b < e {
			return b
		}
		// The offset changes before b: the change is a boundary when the wall clock is
		// aligned just after it; else look on from there.
		if _, offE := end.In(loc).Zone(); mod(e+int64(offE)*1e9, every) == 0 {
			return e
		}
		t = e
	}
	return t + every
}

// tumbleAtOrBefore returns the last boundary at or before t.
func tumbleAtOrBefore(t, every int64, loc *time.Location) int64 {
	for range 64 {
		tt := time.Unix(0, t).In(loc)
		_, off := tt.Zone()
		o := int64(off) * 1e9
		b := floorDiv(t+o, every)*every - o
		start, _ := tt.ZoneBounds()
		if start.IsZero() {
			return b
		}
		s := start.UnixNano()
		if b >= s {
			return b
		}
		if mod(s+o, every) == 0 {
			return s
		}
		t = s - 1
	}
	return t - every
}
