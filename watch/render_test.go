package watch

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the renderings")

var t0 = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

// scenario is a plant as the view sees it 3 seconds after it started: two sites; a gateway
// online with stats and a drop event; a device with a bad tag, one with a 64-bit counter and a
// deadband-merged value, one expected that never published, one not expected; an asset's KPIs;
// a device that only sent an event; a second gateway offline without stats; and messages that
// do not decode or are not ours.
func scenario(t testing.TB, opts Options) (*Model, time.Time) {
	opts.Start = t0
	opts.Header = []string{"config plant.yaml   topics floorlink/v1/#"}
	m := New(opts)
	for _, d := range []string{"m1", "m2", "m3"} {
		m.Expect(Expected{Site: "plant", Area: "body", Line: "line-1", Gateway: "gw-1", Device: d})
	}
	m.SetConnection("tcp://127.0.0.1:1883", "connected", nil)
	now := t0.Add(3*time.Second + 20*time.Millisecond)
	msgs := []struct{ topic, payload string }{
		{"floorlink/v1/plant/gateway/gw-1/status", `{"state":"online","ts":"2026-11-25T07:59:00.000Z","session":4}`},
		{"floorlink/v1/plant/body/line-1/m1/telemetry", `{"gateway":"gw-1","epoch":"e1","seq":7,"ts":"2026-11-25T08:00:02.700Z",
			"historical":false,"values":{"state":1,"tick":27,"parts_total":1,"temperature":55.03125,"pressure":6.0134,"running":true}}`},
		// A deadband leaves tags out: they keep their last value. A bad sample is null.
		{"floorlink/v1/plant/body/line-1/m1/telemetry", `{"gateway":"gw-1","epoch":"e1","seq":9,"ts":"2026-11-25T08:00:02.800Z",
			"historical":false,"values":{"tick":28,"temperature":null},"quality":{"temperature":"bad:timeout"}}`},
		{"floorlink/v1/plant/body/line-1/m2/telemetry", `{"gateway":"gw-1","epoch":"e1","seq":8,"ts":"2026-11-25T08:00:01.000Z",
			"historical":true,"values":{"tick":"9007199254740993","label":"press 2 \"east\"","line":"a value named as a key","seq":3}}`},
		{"floorlink/v1/plant/body/line-1/m4/telemetry", `{"gateway":"gw-1","epoch":"e1","seq":10,"ts":"2026-11-25T08:00:02.900Z",
			"historical":false,"values":{"tick":29}}`},
		{"floorlink/v1/plant/body/line-1/press-1/kpi", `{"gateway":"gw-1","epoch":"e1","seq":11,"ts":"2026-11-25T08:00:00.000Z",
			"historical":false,"values":{"shift":"A","oee":0.7689,"availability":0.912,"performance":0.8534,"quality":0.9876,"good_parts":1203}}`},
		{"floorlink/v1/plant/paint/line-2/robot-7/event", `{"gateway":"gw-1","epoch":"e1","seq":12,"ts":"2026-11-25T08:00:02.500Z",
			"historical":false,"values":{"event":"disconnected","error":"dial tcp 10.0.0.7:502: connect: connection refused"}}`},
		{"floorlink/v1/plant/body/line-1/gw-1/event", `{"gateway":"gw-1","epoch":"e1","seq":13,"ts":"2026-11-25T08:00:01.500Z",
			"historical":false,"values":{"event":"drop","reason":"max_bytes","first_seq":1,"last_seq":6,"count":6}}`},
		{"floorlink/v1/plant/gateway/gw-1/stats", `{"ts":"2026-11-25T08:00:02.000Z","gateway":"gw-1","epoch":"e1","session":4,
			"buffer":{"head":13,"cursor":11,"depth":2,"file_bytes":32768,"queue":0,"commit_failures":0,"oldest_age_seconds":0.4,"dropped":6,"queue_full":0},
			"pipeline":{"records":13,"dropped":0},"publish":{"published":12,"acked":11,"rate":6.04,"dead_letters":0,"split":0}}`},
		{"floorlink/v1/annex/gateway/gw-9/status", `{"state":"offline","ts":"2026-11-25T07:00:00.000Z","session":2}`},
		{"floorlink/v1/plant/body/line-1/m3/telemetry", `not json`},
		{"floorlink/v1/plant/body/line-1/m3/unknown-kind", `{}`},
		{"elsewhere/entirely", `{}`},
	}
	for _, msg := range msgs {
		m.Handle(msg.topic, []byte(msg.payload), now.Add(-500*time.Millisecond))
	}
	return m, now
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it, and the diff is reviewed in the commit):\n%s", path, diff)
	}
}

func TestModel_AppendPlain(t *testing.T) {
	m, now := scenario(t, Options{})
	golden(t, "plain.golden", m.AppendPlain(nil, now))
}

