package scenario

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/floorlink/floorlink/simulators/line"
)

// MaxSize is the largest scenario file Parse reads, in bytes: scenario files are written by hand.
const MaxSize = 1 << 20

// Scenario is a parsed scenario file.
type Scenario struct {
	// ClockStart is the simulated time of tick 0 that the file assumes (its clock_start), or the
	// zero Time when it names none.
	ClockStart time.Time
	// Scripts are the scripted machines, in file order, for line.Config.Scripts.
	Scripts []line.Script
}

// Error is one problem in a scenario file, at a position.
type Error struct {
	File      string
	Line, Col int    // 1-based; 0 when unknown
	Field     string // the field's path, e.g. machines[0].timeline[2].at; empty for the file
	Msg       string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and parses the scenario file at path.
func Load(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	defer f.Close()
	// One byte beyond the limit, so that Parse reports a file that is too large.
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read scenario %s: %w", path, err)
	}
	return Parse(path, data)
}

// The file's shape, as goccy decodes it. Durations, states and times are strings, parsed by
// check, so that every value problem gets the position of its field.
type rawFile struct {
	ClockStart *string      `yaml:"clock_start"`
	Machines   []rawMachine `yaml:"machines"`
}

type rawMachine struct {
	Machine     *int       `yaml:"machine"`
	Cycle       *string    `yaml:"cycle"`
	IdealCycle  *string    `yaml:"ideal_cycle"`
	RejectEvery int        `yaml:"reject_every"`
	RejectRate  float64    `yaml:"reject_rate"`
	StartParts  uint32     `yaml:"start_parts"`
	Timeline    []rawEvent `yaml:"timeline"`
}

type rawEvent struct {
	At         *string `yaml:"at"`
	State      *string `yaml:"state"`
	Alarm      uint16  `yaml:"alarm"`
	Cycle      *string `yaml:"cycle"`
	IdealCycle *string `yaml:"ideal_cycle"`
	Reset      bool    `yaml:"reset"`
}

// states are the names of line.State in a scenario file: the line's own String names.
var states = map[string]line.State{
	"running": line.Running, "idle": line.Idle, "blocked": line.Blocked,
	"down": line.Down, "setup": line.Setup, "maintenance": line.Maintenance,
}

// maxCycle is the longest cycle the front ends serve: milliseconds in a uint16.
const maxCycle = math.MaxUint16 * time.Millisecond

// Parse parses a scenario file's contents; name is used in errors. Every problem is an *Error,
// several joined (errors.Join) when there are several.
func Parse(name string, data []byte) (*Scenario, error) {
	p := &parse{name: name}
	sc := p.run(data)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return sc, nil
}

type parse struct {
	name string
	root ast.Node
	errs []error
}

// fail records a problem at the node of path (its nearest existing ancestor when the key is
// missing). path holds string keys and int indexes.
func (p *parse) fail(path []any, format string, args ...any) {
	e := &Error{File: p.name, Field: fieldPath(path), Msg: fmt.Sprintf(format, args...)}
	if n := lookup(p.root, path); n != nil {
		tk := n.GetToken()
		if m, ok := n.(*ast.MappingNode); ok && !m.IsFlowStyle && len(m.Values) > 0 && m.Values[0].Key != nil {
			tk = m.Values[0].Key.GetToken() // a block mapping's own token is its first colon
		}
		e.Line, e.Col = pos(tk)
	}
	p.errs = append(p.errs, e)
}

func (p *parse) failAt(tk *token.Token, msg string) {
	e := &Error{File: p.name, Msg: msg}
	e.Line, e.Col = pos(tk)
	p.errs = append(p.errs, e)
}

func pos(tk *token.Token) (line, col int) {
	if tk == nil || tk.Position == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}

func fieldPath(path []any) string {
	var b strings.Builder
	for _, s := range path {
		switch s := s.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		case int:
			fmt.Fprintf(&b, "[%d]", s)
		}
	}
	return b.String()
}

// lookup returns the node at path under n, or the deepest one on the way.
func lookup(n ast.Node, path []any) ast.Node {
	for _, s := range path {
		var next ast.Node
		switch v := n.(type) {
		case *ast.MappingNode:
			key, _ := s.(string)
			for _, mv := range v.Values {
				if mv.Key != nil && mv.Key.GetToken() != nil && mv.Key.GetToken().Value == key {
					next = mv.Value
					if _, ok := next.(*ast.NullNode); ok {
						next = mv.Key // "at:" with nothing: point at the key
					}
				}
			}
		case *ast.SequenceNode:
			if i, ok := s.(int); ok && i < len(v.Values) {
				next = v.Values[i]
			}
		}
		if next == nil {
			return n
		}
		n = next
	}
	return n
}

