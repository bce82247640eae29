package modbus

import (
	"fmt"
	"testing"
	"time"

	"github.com/floorlink/floorlink/drivers"
)

type discardSink struct{ batches int }

func (s *discardSink) Batch(*drivers.Batch) { s.batches++ }
func (s *discardSink) Event(drivers.Event)  {}

// benchDevice has n tags over n holding registers from 0, cycling through the register types
// and byte orders, so that one read covers up to 125 registers.
func benchDevice(addr string, n int) drivers.Device {
	dev := tcpDevice(addr)
	types := []drivers.DataType{drivers.TypeUint16, drivers.TypeInt16, drivers.TypeFloat32, drivers.TypeInt32, drivers.TypeUint32}
	orders := []string{"", "CDAB", "BADC", "DCBA"}
	reg := 0
	for i := 0; i < n; i++ {
		typ := types[i%len(types)]
		order := ""
		if typ != drivers.TypeUint16 && typ != drivers.TypeInt16 {
			order = orders[i%len(orders)]
		}
		dev.Tags = append(dev.Tags, tag(fmt.Sprintf("t%d", i), fmt.Sprintf("hr:%d", reg), typ, order))
		if typ == drivers.TypeFloat32 || typ == drivers.TypeInt32 || typ == drivers.TypeUint32 {
			reg += 2
		} else {
			reg++
		}
	}
	return dev
}

// cycleAllocs is the allocations of one steady-state poll cycle of dev against s.
func cycleAllocs(t *testing.T, dev drivers.Device) (allocs float64, reads int) {
	t.Helper()
	d, err := New([]drivers.Device{dev}, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sink := &discardSink{}
	s := d.newSession(t.Context(), sink)
	defer s.t.release()
	g := d.groups[0]
	if !s.poll(g) || !allGood(g.batch) {
		t.Fatalf("first cycle failed: %+v", g.batch.Samples)
	}
	allocs = testing.AllocsPerRun(50, func() {
		if !s.poll(g) {
			t.Fatal("cycle failed")
		}
	})
	return allocs, countReads(d)
}

// TestDriver_Cycle_AllocsPerSample proves that a poll cycle's allocations do not grow with the
// number of tags: what remains is goburrow's client allocating per request.
func TestDriver_Cycle_AllocsPerSample(t *testing.T) {
	s := startServer(t)
	few, fewReads := cycleAllocs(t, benchDevice(s.addr(), 2))
	many, manyReads := cycleAllocs(t, benchDevice(s.addr(), 60))
	if fewReads != 1 || manyReads != 1 {
		t.Fatalf("reads: %d and %d, want 1 each", fewReads, manyReads)
	}
	t.Logf("allocations per cycle of one read: %v with 2 tags, %v with 60 tags", few, many)
	if many != few {
		t.Errorf("a cycle allocates %v times with 60 tags and %v with 2: allocations grow with samples", many, few)
	}
	if few > 4 {
		t.Errorf("a one-read cycle allocates %v times, want at most 4 (goburrow's per-request structs)", few)
	}
}

// BenchmarkDriver_Cycle measures one full poll cycle (all reads, decode, the batch handed to a
// sink) against the in-process test server over loopback TCP.
func BenchmarkDriver_Cycle(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("tags=%d", n), func(b *testing.B) {
			srv := startServer(b)
			dev := benchDevice(srv.addr(), n)
			dev.Timeout = 5 * time.Second
			d, err := New([]drivers.Device{dev}, Options{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			sink := &discardSink{}
			s := d.newSession(b.Context(), sink)
			defer s.t.release()
			g := d.groups[0]
			b.ReportAllocs()
			for b.Loop() {
				if !s.poll(g) {
					b.Fatal("cycle failed")
				}
			}
			b.ReportMetric(float64(countReads(d)), "reads/cycle")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/sample")
		})
	}
}
