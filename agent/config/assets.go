package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// Asset is a machine whose KPIs are computed from tags of the devices (docs/kpi.md). The agent
// maps it onto the KPI engine's kpi.Asset.
type Asset struct {
	// Name is the {source} of the asset's KPI records; its Sparkplug device id is Name + "-kpi".
	Name string `yaml:"name" json:"name"`
	// State says what the machine is doing; nil when the file gives none.
	State *AssetState `yaml:"state" json:"state"`
	// Counters count its parts; nil when the file gives none.
	Counters *Counters `yaml:"counters" json:"counters"`
	// IdealCycle is the least time one part takes; nil when the file gives none (performance
	// and OEE are then null).
	IdealCycle *IdealCycle `yaml:"ideal_cycle" json:"ideal_cycle"`
	// MicroStop is the threshold below which a stop that ends running again is a micro-stop.
	MicroStop time.Duration `yaml:"micro_stop" json:"micro_stop"`
	// Schedule is when production is planned; nil: always (24/7).
	Schedule *Schedule `yaml:"schedule" json:"schedule"`
	// Windows are "shift", "day" or tumbling durations ("15m"), defaults applied.
	Windows []string `yaml:"windows" json:"windows"`
	// LiveInterval is the period of the retained "current shift so far" message; zero: none.
	LiveInterval time.Duration `yaml:"live_interval" json:"live_interval"`
}

// AssetState is an enum tag with its map, or boolean tags (one per state).
type AssetState struct {
	Device string `yaml:"device" json:"device"`
	// Tag and Map are the enum form: Map names the tag's values with states (running, idle,
	// blocked, down, setup, maintenance); it defaults to the tag's enum.
	Tag string           `yaml:"tag" json:"tag"`
	Map map[int64]string `yaml:"map" json:"map"`
	// The boolean form: the tag whose value true means each state. Fault means down.
	Running     string `yaml:"running" json:"running"`
	Fault       string `yaml:"fault" json:"fault"`
	Setup       string `yaml:"setup" json:"setup"`
	Maintenance string `yaml:"maintenance" json:"maintenance"`
	Blocked     string `yaml:"blocked" json:"blocked"`
	Idle        string `yaml:"idle" json:"idle"`
	// MaxAge is how long a sample stands as evidence; zero: the engine's default.
	MaxAge time.Duration `yaml:"max_age" json:"max_age"`
}

// Bits returns the boolean tags by state name ("down" for fault), in precedence order, leaving
// out those not set.
func (s *AssetState) Bits() [][2]string {
	var out [][2]string
	for _, b := range [...]struct{ state, tag string }{
		{"down", s.Fault}, {"maintenance", s.Maintenance}, {"setup", s.Setup},
		{"blocked", s.Blocked}, {"idle", s.Idle}, {"running", s.Running},
	} {
		if b.tag != "" {
			out = append(out, [2]string{b.state, b.tag})
		}
	}
	return out
}

// Counters are part counters: any two of Total, Good and Reject.
type Counters struct {
	Device string `yaml:"device" json:"device"`
	Total  string `yaml:"total" json:"total"`
	Good   string `yaml:"good" json:"good"`
	Reject string `yaml:"reject" json:"reject"`
	// Bits is where the counters roll over: 16, 32 or 64 (default: their tags' type).
	Bits int `yaml:"bits" json:"bits"`
}

// IdealCycle is a constant (ideal_cycle: 2s) or a tag (ideal_cycle: {device, tag, unit}).
type IdealCycle struct {
	// Value is the constant; zero when a tag is read instead.
	Value  time.Duration `yaml:"-" json:"value,omitempty"`
	Device string        `yaml:"device" json:"device,omitempty"`
	Tag    string        `yaml:"tag" json:"tag,omitempty"`
	// Unit is what one unit of the tag's scaled value is: "ms", "s" or "min".
	Unit string `yaml:"unit" json:"unit,omitempty"`
}

// UnitDuration returns the time one unit of the ideal cycle tag stands for.
func (c *IdealCycle) UnitDuration() time.Duration {
	return idealUnits[c.Unit]
}