func TestModel_AppendFrame(t *testing.T) {
	for _, c := range []struct {
		name          string
		color         bool
		width, height int
	}{
		{"frame.golden", false, 100, 0},
		{"frame_color.golden", true, 100, 0},
		{"frame_narrow.golden", false, 60, 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, now := scenario(t, Options{Color: c.color})
			golden(t, c.name, m.AppendFrame(nil, now, c.width, c.height))
		})
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]")

// TestModel_AppendFrame_Fits checks every width and height from tiny to wide: no line wider,
// no more lines than asked, and the frame starts by clearing the screen.
func TestModel_AppendFrame_Fits(t *testing.T) {
	for _, color := range []bool{false, true} {
		m, now := scenario(t, Options{Color: color})
		for width := 10; width <= 140; width += 7 {
			for _, height := range []int{0, 3, 12, 40} {
				frame := string(m.AppendFrame(nil, now, width, height))
				if !strings.HasPrefix(frame, ansiHomeClear) {
					t.Fatalf("frame does not start by clearing the screen: %q", frame[:10])
				}
				lines := strings.Split(strings.TrimSuffix(ansi.ReplaceAllString(frame, ""), "\n"), "\n")
				if height > 0 && len(lines) > height {
					t.Errorf("color=%v width=%d height=%d: %d lines", color, width, height, len(lines))
				}
				for _, ln := range lines {
					if n := utf8.RuneCountInString(ln); n > width {
						t.Errorf("color=%v width=%d: line of %d columns:\n%s", color, width, n, ln)
					}
				}
			}
		}
	}
}

// TestModel_Plain_Parses reads the plain lines back as a consumer would (split on spaces
// outside quotes, then on the first '='), and checks that every line's keys are unique and
// that the fixed keys come first.
func TestModel_Plain_Parses(t *testing.T) {
	m, now := scenario(t, Options{})
	fixed := map[string][]string{
		"gateway":  {"t", "gateway", "site", "status", "session", "depth", "file_bytes", "oldest_age", "dropped", "published", "acked", "rate", "stats_age", "event"},
		"device":   {"t", "device", "site", "area", "line", "gateway", "seq", "age", "event"},
		"asset":    {"t", "asset", "site", "area", "line", "gateway", "seq", "age", "event"},
		"messages": {"t", "messages", "undecodable", "broker"},
	}
	lines := strings.Split(strings.TrimSuffix(string(m.AppendPlain(nil, now)), "\n"), "\n")
	if !strings.Contains(lines[len(lines)-1], " messages=") {
		t.Errorf("last line %q, want the summary", lines[len(lines)-1])
	}
	for _, ln := range lines {
		keys, values := splitPairs(t, ln)
		want := fixed[keys[1]]
		if want == nil {
			t.Fatalf("line of unknown kind %q: %s", keys[1], ln)
		}
		if len(keys) < len(want) || !slicesEqual(keys[:len(want)], want) {
			t.Errorf("keys %v, want them to start with %v", keys, want)
		}
		seen := map[string]bool{}
		for i, k := range keys {
			if seen[k] {
				t.Errorf("key %s twice in %s", k, ln)
			}
			seen[k] = true
			if values[i] == "" {
				t.Errorf("key %s has an empty value in %s", k, ln)
			}
		}
	}
}

// splitPairs parses one plain line.
func splitPairs(t *testing.T, ln string) (keys, values []string) {
	t.Helper()
	for ln != "" {
		k, rest, ok := strings.Cut(ln, "=")
		if !ok {
			t.Fatalf("no '=' in %q", ln)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for ; end < len(rest) && rest[end] != '"'; end++ {
				if rest[end] == '\\' {
					end++
				}
			}
			v, rest = rest[:end+1], rest[end+1:]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
			rest = " " + rest
		}
		keys, values = append(keys, k), append(values, v)
		ln = strings.TrimPrefix(rest, " ")
	}
	return keys, values
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestModel_Empty(t *testing.T) {
	m := New(Options{Start: t0})
	got := string(m.AppendPlain(nil, t0.Add(time.Second)))
	if want := "t=1s messages=0 undecodable=0 broker=-\n"; got != want {
		t.Errorf("plain: got %q, want %q", got, want)
	}
	frame := string(m.AppendFrame(nil, t0.Add(time.Second), 80, 0))
	if !strings.Contains(frame, "waiting for a Floorlink message") {
		t.Errorf("empty frame:\n%s", frame)
	}
}

func TestAppendPairs_Quotes(t *testing.T) {
	got := string(appendPairs(nil, "device", "press 1", "state", "", "x", `a="b"`))
	want := `device="press 1" state="" x="a=\"b\""` + "\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestKey(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := key(in); got != want {
			t.Errorf("key(%q) = %q, want %q", in, got, want)
		}
	}
	f("tick", "tick")
	f("Motor.Speed:rpm-2", "Motor.Speed:rpm-2")
	f("oil temp", "oil_temp")
	f("a=b", "a_b")
	f("온도", "__")
	f("", "_")
}
