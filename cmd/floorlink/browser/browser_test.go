// Package browser tests the agent's status page in a real browser: headless Debian Chromium,
// driven by playwright-core from scripts/browser/check.js, against the built agent reading
// plcsim and publishing to Mosquitto. The script only reads what the page shows; every
// assertion is here.
//
// `make deps` installs Chromium (Debian's package) and playwright-core (npm, into
// .deps/browser); without them the test fails, naming that command. It never skips.
package browser_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/agent/statuspage"
	"github.com/floorlink/floorlink/cmd/floorlink/floorlinktest"
	"github.com/floorlink/floorlink/simulators/simtest"
)

// agentBin is the floorlink binary, built once for the package without -race.
var agentBin string

func TestMain(m *testing.M) { floorlinktest.Main(m, &agentBin) }

// tools are the browser test's dependencies, found where `make deps` puts them.
type tools struct {
	node, chromium, modules, script string
}

// findTools locates node, Chromium, playwright-core and check.js, failing with what to run when
// one is missing.
func findTools(t *testing.T) tools {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	tl := tools{
		chromium: "/usr/bin/chromium", // Debian's package; playwright's own download is not used
		modules:  filepath.Join(root, ".deps", "browser", "node_modules"),
		script:   filepath.Join(root, "scripts", "browser", "check.js"),
	}
	if p := os.Getenv("FLOORLINK_CHROMIUM"); p != "" {
		tl.chromium = p
	}
	var missing []string
	if tl.node, err = exec.LookPath("node"); err != nil {
		missing = append(missing, "node (Node.js 20 or later) is not on PATH")
	}
	if _, err := os.Stat(tl.chromium); err != nil {
		missing = append(missing, fmt.Sprintf("Chromium not found at %s (Debian's chromium package)", tl.chromium))
	}
	if _, err := os.Stat(filepath.Join(tl.modules, "playwright-core", "package.json")); err != nil {
		missing = append(missing, fmt.Sprintf("playwright-core not found in %s", tl.modules))
	}
	if len(missing) > 0 {
		t.Fatalf("the browser test cannot run: %s: run `make deps`, which installs them", strings.Join(missing, "; "))
	}
	return tl
}