// idealUnits are the units of an ideal cycle tag; read-only.
var idealUnits = map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "min": time.Minute}

// Schedule is the planned time of an asset: shifts, breaks and non-working days in a zone.
type Schedule struct {
	// Timezone is the zone of the shifts and windows; "" means the gateway's. Location is nil
	// then.
	Timezone string         `yaml:"timezone" json:"timezone"`
	Location *time.Location `yaml:"-" json:"-"`
	Shifts   []Shift        `yaml:"shifts" json:"shifts"`
	// NonWorking are dates ("2026-12-25") on which no shift starts.
	NonWorking []string `yaml:"non_working" json:"non_working"`
}

// Shift is a recurring planned period. Times are "HH:MM" or "HH:MM:SS" as written; an end not
// after the start is the next day.
type Shift struct {
	Name   string  `yaml:"name" json:"name"`
	Start  string  `yaml:"start" json:"start"`
	End    string  `yaml:"end" json:"end"`
	Breaks []Break `yaml:"breaks" json:"breaks"`
	// Days are the days the shift starts on ("mon" to "sun"); none means every day.
	Days []string `yaml:"days" json:"days"`
}

// Break is a planned pause within a shift.
type Break struct {
	Start string `yaml:"start" json:"start"`
	End   string `yaml:"end" json:"end"`
}

// defaultLiveInterval is live_interval when an asset has a shift or day window and the file
// does not say (the field table's note says the same).
const defaultLiveInterval = 10 * time.Second

// Names the file uses; read-only.
var (
	stateNames = []string{"running", "idle", "blocked", "down", "setup", "maintenance"}
	dayNames   = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
	intTypes   = []string{"int16", "uint16", "int32", "uint32", "int64", "uint64"}
)

// assets decodes the assets section. It runs after the devices, whose tags it checks.
func (d *decoder) assets(f *File, items []ast.Node) {
	devs := map[string]*Device{}
	for i := range f.Devices {
		if dv := &f.Devices[i]; dv.Name != "" {
			if _, dup := devs[dv.Name]; !dup {
				devs[dv.Name] = dv
			}
		}
	}
	for i, n := range items {
		path := fmt.Sprintf("assets[%d]", i)
		f.Assets = append(f.Assets, Asset{})
		a := &f.Assets[i]
		d.item(path, n, childKeys("assets[]"), func(m *mapping) { d.asset(f, a, m, devs) })
	}
}

func (d *decoder) asset(f *File, a *Asset, m *mapping, devs map[string]*Device) {
	if m.level("name", &a.Name, true) {
		switch {
		case devs[a.Name] != nil:
			m.bad("name", "%q is the name of a device: KPI records go to the topic of their asset, which must not be a device's", a.Name)
		case devs[a.Name+"-kpi"] != nil:
			m.bad("name", "%q, the asset's Sparkplug device id, is the name of a device: rename the asset or the device", a.Name+"-kpi")
		case a.Name == f.Gateway.ID:
			m.bad("name", "%q is the gateway's id: an asset needs a name of its own", a.Name)
		}
	}
	if m.has("state") {
		a.State = &AssetState{}
		d.assetState(a.State, m.sub("state", childKeys("assets[].state")), devs)
	}
	if m.has("counters") {
		a.Counters = &Counters{}
		d.counters(a.Counters, m.sub("counters", childKeys("assets[].counters")), devs)
	}
	if !m.has("state") && !m.has("counters") && !m.failed("state") && !m.failed("counters") {
		d.problem(m.at, m.path, "want state, counters or both: an asset without either has no KPIs (see docs/kpi.md)")
	}
	d.idealCycle(a, m, devs)
	m.duration("micro_stop", &a.MicroStop, "want 0 (none) to 1h", func(v time.Duration) bool { return v <= time.Hour })
	if m.has("schedule") {
		a.Schedule = &Schedule{}
		d.schedule(a.Schedule, m.sub("schedule", childKeys("assets[].schedule")))
	}
	d.windows(a, m)
}

// set reports whether key has a value other than "": an empty tag name means none, as an
// empty client_id means the default (and as a File written back to YAML puts it).
func (m *mapping) set(key string) bool {
	switch v := m.value(key).(type) {
	case nil:
		return false
	case *ast.StringNode:
		return v.Value != ""
	}
	return true
}

