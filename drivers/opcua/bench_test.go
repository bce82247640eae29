package opcua

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/floorlink/floorlink/drivers"
	"github.com/floorlink/floorlink/drivers/opcua/internal/uatest"
)

// countSink counts samples and batches, as cheaply as a sink can.
type countSink struct {
	samples, batches atomic.Int64
}

func (c *countSink) Batch(b *drivers.Batch) {
	c.samples.Add(int64(len(b.Samples)))
	c.batches.Add(1)
}
func (c *countSink) Event(drivers.Event) {}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func extraDevice(endpoint string, n int, mode string, interval time.Duration) drivers.Device {
	dev := drivers.Device{Name: "bench", Protocol: Protocol, Address: endpoint, PollInterval: interval, Timeout: 10 * time.Second,
		OPCUA: drivers.OPCUAOptions{Mode: mode, SamplingInterval: time.Second, PublishingInterval: time.Second}}
	for i := range n {
		dev.Tags = append(dev.Tags, drivers.Tag{Name: fmt.Sprintf("e%d", i), Address: fmt.Sprintf("ns=%d;s=Line1.Extra.E%d", uatest.Namespace, i), Type: drivers.TypeFloat64})
	}
	return dev
}

// measure runs the driver until b.Loop ends, each iteration waiting for per more samples, and
// reports this process's CPU as a fraction of one core, allocations per sample and samples/s.
func measure(b *testing.B, d *Driver, per int64) {
	c := &countSink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, c) }()
	defer func() { cancel(); <-done }()
	// Warm up: the subscriptions made and the first full read delivered.
	deadline := time.Now().Add(2 * time.Minute)
	for c.samples.Load() < 2*per {
		if time.Now().After(deadline) {
			b.Fatalf("only %d samples in 2 minutes", c.samples.Load())
		}
		<-time.After(10 * time.Millisecond) // the polling interval of a wait with a deadline
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, wall0, s0 := cpuTime(), time.Now(), c.samples.Load()
	next := s0
	for b.Loop() {
		next += per
		stall := time.Now().Add(time.Minute)
		for c.samples.Load() < next {
			if time.Now().After(stall) {
				b.Fatalf("%d samples, waiting for %d: none for a minute", c.samples.Load(), next)
			}
			<-time.After(2 * time.Millisecond) // the polling interval of a wait with a deadline
		}
	}
	cpu, wall, n := cpuTime()-cpu0, time.Since(wall0), c.samples.Load()-s0
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(cpu)/float64(wall), "cpu-fraction")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(n), "allocs/sample")
	b.ReportMetric(float64(n)/wall.Seconds(), "samples/s")
}

// BenchmarkSubscribe_10000Items: 10,000 monitored items changing once a second (node-opcua,
// security None) in 10 subscriptions; one iteration is one second's 10,000 samples. The CPU
// fraction is this process's (driver and gopcua), of one core.
func BenchmarkSubscribe_10000Items(b *testing.B) {
	srv := uatest.Start(b, uatest.Options{Extra: 10000})
	d, err := New(extraDevice(srv.Endpoint, 10000, ModeSubscribe, time.Second), Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	measure(b, d, 10000)
}

// BenchmarkPoll_10000Nodes: back-to-back polls of 10,000 Double nodes (node-opcua, security
// None, MaxNodesPerRead 1000: 10 Reads a poll); one iteration is one poll.
func BenchmarkPoll_10000Nodes(b *testing.B) {
	srv := uatest.Start(b, uatest.Options{Extra: 10000})
	d, err := New(extraDevice(srv.Endpoint, 10000, ModePoll, time.Millisecond), Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	measure(b, d, 10000)
}
