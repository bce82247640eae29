package kpi

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"

	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/drivers"
)

// Options are the engine's settings. The zero value works.
type Options struct {
	// Location is the zone of assets whose schedule names none (the gateway's timezone); nil
	// means UTC.
	Location *time.Location
	// JumpThreshold is how far the wall clock may move from the monotonic clock between two
	// time inputs before the engine takes it for a clock jump (plus 0.1 % of the interval, as
	// the buffer does). Zero means 2s.
	JumpThreshold time.Duration
}

// Engine computes the KPIs of a set of assets from the samples of their devices.
//
// It is pure: it does no I/O, starts no goroutine and never reads the clock; time comes in
// with the samples (Batch.ReadTime) and with Next's now. It is not safe for concurrent use:
// the agent serializes Observe, Next, Current, Jump, Snapshot and Restore (one mutex), which
// costs little because the engine allocates nothing and does little per sample.
type Engine struct {
	assets  []*asset
	byName  map[string]*asset
	devices map[string]*devBind
	loc     *time.Location

	queue []closed // closed windows not yet returned by Next, oldest first
	qhead int
	free  []*window // windows to reuse

	threshold int64
	last      time.Time // the last time input with a monotonic reading
	lastSet   bool
}

// closed is a window that has ended and holds no pending stop: its record is ready.
type closed struct {
	asset string
	spec  string
	win   *window
}

// devBind is what the tags of one device are to the assets.
type devBind struct {
	binds  [][]bind // by tag index
	assets []int    // the assets bound to the device, each once
	tags   []drivers.Tag
}

type bindKind uint8

const (
	bindState bindKind = iota + 1
	bindCounter
	bindIdeal
)

type bind struct {
	asset int
	kind  bindKind
	index int // the state input, or the counter role
}

// asset is the engine's state of one Asset.
type asset struct {
	name                    string
	sched                   schedule
	microStop               int64
	mask                    uint64 // counter rollover mask: 2^bits - 1
	roles                   [numRoles]bool
	producing               []int // the roles whose deltas are the produced parts
	enum                    map[int64]State
	inputs                  []stateInput
	idealTag                bool
	idealUnit               float64 // ns per unit of the ideal cycle tag's scaled value
	idealConst              int64
	idealScale, idealOffset float64
	fingerprint             uint64

	specs []spec
	wins  []*window // open windows and ended ones held by a pending stop
	d     dyn

	// Scratch of one Observe call.
	batch      [numRoles]delta
	counted    bool
	stateDirty bool
}

type stateInput struct {
	state  State // the bit's state; StateUnknown for the enum input
	maxAge int64
}

type delta struct {
	parts int64
	cat   int
	has   bool
	// resets and rollovers seen in this batch
	resets, rollovers int64
}

// dyn is an asset's evolving state, a plain value so that Current can run the accounting on a
// copy.
type dyn struct {
	started bool
	acc     int64 // time accounted up to
	floor   int64 // no window starts before it (after a snapshot of another configuration)
	per     period

	state     State // StateUnknown when there is no trustworthy evidence
	horizon   int64 // when the evidence of state runs out
	lastKnown State // the last state other than unknown, for failure transitions

	inStop    bool  // a stop is going on: running gave way to idle, blocked or down in PBT
	pending   bool  // the stop is not yet classified as micro-stop or stop
	stopStart int64 //

	ctr   [numRoles]counter
	ideal int64 // ns; 0 unknown

	prevInc    int64 // when parts were last counted while running
	prevIncSet bool

	in [len(bitPrecedence)]inputVal
}

type counter struct {
	last  uint64
	valid bool // last holds a reading
	gap   bool // evidence was missing since last
}

type inputVal struct {
	raw      int64 // the enum value, or 1/0 for a bit
	good     bool
	lastGood int64
}

