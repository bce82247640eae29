package kpi

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/drivers"
	"github.com/google/go-cmp/cmp"
)

// randomRun is a random but reproducible asset and input sequence: states that change at
// random, quality gaps, counters that roll over and reset, in Europe/Berlin across a DST change.
type randomRun struct {
	asset   Asset
	dev     drivers.Device
	batches []drivers.Batch
	jumps   map[int]time.Duration // a Jump before batch i
}

var berlin = mustZone("Europe/Berlin")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func newRandomRun(seed uint64, hours int) *randomRun { return newRandomRunResets(seed, hours, true) }

// newRandomRunResets is newRandomRun, with or without counter resets (parts made between the
// last reading and a reset are lost, by design).
func newRandomRunResets(seed uint64, hours int, resets bool) *randomRun {
	rng := rand.New(rand.NewPCG(seed, 7))
	r := &randomRun{jumps: map[int]time.Duration{}}
	r.dev = drivers.Device{Name: "dev", PollInterval: 5 * time.Second, Tags: []drivers.Tag{
		{Name: "state", Type: drivers.TypeUint16}, {Name: "total", Type: drivers.TypeUint16},
		{Name: "good", Type: drivers.TypeUint16}, {Name: "temp", Type: drivers.TypeFloat32},
		{Name: "ideal", Type: drivers.TypeFloat32},
	}}
	r.asset = Asset{
		Name:     "a",
		State:    StateSource{Tag: TagRef{"dev", "state"}, Map: defaultMap, MaxAge: time.Duration(1+rng.IntN(60)) * time.Second},
		Counters: Counters{Total: TagRef{"dev", "total"}, Good: TagRef{"dev", "good"}, Bits: 16},
		Schedule: Schedule{Location: berlin, Shifts: []Shift{
			{Name: "A", Start: 6 * time.Hour, End: 14 * time.Hour, Breaks: []Break{{10 * time.Hour, 10*time.Hour + 30*time.Minute}}},
			{Name: "B", Start: 14 * time.Hour, End: 22 * time.Hour, Days: []time.Weekday{1, 2, 3, 4, 5}},
			{Name: "C", Start: 22 * time.Hour, End: 6 * time.Hour, Breaks: []Break{{2 * time.Hour, 2*time.Hour + 15*time.Minute}}},
		}},
		MicroStop: time.Duration(rng.IntN(4)) * 10 * time.Second,
		Windows:   []Window{{Kind: Tumbling, Every: 15 * time.Minute}, {Kind: Tumbling, Every: time.Hour}, {Kind: ShiftWindow}, {Kind: DayWindow}},
	}
	if rng.IntN(2) == 0 {
		r.asset.IdealCycle = IdealCycle{Value: time.Duration(1+rng.IntN(5)) * time.Second}
	} else {
		r.asset.IdealCycle = IdealCycle{Tag: TagRef{"dev", "ideal"}, Unit: time.Millisecond}
	}
	// Start a little before the fall-back night of 2026, so days of 25 hours come up.
	t := time.Date(2026, 10, 24, 20, 0, 0, 0, berlin).Add(time.Duration(rng.IntN(3600)) * time.Second)
	end := t.Add(time.Duration(hours) * time.Hour)
	state := uint64(1)
	var total, good uint64 = uint64(rng.IntN(65536)), 0
	ideal := 2000.0
	for t.Before(end) {
		if rng.IntN(40) == 0 {
			state = uint64(1 + rng.IntN(7)) // 7 is not in the map
		}
		if rng.IntN(500) == 0 {
			ideal = float64(500 + rng.IntN(5000))
		}
		if state == 1 {
			n := uint64(rng.IntN(4))
			total += n
			if rng.IntN(10) > 0 {
				good += n
			}
		}
		if rng.IntN(3000) == 0 && resets {
			total, good = uint64(rng.IntN(3)), 0 // a reset
		}
		b := drivers.Batch{Device: "dev", ReadTime: t, Samples: []drivers.Sample{
			{Tag: 0, Value: drivers.UintValue(state)},
			{Tag: 1, Value: drivers.UintValue(total & 0xffff)},
			{Tag: 2, Value: drivers.UintValue(good & 0xffff)},
			{Tag: 3, Value: drivers.FloatValue(20)},
			{Tag: 4, Value: drivers.FloatValue(ideal)},
		}}
		switch q := rng.IntN(60); {
		case q == 0: // the whole device is unreachable
			for i := range b.Samples {
				b.Samples[i] = drivers.Sample{Tag: i, Quality: drivers.QualityBad, Reason: "timeout"}
			}
		case q == 1:
			b.Samples[0].Quality = drivers.QualityUncertain
		case q == 2:
			b.Samples = b.Samples[1:] // no state this cycle
		}
		if rng.IntN(4000) == 0 {
			r.jumps[len(r.batches)] = time.Duration(rng.IntN(600)+1) * time.Second
			t = t.Add(r.jumps[len(r.batches)])
			b.ReadTime = t
		}
		r.batches = append(r.batches, b)
		// Mostly regular polls; sometimes a long silence (evidence runs out).
		step := 5 * time.Second
		if rng.IntN(200) == 0 {
			step = time.Duration(rng.IntN(1200)) * time.Second
		}
		t = t.Add(step)
	}
	return r
}

