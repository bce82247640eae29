package publish

import (
	"fmt"
	"strings"
	"sync"

	"github.com/floorlink/floorlink/agent/record"
)

// DefaultTopicTemplate places each record under its ISA-95 path.
const DefaultTopicTemplate = "floorlink/v1/{site}/{area}/{line}/{source}/{kind}"

// topicVars are the placeholders a topic template may use.
var topicVars = []string{"{gateway}", "{site}", "{area}", "{line}", "{source}", "{kind}"}

// CheckTopicLevel reports whether s may stand as one MQTT topic level: not empty, and free of the
// separator and the wildcards (MQTT 3.1.1 section 4.7).
func CheckTopicLevel(s string) error {
	if s == "" {
		return fmt.Errorf("empty topic level")
	}
	if i := strings.IndexAny(s, "/+#\x00"); i >= 0 {
		return fmt.Errorf("%q holds %q, which MQTT reserves in topic names", s, s[i])
	}
	return nil
}

// topics expands the template once per (source, kind) and remembers the result, so the publish
// loop allocates no topic string in steady state.
type topics struct {
	tmpl                    string
	gateway, site, area, ln string

	mu     sync.Mutex // places change on a reload, while Run's goroutine builds topics
	places map[string]Place
	cache  map[topicKey]string
}

// setPlaces replaces the devices' and assets' places (a reload).
func (t *topics) setPlaces(places map[string]Place) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.places, t.cache = places, map[topicKey]string{}
}

type topicKey struct {
	source string
	kind   record.Kind
}

func newTopics(tmpl string, o *Options) (*topics, error) {
	if tmpl == "" {
		tmpl = DefaultTopicTemplate
	}
	rest := tmpl
	for _, v := range topicVars {
		rest = strings.ReplaceAll(rest, v, "")
	}
	if i := strings.IndexAny(rest, "{}+#"); i >= 0 {
		return nil, fmt.Errorf("topic template %q: unknown placeholder or wildcard at %q (placeholders: %s)",
			tmpl, rest[i:], strings.Join(topicVars, " "))
	}
	if !strings.Contains(tmpl, "{source}") || !strings.Contains(tmpl, "{kind}") {
		return nil, fmt.Errorf("topic template %q must contain {source} and {kind}", tmpl)
	}
	return &topics{tmpl: tmpl, gateway: o.Gateway, site: o.Site, area: o.Area, ln: o.Line,
		places: o.Places, cache: map[topicKey]string{}}, nil
}

func (t *topics) topic(source string, kind record.Kind) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := topicKey{source, kind}
	if s, ok := t.cache[k]; ok {
		return s
	}
	if source == "" { // the gateway's own events
		source = t.gateway
	}
	area, line := t.area, t.ln
	if p, ok := t.places[source]; ok {
		area, line = p.Area, p.Line
	}
	s := strings.NewReplacer("{gateway}", t.gateway, "{site}", t.site, "{area}", area, "{line}", line,
		"{source}", source, "{kind}", kind.String()).Replace(t.tmpl)
	t.cache[k] = s
	return s
}
