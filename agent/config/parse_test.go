package config

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fileCmp compares Files by their exported fields; zones by name.
var fileCmp = []cmp.Option{
	cmpopts.IgnoreUnexported(File{}, Asset{}),
	cmp.Comparer(func(a, b Secret) bool { return a.Reveal() == b.Reveal() }),
	cmp.Comparer(func(a, b *time.Location) bool { return a.String() == b.String() }),
}

func mustParse(t testing.TB, path, data string) *File {
	t.Helper()
	f, err := Parse(path, []byte(data), testOptions())
	if err != nil {
		t.Fatalf("got problems:\n%v", err)
	}
	return f
}

// TestParse_Minimal pins every default, written out by hand, against what Parse applies to the
// smallest valid file.
func TestParse_Minimal(t *testing.T) {
	f, err := Load("testdata/good/minimal.yaml", testOptions())
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("testdata/good")
	if err != nil {
		t.Fatal(err)
	}
	want := &File{
		Path: "testdata/good/minimal.yaml",
		Gateway: Gateway{ID: "gw-1", Site: "changwon", Area: "body", Line: "press-1",
			DataDir: filepath.Join(dir, "data"), Timezone: "UTC", Location: time.UTC},
		MQTT: MQTT{
			Brokers: []string{"tcp://127.0.0.1:1883"}, ClientID: "gw-1", Format: "json",
			TopicTemplate: "floorlink/v1/{site}/{area}/{line}/{source}/{kind}", MaxInflight: 64,
			KeepAlive: 30 * time.Second, ConnectTimeout: 10 * time.Second, ReconnectMin: time.Second,
			ReconnectMax: 30 * time.Second, ShutdownGrace: 5 * time.Second, StatsInterval: 10 * time.Second,
			MaxDrainRate: 1000, MaxMessageBytes: 256 << 10, HoldBack: 45 * time.Second,
		},
		Buffer: Buffer{MaxBytes: 512 << 20, MaxAge: 168 * time.Hour, Sync: "always", CommitInterval: 0},
		Devices: []Device{{
			Name: "press-1", Protocol: "modbus-tcp", Address: "127.0.0.1:5020", UnitID: 1,
			PollInterval: time.Second, Timeout: 2 * time.Second, Area: "body", Line: "press-1",
			Timestamp: "gateway", MaxRegisters: 125, MaxGap: 16,
			Tags: []Tag{{Name: "state", Address: "40001", Type: "uint16", Scale: 1}},
		}},
		HTTP: HTTP{Listen: "127.0.0.1:8088"},
	}
	if diff := cmp.Diff(want, f, fileCmp...); diff != "" {
		t.Errorf("File (-want +got):\n%s", diff)
	}
}

func TestParse_RTUDefaults(t *testing.T) {
	f := mustParse(t, "x.yaml", `
gateway: {id: gw-1, site: s, area: a, line: l}
mqtt: {brokers: ["tcp://b:1883"]}
devices:
  - {name: oven-1, protocol: modbus-rtu, address: /dev/ttyS0, unit_id: 5, area: "", line: oven, tags: [{name: t, address: "30001", type: int16}]}
`)
	want := &Serial{Baud: 9600, DataBits: 8, Parity: "none", StopBits: 1}
	if diff := cmp.Diff(want, f.Devices[0].Serial); diff != "" {
		t.Errorf("Serial (-want +got):\n%s", diff)
	}
	if d := f.Devices[0]; d.Area != "a" || d.Line != "oven" {
		t.Errorf("got area %q, line %q; want the gateway's a (area \"\") and the device's oven", d.Area, d.Line)
	}
}

