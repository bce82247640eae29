package kpi

import (
	"math"

	"github.com/floorlink/floorlink/drivers"
)

// start begins a's timeline at its first time input t. The windows that contain t are opened
// at their own start: the time before t is unknown (the agent was not running).
func (e *Engine) start(a *asset, t int64) {
	a.d.started = true
	acc := t
	for i := range a.specs {
		sp := &a.specs[i]
		if s, _, _, ok := a.windowAt(sp, t); ok {
			sp.nextOpen = s
			acc = min(acc, s)
		} else {
			sp.nextOpen = a.nextWindowStart(sp, t)
		}
	}
	acc = max(acc, a.d.floor)
	a.d.acc = acc
	a.d.per = a.sched.periodAt(acc)
	a.d.state = StateUnknown
	for r := range a.d.ctr {
		a.d.ctr[r].gap = true
	}
}

// maxCatchUp is the longest gap the engine fills with windows of unknown time. Past it (an
// agent stopped for weeks, a clock set years ahead) the windows open at the gap's start end
// there and new ones start at its end: a week is the buffer's default max_age, so older
// windows would not be delivered anyway, and a year of empty one-minute windows would only
// flood the buffer.
const maxCatchUp = 7 * nsDay

// restartAt ends a's open windows at the time accounted so far (shorter windows, reported),
// and starts its timeline again at t, keeping the counters' last readings (across a gap).
func (e *Engine) restartAt(a *asset, t int64) {
	e.events(a)
	if a.d.pending {
		e.resolve(a, false)
	}
	for _, w := range a.wins {
		if !w.ended {
			w.end, w.ended, w.a.idealEnd = max(a.d.acc, w.start), true, a.d.ideal
		}
	}
	e.release(a)
	for i := range a.specs {
		a.specs[i].cur, a.specs[i].nextOpen = nil, never
	}
	a.d.started, a.d.inStop, a.d.floor = false, false, t
	e.start(a, t)
}

// advance accounts a's time up to t, handling on the way every event before t: the
// schedule's period changes, evidence running out, a pending stop's deadline, windows ending
// and opening. Events at t itself wait for settle: counters read at t count parts made before
// t, which belong to the period and the windows that end at t.
func (e *Engine) advance(a *asset, t int64) {
	if !a.d.started {
		e.start(a, t)
	}
	if t-a.d.acc > maxCatchUp {
		e.restartAt(a, t)
	}
	for a.d.acc < t {
		e.events(a)
		next := min(t, a.d.per.until, a.nextEnd())
		if a.d.state != StateUnknown {
			next = min(next, a.d.horizon)
		}
		if a.d.pending {
			next = min(next, a.d.stopStart+a.microStop)
		}
		a.span(a.d.acc, next)
		a.d.acc = next
	}
}

// events handles what is due at a.d.acc (settles it), in an order that lets a stop be
// classified before the windows that hold it close. It does nothing when nothing is due.
func (e *Engine) events(a *asset) {
	at := a.d.acc
	for a.d.per.until <= at {
		wasBusy := a.d.per.kind == busy
		a.d.per = a.sched.periodAt(at)
		if wasBusy && a.d.per.kind != busy && a.d.inStop {
			e.endStop(a, at, false)
		}
	}
	if a.d.state != StateUnknown && a.d.horizon <= at {
		e.setState(a, StateUnknown, at)
	}
	if a.d.pending && a.d.stopStart+a.microStop <= at {
		e.resolve(a, false)
	}
	if a.nextEnd() <= at {
		e.closeDue(a, at)
	}
}

// span accounts [from, to), throughout which the period and the state are constant, to every
// open window.
func (a *asset) span(from, to int64) {
	d := to - from
	if d <= 0 {
		return
	}
	st := a.d.state
	if st == StateUnknown {
		for r := range a.d.ctr {
			a.d.ctr[r].gap = true
		}
		a.d.prevIncSet = false
	}
	kind := a.d.per.kind
	pend := a.d.pending && isStop(st)
	for _, w := range a.wins {
		if w.ended {
			continue
		}
		x := &w.a
		switch kind {
		case unscheduled:
			x.unscheduled += d
		case plannedDown:
			x.plannedDown += d
		case busy:
			x.pbt += d
			switch {
			case st == StateUnknown:
				x.unknown += d
			case pend:
				x.pend[st] += d
			default:
				x.st[st] += d
			}
		}
	}
}

