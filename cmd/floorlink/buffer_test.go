package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent"
	"github.com/floorlink/floorlink/agent/publish"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/buffer"
)

// fillBuffer writes n telemetry records into the buffer of the gateway configured in a new
// config file, acknowledges the first acked of them, and returns the config's path.
func fillBuffer(t *testing.T, n int, acked uint64) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gw.yaml")
	os.WriteFile(cfg, []byte(`gateway: {id: gw-dump, site: s, area: a, line: l}
mqtt:
  brokers: [tcp://127.0.0.1:1883]
`), 0o644)
	os.MkdirAll(filepath.Join(dir, "data"), 0o750)
	b, err := buffer.Open(filepath.Join(dir, "data", agent.BufferFile), buffer.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	for i := 1; i <= n; i++ {
		r := record.Record{Kind: record.KindTelemetry, Source: "press-1", Time: time.Unix(1764000000, 0).Add(time.Duration(i) * time.Second),
			Fields: []record.Field{record.UintField("n", uint64(i)), record.FloatField("temp", 20.5)}}
		p, _ := r.AppendBinary(nil)
		if err := b.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if acked > 0 {
		if err := b.Ack(acked); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	<-done
	b.Close()
	return cfg
}

func TestBuffer_StatsDumpCompact(t *testing.T) {
	cfg := fillBuffer(t, 5000, 4990)

	code, out, errOut := runCLI("buffer", "stats", "-c", cfg, "--json")
	if code != 0 {
		t.Fatalf("stats: exit %d: %s", code, errOut)
	}
	var st struct{ Head, Cursor, Depth uint64 }
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Head != 5000 || st.Cursor != 4990 || st.Depth != 10 {
		t.Fatalf("stats %+v (%v): want head 5000, cursor 4990, depth 10\n%s", st, err, out)
	}

	code, out, errOut = runCLI("buffer", "dump", "-c", cfg, "--limit", "4")
	if code != 0 {
		t.Fatalf("dump: exit %d: %s", code, errOut)
	}
	src, _ := publish.Schemas.ReadFile("schema/record.schema.json")
	schema := mqtttest.CompileSchema(t, "record.schema.json", src)
	sc := bufio.NewScanner(strings.NewReader(out))
	seq := uint64(4991)
	for sc.Scan() {
		if err := schema.Validate(sc.Bytes()); err != nil {
			t.Fatalf("dump line %q: %v", sc.Text(), err)
		}
		var m struct {
			Seq        uint64
			Historical bool
			Values     map[string]float64
		}
		json.Unmarshal(sc.Bytes(), &m)
		if m.Seq != seq || uint64(m.Values["n"]) != seq || !m.Historical {
			t.Fatalf("dump line %q: want seq %d, historical", sc.Text(), seq)
		}
		seq++
	}
	if seq != 4995 {
		t.Fatalf("dump printed through seq %d, want 4 lines from 4991", seq-1)
	}

	code, out, errOut = runCLI("buffer", "compact", "-c", cfg)
	if code != 0 || !strings.Contains(out, "->") {
		t.Fatalf("compact: exit %d: %s%s", code, out, errOut)
	}
	var before, after int64
	fmt.Sscanf(out[strings.Index(out, ": ")+2:], "%d bytes -> %d bytes", &before, &after)
	if after >= before {
		t.Errorf("compact: %d bytes -> %d bytes, want smaller", before, after)
	}
	if code, out, _ := runCLI("buffer", "stats", "-c", cfg, "--json"); code != 0 || !strings.Contains(out, `"head": 5000`) {
		t.Fatalf("stats after compact: %s", out)
	}
}

// TestBuffer_Stats_AgentRunning: on a buffer an agent holds, the commands say so and exit 1
// within a few seconds instead of waiting.
func TestBuffer_Stats_AgentRunning(t *testing.T) {
	cfg := fillBuffer(t, 10, 0)
	b, err := buffer.Open(filepath.Join(filepath.Dir(cfg), "data", agent.BufferFile), buffer.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start := time.Now()
	code, _, errOut := runCLI("buffer", "stats", "-c", cfg)
	if code != 1 || !strings.Contains(errOut, "the agent is running") || !strings.Contains(errOut, "floorlink/v1/s/gateway/gw-dump/stats") {
		t.Fatalf("exit %d, %q: want 1 and a message naming the stats topic", code, errOut)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestBuffer_Backup_Stopped(t *testing.T) {
	cfg := fillBuffer(t, 100, 40)
	out := filepath.Join(t.TempDir(), "backup.db")
	code, stdout, errOut := runCLI("buffer", "backup", "-c", cfg, "-o", out)
	if code != 0 || !strings.Contains(stdout, "head 100, cursor 40") {
		t.Fatalf("backup: exit %d: %s%s", code, stdout, errOut)
	}
}

// TestBuffer_Backup_RunningAgent takes a consistent copy through a running agent's HTTP
// listener while it keeps appending, and checks the listener's health endpoints on the way.
func TestBuffer_Backup_RunningAgent(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "gw.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`gateway: {id: gw-backup, site: s, area: a, line: l}
mqtt:
  brokers: [tcp://127.0.0.1:1]
http: {listen: %q}
devices:
  - name: press-1
    protocol: modbus-tcp
    address: 127.0.0.1:1
    poll_interval: 50ms
    tags: [{name: state, address: "40001", type: uint16}]
`, httpAddr)), 0o644)
	cmd := exec.Command(binary, "run", "-c", cfg)
	logPath := filepath.Join(dir, "agent.log")
	logFile, _ := os.Create(logPath)
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("agent log:\n%s", b)
		}
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := get("/healthz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent's /healthz never answered")
		}
		<-time.After(50 * time.Millisecond)
	}
	// No broker, buffer far from its limits: buffering an outage is the agent's job.
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz: %d %s, want 200 while buffering within limits", code, body)
	}
	if code, body := get("/api/v1/status"); code != 200 || !strings.Contains(body, `"gateway":"gw-backup"`) {
		t.Errorf("/api/v1/status: %d %s", code, body)
	}
	out := filepath.Join(dir, "backup.db")
	code, stdout, errOut := runCLI("buffer", "backup", "-c", cfg, "-o", out)
	if code != 0 || !strings.Contains(stdout, out+": ") {
		t.Fatalf("backup: exit %d: %s%s", code, stdout, errOut)
	}
	b, err := buffer.OpenReadOnly(out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Head() == 0 {
		t.Fatal("the backup holds no record")
	}
}