// feed runs batches [from, to) through e, calling Next after every batch (or only every
// nextEvery batches), and returns the records.
func (r *randomRun) feed(t testing.TB, e *Engine, from, to, nextEvery int) []record.Record {
	t.Helper()
	var out []record.Record
	for i := from; i < to; i++ {
		b := &r.batches[i]
		if j, ok := r.jumps[i]; ok {
			e.Jump(b.ReadTime, j)
		}
		e.Observe(b)
		if (i+1)%nextEvery == 0 || i == to-1 {
			for {
				var rec record.Record
				if !e.Next(b.ReadTime, &rec) {
					break
				}
				out = append(out, rec)
			}
		}
	}
	return out
}

func (r *randomRun) engine(t testing.TB) *Engine {
	t.Helper()
	e, err := New([]Asset{r.asset}, []drivers.Device{r.dev}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestProperty_Buckets: for random state sequences with quality gaps, the time buckets of every
// window add up to its length, PBT is known plus unknown, produced is the sum of its
// categories, and availability, coverage, performance, quality and OEE stay in [0, 1] (the
// capping rule). Windows of one kind tile the time, and the hours of a day add up to the day.
func TestProperty_Buckets(t *testing.T) {
	seeds := 16
	if testing.Short() {
		seeds = 4
	}
	for seed := range uint64(seeds) {
		r := newRandomRun(seed, 54)
		recs := r.feed(t, r.engine(t), 0, len(r.batches), 1)
		if len(recs) < 100 {
			t.Fatalf("seed %d: only %d records", seed, len(recs))
		}
		byKind := map[string][]*record.Record{}
		for i := range recs {
			checkInvariants(t, &recs[i])
			k := field(&recs[i], FieldWindow).Str
			byKind[k] = append(byKind[k], &recs[i])
		}
		for kind, rs := range byKind {
			for i := 1; i < len(rs); i++ {
				start, _ := time.Parse(time.RFC3339, field(rs[i], FieldWindowStart).Str)
				if kind != "shift" && !start.Equal(rs[i-1].Time) {
					t.Errorf("seed %d: %s windows do not tile: %v then %v", seed, kind, rs[i-1].Time, start)
				}
				if start.Before(rs[i-1].Time) {
					t.Errorf("seed %d: %s windows overlap", seed, kind)
				}
			}
		}
		// Additive fields of the hours of a day add up to the day.
		additive := []string{FieldWindowS, FieldUnscheduledS, FieldPlannedDownS, FieldPBTS, FieldUnknownS, FieldRunS,
			FieldMicroStopS, FieldSetupS, FieldDownS, FieldIdleS, FieldBlockedS, FieldMaintenanceS, FieldProduced,
			FieldGood, FieldProducedPBT, FieldProducedUnknown, FieldProducedOutsidePBT, FieldIdealTimeS,
			FieldMicroStops, FieldStops, FieldFailures}
		for _, day := range byKind["day"] {
			dayStart, _ := time.Parse(time.RFC3339, field(day, FieldWindowStart).Str)
			if first, _ := time.Parse(time.RFC3339, field(byKind["1h"][0], FieldWindowStart).Str); first.After(dayStart) {
				continue // the agent started during this day: it has no hours before
			}
			for _, small := range []string{"1h", "15m"} {
				sums := map[string]float64{}
				for _, h := range byKind[small] {
					hs, _ := time.Parse(time.RFC3339, field(h, FieldWindowStart).Str)
					if !hs.Before(dayStart) && !h.Time.After(day.Time) {
						for _, name := range additive {
							v, _ := numeric(field(h, name))
							sums[name] += v
						}
					}
				}
				for _, name := range additive {
					v, _ := numeric(field(day, name))
					if math.Abs(sums[name]-v) > 1e-6*math.Max(1, v) {
						t.Errorf("seed %d: day %v: %s of its %s windows add up to %v, the day has %v", seed, dayStart, name, small, sums[name], v)
					}
				}
			}
		}
	}
}

// TestProperty_NextCadence: how often Next is called changes nothing.
func TestProperty_NextCadence(t *testing.T) {
	for seed := range uint64(3) {
		r := newRandomRun(seed+100, 24)
		a := r.feed(t, r.engine(t), 0, len(r.batches), 1)
		b := r.feed(t, r.engine(t), 0, len(r.batches), 97)
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("seed %d: Next after every batch vs every 97th (-every +97th):\n%s", seed, diff)
		}
	}
}

// TestSnapshot_RoundTrip: a snapshot restored at the time it was taken continues exactly: the
// records are those of an uninterrupted run.
func TestSnapshot_RoundTrip(t *testing.T) {
	for seed := range uint64(5) {
		r := newRandomRun(seed+200, 24)
		want := r.feed(t, r.engine(t), 0, len(r.batches), 1)
		rng := rand.New(rand.NewPCG(seed, 9))
		var got []record.Record
		e := r.engine(t)
		from := 0
		for k := 0; k < 4; k++ {
			cut := from + rng.IntN((len(r.batches)-from)/2+1)
			got = append(got, r.feed(t, e, from, cut, 1)...)
			snap := e.Snapshot(nil)
			e = r.engine(t)
			now := r.batches[max(cut-1, 0)].ReadTime
			if cut == 0 {
				now = time.Time{}
			}
			if err := e.Restore(snap, now); err != nil {
				t.Fatalf("seed %d: Restore: %v", seed, err)
			}
			if again := e.Snapshot(nil); string(again) != string(snap) {
				t.Fatalf("seed %d: Snapshot after Restore differs from the snapshot restored", seed)
			}
			from = cut
		}
		got = append(got, r.feed(t, e, from, len(r.batches), 1)...)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("seed %d: restored run differs (-uninterrupted +restored):\n%s", seed, diff)
		}
	}
}