// assetDevice reads the device key of a section and returns the device it names.
func (d *decoder) assetDevice(m *mapping, dst *string, devs map[string]*Device) *Device {
	if !m.str("device", dst) || *dst == "" {
		if !m.set("device") && !m.failed("device") {
			m.bad("device", "required: the name of the device whose tags these are")
		}
		return nil
	}
	dv := devs[*dst]
	if dv == nil {
		names := make([]string, 0, len(devs))
		for n := range devs {
			names = append(names, n)
		}
		slices.Sort(names)
		hint := ""
		if s := suggest(*dst, names); s != "" {
			hint = fmt.Sprintf(" (did you mean %s?)", s)
		}
		m.bad("device", "no device %q in devices%s", *dst, hint)
	}
	return dv
}

// assetTag reads key as the name of a tag of dv, whose type must be one of types (nil: any).
func (d *decoder) assetTag(m *mapping, key string, dst *string, dv *Device, types []string, what string) *Tag {
	if !m.str(key, dst) || *dst == "" {
		return nil
	}
	if dv == nil {
		return nil
	}
	names := make([]string, len(dv.Tags))
	for i := range dv.Tags {
		t := &dv.Tags[i]
		names[i] = t.Name
		if t.Name != *dst {
			continue
		}
		if types != nil && t.Type != "" && !slices.Contains(types, t.Type) {
			m.bad(key, "tag %q of device %q is %s: want %s (%s)", *dst, dv.Name, t.Type, what, strings.Join(types, ", "))
		}
		return t
	}
	hint := ""
	if s := suggest(*dst, names); s != "" {
		hint = fmt.Sprintf(" (did you mean %s?)", s)
	}
	m.bad(key, "device %q has no tag %q%s", dv.Name, *dst, hint)
	return nil
}

var bitKeys = []string{"running", "fault", "setup", "maintenance", "blocked", "idle"}

func (d *decoder) assetState(s *AssetState, m *mapping, devs map[string]*Device) {
	dv := d.assetDevice(m, &s.Device, devs)
	bits := []*string{&s.Running, &s.Fault, &s.Setup, &s.Maintenance, &s.Blocked, &s.Idle}
	var given []string
	for _, k := range bitKeys {
		if m.set(k) {
			given = append(given, k)
		}
	}
	switch {
	case m.set("tag") && len(given) > 0:
		m.bad(given[0], "an enum tag and boolean tags: give one form (tag with its map, or the boolean tags)")
	case !m.set("tag") && len(given) == 0 && !m.failed("tag"):
		m.bad("tag", "required: an enum tag with a map, or boolean tags (%s)", orList(bitKeys))
	}
	if m.set("tag") {
		t := d.assetTag(m, "tag", &s.Tag, dv, intTypes, "an integer type")
		d.stateMap(s, m, t)
	} else if m.has("map") {
		m.bad("map", "only with an enum tag")
	}
	used := map[string]string{}
	for i, k := range bitKeys {
		if !m.set(k) {
			continue
		}
		if d.assetTag(m, k, bits[i], dv, append([]string{"bool"}, intTypes...), "bool or an integer type") == nil {
			continue
		}
		if prev, dup := used[*bits[i]]; dup {
			m.bad(k, "tag %q is already the %s bit: one tag cannot mean two states", *bits[i], prev)
			continue
		}
		used[*bits[i]] = k
	}
	if len(given) > 0 && !m.set("running") && !m.failed("running") {
		m.bad("running", "required with boolean tags: without a running bit the machine never runs")
	}
	m.duration("max_age", &s.MaxAge, "want 0 (three poll intervals and the timeout) or at least 1s",
		func(v time.Duration) bool { return v == 0 || v >= time.Second })
}

