package main

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/floorlink/floorlink/simulators/line"
)

// demoBin is floorlink-demo, built once for the package without -race: the subprocess is what
// `make demo` runs, the race detector runs on the tests' own code.
var demoBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "floorlink-demo-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	demoBin = filepath.Join(dir, "floorlink-demo")
	build := exec.Command("go", "build", "-o", demoBin, "github.com/floorlink/floorlink/cmd/floorlink-demo")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build floorlink-demo: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// demoConfig is the shipped demo config, which the test runs as `make demo` does.
const demoConfig = "../../configs/demo.yaml"

// TestDemo_Headless runs the demo with stdout on a pipe for eight refreshes, checks that the
// plain lines show a live line whose every printed value equals plcsim's model at the printed
// tick, then stops it with SIGINT.
func TestDemo_Headless(t *testing.T) {
	const seed = 7
	p := startDemo(t, "-c", demoConfig, "--modbus", "127.0.0.1:0", "--broker", "127.0.0.1:0",
		"--seed", strconv.Itoa(seed))

	// The summary line closes a refresh: once t=8s has one, eight refreshes are complete.
	waitFor(t, 20*time.Second, func() error {
		if r := parseRefreshes(p.stdout.String()); len(r) == 0 || r[len(r)-1].t < 8 {
			return fmt.Errorf("no complete refresh at t=8s yet; output so far:\n%s", p.stdout.String())
		}
		return nil
	})
	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		t.Fatalf("still running 2s after SIGINT")
	}
	t.Logf("exited %v after SIGINT", time.Since(sent).Round(time.Millisecond))
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit status %d after SIGINT, want 0", code)
	}

	refreshes := parseRefreshes(p.stdout.String())
	if len(refreshes) < 8 {
		t.Fatalf("got %d refreshes, want at least 8:\n%s", len(refreshes), p.stdout.String())
	}
	machines := []string{"m1", "m2", "m3"} // unit ids 1..3 in the demo config
	var seen []observation
	for _, r := range refreshes {
		if r.gateway == nil || r.gateway["gateway"] != "gw-demo" || r.gateway["site"] != "demo" {
			t.Errorf("t=%ds: gateway line %v, want one for gw-demo of site demo", r.t, r.gateway)
		}
		for k, name := range machines {
			m := r.machines[name]
			switch {
			case m == nil:
				t.Errorf("t=%ds: no line for machine %s", r.t, name)
				continue
			case m["area"] != "assembly" || m["line"] != "line-1" || m["gateway"] != "gw-demo":
				t.Errorf("t=%ds: machine %s placed at %s/%s of %s, want assembly/line-1 of gw-demo", r.t, name, m["area"], m["line"], m["gateway"])
			case m["tick"] == "" || m["tick"] == "-":
				// The first polls take a moment; after three seconds every machine must show.
				if r.t >= 4 {
					t.Errorf("t=%ds: machine %s has no telemetry: %v", r.t, name, m)
				}
				continue
			}
			seen = append(seen, observation{t: r.t, unit: k + 1, fields: m})
		}
	}
	// configs/demo.yaml asks for a stats message every second (mqtt.stats_interval).
	last := refreshes[len(refreshes)-1].gateway
	if last["status"] != "online" || last["session"] != "1" {
		t.Errorf("last gateway line %v, want status=online session=1", last)
	}
	if n, err := strconv.Atoi(last["published"]); err != nil || n == 0 || last["depth"] == "-" || last["rate"] == "-" {
		t.Errorf("last gateway line %v, want the figures of a stats message", last)
	}
	for _, name := range machines {
		if !changes(refreshes, name) {
			t.Errorf("machine %s: tick and temperature never changed between two refreshes", name)
		}
	}
	checkAgainstModel(t, seed, seen)

	if _, err := os.Stat(filepath.Join(p.dataDir, LogFile)); err != nil {
		t.Errorf("demo log: %v", err)
	}
	if !strings.Contains(p.stderr.String(), "stopped in") {
		t.Errorf("stderr does not report the stop:\n%s", p.stderr.String())
	}
}

// TestDemo_BadUsage checks that what an integrator can get wrong exits 2 with a message, before
// anything listens.
func TestDemo_BadUsage(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"missing config", []string{"-c", "testdata/no-such.yaml"}, "no-such.yaml"},
		{"modbus off loopback", []string{"-c", demoConfig, "--modbus", "0.0.0.0:0"}, "loopback"},
		{"broker off loopback", []string{"-c", demoConfig, "--broker", "192.0.2.1:1883"}, "loopback"},
		{"zero speed", []string{"--speed", "0"}, "--speed"},
		{"unknown flag", []string{"--sped", "2"}, "sped"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append(c.args, "--data-dir", t.TempDir())
			out, err := exec.Command(demoBin, args...).CombinedOutput()
			if code := exitCode(err); code != 2 {
				t.Fatalf("exit status %d (%v), want 2; output:\n%s", code, err, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Errorf("output does not mention %q:\n%s", c.want, out)
			}
		})
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// observation is one machine line with telemetry, from the refresh at t seconds.
type observation struct {
	t      int
	unit   int
	fields map[string]string
}