// TestSnapshot_RestartGap: restored after a gap, the windows before the gap and those that
// start after the restart are those of an uninterrupted run; the gap is unknown time, and the
// parts made in it are counted (as produced_unknown), so the totals are exact.
func TestSnapshot_RestartGap(t *testing.T) {
	for seed := range uint64(8) {
		r := newRandomRunResets(seed+300, 30, false)
		for i := range r.batches { // no jumps or silences here: a gap of our own
			delete(r.jumps, i)
		}
		t0 := r.batches[0].ReadTime
		for i := range r.batches {
			r.batches[i].ReadTime = t0.Add(time.Duration(i) * 5 * time.Second)
		}
		want := r.feed(t, r.engine(t), 0, len(r.batches), 1)
		rng := rand.New(rand.NewPCG(seed, 11))
		cut := len(r.batches)/4 + rng.IntN(len(r.batches)/4)
		resume := cut + 1 + rng.IntN(2000)
		e := r.engine(t)
		got := r.feed(t, e, 0, cut, 1)
		snap := e.Snapshot(nil)
		e = r.engine(t)
		if err := e.Restore(snap, r.batches[resume].ReadTime); err != nil {
			t.Fatal(err)
		}
		got = append(got, r.feed(t, e, resume, len(r.batches), 1)...)
		gapStart, restart := r.batches[cut-1].ReadTime, r.batches[resume].ReadTime
		index := func(rs []record.Record) map[string]*record.Record {
			m := map[string]*record.Record{}
			for i := range rs {
				m[field(&rs[i], FieldWindow).Str+" "+field(&rs[i], FieldWindowStart).Str] = &rs[i]
			}
			return m
		}
		w, g := index(want), index(got)
		var sumWant, sumGot float64
		for key, wr := range w {
			gr, ok := g[key]
			if !ok {
				t.Errorf("seed %d: window %s missing after the restart", seed, key)
				continue
			}
			checkInvariants(t, gr)
			start, _ := time.Parse(time.RFC3339, field(wr, FieldWindowStart).Str)
			if !wr.Time.After(gapStart) || start.After(restart) {
				if diff := cmp.Diff(wr, gr); diff != "" {
					t.Errorf("seed %d: window %s away from the gap differs:\n%s", seed, key, diff)
				}
			} else if u, uw := field(gr, FieldUnknownS).FloatValue(), field(wr, FieldUnknownS).FloatValue(); u < uw {
				t.Errorf("seed %d: window %s across the gap has less unknown time (%v) than without it (%v)", seed, key, u, uw)
			}
			if field(wr, FieldWindow).Str == "1h" {
				a, _ := numeric(field(wr, FieldProduced))
				b, _ := numeric(field(gr, FieldProduced))
				sumWant, sumGot = sumWant+a, sumGot+b
			}
		}
		if len(g) != len(w) {
			t.Errorf("seed %d: %d windows with the restart, %d without", seed, len(g), len(w))
		}
		if sumWant != sumGot {
			t.Errorf("seed %d: %v parts over the hours with the restart, %v without", seed, sumGot, sumWant)
		}
	}
}

