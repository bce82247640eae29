package perf_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent"
	"github.com/floorlink/floorlink/agent/publish"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/buffer"
)

type timedSource struct {
	*buffer.Buffer
	ack, read, cb time.Duration
	nAck, nRead, nRec int
}

func (s *timedSource) Ack(through uint64) error {
	t := time.Now()
	err := s.Buffer.Ack(through)
	s.ack += time.Since(t)
	s.nAck++
	return err
}

func (s *timedSource) ReadAfter(after uint64, max int, fn func(uint64, []byte) error) error {
	t := time.Now()
	var cb time.Duration
	err := s.Buffer.ReadAfter(after, max, func(seq uint64, p []byte) error {
		c := time.Now()
		e := fn(seq, p)
		cb += time.Since(c)
		s.nRec++
		return e
	})
	s.read += time.Since(t) - cb
	s.cb += cb
	s.nRead++
	return err
}

func BenchmarkScratchDrainTimed(b *testing.B) {
	size := int64(backlogFileBytes)
	if v := os.Getenv("SCRATCH_MB"); v != "" {
		var mb int64
		for _, c := range v {
			mb = mb*10 + int64(c-'0')
		}
		size = mb << 20
	}
	dir := b.TempDir()
	path := filepath.Join(dir, agent.BufferFile)
	n := buildBacklog(b, path, size)
	buf, err := buffer.Open(path, buffer.Options{NoSync: os.Getenv("SCRATCH_NOSYNC") != ""}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	bd := make(chan error, 1)
	go func() { bd <- buf.Run(ctx) }()
	broker := mqtttest.StartBroker(b, mqtttest.BrokerOptions{})
	src := &timedSource{Buffer: buf}
	p, err := publish.New(src, publish.Options{Brokers: []string{broker.URL()}, Gateway: "gw", Site: "s", Area: "a", Line: "l", Epoch: buf.Epoch(), MaxDrainRate: 100000}, nil)
	if err != nil {
		b.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	pd := make(chan error, 1)
	start := time.Now()
	go func() { pd <- p.Run(pctx) }()
	for buf.Cursor() < n {
		<-time.After(20 * time.Millisecond)
	}
	el := time.Since(start)
	pcancel()
	<-pd
	b.Logf("%d records in %v: %.0f/s; Ack %d calls %v (%.2f ms each); ReadAfter %d calls %v bolt + %v encode, %d records",
		n, el, float64(n)/el.Seconds(), src.nAck, src.ack, src.ack.Seconds()*1000/float64(src.nAck), src.nRead, src.read, src.cb, src.nRec)
	cancel()
	<-bd
	buf.Close()
}