// TestParse_Env checks the values of testdata/good/env.yaml: defaults after :-, $$ kept as a
// literal $, a lone $ kept, expanded text decoded by the field's type.
func TestParse_Env(t *testing.T) {
	var read []string
	opts := testOptions()
	opts.ReadFile = func(name string) ([]byte, error) {
		read = append(read, name)
		return []byte("from-a-file\r\n"), nil
	}
	f, err := Load("testdata/good/env.yaml", opts)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("testdata/good/secrets/mqtt-password")
	checks := []struct{ name, got, want string }{
		{"gateway.id", f.Gateway.ID, "gw-env-01"},
		{"gateway.data_dir", f.Gateway.DataDir, "/var/lib/floorlink"},
		{"mqtt.brokers[0]", f.MQTT.Brokers[0], "tcp://127.0.0.1:1883"},
		{"mqtt.username", f.MQTT.Username, "floorlink"},
		{"mqtt.client_id", f.MQTT.ClientID, "cost-$5--${NOT_EXPANDED}-a$b"},
		{"mqtt.password", f.MQTT.Password.Reveal(), "from-a-file"},
		{"mqtt.password_file", f.MQTT.PasswordFile, abs},
		{"http.listen", f.HTTP.Listen, ""},
		{"devices[0].address", f.Devices[0].Address, "127.0.0.1:5020"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if f.MQTT.MaxInflight != 32 || f.Devices[0].UnitID != 0 || f.Devices[0].PollInterval != 250*time.Millisecond {
		t.Errorf("got max_inflight %d, unit_id %d, poll_interval %v; want 32, 0, 250ms",
			f.MQTT.MaxInflight, f.Devices[0].UnitID, f.Devices[0].PollInterval)
	}
	if len(read) != 1 || read[0] != abs {
		t.Errorf("got ReadFile calls %q, want one for %q", read, abs)
	}
}

// TestParse_EnvCannotInjectYAML: a variable's value is text, never YAML structure.
func TestParse_EnvCannotInjectYAML(t *testing.T) {
	const inject = "x\n  evil: true\ntags: [{name: y}]"
	opts := Options{LookupEnv: func(string) (string, bool) { return inject, true }}
	f, err := Parse("x.yaml", []byte("gateway: {id: g, site: s, area: a, line: l}\nmqtt:\n  brokers: [\"tcp://b:1883\"]\n  username: ${INJECT}\n"), opts)
	if err != nil {
		t.Fatalf("got %v, want the value taken as a plain string", err)
	}
	if f.MQTT.Username != inject {
		t.Errorf("got username %q, want the variable's text", f.MQTT.Username)
	}
}

func TestParse_RelativePaths(t *testing.T) {
	f := mustParse(t, "/etc/floorlink/line1.yaml", "gateway: {id: g, site: s, area: a, line: l, data_dir: state/../data}\nmqtt: {brokers: [\"tcp://b:1883\"]}\n")
	if want := "/etc/floorlink/data"; f.Gateway.DataDir != want {
		t.Errorf("got data_dir %q, want %q", f.Gateway.DataDir, want)
	}
	f = mustParse(t, "/etc/floorlink/line1.yaml", "gateway: {id: g, site: s, area: a, line: l, data_dir: /var/lib/floorlink/}\nmqtt: {brokers: [\"tcp://b:1883\"]}\n")
	if want := "/var/lib/floorlink"; f.Gateway.DataDir != want {
		t.Errorf("got data_dir %q, want %q", f.Gateway.DataDir, want)
	}
}

// TestParse_MaxBytes32Bit plays a 32-bit gateway: its default fits and a larger size is refused.
func TestParse_MaxBytes32Bit(t *testing.T) {
	parse := func(intSize int, maxBytes string) (*File, []Problem) {
		d := newDecoder("x.yaml", testOptions())
		d.intSize = intSize
		f := d.decode([]byte("gateway: {id: g, site: s, area: a, line: l}\nmqtt: {brokers: [\"tcp://b:1883\"]}\nbuffer: {" + maxBytes + "}\n"))
		return f, d.problems
	}
	if f, ps := parse(32, ""); len(ps) != 0 || f.Buffer.MaxBytes != 512<<20 {
		t.Errorf("32-bit default: got %d and %v, want 512MiB and no problem", f.Buffer.MaxBytes, ps)
	}
	_, ps := parse(32, "max_bytes: 1GiB")
	want := []Problem{{File: "x.yaml", Line: 3, Col: 21, Path: "buffer.max_bytes",
		Msg: `want at most 512MiB on a 32-bit gateway (it cannot map a larger file), got "1GiB"`}}
	if diff := cmp.Diff(want, ps); diff != "" {
		t.Errorf("32-bit 1GiB (-want +got):\n%s", diff)
	}
	if f, ps := parse(64, "max_bytes: 64GB"); len(ps) != 0 || f.Buffer.MaxBytes != 64e9 {
		t.Errorf("64-bit 64GB: got %d and %v, want 64e9 and no problem", f.Buffer.MaxBytes, ps)
	}
}

// TestParse_FileWithProblems checks the contract the agent relies on: a File comes back with
// the problems, with bad fields at zero or default and good ones decoded.
func TestParse_FileWithProblems(t *testing.T) {
	f, err := Parse("x.yaml", []byte(`
gateway: {id: gw-1, site: s, area: a, line: l, timezone: Nowhere/Land}
mqtt: {brokers: ["tcp://b:1883"], keep_alive: soon}
devices:
  - {name: p, protocol: modbus-tcp, address: "h:502", tags: [{name: t, address: "40001", type: uint16, scale: 0}]}
`), testOptions())
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 3 {
		t.Fatalf("got %v, want an *Error with 3 problems", err)
	}
	if f == nil {
		t.Fatal("got nil File")
	}
	if f.Gateway.Timezone != "UTC" || f.Gateway.Location != time.UTC || f.MQTT.KeepAlive != 0 ||
		f.Devices[0].Tags[0].Scale != 1 || f.Devices[0].Address != "h:502" {
		t.Errorf("got timezone %q, keep_alive %v, scale %v, address %q; want UTC, 0, 1, h:502",
			f.Gateway.Timezone, f.MQTT.KeepAlive, f.Devices[0].Tags[0].Scale, f.Devices[0].Address)
	}
	// The agent's own checks join the file's problems in position order.
	p := f.Problemf("devices[0].tags[0].address", "unknown register table %q", "5")
	joined := Join(f, append(ce.Problems, p)...).(*Error)
	var got []string
	for _, p := range joined.Problems {
		got = append(got, p.Path)
	}
	want := []string{"gateway.timezone", "mqtt.keep_alive", "devices[0].tags[0].address", "devices[0].tags[0].scale"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("joined order (-want +got):\n%s", diff)
	}
}

func TestLoad_NotExist(t *testing.T) {
	f, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), Options{})
	var pe *fs.PathError
	if f != nil || !errors.As(err, &pe) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, %v; want nil and a *fs.PathError for a missing file", f, err)
	}
}

