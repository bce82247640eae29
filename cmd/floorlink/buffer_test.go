package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