// setState changes a's state at at, counting stops and failures in planned busy time:
//   - a stop begins when running gives way to idle, blocked or down, and ends when the state
//     leaves those three (or planned busy time ends);
//   - it is a micro-stop when it ends with running within MicroStop of its start: until that
//     is known, its time is pending;
//   - a failure is entering down from another known state (not within a micro-stop).
func (e *Engine) setState(a *asset, s State, at int64) {
	old := a.d.state
	if s == old {
		return
	}
	a.d.state = s
	inBusy := a.d.per.kind == busy
	if a.d.inStop && !isStop(s) {
		e.endStop(a, at, s == StateRunning)
	} else if !a.d.inStop && old == StateRunning && isStop(s) && inBusy {
		a.d.inStop, a.d.stopStart = true, at
		if a.microStop > 0 {
			a.d.pending = true
		}
		for _, w := range a.wins {
			if !w.ended {
				if a.d.pending {
					w.a.holdsStart = true
				} else {
					w.a.stops++
				}
			}
		}
	}
	if s == StateDown && a.d.lastKnown != StateDown && inBusy {
		for _, w := range a.wins {
			if !w.ended {
				if a.d.pending {
					w.a.pendFailures++
				} else {
					w.a.failures++
				}
			}
		}
	}
	if s != StateUnknown {
		a.d.lastKnown = s
	}
	if s != StateRunning {
		a.d.prevIncSet = false
	}
}

func (e *Engine) endStop(a *asset, at int64, running bool) {
	if a.d.pending {
		e.resolve(a, running && at-a.d.stopStart < a.microStop)
	}
	a.d.inStop = false
}

// resolve classifies the pending stop: its time moves to micro_stop_s, or to the buckets of
// its states.
func (e *Engine) resolve(a *asset, micro bool) {
	for _, w := range a.wins {
		x := &w.a
		if micro {
			for s := range x.pend {
				x.microStop += x.pend[s]
			}
			if x.holdsStart {
				x.microStops++
			}
		} else {
			for s := range x.pend {
				x.st[s] += x.pend[s]
			}
			if x.holdsStart {
				x.stops++
			}
			x.failures += x.pendFailures
		}
		x.pend, x.pendFailures, x.holdsStart = [numStates]int64{}, 0, false
	}
	a.d.pending = false
	e.release(a)
}

// counterSample takes one counter reading into the batch's deltas.
func (a *asset) counterSample(role int, s *drivers.Sample) {
	c := &a.d.ctr[role]
	v, ok := counterValue(s)
	if !ok {
		c.gap = true
		return
	}
	v &= a.mask
	if !c.valid {
		c.last, c.valid, c.gap = v, true, false
		return
	}
	var parts uint64
	b := &a.batch[role]
	switch {
	case v >= c.last:
		parts = v - c.last
	case a.mask != math.MaxUint64 && (v-c.last)&a.mask <= a.mask/4:
		// Within a quarter of the range past the top: the counter rolled over.
		parts = (v - c.last) & a.mask
		b.rollovers++
	default:
		// The counter went back: a PLC restart or an operator reset to 0. The parts since are
		// v; those between the last reading and the reset are lost.
		parts = v
		b.resets++
	}
	cat := catPBT
	switch {
	case c.gap:
		cat = catUnknown
	case a.d.per.kind != busy:
		cat = catOutside
	}
	c.last, c.gap = v, false
	b.parts += int64(parts)
	b.cat, b.has = cat, true
	a.counted = true
}

