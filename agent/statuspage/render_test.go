package statuspage

import "testing"

func TestRender(t *testing.T) {
	d := pageData{Lang: "ko", Labels: map[string]string{"title": `A <b>&"x"`}}
	got, err := render(`<html lang="{{.Lang}}" title="{{.T "title"}}"><a{{current "en"}}><a{{current "ko"}}><script>{{.Labels}}</script>`, d)
	if err != nil {
		t.Fatal(err)
	}
	want := `<html lang="ko" title="A &lt;b&gt;&amp;&#34;x&#34;"><a><a aria-current="true"><script>{"title":"A \u003cb\u003e\u0026\"x\""}</script>`
	if string(got) != want {
		t.Errorf("render:\n got %s\nwant %s", got, want)
	}
	for _, bad := range []string{`{{.T "missing"}}`, `{{if .Lang}}`, `{{.T title}}`, `{{.Lang`} {
		if _, err := render(bad, d); err == nil {
			t.Errorf("render(%q): no error", bad)
		}
	}
}