// stateMap reads state.map, or takes the tag's enum when the file gives none.
func (d *decoder) stateMap(s *AssetState, m *mapping, t *Tag) {
	if !m.has("map") {
		if m.failed("map") {
			return
		}
		if t == nil || t.Enum == nil {
			m.bad("map", "required with an enum tag (e.g. {1: running, 2: idle, 4: down}), unless the tag has an enum")
			return
		}
		keys := make([]int64, 0, len(t.Enum))
		for k := range t.Enum {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		s.Map = map[int64]string{}
		for _, k := range keys {
			if !slices.Contains(stateNames, t.Enum[k]) {
				m.bad("map", "required: the tag's enum names %d %q, which is not a state (want %s)", k, t.Enum[k], orList(stateNames))
				s.Map = nil
				return
			}
			s.Map[k] = t.Enum[k]
		}
		d.checkRunning(s, m)
		return
	}
	mm := m.sub("map", nil)
	if !mm.present {
		return
	}
	// In the order of the file, so that a repeated value is reported at its second occurrence.
	entries := make([]*ast.MappingValueNode, 0, len(mm.entries))
	for _, mv := range mm.entries {
		entries = append(entries, mv)
	}
	slices.SortFunc(entries, func(a, b *ast.MappingValueNode) int {
		pa, pb := nodePos(a.Key), nodePos(b.Key)
		return cmp.Or(cmp.Compare(pa.line, pb.line), cmp.Compare(pa.col, pb.col))
	})
	s.Map = map[int64]string{}
	seen := map[int64]string{}
	for _, mv := range entries {
		key, _ := keyText(mv.Key)
		path := joinPath(mm.path, key)
		n, err := strconv.ParseInt(key, 10, 64)
		if err != nil {
			d.problem(nodePos(mv.Key), path, "want an integer value of the tag as the key, got %q", key)
			continue
		}
		if prev, dup := seen[n]; dup {
			d.problem(nodePos(mv.Key), path, "value %d is already mapped (as %s)", n, prev)
			continue
		}
		seen[n] = key
		sc, ok := d.scalarOf(path, unwrap(mv.Value), "want a state name")
		if !ok {
			continue
		}
		if !slices.Contains(stateNames, sc.text) {
			hint := ""
			if sg := suggest(sc.text, stateNames); sg != "" {
				hint = fmt.Sprintf("did you mean %s? ", sg)
			}
			d.problem(sc.pos, path, "unknown state %s (%swant %s)", sc.what(), hint, orList(stateNames))
			continue
		}
		s.Map[n] = sc.text
	}
	if len(entries) == 0 {
		m.bad("map", "want at least one value, e.g. {1: running, 2: idle, 4: down}")
		return
	}
	if !d.failedUnder(mm.path) {
		d.checkRunning(s, m)
	}
}

func (d *decoder) checkRunning(s *AssetState, m *mapping) {
	for _, name := range s.Map {
		if name == "running" {
			return
		}
	}
	m.bad("map", "no value maps to running: the machine would never run")
}

func (d *decoder) counters(c *Counters, m *mapping, devs map[string]*Device) {
	dv := d.assetDevice(m, &c.Device, devs)
	width := 0
	n := 0
	used := map[string]string{}
	for _, k := range []struct {
		key string
		dst *string
	}{{"total", &c.Total}, {"good", &c.Good}, {"reject", &c.Reject}} {
		if !m.set(k.key) {
			continue
		}
		n++
		t := d.assetTag(m, k.key, k.dst, dv, intTypes, "an integer type")
		if t == nil {
			continue
		}
		if prev, dup := used[t.Name]; dup {
			m.bad(k.key, "tag %q is already the %s counter", t.Name, prev)
			continue
		}
		used[t.Name] = k.key
		if w := typeWidth(t.Type); w > width {
			width = w
		}
	}
	if n < 2 && !m.failed("total") && !m.failed("good") && !m.failed("reject") {
		m.bad("total", "want at least two of total, good and reject (the third follows), got %d", n)
	}
	if m.has("bits") {
		var bits int
		if m.integer("bits", &bits, 0, 64, "want 16, 32 or 64") {
			if bits != 16 && bits != 32 && bits != 64 {
				m.bad("bits", "want 16, 32 or 64, got %d", bits)
			} else {
				c.Bits = bits
			}
		}
	} else {
		c.Bits = cmp.Or(width, 64)
	}
}

// typeWidth is where a counter of the type rolls over, in bits.
func typeWidth(typ string) int {
	switch typ {
	case "int16", "uint16":
		return 16
	case "int32", "uint32":
		return 32
	case "int64", "uint64":
		return 64
	}
	return 0
}

func (d *decoder) idealCycle(a *Asset, m *mapping, devs map[string]*Device) {
	switch v := m.value("ideal_cycle").(type) {
	case nil:
	case *ast.MappingNode, *ast.MappingValueNode:
		if _, ok := splitScalar(v); ok {
			break // a scalar goccy split at a colon: decoded below as a duration
		}
		a.IdealCycle = &IdealCycle{}
		sub := m.sub("ideal_cycle", childKeys("assets[].ideal_cycle"))
		dv := d.assetDevice(sub, &a.IdealCycle.Device, devs)
		if !sub.set("tag") && !sub.failed("tag") {
			sub.bad("tag", "required: the tag that holds the ideal cycle time")
		}
		d.assetTag(sub, "tag", &a.IdealCycle.Tag, dv, nil, "")
		a.IdealCycle.Unit = "s"
		if sub.has("unit") {
			units := []string{"ms", "s", "min"}
			if !sub.oneOf("unit", "unit", &a.IdealCycle.Unit, units...) {
				a.IdealCycle.Unit = "s"
			}
		}
		return
	}
	if !m.has("ideal_cycle") {
		return
	}
	var c time.Duration
	if m.duration("ideal_cycle", &c, "want more than 0 and less than 24h, or {device, tag, unit}",
		func(v time.Duration) bool { return v > 0 && v < 24*time.Hour }) {
		a.IdealCycle = &IdealCycle{Value: c}
	}
}

// clock reads a time of day "HH:MM" or "HH:MM:SS"; up to 24:00 when end is true.
func (d *decoder) clock(m *mapping, key string, dst *string, end bool) (time.Duration, bool) {
	s, ok := m.strScalar(key)
	if !ok {
		if !m.has(key) && !m.failed(key) {
			m.bad(key, "required: a time of day like \"06:00\"")
		}
		return 0, false
	}
	if plainToken(s) {
		m.bad(key, "write \"%s\" in quotes: YAML 1.1 tools read an unquoted %s as a number (sexagesimal)", s.raw, s.raw)
		return 0, false
	}
	v, ok := parseClock(s.text)
	if !ok || !end && v == 24*time.Hour {
		m.bad(key, "want a time of day from \"00:00\" to \"%s\", got %s", map[bool]string{true: "24:00", false: "23:59"}[end], s.what())
		return 0, false
	}
	*dst = s.text
	return v, true
}

// plainToken reports whether a scalar was written without quotes.
func plainToken(s scalar) bool {
	if s.node == nil || s.expanded {
		return false
	}
	tk := s.node.GetToken()
	return tk != nil && tk.Type != token.SingleQuoteType && tk.Type != token.DoubleQuoteType
}

// parseClock reads "HH:MM" or "HH:MM:SS" (24:00 is the end of the day); the same grammar as
// kpi.ParseClock, which config cannot import.
func parseClock(s string) (time.Duration, bool) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, false
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if len(p) != 2 || err != nil || n < 0 {
			return 0, false
		}
		v[i] = n
	}
	if v[1] > 59 || v[2] > 59 || v[0] > 24 || v[0] == 24 && (v[1] != 0 || v[2] != 0) {
		return 0, false
	}
	return time.Duration(v[0])*time.Hour + time.Duration(v[1])*time.Minute + time.Duration(v[2])*time.Second, true
}

