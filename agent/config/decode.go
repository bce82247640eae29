package config

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// decoder walks one file's AST. It never stops at a problem: it records it, leaves the field
// at its zero value or default, and goes on, so that one run reports everything.
type decoder struct {
	path    string // as given, for problems
	dir     string // absolute directory of the file, for relative paths
	opts    Options
	intSize int // strconv.IntSize, a field so that tests can play a 32-bit gateway

	problems []Problem
	pos      map[string]position
	failed   map[string]bool // field paths with a problem: cross-field checks skip them
}

func newDecoder(path string, opts Options) *decoder {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil { // only when the working directory is gone; keep the relative form
		dir = filepath.Dir(path)
	}
	return &decoder{
		path: path, dir: dir, opts: opts, intSize: strconv.IntSize,
		pos: map[string]position{}, failed: map[string]bool{},
	}
}

func (d *decoder) problem(at position, path, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.path, Line: at.line, Col: at.col, Path: path,
		Msg: fmt.Sprintf(format, args...)})
	d.failed[path] = true
}

// quietly runs fn and forgets the problems it finds: used to fill defaults into a section that
// is missing altogether, which is reported once rather than once per required key.
func (d *decoder) quietly(fn func()) {
	n := len(d.problems)
	fn()
	d.problems = d.problems[:n]
}

// decode parses data and decodes its one document into a File; nil on a YAML syntax error.
func (d *decoder) decode(data []byte) *File {
	docs, ok := d.parse(data)
	if !ok {
		return nil
	}
	f := &File{Path: d.path, pos: &positions{d.pos}}
	var root ast.Node
	if len(docs) > 0 {
		root = docs[0].Body
		d.pos[""] = nodePos(root)
	}
	if len(docs) > 1 {
		at := nodePos(docs[1].Body)
		if docs[1].Start != nil {
			at = tokenPos(docs[1].Start)
		}
		d.problem(at, "", "a second YAML document: a config file holds exactly one (remove the --- line)")
	}
	d.unsupported("", root)
	switch n := unwrap(root).(type) {
	case nil:
		msg := "empty file: want a mapping with gateway, mqtt and devices (see docs/configuration.md)"
		if strings.TrimSpace(string(data)) != "" {
			msg = "no settings, only comments: want a mapping with gateway, mqtt and devices (see docs/configuration.md)"
		}
		d.problem(position{1, 1}, "", "%s", msg)
		d.quietly(func() { d.file(f, nil) })
	case *ast.MappingNode:
		d.file(f, n)
	default:
		d.problem(nodePos(root), "", "want a mapping with gateway, mqtt and devices, got %s", kindOf(n))
		d.quietly(func() { d.file(f, nil) })
	}
	return f
}

// parse returns the documents of data that have a body. goccy's parser is run without its own
// duplicate-key check, which stops at the first duplicate; the mapping walk reports them all.
func (d *decoder) parse(data []byte) (docs []*ast.DocumentNode, ok bool) {
	defer func() {
		// The parser is third-party code fed untrusted input; a panic in it must come out as a
		// problem with the file, not bring the agent down.
		if r := recover(); r != nil {
			d.problem(position{}, "", "cannot parse the YAML (parser failure: %v)", r)
			docs, ok = nil, false
		}
	}()
	file, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		d.syntaxError(err)
		return nil, false
	}
	for _, doc := range file.Docs {
		switch doc.Body.(type) {
		case nil, *ast.DirectiveNode, *ast.CommentGroupNode, *ast.CommentNode:
			continue
		}
		docs = append(docs, doc)
	}
	return docs, true
}

func (d *decoder) syntaxError(err error) {
	var at position
	msg := err.Error()
	if e, ok := err.(interface {
		GetToken() *token.Token
		GetMessage() string
	}); ok {
		msg = e.GetMessage()
		if tk := e.GetToken(); tk != nil {
			at = tokenPos(tk)
		}
	}
	if strings.Contains(msg, "'\t'") {
		msg = "a tab character: YAML indents with spaces only"
	}
	d.problem(at, "", "YAML syntax: %s", msg)
}