// outputDir is where the screenshots go: $TEST_OUTPUT_DIR/<test> when set, else the test's
// artifact directory (kept with `go test -artifacts -outputdir DIR`, removed otherwise).
func outputDir(t *testing.T) string {
	if d := os.Getenv("TEST_OUTPUT_DIR"); d != "" {
		dir := filepath.Join(d, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.ArtifactDir()
}

// machines maps the config's devices, in order, to plcsim's machines (unit ids).
var machines = []struct {
	name string
	unit int
}{{"m1", 1}, {"m2", 2}, {"m3", 3}}

const deviceTags = `
      - {name: state, address: "40001", type: uint16}
      - {name: tick, address: "40002", type: uint32}
      - {name: parts_total, address: "40004", type: uint32}
      - {name: good_total, address: "40006", type: uint32}
      - {name: reject_total, address: "40008", type: uint32}
      - {name: temperature, address: "40011", type: float32, unit: "°C"}
      - {name: pressure, address: "40013", type: float32, byte_order: CDAB, unit: bar}
      - {name: ideal_cycle_time_ms, address: "40016", type: uint16, unit: ms}
      - {name: spindle_speed, address: "40018", type: int32, unit: rpm}
      - {name: running, address: "00001", type: bool}`

// pollInterval is the devices'. Twice the page's refresh: most of the test's reads find the
// page and the API on the same poll, and five renderings span at least one poll.
const pollInterval = 2 * time.Second

// maxLagTicks is how far the API, read right after the page rendered, may be ahead of it: one
// poll of plcsim's ticks (100 ms each), and a poll's worth of margin for a slow machine.
const maxLagTicks = 2 * uint64(pollInterval/(100*time.Millisecond))

// asset is the config's one asset: machine 1 of plcsim, its state enum, counters and ideal
// cycle time read from the PLC, with a day window (no shifts: the status shows the day so far).
const asset = "m1-cell"

// config is the agent's file: three machines polled every pollInterval, and the KPIs of
// machine 1.
func config(dataDir, broker, modbus, httpAddr string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `gateway: {id: gw-browser, site: plant-1, area: body, line: line-1, data_dir: %q}
mqtt:
  brokers: [%q]
  shutdown_grace: 1s
http: {listen: %q}
devices:
`, dataDir, broker, httpAddr)
	for _, m := range machines {
		fmt.Fprintf(&b, `  - name: %s
    protocol: modbus-tcp
    address: %q
    unit_id: %d
    poll_interval: %s
    timeout: 1s
    tags:%s
`, m.name, modbus, m.unit, pollInterval, deviceTags)
	}
	fmt.Fprintf(&b, `assets:
  - name: %s
    state: {device: m1, tag: state, map: {1: running, 2: idle, 3: blocked, 4: down, 5: setup, 6: maintenance}}
    counters: {device: m1, total: parts_total, good: good_total, reject: reject_total, bits: 32}
    ideal_cycle: {device: m1, tag: ideal_cycle_time_ms, unit: ms}
    windows: [day]
`, asset)
	return b.String()
}

// The report check.js prints.
type report struct {
	Chromium string
	Runs     []run
	Assets   *struct {
		DOM         page
		Screenshots []string
	}
	Requests []struct{ Run, URL, Type string }
	Errors   []struct{ Run, Error string }
}

type run struct {
	Name, Path, Locale string
	Samples            []struct {
		DOM      page
		Rendered *string // the status the page rendered; nil when check.js did not catch it
		API      string  // the status check.js read itself, right after reading the page
	}
	Screenshots []string
}

type page struct {
	Refresh           int
	StatusTs          string
	Lang              string
	Title             string
	Headings          map[string]string
	Gateway           string
	MQTT              string
	Banner            string
	Devices           []struct{ Name, NameText, State, StateText string }
	Tags              map[string]map[string]struct{ Value, Quality string }
	Assets            []pageAsset
	AssetsEmptyHidden bool
}

type pageAsset struct {
	Name, Title, OEE string
	Bars             map[string]struct {
		Label, Text, Width string
		Over               bool
	}
	Extra map[string]string // the rows of fields the page does not know, name to text
}

// status is the part of /api/v1/status the test compares.
type status struct {
	Gateway struct{ ID string }
	MQTT    struct{ Connected bool }
	Stats   struct{ TS string }
	Assets  []map[string]any
	Devices []struct {
		Name, State string
		Tags        []struct {
			Name    string
			Value   json.RawMessage
			Quality string
		}
	}
}

func decodeStatus(t *testing.T, s string) status {
	t.Helper()
	var st status
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		t.Fatalf("status: %v: %.200s", err, s)
	}
	return st
}

// assetsFixture is a status the real engine does not send: a performance over 100%, which the
// page marks (a wrong ideal cycle time shows so), while the engine caps performance at 1 in the
// status (performance_raw, uncapped, is not in it); a shift name; and a field the page does not
// know. The page must still show it as it comes, so a run answers the page with it.
const assetsFixture = `[
 {"name":"press-1","shift":"A","oee":0.7689,"availability":0.912,"performance":0.8534,"quality":0.9876,"good_parts":1203},
 {"name":"weld-2","shift":"A","oee":0.5,"availability":0.5,"performance":1.054,"quality":0.95}
]`

