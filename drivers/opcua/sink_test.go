package opcua

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/floorlink/floorlink/drivers"
)

// sample is a copied sample with the batch's read time.
type sample struct {
	drivers.Sample
	read time.Time
}

// collector is a drivers.Sink that keeps everything, for tests.
type collector struct {
	mu      sync.Mutex
	samples []sample
	events  []drivers.Event
}

func (c *collector) Batch(b *drivers.Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range b.Samples {
		c.samples = append(c.samples, sample{s, b.ReadTime})
	}
}

func (c *collector) Event(e drivers.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
}

// last returns the last sample of tag and whether there is one.
func (c *collector) last(tag int) (sample, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.samples) - 1; i >= 0; i-- {
		if c.samples[i].Tag == tag {
			return c.samples[i], true
		}
	}
	return sample{}, false
}

// since returns the samples of tag read after t.
func (c *collector) since(tag int, t time.Time) []sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []sample
	for _, s := range c.samples {
		if s.Tag == tag && !s.read.Before(t) {
			out = append(out, s)
		}
	}
	return out
}

func (c *collector) eventsOf(kind drivers.EventKind) []drivers.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []drivers.Event
	for _, e := range c.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// waitFor polls f until it returns nil or d passes; then the test fails with f's last error.
func waitFor(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		<-time.After(20 * time.Millisecond) // polling interval of the wait, not a wait for a result
	}
}

// run starts d.Run in a goroutine; the cleanup cancels it and checks it returns in time.
func run(t testing.TB, d *Driver, sink drivers.Sink) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of its context ending")
		}
	})
	return cancel
}

func goodValue(c *collector, tag int, want string) error {
	s, ok := c.last(tag)
	if !ok {
		return fmt.Errorf("tag %d: no sample yet", tag)
	}
	if s.Quality != drivers.QualityGood {
		return fmt.Errorf("tag %d: quality %s (%s), want good", tag, s.Quality, s.Reason)
	}
	if got := s.Value.String(); got != want {
		return fmt.Errorf("tag %d: got %s, want %s", tag, got, want)
	}
	return nil
}

// closedPort returns a loopback port nothing listens on (it was free a moment ago).
func closedPort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}
