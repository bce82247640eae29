package watch

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"time"
)

// Options configure a Model. The zero value watches the JSON contract under the default topic
// template and starts its clock at the first frame Run draws.
type Options struct {
	// Decoder reads the messages Handle gets; nil means JSON with DefaultTopicTemplate.
	Decoder Decoder
	// Title heads the terminal frame; "" means "Floorlink watch".
	Title string
	// Header lines are shown under the title in the terminal frame (where things listen, the
	// log file).
	Header []string
	// Color enables ANSI colors in the terminal frame.
	Color bool
	// Start is t=0 of the plain lines and of "up" in the frame; zero means the time of the
	// first frame Run draws.
	Start time.Time
}

// Expected names a device the view shows before anything arrived from it, e.g. from the
// agent's configuration: a device that never publishes is then visible as waiting.
type Expected struct {
	Site, Area, Line, Gateway, Device string
}

// Model is the latest of what the watched gateways published. Handle and Apply feed it; the
// Append methods render it. Its methods are safe for concurrent use; mu guards every field
// below it.
type Model struct {
	dec   Decoder
	opts  Options
	title string

	mu          sync.Mutex
	start       time.Time
	broker      string // the broker's address
	conn        string // connecting, connected, disconnected; "" when no one said
	connErr     string
	sites       map[string]*siteRow
	expected    int // rows expected so far: the next one's order
	messages    uint64
	undecodable uint64
	lastErr     string
	scratch     []Update
}

type siteRow struct {
	name     string
	gateways map[string]*gatewayRow
	lines    map[lineKey]*lineRow
}

type lineKey struct{ area, line string }

type gatewayRow struct {
	id      string
	order   int
	status  *GatewayStatus
	stats   *GatewayStats
	statsAt time.Time // when the stats arrived
	event   *event
}

type lineRow struct {
	key     lineKey
	sources map[sourceKey]*sourceRow
}

// sourceKey tells a device from an asset of the same name.
type sourceKey struct {
	name  string
	asset bool
}

type sourceRow struct {
	sourceKey
	order      int
	gateway    string
	values     map[string]Value // merged record after record: a tag left out keeps its last value
	seen       bool             // a record arrived
	seq        uint64
	ts         time.Time
	historical bool
	event      *event
}

type event struct {
	name, err string
	ts        time.Time
}

// unexpected is the order of rows nobody expected: after the expected ones, by name.
const unexpected = math.MaxInt

// New returns an empty model.
func New(opts Options) *Model {
	m := &Model{opts: opts, dec: opts.Decoder, title: cmp.Or(opts.Title, "Floorlink watch"),
		start: opts.Start, sites: map[string]*siteRow{}}
	if m.dec == nil {
		m.dec, _ = NewJSON("") // the default template is valid
	}
	return m
}

// Decoder returns the model's decoder, whose Filters a subscription uses.
func (m *Model) Decoder() Decoder { return m.dec }

// Expect shows a device before anything arrives from it. Devices expected are shown in the
// order of Expect, before the others.
func (m *Model) Expect(e Expected) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.site(e.Site)
	if e.Gateway != "" {
		g := m.gateway(s, e.Gateway)
		g.order = min(g.order, m.expected)
	}
	src := m.source(s, lineKey{e.Area, e.Line}, sourceKey{name: e.Device})
	src.order = min(src.order, m.expected)
	src.gateway = e.Gateway
	m.expected++
}

// SetConnection records the state of the connection to broker, shown by the renderings;
// err, when not nil, is why it is not connected.
func (m *Model) SetConnection(broker, state string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.broker, m.conn, m.connErr = broker, state, ""
	if err != nil {
		m.connErr = err.Error()
	}
}

// Handle decodes one message that arrived at now and applies its updates. A message that
// does not decode is counted and its error kept for the view.
func (m *Model) Handle(topic string, payload []byte, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.messages++
	var err error
	m.scratch, err = m.dec.Decode(m.scratch[:0], topic, payload)
	if err != nil {
		m.undecodable++
		m.lastErr = err.Error()
	}
	for i := range m.scratch {
		m.apply(&m.scratch[i], now)
		m.scratch[i] = Update{} // drop the references to values
	}
}

