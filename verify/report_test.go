package verify_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/verify"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites the file with -update.
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
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// mixedTracker has one stream of each kind: clean, with gaps, conflicts and drops, and one
// expected but silent; plus an invalid and an ignored message.
func mixedTracker() *verify.Tracker {
	tr := verify.NewTracker(verify.TrackerOptions{FromStart: true})
	at := t0
	obs := func(topic string, payload []byte) {
		tr.Observe(topic, payload, at)
		at = at.Add(10 * time.Millisecond)
	}
	for s := uint64(1); s <= 100; s++ {
		obs(topic, record("gw-press-01", ep1, s, s <= 40, ""))
	}
	obs(topic, record("gw-press-01", ep1, 40, true, "")) // re-sent
	for s := uint64(1); s <= 50; s++ {
		if s == 7 || (s >= 20 && s <= 24) || (s >= 30 && s <= 39) {
			continue
		}
		obs(topic, record("gw-lathe-02", ep1, s, false, ""))
	}
	obs(topic, record("gw-lathe-02", ep1, 12, false, `{"n":"other"}`))
	obs("floorlink/v1/s/a/l/lathe/event", dropEvent("gw-lathe-02", ep1, 51, 30, 39, "max_bytes"))
	obs(topic, record("gw-lathe-02", ep2, 3, false, ""))
	obs(topic, record("gw-lathe-02", ep2, 2, false, ""))
	obs("floorlink/v1/s/gateway/gw-press-01/status", []byte(`{"state":"online"}`))
	obs(topic, []byte(`{"gateway":"gw-press-01"`))
	tr.Expect("gw-mill-03", ep1, 5)
	return tr
}

func TestReport_WriteText(t *testing.T) {
	var buf bytes.Buffer
	if err := mixedTracker().Report().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.golden", buf.Bytes())
}

func TestReport_MarshalJSON(t *testing.T) {
	r := mixedTracker().Report()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json.golden", append(b, '\n'))

	var back struct {
		OK       bool     `json:"ok"`
		Problems []string `json:"problems"`
		verify.Report
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.OK != r.OK() || !cmp.Equal(back.Problems, r.Problems()) {
		t.Errorf("got ok %v problems %q, want %v %q", back.OK, back.Problems, r.OK(), r.Problems())
	}
	if diff := cmp.Diff(r.Streams, back.Streams); diff != "" {
		t.Errorf("streams after a JSON round trip (-want +got):\n%s", diff)
	}
}

func TestReport_Problems(t *testing.T) {
	got := mixedTracker().Report().Problems()
	want := []string{
		"gateway gw-lathe-02 epoch " + ep1 + ": 6 seqs missing in 2 gaps: 7, 20-24",
		"gateway gw-lathe-02 epoch " + ep1 + ": 1 conflict (same seq, different payload): seq 12",
		"gateway gw-lathe-02 epoch " + ep2 + ": 1 seq missing in 1 gap: 1",
		"gateway gw-mill-03 epoch " + ep1 + ": 5 seqs missing in 1 gap: 1-5",
		"1 invalid message, the first on " + topic + ": not JSON",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func TestReport_WriteText_Empty(t *testing.T) {
	var buf bytes.Buffer
	if err := verify.NewTracker(verify.TrackerOptions{}).Report().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); !strings.Contains(got, "no records received") {
		t.Errorf("got %q, want it to say no records were received", got)
	}
}
