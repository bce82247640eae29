package statuspage

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandler_Language(t *testing.T) {
	h := Handler()
	for _, c := range []struct {
		name, target, accept, want string
	}{
		{"default", "/", "", "en"},
		{"parameter", "/?lang=ko", "", "ko"},
		{"parameter upper case", "/?lang=KO", "", "ko"},
		{"accept-language", "/", "ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", "ko"},
		{"accept-language by q", "/", "en;q=0.5, ko;q=0.9", "ko"},
		{"accept-language none we speak", "/", "de-DE,fr;q=0.9", "en"},
		{"accept-language q=0 refuses", "/", "ko;q=0, en;q=0.1", "en"},
		{"parameter wins over the header", "/?lang=en", "ko-KR", "en"},
		{"unknown parameter falls back to the header", "/?lang=fr", "ko", "ko"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := get(t, h, "GET", c.target, "Accept-Language", c.accept)
			b := body(t, resp)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if want := `<html lang="` + c.want + `">`; !strings.Contains(b, want) {
				t.Errorf("page lacks %s:\n%.300s", want, b)
			}
			if want := "<title>" + Label(c.want, "title") + "</title>"; !strings.Contains(b, want) {
				t.Errorf("page lacks %s", want)
			}
			if got := resp.Header.Get("Vary"); got != "Accept-Language" {
				t.Errorf("Vary %q, want Accept-Language", got)
			}
		})
	}
}

// TestHandler_KoreanLabels checks that the Korean page carries its dictionary for the script and
// its fixed labels translated by the server.
func TestHandler_KoreanLabels(t *testing.T) {
	b := body(t, get(t, Handler(), "GET", "/?lang=ko"))
	for _, want := range []string{"<h2>장치</h2>", "<h2>태그</h2>", `"mqtt_up":"연결됨"`, `aria-current="true">한국어`} {
		if !strings.Contains(b, want) {
			t.Errorf("Korean page lacks %q", want)
		}
	}
	if strings.Contains(b, "<h2>Devices</h2>") {
		t.Errorf("Korean page has the English heading")
	}
}

func TestHandler_Files(t *testing.T) {
	h := Handler()
	for _, c := range []struct{ path, ctype string }{
		{"/", "text/html; charset=utf-8"},
		{"/static/app.js", "text/javascript; charset=utf-8"},
		{"/static/style.css", "text/css; charset=utf-8"},
	} {
		t.Run(c.path, func(t *testing.T) {
			resp := get(t, h, "GET", c.path)
			b := body(t, resp)
			if resp.StatusCode != 200 || len(b) == 0 {
				t.Fatalf("status %d, %d bytes", resp.StatusCode, len(b))
			}
			for k, want := range map[string]string{
				"Content-Type":            c.ctype,
				"Content-Security-Policy": csp,
				"X-Content-Type-Options":  "nosniff",
				"Cache-Control":           "no-cache",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			etag := resp.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			again := get(t, h, "GET", c.path, "If-None-Match", etag)
			if again.StatusCode != http.StatusNotModified {
				t.Errorf("with If-None-Match of its ETag: status %d, want 304", again.StatusCode)
			}
			head := get(t, h, "HEAD", c.path)
			if head.StatusCode != 200 || body(t, head) != "" {
				t.Errorf("HEAD: status %d", head.StatusCode)
			}
		})
	}
}

func TestHandler_Refuses(t *testing.T) {
	h := Handler()
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/index.html", 404},
		{"GET", "/static/", 404},
		{"GET", "/static/labels.json", 404},
		{"GET", "/static/../page/app.js", 404},
		{"GET", "/api/v1/nothing", 404},
		{"POST", "/", 405},
	} {
		if resp := get(t, h, c.method, c.path); resp.StatusCode != c.want {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

// TestPage_OwnOriginOnly checks the sources for any absolute address: the page must load nothing
// from another origin (no CDN, no web font), since a plant network has no internet. The browser
// test checks the requests themselves.
func TestPage_OwnOriginOnly(t *testing.T) {
	abs := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	css := regexp.MustCompile(`@import|url\(`)
	for _, name := range []string{"page/index.html", "page/app.js", "page/style.css"} {
		b, err := files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if m := css.Find(b); name == "page/style.css" && m != nil {
			t.Errorf("%s loads another file (%s)", name, m)
		}
		for _, ln := range strings.Split(string(b), "\n") {
			if m := abs.FindString(ln); m != "" && !strings.HasPrefix(strings.TrimSpace(ln), "//") && !strings.HasPrefix(strings.TrimSpace(ln), "/*") {
				t.Errorf("%s refers elsewhere (%q): %s", name, m, ln)
			}
		}
	}
}

// TestLabels_Used checks the dictionary against the page: every label the page or the script
// asks for exists in every language (dictionary() already checks the languages agree), and
// every label in the dictionary is asked for somewhere.
func TestLabels_Used(t *testing.T) {
	dict, err := dictionary()
	if err != nil {
		t.Fatal(err)
	}
	html, _ := files.ReadFile("page/index.html")
	js, _ := files.ReadFile("page/app.js")
	var used []string
	for _, m := range regexp.MustCompile(`\.T "([a-z_]+)"`).FindAllStringSubmatch(string(html), -1) {
		used = append(used, m[1])
	}
	for _, m := range regexp.MustCompile(`\bt\('([a-z_]+)'`).FindAllStringSubmatch(string(js), -1) {
		used = append(used, m[1])
	}
	// Labels the script composes: a state or quality from the status API, a KPI.
	for _, s := range []string{"connected", "disconnected", "faulted", "unknown"} {
		used = append(used, "state_"+s)
	}
	for _, q := range []string{"good", "uncertain", "bad", "unknown"} {
		used = append(used, "quality_"+q)
	}
	for _, m := range regexp.MustCompile(`\['[a-z]+', '([a-z_]+)'\]`).FindAllStringSubmatch(string(js), -1) {
		used = append(used, m[1])
	}
	seen := map[string]bool{}
	for _, k := range used {
		seen[k] = true
		for _, lang := range langs {
			if _, ok := dict[lang][k]; !ok {
				t.Errorf("label %q is used but missing in %s", k, lang)
			}
		}
	}
	for k := range dict[langs[0]] {
		if !seen[k] {
			t.Errorf("label %q is in the dictionary but the page never uses it", k)
		}
	}
}

func TestNegotiate(t *testing.T) {
	f := func(param, accept, want string) {
		t.Helper()
		if got := negotiate(param, accept); got != want {
			t.Errorf("negotiate(%q, %q) = %q, want %q", param, accept, got, want)
		}
	}
	f("", "", "en")
	f("ko", "", "ko")
	f("", "ko", "ko")
	f("", "KO-kr", "ko")
	f("", "*", "en")
	f("", "en-GB,ko;q=0.9", "en")
	f("", "ko;q=x, en", "en") // a malformed q drops that language only
	f("", " ko ; q=0.8 , en ; q=0.7", "ko")
}
