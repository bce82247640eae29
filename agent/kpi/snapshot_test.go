package kpi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"hash/crc32"
	"os"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/drivers"
)

var update = flag.Bool("update", false, "rewrite testdata/snapshot_v1.golden (never the scenarios)")

// goldenRun is a fixed run whose snapshot pins format version 1.
func goldenRun(t testing.TB) (*Engine, *randomRun) {
	t.Helper()
	r := newRandomRun(42, 3)
	e := r.engine(t)
	r.feed(t, e, 0, len(r.batches)/2, 1)
	return e, r
}

// TestSnapshot_Golden pins the encoding of version 1: a binary must always read what an older
// one wrote. -update rewrites the file; review the diff.
func TestSnapshot_Golden(t *testing.T) {
	e, r := goldenRun(t)
	got := e.Snapshot(nil)
	const path = "testdata/snapshot_v1.golden"
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("snapshot of the golden run differs from %s (%d bytes, want %d): a format change needs a new version", path, len(got), len(want))
	}
	// The stored snapshot restores, and continues like the run it came from.
	e2 := r.engine(t)
	if err := e2.Restore(want, r.batches[len(r.batches)/2-1].ReadTime); err != nil {
		t.Fatalf("Restore(golden): %v", err)
	}
	a := r.feed(t, e, len(r.batches)/2, len(r.batches), 1)
	b := r.feed(t, e2, len(r.batches)/2, len(r.batches), 1)
	if len(a) == 0 || len(a) != len(b) {
		t.Errorf("after the golden snapshot: %d records restored, %d uninterrupted", len(b), len(a))
	}
}

func TestRestore_Errors(t *testing.T) {
	e, r := goldenRun(t)
	snap := e.Snapshot(nil)
	fresh := r.engine(t)
	before := fresh.Snapshot(nil)
	for name, tc := range map[string]struct {
		data []byte
		want error
	}{
		"empty":     {nil, ErrSnapshotCorrupt},
		"magic":     {append([]byte("XXXXX"), snap[5:]...), ErrSnapshotCorrupt},
		"version":   {append(append([]byte("FLKPI"), 9), snap[6:]...), ErrSnapshotVersion},
		"checksum":  {append(append([]byte(nil), snap[:len(snap)-1]...), snap[len(snap)-1]^1), ErrSnapshotCorrupt},
		"truncated": {withCRC(snap[:len(snap)/2]), ErrSnapshotCorrupt},
		"trailing":  {withCRC(append(append([]byte(nil), snap[:len(snap)-4]...), 0)), ErrSnapshotCorrupt},
	} {
		err := fresh.Restore(tc.data, time.Now())
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
		if after := fresh.Snapshot(nil); !bytes.Equal(after, before) {
			t.Errorf("%s: a failed Restore changed the engine", name)
		}
	}
}

