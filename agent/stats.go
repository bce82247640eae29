package agent

import (
	"encoding/json"
	"time"
)

// statsState is the rate computation of the gateway stats message. Only the publisher's
// goroutine calls appendStats, so it needs no lock.
type statsState struct {
	lastAcked uint64
	lastAt    time.Time
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

// appendStats appends the gateway stats JSON. It runs every mqtt.stats_interval, so it favours
// clarity over allocation.
func (a *Agent) appendStats(dst []byte) []byte {
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
	if !a.stats.lastAt.IsZero() && ps.Acked >= a.stats.lastAcked {
		if dt := now.Sub(a.stats.lastAt).Seconds(); dt > 0 {
			s.Publish.Rate = float64(ps.Acked-a.stats.lastAcked) / dt
		}
	}
	a.stats.lastAcked, a.stats.lastAt = ps.Acked, now
	b, err := json.Marshal(&s)
	if err != nil { // cannot happen for this type; never publish half a message
		return dst
	}
	return append(dst, b...)
}