// TestEngine_Current is pure: asking for the live record changes nothing that follows.
func TestEngine_Current(t *testing.T) {
	r := newRandomRun(400, 20)
	want := r.feed(t, r.engine(t), 0, len(r.batches), 1)
	e := r.engine(t)
	var got []record.Record
	lives := 0
	for i := 0; i < len(r.batches); i += 500 {
		got = append(got, r.feed(t, e, i, min(i+500, len(r.batches)), 1)...)
		var live record.Record
		if e.Current("a", r.batches[min(i+499, len(r.batches)-1)].ReadTime, &live) {
			lives++
			checkInvariants(t, &live)
			if !field(&live, FieldPartial).BoolValue() {
				t.Error("live record without partial")
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Current changed the records (-without +with):\n%s", diff)
	}
	if lives == 0 {
		t.Error("Current never returned a record")
	}
	if e.Current("nope", time.Now(), &record.Record{}) {
		t.Error("Current of an unknown asset: got true")
	}
}

func TestNew_Problems(t *testing.T) {
	dev := drivers.Device{Name: "d", Tags: []drivers.Tag{{Name: "s"}, {Name: "c"}}}
	good := func() Asset {
		return Asset{Name: "a", State: StateSource{Tag: TagRef{"d", "s"}, Map: defaultMap},
			Counters: Counters{Total: TagRef{"d", "c"}, Good: TagRef{"d", "c"}}, Windows: []Window{{Kind: DayWindow}}}
	}
	if _, err := New([]Asset{good()}, []drivers.Device{dev}, Options{}); err != nil {
		t.Fatalf("good asset: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Asset)
		path   string
	}{
		{"unknown device", func(a *Asset) { a.State.Tag.Device = "x" }, "state.tag"},
		{"unknown tag", func(a *Asset) { a.Counters.Good.Tag = "x" }, "counters.good"},
		{"one counter", func(a *Asset) { a.Counters.Good = TagRef{} }, "counters"},
		{"bits", func(a *Asset) { a.Counters.Bits = 8 }, "counters.bits"},
		{"no windows", func(a *Asset) { a.Windows = nil }, "windows"},
		{"shift windows without shifts", func(a *Asset) { a.Windows = []Window{{Kind: ShiftWindow}} }, "windows[0]"},
		{"window length", func(a *Asset) { a.Windows = []Window{{Kind: Tumbling, Every: 7 * time.Minute}} }, "windows[0]"},
		{"overlapping shifts", func(a *Asset) {
			a.Schedule.Shifts = []Shift{{Name: "A", Start: 6 * time.Hour, End: 14 * time.Hour}, {Name: "B", Start: 13 * time.Hour, End: 22 * time.Hour}}
		}, "schedule.shifts[1]"},
		{"break outside", func(a *Asset) {
			a.Schedule.Shifts = []Shift{{Name: "A", Start: 6 * time.Hour, End: 14 * time.Hour, Breaks: []Break{{15 * time.Hour, 16 * time.Hour}}}}
		}, "schedule.shifts[0].breaks[0]"},
		{"bad map", func(a *Asset) { a.State.Map = map[int64]State{1: StateUnknown} }, "state.map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := good()
			tt.change(&a)
			_, err := New([]Asset{a}, []drivers.Device{dev}, Options{})
			if err == nil || !containsPath(err, tt.path) {
				t.Errorf("got %v, want a problem at %s", err, tt.path)
			}
		})
	}
	if _, err := New([]Asset{good(), good()}, []drivers.Device{dev}, Options{}); err == nil {
		t.Error("two assets of one name: got no error")
	}
}

func containsPath(err error, path string) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if containsPath(e, path) {
				return true
			}
		}
		return false
	}
	fe, ok := err.(*FieldError)
	return ok && fe.Path == path
}

