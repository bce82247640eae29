package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binary is the floorlink command built once for the tests that run it as a process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "floorlink-cmd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "floorlink")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// TestValidate_ShippedConfigs: every config we ship validates, including the drivers' checks.
func TestValidate_ShippedConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	if len(files) == 0 {
		t.Fatal("no configs/*.yaml found")
	}
	for _, f := range files {
		if code, out, errOut := runCLI("validate", f); code != 0 {
			t.Errorf("validate %s: exit %d\n%s%s", f, code, out, errOut)
		}
	}
}

// TestValidate_BadConfigs: each malformed fixture of the config package exits 2 and names its
// file with a line and column.
func TestValidate_BadConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../agent/config/testdata/bad/*.yaml")
	if len(files) < 25 {
		t.Fatalf("%d malformed fixtures, want at least 25", len(files))
	}
	t.Setenv("MQTT_PASSWORD", "x") // some fixtures use it legitimately
	for _, f := range files {
		code, _, errOut := runCLI("validate", f)
		if code != 2 {
			t.Errorf("validate %s: exit %d, want 2\n%s", f, code, errOut)
			continue
		}
		if !strings.Contains(errOut, f) {
			t.Errorf("validate %s: output does not name the file:\n%s", f, errOut)
		}
	}
}

func TestValidate_DriverProblemsPlaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte(`gateway: {id: gw, site: s, area: a, line: l}
mqtt:
  brokers: [tcp://127.0.0.1:1883]
devices:
  - name: press-1
    protocol: modbus-tcp
    address: 127.0.0.1:502
    tags:
      - {name: a, address: "40001", type: flaot32}
      - {name: b, address: "90001", type: uint16}
    unit_id: 300
`), 0o644)
	code, _, errOut := runCLI("validate", path)
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	want := []string{
		path + ":9:43: devices[0].tags[0].type: \"flaot32\": want one of bool,",
		path + ":10:28: devices[0].tags[1].address: \"90001\": leading digit 9 is not a Modicon table",
		path + ":11:14: devices[0].unit_id: want a unit id from 0 to 255 on modbus-tcp, got 300",
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	for i, w := range want {
		if i >= len(lines) || !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: want prefix %q in\n%s", i+1, w, errOut)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"run"}, {"validate"}, {"run", "-c", "/nonexistent.yaml"}, {"nope"}, {"run", "--bogus"}} {
		if code, _, _ := runCLI(args...); code != 2 {
			t.Errorf("floorlink %v: exit %d, want 2", args, code)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI("version")
	if code != 0 || !strings.HasPrefix(out, "floorlink ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

// TestSecret_NeverPrinted sets the MQTT password through ${VAR} and greps everything the
// command prints for it: validate's problems and --print output, a running agent's log at debug
// level while it fails to reach the broker, and a dump of the records it stored meanwhile.
func TestSecret_NeverPrinted(t *testing.T) {
	const secret = "pw-Zq7!s3cr3t-should-never-show"
	t.Setenv("FLOORLINK_TEST_PASSWORD", secret)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(fmt.Sprintf(`gateway: {id: gw, site: s, area: a, line: l, data_dir: %q}
mqtt:
  brokers: [tcp://127.0.0.1:1]
  username: user
  password: ${FLOORLINK_TEST_PASSWORD}
  reconnect_min: 50ms
  reconnect_max: 100ms
devices:
  - name: press-1
    protocol: modbus-tcp
    address: 127.0.0.1:1
    poll_interval: 100ms
    tags: [{name: state, address: "40001", type: uint16}]
`, filepath.Join(dir, "data"))), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`gateway: {id: gw, site: s, area: a, line: l}
mqtt:
  brokers: [tcp://127.0.0.1:1]
  password: ${FLOORLINK_TEST_PASSWORD}
  keep_alive: ${FLOORLINK_TEST_PASSWORD}
  max_inflight: ${FLOORLINK_TEST_PASSWORD}
`), 0o644)

	var seen []string
	for _, args := range [][]string{{"validate", good}, {"validate", "--print", good}, {"validate", bad}} {
		_, out, errOut := runCLI(args...)
		seen = append(seen, out, errOut)
	}
	if !strings.Contains(seen[2], `"password": "[redacted]"`) {
		t.Errorf("validate --print does not show the password redacted:\n%s", seen[2])
	}

	logPath := filepath.Join(dir, "agent.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(binary, "run", "-c", good, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(readLog(), "mqtt session ended") < 2 && time.Now().Before(deadline) {
		<-time.After(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	log := readLog()
	seen = append(seen, log)
	code, dump, dumpErr := runCLI("buffer", "dump", "-c", good, "--limit", "1000")
	if code != 0 || !strings.Contains(dump, `"event":"disconnected"`) {
		t.Errorf("buffer dump: exit %d, want the device's events:\n%s%s", code, dump, dumpErr)
	}
	seen = append(seen, dump, dumpErr)
	if !strings.Contains(log, "mqtt session ended") {
		t.Errorf("the agent never tried the broker; log:\n%s", log)
	}
	for i, s := range seen {
		if strings.Contains(s, secret) {
			t.Errorf("output %d shows the secret:\n%s", i, s)
		}
	}
}