func (d *decoder) schedule(s *Schedule, m *mapping) {
	if sc, ok := m.strScalar("timezone"); ok && sc.text != "" {
		switch loc, err := time.LoadLocation(sc.text); {
		case sc.text == "Local":
			m.bad("timezone", "want an IANA zone name like Asia/Seoul, got %s (it would follow the gateway's OS image)", sc.what())
		case err != nil:
			m.bad("timezone", "unknown time zone %s (want an IANA zone name like Asia/Seoul or UTC)", sc.what())
		default:
			s.Timezone, s.Location = sc.text, loc
		}
	}
	type span struct {
		shift      int
		start, end time.Duration // on the weekly clock, from Sunday 00:00
	}
	var spans []span
	names := map[string]int{}
	for i, n := range m.list("shifts") {
		path := fmt.Sprintf("%s.shifts[%d]", m.path, i)
		s.Shifts = append(s.Shifts, Shift{})
		sh := &s.Shifts[i]
		d.item(path, n, childKeys("assets[].schedule.shifts[]"), func(sm *mapping) {
			if sm.str("name", &sh.Name) {
				if msg := checkText(sh.Name); sh.Name == "" || msg != "" {
					sm.bad("name", "want a name without control characters, got %q", sh.Name)
				} else if j, dup := names[sh.Name]; dup {
					sm.bad("name", "%q is already the name of %s.shifts[%d]", sh.Name, m.path, j)
				} else {
					names[sh.Name] = i
				}
			} else if !sm.has("name") && !sm.failed("name") {
				sm.bad("name", "required (it names the shift's KPI records)")
			}
			start, okS := d.clock(sm, "start", &sh.Start, false)
			end, okE := d.clock(sm, "end", &sh.End, true)
			days := d.days(sh, sm)
			if !okS || !okE {
				return
			}
			length := (end - start + 24*time.Hour) % (24 * time.Hour)
			if length == 0 {
				length = 24 * time.Hour
			}
			d.breaks(sh, sm, start, length)
			for _, day := range days {
				ws := time.Duration(day)*24*time.Hour + start
				spans = append(spans, span{i, ws, ws + length})
			}
		})
	}
	// Shifts must not overlap on the weekly clock (the week wraps around).
	const week = 7 * 24 * time.Hour
	reported := map[int]bool{}
	for x := range spans {
		for y := range spans {
			a, b := spans[x], spans[y]
			if a.shift >= b.shift || reported[b.shift] {
				continue
			}
			for _, k := range []time.Duration{-week, 0, week} {
				if a.start < b.end+k && b.start+k < a.end {
					other := s.Shifts[a.shift]
					d.problemAt(fmt.Sprintf("%s.shifts[%d]", m.path, b.shift), "overlaps shifts[%d] (%q, %s-%s): shifts must not overlap",
						a.shift, other.Name, other.Start, other.End)
					reported[b.shift] = true
					break
				}
			}
		}
	}
	for i, n := range m.list("non_working") {
		path := fmt.Sprintf("%s.non_working[%d]", m.path, i)
		s.NonWorking = append(s.NonWorking, "")
		sc, ok := d.scalarOf(path, unwrap(n), "want a date like \"2026-12-25\"")
		if !ok {
			continue
		}
		if _, err := time.Parse(time.DateOnly, sc.text); err != nil {
			d.problem(sc.pos, path, "want a date like \"2026-12-25\", got %s", sc.what())
			continue
		}
		if plainToken(sc) {
			d.problem(sc.pos, path, "write \"%s\" in quotes: YAML 1.1 tools read an unquoted date as a timestamp", sc.raw)
			continue
		}
		s.NonWorking[i] = sc.text
	}
}

