// Package statuspage is the agent's status page: one HTML page, its script and its style sheet,
// compiled into the binary, that shows a gateway to the technician standing at it. The page
// reads /api/v1/status (docs/operations.md) once a second, relative to its own address, and
// renders the gateway, its devices and their tags, the buffer and the publisher, and the
// assets' OEE when the status holds an "assets" array.
//
// The page works on a plant network without the internet: it loads nothing from anywhere but
// its own origin (no CDN, no web font), which its Content-Security-Policy also enforces.
//
// Every label is in one dictionary, page/labels.json, in English and Korean. The handler picks
// the language once per request, from the lang parameter (?lang=ko), else the browser's
// Accept-Language, else English; it translates the page's fixed labels itself and hands the
// script the same dictionary for the rest.
//
// It knows nothing of the agent: it serves files and reads no state, so it imports nothing of
// ours.
package statuspage

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed page
var files embed.FS

// langs are the languages the page speaks, the default first.
var langs = []string{"en", "ko"}

// csp lets the page load its own script, style sheet and status, and nothing else: no inline
// script, no other origin (a plant network has no internet, and a page that tried would hang).
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the page at "/" and its files under "/static/"; any other path is 404, so it
// can be mounted at "GET /" beside the agent's own endpoints. Safe for concurrent use.
//
// The page is rendered once per language when Handler is called. It panics when the embedded
// page or dictionary is broken, which is a build defect the package's tests catch, as
// regexp.MustCompile of a constant does.
func Handler() http.Handler {
	h, err := newHandler()
	if err != nil {
		panic(err)
	}
	return h
}

type handler struct {
	pages  map[string]asset // by language
	static map[string]asset // by path under /static/
}

// asset is one response body with its type and a strong validator.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

func newAsset(body []byte, ctype string) asset {
	sum := sha256.Sum256(body)
	return asset{body: body, ctype: ctype, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
}

func newHandler() (*handler, error) {
	dict, err := dictionary()
	if err != nil {
		return nil, err
	}
	src, err := files.ReadFile("page/index.html")
	if err != nil {
		return nil, err
	}
	h := &handler{pages: map[string]asset{}, static: map[string]asset{}}
	for _, lang := range langs {
		b, err := render(string(src), pageData{Lang: lang, Labels: dict[lang]})
		if err != nil {
			return nil, fmt.Errorf("render page/index.html in %s: %w", lang, err)
		}
		h.pages[lang] = newAsset(b, "text/html; charset=utf-8")
	}
	for name, ctype := range map[string]string{
		"app.js":    "text/javascript; charset=utf-8",
		"style.css": "text/css; charset=utf-8",
	} {
		b, err := files.ReadFile("page/" + name)
		if err != nil {
			return nil, err
		}
		h.static[name] = newAsset(b, ctype)
	}
	return h, nil
}

// render fills index.html's four kinds of placeholder: {{.Lang}}, {{.T "key"}} (a label,
// HTML-escaped), {{.Labels}} (the dictionary as JSON, for the script) and {{current "xx"}}
// (aria-current on the link of the page's own language). Not html/template: its reflective
// method calls switch off the linker's dead code elimination for the whole agent, which cost
// 2.6 MB of a binary that ships to small gateways; the page needs no more than this.
func render(src string, d pageData) ([]byte, error) {
	var b bytes.Buffer
	for {
		i := strings.Index(src, "{{")
		if i < 0 {
			b.WriteString(src)
			return b.Bytes(), nil
		}
		b.WriteString(src[:i])
		j := strings.Index(src[i:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("unclosed {{ at byte %d", i)
		}
		action := strings.TrimSpace(src[i+2 : i+j])
		src = src[i+j+2:]
		switch {
		case action == ".Lang":
			b.WriteString(html.EscapeString(d.Lang))
		case action == ".Labels":
			j, err := json.Marshal(d.Labels) // escapes <, > and &: safe inside <script>
			if err != nil {
				return nil, err
			}
			b.Write(j)
		case strings.HasPrefix(action, ".T "):
			key, err := strconv.Unquote(strings.TrimSpace(action[3:]))
			if err != nil {
				return nil, fmt.Errorf("{{%s}}: want a quoted key", action)
			}
			s, err := d.T(key)
			if err != nil {
				return nil, err
			}
			b.WriteString(html.EscapeString(s))
		case strings.HasPrefix(action, "current "):
			lang, err := strconv.Unquote(strings.TrimSpace(action[8:]))
			if err != nil {
				return nil, fmt.Errorf("{{%s}}: want a quoted language", action)
			}
			if lang == d.Lang {
				b.WriteString(` aria-current="true"`)
			}
		default:
			return nil, fmt.Errorf("unknown placeholder {{%s}}", action)
		}
	}
}

// pageData is what index.html is rendered with.
type pageData struct {
	Lang   string
	Labels map[string]string // the language's dictionary, also handed to the script as JSON
}

// T is the label key in the page's language; a missing key fails the rendering.
func (d pageData) T(key string) (string, error) {
	s, ok := d.Labels[key]
	if !ok {
		return "", fmt.Errorf("no label %q in %s", key, d.Lang)
	}
	return s, nil
}

// dictionary reads page/labels.json and checks that every language has the same keys.
func dictionary() (map[string]map[string]string, error) {
	b, err := files.ReadFile("page/labels.json")
	if err != nil {
		return nil, err
	}
	var dict map[string]map[string]string
	if err := json.Unmarshal(b, &dict); err != nil {
		return nil, fmt.Errorf("page/labels.json: %w", err)
	}
	base := dict[langs[0]]
	for _, lang := range langs {
		d, ok := dict[lang]
		if !ok {
			return nil, fmt.Errorf("page/labels.json: no %q dictionary", lang)
		}
		for k := range base {
			if _, ok := d[k]; !ok {
				return nil, fmt.Errorf("page/labels.json: %q has no label %q", lang, k)
			}
		}
		for k := range d {
			if _, ok := base[k]; !ok {
				return nil, fmt.Errorf("page/labels.json: %q has label %q, which %q lacks", lang, k, langs[0])
			}
		}
	}
	return dict, nil
}

// Label returns the label of key in lang ("" when either is unknown), for tests and tools that
// check what the page shows.
func Label(lang, key string) string {
	dict, err := dictionary()
	if err != nil {
		return ""
	}
	return dict[lang][key]
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var a asset
	switch name, static := strings.CutPrefix(r.URL.Path, "/static/"); {
	case r.URL.Path == "/":
		a = h.pages[negotiate(r.URL.Query().Get("lang"), r.Header.Get("Accept-Language"))]
		w.Header().Set("Vary", "Accept-Language")
	case static && h.static[name].body != nil:
		a = h.static[name]
	default:
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	// Revalidate every time: an upgraded agent must not run last version's script against
	// this version's status. The ETag makes that a 304 of no body.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// negotiate picks the page's language: param when it is one of langs, else the first language
// of the Accept-Language header (by q, then order) that is, else langs[0]. Only the primary
// subtag counts: ko-KR is ko.
func negotiate(param, acceptLanguage string) string {
	if slices.Contains(langs, strings.ToLower(param)) {
		return strings.ToLower(param)
	}
	type choice struct {
		lang string
		q    float64
	}
	var choices []choice
	for part := range strings.SplitSeq(acceptLanguage, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			q = f
		}
		primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		if q > 0 && slices.Contains(langs, primary) {
			choices = append(choices, choice{primary, q})
		}
	}
	slices.SortStableFunc(choices, func(a, b choice) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	if len(choices) > 0 {
		return choices[0].lang
	}
	return langs[0]
}
