package watch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// DefaultTopicTemplate is the agent's default mqtt.topic_template (docs/mqtt.md).
const DefaultTopicTemplate = "floorlink/v1/{site}/{area}/{line}/{source}/{kind}"

// gatewayPrefix is where every gateway publishes its stats and status, whatever its topic
// template: floorlink/v1/{site}/gateway/{gateway}/stats|status.
const gatewayPrefix = "floorlink/v1/"

// JSON decodes the JSON contract: records (telemetry, kpi, event) on topics of a topic
// template, and the gateway's stats and status. Safe for concurrent use.
type JSON struct {
	tmpl    string
	re      *regexp.Regexp
	filters []string
}

// templateVars are the placeholders of a topic template (agent/publish's).
var templateVars = []string{"gateway", "site", "area", "line", "source", "kind"}

// NewJSON returns the decoder for records published under tmpl ("" means
// DefaultTopicTemplate), which must hold {source} and {kind}.
func NewJSON(tmpl string) (*JSON, error) {
	if tmpl == "" {
		tmpl = DefaultTopicTemplate
	}
	if !strings.Contains(tmpl, "{source}") || !strings.Contains(tmpl, "{kind}") {
		return nil, fmt.Errorf("topic template %q: must contain {source} and {kind}", tmpl)
	}
	var expr strings.Builder
	expr.WriteString("^")
	seen := map[string]bool{}
	rest := tmpl
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			expr.WriteString(regexp.QuoteMeta(rest))
			break
		}
		expr.WriteString(regexp.QuoteMeta(rest[:open]))
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("topic template %q: unclosed {", tmpl)
		}
		name := rest[open+1 : open+end]
		known := false
		for _, v := range templateVars {
			known = known || v == name
		}
		if !known {
			return nil, fmt.Errorf("topic template %q: unknown placeholder {%s}", tmpl, name)
		}
		if seen[name] { // a placeholder used twice captures once
			expr.WriteString("[^/]+")
		} else {
			expr.WriteString("(?P<" + name + ">[^/]+)")
			seen[name] = true
		}
		rest = rest[open+end+1:]
	}
	expr.WriteString("$")
	re, err := regexp.Compile(expr.String())
	if err != nil {
		return nil, fmt.Errorf("topic template %q: %w", tmpl, err)
	}
	// Records: the template's levels up to its first placeholder; gateway topics are always
	// under floorlink/v1/.
	var fixed []string
	for _, level := range strings.Split(tmpl, "/") {
		if strings.Contains(level, "{") {
			break
		}
		fixed = append(fixed, level)
	}
	records := strings.Join(append(fixed, "#"), "/")
	filters := []string{gatewayPrefix + "#"}
	if !strings.HasPrefix(records, gatewayPrefix) {
		filters = append(filters, records)
	}
	return &JSON{tmpl: tmpl, re: re, filters: filters}, nil
}

// Filters returns floorlink/v1/# and, when the template puts records elsewhere, the filter of
// the template's fixed levels.
func (j *JSON) Filters() []string { return append([]string(nil), j.filters...) }

// Decode reads a record, stats or status message.
func (j *JSON) Decode(dst []Update, topic string, payload []byte) ([]Update, error) {
	// Gateway topics first: their shape is fixed, and a template of six levels could match
	// them too.
	if rest, ok := strings.CutPrefix(topic, gatewayPrefix); ok {
		if lv := strings.Split(rest, "/"); len(lv) == 4 && lv[1] == "gateway" && (lv[3] == "stats" || lv[3] == "status") {
			return decodeGateway(dst, lv[0], lv[2], lv[3], payload)
		}
	}
	// The retained live KPI record of an asset (its window so far) is the asset's kpi topic
	// plus /live: shown as the asset's KPIs, the closed windows' and the live ones alike.
	if strings.HasSuffix(topic, "/kpi/live") {
		topic = strings.TrimSuffix(topic, "/live")
	}
	m := j.re.FindStringSubmatch(topic)
	if m == nil {
		return dst, nil
	}
	u := Update{}
	for i, name := range j.re.SubexpNames() {
		switch name {
		case "site":
			u.Site = m[i]
		case "area":
			u.Area = m[i]
		case "line":
			u.Line = m[i]
		case "source":
			u.Source = m[i]
		case "gateway":
			u.Gateway = m[i]
		case "kind":
			switch m[i] {
			case "telemetry":
				u.Kind = Telemetry
			case "kpi":
				u.Kind = KPI
			case "event":
				u.Kind = Event
			default:
				return dst, nil // a kind this view does not know
			}
		}
	}
	var rec struct {
		Gateway    string                     `json:"gateway"`
		Seq        uint64                     `json:"seq"`
		TS         string                     `json:"ts"`
		Historical bool                       `json:"historical"`
		Values     map[string]json.RawMessage `json:"values"`
		Quality    map[string]string          `json:"quality"`
	}
	if err := json.Unmarshal(payload, &rec); err != nil {
		return dst, fmt.Errorf("%s on %s: %w", u.Kind, topic, err)
	}
	if rec.Values == nil {
		return dst, fmt.Errorf("%s on %s: no values", u.Kind, topic)
	}
	if rec.Gateway != "" {
		u.Gateway = rec.Gateway
	}
	u.Seq, u.Historical = rec.Seq, rec.Historical
	if rec.TS != "" {
		ts, err := time.Parse(time.RFC3339Nano, rec.TS)
		if err != nil {
			return dst, fmt.Errorf("%s on %s: ts: %w", u.Kind, topic, err)
		}
		u.TS = ts
	}
	u.Values = make([]Value, 0, len(rec.Values))
	for name, raw := range rec.Values {
		v := Value{Name: name, Quality: rec.Quality[name]}
		v.Text, v.Null = valueText(raw)
		u.Values = append(u.Values, v)
	}
	return append(dst, u), nil
}