// days reads a shift's days; none means every day.
func (d *decoder) days(sh *Shift, m *mapping) []int {
	items := m.list("days")
	if len(items) == 0 {
		if m.has("days") && !m.failed("days") {
			m.bad("days", "want at least one day, or no days key for every day")
		}
		return []int{0, 1, 2, 3, 4, 5, 6}
	}
	var out []int
	for i, n := range items {
		path := fmt.Sprintf("%s.days[%d]", m.path, i)
		sh.Days = append(sh.Days, "")
		sc, ok := d.scalarOf(path, unwrap(n), "want a day like mon")
		if !ok {
			continue
		}
		k := slices.Index(dayNames, strings.ToLower(sc.text))
		switch {
		case k < 0:
			d.problem(sc.pos, path, "unknown day %s (want %s)", sc.what(), orList(dayNames))
		case slices.Contains(out, k):
			d.problem(sc.pos, path, "%s is listed twice", sc.text)
		default:
			sh.Days[i] = dayNames[k]
			out = append(out, k)
		}
	}
	return out
}

// breaks reads a shift's breaks: each within the shift, none overlapping another.
func (d *decoder) breaks(sh *Shift, m *mapping, start, length time.Duration) {
	type rel struct{ from, to time.Duration }
	var got []rel
	for j, n := range m.list("breaks") {
		path := fmt.Sprintf("%s.breaks[%d]", m.path, j)
		sh.Breaks = append(sh.Breaks, Break{})
		b := &sh.Breaks[j]
		d.item(path, n, childKeys("assets[].schedule.shifts[].breaks[]"), func(bm *mapping) {
			bs, ok1 := d.clock(bm, "start", &b.Start, false)
			be, ok2 := d.clock(bm, "end", &b.End, true)
			if !ok1 || !ok2 {
				return
			}
			// Where the break falls from the shift's start: 22:00-06:00 holds 02:00.
			rs := (bs - start + 24*time.Hour) % (24 * time.Hour)
			re := (be - start + 24*time.Hour) % (24 * time.Hour)
			if re == 0 {
				re = 24 * time.Hour
			}
			if rs >= re || re > length {
				d.problemAt(path, "break %s-%s is not within its shift %s-%s", b.Start, b.End, sh.Start, sh.End)
				return
			}
			for k, o := range got {
				if rs < o.to && o.from < re {
					d.problemAt(path, "overlaps breaks[%d] (%s-%s)", k, sh.Breaks[k].Start, sh.Breaks[k].End)
					return
				}
			}
			got = append(got, rel{rs, re})
		})
	}
}

