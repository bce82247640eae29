package opcua_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/floorlink/floorlink/simulators/line"
	simopcua "github.com/floorlink/floorlink/simulators/opcua"
	"github.com/floorlink/floorlink/simulators/pace"
)

// sim is a server under test with its pacer.
type sim struct {
	srv *simopcua.Server
	p   *pace.Pacer
	url string
}

// start serves a line over OPC UA on 127.0.0.1:0 until the test ends; manual pacing leaves the
// line still until sim.p.Advance.
func start(t testing.TB, cfg line.Config, manual bool) *sim {
	t.Helper()
	l, err := line.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pace.New(l, pace.Options{Manual: manual})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := simopcua.New(simopcua.Options{Line: l, Locker: p.Locker(), Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.Run(ctx) }()
	go func() {
		defer wg.Done()
		if err := srv.Run(ctx, ln); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &sim{srv: srv, p: p, url: simopcua.EndpointURL(ln.Addr())}
}

// connect returns a connected gopcua client (security None, no auto-reconnect), closed at the
// end of the test.
func connect(t testing.TB, url string) *opcua.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := opcua.NewClient(url, opcua.SecurityMode(ua.MessageSecurityModeNone), opcua.AutoReconnect(false),
		opcua.RequestTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// waitFor polls f until it returns nil or d passes, then fails with f's last error.
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
		time.Sleep(10 * time.Millisecond)
	}
}

func nid(t testing.TB, s string) *ua.NodeID {
	t.Helper()
	n, err := ua.ParseNodeID(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func read(t testing.TB, c *opcua.Client, attr ua.AttributeID, ids ...string) []*ua.DataValue {
	t.Helper()
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth}
	for _, s := range ids {
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: nid(t, s), AttributeID: attr})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Read(ctx, req)
	if err != nil {
		t.Fatalf("read %d nodes: %v", len(ids), err)
	}
	if len(resp.Results) != len(ids) {
		t.Fatalf("read %d nodes: got %d results", len(ids), len(resp.Results))
	}
	return resp.Results
}

func TestServer_Smoke(t *testing.T) {
	s := start(t, line.Config{Seed: 1}, true)
	c := connect(t, s.url)
	dv := read(t, c, ua.AttributeIDValue, "ns=2;s=Line1.M1.State", "i=2258", "i=11705")
	for i, d := range dv {
		t.Logf("%d: %v %v src=%v srv=%v", i, d.Status, d.Value.Value(), d.SourceTimestamp, d.ServerTimestamp)
	}
	_ = errors.New
	_ = fmt.Sprint
	_ = strings.Cut
	_ = id.Server
}
