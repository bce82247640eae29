package verify_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/floorlink/floorlink/verify"
)

// telemetryPayload appends a record message shaped like a real telemetry message (docs/mqtt.md),
// about 250 bytes.
func telemetryPayload(dst []byte, seq uint64) []byte {
	dst = append(dst, `{"gateway":"gw-press-01","epoch":"8f14e45fceea167a","seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, `,"ts":"2026-11-25T08:30:15.123Z","historical":false,"values":{"state":1,"parts_total":123456,`+
		`"oil_temp":65.3,"spindle_speed":-1500,"running":true,"pressure":null},"quality":{"pressure":"bad:timeout"}}`...)
}

// BenchmarkTracker_Observe feeds seqs 1..n in order and reports the heap the Tracker keeps per
// seq (heapB/seq, measured after a GC), what was allocated in all per seq (allocB/seq) and the
// time per message.
func BenchmarkTracker_Observe(b *testing.B) {
	for _, n := range []uint64{100_000, 10_000_000} {
		b.Run(fmt.Sprintf("seqs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var retained, allocated uint64
			var elapsed time.Duration
			buf := make([]byte, 0, 512)
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				start := time.Now()
				tr := verify.NewTracker(verify.TrackerOptions{})
				for s := uint64(1); s <= n; s++ {
					buf = telemetryPayload(buf[:0], s)
					tr.Observe(topic, buf, t0)
				}
				elapsed += time.Since(start)
				runtime.GC()
				runtime.ReadMemStats(&after)
				retained = after.HeapAlloc - before.HeapAlloc
				allocated = after.TotalAlloc - before.TotalAlloc
				runtime.KeepAlive(tr)
			}
			b.SetBytes(int64(len(buf)) * int64(n))
			b.ReportMetric(float64(retained)/float64(n), "heapB/seq")
			b.ReportMetric(float64(allocated)/float64(n), "allocB/seq")
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)/float64(n), "ns/msg")
		})
	}
}

// TestTracker_Observe_Allocs holds BenchmarkTracker_Observe's claim: in order, a message
// allocates nothing; only a new page of 1024 seqs does (two allocations). Under the race
// detector sync.Pool drops items on purpose, so encoding/json.Valid (which the parser calls)
// allocates its scanner now and then: what json.Valid alone allocates on the same payloads is
// allowed, with a quarter more for its randomness (still far below one allocation per message).
func TestTracker_Observe_Allocs(t *testing.T) {
	const n = 30_000
	payloads := make([][]byte, n+1)
	for s := range payloads {
		payloads[s] = telemetryPayload(nil, uint64(s+1))
	}
	mallocs := func(fn func(p []byte), ps [][]byte) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for _, p := range ps {
			fn(p)
		}
		runtime.ReadMemStats(&after)
		return after.Mallocs - before.Mallocs
	}
	valid := func(p []byte) { _ = json.Valid(p) }
	tr := verify.NewTracker(verify.TrackerOptions{})
	observe := func(p []byte) { tr.Observe(topic, p, t0) }
	observe(payloads[0]) // the stream itself

	base := mallocs(valid, payloads[1:])
	got := mallocs(observe, payloads[1:])
	if max := base + base/4 + 3*(n/1024+1); got > max {
		t.Errorf("%d messages in order allocated %d times, want at most %d (a page per 1024 seqs; json.Valid alone: %d)",
			n, got, max, base)
	}
	// Duplicates allocate nothing at all.
	base = mallocs(valid, payloads[1:n/2])
	got = mallocs(observe, payloads[1:n/2])
	if max := base + base/4; got > max {
		t.Errorf("%d duplicates allocated %d times, want at most %d (json.Valid alone: %d)", n/2-1, got, max, base)
	}
}

// TestTracker_Observe_GarbageMemory: messages with random gateway ids or random seqs, as a
// misbehaving publisher could send, cost the Tracker a few hundred bytes each (about 700 for
// a new stream, 200 for a new page), far from the 8 KiB of a page allocated dense.
func TestTracker_Observe_GarbageMemory(t *testing.T) {
	const n = 5000
	for _, tt := range []struct {
		name    string
		payload func(i int) []byte
	}{
		{"random gateways", func(i int) []byte { return record(fmt.Sprintf("gw-%d", i), ep1, 1, false, "") }},
		{"random seqs", func(i int) []byte { return record(gw, ep1, uint64(i)*1_000_003+1, false, "") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			payloads := make([][]byte, n)
			for i := range payloads {
				payloads[i] = tt.payload(i)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			tr := verify.NewTracker(verify.TrackerOptions{})
			for _, p := range payloads {
				tr.Observe(topic, p, t0)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			perMsg := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
			runtime.KeepAlive(tr)
			runtime.KeepAlive(payloads) // else they are collected between the two readings
			t.Logf("%d bytes per message", perMsg)
			if perMsg > 2048 {
				t.Errorf("got %d bytes kept per message, want at most 2048", perMsg)
			}
		})
	}
}
