package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/creack/pty"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorlink/floorlink/agent/publish/mqtttest"
)

// watchProc is a `floorlink watch` running in the test, its stdout on a buffer.
type watchProc struct {
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan error
}

// startWatch runs the watch command with args until stop or the end of the test.
func startWatch(t *testing.T, args ...string) *watchProc {
	t.Helper()
	p := &watchProc{stdout: new(syncBuffer), stderr: new(syncBuffer), done: make(chan error, 1)}
	cmd := newWatchCommand(p.stdout, p.stderr)
	cmd.SetArgs(args)
	cmd.SetOut(p.stderr)
	cmd.SetErr(p.stderr)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("watch stdout:\n%s\nstderr:\n%s", p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

// stop ends the command and returns its error.
func (p *watchProc) stop(t *testing.T) error {
	t.Helper()
	p.cancel()
	select {
	case err := <-p.done:
		p.done <- err // for a second stop
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("watch did not stop within 15s of its context")
		return nil
	}
}

// lastRefresh returns the lines of the last complete refresh: from after the previous summary
// line through the last one, parsed into key=value maps.
func (p *watchProc) lastRefresh() []map[string]string {
	lines := strings.Split(p.stdout.String(), "\n")
	end := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], " messages=") {
			end = i
			break
		}
	}
	if end < 0 {
		return nil
	}
	start := end
	for start > 0 && !strings.Contains(lines[start-1], " messages=") {
		start--
	}
	var out []map[string]string
	for _, ln := range lines[start : end+1] {
		kv := map[string]string{}
		for _, f := range strings.Fields(ln) {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		out = append(out, kv)
	}
	return out
}

// find returns the refresh's line whose key kind is name.
func find(lines []map[string]string, kind, name string) map[string]string {
	for _, l := range lines {
		if l[kind] == name {
			return l
		}
	}
	return nil
}

// waitView polls the last refresh until check passes.
func waitView(t *testing.T, p *watchProc, within time.Duration, check func([]map[string]string) error) []map[string]string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := p.lastRefresh()
		err := fmt.Errorf("no complete refresh yet")
		if r != nil {
			err = check(r)
		}
		if err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", within, err)
		}
		<-time.After(50 * time.Millisecond)
	}
}

func publishTo(t *testing.T, url string, tlsConfig *tls.Config, retained bool, msgs ...[2]string) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("watch-test-pub-%d", time.Now().UnixNano())).
		SetAutoReconnect(false).SetProtocolVersion(4)
	if tlsConfig != nil {
		o.SetTLSConfig(tlsConfig)
	}
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect the test's publisher: %v", tok.Error())
	}
	defer c.Disconnect(100)
	for _, m := range msgs {
		if tok := c.Publish(m[0], 1, retained, m[1]); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", m[0], tok.Error())
		}
	}
}

