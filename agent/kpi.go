package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/floorlink/floorlink/agent/config"
	"github.com/floorlink/floorlink/agent/kpi"
	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/buffer"
	"github.com/floorlink/floorlink/drivers"
)

// stateKPI is the buffer state key of the KPI engine's snapshot.
const stateKPI = "kpi"

// kpiRunner owns the KPI engine: the device sinks feed it batches, a goroutine of Run closes
// windows every second and commits each KPI record with the engine's snapshot taken right
// after it, in one buffer transaction, so a restart continues a shift exactly, never
// duplicating or losing a window. mu serializes every engine call (it is not safe for
// concurrent use and costs little per sample).
type kpiRunner struct {
	mu  sync.Mutex
	eng *kpi.Engine

	buf    *buffer.Buffer
	log    *slog.Logger
	closed func(asset string) // counts a closed window, for the metrics

	live     map[string]time.Duration // asset → live_interval, the assets with one
	liveLast map[string]time.Time     // when each last went out; only the publisher touches it
	liveRec  record.Record

	rec     record.Record
	payload []byte
	snap    []byte
	pending bool // payload and snap wait for a retry: the buffer refused them
	lastSet time.Time
}

// observe feeds one batch; called from the device sinks.
func (k *kpiRunner) observe(b *drivers.Batch) {
	k.mu.Lock()
	if k.eng != nil {
		k.eng.Observe(b)
	}
	k.mu.Unlock()
}

// flushWindows commits the windows due at now, each with the snapshot after it.
func (k *kpiRunner) flushWindows(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.eng == nil && !k.pending {
		return
	}
	for {
		if !k.pending {
			if k.eng == nil {
				return
			}
			if !k.eng.Next(now, &k.rec) {
				return
			}
			var err error
			if k.payload, err = k.rec.AppendBinary(k.payload[:0]); err != nil {
				k.log.Error("encode kpi record", "asset", k.rec.Source, "err", err)
				continue
			}
			k.snap = k.eng.Snapshot(k.snap[:0])
			k.pending = true
			if k.closed != nil {
				k.closed(k.rec.Source)
			}
		}
		if err := k.buf.Append(k.payload, buffer.State{Key: stateKPI, Value: k.snap}); err != nil {
			// Kept and retried on the next tick: the window must not be lost, nor the
			// snapshot get ahead of it.
			if !errors.Is(err, buffer.ErrQueueFull) {
				k.log.Error("store kpi record", "asset", k.rec.Source, "err", err)
			}
			return
		}
		k.pending = false
	}
}

// saveSnapshot records the engine's state between windows, after everything queued before it
// is committed, so that the snapshot never gets ahead of a KPI record.
func (k *kpiRunner) saveSnapshot(ctx context.Context) error {
	k.mu.Lock()
	if k.pending || k.eng == nil {
		k.mu.Unlock()
		return nil // the pending record carries the snapshot
	}
	k.snap = k.eng.Snapshot(k.snap[:0])
	snap := append([]byte(nil), k.snap...)
	k.mu.Unlock()
	if err := k.buf.Flush(ctx); err != nil {
		return err
	}
	return k.buf.SetState(stateKPI, snap)
}

// run closes windows every 100 ms (a window's record is due as soon as its end has passed) and
// saves a snapshot every five seconds, until ctx ends; now is the agent's clock.
func (k *kpiRunner) run(ctx context.Context, now func() time.Time) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			k.flushWindows(now())
			if time.Since(last) >= 5*time.Second {
				last = time.Now()
				if err := k.saveSnapshot(ctx); err != nil && ctx.Err() == nil {
					k.log.Error("save kpi snapshot", "err", err)
				}
			}
		}
	}
}

// restoreKPI continues the engine from the snapshot in the buffer: the time since it was
// taken is unknown. A snapshot that cannot be read is logged and the engine starts afresh: the
// windows in progress then begin at the first sample.
func (a *Agent) restoreKPI() {
	if a.kpi.eng == nil {
		return
	}
	snap, err := a.buf.State(stateKPI)
	if err == nil && len(snap) > 0 {
		err = a.kpi.eng.Restore(snap, a.now())
	}
	if err != nil {
		a.log.Error("kpi snapshot unusable: the windows in progress start afresh", "err", err)
	}
}

// kpiLiveInterval is the publisher's live tick: the shortest asset live_interval, and at most
// a second, so that assets a reload adds get theirs too.
func (a *Agent) kpiLiveInterval() time.Duration {
	a.kpi.mu.Lock()
	defer a.kpi.mu.Unlock()
	d := time.Second
	for _, iv := range a.kpi.live {
		d = min(d, iv)
	}
	return d
}

// kpiLive sends each asset's "so far" record whose live_interval has passed.
func (a *Agent) kpiLive(send func(rec *record.Record)) {
	k := a.kpi
	now, wall := a.now(), time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	for asset, iv := range k.live {
		if last, ok := k.liveLast[asset]; ok && wall.Sub(last) < iv-iv/10 {
			continue
		}
		if k.eng == nil || !k.eng.Current(asset, now, &k.liveRec) {
			continue
		}
		k.liveLast[asset] = wall
		send(&k.liveRec)
	}
}

// current returns the live "so far" record of an asset.
func (k *kpiRunner) current(asset string, now time.Time, dst *record.Record) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.eng != nil && k.eng.Current(asset, now, dst)
}