func TestLoad_DefaultOptions(t *testing.T) {
	t.Setenv("FLOORLINK_TEST_SITE", "from-env")
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("gateway: {id: g, site: \"${FLOORLINK_TEST_SITE}\", area: a, line: l}\nmqtt: {brokers: [\"tcp://b:1883\"], password_file: pw}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Gateway.Site != "from-env" || f.MQTT.Password.Reveal() != "pw" {
		t.Errorf("got site %q, password %q; want from-env, pw", f.Gateway.Site, f.MQTT.Password.Reveal())
	}
}

func TestFile_Pos(t *testing.T) {
	f := mustParse(t, "x.yaml", `gateway: {id: g, site: s, area: a, line: l}
mqtt:
  brokers: ["tcp://b:1883"]
devices:
  - name: p
    protocol: modbus-tcp
    address: "h:502"
    tags:
      - name: t
        address: "40001"
        type: uint16
`)
	tests := []struct {
		path      string
		line, col int
	}{
		{"", 1, 1},
		{"gateway", 1, 1},
		{"gateway.site", 1, 24},
		{"mqtt", 2, 1},
		{"mqtt.brokers", 3, 3},
		{"mqtt.brokers[0]", 3, 13},
		{"mqtt.keep_alive", 2, 1}, // missing: the mapping's key
		{"devices[0]", 5, 5},
		{"devices[0].tags", 8, 5},
		{"devices[0].tags[0]", 9, 9},
		{"devices[0].tags[0].address", 10, 18},
		{"devices[0].tags[0].address.bit", 10, 18},
		{"devices[0].tags[0].scale", 9, 9},
		{"devices[0].tags[7].type", 8, 5},
		{"devices[3]", 4, 1},
		{"nothing.here", 1, 1},
	}
	for _, tt := range tests {
		line, col, ok := f.Pos(tt.path)
		if !ok || line != tt.line || col != tt.col {
			t.Errorf("Pos(%q) = %d:%d %v, want %d:%d true", tt.path, line, col, ok, tt.line, tt.col)
		}
	}
	if _, _, ok := (&File{}).Pos("gateway"); ok {
		t.Error("Pos on a File without positions: got ok, want false")
	}
	got := f.Problemf("devices[0].tags[0].type", "unknown type %q (want one of %s)", "flaot32", "bool, int16").String()
	if want := `x.yaml:11:15: devices[0].tags[0].type: unknown type "flaot32" (want one of bool, int16)`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestJoin(t *testing.T) {
	if err := Join(nil); err != nil {
		t.Errorf("Join() = %v, want nil", err)
	}
	f := &File{Path: "f.yaml"}
	err := Join(f,
		Problem{Msg: "no place"},
		Problem{Line: 3, Col: 1, Path: "b", Msg: "later"},
		Problem{File: "other.yaml", Line: 1, Col: 9, Path: "a", Msg: "first"},
		Problem{Line: 3, Col: 1, Path: "b", Msg: "later"},
		Problem{Line: 1, Col: 10, Msg: "second"},
	)
	want := "other.yaml:1:9: a: first\nf.yaml:1:10: second\nf.yaml:3:1: b: later\nf.yaml: no place"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	if got := (Problem{Line: 2, Col: 3, Path: "p", Msg: "m"}).String(); got != "2:3: p: m" {
		t.Errorf("got %q, want a problem without a file to start at its line", got)
	}
}

func TestFile_Buses(t *testing.T) {
	f := mustParse(t, "x.yaml", `
gateway: {id: g, site: s, area: a, line: l}
mqtt: {brokers: ["tcp://b:1883"]}
devices:
  - {name: d0, protocol: modbus-tcp, address: "GW.local:502", unit_id: 1, tags: [{name: t, address: "40001", type: uint16}]}
  - {name: d1, protocol: modbus-rtu, address: /dev/ttyUSB0, unit_id: 1, tags: [{name: t, address: "40001", type: uint16}]}
  - {name: d2, protocol: modbus-tcp, address: "gw.local:502", unit_id: 2, tags: [{name: t, address: "40001", type: uint16}]}
  - {name: d3, protocol: modbus-tcp, address: "gw.local:503", tags: [{name: t, address: "40001", type: uint16}]}
  - {name: d4, protocol: modbus-rtu, address: /dev/./ttyUSB0, unit_id: 2, tags: [{name: t, address: "40001", type: uint16}]}
`)
	want := []Bus{
		{Protocol: "modbus-tcp", Address: "GW.local:502", Devices: []int{0, 2}},
		{Protocol: "modbus-rtu", Address: "/dev/ttyUSB0", Devices: []int{1, 4}},
		{Protocol: "modbus-tcp", Address: "gw.local:503", Devices: []int{3}},
	}
	if diff := cmp.Diff(want, f.Buses()); diff != "" {
		t.Errorf("Buses (-want +got):\n%s", diff)
	}
}

func TestParseSize(t *testing.T) {
	f := func(s string, want int64, wantOK bool) {
		t.Helper()
		got, ok := parseSize(s)
		if got != want || ok != wantOK {
			t.Errorf("parseSize(%q) = %d, %v; want %d, %v", s, got, ok, want, wantOK)
		}
	}
	f("512MiB", 512<<20, true)
	f("1 GB", 1e9, true)
	f("1048576", 1<<20, true)
	f("2KB", 2000, true)
	f("3TiB", 3<<40, true)
	f("7B", 7, true)
	f("512mib", 0, false)
	f("512M", 0, false)
	f("1.5GiB", 0, false)
	f("-1MiB", 0, false)
	f("MiB", 0, false)
	f("", 0, false)
	f("9999999999TiB", 0, false)
	f("99999999999999999999", 0, false)
	if got := formatSize(512 << 20); got != "512MiB" {
		t.Errorf("formatSize(512MiB) = %q", got)
	}
	if got := formatSize(1000); got != "1000B" {
		t.Errorf("formatSize(1000) = %q", got)
	}
}

func TestParseDuration(t *testing.T) {
	f := func(s string, want time.Duration, wantOK bool) {
		t.Helper()
		got, _, ok := parseDuration(s)
		if got != want || ok != wantOK {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, %v", s, got, ok, want, wantOK)
		}
	}
	f("0", 0, true)
	f("0s", 0, true)
	f("1m30s", 90*time.Second, true)
	f("500ms", 500*time.Millisecond, true)
	f("5", 0, false)
	f("7d", 0, false)
	f("", 0, false)
}

func TestParseNumbers(t *testing.T) {
	for s, want := range map[string]bool{"1": true, "-3": true, "0": true, "007": false, "0x10": false, "1.0": false, "": false, "+5": true} {
		if _, ok := parseInt(s); ok != want {
			t.Errorf("parseInt(%q) ok = %v, want %v", s, ok, want)
		}
	}
	for s, want := range map[string]bool{"0.1": true, "-2e3": true, ".inf": true, ".nan": true, "1_000": false, "0x1p-2": false, "abc": false, "1e999": true} {
		if _, ok := parseFloat(s); ok != want {
			t.Errorf("parseFloat(%q) ok = %v, want %v", s, ok, want)
		}
	}
	if v, _ := parseFloat("1e999"); !math.IsInf(v, 1) {
		t.Errorf("parseFloat(1e999) = %v, want +Inf (refused later as not finite)", v)
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "alpha", "E": "", "PW": testSecret}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	f := func(in, want string, wantExpanded bool, wantErrs ...string) {
		t.Helper()
		got, expanded, errs := expand(in, lookup)
		if got != want || expanded != wantExpanded {
			t.Errorf("expand(%q) = %q, %v; want %q, %v", in, got, expanded, want, wantExpanded)
		}
		if diff := cmp.Diff(wantErrs, errs, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("expand(%q) problems (-want +got):\n%s", in, diff)
		}
		for _, e := range errs {
			if strings.Contains(e, testSecret) {
				t.Errorf("expand(%q): a problem shows the secret: %s", in, e)
			}
		}
	}
	f("plain", "plain", false)
	f("${A}", "alpha", true)
	f("x-${A}-y", "x-alpha-y", true)
	f("$$", "$", false)
	f("$${A}", "${A}", false)
	f("$$$${A}", "$${A}", false)
	f("$$${A}", "$alpha", true)
	f("pa$word$", "pa$word$", false)
	f("${E}", "", true)
	f("${E:-dflt}", "dflt", true)
	f("${NOPE:-dflt}", "dflt", true)
	f("${A:-dflt}", "alpha", true)
	f("${NOPE:-}", "", true)
	f("${NOPE}", "", true, "environment variable NOPE is not set (write ${NOPE:-default} for a fallback, or $${ for a literal ${)")
	f("${A", "${A", false, "unterminated ${ (write $${ for a literal ${)")
	f("${}", "", true, "malformed ${...} (want ${NAME} or ${NAME:-default}, NAME made of letters, digits and _; write $${ for a literal ${)")
	f("${"+testSecret+"}", "", true, "malformed ${...} (want ${NAME} or ${NAME:-default}, NAME made of letters, digits and _; write $${ for a literal ${)")
	f("${A:-${B}}", "}", true, "the default of ${A} holds ${: nested variables are not supported")
	f("${PW}", testSecret, true)
}

func TestSuggest(t *testing.T) {
	keys := childKeys("devices[]")
	f := func(key, want string) {
		t.Helper()
		if got := suggest(key, keys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", key, got, want)
		}
	}
	f("pollInterval", "poll_interval")
	f("poll-interval", "poll_interval")
	f("POLL_INTERVAL", "poll_interval")
	f("pol_interval", "poll_interval")
	f("adress", "address")
	f("slave_id", "unit_id")
	f("slaveId", "unit_id")
	f("tag", "tags")
	f("colour", "")
	f("id", "")

	for _, tt := range []struct{ key, section, want string }{
		{"keepalive", "mqtt", "unknown key (did you mean keep_alive?)"},
		{"colour", "mqtt", "unknown key (see docs/configuration.md)"},
		{"colour", "devices[].serial", "unknown key (want one of baud, data_bits, parity, stop_bits)"},
		{"port", "http", "unknown key (want listen)"},
	} {
		if got := unknownKey(tt.key, childKeys(tt.section)); got != tt.want {
			t.Errorf("unknownKey(%q) in %s = %q, want %q", tt.key, tt.section, got, tt.want)
		}
	}
}

// TestChildKeys checks the key lists the decoder derives from the field table.
func TestChildKeys(t *testing.T) {
	tests := map[string][]string{
		"":                 {"gateway", "mqtt", "buffer", "devices", "assets", "http"},
		"gateway":          {"id", "site", "area", "line", "data_dir", "timezone"},
		"devices[].serial": {"baud", "data_bits", "parity", "stop_bits"},
		"http":             {"listen"},
		"assets[]":         {"name", "state", "counters", "ideal_cycle", "micro_stop", "schedule", "windows", "live_interval"},
	}
	for path, want := range tests {
		if diff := cmp.Diff(want, childKeys(path)); diff != "" {
			t.Errorf("childKeys(%q) (-want +got):\n%s", path, diff)
		}
	}
}

func TestCheckHostPort(t *testing.T) {
	f := func(s string, listener bool, want string) {
		t.Helper()
		if got := checkHostPort(s, listener); got != want {
			t.Errorf("checkHostPort(%q, %v) = %q, want %q", s, listener, got, want)
		}
	}
	f("plc-1:502", false, "")
	f("[fd00::5]:502", false, "")
	f(":8088", true, "")
	f("127.0.0.1:0", true, "")
	f("plc-1", false, " (no port)")
	f("fd00::5:502", false, " (an IPv6 address goes in brackets: [fd00::5]:502)")
	f("[fd00::5", false, " (not host:port)")
	f(":502", false, " (no host)")
	f("plc-1:0", false, " (port must be a number from 1 to 65535)")
	f("plc-1:65536", true, " (port must be a number from 0 to 65535)")
	f("plc-1:+1", false, " (port must be a number from 1 to 65535)")
}

// TestParse_FlowMappingURL: goccy-go-yaml splits an unquoted URL in a list inside a flow mapping
// at its last colon; the decoder joins it back, as YAML 1.2 reads it.
func TestParse_FlowMappingURL(t *testing.T) {
	src := "gateway: {id: gw, site: s, area: a, line: l}\nmqtt: {brokers: [tcp://127.0.0.1:1883, mqtt://b.local:8883]}\n"
	f, err := Parse("flow.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"tcp://127.0.0.1:1883", "mqtt://b.local:8883"}
	if len(f.MQTT.Brokers) != 2 || f.MQTT.Brokers[0] != want[0] || f.MQTT.Brokers[1] != want[1] {
		t.Fatalf("brokers = %q, want %q", f.MQTT.Brokers, want)
	}
	// A real one-entry mapping (a space after the colon) is still a mapping.
	_, err = Parse("flow.yaml", []byte("gateway: {id: gw, site: s, area: a, line: l}\nmqtt: {brokers: [{tcp: 1883}]}\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "got a mapping") {
		t.Fatalf("a mapping item was accepted as a URL: %v", err)
	}
}