// TestWatch_Broker runs `floorlink watch --broker URL` with stdout not a terminal against
// Mosquitto, publishes a gateway's retained status, its stats, telemetry with a bad tag, a KPI
// record and a device event, and reads them back from the plain lines.
func TestWatch_Broker(t *testing.T) {
	b := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	publishTo(t, b.URL(), nil, true, [2]string{"floorlink/v1/plant/gateway/gw-1/status", `{"state":"online","ts":"2026-11-25T08:00:00.000Z","session":3}`})

	p := startWatch(t, "--broker", b.URL(), "--interval", "200ms")
	waitView(t, p, 10*time.Second, func(r []map[string]string) error {
		if g := find(r, "gateway", "gw-1"); g == nil || g["status"] != "online" || r[len(r)-1]["broker"] != "connected" {
			return fmt.Errorf("no retained status of gw-1 shown yet, or not connected: %v", r)
		}
		return nil
	})
	publishTo(t, b.URL(), nil, false,
		[2]string{"floorlink/v1/plant/body/line-1/m1/telemetry", `{"gateway":"gw-1","epoch":"e","seq":5,"ts":"2026-11-25T08:00:01.000Z","historical":false,"values":{"tick":41,"temperature":null},"quality":{"temperature":"bad:timeout"}}`},
		[2]string{"floorlink/v1/plant/body/line-1/m1/telemetry", `{"gateway":"gw-1","epoch":"e","seq":6,"ts":"2026-11-25T08:00:02.000Z","historical":false,"values":{"tick":42}}`},
		[2]string{"floorlink/v1/plant/body/line-1/press-1/kpi", `{"gateway":"gw-1","epoch":"e","seq":7,"ts":"2026-11-25T08:00:02.000Z","historical":false,"values":{"oee":0.81,"shift":"A"}}`},
		[2]string{"floorlink/v1/plant/body/line-1/m2/event", `{"gateway":"gw-1","epoch":"e","seq":8,"ts":"2026-11-25T08:00:02.000Z","historical":false,"values":{"event":"disconnected","error":"connection refused"}}`},
		[2]string{"floorlink/v1/plant/gateway/gw-1/stats", `{"ts":"2026-11-25T08:00:02.000Z","gateway":"gw-1","session":3,"buffer":{"depth":2,"file_bytes":65536},"publish":{"published":8,"acked":6,"rate":1.5}}`},
		[2]string{"floorlink/v1/plant/body/line-1/m3/telemetry", `garbage`},
	)
	r := waitView(t, p, 10*time.Second, func(r []map[string]string) error {
		m1 := find(r, "device", "m1")
		if m1 == nil || m1["seq"] != "6" || find(r, "asset", "press-1") == nil || find(r, "device", "m2") == nil ||
			find(r, "gateway", "gw-1")["depth"] != "2" {
			return fmt.Errorf("not everything shown yet: %v", r)
		}
		return nil
	})
	for _, c := range []struct {
		kind, name string
		want       map[string]string
	}{
		{"gateway", "gw-1", map[string]string{"site": "plant", "status": "online", "session": "3", "depth": "2",
			"file_bytes": "65536", "published": "8", "acked": "6", "rate": "1.5"}},
		{"device", "m1", map[string]string{"site": "plant", "area": "body", "line": "line-1", "gateway": "gw-1",
			"seq": "6", "tick": "42", "temperature": "-", "quality.temperature": "bad:timeout", "event": "-"}},
		{"asset", "press-1", map[string]string{"oee": "0.81", "shift": "A", "seq": "7"}},
		{"device", "m2", map[string]string{"event": "disconnected", "seq": "-"}},
	} {
		l := find(r, c.kind, c.name)
		for k, v := range c.want {
			if l[k] != v {
				t.Errorf("%s %s: %s=%q, want %q (line %v)", c.kind, c.name, k, l[k], v, l)
			}
		}
	}
	if sum := r[len(r)-1]; sum["undecodable"] != "1" {
		t.Errorf("summary %v, want undecodable=1 for the garbage", sum)
	}
	if err := p.stop(t); err != nil {
		t.Errorf("watch: %v", err)
	}
}

// TestWatch_Config_TLS takes the broker, its TLS and a client certificate from an agent's
// config, lists the config's devices before they publish, and shows the first one's values.
func TestWatch_Config_TLS(t *testing.T) {
	dir := t.TempDir()
	pki := mqtttest.NewTLSFiles(t, dir)
	b := mqtttest.StartBroker(t, mqtttest.BrokerOptions{TLS: &pki})
	cfgPath := filepath.Join(dir, "gw.yaml")
	cfg := fmt.Sprintf(`gateway: {id: gw-tls, site: plant, area: body, line: line-1, data_dir: %q}
mqtt:
  brokers: [%q]
  tls: {ca_file: %q, cert_file: %q, key_file: %q}
devices:
  - {name: m1, protocol: modbus-tcp, address: "127.0.0.1:1502", unit_id: 1, tags: [{name: tick, address: "40002", type: uint32}]}
  - {name: m2, protocol: modbus-tcp, address: "127.0.0.1:1502", unit_id: 2, line: line-2, tags: [{name: tick, address: "40002", type: uint32}]}
`, filepath.Join(dir, "data"), b.URL(), pki.CA, pki.ClientCert, pki.ClientKey)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startWatch(t, "-c", cfgPath, "--interval", "200ms")
	waitView(t, p, 10*time.Second, func(r []map[string]string) error {
		m1, m2 := find(r, "device", "m1"), find(r, "device", "m2")
		if m1 == nil || m2 == nil || m1["seq"] != "-" || m2["line"] != "line-2" || m1["gateway"] != "gw-tls" ||
			r[len(r)-1]["broker"] != "connected" {
			return fmt.Errorf("want m1 and m2 (line-2) waiting, connected: %v", r)
		}
		return nil
	})
	publishTo(t, b.URL(), pki.ClientConfig(t), false,
		[2]string{"floorlink/v1/plant/body/line-1/m1/telemetry", `{"gateway":"gw-tls","seq":1,"ts":"2026-11-25T08:00:01.000Z","values":{"tick":7}}`})
	waitView(t, p, 10*time.Second, func(r []map[string]string) error {
		if m1 := find(r, "device", "m1"); m1 == nil || m1["tick"] != "7" || m1["seq"] != "1" {
			return fmt.Errorf("m1's telemetry not shown: %v", r)
		}
		return nil
	})
	if err := p.stop(t); err != nil {
		t.Errorf("watch: %v", err)
	}
}

