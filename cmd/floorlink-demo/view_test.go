package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

func testView(color bool) *view {
	return newView(viewConfig{
		Gateway: "gw-demo", Site: "demo", Area: "assembly", Line: "line-1",
		Devices: []string{"m1", "m2", "m3"},
		Header: []string{
			"plcsim 127.0.0.1:15020 (seed 1, speed 1)   broker tcp://127.0.0.1:11883   config configs/demo.yaml",
			"log /tmp/floorlink-demo-1234567890/demo.log",
		},
		Color: color,
	}, t0)
}

const (
	telemetryTopic = "floorlink/v1/demo/assembly/line-1/%s/telemetry"
	statusTopic    = "floorlink/v1/demo/gateway/gw-demo/status"
	statsTopic     = "floorlink/v1/demo/gateway/gw-demo/stats"
)

func telemetry(dev string) string { return strings.Replace(telemetryTopic, "%s", dev, 1) }

func TestView_Plain(t *testing.T) {
	v := testView(false)
	now := t0.Add(3*time.Second + 20*time.Millisecond)
	v.handle(statusTopic, []byte(`{"state":"online","ts":"2026-11-25T08:00:00.100Z","session":4}`), now)
	v.handle(telemetry("m1"), []byte(`{"gateway":"gw-demo","epoch":"e","seq":7,"ts":"2026-11-25T08:00:02.700Z",
		"historical":false,"values":{"state":1,"tick":27,"parts_total":1,"good_total":1,"reject_total":0,
		"temperature":55.03125,"pressure":6.0134,"spindle_speed":1502,"running":true}}`), now)
	// A deadband may leave tags out: they keep their last value. A bad sample is null.
	v.handle(telemetry("m1"), []byte(`{"ts":"2026-11-25T08:00:02.800Z","values":{"tick":28,"temperature":null}}`), now)
	v.handle(telemetry("m2"), []byte(`{"ts":"2026-11-25T08:00:02.800Z","values":{"state":9,"tick":"9007199254740993"}}`), now)
	v.handle(telemetry("other"), []byte(`{"values":{"tick":1}}`), now) // not a row
	v.handle(telemetry("m3"), []byte(`not json`), now)

	got := string(v.appendPlain(nil, now))
	want := `t=3s machine=m1 tick=28 state=running parts=1 good=1 reject=0 temperature=- pressure=6.0134 spindle=1502 age=0.2s
t=3s machine=m2 tick=9007199254740993 state=9 parts=- good=- reject=- temperature=- pressure=- spindle=- age=0.2s
t=3s machine=m3 tick=- state=- parts=- good=- reject=- temperature=- pressure=- spindle=- age=-
t=3s gateway=gw-demo status=online session=4 depth=- file_bytes=- published=- acked=- rate=- stats_age=-
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plain view (-want +got):\n%s", diff)
	}

	v.handle(statsTopic, []byte(`{"ts":"2026-11-25T08:00:03.000Z","gateway":"gw-demo","epoch":"e","session":4,
		"buffer":{"head":40,"cursor":38,"depth":2,"file_bytes":32768,"queue":0,"commit_failures":0},
		"pipeline":{"records":40,"dropped":0},"publish":{"published":40,"acked":38,"rate":6.04,"undecodable":0}}`), now)
	got = string(v.appendPlain(nil, now.Add(1500*time.Millisecond)))
	wantGateway := "t=5s gateway=gw-demo status=online session=4 depth=2 file_bytes=32768 published=40 acked=38 rate=6.0 stats_age=1.5s\n"
	if !strings.HasSuffix(got, wantGateway) {
		t.Errorf("gateway line after stats:\n%s\nwant it to end with\n%s", got, wantGateway)
	}
}

func TestAppendPairs_Quotes(t *testing.T) {
	got := string(appendPairs(nil, "machine", "press 1", "state", "", "x", `a="b"`))
	want := `machine="press 1" state="" x="a=\"b\""` + "\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]")

// TestView_Frame_Fits checks that the terminal frame, with every value at its widest, fits a
// 100-column terminal, and that it starts by clearing the screen.
func TestView_Frame_Fits(t *testing.T) {
	for _, color := range []bool{false, true} {
		v := testView(color)
		now := t0.Add(90 * time.Minute)
		v.handle(statusTopic, []byte(`{"state":"offline","session":18446744073709551615}`), now)
		for _, m := range []string{"m1", "m2", "m3"} {
			v.handle(telemetry(m), []byte(`{"ts":"2026-11-25T08:00:00Z","values":{"state":6,"tick":4294967295,
				"parts_total":99999999,"good_total":99999999,"reject_total":999999,"temperature":-1234.5678,
				"pressure":1000.125,"spindle_speed":-2147483648}}`), now)
		}
		v.handle(statsTopic, []byte(`{"buffer":{"depth":99999999999,"file_bytes":536870912},
			"publish":{"published":99999999999,"acked":99999999999,"rate":99999.9}}`), now)
		v.bad = 1 << 40
		frame := string(v.appendFrame(nil, now))
		if !strings.HasPrefix(frame, ansiHomeClear) {
			t.Errorf("frame does not t0 by clearing the screen: %q", frame[:10])
		}
		plain := ansi.ReplaceAllString(frame, "")
		for _, ln := range strings.Split(plain, "\n") {
			if n := utf8.RuneCountInString(ln); n > 100 {
				t.Errorf("color=%v: line of %d columns, want at most 100:\n%s", color, n, ln)
			}
		}
		if !strings.Contains(plain, "maintenance") || !strings.Contains(plain, "-1234.6") {
			t.Errorf("frame lacks the values it was given:\n%s", plain)
		}
		if color != strings.Contains(frame, stateColors["maintenance"]) {
			t.Errorf("color=%v, but the frame's state color is there: %v", color, !color)
		}
	}
}