// unsupported reports every anchor, alias, merge key and explicit tag under n, which is at
// path. They are refused rather than resolved: an alias shares one node between several field
// paths, so one mistake would be reported several times at a place that names none of them,
// and expanding aliases is the classic way to make a small YAML file decode into a huge one.
// Integrators who need repetition generate the file.
func (d *decoder) unsupported(path string, n ast.Node) {
	switch n := n.(type) {
	case *ast.AnchorNode:
		d.problem(nodePos(n), path, "anchors (&%s) are not supported: write the value out", nodeName(n.Name))
		d.unsupported(path, n.Value)
	case *ast.AliasNode:
		d.problem(nodePos(n), path, "aliases (*%s) are not supported: write the value out", nodeName(n.Value))
	case *ast.TagNode:
		d.problem(nodePos(n), path, "YAML tags (%s) are not supported: quote a value to make it a string", n.Start.Value)
		d.unsupported(path, n.Value)
	case *ast.MappingNode:
		for _, mv := range n.Values {
			d.unsupported(path, mv)
		}
	case *ast.MappingValueNode:
		if _, ok := n.Key.(*ast.MergeKeyNode); ok {
			d.problem(nodePos(n.Key), path, "merge keys (<<) are not supported: write the keys out")
			return
		}
		key, _ := keyText(n.Key)
		d.unsupported(path, n.Key)
		d.unsupported(joinPath(path, key), n.Value)
	case *ast.MappingKeyNode:
		d.unsupported(path, n.Value)
	case *ast.SequenceNode:
		for i, v := range n.Values {
			d.unsupported(fmt.Sprintf("%s[%d]", path, i), v)
		}
	}
}

func nodeName(n ast.Node) string {
	if n == nil {
		return ""
	}
	return n.GetToken().Value
}

// unwrap looks through anchors and tags (already reported) to the value they decorate.
func unwrap(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.NullNode:
			return nil
		default:
			return n
		}
	}
}

func tokenPos(tk *token.Token) position {
	if tk == nil || tk.Position == nil {
		return position{}
	}
	return position{tk.Position.Line, tk.Position.Column}
}

// nodePos is where a node starts as a reader sees it: goccy's token for a block mapping is the
// colon after its first key, so a mapping is placed at its first key.
func nodePos(n ast.Node) position {
	switch v := n.(type) {
	case nil:
		return position{}
	case *ast.MappingNode:
		if !v.IsFlowStyle && len(v.Values) > 0 {
			return nodePos(v.Values[0].Key)
		}
	case *ast.MappingValueNode:
		return nodePos(v.Key)
	}
	return tokenPos(n.GetToken())
}

// itemPos is where a list's item i is: at its value, or at its "-" when it has none (goccy
// places an empty item's null one or two columns after the dash).
func itemPos(seq *ast.SequenceNode, i int) position {
	if unwrap(seq.Values[i]) == nil && i < len(seq.Entries) && seq.Entries[i] != nil && seq.Entries[i].Start != nil {
		return tokenPos(seq.Entries[i].Start)
	}
	return nodePos(seq.Values[i])
}

// kindOf names n's kind for "want X, got Y" messages; it never shows a value.
func kindOf(n ast.Node) string {
	switch v := unwrap(n).(type) {
	case nil:
		return "nothing"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.AliasNode:
		return "an alias"
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.MappingKeyNode:
		return "a complex key"
	default:
		return strings.ToLower(v.Type().String())
	}
}

// scalar is one scalar value of the file, after ${VAR} expansion, or a default from the field
// table standing in for a missing key.
type scalar struct {
	text     string // expanded
	raw      string // as written
	pos      position
	node     ast.Node // nil for a default
	expanded bool     // text came (partly) from the environment: never echo it
}

// what shows the value in a message: as written (quoted unless YAML took it for a number or a
// boolean), except a value that came from the environment, which may be a secret.
func (s scalar) what() string {
	switch {
	case s.expanded:
		if strings.HasPrefix(s.raw, "${") && strings.Index(s.raw, "}") == len(s.raw)-1 {
			return "the value of " + s.raw
		}
		return fmt.Sprintf("the expansion of %q", s.raw)
	case s.plain():
		return s.raw
	}
	return strconv.Quote(s.text)
}

