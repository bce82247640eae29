package perf_test

// Draining a 1 GiB backlog under GOMEMLIMIT=256MiB (issue 4, acceptance 5):
//
//	go test -run '^$' -bench 'Drain_1GiBBacklog' -benchtime 1x -count 1 -timeout 30m -v ./cmd/floorlink/perf/
//
// The buffer file is built before the agent starts, with the buffer package and real telemetry
// records of 100 fields; the agent then only drains (it has no devices).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/buffer"
)

const (
	backlogFileBytes = 1 << 30
	backlogFields    = 100
	memLimit         = 256 << 20 // GOMEMLIMIT=256MiB
)

// buildBacklog fills a buffer file at path with 100-field telemetry records until the file holds
// fileBytes, and returns the number of records (seq 1..n). Sync is off: the file is the same,
// only faster to write.
func buildBacklog(tb testing.TB, path string, fileBytes int64) (n uint64) {
	tb.Helper()
	buf, err := buffer.Open(path, buffer.Options{NoSync: true}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- buf.Run(ctx) }()

	now := time.Now().Add(-time.Hour)
	var rec record.Record
	var payload []byte
	for i := 0; ; i++ {
		backlogRecord(&rec, now, i)
		if payload, err = rec.AppendBinary(payload[:0]); err != nil {
			tb.Fatal(err)
		}
		for {
			err = buf.Append(payload)
			if !errors.Is(err, buffer.ErrQueueFull) {
				break
			}
			if err := buf.Flush(ctx); err != nil {
				tb.Fatal(err)
			}
		}
		if err != nil {
			tb.Fatal(err)
		}
		if i%10000 == 9999 {
			if err := buf.Flush(ctx); err != nil {
				tb.Fatal(err)
			}
			if buf.Stats().FileBytes >= fileBytes {
				break
			}
		}
	}
	if err := buf.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
	n = buf.Head()
	cancel()
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	if err := buf.Close(); err != nil {
		tb.Fatal(err)
	}
	return n
}

// backlogRecord makes the i-th record of the backlog in rec: 100 fields of a device polled every
// 10 ms from start (an hour of it at 100 Hz), floats, counters, integers and bools that move.
func backlogRecord(rec *record.Record, start time.Time, i int) {
	rec.Reset()
	rec.Kind, rec.Source, rec.Time = record.KindTelemetry, "press-1", start.Add(time.Duration(i)*10*time.Millisecond)
	for f := range backlogFields {
		name := backlogTagNames[f]
		switch f % 4 {
		case 0:
			rec.Fields = append(rec.Fields, record.FloatField(name, 20+math.Sin(float64(i+f)/100)*5))
		case 1:
			rec.Fields = append(rec.Fields, record.UintField(name, uint64(i*f)))
		case 2:
			rec.Fields = append(rec.Fields, record.IntField(name, int64(f-i%1000)))
		case 3:
			rec.Fields = append(rec.Fields, record.BoolField(name, (i+f)%3 == 0))
		}
	}
}

var backlogTagNames = func() []string {
	names := make([]string, backlogFields)
	for i := range names {
		names[i] = fmt.Sprintf("line1.press1.tag%03d", i)
	}
	return names
}()

// seqCounter counts the distinct seqs of the records that arrive, reading only the seq.
type seqCounter struct {
	mu       sync.Mutex
	seen     []bool // by seq
	distinct uint64
	dups     uint64
	bad      int
	first    time.Time // first record
	last     time.Time // last new seq
	cursorAt time.Time // first stats message with cursor at the head
	stats    []byte    // last stats message
	head     uint64
}

var seqKey = []byte(`"seq":`)

func (c *seqCounter) handle(topic string, payload []byte, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if bytes.HasSuffix([]byte(topic), []byte("/stats")) {
		c.stats = append(c.stats[:0], payload...)
		if c.cursorAt.IsZero() && bytes.Contains(payload, fmt.Appendf(nil, `"cursor":%d,`, c.head)) {
			c.cursorAt = at
		}
		return
	}
	if !bytes.HasSuffix([]byte(topic), []byte("/telemetry")) {
		return
	}
	i := bytes.Index(payload, seqKey)
	if i < 0 {
		c.bad++
		return
	}
	rest := payload[i+len(seqKey):]
	end := bytes.IndexByte(rest, ',')
	seq, err := strconv.ParseUint(string(rest[:max(end, 0)]), 10, 64)
	if err != nil || seq == 0 || seq >= uint64(len(c.seen)) {
		c.bad++
		return
	}
	if c.first.IsZero() {
		c.first = at
	}
	if c.seen[seq] {
		c.dups++
		return
	}
	c.seen[seq] = true
	c.distinct++
	c.last = at
}