// TestStatusPage_Browser loads the status page of an agent reading plcsim in headless
// Chromium, in English and in Korean, and checks that the device rows and the tag values it
// shows are the status the page fetched, equal the API's at the same moment (on the tick the
// page shows) and plcsim's model at that tick; that the tick moves between reads; that a known
// Korean label is shown; that the asset card of machine 1 shows the OEE, availability,
// performance and quality the agent's KPI engine put in that status, with its other fields as
// extra rows, and that its OEE moves between reads; that a performance over 100% (a fixture:
// the engine caps it) is marked; that the page requests nothing outside its own origin and
// raises no script error; and writes screenshots.
func TestStatusPage_Browser(t *testing.T) {
	tl := findTools(t)
	out := outputDir(t)
	dir := t.TempDir()

	sim := simtest.Start(t, simtest.Options{Line: simtest.LineConfig{Seed: 9}})
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	httpAddr := freeAddr(t)
	cfgPath := filepath.Join(dir, "floorlink.yaml")
	if err := os.WriteFile(cfgPath, []byte(config(filepath.Join(dir, "data"), broker.URL(), sim.ModbusAddr(), httpAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := floorlinktest.Start(t, agentBin, cfgPath)
	base := "http://" + httpAddr
	waitReady(t, base, agent)
	waitKPIs(t, base, agent)

	fixture := filepath.Join(dir, "assets.json")
	if err := os.WriteFile(fixture, []byte(assetsFixture), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := runCheck(t, tl, base, out, fixture)
	t.Logf("Chromium %s; screenshots in %s", rep.Chromium, out)

	sameMoment, sameKPIs, samples := 0, 0, 0
	for _, r := range rep.Runs {
		samples += len(r.Samples)
		t.Run(r.Name, func(t *testing.T) {
			wantLang := "ko"
			if r.Name == "en" {
				wantLang = "en"
			}
			checkRun(t, sim, r, wantLang, &sameMoment, &sameKPIs)
		})
	}
	// The page and the API's poll run on their own clocks, so a read can fall between them;
	// over three runs' samples, each run with its own phase, some must not.
	if sameMoment == 0 {
		t.Errorf("in none of %d samples did the API, read right after the page, show the page's ticks", samples)
	}
	// The KPIs are the day so far at the status's moment, so they move with every rendering;
	// the agent serves one rendering for statusTTL (250 ms), within which check.js reads the
	// API right after the page: most samples must get the page's very status.
	if sameKPIs == 0 {
		t.Errorf("in none of %d samples did the API, read right after the page, answer with the status the page showed (stats.ts)", samples)
	}
	t.Run("assets", func(t *testing.T) { checkAssets(t, rep) })
	t.Run("own origin only", func(t *testing.T) {
		if len(rep.Requests) == 0 {
			t.Fatal("check.js recorded no request")
		}
		statusReads := 0
		for _, req := range rep.Requests {
			if !strings.HasPrefix(req.URL, base+"/") {
				t.Errorf("run %s: request outside the page's origin %s: %s (%s)", req.Run, base, req.URL, req.Type)
			}
			if strings.HasSuffix(req.URL, "/api/v1/status") {
				statusReads++
			}
		}
		t.Logf("%d requests, %d of them /api/v1/status, all to %s", len(rep.Requests), statusReads, base)
	})
	t.Run("no script error", func(t *testing.T) {
		for _, e := range rep.Errors {
			t.Errorf("run %s: %s", e.Run, e.Error)
		}
	})
	t.Run("screenshots", func(t *testing.T) {
		shots := rep.Assets.Screenshots
		for _, r := range rep.Runs {
			shots = append(shots, r.Screenshots...)
		}
		for _, s := range shots {
			b, err := os.ReadFile(s)
			if err != nil {
				t.Errorf("screenshot: %v", err)
				continue
			}
			if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
				t.Errorf("%s is not a PNG", s)
			}
			t.Logf("screenshot %s (%d bytes)", s, len(b))
		}
	})

	if code := agent.Stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("agent exit %d", code)
	}
}

// checkRun checks one language's samples.
func checkRun(t *testing.T, sim *simtest.Sim, r run, lang string, sameMoment, sameKPIs *int) {
	if len(r.Samples) == 0 {
		t.Fatal("no sample")
	}
	matched, matchedKPIs := *sameMoment, *sameKPIs
	ticks := map[string]bool{}
	oees := map[string]bool{} // the OEE figures shown, as the page writes them
	oeeDrift := 0.0           // the most the OEE moved between the page's status and a later one the API read right after gave
	for i, s := range r.Samples {
		d := s.DOM
		where := fmt.Sprintf("sample %d (rendering %d, status of %s)", i, d.Refresh, d.StatusTs)
		if d.Lang != lang {
			t.Errorf("%s: page language %q, want %q", where, d.Lang, lang)
		}
		if got, want := d.Headings["devices"], statuspage.Label(lang, "devices"); got != want {
			t.Errorf("%s: devices heading %q, want %q", where, got, want)
		}
		if lang == "ko" && d.Headings["devices"] != "장치" {
			t.Errorf("%s: Korean devices heading %q, want 장치", where, d.Headings["devices"])
		}
		if s.Rendered == nil {
			t.Fatalf("%s: check.js did not catch the status the page rendered", where)
		}
		rendered := decodeStatus(t, *s.Rendered)
		if d.Gateway != rendered.Gateway.ID || d.Gateway != "gw-browser" {
			t.Errorf("%s: gateway %q, status has %q", where, d.Gateway, rendered.Gateway.ID)
		}
		if want := statuspage.Label(lang, "mqtt_up"); !rendered.MQTT.Connected || d.MQTT != want {
			t.Errorf("%s: MQTT shows %q (connected %v), want %q", where, d.MQTT, rendered.MQTT.Connected, want)
		}
		// The page shows the status it fetched: every device row and every tag value, and the
		// asset's KPIs as the engine computed them for that status.
		checkShows(t, where, d, rendered, lang)
		checkAssetCards(t, where, d, rendered.Assets, lang)
		if len(rendered.Assets) != 1 || rendered.Assets[0]["name"] != asset {
			t.Errorf("%s: status assets %v, want the config's %s alone", where, rendered.Assets, asset)
		} else {
			ra := rendered.Assets[0]
			if _, ok := ra["availability"].(float64); !ok {
				t.Errorf("%s: %s has no availability (the test waited for one): %v", where, asset, ra)
			}
			if _, ok := ra["produced"]; !ok {
				t.Errorf("%s: %s has no produced count to show as an extra row: %v", where, asset, ra)
			}
			if v, ok := ra["oee"].(float64); ok {
				oees[toFixed1(v*100)+"%"] = true
			}
		}
		// The API at the same moment (read right after the page rendered): the same devices in
		// the same states, at most one poll ahead of the page; and where the device's tick is
		// the one the page shows, the same values.
		api := decodeStatus(t, s.API)
		if api.Stats.TS == d.StatusTs {
			// The agent answered with the rendering the page shows (it serves one for
			// statusTTL): the cards must show exactly what this independent read says.
			checkAssetCards(t, where+", the API read right after", d, api.Assets, lang)
			*sameKPIs++
		} else {
			checkAssetsLater(t, where, rendered.Assets, api.Assets, &oeeDrift)
		}
		same := len(api.Devices) == len(d.Devices)
		for k, dev := range api.Devices {
			if k >= len(d.Devices) || d.Devices[k].Name != dev.Name || d.Devices[k].State != dev.State {
				t.Errorf("%s: API has device %s %s, the page %+v", where, dev.Name, dev.State, d.Devices)
				continue
			}
			shown := d.Tags[dev.Name]
			ticks[shown["tick"].Value] = true
			pageTick, err1 := strconv.ParseUint(shown["tick"].Value, 10, 32)
			apiTick, err2 := strconv.ParseUint(tagText(dev.Tags, "tick"), 10, 32)
			if err1 != nil || err2 != nil || apiTick < pageTick || apiTick-pageTick > maxLagTicks {
				t.Errorf("%s: %s: tick %s on the page, %s in the API read right after: want the page at most one poll behind",
					where, dev.Name, shown["tick"].Value, tagText(dev.Tags, "tick"))
			}
			if apiTick != pageTick {
				same = false
				continue
			}
			for _, tg := range dev.Tags {
				if !equalValue(tg.Value, shown[tg.Name].Value) {
					t.Errorf("%s: %s at tick %s: %s is %s in the API, %q on the page", where, dev.Name,
						shown["tick"].Value, tg.Name, tg.Value, shown[tg.Name].Value)
				}
			}
		}
		if same {
			*sameMoment++
		}
		// And plcsim's line at the tick the page shows.
		for _, mc := range machines {
			name, unit := mc.name, mc.unit
			shown := d.Tags[name]
			tick, err := strconv.ParseUint(shown["tick"].Value, 10, 32)
			if err != nil {
				t.Errorf("%s: %s shows tick %q", where, name, shown["tick"].Value)
				continue
			}
			m, ok := sim.Snapshot(unit, uint32(tick))
			if !ok {
				t.Errorf("%s: plcsim has no snapshot of tick %d", where, tick)
				continue
			}
			if got, want := shown["parts_total"].Value, strconv.FormatUint(uint64(m.PartsTotal), 10); got != want {
				t.Errorf("%s: %s at tick %d: parts_total %s on the page, %s in plcsim", where, name, tick, got, want)
			}
			if got, err := strconv.ParseFloat(shown["temperature"].Value, 32); err != nil || float32(got) != m.Temperature {
				t.Errorf("%s: %s at tick %d: temperature %s on the page, %v in plcsim", where, name, tick, shown["temperature"].Value, m.Temperature)
			}
		}
	}
	if len(ticks) < 2 {
		t.Errorf("the tick never changed over %d renderings: %v", len(r.Samples), ticks)
	}
	// The day so far is worked out at the moment of each status: the OEE moves with every read
	// while the machine runs, stands or makes a part.
	if len(oees) < 2 {
		t.Errorf("%s's OEE never changed over %d renderings: %v", asset, len(r.Samples), keys(oees))
	}
	t.Logf("%d samples, %d on the API's tick, %d on the API's very status; ticks shown %v; %s OEE shown %v (%.2f points at most from a later status); screenshots %v",
		len(r.Samples), *sameMoment-matched, *sameKPIs-matchedKPIs, keys(ticks), asset, keys(oees), oeeDrift*100, r.Screenshots)
}

// checkShows compares the page's device rows and tag tables with the status it rendered.
func checkShows(t *testing.T, where string, d page, st status, lang string) {
	t.Helper()
	if len(d.Devices) != len(st.Devices) || len(st.Devices) != len(machines) {
		t.Fatalf("%s: page shows %d devices, its status has %d, the config %d", where, len(d.Devices), len(st.Devices), len(machines))
	}
	for k, dev := range st.Devices {
		row := d.Devices[k]
		if row.Name != dev.Name || row.NameText != dev.Name || row.State != dev.State {
			t.Errorf("%s: row %d is %+v, status has %s %s", where, k, row, dev.Name, dev.State)
		}
		if want := statuspage.Label(lang, "state_"+dev.State); row.StateText != want {
			t.Errorf("%s: %s state shows %q, want %q", where, dev.Name, row.StateText, want)
		}
		if dev.State != "connected" {
			t.Errorf("%s: %s is %s, want connected", where, dev.Name, dev.State)
		}
		shown := d.Tags[dev.Name]
		if len(shown) != len(dev.Tags) {
			t.Errorf("%s: %s shows %d tags, status has %d", where, dev.Name, len(shown), len(dev.Tags))
		}
		for _, tg := range dev.Tags {
			if got := shown[tg.Name]; !equalValue(tg.Value, got.Value) || got.Quality != tg.Quality {
				t.Errorf("%s: %s.%s shows %q (%s), status has %s (%s)", where, dev.Name, tg.Name, got.Value, got.Quality, tg.Value, tg.Quality)
			}
		}
	}
}

// checkAssets checks the fixture run: the page shows the fixture's assets as they come, a
// performance over 100% marked over and a field it does not know as an extra row.
func checkAssets(t *testing.T, rep report) {
	if rep.Assets == nil {
		t.Fatal("check.js ran no assets run")
	}
	var want []map[string]any
	if err := json.Unmarshal([]byte(assetsFixture), &want); err != nil {
		t.Fatal(err)
	}
	d := rep.Assets.DOM
	checkAssetCards(t, "fixture", d, want, "en")
	// What the fixture is there for, beyond what checkAssetCards compares.
	over, extra := false, false
	for _, a := range d.Assets {
		over = over || a.Bars["performance"].Over
		extra = extra || a.Extra["good_parts"] == "1203"
	}
	if !over {
		t.Errorf("no performance bar is marked over 100%%: %+v", d.Assets)
	}
	if !extra {
		t.Errorf("the unknown field good_parts is not shown as an extra row: %+v", d.Assets)
	}
	t.Logf("screenshot %v", rep.Assets.Screenshots)
}

// kpiBars are the page's bars: the status field and the label's key.
var kpiBars = [][2]string{{"availability", "availability"}, {"performance", "performance"}, {"quality", "oee_quality"}}

// knownAssetFields are the fields the page gives their own place; it lists the others as extra rows.
var knownAssetFields = map[string]bool{"name": true, "shift": true, "oee": true, "availability": true, "performance": true, "quality": true}

// checkAssetCards checks that the page's asset cards show the assets of the status it rendered,
// written as app.js writes them: a fraction as (v*100).toFixed(1)+'%', a missing one (a null
// KPI the agent leaves out) as "–", the bar as wide as the fraction within [0, 1], marked over
// above 1, and every other field as a row of its own.
func checkAssetCards(t *testing.T, where string, d page, assets []map[string]any, lang string) {
	t.Helper()
	if d.AssetsEmptyHidden != (len(assets) > 0) {
		t.Errorf(`%s: the "no assets" note hidden %v with %d assets`, where, d.AssetsEmptyHidden, len(assets))
	}
	if len(d.Assets) != len(assets) {
		t.Errorf("%s: page shows %d assets, its status has %d: %+v", where, len(d.Assets), len(assets), d.Assets)
		return
	}
	for i, w := range assets {
		a := d.Assets[i]
		name, _ := w["name"].(string)
		title := name
		if sh, ok := w["shift"].(string); ok && sh != "" {
			title += " " + statuspage.Label(lang, "shift") + " " + sh
		}
		if a.Name != name || a.Title != title {
			t.Errorf("%s: asset %d shows %q titled %q, want %q titled %q", where, i, a.Name, a.Title, name, title)
		}
		if got, want := a.OEE, pctText(w["oee"]); got != want {
			t.Errorf("%s: %s: OEE shows %q, the status has %v: want %q", where, name, got, w["oee"], want)
		}
		for _, k := range kpiBars {
			b := a.Bars[k[0]]
			v, known := w[k[0]].(float64)
			wantWidth := 0.0
			if known {
				wantWidth = min(max(v, 0), 1) * 100
			}
			// The width comes back through CSSOM, which writes it to 6 significant digits.
			width, err := strconv.ParseFloat(strings.TrimSuffix(b.Width, "%"), 64)
			if b.Label != statuspage.Label(lang, k[1]) || b.Text != pctText(w[k[0]]) || err != nil ||
				!strings.HasSuffix(b.Width, "%") || math.Abs(width-wantWidth) > 1e-3 || b.Over != (v > 1) {
				t.Errorf("%s: %s: %s bar %+v; the status has %v: want %q, %q, %g%% wide, over %v",
					where, name, k[0], b, w[k[0]], statuspage.Label(lang, k[1]), pctText(w[k[0]]), wantWidth, v > 1)
			}
		}
		extra := 0
		for k, v := range w {
			if knownAssetFields[k] {
				continue
			}
			extra++
			raw, _ := json.Marshal(v)
			if got, ok := a.Extra[k]; !ok || !equalValue(raw, got) {
				t.Errorf("%s: %s: %s shows %q (row shown %v), the status has %s", where, name, k, got, ok, raw)
			}
		}
		if len(a.Extra) != extra {
			t.Errorf("%s: %s: %d extra rows %v, the status has %d other fields", where, name, len(a.Extra), a.Extra, extra)
		}
	}
}

// checkAssetsLater compares the assets of the status the page rendered with those of a later
// status, which the API read right after gave: the same assets and windows, counts that only grew, by a poll's parts at
// most (unless a new day began between them). Their KPIs are the day so far at two moments and may differ: drift records by how much.
func checkAssetsLater(t *testing.T, where string, rendered, api []map[string]any, drift *float64) {
	t.Helper()
	if len(api) != len(rendered) {
		t.Errorf("%s: the API read right after has %d assets, the page's status %d", where, len(api), len(rendered))
		return
	}
	for i, w := range api {
		r := rendered[i]
		if w["name"] != r["name"] {
			t.Errorf("%s: the API read right after has asset %v, the page's status %v", where, w["name"], r["name"])
			continue
		}
		if w["window_start"] != r["window_start"] {
			continue // a new day began between the two reads: the counts start afresh
		}
		for _, k := range []string{"produced", "good", "scrap"} {
			a, _ := w[k].(float64)
			p, _ := r[k].(float64)
			// plcsim's fastest machine makes a part in 1.6 s: a poll, plus one for a slow read.
			if a < p || a-p > 2*float64(pollInterval/(1600*time.Millisecond))+1 {
				t.Errorf("%s: %v: %s %v in the page's status, %v in the API read right after", where, w["name"], k, r[k], w[k])
			}
		}
		a, ok1 := w["oee"].(float64)
		p, ok2 := r["oee"].(float64)
		if ok1 && ok2 {
			*drift = max(*drift, math.Abs(a-p))
		}
	}
}

// pctText is a status fraction as the page writes it.
func pctText(v any) string {
	f, ok := v.(float64)
	if !ok {
		return "–"
	}
	return toFixed1(f*100) + "%"
}

// toFixed1 is JavaScript's x.toFixed(1) for |x| < 1e21: the exact value of x rounded to one
// decimal, a tie going up. strconv.FormatFloat rounds a tie to even (12.25 gives 12.2, where
// JavaScript writes 12.3).
func toFixed1(x float64) string {
	if x < 0 {
		if s := toFixed1(-x); s != "0.0" {
			return "-" + s
		}
		return "0.0" // JavaScript: (-0.01).toFixed(1) is "-0.0"; no KPI is negative
	}
	// Exact: a float64 has at most 1074 digits after the point.
	s := new(big.Float).SetFloat64(x).Text('f', 1100)
	dot := strings.IndexByte(s, '.')
	tenths := new(big.Int)
	tenths.SetString(s[:dot]+s[dot+1:dot+2], 10)
	if s[dot+2] >= '5' {
		tenths.Add(tenths, big.NewInt(1))
	}
	t := tenths.String()
	if len(t) < 2 {
		t = "0" + t
	}
	return t[:len(t)-1] + "." + t[len(t)-1:]
}

// equalValue compares a status value (JSON) with the page's text of it: null is "–", numbers
// compare as numbers (JavaScript and Go write some differently, 1e+21 and 1e21), strings and
// booleans as text.
func equalValue(raw json.RawMessage, shown string) bool {
	s := strings.TrimSpace(string(raw))
	switch {
	case s == "null" || s == "":
		return shown == "–"
	case s[0] == '"':
		var v string
		return json.Unmarshal(raw, &v) == nil && v == shown
	case s == "true" || s == "false":
		return s == shown
	}
	a, err1 := strconv.ParseFloat(s, 64)
	b, err2 := strconv.ParseFloat(shown, 64)
	return err1 == nil && err2 == nil && a == b
}

func tagText(tags []struct {
	Name    string
	Value   json.RawMessage
	Quality string
}, name string) string {
	for _, tg := range tags {
		if tg.Name == name {
			return string(tg.Value)
		}
	}
	return ""
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// runCheck runs check.js and decodes its report; its stderr is logged when the test fails.
func runCheck(t *testing.T, tl tools, base, out, assets string) report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tl.node, tl.script, "--base", base, "--out", out, "--modules", tl.modules,
		"--chromium", tl.chromium, "--samples", "5", "--assets", assets)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("check.js stderr:\n%s", stderr.String())
		}
	})
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("check.js did not finish within 3 minutes:\n%s", stderr.String())
		}
		t.Fatalf("check.js: %v\n%s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("check.js report: %v\n%.500s", err, stdout.String())
	}
	return rep
}