// Apply takes one update that arrived at now.
func (m *Model) Apply(u Update, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.apply(&u, now)
}

func (m *Model) apply(u *Update, now time.Time) {
	s := m.site(u.Site)
	switch u.Kind {
	case Status:
		m.gateway(s, u.Gateway).status = u.GatewayStatus
	case Stats:
		g := m.gateway(s, u.Gateway)
		g.stats, g.statsAt = u.GatewayStats, now
	case Event:
		ev := &event{ts: cmp.Or(u.TS, now)}
		for _, v := range u.Values {
			switch v.Name {
			case "event":
				ev.name = v.Text
			case "error":
				ev.err = v.Text
			}
		}
		if u.Gateway != "" {
			m.gateway(s, u.Gateway)
		}
		if u.Source == u.Gateway { // the gateway's own event
			m.gateway(s, u.Gateway).event = ev
			return
		}
		src := m.source(s, lineKey{u.Area, u.Line}, sourceKey{name: u.Source})
		src.event, src.gateway = ev, cmp.Or(u.Gateway, src.gateway)
	case Telemetry, KPI:
		if u.Gateway != "" {
			m.gateway(s, u.Gateway)
		}
		src := m.source(s, lineKey{u.Area, u.Line}, sourceKey{name: u.Source, asset: u.Kind == KPI})
		src.gateway = cmp.Or(u.Gateway, src.gateway)
		src.seen, src.seq, src.ts, src.historical = true, u.Seq, cmp.Or(u.TS, now), u.Historical
		for _, v := range u.Values {
			src.values[v.Name] = v
		}
	}
}

func (m *Model) site(name string) *siteRow {
	s := m.sites[name]
	if s == nil {
		s = &siteRow{name: name, gateways: map[string]*gatewayRow{}, lines: map[lineKey]*lineRow{}}
		m.sites[name] = s
	}
	return s
}

func (m *Model) gateway(s *siteRow, id string) *gatewayRow {
	g := s.gateways[id]
	if g == nil {
		g = &gatewayRow{id: id, order: unexpected}
		s.gateways[id] = g
	}
	return g
}

func (m *Model) source(s *siteRow, lk lineKey, sk sourceKey) *sourceRow {
	l := s.lines[lk]
	if l == nil {
		l = &lineRow{key: lk, sources: map[sourceKey]*sourceRow{}}
		s.lines[lk] = l
	}
	src := l.sources[sk]
	if src == nil {
		src = &sourceRow{sourceKey: sk, order: unexpected, values: map[string]Value{}}
		l.sources[sk] = src
	}
	return src
}

// The renderings walk the model in one order: sites by name; in each, its gateways (expected
// first, then by id), then its lines by area and line; in each line its sources (expected
// first, then devices before assets, then by name).

func (m *Model) sortedSites() []*siteRow {
	out := make([]*siteRow, 0, len(m.sites))
	for _, s := range m.sites {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *siteRow) int { return cmp.Compare(a.name, b.name) })
	return out
}

func (s *siteRow) sortedGateways() []*gatewayRow {
	out := make([]*gatewayRow, 0, len(s.gateways))
	for _, g := range s.gateways {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *gatewayRow) int {
		return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.id, b.id))
	})
	return out
}

func (s *siteRow) sortedLines() []*lineRow {
	out := make([]*lineRow, 0, len(s.lines))
	for _, l := range s.lines {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b *lineRow) int {
		return cmp.Or(cmp.Compare(a.key.area, b.key.area), cmp.Compare(a.key.line, b.key.line))
	})
	return out
}

func (l *lineRow) sortedSources() []*sourceRow {
	out := make([]*sourceRow, 0, len(l.sources))
	for _, s := range l.sources {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *sourceRow) int {
		rank := func(s *sourceRow) int {
			if s.asset {
				return 1
			}
			return 0
		}
		return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(rank(a), rank(b)), cmp.Compare(a.name, b.name))
	})
	return out
}

// sortedValues returns the source's values by name.
func (s *sourceRow) sortedValues() []Value {
	out := make([]Value, 0, len(s.values))
	for _, v := range s.values {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Value) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
