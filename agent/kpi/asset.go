package kpi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State is what a machine is doing, as its state source says. The numbers are part of the
// snapshot format: never renumber.
type State uint8

// States. StateUnknown is the absence of trustworthy evidence, never a machine's own state.
const (
	StateUnknown State = iota
	StateRunning
	StateIdle
	StateBlocked
	StateDown
	StateSetup
	StateMaintenance

	numStates
)

// stateNames are the names of the states in the config file, records and docs; read-only.
var stateNames = [numStates]string{"unknown", "running", "idle", "blocked", "down", "setup", "maintenance"}

func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// ParseState returns the state a name in a state map stands for. "unknown" is not a name a map
// may use: a value the map lacks is unknown already.
func ParseState(name string) (State, bool) {
	for s := StateRunning; s < numStates; s++ {
		if stateNames[s] == name {
			return s, true
		}
	}
	return StateUnknown, false
}

// StateNames lists the names ParseState accepts, in the order messages show them.
func StateNames() []string { return append([]string(nil), stateNames[StateRunning:]...) }

// isStop reports whether s interrupts production unplanned: the states a stop is made of.
func isStop(s State) bool { return s == StateIdle || s == StateBlocked || s == StateDown }

// TagRef names a tag of a device.
type TagRef struct {
	Device, Tag string
}

// IsZero reports whether r names no tag.
func (r TagRef) IsZero() bool { return r.Device == "" && r.Tag == "" }

func (r TagRef) String() string { return r.Device + "/" + r.Tag }

// Asset is a machine whose KPIs the engine computes, bound to tags by device and tag name. The
// agent builds it from the config file's assets section.
type Asset struct {
	// Name is the record's Source; unique among assets.
	Name string
	// State says what the machine is doing. Without one, all planned busy time is unknown.
	State StateSource
	// Counters count the parts; the zero Counters counts none.
	Counters Counters
	// IdealCycle is the least time one part takes (ISO 22400: planned run time per item).
	IdealCycle IdealCycle
	// MicroStop is the threshold below which a stop that ends with the machine running again
	// is a micro-stop, a speed loss kept in APT rather than an availability loss. Zero: none.
	MicroStop time.Duration
	// Schedule says when production is planned. The zero Schedule plans every minute of every
	// day (24/7).
	Schedule Schedule
	// Windows are the windows a KPI record is made for.
	Windows []Window
}

// StateSource is an enum tag with a map, or a set of boolean tags.
type StateSource struct {
	// Tag and Map are the enum form: the integer value of Tag, looked up in Map. A value that
	// Map lacks is unknown time.
	Tag TagRef
	Map map[int64]State
	// Bits is the boolean form: one tag per state. The machine is in the state of highest
	// precedence among the bits that are set (down, maintenance, setup, blocked, idle, running),
	// and idle when none is. Every bit must have a good, fresh sample for the state to be known.
	Bits []Bit
	// MaxAge is how long a good sample stands as evidence when no newer one comes: past it,
	// time is unknown. Zero means three poll intervals of the tag plus the device's timeout.
	MaxAge time.Duration
}

// Bit is one boolean tag of a state source: when true, the machine is in State.
type Bit struct {
	Tag   TagRef
	State State
}

// bitPrecedence orders states from the strongest: when several bits are set, the first wins.
var bitPrecedence = [...]State{StateDown, StateMaintenance, StateSetup, StateBlocked, StateIdle, StateRunning}

// Counters are the part counters of an asset: any two of Total, Good and Reject (the third
// follows), or all three.
type Counters struct {
	Total, Good, Reject TagRef
	// Bits is the width at which the counters roll over to 0: 16, 32 or 64. Zero means 64.
	Bits int
}

// IdealCycle is a constant or a tag.
type IdealCycle struct {
	// Value is a constant ideal cycle time.
	Value time.Duration
	// Tag, when set, is read instead; its value (after the tag's scale and offset) counts
	// Units. A bad sample keeps the last good value.
	Tag TagRef
	// Unit is the time one unit of the tag's value stands for; zero means a second.
	Unit time.Duration
}

// Schedule is when production is planned: shifts with their breaks, in a time zone.
type Schedule struct {
	// Location is the zone of the shifts and of every window of the asset; nil means
	// Options.Location. The schedule's zone wins over the gateway's.
	Location *time.Location
	// Shifts; none means the whole of every working day is planned.
	Shifts []Shift
	// NonWorking are dates on which no shift starts (a shift that starts the evening before
	// still runs into one).
	NonWorking []Date
}

