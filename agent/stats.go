package agent

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/floorlink/floorlink/agent/kpi"
	"github.com/floorlink/floorlink/agent/record"
)

// statsState is the rate computation of the gateway stats message; mu guards it, since the
// HTTP status and the publisher's stats message both read it.
type statsState struct {
	mu        sync.Mutex
	lastAcked uint64
	lastAt    time.Time
	rate      float64
}

// gatewayStats is the payload of floorlink/v1/{site}/gateway/{gateway}/stats (docs/mqtt.md).
type gatewayStats struct {
	TS      string `json:"ts"`
	Gateway string `json:"gateway"`
	Epoch   string `json:"epoch"`
	Session uint64 `json:"session"`
	Buffer  struct {
		Head           uint64  `json:"head"`
		Cursor         uint64  `json:"cursor"`
		Depth          uint64  `json:"depth"`
		FileBytes      int64   `json:"file_bytes"`
		Queue          int     `json:"queue"`
		CommitFailures uint64  `json:"commit_failures"`
		OldestAge      float64 `json:"oldest_age_seconds"`
		Dropped        uint64  `json:"dropped"`
		QueueFull      uint64  `json:"queue_full"`
	} `json:"buffer"`
	Pipeline struct {
		Records uint64 `json:"records"`
		Dropped uint64 `json:"dropped"`
	} `json:"pipeline"`
	Publish struct {
		Published   uint64  `json:"published"`
		Acked       uint64  `json:"acked"`
		Rate        float64 `json:"rate"` // acknowledged messages per second since the last stats
		DeadLetters uint64  `json:"dead_letters"`
		Split       uint64  `json:"split"`
	} `json:"publish"`
}

// appendStats appends the gateway stats JSON for the stats message and updates the publish rate
// since the previous one. It runs every mqtt.stats_interval, so it favours clarity over
// allocation.
func (a *Agent) appendStats(dst []byte) []byte {
	return append(dst, a.stats(true)...)
}

// statusTTL is how long a rendered status serves further requests: many open status pages
// (or a monitoring loop) then cost one rendering per period, not one per request, and the poll
// loops keep their CPU.
const statusTTL = 250 * time.Millisecond

// statusJSON returns /api/v1/status, plain and gzipped, rendered at most every statusTTL. The
// document of a large gateway is big (800 KB for 10,000 tags) and compresses about tenfold.
func (a *Agent) statusJSON() (doc, gzipped []byte) {
	a.status.mu.Lock()
	defer a.status.mu.Unlock()
	if now := time.Now(); a.status.doc == nil || now.Sub(a.status.at) >= statusTTL {
		a.status.doc, a.status.at = a.renderStatus(), now
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
		zw.Write(a.status.doc)
		zw.Close()
		a.status.gz = z.Bytes()
	}
	return a.status.doc, a.status.gz
}

// renderStatus builds /api/v1/status: the gateway, every device with its state and tags' last
// values, and the figures of the stats message (with the rate of the last one).
func (a *Agent) renderStatus() []byte {
	var doc struct {
		Gateway struct {
			ID       string  `json:"id"`
			Site     string  `json:"site"`
			Area     string  `json:"area"`
			Line     string  `json:"line"`
			Started  string  `json:"started"`
			Uptime   float64 `json:"uptime_seconds"`
			Timezone string  `json:"timezone"`
		} `json:"gateway"`
		MQTT struct {
			Connected bool   `json:"connected"`
			Session   uint64 `json:"session"`
		} `json:"mqtt"`
		Devices []statusDevice   `json:"devices"`
		Assets  []map[string]any `json:"assets,omitempty"`
		Stats   json.RawMessage  `json:"stats"`
	}
	g := &doc.Gateway
	g.ID, g.Site, g.Area, g.Line = a.cfg.Gateway.ID, a.cfg.Gateway.Site, a.cfg.Gateway.Area, a.cfg.Gateway.Line
	g.Started, g.Uptime, g.Timezone = ts(a.started), time.Since(a.started).Seconds(), a.cfg.Gateway.Timezone
	ps := a.pub.Stats()
	doc.MQTT.Connected, doc.MQTT.Session = ps.Connected, ps.Session
	devices := a.deviceList()
	doc.Devices = make([]statusDevice, 0, len(devices))
	for _, d := range devices {
		doc.Devices = append(doc.Devices, d.status.snapshot())
	}
	doc.Assets = a.assetStatus()
	doc.Stats = a.stats(false)
	b, _ := json.Marshal(&doc) // cannot fail for these types
	return b
}

func (a *Agent) stats(updateRate bool) []byte {
	now := time.Now()
	bs, ps := a.buf.Stats(), a.pub.Stats()
	var s gatewayStats
	s.TS = now.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z07:00")
	s.Gateway, s.Epoch, s.Session = a.cfg.Gateway.ID, a.buf.Epoch(), ps.Session
	s.Buffer.Head, s.Buffer.Cursor, s.Buffer.Depth = bs.Head, bs.Cursor, bs.Entries
	s.Buffer.FileBytes, s.Buffer.Queue, s.Buffer.CommitFailures = bs.FileBytes, bs.QueueLen, bs.CommitFailures
	s.Buffer.OldestAge, s.Buffer.Dropped, s.Buffer.QueueFull = bs.OldestAge.Seconds(), bs.Dropped, bs.QueueFull
	s.Pipeline.Records, s.Pipeline.Dropped = a.counts.records.Load(), a.counts.dropped.Load()
	s.Publish.Published, s.Publish.Acked, s.Publish.DeadLetters, s.Publish.Split = ps.Published, ps.Acked, ps.DeadLetters, ps.Split
	st := &a.rate
	st.mu.Lock()
	if updateRate {
		st.rate = 0
		if !st.lastAt.IsZero() && ps.Acked >= st.lastAcked {
			if dt := now.Sub(st.lastAt).Seconds(); dt > 0 {
				st.rate = float64(ps.Acked-st.lastAcked) / dt
			}
		}
		st.lastAcked, st.lastAt = ps.Acked, now
	}
	s.Publish.Rate = st.rate
	st.mu.Unlock()
	b, _ := json.Marshal(&s) // cannot fail for this type
	return b
}

// statusKPIs are the fields of an asset's "so far" record the status shows, beside its name.
var statusKPIs = []string{kpi.FieldShift, kpi.FieldOEE, kpi.FieldAvailability, kpi.FieldPerformance, kpi.FieldQuality,
	kpi.FieldCoverage, kpi.FieldProduced, kpi.FieldGood, kpi.FieldScrap, kpi.FieldWindowStart}

// assetStatus is each asset's current shift (or day) so far, for the status page; null KPIs
// (zero denominators) are left out.
func (a *Agent) assetStatus() []map[string]any {
	if a.kpi == nil {
		return nil
	}
	var out []map[string]any
	var rec record.Record
	now := a.now()
	for _, name := range a.kpi.assets() {
		m := map[string]any{"name": name}
		if a.kpi.current(name, now, &rec) {
			for i := range rec.Fields {
				f := &rec.Fields[i]
				if f.Quality == record.Good && slices.Contains(statusKPIs, f.Name) {
					m[f.Name] = jsonValue(f)
				}
			}
		}
		out = append(out, m)
	}
	return out
}
