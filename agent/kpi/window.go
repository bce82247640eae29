package kpi

// accum holds what one window has accumulated. Durations are nanoseconds, counts are parts.
// Every field is summed from its own evidence; none is the remainder of others.
type accum struct {
	unscheduled int64 // outside shifts and on non-working days
	plannedDown int64 // breaks (ISO 22400: planned downtime)
	pbt         int64 // planned busy time, from the schedule alone
	unknown     int64 // planned busy time without trustworthy evidence
	st          [numStates]int64
	microStop   int64

	// A stop not yet classified (see asset.pending) keeps its time here, by state, until it is
	// known to be a micro-stop or a stop.
	pend         [numStates]int64
	pendFailures int64
	holdsStart   bool // the pending stop began in this window: it is counted here

	stops, microStops, failures int64
	resets, rollovers           int64

	cnt       [numRoles][numCats]int64 // counter deltas by role and category
	noIdeal   int64                    // produced in PBT while no ideal cycle was known
	idealTime int64                    // Σ ideal cycle × parts, over produced_pbt

	// The last cycle measured in the window: lastCycleNs over lastCycleParts parts.
	lastCycleNs, lastCycleParts int64
	idealEnd                    int64 // the ideal cycle when the window ended

	roles uint8 // bit r set: the asset counts with role r
}

// Counter roles.
const (
	roleTotal = iota
	roleGood
	roleReject
	numRoles
)

// Categories of counted parts.
const (
	catPBT     = iota // counted in planned busy time with known state since the last read
	catOutside        // counted outside planned busy time (breaks, unscheduled)
	catUnknown        // counted across a gap: the time they were made in is unknown
	numCats
)

// window is one window of one asset.
type window struct {
	spec       int // index in asset.specs
	start, end int64
	shift      string // the shift's name, for shift windows
	ended      bool   // end has passed; kept open only while it holds a pending stop
	a          accum
}

func (w *window) pending() bool {
	return w.a.holdsStart || w.a.pendFailures != 0 || w.a.pend != [numStates]int64{}
}

// spec is the state of one configured window kind of an asset.
type spec struct {
	w    Window
	name string  // w.String(), the record's "window"
	cur  *window // the open window, nil between shifts
	// nextOpen is when the next window opens while cur is nil; never when none will.
	nextOpen int64
}

// windowAt returns the bounds of the window of kind sp that contains t, or ok false when none
// does (between shifts).
func (a *asset) windowAt(sp *spec, t int64) (start, end int64, shift string, ok bool) {
	switch sp.w.Kind {
	case Tumbling:
		every := int64(sp.w.Every)
		return tumbleAtOrBefore(t, every, a.sched.loc), tumbleAfter(t, every, a.sched.loc), "", true
	case DayWindow:
		d := localDate(t, a.sched.loc)
		s := wallInstant(d, 0, a.sched.loc)
		if t < s {
			d = addDays(d, -1)
			s = wallInstant(d, 0, a.sched.loc)
		}
		e := wallInstant(addDays(d, 1), 0, a.sched.loc)
		if t >= e {
			s, e = e, wallInstant(addDays(d, 2), 0, a.sched.loc)
		}
		return s, e, "", true
	case ShiftWindow:
		if o, ok := a.sched.occurrenceAt(t); ok {
			return o.start, o.end, a.sched.shifts[o.shift].Name, true
		}
	}
	return 0, 0, "", false
}

// nextWindowStart returns when the next window of kind sp opens after t, when none contains t.
func (a *asset) nextWindowStart(sp *spec, t int64) int64 {
	if sp.w.Kind != ShiftWindow {
		return t
	}
	// With no shift within the lookahead, next is when to look again.
	_, _, next := a.sched.nextStart(t)
	return next
}

// newWindow takes a window from the free list or allocates one.
func (e *Engine) newWindow() *window {
	if n := len(e.free); n > 0 {
		w := e.free[n-1]
		e.free = e.free[:n-1]
		*w = window{}
		return w
	}
	return new(window)
}

// open opens the window of sp that contains at, if any, or schedules the next one.
func (e *Engine) open(a *asset, si int, at int64) {
	sp := &a.specs[si]
	start, end, shift, ok := a.windowAt(sp, at)
	if !ok {
		sp.cur, sp.nextOpen = nil, a.nextWindowStart(sp, at)
		return
	}
	w := e.newWindow()
	w.spec, w.start, w.end, w.shift = si, max(start, at, a.d.floor), end, shift
	for r, ok := range a.roles {
		if ok {
			w.a.roles |= 1 << r
		}
	}
	sp.cur, sp.nextOpen = w, never
	a.wins = append(a.wins, w)
}

// closeDue ends the windows whose end is at or before at, queues those that hold no pending
// stop, and opens their successors.
func (e *Engine) closeDue(a *asset, at int64) {
	for si := range a.specs {
		sp := &a.specs[si]
		if w := sp.cur; w != nil && w.end <= at {
			w.ended = true
			w.a.idealEnd = a.d.ideal
			sp.cur = nil
			sp.nextOpen = w.end
		}
		if sp.cur == nil && sp.nextOpen <= at {
			e.open(a, si, at)
		}
	}
	e.release(a)
}

// release queues the ended windows that no longer hold a pending stop, oldest end first.
func (e *Engine) release(a *asset) {
	for {
		k := -1
		for i, w := range a.wins {
			if w.ended && !w.pending() && (k < 0 || w.end < a.wins[k].end) {
				k = i
			}
		}
		if k < 0 {
			return
		}
		w := a.wins[k]
		a.wins = append(a.wins[:k], a.wins[k+1:]...)
		e.queue = append(e.queue, closed{asset: a.name, spec: a.specs[w.spec].name, win: w})
	}
}

// nextEnd returns the earliest end among a's open windows, never when none is open.
func (a *asset) nextEnd() int64 {
	n := never
	for i := range a.specs {
		if w := a.specs[i].cur; w != nil {
			n = min(n, w.end)
		} else {
			n = min(n, a.specs[i].nextOpen)
		}
	}
	return n
}