// BenchmarkDrain_1GiBBacklog starts the agent, with GOMEMLIMIT=256MiB and no devices, on a
// 1 GiB buffer file, and measures until its cursor reaches the head: time, msgs/s, CPU, and
// memory (VmHWM, RssAnon, the mapped file, the Go heap). One iteration is one whole run: use
// -benchtime 1x.
func BenchmarkDrain_1GiBBacklog(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		dataDir := filepath.Join(dir, "data")
		if err := os.MkdirAll(dataDir, 0o750); err != nil {
			b.Fatal(err)
		}
		path := filepath.Join(dataDir, agent.BufferFile)
		built := time.Now()
		n := buildBacklog(b, path, backlogFileBytes)
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("backlog: %d records of %d fields, file %.0f MiB, built in %v", n, backlogFields,
			float64(fi.Size())/(1<<20), time.Since(built).Round(time.Millisecond))

		broker := mqtttest.StartBroker(b, mqtttest.BrokerOptions{})
		cnt := &seqCounter{seen: make([]bool, n+1), head: n}
		subscribe(b, broker.URL(), perfPrefix+"#", cnt.handle)
		cfgPath := filepath.Join(dir, "floorlink.yaml")
		cfg := fmt.Sprintf(`gateway: {id: gw-perf, site: perf, area: hall, line: wide, data_dir: %q}
mqtt:
  brokers: [%q]
  max_drain_rate: 100000
  stats_interval: 1s
  shutdown_grace: 10s
buffer: {max_bytes: 4GiB}
http: {listen: ""}
`, dataDir, broker.URL())
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			b.Fatal(err)
		}

		b.StartTimer()
		a := startAgent(b, cfgPath, fmt.Sprintf("GOMEMLIMIT=%dMiB", memLimit>>20))
		samp := startSampler(a.PID(), 100*time.Millisecond)
		waitFor(b, 30*time.Minute, func() error {
			if a.exited() {
				b.Fatalf("agent exited during the drain")
			}
			cnt.mu.Lock()
			defer cnt.mu.Unlock()
			if cnt.cursorAt.IsZero() || cnt.distinct < n {
				return fmt.Errorf("%d of %d records arrived; last stats %s", cnt.distinct, n, cnt.stats)
			}
			return nil
		})
		b.StopTimer()
		cpu, err := procCPU(a.PID())
		if err != nil {
			b.Fatal(err)
		}
		_, peak := samp.finish()
		if code := a.stop(30 * time.Second); code != 0 {
			b.Fatalf("agent exit code %d after SIGTERM, want 0", code)
		}
		_, h := a.goHeap(0)
		ro, err := buffer.OpenReadOnly(path)
		if err != nil {
			b.Fatal(err)
		}
		head, cursor := ro.Head(), ro.Cursor()
		ro.Close()
		if head != n || cursor != n {
			b.Fatalf("after the drain: buffer head %d, cursor %d; want both %d", head, cursor, n)
		}

		cnt.mu.Lock()
		if cnt.bad > 0 {
			b.Fatalf("%d messages without a readable seq in 1..%d", cnt.bad, n)
		}
		startup := cnt.first.Sub(a.started)
		drain := cnt.last.Sub(cnt.first)
		total := cnt.cursorAt.Sub(a.started)
		dups := cnt.dups
		cnt.mu.Unlock()
		rate := float64(n) / drain.Seconds()
		within := peak.RssAnon*1024 <= memLimit
		b.Logf("agent start to first record %v (opening and checking the file); first to last record %v: %.0f msgs/s; start to cursor = head (stats, 1 s resolution) %v; %d duplicates",
			startup.Round(time.Millisecond), drain.Round(time.Millisecond), rate, total.Round(time.Millisecond), dups)
		b.Logf("agent CPU %.1f s over %v (%.2f cores)", cpu.Seconds(), total.Round(time.Millisecond), cpu.Seconds()/total.Seconds())
		b.Logf("memory: VmHWM %.1f MiB (peak of RSS, the mapped file included), peak RssAnon %.1f MiB, peak RssFile %.1f MiB (pages of the mapped buffer file, which the kernel can drop); Go heap (gctrace) peak %d MB, live ≤ %d MB over %d GCs",
			mib(peak.VmHWM), mib(peak.RssAnon), mib(peak.RssFile), h.PeakMB, h.LiveMB, h.GCs)
		b.Logf("within GOMEMLIMIT=256MiB: anonymous memory %v (peak RssAnon %.1f MiB); whole RSS %v (VmHWM %.1f MiB)",
			within, mib(peak.RssAnon), peak.VmHWM*1024 <= memLimit, mib(peak.VmHWM))
		b.ReportMetric(drain.Seconds(), "drain-s")
		b.ReportMetric(startup.Seconds(), "startup-s")
		b.ReportMetric(rate, "msgs/s")
		b.ReportMetric(cpu.Seconds()/total.Seconds(), "cores")
		b.ReportMetric(mib(peak.VmHWM), "VmHWM-MiB")
		b.ReportMetric(mib(peak.RssAnon), "RssAnon-MiB")
		b.ReportMetric(float64(h.PeakMB), "heap-MB")
		b.StartTimer() // b.Loop must not find the timer stopped
	}
}