// New checks the assets against the devices (which the agent also gives its drivers) and
// returns an engine. Problems are *FieldError, joined.
func New(assets []Asset, devices []drivers.Device, opts Options) (*Engine, error) {
	e := &Engine{
		byName: map[string]*asset{}, devices: map[string]*devBind{}, loc: opts.Location,
		threshold: int64(opts.JumpThreshold),
	}
	if e.loc == nil {
		e.loc = time.UTC
	}
	if e.threshold <= 0 {
		e.threshold = int64(2 * time.Second)
	}
	devs := map[string]*drivers.Device{}
	for i := range devices {
		devs[devices[i].Name] = &devices[i]
	}
	var errs []error
	for i := range assets {
		a, problems := e.compile(i, &assets[i], devs)
		for _, p := range problems {
			errs = append(errs, &FieldError{Asset: assets[i].Name, Path: p.path, Err: p.err})
		}
		if a == nil {
			continue
		}
		if _, dup := e.byName[a.name]; dup {
			errs = append(errs, &FieldError{Asset: a.name, Path: "name", Err: errors.New("is the name of another asset")})
			continue
		}
		e.byName[a.name] = a
		e.assets = append(e.assets, a)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return e, nil
}

// compile checks one asset and binds its tags.
func (e *Engine) compile(idx int, as *Asset, devs map[string]*drivers.Device) (*asset, []fieldErr) {
	var errs []fieldErr
	bad := func(path string, format string, args ...any) {
		errs = append(errs, fieldErr{path, fmt.Errorf(format, args...)})
	}
	if as.Name == "" {
		bad("name", "must not be empty")
	}
	a := &asset{name: as.Name, microStop: int64(as.MicroStop)}
	if as.MicroStop < 0 {
		bad("micro_stop", "must not be negative")
	}
	type pending struct {
		ref  TagRef
		kind bindKind
		idx  int
		path string
	}
	var binds []pending
	st := as.State
	switch {
	case !st.Tag.IsZero() && len(st.Bits) > 0:
		bad("state", "an enum tag and bits: give one")
	case !st.Tag.IsZero():
		if len(st.Map) == 0 {
			bad("state.map", "want at least one value")
		}
		for v, s := range st.Map {
			if s <= StateUnknown || s >= numStates {
				bad("state.map", "value %d: want one of %v, got %v", v, StateNames(), s)
			}
		}
		a.enum = st.Map
		a.inputs = []stateInput{{state: StateUnknown, maxAge: int64(st.MaxAge)}}
		binds = append(binds, pending{st.Tag, bindState, 0, "state.tag"})
	case len(st.Bits) > 0:
		if len(st.Bits) > len(bitPrecedence) {
			bad("state", "want at most one bit per state")
		}
		seen := map[State]bool{}
		for i, b := range st.Bits {
			if b.State <= StateUnknown || b.State >= numStates || seen[b.State] {
				bad(fmt.Sprintf("state.bits[%d]", i), "want one bit per state, got %v twice or unknown", b.State)
			}
			seen[b.State] = true
			if i < len(bitPrecedence) {
				a.inputs = append(a.inputs, stateInput{state: b.State, maxAge: int64(st.MaxAge)})
				binds = append(binds, pending{b.Tag, bindState, i, fmt.Sprintf("state.%s", b.State)})
			}
		}
	}
	c := as.Counters
	refs := [numRoles]TagRef{c.Total, c.Good, c.Reject}
	n := 0
	for r, ref := range refs {
		if !ref.IsZero() {
			a.roles[r] = true
			n++
			binds = append(binds, pending{ref, bindCounter, r, "counters." + [...]string{"total", "good", "reject"}[r]})
		}
	}
	if n == 1 {
		bad("counters", "want two of total, good and reject (the third follows), got one")
	}
	if a.roles[roleTotal] {
		a.producing = []int{roleTotal}
	} else {
		a.producing = []int{roleGood, roleReject}
	}
	switch c.Bits {
	case 0, 64:
		a.mask = math.MaxUint64
	case 16, 32:
		a.mask = 1<<c.Bits - 1
	default:
		bad("counters.bits", "want 16, 32 or 64, got %d", c.Bits)
		a.mask = math.MaxUint64
	}
	ic := as.IdealCycle
	switch {
	case !ic.Tag.IsZero() && ic.Value != 0:
		bad("ideal_cycle", "a constant and a tag: give one")
	case !ic.Tag.IsZero():
		a.idealTag = true
		a.idealUnit = float64(ic.Unit)
		if ic.Unit == 0 {
			a.idealUnit = float64(time.Second)
		} else if ic.Unit < 0 {
			bad("ideal_cycle.unit", "must be positive")
		}
		binds = append(binds, pending{ic.Tag, bindIdeal, 0, "ideal_cycle.tag"})
	case ic.Value < 0:
		bad("ideal_cycle", "must not be negative")
	default:
		a.idealConst = int64(ic.Value)
	}
	var serrs []fieldErr
	a.sched, serrs = compileSchedule(as.Schedule, e.loc)
	errs = append(errs, serrs...)
	if len(as.Windows) == 0 {
		bad("windows", "want at least one window")
	}
	seenWin := map[string]bool{}
	for i, w := range as.Windows {
		if err := w.check(); err != nil {
			errs = append(errs, fieldErr{fmt.Sprintf("windows[%d]", i), err})
			continue
		}
		if w.Kind == ShiftWindow && len(as.Schedule.Shifts) == 0 {
			bad(fmt.Sprintf("windows[%d]", i), "shift windows need shifts in the schedule")
			continue
		}
		if seenWin[w.String()] {
			bad(fmt.Sprintf("windows[%d]", i), "%s is listed twice", w)
			continue
		}
		seenWin[w.String()] = true
		a.specs = append(a.specs, spec{w: w, name: w.String(), nextOpen: never})
	}

	// Bind the tags.
	var bound []struct {
		dev  *devBind
		tag  int
		b    bind
		path string
	}
	for _, p := range binds {
		dv := devs[p.ref.Device]
		if dv == nil {
			bad(p.path, "no device %q", p.ref.Device)
			continue
		}
		ti := slices.IndexFunc(dv.Tags, func(t drivers.Tag) bool { return t.Name == p.ref.Tag })
		if ti < 0 {
			bad(p.path, "device %q has no tag %q", p.ref.Device, p.ref.Tag)
			continue
		}
		db := e.devices[dv.Name]
		if db == nil {
			db = &devBind{binds: make([][]bind, len(dv.Tags)), tags: dv.Tags}
			e.devices[dv.Name] = db
		}
		tag := dv.Tags[ti]
		if p.kind == bindState && a.inputs[p.idx].maxAge == 0 {
			poll := dv.PollInterval
			if tag.PollInterval > 0 {
				poll = tag.PollInterval
			}
			if poll <= 0 {
				poll = time.Second
			}
			timeout := dv.Timeout
			if timeout <= 0 {
				timeout = 2 * time.Second
			}
			a.inputs[p.idx].maxAge = int64(3*poll + timeout*time.Duration(1+dv.Modbus.Retries))
		}
		if p.kind == bindIdeal {
			a.idealScale, a.idealOffset = tag.Scale, tag.Offset
			if a.idealScale == 0 {
				a.idealScale = 1
			}
		}
		bound = append(bound, struct {
			dev  *devBind
			tag  int
			b    bind
			path string
		}{db, ti, bind{asset: len(e.assets), kind: p.kind, index: p.idx}, p.path})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, x := range bound {
		x.dev.binds[x.tag] = append(x.dev.binds[x.tag], x.b)
		if !slices.Contains(x.dev.assets, x.b.asset) {
			x.dev.assets = append(x.dev.assets, x.b.asset)
		}
	}
	a.d.ideal = a.idealConst
	a.fingerprint = fingerprint(as)
	return a, nil
}

// fingerprint identifies the parts of an asset's configuration that a snapshot's state depends
// on: a snapshot of an asset configured otherwise is not continued.
func fingerprint(as *Asset) uint64 {
	h := fnv.New64a()
	keys := make([]int64, 0, len(as.State.Map))
	for k := range as.State.Map {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintf(h, "%v|%v|", as.State.Tag, as.State.Bits)
	for _, k := range keys {
		fmt.Fprintf(h, "%d=%d,", k, as.State.Map[k])
	}
	loc := ""
	if as.Schedule.Location != nil {
		loc = as.Schedule.Location.String()
	}
	fmt.Fprintf(h, "|%v|%v|%d|%v|%v|%s|%v|%v", as.Counters, as.IdealCycle.Tag, as.IdealCycle.Unit, as.MicroStop,
		as.Windows, loc, as.Schedule.Shifts, as.Schedule.NonWorking)
	return h.Sum64()
}

// Observe takes the samples of one batch of a device. Samples of bad or uncertain quality are
// no evidence: the asset's time is unknown from the batch on (state) and the parts counted
// across them are produced_unknown (counters). Within a batch, counters are taken first, with
// the state and ideal cycle known before the batch, then the state and the ideal cycle.
//
// The batch's ReadTime is the time of every sample in it; a batch older than what the engine
// has accounted is taken as of that time. Observe allocates nothing once the engine runs.
func (e *Engine) Observe(b *drivers.Batch) {
	if b.ReadTime.IsZero() {
		return
	}
	db := e.devices[b.Device]
	e.clock(b.ReadTime)
	if db == nil {
		return
	}
	t := b.ReadTime.UnixNano()
	for _, ai := range db.assets {
		a := e.assets[ai]
		e.advance(a, t)
		a.batch = [numRoles]delta{}
		a.counted, a.stateDirty = false, false
	}
	for i := range b.Samples {
		s := &b.Samples[i]
		if uint(s.Tag) >= uint(len(db.binds)) {
			continue
		}
		for _, bd := range db.binds[s.Tag] {
			if bd.kind == bindCounter {
				e.assets[bd.asset].counterSample(bd.index, s)
			}
		}
	}
	for _, ai := range db.assets {
		a := e.assets[ai]
		if a.counted {
			a.applyCounts()
		}
		e.events(a)
	}
	for i := range b.Samples {
		s := &b.Samples[i]
		if uint(s.Tag) >= uint(len(db.binds)) {
			continue
		}
		for _, bd := range db.binds[s.Tag] {
			a := e.assets[bd.asset]
			switch bd.kind {
			case bindState:
				a.stateSample(bd.index, s)
			case bindIdeal:
				a.idealSample(s)
			}
		}
	}
	for _, ai := range db.assets {
		a := e.assets[ai]
		if a.stateDirty {
			s, h := a.evalState()
			e.setState(a, s, a.d.acc)
			a.d.horizon = h
		}
	}
}

// Next accounts time up to now and returns, in dst, the record of the oldest window that has
// closed and not been returned yet; false when there is none (time is then accounted up to
// now). A window closes once a time input after its end arrives: a window that ends at now
// closes on a later call, because a batch read at now still counts parts into it. Next stops
// at each window boundary, so the caller can commit each record with the snapshot taken right
// after it:
//
//	for eng.Next(now, &rec) {
//		buf.Append(encode(rec), buffer.State{Key: "kpi", Value: eng.Snapshot(nil)})
//	}
//
// A window is returned once its end has passed and, when a stop began in it less than
// Asset.MicroStop before its end, once that stop is classified (at most MicroStop later).
// dst.Fields is reused; the strings in dst stay valid. Next allocates nothing when no window
// closes, and a little (the window_start text) when one does.
func (e *Engine) Next(now time.Time, dst *record.Record) bool {
	if now.IsZero() {
		return false
	}
	e.clock(now)
	t := now.UnixNano()
	for {
		if e.qhead < len(e.queue) {
			c := e.queue[e.qhead]
			e.queue[e.qhead] = closed{}
			e.qhead++
			if e.qhead == len(e.queue) {
				e.queue, e.qhead = e.queue[:0], 0
			}
			build(dst, c.asset, c.spec, c.win, false)
			e.free = append(e.free, c.win)
			return true
		}
		// Settle what is due before now (windows that end at now close on a later call: a
		// batch read at now still counts into them), then step to the earliest window end.
		step := t
		for _, a := range e.assets {
			if a.d.started && t-a.d.acc > maxCatchUp {
				e.restartAt(a, t)
			}
			if a.d.started && a.d.acc < t {
				e.events(a)
				step = min(step, a.nextEnd())
			}
		}
		for _, a := range e.assets {
			if !a.d.started || a.d.acc < step {
				e.advance(a, step)
			}
		}
		if e.qhead == len(e.queue) && step >= t {
			return false
		}
	}
}

// Current returns, in dst, the KPIs so far of the asset's shift in progress (if it has shift
// windows and a shift is in progress at now), or else of its day (if it has day windows): the
// live "current shift so far" record, with partial true and Time now. It changes nothing in
// the engine: a stop not yet classified shows as a stop. false when the asset is unknown, has
// neither window kind, no window is open, or the engine has seen no time yet.
func (e *Engine) Current(asset string, now time.Time, dst *record.Record) bool {
	a := e.byName[asset]
	if a == nil || !a.d.started {
		return false
	}
	var w *window
	for _, k := range []WindowKind{ShiftWindow, DayWindow} {
		for i := range a.specs {
			if a.specs[i].w.Kind == k && a.specs[i].cur != nil && w == nil {
				w = a.specs[i].cur
			}
		}
	}
	if w == nil {
		return false
	}
	t := min(now.UnixNano(), w.end)
	sim := *a
	win := *w
	sim.wins = []*window{&win}
	sim.specs = nil
	e.advance(&sim, t)
	for s := range win.a.pend {
		win.a.st[s] += win.a.pend[s]
	}
	win.a.idealEnd = sim.d.ideal
	end := win.end
	win.end = max(t, win.start)
	build(dst, a.name, a.specs[w.spec].name, &win, true)
	win.end = end
	return true
}

// Assets returns the names of the assets, in the order New was given them.
func (e *Engine) Assets() []string {
	out := make([]string, len(e.assets))
	for i, a := range e.assets {
		out[i] = a.name
	}
	return out
}

// Jump tells the engine that the wall clock stepped by jump at at (the wall time after the
// step). A step forward makes the time it skipped unknown; either way the parts counted across
// it are produced_unknown and the state needs a new sample.
//
// Observe and Next detect a jump themselves when the times they are given carry monotonic
// clock readings (time.Now() of this process, not stripped by Round, UTC or In); Jump is for
// times that do not. Do not report the same jump both ways.
func (e *Engine) Jump(at time.Time, jump time.Duration) {
	t := at.UnixNano()
	for _, a := range e.assets {
		if !a.d.started {
			continue
		}
		if jump > 0 {
			if from := t - int64(jump); from > a.d.acc {
				e.advance(a, from)
			}
		}
		e.forget(a)
	}
}

// forget drops the evidence of a's state and counters: what follows is unknown until new
// samples come.
func (e *Engine) forget(a *asset) {
	e.events(a)
	for i := range a.d.in {
		a.d.in[i].good = false
	}
	for r := range a.d.ctr {
		a.d.ctr[r].gap = true
	}
	a.d.prevIncSet = false
	e.setState(a, StateUnknown, a.d.acc)
}

// clock detects a jump of the wall clock between two time inputs that carry monotonic
// readings.
func (e *Engine) clock(t time.Time) {
	if t == t.Round(0) { // no monotonic reading
		return
	}
	if e.lastSet {
		mono := int64(t.Sub(e.last))
		diff := (t.UnixNano() - e.last.UnixNano()) - mono
		limit := e.threshold + abs(mono)/1000
		if diff > limit || diff < -limit {
			e.last = t
			e.Jump(t, time.Duration(diff))
			return
		}
	}
	e.last, e.lastSet = t, true
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
