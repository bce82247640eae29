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
      - {name: temperature, address: "40011", type: float32, unit: "°C"}
      - {name: pressure, address: "40013", type: float32, byte_order: CDAB, unit: bar}
      - {name: spindle_speed, address: "40018", type: int32, unit: rpm}
      - {name: running, address: "00001", type: bool}`

// pollInterval is the devices'. Twice the page's refresh: most of the test's reads find the
// page and the API on the same poll, and five renderings span at least one poll.
const pollInterval = 2 * time.Second

// maxLagTicks is how far the API, read right after the page rendered, may be ahead of it: one
// poll of plcsim's ticks (100 ms each), and a poll's worth of margin for a slow machine.
const maxLagTicks = 2 * uint64(pollInterval/(100*time.Millisecond))

// config is the agent's file: three machines polled every pollInterval.
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
		Text, Width string
		Over        bool
	}
}

// status is the part of /api/v1/status the test compares.
type status struct {
	Gateway struct{ ID string }
	MQTT    struct{ Connected bool }
	Stats   struct{ TS string }
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

// assetsFixture is what the KPI engine will add to the status: fractions, one performance over
// 100% (a wrong ideal cycle time shows so), and a field the page does not know.
const assetsFixture = `[
 {"name":"press-1","shift":"A","oee":0.7689,"availability":0.912,"performance":0.8534,"quality":0.9876,"good_parts":1203},
 {"name":"weld-2","shift":"A","oee":0.5,"availability":0.5,"performance":1.054,"quality":0.95}
]`

// TestStatusPage_Browser loads the status page of an agent reading plcsim in headless
// Chromium, in English and in Korean, and checks that the device rows and the tag values it
// shows are the status the page fetched, equal the API's at the same moment (on the tick the
// page shows) and plcsim's model at that tick; that the tick moves between reads; that a known
// Korean label is shown; that the assets' OEE bars show what the status holds; that the page
// requests nothing outside its own origin and raises no script error; and writes screenshots.
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

	fixture := filepath.Join(dir, "assets.json")
	if err := os.WriteFile(fixture, []byte(assetsFixture), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := runCheck(t, tl, base, out, fixture)
	t.Logf("Chromium %s; screenshots in %s", rep.Chromium, out)

	sameMoment, samples := 0, 0
	for _, r := range rep.Runs {
		samples += len(r.Samples)
		t.Run(r.Name, func(t *testing.T) {
			wantLang := "ko"
			if r.Name == "en" {
				wantLang = "en"
			}
			checkRun(t, sim, r, wantLang, &sameMoment)
		})
	}
	// The page and the API's poll run on their own clocks, so a read can fall between them;
	// over three runs' samples, each run with its own phase, some must not.
	if sameMoment == 0 {
		t.Errorf("in none of %d samples did the API, read right after the page, show the page's ticks", samples)
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
func checkRun(t *testing.T, sim *simtest.Sim, r run, lang string, sameMoment *int) {
	if len(r.Samples) == 0 {
		t.Fatal("no sample")
	}
	matched := *sameMoment
	ticks := map[string]bool{}
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
		// The page shows the status it fetched: every device row and every tag value.
		checkShows(t, where, d, rendered, lang)
		// The API at the same moment (read right after the page rendered): the same devices in
		// the same states, at most one poll ahead of the page; and where the device's tick is
		// the one the page shows, the same values.
		api := decodeStatus(t, s.API)
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
	t.Logf("%d samples, %d on the API's tick; ticks shown %v; screenshots %v", len(r.Samples), *sameMoment-matched,
		keys(ticks), r.Screenshots)
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

func checkAssets(t *testing.T, rep report) {
	if rep.Assets == nil {
		t.Fatal("check.js ran no assets run")
	}
	var want []map[string]any
	if err := json.Unmarshal([]byte(assetsFixture), &want); err != nil {
		t.Fatal(err)
	}
	d := rep.Assets.DOM
	if !d.AssetsEmptyHidden {
		t.Error(`the "no assets" note still shows`)
	}
	if len(d.Assets) != len(want) {
		t.Fatalf("page shows %d assets, the status %d: %+v", len(d.Assets), len(want), d.Assets)
	}
	pct := func(v float64) string { return strconv.FormatFloat(v*100, 'f', 1, 64) + "%" }
	for i, w := range want {
		a := d.Assets[i]
		if a.Name != w["name"] || !strings.Contains(a.Title, w["name"].(string)) || !strings.Contains(a.Title, "A") {
			t.Errorf("asset %d: %q %q, want %s, shift A", i, a.Name, a.Title, w["name"])
		}
		if got := a.OEE; got != pct(w["oee"].(float64)) {
			t.Errorf("%s: OEE %q, want %q", a.Name, got, pct(w["oee"].(float64)))
		}
		for _, k := range []string{"availability", "performance", "quality"} {
			v := w[k].(float64)
			b := a.Bars[k]
			wantWidth := strconv.FormatFloat(min(v, 1)*100, 'f', -1, 64) + "%"
			if b.Text != pct(v) || b.Width != wantWidth || b.Over != (v > 1) {
				t.Errorf("%s: %s bar %+v, want %s wide %s, over %v", a.Name, k, b, pct(v), wantWidth, v > 1)
			}
		}
	}
	t.Logf("screenshot %v", rep.Assets.Screenshots)
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