// plain reports whether the scalar was written unquoted and YAML gave it a non-string type
// (number, boolean, ...): its text is what was written, but another YAML reader would see a
// typed value.
func (s scalar) plain() bool {
	switch s.node.(type) {
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return true
	}
	return false
}

// mapping is one YAML mapping being decoded as a known section. Missing keys are placed at the
// mapping itself.
type mapping struct {
	d       *decoder
	path    string
	at      position
	present bool // the file has this mapping (possibly empty)
	entries map[string]*ast.MappingValueNode
}

// mapping checks that n is a mapping with only the given keys, each once, records the
// positions of the keys it knows, and returns it for field-by-field decoding. n nil (missing,
// or a YAML null) gives an empty mapping placed at at. keys nil accepts any key.
func (d *decoder) mapping(path string, n ast.Node, at position, keys []string) *mapping {
	m := &mapping{d: d, path: path, at: at, entries: map[string]*ast.MappingValueNode{}}
	if n == nil {
		return m
	}
	var values []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		values = v.Values
	case *ast.MappingValueNode: // goccy's form of a one-key flow mapping in some contexts
		values = []*ast.MappingValueNode{v}
	case *ast.AliasNode:
		return m // reported by unsupported; not present, so its keys are not reported missing
	default:
		d.problem(nodePos(n), path, "want a mapping, got %s", kindOf(n))
		return m
	}
	m.present = true
	first := map[string]position{}
	for _, mv := range values {
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			continue // reported by unsupported
		}
		key, ok := keyText(mv.Key)
		kp := nodePos(mv.Key)
		child := joinPath(path, key)
		if !ok {
			d.problem(kp, path, "want a key name, got %s", kindOf(mv.Key))
			continue
		}
		if p, dup := first[key]; dup {
			d.problem(kp, child, "duplicate key (first at %d:%d)", p.line, p.col)
			continue
		}
		first[key] = kp
		if keys != nil && !slices.Contains(keys, key) {
			d.problem(kp, child, "%s", unknownKey(key, keys))
			continue
		}
		m.entries[key] = mv
		switch v := unwrap(mv.Value).(type) {
		case nil, *ast.MappingNode, *ast.MappingValueNode, *ast.SequenceNode:
			d.pos[child] = kp
		default:
			d.pos[child] = nodePos(v)
		}
	}
	return m
}

func keyText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.MappingKeyNode: // "? key", YAML's explicit form of a plain key
		return keyText(v.Value)
	case *ast.StringNode:
		return v.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return v.GetToken().Value, true
	}
	return "", false
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// has reports whether the file sets key (to anything but null).
func (m *mapping) has(key string) bool {
	mv, ok := m.entries[key]
	return ok && unwrap(mv.Value) != nil
}

// value returns key's value, nil when missing or null.
func (m *mapping) value(key string) ast.Node {
	if mv, ok := m.entries[key]; ok {
		return unwrap(mv.Value)
	}
	return nil
}

// posOf is where key is, or the mapping when key is missing.
func (m *mapping) posOf(key string) position {
	if p, ok := m.d.pos[joinPath(m.path, key)]; ok {
		return p
	}
	return m.at
}

// bad reports a problem with key, at its value (or the mapping when key is missing).
func (m *mapping) bad(key, format string, args ...any) {
	m.d.problem(m.posOf(key), joinPath(m.path, key), format, args...)
}

func (m *mapping) failed(key string) bool { return m.d.failed[joinPath(m.path, key)] }

// sub decodes key as a nested mapping.
func (m *mapping) sub(key string, keys []string) *mapping {
	return m.d.mapping(joinPath(m.path, key), m.value(key), m.posOf(key), keys)
}

// scalar returns key's scalar value, expanded; when key is missing, the field table's default
// stands in (ok false when there is none). want describes the expected value for the message
// when the file holds a mapping or a list instead.
func (m *mapping) scalar(key, want string) (scalar, bool) {
	path := joinPath(m.path, key)
	n := m.value(key)
	if n == nil {
		def, ok := applied(genericPath(path))
		if !ok {
			return scalar{}, false
		}
		return scalar{text: def, raw: def, pos: m.at}, true
	}
	return m.d.scalarOf(path, n, want)
}

