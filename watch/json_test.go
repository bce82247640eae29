package watch

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestJSON_Decode(t *testing.T) {
	def, err := NewJSON("")
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 25, 8, 0, 2, 700e6, time.UTC)
	for _, c := range []struct {
		name, topic, payload string
		want                 []Update
		err                  string
	}{
		{
			name:    "telemetry",
			topic:   "floorlink/v1/plant/body/line-1/m1/telemetry",
			payload: `{"gateway":"gw-1","seq":7,"ts":"2026-11-25T08:00:02.700Z","historical":true,"values":{"tick":28,"temperature":null,"name":"a \"b\"","big":"9007199254740993","arr":[1, 2]},"quality":{"temperature":"bad:timeout"}}`,
			want: []Update{{Kind: Telemetry, Site: "plant", Area: "body", Line: "line-1", Gateway: "gw-1", Source: "m1",
				Seq: 7, TS: ts, Historical: true, Values: []Value{
					{Name: "arr", Text: "[1,2]"}, {Name: "big", Text: "9007199254740993"}, {Name: "name", Text: `a "b"`},
					{Name: "temperature", Null: true, Quality: "bad:timeout"}, {Name: "tick", Text: "28"}}}},
		},
		{
			name:    "kpi",
			topic:   "floorlink/v1/plant/body/line-1/press-1/kpi",
			payload: `{"gateway":"gw-1","seq":8,"ts":"2026-11-25T08:00:02.700Z","values":{"oee":0.78}}`,
			want: []Update{{Kind: KPI, Site: "plant", Area: "body", Line: "line-1", Gateway: "gw-1", Source: "press-1",
				Seq: 8, TS: ts, Values: []Value{{Name: "oee", Text: "0.78"}}}},
		},
		{
			name:    "kpi live",
			topic:   "floorlink/v1/plant/body/line-1/press-1/kpi/live",
			payload: `{"gateway":"gw-1","seq":0,"ts":"2026-11-25T08:00:02.700Z","historical":false,"values":{"oee":0.61,"partial":true}}`,
			want: []Update{{Kind: KPI, Site: "plant", Area: "body", Line: "line-1", Gateway: "gw-1", Source: "press-1",
				TS: ts, Values: []Value{{Name: "oee", Text: "0.61"}, {Name: "partial", Text: "true"}}}},
		},
		{
			name:    "event",
			topic:   "floorlink/v1/plant/body/line-1/m1/event",
			payload: `{"gateway":"gw-1","seq":9,"ts":"2026-11-25T08:00:02.700Z","values":{"event":"connected"}}`,
			want: []Update{{Kind: Event, Site: "plant", Area: "body", Line: "line-1", Gateway: "gw-1", Source: "m1",
				Seq: 9, TS: ts, Values: []Value{{Name: "event", Text: "connected"}}}},
		},
		{
			name:    "status",
			topic:   "floorlink/v1/plant/gateway/gw-1/status",
			payload: `{"state":"online","ts":"2026-11-25T08:00:02.700Z","session":3}`,
			want: []Update{{Kind: Status, Site: "plant", Gateway: "gw-1", Source: "gw-1", TS: ts,
				GatewayStatus: &GatewayStatus{State: "online", TS: ts, Session: 3}}},
		},
		{
			name:    "stats",
			topic:   "floorlink/v1/plant/gateway/gw-1/stats",
			payload: `{"ts":"2026-11-25T08:00:02.700Z","epoch":"e","session":3,"buffer":{"head":9,"cursor":8,"depth":1,"file_bytes":4096,"oldest_age_seconds":1.5,"dropped":2,"queue_full":1},"pipeline":{"dropped":4},"publish":{"published":9,"acked":8,"rate":2.5,"dead_letters":1}}`,
			want: []Update{{Kind: Stats, Site: "plant", Gateway: "gw-1", Source: "gw-1", TS: ts,
				GatewayStats: &GatewayStats{TS: ts, Session: 3, Epoch: "e", Depth: 1, FileBytes: 4096,
					OldestAge: 1500 * time.Millisecond, Dropped: 2, QueueFull: 1, Head: 9, Cursor: 8, NotStored: 4,
					Published: 9, Acked: 8, Rate: 2.5, DeadLetter: 1}}},
		},
		{name: "not ours", topic: "sensors/a/b", payload: `{}`},
		{name: "unknown kind", topic: "floorlink/v1/plant/body/line-1/m1/metrics", payload: `{}`},
		{name: "too few levels", topic: "floorlink/v1/plant/body/m1/telemetry", payload: `{}`},
		{name: "bad json", topic: "floorlink/v1/plant/body/line-1/m1/telemetry", payload: `{`, err: "telemetry on floorlink/v1/plant/body/line-1/m1/telemetry"},
		{name: "no values", topic: "floorlink/v1/plant/body/line-1/m1/telemetry", payload: `{"seq":1}`, err: "no values"},
		{name: "bad ts", topic: "floorlink/v1/plant/body/line-1/m1/telemetry", payload: `{"ts":"yesterday","values":{}}`, err: "ts"},
		{name: "status without state", topic: "floorlink/v1/plant/gateway/gw-1/status", payload: `{}`, err: "no state"},
		{name: "stats not json", topic: "floorlink/v1/plant/gateway/gw-1/stats", payload: `x`, err: "stats on"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := def.Decode(nil, c.topic, []byte(c.payload))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				slices.SortFunc(got[i].Values, func(a, b Value) int { return strings.Compare(a.Name, b.Name) })
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestJSON_Template(t *testing.T) {
	for _, c := range []struct {
		tmpl, topic string
		filters     []string
		want        Update // Kind, Site, Area, Line, Gateway, Source
	}{
		{"", "floorlink/v1/s/a/l/d/telemetry", []string{"floorlink/v1/#"},
			Update{Kind: Telemetry, Site: "s", Area: "a", Line: "l", Source: "d"}},
		{"plants/{site}/{gateway}/{source}/{kind}", "plants/s/gw-2/d/telemetry", []string{"floorlink/v1/#", "plants/#"},
			Update{Kind: Telemetry, Site: "s", Gateway: "gw-2", Source: "d"}},
		{"fl-{site}/{area}-{line}/{source}/{kind}", "fl-s/a-l/d/kpi", []string{"floorlink/v1/#", "#"},
			Update{Kind: KPI, Site: "s", Area: "a", Line: "l", Source: "d"}},
		{"floorlink/v1/{site}/{site}/{source}/{kind}", "floorlink/v1/s/s/d/event", []string{"floorlink/v1/#"},
			Update{Kind: Event, Site: "s", Source: "d"}},
	} {
		j, err := NewJSON(c.tmpl)
		if err != nil {
			t.Fatalf("%q: %v", c.tmpl, err)
		}
		if diff := cmp.Diff(c.filters, j.Filters()); diff != "" {
			t.Errorf("%q: filters (-want +got):\n%s", c.tmpl, diff)
		}
		got, err := j.Decode(nil, c.topic, []byte(`{"values":{}}`))
		if err != nil || len(got) != 1 {
			t.Fatalf("%q on %s: %v %v", c.tmpl, c.topic, got, err)
		}
		got[0].Values = nil
		if diff := cmp.Diff(c.want, got[0]); diff != "" {
			t.Errorf("%q on %s (-want +got):\n%s", c.tmpl, c.topic, diff)
		}
	}
	for _, bad := range []string{"floorlink/{site}/{source}", "x/{source}/{kind}/{nope}", "x/{source}/{kind"} {
		if _, err := NewJSON(bad); err == nil {
			t.Errorf("NewJSON(%q) accepted it", bad)
		}
	}
}

// FuzzJSON_Decode: any topic and payload decode or fail without panicking, and what decodes
// applies to a model that then renders.
func FuzzJSON_Decode(f *testing.F) {
	f.Add("floorlink/v1/s/a/l/d/telemetry", `{"seq":1,"ts":"2026-11-25T08:00:00Z","values":{"x":1,"y":null},"quality":{"y":"bad:nan"}}`)
	f.Add("floorlink/v1/s/gateway/g/stats", `{"buffer":{"depth":1}}`)
	f.Add("floorlink/v1/s/gateway/g/status", `{"state":"online"}`)
	f.Add("floorlink/v1/s/a/l/g/event", `{"gateway":"g","values":{"event":"drop"}}`)
	j, _ := NewJSON("")
	f.Fuzz(func(t *testing.T, topic, payload string) {
		if len(payload) > 1<<16 {
			return
		}
		us, err := j.Decode(nil, topic, []byte(payload))
		if err != nil && len(us) != 0 {
			t.Fatalf("error %v with updates %v", err, us)
		}
		m := New(Options{})
		for _, u := range us {
			m.Apply(u, time.Unix(0, 0))
		}
		m.AppendPlain(nil, time.Unix(1, 0))
		m.AppendFrame(nil, time.Unix(1, 0), 80, 24)
	})
}
