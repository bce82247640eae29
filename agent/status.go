package agent

import (
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/drivers"
)

// deviceStatus is what /api/v1/status and /metrics show of one device: its connection state,
// its last poll and error, counters, and each tag's last value. The device's sink updates it
// once per batch and event; readers take mu.
type deviceStatus struct {
	mu sync.Mutex

	dev         drivers.Device
	state       string // connected, disconnected, faulted, unknown (before the first word from the driver)
	lastPoll    time.Time
	lastGood    time.Time // last batch with at least one good sample
	lastError   string
	lastErrorAt time.Time
	polls       uint64
	errors      uint64 // batches with a bad sample
	samples     uint64
	took        time.Duration // the last cycle's request time
	tags        []tagStatus   // by index in dev.Tags

	latency prometheus.Observer // nil in tests without metrics
}

type tagStatus struct {
	field record.Field // last value, as published (scaled, enum applied)
	at    time.Time
	ok    bool
}

func newDeviceStatus(dev drivers.Device) *deviceStatus {
	return &deviceStatus{dev: dev, state: "unknown", tags: make([]tagStatus, len(dev.Tags))}
}

// batch records a poll cycle; fields are the batch's samples converted (by tag index in idx).
func (s *deviceStatus) batch(b *drivers.Batch, fields []record.Field, idx []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.polls++
	s.samples += uint64(len(b.Samples))
	s.lastPoll, s.took = b.ReadTime, b.Took
	if s.latency != nil && b.Took > 0 {
		s.latency.Observe(b.Took.Seconds())
	}
	good, bad := false, false
	for i, f := range fields {
		s.tags[idx[i]] = tagStatus{field: f, at: b.ReadTime, ok: true}
		if f.Quality == record.Good && f.Kind != record.Null {
			good = true
		} else {
			bad = true
		}
	}
	if good {
		s.lastGood = b.ReadTime
	}
	if bad {
		s.errors++
	}
}

func (s *deviceStatus) event(e drivers.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Kind {
	case drivers.EventConnected:
		s.state = "connected"
	case drivers.EventDisconnected:
		s.state = "disconnected"
	case drivers.EventFault:
		s.state = "faulted"
	}
	if e.Err != nil {
		s.lastError, s.lastErrorAt = e.Err.Error(), e.Time
	}
}

// statusTag and statusDevice are the JSON of /api/v1/status (docs/operations.md).
type statusTag struct {
	Name    string `json:"name"`
	Value   any    `json:"value"`
	Quality string `json:"quality"`
	Reason  string `json:"reason,omitempty"`
	Unit    string `json:"unit,omitempty"`
	TS      string `json:"ts,omitempty"`
}

type statusDevice struct {
	Name         string      `json:"name"`
	Protocol     string      `json:"protocol"`
	Address      string      `json:"address"`
	UnitID       uint8       `json:"unit_id"`
	State        string      `json:"state"`
	LastPoll     string      `json:"last_poll,omitempty"`
	LastGoodPoll string      `json:"last_good_poll,omitempty"`
	LastError    string      `json:"last_error,omitempty"`
	LastErrorAt  string      `json:"last_error_at,omitempty"`
	Polls        uint64      `json:"polls"`
	Errors       uint64      `json:"errors"`
	Samples      uint64      `json:"samples"`
	CycleSeconds float64     `json:"cycle_seconds"`
	Tags         []statusTag `json:"tags"`
}

func (s *deviceStatus) snapshot() statusDevice {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := statusDevice{Name: s.dev.Name, Protocol: s.dev.Protocol, Address: s.dev.Address, UnitID: s.dev.UnitID,
		State: s.state, LastPoll: ts(s.lastPoll), LastGoodPoll: ts(s.lastGood), LastError: s.lastError,
		LastErrorAt: ts(s.lastErrorAt), Polls: s.polls, Errors: s.errors, Samples: s.samples,
		CycleSeconds: s.took.Seconds(), Tags: make([]statusTag, len(s.tags))}
	for i, t := range s.tags {
		st := statusTag{Name: s.dev.Tags[i].Name, Unit: s.dev.Tags[i].Unit, Quality: "unknown"}
		if t.ok {
			st.Value, st.Quality, st.Reason, st.TS = jsonValue(&t.field), t.field.Quality.String(), t.field.Reason, ts(t.at)
		}
		d.Tags[i] = st
	}
	return d
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// jsonValue turns a field into what encoding/json writes as the MQTT contract does: numbers,
// booleans, strings; null for no value and for NaN and infinities.
func jsonValue(f *record.Field) any {
	switch f.Kind {
	case record.Bool:
		return f.BoolValue()
	case record.Int:
		// Beyond 2^53 as a string, as the MQTT contract writes it: JavaScript would round it.
		if v := f.IntValue(); v > 1<<53 || v < -(1<<53) {
			return strconv.FormatInt(v, 10)
		}
		return json.Number(strconv.FormatInt(f.IntValue(), 10))
	case record.Uint:
		if f.Bits > 1<<53 {
			return strconv.FormatUint(f.Bits, 10)
		}
		return json.Number(strconv.FormatUint(f.Bits, 10))
	case record.Float:
		v := f.FloatValue()
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		bits := 64 // as the MQTT contract writes it: a float32 register's value in float32's shortest form
		if float64(float32(v)) == v {
			bits = 32
		}
		return json.Number(strconv.FormatFloat(v, 'g', -1, bits))
	case record.String:
		return f.Str
	}
	return nil
}
