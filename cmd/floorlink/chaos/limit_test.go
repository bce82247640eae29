package chaos_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/buffer"
	"github.com/floorlink/floorlink/cmd/floorlink/floorlinktest"
	"github.com/floorlink/floorlink/simulators/simtest"
	"github.com/floorlink/floorlink/verify"
)

// TestBufferLimit: with buffer.max_bytes at its 1 MiB minimum, a 20 s outage at 2,600 samples/s
// overflows the buffer. Exactly the oldest records are dropped: the drop events announce one
// contiguous range starting right after what was delivered before the outage, their count equals
// the hole in seq, none of them arrives anyway, and nothing newer is missing.
func TestBufferLimit(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Line: simtest.LineConfig{Seed: 12, Machines: devices}})
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	proxy := mqtttest.StartProxy(t, broker.Addr())
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "limit.yaml")
	if err := os.WriteFile(cfg, []byte(configWith(dataDir, proxy.URL(), sim.ModbusAddr(), "  max_bytes: 1MiB")), 0o644); err != nil {
		t.Fatal(err)
	}
	tracker := verify.NewTracker(verify.TrackerOptions{FromStart: true})
	vctx, stopVerifier := context.WithCancel(context.Background())
	subscribed := make(chan struct{}, 1)
	verified := make(chan error, 1)
	go func() {
		verified <- verify.Run(vctx, verify.Options{Brokers: []string{broker.URL()}, Subscribed: func() {
			select {
			case subscribed <- struct{}{}:
			default:
			}
		}}, tracker)
	}()
	defer func() { stopVerifier(); <-verified }()
	<-subscribed

	received := func() uint64 {
		r := tracker.Report()
		if len(r.Streams) == 0 {
			return 0
		}
		return r.Streams[0].Last
	}
	a := floorlinktest.Start(t, agentBin, cfg)
	waitFor(t, "first records", 30*time.Second, func() error {
		if n := received(); n < 200 {
			return fmt.Errorf("through seq %d", n)
		}
		return nil
	})
	proxy.SetRefuse(true)
	proxy.Cut()
	cutAt := received()
	<-time.After(20 * time.Second) // the outage: about 1.4 MB of records for a 1 MiB file
	proxy.SetRefuse(false)
	// Records taken after the heal arrive: the buffer's survivors drained before them.
	healed := time.Now()
	waitFor(t, "live again", 60*time.Second, func() error {
		r := tracker.Report()
		if len(r.Streams) == 0 || r.Streams[0].LastAt.Before(healed.Add(2*time.Second)) {
			return fmt.Errorf("no record since the heal")
		}
		return nil
	})
	if code := a.Stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	b, err := buffer.OpenReadOnly(filepath.Join(dataDir, agent.BufferFile))
	if err != nil {
		t.Fatal(err)
	}
	epoch, cursor := b.Epoch(), b.Cursor()
	fileBytes := b.Stats().FileBytes
	b.Close()
	if fileBytes > 1<<20 {
		t.Errorf("buffer file is %d bytes, over max_bytes 1MiB", fileBytes)
	}
	tracker.Expect("gw-chaos", epoch, cursor)
	var s verify.Stream
	waitFor(t, "everything acknowledged arrives", 30*time.Second, func() error {
		r := tracker.Report()
		s = r.Streams[0]
		if s.Missing > 0 {
			return fmt.Errorf("%d seqs missing and not announced: %v", s.Missing, s.Gaps)
		}
		return nil
	})
	var text strings.Builder
	tracker.Report().WriteText(&text)
	t.Logf("report (cursor %d, file %d bytes):\n%s", cursor, fileBytes, text.String())

	if s.Dropped == 0 {
		t.Fatal("the outage dropped nothing: it did not overflow the buffer, so this test proves nothing")
	}
	if s.DroppedReceived != 0 {
		t.Errorf("%d seqs announced as dropped arrived anyway", s.DroppedReceived)
	}
	// Each event announces the whole run of drops it belongs to (earlier events may have been
	// dropped in turn), so the ranges overlap: their union must be one range.
	drops := slices.Clone(s.Drops)
	slices.SortFunc(drops, func(x, y verify.Drop) int { return int(x.First) - int(y.First) })
	union := verify.Range{First: drops[0].First, Last: drops[0].Last}
	for _, d := range drops {
		if d.Reason != "max_bytes" {
			t.Errorf("drop %+v: reason %q, want max_bytes", d, d.Reason)
		}
		if d.First > union.Last+1 {
			t.Errorf("drops are not one contiguous range: %+v after %v", d, union)
		}
		union.Last = max(union.Last, d.Last)
	}
	// Oldest first: the dropped range starts right after the last seq delivered before the
	// outage (give or take the window in flight at the cut, which the broker may have had).
	if union.First > cutAt+maxInflight+1 || union.First+uint64(maxInflight) < cutAt {
		t.Errorf("the drops start at seq %d; the outage began after seq %d: not the oldest records", union.First, cutAt)
	}
	if n := union.Last - union.First + 1; n != s.Dropped {
		t.Errorf("the drop events announce %d seqs, the verifier counts %d", n, s.Dropped)
	}
	t.Logf("%d drop events; %d records dropped oldest first (seq %v); nothing else missing through seq %d",
		len(drops), s.Dropped, union, cursor)
}