// scalarOf reads n as a scalar and expands ${VAR} in it.
func (d *decoder) scalarOf(path string, n ast.Node, want string) (scalar, bool) {
	s := scalar{node: n, pos: nodePos(n)}
	switch v := n.(type) {
	case nil: // an empty list item
		d.problem(d.at(path), path, "%s, got nothing", want)
		return s, false
	case *ast.StringNode:
		s.raw = v.Value
	case *ast.LiteralNode:
		s.raw = v.Value.Value
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		s.raw = v.GetToken().Value
	case *ast.AliasNode:
		return s, false // reported by unsupported
	default:
		raw, ok := splitScalar(n)
		if !ok {
			d.problem(s.pos, path, "%s, got %s", want, kindOf(n))
			return s, false
		}
		s.raw = raw
	}
	text, expanded, errs := expand(s.raw, d.opts.LookupEnv)
	for _, e := range errs {
		d.problem(s.pos, path, "%s", e)
	}
	if len(errs) > 0 {
		return s, false
	}
	s.text, s.expanded = text, expanded
	return s, true
}

// splitScalar undoes a goccy-go-yaml quirk: inside a flow mapping, an unquoted scalar holding
// colons, such as tcp://127.0.0.1:1883 in `mqtt: {brokers: [tcp://127.0.0.1:1883]}`, comes back
// as a one-entry mapping split at its last colon. YAML 1.2 reads it as one scalar (a colon not
// followed by a space does not start a value), so when the key and the value touch in the
// source, join them back.
func splitScalar(n ast.Node) (string, bool) {
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) == 1 {
		n = m.Values[0]
	}
	mv, ok := n.(*ast.MappingValueNode)
	if !ok || mv.Key == nil || mv.Value == nil {
		return "", false
	}
	kt, vt := mv.Key.GetToken(), mv.Value.GetToken()
	if kt == nil || vt == nil || kt.Position == nil || vt.Position == nil {
		return "", false
	}
	switch mv.Value.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode:
	default:
		return "", false
	}
	// Only plain (unquoted) scalars can have been split.
	if _, ok := mv.Key.(*ast.StringNode); !ok || kt.Type != token.StringType ||
		vt.Type == token.SingleQuoteType || vt.Type == token.DoubleQuoteType {
		return "", false
	}
	key := kt.Value
	if kt.Position.Line != vt.Position.Line || vt.Position.Column != kt.Position.Column+utf8.RuneCountInString(key)+1 {
		return "", false
	}
	return key + ":" + vt.Value, true
}

// str decodes a string. An unquoted decimal integer is taken as written (integrators write
// `line: 3`), but other unquoted typed values are refused, because every YAML reader but this
// one would change them: 00017 is the octal number 15, 1.10 is 1.1, true is a boolean.
func (m *mapping) str(key string, dst *string) bool {
	s, ok := m.strScalar(key)
	if ok {
		*dst = s.text
	}
	return ok
}

func (m *mapping) strScalar(key string) (scalar, bool) {
	s, ok := m.scalar(key, "want a string")
	if !ok {
		return s, false
	}
	if s.plain() && !isDecimalInt(s.node) {
		m.bad(key, "%s", quoteIt(s))
		return s, false
	}
	return s, true
}

// quoteIt explains why an unquoted typed value must be quoted to be a string.
func quoteIt(s scalar) string {
	switch s.node.(type) {
	case *ast.BoolNode:
		return fmt.Sprintf("want a string: write \"%s\" in quotes (YAML reads it as a boolean)", s.raw)
	case *ast.IntegerNode:
		return fmt.Sprintf("want a string: write \"%s\" in quotes (YAML reads an unquoted %s as the number %v, which loses its form)",
			s.raw, s.raw, s.node.(*ast.IntegerNode).Value)
	default:
		return fmt.Sprintf("want a string: write \"%s\" in quotes (YAML reads an unquoted %s as a number)", s.raw, s.raw)
	}
}

