package opcua

import (
	"fmt"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/floorlink/floorlink/drivers"
)

func newTestDriver(t *testing.T, n int, mutate func(*drivers.Device)) *Driver {
	t.Helper()
	dev := drivers.Device{Name: "d", Protocol: Protocol, Address: "opc.tcp://127.0.0.1:4840"}
	for i := range n {
		dev.Tags = append(dev.Tags, drivers.Tag{Name: fmt.Sprint(i), Address: fmt.Sprintf("ns=2;s=Line1.Machine%04d.Value", i)})
	}
	if mutate != nil {
		mutate(&dev)
	}
	d, err := New(dev, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.reported = make([]bool, n)
	return d
}

func TestDriver_PlanReads(t *testing.T) {
	d := newTestDriver(t, 2500, nil)
	all := allTags(2500)
	count := func(plan []readChunk) (sizes []int, total int) {
		for _, ch := range plan {
			sizes = append(sizes, len(ch.tags))
			total += len(ch.tags)
			if len(ch.req.NodesToRead) != len(ch.tags) {
				t.Fatalf("chunk of %d tags reads %d nodes", len(ch.tags), len(ch.req.NodesToRead))
			}
		}
		return sizes, total
	}
	// By the server's MaxNodesPerRead.
	if sizes, total := count(d.planReads(all, limits{nodesPerRead: 300})); total != 2500 || len(sizes) != 9 || sizes[0] != 300 {
		t.Errorf("MaxNodesPerRead 300: chunks %v", sizes)
	}
	// By the size budget alone: 48 KiB / (48 + 24 bytes) ≈ 682 nodes.
	sizes, total := count(d.planReads(all, limits{}))
	if total != 2500 || sizes[0] < 600 || sizes[0] > 700 {
		t.Errorf("budget: chunks %v", sizes)
	}
	for _, n := range sizes {
		if n*(48+len("Line1.Machine0000.Value")) > DefaultRequestBytes {
			t.Errorf("chunk of %d nodes over the budget", n)
		}
	}
}

func TestDriver_Fill(t *testing.T) {
	src := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	srv := src.Add(time.Second)
	dv := &ua.DataValue{Value: ua.MustVariant(int32(7)), SourceTimestamp: src, ServerTimestamp: srv}
	for _, c := range []struct {
		ts   string
		want time.Time
	}{{"", src}, {TimestampSource, src}, {TimestampServer, srv}, {TimestampGateway, time.Time{}}} {
		d := newTestDriver(t, 1, func(dev *drivers.Device) { dev.OPCUA.Timestamp = c.ts })
		var s drivers.Sample
		d.fill(&collector{}, &s, 0, dv)
		if !s.SourceTime.Equal(c.want) || s.Value.Int() != 7 || s.Quality != drivers.QualityGood {
			t.Errorf("timestamp %q: %+v, want time %v", c.ts, s, c.want)
		}
	}
	d := newTestDriver(t, 1, nil)
	for _, c := range []struct {
		status ua.StatusCode
		q      drivers.Quality
		reason string
	}{
		{ua.StatusOK, drivers.QualityGood, ""},
		{ua.StatusUncertainLastUsableValue, drivers.QualityUncertain, "UncertainLastUsableValue"},
		{ua.StatusBadNodeIDUnknown, drivers.QualityBad, "BadNodeIdUnknown"},
		{ua.StatusBadCertificateURIInvalid, drivers.QualityBad, "BadCertificateUriInvalid"},
	} {
		var s drivers.Sample
		d.fill(&collector{}, &s, 0, &ua.DataValue{Value: ua.MustVariant(1.5), Status: c.status})
		if s.Quality != c.q || s.Reason != c.reason {
			t.Errorf("status %v: %s %q, want %s %q", c.status, s.Quality, s.Reason, c.q, c.reason)
		}
	}
}

func TestDecode_AllocsSteadyState(t *testing.T) {
	v := ua.MustVariant(3.25)
	if n := testing.AllocsPerRun(100, func() { _, _, _, _ = decode(v) }); n != 0 {
		t.Errorf("decode of a Double: %v allocs, want 0", n)
	}
}