func (p *parse) run(data []byte) (sc *Scenario) {
	if len(data) > MaxSize {
		p.failAt(nil, fmt.Sprintf("larger than %d bytes", MaxSize))
		return nil
	}
	defer func() {
		// goccy is third-party code fed any input; a panic in it is a problem with the file.
		if r := recover(); r != nil {
			p.failAt(nil, fmt.Sprintf("cannot parse the YAML (parser failure: %v)", r))
			sc = nil
		}
	}()
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		p.yamlError(err)
		return nil
	}
	var docs []*ast.DocumentNode
	for _, d := range file.Docs {
		switch d.Body.(type) {
		case nil, *ast.CommentGroupNode, *ast.CommentNode, *ast.DirectiveNode:
			continue
		}
		docs = append(docs, d)
	}
	if len(docs) == 0 {
		p.failAt(nil, "empty: want a mapping with machines")
		return nil
	}
	if len(docs) > 1 {
		tk := docs[1].Body.GetToken()
		if docs[1].Start != nil {
			tk = docs[1].Start
		}
		p.failAt(tk, "a second YAML document: a scenario file holds one")
		return nil
	}
	p.root = docs[0].Body
	// Anchors and aliases are refused: expanding aliases is the classic way to make a small
	// file decode into a huge one, and a shared node has no single field path to report.
	ast.Walk(visitor(func(n ast.Node) {
		switch n.(type) {
		case *ast.AnchorNode, *ast.AliasNode, *ast.TagNode:
			p.failAt(n.GetToken(), "anchors, aliases and tags are not supported: write the value out")
		}
	}), p.root)
	if len(p.errs) > 0 {
		return nil
	}
	if _, ok := p.root.(*ast.MappingNode); !ok {
		p.failAt(p.root.GetToken(), "want a mapping with machines")
		return nil
	}
	var raw rawFile
	if err := yaml.NodeToValue(p.root, &raw, yaml.DisallowUnknownField()); err != nil {
		p.yamlError(err)
		return nil
	}
	return p.check(&raw)
}

type visitor func(ast.Node)

func (v visitor) Visit(n ast.Node) ast.Visitor {
	v(n)
	return v
}

// yamlError records a goccy error with its position.
func (p *parse) yamlError(err error) {
	var te interface {
		GetToken() *token.Token
		GetMessage() string
	}
	if errors.As(err, &te) {
		msg := te.GetMessage()
		// goccy names our Go types ("into Go struct field rawFile.Machines of type int"); the
		// file's author knows the YAML keys only, which the field path gives.
		msg = goTypes.ReplaceAllString(msg, "into $2")
		msg = strings.Replace(msg, " ( overflow )", ": out of range", 1)
		p.failAt(te.GetToken(), msg)
		if tk := te.GetToken(); tk != nil && p.root != nil {
			p.errs[len(p.errs)-1].(*Error).Field = fieldPath(find(p.root, tk, nil))
		}
		return
	}
	p.failAt(nil, err.Error())
}

var goTypes = regexp.MustCompile(`into (Go struct field \S+|Go value) of type (\S+)`)

// find returns the path of the node under n whose token is tk, or nil.
func find(n ast.Node, tk *token.Token, path []any) []any {
	if n == nil {
		return nil
	}
	if n.GetToken() == tk {
		return path
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		for _, mv := range v.Values {
			key := ""
			if mv.Key != nil && mv.Key.GetToken() != nil {
				key = mv.Key.GetToken().Value
			}
			if mv.Key != nil && mv.Key.GetToken() == tk {
				return append(path, key)
			}
			if r := find(mv.Value, tk, append(path[:len(path):len(path)], key)); r != nil {
				return r
			}
		}
	case *ast.SequenceNode:
		for i, e := range v.Values {
			if r := find(e, tk, append(path[:len(path):len(path)], i)); r != nil {
				return r
			}
		}
	}
	return nil
}