// isDecimalInt reports whether n is an unquoted integer that every YAML reader reads as the
// same digits: decimal, no sign, no leading zero.
func isDecimalInt(n ast.Node) bool {
	v, ok := n.(*ast.IntegerNode)
	if !ok || v.GetToken().Type != token.IntegerType {
		return false
	}
	t := v.GetToken().Value
	return t != "" && strings.Trim(t, "0123456789") == "" && (t == "0" || t[0] != '0')
}

// integer decodes an integer in [lo, hi]; want phrases the range for the message ("" for
// "want an integer from lo to hi").
func (m *mapping) integer(key string, dst *int, lo, hi int, want string) bool {
	if want == "" {
		want = fmt.Sprintf("want an integer from %d to %d", lo, hi)
	}
	s, ok := m.scalar(key, want)
	if !ok {
		return false
	}
	v, ok := parseInt(s.text)
	if !ok || v < int64(lo) || v > int64(hi) {
		m.bad(key, "%s, got %s", want, s.what())
		return false
	}
	*dst = int(v)
	return true
}

// number decodes a finite number.
func (m *mapping) number(key string, dst *float64) bool {
	s, ok := m.scalar(key, "want a number")
	if !ok {
		return false
	}
	v, ok := parseFloat(s.text)
	if !ok {
		m.bad(key, "want a number like 0.1, got %s", s.what())
		return false
	}
	if !isFinite(v) {
		m.bad(key, "want a finite number, got %s", s.what())
		return false
	}
	*dst = v
	return true
}

// duration decodes a duration that is not negative and, when inRange is not nil, passes it;
// want phrases the range for the message.
func (m *mapping) duration(key string, dst *time.Duration, want string, inRange func(time.Duration) bool) bool {
	s, ok := m.scalar(key, wantDuration)
	if !ok {
		return false
	}
	v, hint, ok := parseDuration(s.text)
	switch {
	case !ok:
		m.bad(key, "%s, got %s%s", wantDuration, s.what(), hint)
		return false
	case v < 0:
		m.bad(key, "must not be negative, got %s", s.what())
		return false
	case inRange != nil && !inRange(v):
		m.bad(key, "%s, got %s", want, s.what())
		return false
	}
	*dst = v
	return true
}

// oneOf decodes a string that must be one of allowed.
func (m *mapping) oneOf(key, noun string, dst *string, allowed ...string) bool {
	s, ok := m.strScalar(key)
	if !ok {
		return false
	}
	if !slices.Contains(allowed, s.text) {
		m.bad(key, "unknown %s %s (want %s)", noun, s.what(), orList(allowed))
		return false
	}
	*dst = s.text
	return true
}

// level decodes a name that becomes an MQTT topic level.
func (m *mapping) level(key string, dst *string, required bool) bool {
	s, ok := m.strScalar(key)
	if !ok {
		if required && !m.has(key) && !m.failed(key) {
			m.bad(key, "required")
		}
		return false
	}
	if !m.isLevel(key, s) {
		return false
	}
	*dst = s.text
	return true
}

// isLevel reports whether key's value s may be a topic level, and the problem when not.
func (m *mapping) isLevel(key string, s scalar) bool {
	if msg := topicLevel(s.text); msg != "" {
		m.bad(key, "%s %s", s.what(), msg)
		return false
	}
	return true
}

// list returns key's items; nil when missing. Each item's position is recorded.
func (m *mapping) list(key string) []ast.Node {
	path := joinPath(m.path, key)
	switch v := m.value(key).(type) {
	case nil:
		return nil
	case *ast.SequenceNode:
		for i := range v.Values {
			m.d.pos[fmt.Sprintf("%s[%d]", path, i)] = itemPos(v, i)
		}
		return v.Values
	case *ast.AliasNode:
		return nil
	default:
		m.bad(key, "want a list, got %s", kindOf(v))
		return nil
	}
}

// orList writes "a", "a or b", "a, b or c".
func orList(xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// checkText refuses what no name should hold: bytes that are not UTF-8 and control characters
// (they corrupt logs, terminals and JSON consumers that do not escape them).
func checkText(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || 0x80 <= r && r < 0xa0 {
			return fmt.Sprintf("holds the control character %U", r)
		}
	}
	return ""
}
