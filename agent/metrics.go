package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics is the agent's Prometheus registry (its own, never the global one) and the one metric
// observed on the hot path: the request latency histogram, one observer per device so that a poll
// costs no label lookup. Everything else is read at scrape time from the parts' own counters by
// collector, so polling and publishing pay nothing for metrics.
type metrics struct {
	reg        *prometheus.Registry
	latency    *prometheus.HistogramVec
	kpiWindows *prometheus.CounterVec // KPI records committed, per asset
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "floorlink_device_cycle_seconds",
		Help:    "Time the requests of one poll cycle took, per device.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"device"})
	m.kpiWindows = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "floorlink_kpi_windows_closed_total",
		Help: "KPI windows closed and stored for delivery, per asset.",
	}, []string{"asset"})
	m.reg.MustRegister(m.latency, m.kpiWindows, &collector{a: a},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// desc builds the descriptions of the scrape-time metrics.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("floorlink_"+name, help, labels, nil)
}

var (
	// Descriptions never change after start (a table, like bbolt's error values).
	descDevicePolls     = desc("device_polls_total", "Poll cycles completed.", "device")
	descDeviceErrors    = desc("device_poll_errors_total", "Poll cycles with at least one sample not good.", "device")
	descDeviceSamples   = desc("device_samples_total", "Samples read.", "device")
	descDeviceConnected = desc("device_connected", "1 while the driver has a working connection to the device.", "device")
	descDeviceLastPoll  = desc("device_last_good_poll_timestamp_seconds", "Unix time of the last cycle with a good sample.", "device")

	descRecords        = desc("records_total", "Records appended to the buffer by the pipeline.")
	descRecordsDropped = desc("records_dropped_total", "Records the buffer refused (queue full or closed) or that could not be encoded.")

	descBufferRecords   = desc("buffer_records", "Records waiting in the buffer (head - cursor).")
	descBufferBytes     = desc("buffer_payload_bytes", "Bytes of the records waiting in the buffer.")
	descBufferFile      = desc("buffer_file_bytes", "Size of the buffer file.")
	descBufferOldest    = desc("buffer_oldest_age_seconds", "Age of the oldest record waiting in the buffer.")
	descBufferHead      = desc("buffer_head_seq", "Seq of the last committed record.")
	descBufferCursor    = desc("buffer_cursor_seq", "Seq of the last record the broker acknowledged.")
	descBufferDropped   = desc("buffer_dropped_records_total", "Records dropped unsent by the buffer's limits.", "reason")
	descBufferQueueFull = desc("buffer_queue_full_total", "Appends refused because the commit queue was full.", "class")
	descBufferCommits   = desc("buffer_commits_total", "Buffer write transactions.")
	descBufferFailures  = desc("buffer_commit_failures_total", "Failed buffer commits (each retried; nothing is lost).")
	descBufferJumps     = desc("buffer_clock_jumps_total", "Wall-clock jumps detected.")

	descMQTTConnected = desc("mqtt_connected", "1 while an MQTT session is up.")
	descMQTTSessions  = desc("mqtt_sessions_total", "MQTT sessions begun.")
	descMQTTPublished = desc("mqtt_published_total", "Messages handed to the broker, re-sends included.")
	descMQTTDead      = desc("mqtt_dead_letters_total", "Records skipped because they could not be sent.")
	descMQTTSplit     = desc("mqtt_split_records_total", "Records sent in parts (larger than max_message_bytes).")
)

// collector reads the parts' counters at scrape time.
type collector struct{ a *Agent }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDevicePolls, descDeviceErrors, descDeviceSamples, descDeviceConnected,
		descDeviceLastPoll, descRecords, descRecordsDropped, descBufferRecords, descBufferBytes, descBufferFile,
		descBufferOldest, descBufferHead, descBufferCursor, descBufferDropped, descBufferQueueFull, descBufferCommits,
		descBufferFailures, descBufferJumps, descMQTTConnected, descMQTTSessions, descMQTTPublished, descMQTTDead,
		descMQTTSplit} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, d := range c.a.deviceList() {
		s := d.status
		s.mu.Lock()
		name, polls, errs, samples, state, lastGood := s.dev.Name, s.polls, s.errors, s.samples, s.state, s.lastGood
		s.mu.Unlock()
		counter(descDevicePolls, float64(polls), name)
		counter(descDeviceErrors, float64(errs), name)
		counter(descDeviceSamples, float64(samples), name)
		gauge(descDeviceConnected, b2f(state == "connected"), name)
		if !lastGood.IsZero() {
			gauge(descDeviceLastPoll, float64(lastGood.UnixMilli())/1000, name)
		}
	}
	counter(descRecords, float64(c.a.counts.records.Load()))
	counter(descRecordsDropped, float64(c.a.counts.dropped.Load()+c.a.counts.unstored.Load()))

	bs := c.a.buf.Stats()
	gauge(descBufferRecords, float64(bs.Entries))
	gauge(descBufferBytes, float64(bs.Bytes))
	gauge(descBufferFile, float64(bs.FileBytes))
	gauge(descBufferOldest, bs.OldestAge.Seconds())
	gauge(descBufferHead, float64(bs.Head))
	gauge(descBufferCursor, float64(bs.Cursor))
	counter(descBufferDropped, float64(bs.DroppedMaxBytes), "max_bytes")
	counter(descBufferDropped, float64(bs.DroppedMaxAge), "max_age")
	counter(descBufferQueueFull, float64(bs.QueueFullAppend), "event")
	counter(descBufferQueueFull, float64(bs.QueueFullDroppable), "telemetry")
	counter(descBufferCommits, float64(bs.Commits))
	counter(descBufferFailures, float64(bs.CommitFailures))
	counter(descBufferJumps, float64(bs.ClockJumps))

	ps := c.a.pub.Stats()
	gauge(descMQTTConnected, b2f(ps.Connected))
	counter(descMQTTSessions, float64(ps.Connects))
	counter(descMQTTPublished, float64(ps.Published))
	counter(descMQTTDead, float64(ps.DeadLetters))
	counter(descMQTTSplit, float64(ps.Split))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