// check turns the decoded file into a Scenario, recording every problem.
func (p *parse) check(raw *rawFile) *Scenario {
	sc := &Scenario{}
	if raw.ClockStart != nil {
		t, err := time.Parse(time.RFC3339Nano, *raw.ClockStart)
		if err != nil {
			p.fail([]any{"clock_start"}, "%q is not an RFC 3339 time such as 2026-03-02T06:00:00+09:00", *raw.ClockStart)
		}
		sc.ClockStart = t
	}
	if len(raw.Machines) == 0 {
		p.fail([]any{"machines"}, "missing or empty: want at least one machine")
	}
	seen := map[int]int{}
	for i := range raw.Machines {
		rm := &raw.Machines[i]
		at := []any{"machines", i}
		s := line.Script{RejectEvery: rm.RejectEvery, RejectRate: rm.RejectRate, StartParts: rm.StartParts}
		switch {
		case rm.Machine == nil:
			p.fail(at, "machine: missing: want the machine number, 1..%d", line.MaxMachines)
		case *rm.Machine < 1 || *rm.Machine > line.MaxMachines:
			p.fail(append(at, "machine"), "%d outside 1..%d", *rm.Machine, line.MaxMachines)
		default:
			s.Machine = *rm.Machine
			if j, dup := seen[s.Machine]; dup {
				p.fail(append(at, "machine"), "machine %d is scripted already by machines[%d]", s.Machine, j)
			}
			seen[s.Machine] = i
		}
		s.Cycle = p.cycle(at, "cycle", rm.Cycle, true)
		s.IdealCycle = p.cycle(at, "ideal_cycle", rm.IdealCycle, true)
		if rm.RejectEvery < 0 {
			p.fail(append(at, "reject_every"), "%d is negative: want N for every Nth part, or 0", rm.RejectEvery)
		}
		if !(rm.RejectRate >= 0 && rm.RejectRate < 1) {
			p.fail(append(at, "reject_rate"), "%v outside 0..1 (1 excluded)", rm.RejectRate)
		}
		if len(rm.Timeline) == 0 {
			p.fail(at, "timeline: missing or empty: want at least the event at 0s that sets the state")
		}
		for j := range rm.Timeline {
			re := &rm.Timeline[j]
			eat := append(append([]any{}, at...), "timeline", j)
			e := line.Event{Alarm: re.Alarm, Reset: re.Reset}
			if re.At == nil {
				p.fail(eat, "at: missing: want the offset from the start, e.g. 1h30m")
			} else if d, ok := p.duration(append(eat, "at"), *re.At); ok {
				e.At = d
				switch {
				case j == 0 && d != 0:
					p.fail(append(eat, "at"), "the first event must be at 0s")
				case j > 0 && len(s.Events) == j && d <= s.Events[j-1].At:
					p.fail(append(eat, "at"), "%v is not after the event before it (%v)", d, s.Events[j-1].At)
				}
			}
			if re.State != nil {
				st, ok := states[*re.State]
				if !ok {
					p.fail(append(eat, "state"), "%q is not running, idle, blocked, down, setup or maintenance", *re.State)
				}
				e.State = st
			} else if j == 0 {
				p.fail(eat, "state: missing: the first event sets the state")
			}
			if re.Alarm != 0 && (re.State == nil || *re.State != "down") {
				p.fail(append(eat, "alarm"), "an alarm code needs state: down in the same event")
			}
			e.Cycle = p.cycle(eat, "cycle", re.Cycle, false)
			e.IdealCycle = p.cycle(eat, "ideal_cycle", re.IdealCycle, false)
			if re.State == nil && re.Cycle == nil && re.IdealCycle == nil && !re.Reset && re.At != nil {
				p.fail(eat, "the event changes nothing: give state, cycle, ideal_cycle or reset")
			}
			s.Events = append(s.Events, e)
		}
		sc.Scripts = append(sc.Scripts, s)
	}
	return sc
}

// duration parses an offset: Go syntax (1h30m, 2.5s), not negative, whole milliseconds.
func (p *parse) duration(path []any, s string) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.fail(path, "%q is not a duration such as 2.5s or 1h30m", s)
	case d < 0:
		p.fail(path, "%v is negative", d)
	case d%time.Millisecond != 0:
		p.fail(path, "%v is not whole milliseconds", d)
	default:
		return d, true
	}
	return 0, false
}

// cycle parses the cycle time at parent.key: more than 0, at most 65.535 s, whole milliseconds.
func (p *parse) cycle(parent []any, key string, s *string, required bool) time.Duration {
	path := append(append([]any{}, parent...), key)
	if s == nil {
		if required {
			p.fail(parent, "%s: missing: want a duration such as 2.5s", key)
		}
		return 0
	}
	d, ok := p.duration(path, *s)
	if !ok {
		return 0
	}
	if d == 0 || d > maxCycle {
		p.fail(path, "%v outside 1ms..%v", d, maxCycle)
		return 0
	}
	return d
}