// windows reads the window list and live_interval, applying their defaults.
func (d *decoder) windows(a *Asset, m *mapping) {
	hasShifts := a.Schedule != nil && len(a.Schedule.Shifts) > 0
	items := m.list("windows")
	if len(items) == 0 {
		if m.has("windows") && !m.failed("windows") {
			m.bad("windows", "want at least one window: shift, day or a duration like 15m")
		}
		if !m.has("windows") {
			a.Windows = []string{"day"}
			if hasShifts {
				a.Windows = []string{"shift", "day"}
			}
		}
	}
	calendar := false
	for i, n := range items {
		path := fmt.Sprintf("%s.windows[%d]", m.path, i)
		sc, ok := d.scalarOf(path, unwrap(n), "want shift, day or a duration like 15m")
		if !ok {
			continue
		}
		w, msg := checkWindow(sc.text)
		switch {
		case msg != "":
			d.problem(sc.pos, path, "%s, got %s", msg, sc.what())
			continue
		case w == "shift" && !hasShifts && !d.failedUnder(m.path+".schedule"):
			d.problem(sc.pos, path, "shift windows need shifts in the schedule")
			continue
		case slices.Contains(a.Windows, w):
			d.problem(sc.pos, path, "%s is listed twice", w)
			continue
		}
		calendar = calendar || w == "shift" || w == "day"
		a.Windows = append(a.Windows, w)
	}
	if len(items) == 0 {
		calendar = true
	}
	if m.has("live_interval") {
		if m.duration("live_interval", &a.LiveInterval, "want 0 (off) or at least 1s",
			func(v time.Duration) bool { return v == 0 || v >= time.Second }) && a.LiveInterval > 0 && !calendar && len(items) > 0 {
			m.bad("live_interval", "the live message shows the current shift or day: add shift or day to windows, or set 0")
		}
	} else if calendar {
		a.LiveInterval = defaultLiveInterval
	}
}

// checkWindow returns a window as the records name it ("15m", "1h30m", "shift", "day"), or why
// it is not one.
func checkWindow(s string) (string, string) {
	const want = "want shift, day or a duration like 15m that divides 24h (1m, 5m, 15m, 1h, 8h...)"
	if s == "shift" || s == "day" {
		return s, ""
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return "", want
	}
	if v < time.Second || v%time.Second != 0 || (24*time.Hour)%v != 0 {
		return "", want
	}
	// As kpi.Window.String writes it: 15m0s is 15m, 1h0m0s is 1h, 1h30m0s is 1h30m.
	out := v.String()
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out, ""
}