func TestWatch_Usage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"watch"}, "give -c FILE or --broker URL"},
		{[]string{"watch", "--broker", "http://127.0.0.1:1"}, "not a broker address"},
		{[]string{"watch", "--broker", "tcp://127.0.0.1:1", "--format", "xml"}, "want json or sparkplug"},
		{[]string{"watch", "--broker", "tcp://127.0.0.1:1", "--topic-template", "x/{source}"}, "{kind}"},
		{[]string{"watch", "-c", "/nonexistent.yaml"}, "nonexistent.yaml"},
	} {
		var out, errOut bytes.Buffer
		root := newRootCommand(&out, &errOut)
		if c, _, err := root.Find([]string{"watch"}); err != nil || c == root {
			root.AddCommand(newWatchCommand(&out, &errOut)) // until main.go registers it
		}
		root.SetArgs(c.args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("floorlink %v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
}

// TestWatch_Terminal runs the command with stdout on a pseudo-terminal of 72x12: it draws
// frames that clear the screen, fit the terminal's size, show the broker connected and a
// gateway's status, and leaves the prompt below the last frame.
func TestWatch_Terminal(t *testing.T) {
	b := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	publishTo(t, b.URL(), nil, true, [2]string{"floorlink/v1/plant/gateway/gw-1/status", `{"state":"online","session":3}`})
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: 72, Rows: 12}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TERM", "xterm")
	t.Setenv("NO_COLOR", "")
	var screen syncBuffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			screen.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()

	cmd := newWatchCommand(tty, io.Discard)
	cmd.SetArgs([]string{"--broker", b.URL(), "--interval", "200ms"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	var frame string
	deadline := time.Now().Add(10 * time.Second)
	for {
		frames := strings.Split(screen.String(), "\x1b[H\x1b[2J")
		if len(frames) > 2 { // the last one may be half read
			frame = frames[len(frames)-2]
			if strings.Contains(frame, "connected") && strings.Contains(frame, "online") {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("no frame with the broker connected and gw-1 online:\n%q", screen.String())
		}
		<-time.After(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("watch: %v", err)
	}
	plain := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(frame, "")
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(plain, "\r\n", "\n"), "\n"), "\n")
	if len(lines) > 12 {
		t.Errorf("frame of %d lines on a 12-line terminal:\n%s", len(lines), plain)
	}
	for _, ln := range lines {
		if n := utf8.RuneCountInString(ln); n > 72 {
			t.Errorf("line of %d columns on a 72-column terminal: %q", n, ln)
		}
	}
	if !strings.Contains(frame, "\x1b[32monline") {
		t.Errorf("online is not green in the frame:\n%q", frame)
	}
	if !strings.Contains(plain, "gateway gw-1") {
		t.Errorf("frame lacks the gateway:\n%s", plain)
	}
}

// TestRun_LogFormat is the run command's --log-format (it sits here beside watch's tests
// until main_test.go takes it): json writes one JSON object a line with time, level and msg
// and the agent's keys, text writes key=value lines, anything else exits 2.
func TestRun_LogFormat(t *testing.T) {
	if code, _, errOut := runCLI("run", "-c", "x.yaml", "--log-format", "xml"); code != 2 || !strings.Contains(errOut, "want text or json") {
		t.Errorf("--log-format xml: exit %d, %q; want 2 naming text and json", code, errOut)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gw.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`gateway: {id: gw-log, site: s, area: a, line: l, data_dir: %q}
mqtt: {brokers: [tcp://127.0.0.1:1], reconnect_min: 50ms, reconnect_max: 100ms}
http: {listen: ""}
devices:
  - {name: press-1, protocol: modbus-tcp, address: "127.0.0.1:1", poll_interval: 100ms, tags: [{name: state, address: "40001", type: uint16}]}
`, filepath.Join(dir, "data"))), 0o644)
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var stderr syncBuffer
			cmd := exec.Command(binary, "run", "-c", cfg, "--log-format", format, "--log-level", "debug")
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(stderr.String(), "mqtt session ended") && time.Now().Before(deadline) {
				<-time.After(50 * time.Millisecond)
			}
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) < 3 {
				t.Fatalf("%d log lines:\n%s", len(lines), stderr.String())
			}
			for _, ln := range lines {
				if format == "text" {
					if !strings.HasPrefix(ln, "time=") || !strings.Contains(ln, " level=") {
						t.Errorf("not a text record: %s", ln)
					}
					continue
				}
				var rec map[string]any
				if err := json.Unmarshal([]byte(ln), &rec); err != nil {
					t.Errorf("not a JSON record (%v): %s", err, ln)
					continue
				}
				if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
					t.Errorf("record lacks time, level or msg: %s", ln)
				}
			}
			if format == "json" && !strings.Contains(stderr.String(), `"gateway":"gw-log"`) {
				t.Errorf("no record carries the agent's gateway key:\n%s", stderr.String())
			}
		})
	}
}

// syncBuffer is an io.Writer the test reads while the command writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