// valueText is a JSON value as the view shows it: numbers and booleans as written, strings
// unquoted, anything else compact.
func valueText(raw json.RawMessage) (text string, null bool) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", true
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, false
		}
	case raw[0] == '{' || raw[0] == '[':
		var b bytes.Buffer
		if json.Compact(&b, raw) == nil {
			return b.String(), false
		}
	}
	return string(raw), false
}

func decodeGateway(dst []Update, site, gateway, kind string, payload []byte) ([]Update, error) {
	topic := gatewayPrefix + site + "/gateway/" + gateway + "/" + kind
	u := Update{Site: site, Gateway: gateway, Source: gateway}
	if kind == "status" {
		var s struct {
			State   string `json:"state"`
			TS      string `json:"ts"`
			Session uint64 `json:"session"`
		}
		if err := json.Unmarshal(payload, &s); err != nil {
			return dst, fmt.Errorf("status on %s: %w", topic, err)
		}
		if s.State == "" {
			return dst, fmt.Errorf("status on %s: no state", topic)
		}
		u.Kind = Status
		u.GatewayStatus = &GatewayStatus{State: s.State, Session: s.Session}
		u.GatewayStatus.TS, _ = time.Parse(time.RFC3339Nano, s.TS)
		u.TS = u.GatewayStatus.TS
		return append(dst, u), nil
	}
	var s struct {
		TS      string `json:"ts"`
		Epoch   string `json:"epoch"`
		Session uint64 `json:"session"`
		Buffer  struct {
			Head      uint64  `json:"head"`
			Cursor    uint64  `json:"cursor"`
			Depth     uint64  `json:"depth"`
			FileBytes int64   `json:"file_bytes"`
			OldestAge float64 `json:"oldest_age_seconds"`
			Dropped   uint64  `json:"dropped"`
			QueueFull uint64  `json:"queue_full"`
		} `json:"buffer"`
		Pipeline struct {
			Dropped uint64 `json:"dropped"`
		} `json:"pipeline"`
		Publish struct {
			Published   uint64  `json:"published"`
			Acked       uint64  `json:"acked"`
			Rate        float64 `json:"rate"`
			DeadLetters uint64  `json:"dead_letters"`
		} `json:"publish"`
	}
	if err := json.Unmarshal(payload, &s); err != nil {
		return dst, fmt.Errorf("stats on %s: %w", topic, err)
	}
	u.Kind = Stats
	st := &GatewayStats{Session: s.Session, Epoch: s.Epoch, Depth: s.Buffer.Depth, FileBytes: s.Buffer.FileBytes,
		OldestAge: time.Duration(s.Buffer.OldestAge * float64(time.Second)), Dropped: s.Buffer.Dropped,
		QueueFull: s.Buffer.QueueFull, Head: s.Buffer.Head, Cursor: s.Buffer.Cursor, NotStored: s.Pipeline.Dropped,
		Published: s.Publish.Published, Acked: s.Publish.Acked, Rate: s.Publish.Rate, DeadLetter: s.Publish.DeadLetters}
	st.TS, _ = time.Parse(time.RFC3339Nano, s.TS)
	u.TS, u.GatewayStats = st.TS, st
	return append(dst, u), nil
}