func TestWindow_String(t *testing.T) {
	for s, want := range map[string]string{"15m": "15m", "1h": "1h", "1h30m": "1h30m", "90m": "1h30m", "30s": "30s", "shift": "shift", "day": "day", "24h": "24h"} {
		w, err := ParseWindow(s)
		if err != nil || w.String() != want {
			t.Errorf("ParseWindow(%q) = %v, %v; want %s", s, w, err, want)
		}
	}
	for _, s := range []string{"7m", "0s", "1500ms", "25h", "week", ""} {
		if _, err := ParseWindow(s); err == nil {
			t.Errorf("ParseWindow(%q): got no error", s)
		}
	}
}

func TestWallInstant(t *testing.T) {
	f := func(date Date, clock string, loc *time.Location, want string) {
		t.Helper()
		tod, err := ParseClock(clock)
		if err != nil {
			t.Fatal(err)
		}
		got := time.Unix(0, wallInstant(date, int64(tod), loc)).UTC().Format(time.RFC3339)
		if got != want {
			t.Errorf("wallInstant(%v %s %v) = %s, want %s", date, clock, loc, got, want)
		}
	}
	f(Date{2026, 3, 29}, "01:30", berlin, "2026-03-29T00:30:00Z")
	f(Date{2026, 3, 29}, "02:30", berlin, "2026-03-29T01:00:00Z") // skipped: the instant the clock skips to
	f(Date{2026, 3, 29}, "03:00", berlin, "2026-03-29T01:00:00Z")
	f(Date{2026, 10, 25}, "02:30", berlin, "2026-10-25T00:30:00Z") // twice: the first
	f(Date{2026, 10, 25}, "03:00", berlin, "2026-10-25T02:00:00Z")
	f(Date{2026, 10, 25}, "24:00", berlin, "2026-10-25T23:00:00Z")
	f(Date{2026, 3, 2}, "09:00", mustZone("Asia/Kolkata"), "2026-03-02T03:30:00Z")
	f(Date{2026, 3, 2}, "00:00", time.UTC, "2026-03-02T00:00:00Z")
	// Zones whose midnight is skipped (America/Santiago went to summer time at 00:00).
	f(Date{2025, 9, 7}, "00:00", mustZone("America/Santiago"), "2025-09-07T04:00:00Z")
}

func TestTumble(t *testing.T) {
	at := func(s string) int64 {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UnixNano()
	}
	str := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) }
	for _, tt := range []struct {
		t, every      string
		before, after string
	}{
		{"2026-03-29T00:30:00Z", "1h", "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z"}, // 01:30 CET .. 03:00 CEST
		{"2026-03-29T00:50:00Z", "15m", "2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z"},
		{"2026-03-29T01:00:00Z", "15m", "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z"},
		{"2026-10-25T00:30:00Z", "1h", "2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z"}, // first 02:00 hour
		{"2026-10-25T01:30:00Z", "1h", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"}, // second
		{"2026-10-25T01:00:00Z", "24h", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"},
	} {
		d, _ := time.ParseDuration(tt.every)
		if got := str(tumbleAtOrBefore(at(tt.t), int64(d), berlin)); got != tt.before {
			t.Errorf("tumbleAtOrBefore(%s, %s) = %s, want %s", tt.t, tt.every, got, tt.before)
		}
		if got := str(tumbleAfter(at(tt.t), int64(d), berlin)); got != tt.after {
			t.Errorf("tumbleAfter(%s, %s) = %s, want %s", tt.t, tt.every, got, tt.after)
		}
	}
}

func TestParseClock(t *testing.T) {
	for s, want := range map[string]time.Duration{"06:00": 6 * time.Hour, "23:59:30": 23*time.Hour + 59*time.Minute + 30*time.Second, "24:00": 24 * time.Hour, "00:00": 0} {
		if got, err := ParseClock(s); err != nil || got != want {
			t.Errorf("ParseClock(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"6:00", "24:01", "12:60", "x", "12:00:00:00", "-1:00", ""} {
		if _, err := ParseClock(s); err == nil {
			t.Errorf("ParseClock(%q): got no error", s)
		}
	}
	_ = strconv.Itoa
}