// checkAgainstModel rebuilds plcsim's line from the seed, steps it to each printed tick and
// requires the printed state, counters and process values to be the model's, exactly: the floats
// are printed in float32's shortest form, which reads back as the same float32.
func checkAgainstModel(t *testing.T, seed int64, obs []observation) {
	t.Helper()
	if len(obs) == 0 {
		t.Fatal("no machine line with telemetry")
	}
	for _, o := range obs {
		if _, err := strconv.ParseUint(o.fields["tick"], 10, 32); err != nil {
			t.Fatalf("t=%ds unit %d: tick %q: %v", o.t, o.unit, o.fields["tick"], err)
		}
	}
	slices.SortStableFunc(obs, func(a, b observation) int {
		return cmp.Compare(tickOf(a), tickOf(b))
	})
	l, err := line.New(line.Config{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range obs {
		for l.Tick() < tickOf(o) {
			l.Step()
		}
		m := l.Snapshot(o.unit)
		// The view prints every tag under its name, as published: the state as its number.
		want := map[string]string{
			"tick":          strconv.FormatUint(uint64(m.Tick), 10),
			"state":         strconv.FormatUint(uint64(m.State), 10),
			"parts_total":   strconv.FormatUint(uint64(m.PartsTotal), 10),
			"good_total":    strconv.FormatUint(uint64(m.GoodTotal), 10),
			"reject_total":  strconv.FormatUint(uint64(m.RejectTotal), 10),
			"temperature":   strconv.FormatFloat(float64(m.Temperature), 'g', -1, 32),
			"pressure":      strconv.FormatFloat(float64(m.Pressure), 'g', -1, 32),
			"spindle_speed": strconv.FormatInt(int64(m.SpindleSpeed), 10),
		}
		for k, w := range want {
			got := o.fields[k]
			if k == "temperature" || k == "pressure" {
				got = canonicalFloat32(got)
			}
			if got != w {
				t.Errorf("t=%ds machine %d at tick %d: %s=%s, plcsim has %s", o.t, o.unit, tickOf(o), k, o.fields[k], w)
			}
		}
	}
	t.Logf("%d machine lines equal plcsim's model (ticks %d..%d)", len(obs), tickOf(obs[0]), tickOf(obs[len(obs)-1]))
}

func tickOf(o observation) uint64 {
	n, _ := strconv.ParseUint(o.fields["tick"], 10, 32)
	return n
}

// canonicalFloat32 reads s as a float32 and writes it back in the shortest form, so that a
// printed value compares equal to the model's exactly when it is the same float32.
func canonicalFloat32(s string) string {
	f, err := strconv.ParseFloat(s, 32)
	if err != nil {
		return s
	}
	return strconv.FormatFloat(f, 'g', -1, 32)
}

// changes reports whether name's tick and temperature both changed between two consecutive
// refreshes that show them.
func changes(refreshes []refresh, name string) bool {
	for i := 1; i < len(refreshes); i++ {
		a, b := refreshes[i-1].machines[name], refreshes[i].machines[name]
		if a == nil || b == nil || a["tick"] == "" || b["tick"] == "" {
			continue
		}
		if a["tick"] != b["tick"] && a["temperature"] != b["temperature"] {
			return true
		}
	}
	return false
}

// refresh is one complete refresh of the plain view (package watch): the gateway line, the
// device lines, then the summary line.
type refresh struct {
	t        int
	machines map[string]map[string]string
	gateway  map[string]string
}

// parseRefreshes returns the complete refreshes in out: those whose summary line was printed.
func parseRefreshes(out string) []refresh {
	var rs []refresh
	cur := refresh{t: -1}
	for _, ln := range strings.Split(out, "\n") {
		if !strings.HasPrefix(ln, "t=") {
			continue
		}
		kv := map[string]string{}
		for _, f := range strings.Fields(ln) {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		t, err := strconv.Atoi(strings.TrimSuffix(kv["t"], "s"))
		if err != nil {
			continue
		}
		if t != cur.t {
			cur = refresh{t: t, machines: map[string]map[string]string{}}
		}
		switch {
		case kv["device"] != "":
			cur.machines[kv["device"]] = kv
		case kv["asset"] != "": // the demo's config has no asset
		case kv["gateway"] != "":
			cur.gateway = kv
		case kv["messages"] != "":
			rs = append(rs, cur)
		}
	}
	return rs
}

// demoProc is a running floorlink-demo.
type demoProc struct {
	cmd            *exec.Cmd
	dataDir        string
	stdout, stderr *lockedBuffer
	done           chan struct{} // closed once the process is reaped
}

// startDemo starts floorlink-demo with args on a data dir of the test's, its output on pipes.
func startDemo(t *testing.T, args ...string) *demoProc {
	t.Helper()
	p := &demoProc{dataDir: t.TempDir(), stdout: new(lockedBuffer), stderr: new(lockedBuffer),
		done: make(chan struct{})}
	p.cmd = exec.Command(demoBin, append(args, "--data-dir", p.dataDir)...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(p.dataDir, LogFile))
			t.Logf("stdout:\n%s\nstderr:\n%s\n%s:\n%s", p.stdout.String(), p.stderr.String(), LogFile, log)
		}
	})
	return p
}

// waitFor polls fn until it returns nil, failing the test with fn's last error after timeout.
func waitFor(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// lockedBuffer is an io.Writer the test reads while the process writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