// waitReady waits until the agent's status shows every device connected and polled.
func waitReady(t *testing.T, base string, agent *floorlinktest.Agent) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := func() error {
			resp, err := httpGet(base + "/api/v1/status")
			if err != nil {
				return err
			}
			var st status
			if err := json.Unmarshal(resp, &st); err != nil {
				return err
			}
			if !st.MQTT.Connected || len(st.Devices) != len(machines) {
				return fmt.Errorf("status %s", resp)
			}
			for _, d := range st.Devices {
				if d.State != "connected" || tagText(d.Tags, "tick") == "null" {
					return fmt.Errorf("device %s %s", d.Name, d.State)
				}
			}
			return nil
		}()
		if err == nil {
			return
		}
		select {
		case <-agent.Done():
			t.Fatalf("agent exited: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready after 30s: %v", err)
		}
	}
}

// waitKPIs waits until the asset's day so far has an availability and an OEE above zero: the
// machine ran and made a part since the agent started, so the samples show a real, moving OEE.
func waitKPIs(t *testing.T, base string, agent *floorlinktest.Agent) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var last string
		if b, err := httpGet(base + "/api/v1/status"); err != nil {
			last = err.Error()
		} else {
			var st status
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatalf("status: %v: %.200s", err, b)
			}
			last = fmt.Sprint(st.Assets)
			if len(st.Assets) == 1 {
				_, avail := st.Assets[0]["availability"].(float64)
				if oee, _ := st.Assets[0]["oee"].(float64); avail && oee > 0 {
					t.Logf("%s so far: %v", asset, st.Assets[0])
					return
				}
			}
		}
		select {
		case <-agent.Done():
			t.Fatalf("agent exited; last status assets %s", last)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no availability and OEE after 60s: assets %s", asset, last)
		}
	}
}

func httpGet(url string) ([]byte, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b, err
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestToFixed1 checks the helper against what JavaScript's toFixed(1) writes (node agrees):
// a tie of the exact binary value goes up, where strconv.FormatFloat goes to even.
func TestToFixed1(t *testing.T) {
	for _, c := range []struct {
		x    float64
		want string
	}{
		{0, "0.0"}, {12.25, "12.3"}, {0.25, "0.3"}, {0.35, "0.3"}, {1.45, "1.4"}, {0.05, "0.1"},
		{99.95, "100.0"}, {99.94999, "99.9"}, {105.4, "105.4"}, {0.4797646248651216 * 100, "48.0"}, {9.5, "9.5"},
	} {
		if got := toFixed1(c.x); got != c.want {
			t.Errorf("toFixed1(%v) = %q, want %q", c.x, got, c.want)
		}
	}
}
