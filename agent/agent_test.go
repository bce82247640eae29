package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/floorlink/floorlink/agent/config"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/simulators/simtest"
)

// startAgent runs an agent in process on a config for one simulated machine and a real broker,
// until the test ends.
func startAgent(t *testing.T, extra string) (*Agent, *simtest.Sim, *mqtttest.Broker) {
	t.Helper()
	return startAgentWith(t, simtest.LineConfig{Seed: 5}, "", extra)
}

// startAgentWith takes the line, top-level YAML for the file (e.g. a buffer section) and more
// tags for the device.
func startAgentWith(t *testing.T, line simtest.LineConfig, top, extraTags string) (*Agent, *simtest.Sim, *mqtttest.Broker) {
	t.Helper()
	sim := simtest.Start(t, simtest.Options{Line: line})
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	dir := t.TempDir()
	path := filepath.Join(dir, "gw.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`%sgateway: {id: gw-t, site: s, area: a, line: l, data_dir: data}
mqtt:
  brokers: [%q]
  reconnect_min: 50ms
  reconnect_max: 200ms
http: {listen: "127.0.0.1:0"}
devices:
  - name: m1
    protocol: modbus-tcp
    address: %q
    unit_id: 1
    poll_interval: 50ms
    tags:
      - {name: state, address: "40001", type: uint16, enum: {1: running, 2: idle, 3: blocked, 4: down, 5: setup, 6: maintenance}}
      - {name: tick, address: "40002", type: uint32}
%s`, top, broker.URL(), sim.ModbusAddr(), extraTags)), 0o644)
	cfg, err := LoadConfig(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, 10*time.Second, func() error {
		if a.HTTPAddr() == "" {
			return fmt.Errorf("no HTTP listener yet")
		}
		return nil
	})
	return a, sim, broker
}

func waitFor(t testing.TB, timeout time.Duration, fn func() error) {
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
		<-time.After(20 * time.Millisecond)
	}
}

// TestAgent_Metrics: /metrics passes the client library's linter and its counters move as the
// simulator runs.
func TestAgent_Metrics(t *testing.T) {
	a, _, _ := startAgent(t, "")
	problems, err := testutil.GatherAndLint(a.metrics.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	value := func(name string) float64 {
		resp, err := http.Get("http://" + a.HTTPAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(body), "\n") {
			if rest, ok := strings.CutPrefix(line, name+" "); ok {
				var v float64
				fmt.Sscan(rest, &v)
				return v
			}
		}
		t.Fatalf("no %s in /metrics", name)
		return 0
	}
	waitFor(t, 10*time.Second, func() error {
		if v := value(`floorlink_mqtt_connected`); v != 1 {
			return fmt.Errorf("mqtt_connected %v", v)
		}
		return nil
	})
	first := value(`floorlink_device_polls_total{device="m1"}`)
	waitFor(t, 10*time.Second, func() error {
		if v := value(`floorlink_device_polls_total{device="m1"}`); v < first+5 {
			return fmt.Errorf("polls %v, was %v", v, first)
		}
		if v := value(`floorlink_buffer_cursor_seq`); v < 5 {
			return fmt.Errorf("cursor %v", v)
		}
		return nil
	})
}

// TestAgent_Readyz: ready while delivering; not ready, with the reason, once the broker is gone
// and the buffer passes half its limit; ready again when the backlog has drained.
func TestAgent_Readyz(t *testing.T) {
	var tags strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&tags, "      - {name: r%03d, address: \"hr:%d\", type: uint16}\n", i, 100+i)
	}
	a, _, broker := startAgentWith(t, simtest.LineConfig{Seed: 5, ExtraValues: 300}, "buffer: {max_bytes: 1MiB}\n", tags.String())
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + a.HTTPAddr() + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, 10*time.Second, func() error {
		if code, body := readyz(); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	broker.Stop()
	waitFor(t, 60*time.Second, func() error {
		if code, body := readyz(); code != 503 || !strings.Contains(body, "max_bytes") {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	broker.Restart()
	waitFor(t, 60*time.Second, func() error {
		if code, body := readyz(); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
}

// TestAgent_Alive_Running: a running agent is alive while it polls, and /healthz says ok.
func TestAgent_Alive_Running(t *testing.T) {
	a, _, _ := startAgent(t, "")
	for i := range 20 {
		if err := a.Alive(); err != nil {
			t.Fatalf("question %d: %v", i, err)
		}
		<-time.After(50 * time.Millisecond) // one poll interval between questions
	}
	if code, body := get(t, "http://"+a.HTTPAddr()+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q, want 200 ok", code, body)
	}
}

// TestAgent_Alive_NotRunning: an agent whose Run has not started is not alive.
func TestAgent_Alive_NotRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(path, []byte(`gateway: {id: gw-t, site: s, area: a, line: l, data_dir: data}
mqtt: {brokers: ["tcp://127.0.0.1:1"]}
http: {listen: ""}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.buf.Close()
	if err := idle.Alive(); err == nil || err.Error() != "the agent is not running" {
		t.Fatalf("Alive: %v, want the agent is not running", err)
	}
}

// TestAgent_Alive_StuckCommit: a commit of the buffer's writer that waits on a read which does
// not end (the file must grow, and a read transaction holds the map) makes the agent not alive,
// naming the writer, and /healthz 503; the same wait behind a backup (WriteTo into a reader that
// does not read) is the backup's doing, and the agent stays alive. Both recover once the read
// ends.
func TestAgent_Alive_StuckCommit(t *testing.T) {
	for _, backup := range []bool{false, true} {
		t.Run(fmt.Sprintf("backup=%v", backup), func(t *testing.T) {
			a, _, _ := startAgent(t, "")
			a.commitStall = 300 * time.Millisecond
			release := make(chan struct{})
			readDone := make(chan struct{})
			if backup {
				r, w := io.Pipe()
				go func() { defer close(readDone); a.buf.WriteTo(w) }()
				go func() { <-release; r.CloseWithError(io.ErrClosedPipe) }()
			} else {
				// A reader that does not return: ReadAfter calls it only for an entry not yet
				// delivered, so read until one is there.
				go func() {
					defer close(readDone)
					for held := false; !held; {
						a.buf.ReadAfter(a.buf.Cursor(), 1, func(uint64, []byte) error { held = true; <-release; return nil })
						<-time.After(time.Millisecond) // the polling interval of a wait for an entry
					}
				}()
			}
			defer func() { close(release); <-readDone }()
			// Records large enough that a commit soon has to grow the file. The publisher
			// gives them up as dead letters; the test only needs the writer to wait.
			junk := make([]byte, 64<<10)
			deadline := time.Now().Add(30 * time.Second)
			for {
				w := a.buf.Writer()
				if !w.CommitSince.IsZero() && time.Since(w.CommitSince) > 2*a.commitStall {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no commit waited on the open read within 30s: %+v", w)
				}
				if a.buf.Stats().QueueLen < 64 {
					a.buf.AppendDroppable(junk)
				}
				<-time.After(5 * time.Millisecond) // the polling interval of a wait with a deadline
			}
			err := a.Alive()
			code, body := get(t, "http://"+a.HTTPAddr()+"/healthz")
			if backup {
				if err != nil || code != http.StatusOK {
					t.Fatalf("a commit waiting for a backup: Alive %v, /healthz %d %q; want alive", err, code, body)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), "the buffer's writer has been in one commit for") {
					t.Fatalf("a commit stuck on a read: Alive %v, want the writer named", err)
				}
				if code != http.StatusServiceUnavailable || !strings.Contains(body, "the buffer's writer") {
					t.Errorf("/healthz: %d %q, want 503 naming the writer", code, body)
				}
			}
			close(release)
			<-readDone
			release = make(chan struct{}) // for the deferred close
			waitFor(t, 30*time.Second, a.Alive)
		})
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestLoadConfig_SparkplugNeedsTypes: with format: sparkplug, an OPC UA tag without a type (or
// with type auto) is refused at its place in the file; a typed one is not, nor one whose enum
// or scale gives its type, and in JSON mode auto stays allowed.
func TestLoadConfig_SparkplugNeedsTypes(t *testing.T) {
	write := func(format string) string {
		path := filepath.Join(t.TempDir(), "gw.yaml")
		os.WriteFile(path, []byte(`gateway: {id: gw-t, site: s, area: a, line: l, data_dir: data}
mqtt: {brokers: ["tcp://127.0.0.1:1"], format: `+format+`, group_id: plant}
devices:
  - name: m1
    protocol: opcua
    address: opc.tcp://127.0.0.1:4840
    tags:
      - {name: temperature, address: "ns=2;s=Line1.M1.Temperature", type: float32}
      - {name: state, address: "ns=2;s=Line1.M1.State"}
      - {name: recipe, address: "ns=2;s=Line1.M1.Recipe", type: auto}
      - {name: mode, address: "ns=2;s=Line1.M1.Mode", enum: {1: auto, 2: manual}}
      - {name: pressure, address: "ns=2;s=Line1.M1.Pressure", scale: 0.1}
`), 0o644)
		return path
	}
	path := write("sparkplug")
	_, err := LoadConfig(path, config.Options{})
	if err == nil {
		t.Fatal("sparkplug with untyped OPC UA tags accepted")
	}
	got := err.Error()
	for _, want := range []string{
		path + `:9:9: devices[0].tags[1].type: tag "state" of device "m1" needs a type with format: sparkplug`,
		path + `:10:65: devices[0].tags[2].type: tag "recipe" of device "m1" needs a type`,
		"floorlink opcua browse --yaml",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("error lacks %q:\n%s", want, got)
		}
	}
	for _, ok := range []string{"temperature", "mode", "pressure"} {
		if strings.Contains(got, `"`+ok+`"`) {
			t.Errorf("tag %s (typed, or typed by its enum or scale) is refused too:\n%s", ok, got)
		}
	}
	if _, err := LoadConfig(write("json"), config.Options{}); err != nil {
		t.Errorf("json with auto tags: %v", err)
	}
}