// assets are the engine's asset names, in the config's order.
func (k *kpiRunner) assets() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.eng == nil {
		return nil
	}
	return k.eng.Assets()
}

// swap continues the KPIs on next's engine (a reload): the windows of unchanged assets go on
// (the few seconds around the swap are unknown time), an asset whose configuration changed has
// its windows closed now and starts afresh, a removed one is dropped after its closed windows
// (kpi.Engine.Restore). Windows due are committed first.
func (k *kpiRunner) swap(next *kpiRunner, now time.Time) {
	k.flushWindows(now)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.eng != nil && next.eng != nil {
		if err := next.eng.Restore(k.eng.Snapshot(nil), now); err != nil {
			k.log.Error("kpi: continue on the reloaded assets: the windows in progress start afresh", "err", err)
		}
	}
	k.eng, k.live = next.eng, next.live
}

// kpiAssets maps the config's assets onto the engine's.
func kpiAssets(cfg *config.File) []kpi.Asset {
	out := make([]kpi.Asset, 0, len(cfg.Assets))
	for _, ca := range cfg.Assets {
		a := kpi.Asset{Name: ca.Name, MicroStop: ca.MicroStop}
		if s := ca.State; s != nil {
			a.State.MaxAge = s.MaxAge
			if s.Tag != "" {
				a.State.Tag = kpi.TagRef{Device: s.Device, Tag: s.Tag}
				a.State.Map = make(map[int64]kpi.State, len(s.Map))
				for v, name := range s.Map {
					a.State.Map[v], _ = kpi.ParseState(name)
				}
			}
			for _, b := range s.Bits() { // [state name, tag]; fault comes as "down"
				st, _ := kpi.ParseState(b[0])
				a.State.Bits = append(a.State.Bits, kpi.Bit{Tag: kpi.TagRef{Device: s.Device, Tag: b[1]}, State: st})
			}
		}
		if c := ca.Counters; c != nil {
			ref := func(tag string) kpi.TagRef {
				if tag == "" {
					return kpi.TagRef{}
				}
				return kpi.TagRef{Device: c.Device, Tag: tag}
			}
			a.Counters = kpi.Counters{Total: ref(c.Total), Good: ref(c.Good), Reject: ref(c.Reject), Bits: c.Bits}
		}
		if ic := ca.IdealCycle; ic != nil {
			a.IdealCycle.Value = ic.Value
			if ic.Tag != "" {
				a.IdealCycle = kpi.IdealCycle{Tag: kpi.TagRef{Device: ic.Device, Tag: ic.Tag}, Unit: ic.UnitDuration()}
			}
		}
		if sc := ca.Schedule; sc != nil {
			a.Schedule.Location = sc.Location // nil: kpi.Options.Location, the gateway's zone
			for _, sh := range sc.Shifts {
				k := kpi.Shift{Name: sh.Name}
				k.Start, _ = kpi.ParseClock(sh.Start)
				k.End, _ = kpi.ParseClock(sh.End)
				for _, b := range sh.Breaks {
					var kb kpi.Break
					kb.Start, _ = kpi.ParseClock(b.Start)
					kb.End, _ = kpi.ParseClock(b.End)
					k.Breaks = append(k.Breaks, kb)
				}
				for _, d := range sh.Days {
					wd, _ := kpi.ParseDay(d)
					k.Days = append(k.Days, wd)
				}
				a.Schedule.Shifts = append(a.Schedule.Shifts, k)
			}
			for _, d := range sc.NonWorking {
				date, _ := kpi.ParseDate(d)
				a.Schedule.NonWorking = append(a.Schedule.NonWorking, date)
			}
		}
		for _, w := range ca.Windows {
			kw, _ := kpi.ParseWindow(w)
			a.Windows = append(a.Windows, kw)
		}
		out = append(out, a)
	}
	return out
}

// newKPI builds the engine for cfg's assets over the devices the drivers poll; problems are
// placed at assets[i]. Without assets the runner has no engine and does nothing.
func newKPI(cfg *config.File, devs []drivers.Device, log *slog.Logger) (*kpiRunner, []config.Problem) {
	if len(cfg.Assets) == 0 {
		return &kpiRunner{log: log, live: map[string]time.Duration{}, liveLast: map[string]time.Time{}}, nil
	}
	eng, err := kpi.New(kpiAssets(cfg), devs, kpi.Options{Location: cfg.Gateway.Location})
	if err != nil {
		var problems []config.Problem
		for _, e := range unjoin(err) {
			var fe *kpi.FieldError
			if errors.As(e, &fe) {
				path := "assets"
				for i, as := range cfg.Assets {
					if as.Name == fe.Asset {
						path = fmt.Sprintf("assets[%d]", i)
					}
				}
				if fe.Path != "" {
					path += "." + fe.Path
				}
				problems = append(problems, cfg.Problemf(path, "%s", fe.Err))
				continue
			}
			problems = append(problems, cfg.Problemf("assets", "%s", e))
		}
		return nil, problems
	}
	k := &kpiRunner{eng: eng, log: log, live: map[string]time.Duration{}, liveLast: map[string]time.Time{}}
	for _, as := range cfg.Assets {
		if as.LiveInterval > 0 {
			k.live[as.Name] = as.LiveInterval
		}
	}
	return k, nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}