// Shift is a planned period that recurs on some days.
type Shift struct {
	Name string
	// Start and End are times of day (since midnight, less than 24h). An End not after Start
	// ends the next day, so 22:00–06:00 crosses midnight; End equal to Start is a 24-hour shift.
	// Wall-clock times: on a DST day a shift is an hour shorter or longer. A time the clock
	// skips (spring forward) is the instant the clock skips to; a time that occurs twice (fall
	// back) is its first occurrence.
	Start, End time.Duration
	// Breaks are planned downtime within the shift, as times of day.
	Breaks []Break
	// Days are the days on which the shift starts; none means every day.
	Days []time.Weekday
}

// Break is a planned pause within a shift, as times of day.
type Break struct {
	Start, End time.Duration
}

// Date is a civil date in a schedule's zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day) }

// ParseDate reads "2026-12-25".
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("want a date like 2026-12-25, got %q", s)
	}
	return Date{t.Year(), t.Month(), t.Day()}, nil
}

// ParseDay reads a day of the week as the config file writes it: "mon" to "sun".
func ParseDay(s string) (time.Weekday, bool) {
	for i, d := range [...]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"} {
		if d == s {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// ParseClock reads a time of day "06:00" or "06:00:30" as the time since midnight. "24:00" is
// midnight at the end of the day.
func ParseClock(s string) (time.Duration, error) {
	parts := strings.Split(s, ":")
	bad := fmt.Errorf("want a time of day like 06:00, got %q", s)
	if len(parts) < 2 || len(parts) > 3 {
		return 0, bad
	}
	var v [3]int
	for i, p := range parts {
		if len(p) != 2 {
			return 0, bad
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0, bad
		}
		v[i] = n
	}
	if v[1] > 59 || v[2] > 59 || v[0] > 24 || v[0] == 24 && (v[1] != 0 || v[2] != 0) {
		return 0, bad
	}
	return time.Duration(v[0])*time.Hour + time.Duration(v[1])*time.Minute + time.Duration(v[2])*time.Second, nil
}

// WindowKind is the kind of a window.
type WindowKind uint8

// Window kinds. The numbers are part of the snapshot format.
const (
	// Tumbling windows of a fixed length are aligned to the wall clock of the schedule's zone:
	// a 15m window starts at :00, :15, :30 and :45 local time.
	Tumbling WindowKind = 1
	// ShiftWindow is one window per shift occurrence; no window is open between shifts.
	ShiftWindow WindowKind = 2
	// DayWindow is one window per calendar day in the schedule's zone, midnight to midnight
	// (23 or 25 hours on DST days).
	DayWindow WindowKind = 3
)

// Window is one kind of window a KPI record is made for.
type Window struct {
	Kind WindowKind
	// Every is the length of a tumbling window: at least a second, whole seconds, and a
	// divisor of 24h, so that every day starts a window at midnight.
	Every time.Duration
}

// ParseWindow reads "15m", "1h", "shift" or "day".
func ParseWindow(s string) (Window, error) {
	switch s {
	case "shift":
		return Window{Kind: ShiftWindow}, nil
	case "day":
		return Window{Kind: DayWindow}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Window{}, fmt.Errorf("want shift, day or a duration like 15m, got %q", s)
	}
	w := Window{Kind: Tumbling, Every: d}
	if err := w.check(); err != nil {
		return Window{}, err
	}
	return w, nil
}

func (w Window) check() error {
	switch w.Kind {
	case ShiftWindow, DayWindow:
		return nil
	case Tumbling:
		d := w.Every
		if d < time.Second || d%time.Second != 0 || (24*time.Hour)%d != 0 {
			return fmt.Errorf("a tumbling window must be whole seconds, at least 1s, and divide 24h (1m, 5m, 15m, 1h, 8h...), got %v", d)
		}
		return nil
	}
	return fmt.Errorf("unknown window kind %d", w.Kind)
}

// String is the window as the config file and the record's "window" field write it: "15m",
// "1h30m", "shift", "day".
func (w Window) String() string {
	switch w.Kind {
	case ShiftWindow:
		return "shift"
	case DayWindow:
		return "day"
	}
	s := w.Every.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// FieldError is a problem with one field of an asset. Path is relative to the asset, e.g.
// "state.tag" or "schedule.shifts[1].end"; the agent prefixes the asset's own path
// ("assets[2]") and places it in the file.
type FieldError struct {
	Asset string
	Path  string
	Err   error
}

func (e *FieldError) Error() string {
	return "asset " + strconv.Quote(e.Asset) + ": " + e.Path + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// Errors of Restore.
var (
	// ErrSnapshotCorrupt is wrapped when a snapshot is not a valid encoding.
	ErrSnapshotCorrupt = errors.New("corrupt kpi snapshot")
	// ErrSnapshotVersion is wrapped when a snapshot's version is one this binary does not know.
	ErrSnapshotVersion = errors.New("unknown kpi snapshot version")
)