// counterValue reads a counter sample as an unsigned integer; negative values of signed tags
// keep their bits, so that a rollover through the sign stays a rollover.
func counterValue(s *drivers.Sample) (uint64, bool) {
	if s.Quality != drivers.QualityGood {
		return 0, false
	}
	switch v := s.Value; v.Kind() {
	case drivers.KindInt:
		return uint64(v.Int()), true
	case drivers.KindUint:
		return v.Uint(), true
	case drivers.KindFloat:
		f := v.Float()
		if f >= 0 && f < 1<<63 && f == math.Trunc(f) {
			return uint64(f), true
		}
	}
	return 0, false
}

// applyCounts adds the batch's counter deltas to the open windows, at a.d.acc.
func (a *asset) applyCounts() {
	var pbtParts int64
	for r := range a.batch {
		b := &a.batch[r]
		if !b.has && b.resets == 0 && b.rollovers == 0 {
			continue
		}
		for _, w := range a.wins {
			if !w.ended {
				w.a.cnt[r][b.cat] += b.parts
				w.a.resets += b.resets
				w.a.rollovers += b.rollovers
			}
		}
	}
	for _, r := range a.producing {
		if b := &a.batch[r]; b.has && b.cat == catPBT {
			pbtParts += b.parts
		}
	}
	if pbtParts == 0 {
		return
	}
	at := a.d.acc
	for _, w := range a.wins {
		if w.ended {
			continue
		}
		if a.d.ideal > 0 {
			w.a.idealTime += a.d.ideal * pbtParts
		} else {
			w.a.noIdeal += pbtParts
		}
		if a.d.state == StateRunning && a.d.prevIncSet {
			w.a.lastCycleNs, w.a.lastCycleParts = at-a.d.prevInc, pbtParts
		}
	}
	if a.d.state == StateRunning {
		a.d.prevInc, a.d.prevIncSet = at, true
	}
}

// stateSample takes a sample of state input i.
func (a *asset) stateSample(i int, s *drivers.Sample) {
	a.stateDirty = true
	in := &a.d.in[i]
	if s.Quality != drivers.QualityGood {
		in.good = false
		return
	}
	switch v := s.Value; v.Kind() {
	case drivers.KindBool:
		in.raw = 0
		if v.Bool() {
			in.raw = 1
		}
	case drivers.KindInt:
		in.raw = v.Int()
	case drivers.KindUint:
		if v.Uint() > math.MaxInt64 {
			in.good = false
			return
		}
		in.raw = int64(v.Uint())
	case drivers.KindFloat:
		f := v.Float()
		if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
			in.good = false
			return
		}
		in.raw = int64(f)
	default:
		in.good = false
		return
	}
	in.good, in.lastGood = true, a.d.acc
}

// evalState returns the state the inputs show at a.d.acc and when that evidence runs out.
func (a *asset) evalState() (State, int64) {
	if len(a.inputs) == 0 {
		return StateUnknown, never
	}
	at := a.d.acc
	h := never
	for i, inp := range a.inputs {
		v := &a.d.in[i]
		if !v.good || v.lastGood+inp.maxAge <= at {
			return StateUnknown, never
		}
		h = min(h, v.lastGood+inp.maxAge)
	}
	if a.enum != nil {
		s, ok := a.enum[a.d.in[0].raw]
		if !ok {
			return StateUnknown, never
		}
		return s, h
	}
	for _, p := range bitPrecedence {
		for i, inp := range a.inputs {
			if inp.state == p && a.d.in[i].raw != 0 {
				return p, h
			}
		}
	}
	return StateIdle, h
}

// idealSample takes a sample of the ideal cycle tag; a bad one keeps the last good value.
func (a *asset) idealSample(s *drivers.Sample) {
	if s.Quality != drivers.QualityGood {
		return
	}
	f, ok := s.Value.Float64()
	if !ok || s.Value.Kind() == drivers.KindBool {
		return
	}
	ns := (f*a.idealScale + a.idealOffset) * a.idealUnit
	if ns >= 1 && ns < float64(nsDay) {
		a.d.ideal = int64(math.Round(ns))
	}
}