// withCRC replaces the last four bytes' role: it appends the checksum of body.
func withCRC(body []byte) []byte {
	out := append([]byte(nil), body...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// TestRestore_OtherConfig: a snapshot of an asset configured otherwise is not continued: its
// windows close at the snapshot's time (shorter windows), and the asset starts afresh after.
func TestRestore_OtherConfig(t *testing.T) {
	e, r := goldenRun(t)
	snap := e.Snapshot(nil)
	at := r.batches[len(r.batches)/2-1].ReadTime
	r.asset.MicroStop += time.Second
	e2 := r.engine(t)
	if err := e2.Restore(snap, at); err != nil {
		t.Fatal(err)
	}
	recs := r.feed(t, e2, len(r.batches)/2, len(r.batches), 1)
	seen := map[string]time.Time{}
	for i := range recs {
		checkInvariants(t, &recs[i])
		k := field(&recs[i], FieldWindow).Str
		start, _ := time.Parse(time.RFC3339, field(&recs[i], FieldWindowStart).Str)
		if prev, ok := seen[k]; ok && start.Before(prev) {
			t.Errorf("%s windows overlap: one starts at %v before the last ended at %v", k, start, prev)
		}
		seen[k] = recs[i].Time
	}
	if len(recs) == 0 || !recs[0].Time.Equal(at.Truncate(0).UTC()) && recs[0].Time.After(at) {
		t.Errorf("want the truncated windows first, ending at %v; got %v", at, recs[0].Time)
	}
}

// FuzzRestore feeds Restore arbitrary snapshots (half of them with a valid checksum, so that the
// decoder past it is reached). It must never panic; a snapshot it accepts must leave an engine
// that runs, and whose own snapshot restores to the same bytes.
func FuzzRestore(f *testing.F) {
	e, r := goldenRun(f)
	f.Add(e.Snapshot(nil), true)
	f.Add(r.engine(f).Snapshot(nil), true)
	f.Add([]byte("FLKPI\x01"), true)
	if g, err := os.ReadFile("testdata/snapshot_v1.golden"); err == nil {
		f.Add(g, false)
	}
	at := r.batches[len(r.batches)/2].ReadTime
	f.Fuzz(func(t *testing.T, data []byte, fixCRC bool) {
		if len(data) > 64<<10 {
			return
		}
		if fixCRC && len(data) >= 4 {
			data = withCRC(data[:len(data)-4])
		}
		eng := r.engine(t)
		if err := eng.Restore(data, at); err != nil {
			if !errors.Is(err, ErrSnapshotCorrupt) && !errors.Is(err, ErrSnapshotVersion) {
				t.Fatalf("got %v, want a corrupt or version error", err)
			}
			return
		}
		snap := eng.Snapshot(nil)
		again := r.engine(t)
		if err := again.Restore(snap, at); err != nil {
			t.Fatalf("the snapshot of a restored engine does not restore: %v", err)
		}
		if s2 := again.Snapshot(nil); !bytes.Equal(s2, snap) {
			t.Fatal("Restore(Snapshot()) is not stable")
		}
		var rec record.Record
		for i := 0; i < 50 && eng.Next(at.Add(time.Duration(i)*time.Hour), &rec); i++ {
		}
		eng.Observe(&r.batches[len(r.batches)/2])
		eng.Current("a", at, &rec)
	})
}

// oneDevice is the benchmark's gateway: one device of tags tags, of which the first bound are
// bound to assets (state, total, good for each asset), polled every 100 ms.
func benchEngine(tb testing.TB, tags, assets int) (*Engine, *drivers.Batch) {
	tb.Helper()
	dev := drivers.Device{Name: "plc", PollInterval: 100 * time.Millisecond}
	for i := range tags {
		dev.Tags = append(dev.Tags, drivers.Tag{Name: "t" + itoa(i), Type: drivers.TypeUint32})
	}
	var as []Asset
	for k := range assets {
		as = append(as, Asset{
			Name:       "a" + itoa(k),
			State:      StateSource{Tag: TagRef{"plc", "t" + itoa(3*k)}, Map: defaultMap},
			Counters:   Counters{Total: TagRef{"plc", "t" + itoa(3*k+1)}, Good: TagRef{"plc", "t" + itoa(3*k+2)}, Bits: 32},
			IdealCycle: IdealCycle{Value: time.Second},
			MicroStop:  5 * time.Second,
			Schedule: Schedule{Location: berlin, Shifts: []Shift{{Name: "A", Start: 6 * time.Hour, End: 18 * time.Hour,
				Breaks: []Break{{12 * time.Hour, 12*time.Hour + 30*time.Minute}}}, {Name: "B", Start: 18 * time.Hour, End: 6 * time.Hour}}},
			Windows: []Window{{Kind: Tumbling, Every: time.Minute}, {Kind: ShiftWindow}, {Kind: DayWindow}},
		})
	}
	e, err := New(as, []drivers.Device{dev}, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	b := &drivers.Batch{Device: "plc", ReadTime: time.Date(2026, 3, 2, 5, 0, 0, 0, berlin)}
	for i := range tags {
		b.Samples = append(b.Samples, drivers.Sample{Tag: i, Value: drivers.UintValue(1)})
	}
	return e, b
}

func itoa(i int) string {
	return string(rune('0'+i/100%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
}

// step advances the benchmark batch by one poll: the machines make a part every poll, and
// change state every 50 polls (some stops are micro-stops).
func step(b *drivers.Batch, n, assets int) {
	b.ReadTime = b.ReadTime.Add(100 * time.Millisecond)
	for k := range assets {
		st := uint64(1)
		if (n/50+k)%4 == 3 {
			st = uint64(2 + (n/200)%3)
		}
		b.Samples[3*k].Value = drivers.UintValue(st)
		c := b.Samples[3*k+1].Value.Uint() + 1
		b.Samples[3*k+1].Value = drivers.UintValue(c)
		b.Samples[3*k+2].Value = drivers.UintValue(c - c/20)
	}
}

// BenchmarkEngine measures samples per second through Observe and Next, one Next per batch
// (the agent calls it about once a second, so this is the worst case). Simulated time runs at
// 100 ms per batch, so 1-minute windows close every 600 batches.
func BenchmarkEngine(b *testing.B) {
	for _, tc := range []struct{ tags, assets int }{{100, 1}, {30, 10}, {3, 1}} {
		b.Run("tags="+itoa(tc.tags)+"/assets="+itoa(tc.assets), func(b *testing.B) {
			e, batch := benchEngine(b, tc.tags, tc.assets)
			var rec record.Record
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				step(batch, n, tc.assets)
				n++
				e.Observe(batch)
				for e.Next(batch.ReadTime, &rec) {
				}
			}
			b.ReportMetric(float64(n*tc.tags)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*tc.tags), "ns/sample")
		})
	}
}

// TestEngine_Allocs: Observe and Next allocate nothing per sample once running; a window that
// closes costs its window_start text only.
func TestEngine_Allocs(t *testing.T) {
	e, batch := benchEngine(t, 30, 10)
	var rec record.Record
	n := 0
	run := func() {
		step(batch, n, 10)
		n++
		e.Observe(batch)
		for e.Next(batch.ReadTime, &rec) {
		}
	}
	for range 20000 { // warm up: every window kind has closed, scratch has grown
		run()
	}
	// 500 polls: no window closes in between (1-minute windows close every 600).
	for n%600 != 1 {
		run()
	}
	if a := testing.AllocsPerRun(500, run); a != 0 {
		t.Errorf("got %v allocs per batch of 30 samples, want 0", a)
	}
	// Across window closes: at most the window_start strings (10 assets x 1 window per minute).
	closes := testing.AllocsPerRun(6000, run) * 6000 / 10 // per minute per asset
	if closes > 1.5 {
		t.Errorf("got %.2f allocs per asset per closed window, want at most 1.5", closes)
	}
}
