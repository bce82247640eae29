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
		<-time.After(10 * time.Millisecond) // the polling interval of a wait with a deadline
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

// browseAll walks the tree below root with Browse and BrowseNext (perNode references per page)
// and returns every variable's node id with its browse path.
func browseAll(t testing.TB, c *opcua.Client, root *ua.NodeID, perNode uint32) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vars := map[string]string{}
	type item struct {
		id   *ua.NodeID
		path string
	}
	queue := []item{{root, ""}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		resp, err := c.Browse(ctx, &ua.BrowseRequest{
			View:                          &ua.ViewDescription{ViewID: ua.NewTwoByteNodeID(0)},
			RequestedMaxReferencesPerNode: perNode,
			NodesToBrowse: []*ua.BrowseDescription{{
				NodeID: it.id, BrowseDirection: ua.BrowseDirectionForward,
				ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences), IncludeSubtypes: true,
				ResultMask: uint32(ua.BrowseResultMaskAll),
			}},
		})
		if err != nil {
			t.Fatalf("browse %s: %v", it.id, err)
		}
		res := resp.Results[0]
		refs := res.References
		for cp := res.ContinuationPoint; len(cp) > 0; {
			next, err := c.BrowseNext(ctx, &ua.BrowseNextRequest{ContinuationPoints: [][]byte{cp}})
			if err != nil {
				t.Fatalf("browse next %s: %v", it.id, err)
			}
			refs = append(refs, next.Results[0].References...)
			cp = next.Results[0].ContinuationPoint
		}
		if res.StatusCode != ua.StatusOK {
			t.Fatalf("browse %s: %v", it.id, res.StatusCode)
		}
		for _, r := range refs {
			p := it.path + "/" + r.BrowseName.Name
			if r.NodeClass == ua.NodeClassVariable {
				vars[r.NodeID.NodeID.String()] = p
				continue
			}
			if r.NodeID.NodeID.Namespace() == simopcua.NamespaceIndex {
				queue = append(queue, item{r.NodeID.NodeID, p})
			}
		}
	}
	return vars
}

func TestServer_Browse_Tree(t *testing.T) {
	s := start(t, line.Config{Seed: 1, Machines: 2, ExtraValues: 450}, true)
	c := connect(t, s.url)
	ns, err := c.NamespaceArray(context.Background())
	if err != nil || len(ns) < 3 || ns[simopcua.NamespaceIndex] != simopcua.NamespaceURI {
		t.Fatalf("namespace array %q (%v), want %q at index %d", ns, err, simopcua.NamespaceURI, simopcua.NamespaceIndex)
	}
	// 7 references per page: every folder takes several BrowseNext calls.
	vars := browseAll(t, c, ua.NewNumericNodeID(0, id.ObjectsFolder), 7)
	want := 0
	for k := 1; k <= 2; k++ {
		for _, v := range simopcua.Variables() {
			want++
			key := simopcua.NodeID(k, v.Name)
			if path, ok := vars[key]; !ok {
				t.Errorf("%s not found by browsing", key)
			} else if w := "/Line1/M" + fmt.Sprint(k) + "/" + strings.ReplaceAll(v.Name, ".", "/"); path != w {
				t.Errorf("%s browsed at %s, want %s", key, path, w)
			}
		}
		for i := range 450 {
			want++
			if _, ok := vars[simopcua.ExtraNodeID(k, i)]; !ok {
				t.Errorf("%s not found by browsing", simopcua.ExtraNodeID(k, i))
			}
		}
	}
	if got := len(vars); got != want || s.srv.NodeCount() != want {
		t.Errorf("browsed %d variables, server counts %d, want %d", got, s.srv.NodeCount(), want)
	}
	// Without a limit the server pages by itself: 900 references never come in one response.
	vars = browseAll(t, c, ua.NewStringNodeID(2, "Line1.M1.Extra"), 0)
	if len(vars) != 450 {
		t.Errorf("browse of Line1.M1.Extra without a limit: %d variables, want 450", len(vars))
	}
}

func TestServer_Read_EveryVariable(t *testing.T) {
	cfg := line.Config{Seed: 7, Machines: 3, InitialParts: 65530}
	s := start(t, cfg, true)
	c := connect(t, s.url)
	for _, n := range []int{0, 37, 1} {
		s.p.Advance(n)
		var tick uint64
		var ms []line.Machine
		s.p.View(func(l *line.Line) {
			tick = l.Tick()
			for k := 1; k <= l.Machines(); k++ {
				ms = append(ms, l.Snapshot(k))
			}
		})
		waitFor(t, 5*time.Second, func() error {
			if got := s.srv.Tick(); got != tick {
				return fmt.Errorf("server at tick %d, want %d", got, tick)
			}
			return nil
		})
		var ids []string
		var want []any
		var types []uint32
		var arrays []bool
		for k := 1; k <= 3; k++ {
			for _, v := range simopcua.Variables() {
				ids = append(ids, simopcua.NodeID(k, v.Name))
				want = append(want, v.Value(k, ms[k-1], tick, 100*time.Millisecond))
				types = append(types, v.DataType)
				arrays = append(arrays, v.Array)
			}
		}
		before := time.Now()
		vals := read(t, c, ua.AttributeIDValue, ids...)
		dts := read(t, c, ua.AttributeIDDataType, ids...)
		ranks := read(t, c, ua.AttributeIDValueRank, ids...)
		dims := read(t, c, ua.AttributeIDArrayDimensions, ids...)
		access := read(t, c, ua.AttributeIDAccessLevel, ids...)
		for i, nid := range ids {
			if vals[i].Status != ua.StatusOK {
				t.Errorf("%s: status %v", nid, vals[i].Status)
				continue
			}
			if got := vals[i].Value.Value(); !equal(got, want[i]) {
				t.Errorf("%s at tick %d: got %T %v, want %T %v", nid, tick, got, got, want[i], want[i])
			}
			if vals[i].SourceTimestamp.IsZero() || vals[i].ServerTimestamp.Before(before.Add(-time.Second)) ||
				vals[i].SourceTimestamp.After(vals[i].ServerTimestamp) {
				t.Errorf("%s: source %v, server %v", nid, vals[i].SourceTimestamp, vals[i].ServerTimestamp)
			}
			if got, ok := dts[i].Value.Value().(*ua.NodeID); !ok || got.Namespace() != 0 || got.IntID() != types[i] {
				t.Errorf("%s: DataType %v, want ns=0;i=%d", nid, dts[i].Value.Value(), types[i])
			}
			rank, wantDims := int32(-1), 0
			if arrays[i] {
				rank, wantDims = 1, 1
			}
			if got := ranks[i].Value.Value(); got != rank {
				t.Errorf("%s: ValueRank %v, want %d", nid, got, rank)
			}
			if got, _ := dims[i].Value.Value().([]uint32); len(got) != wantDims || (arrays[i] && got[0] != 3) {
				t.Errorf("%s: ArrayDimensions %v", nid, dims[i].Value.Value())
			}
			if got := access[i].Value.Value(); got != byte(ua.AccessLevelTypeCurrentRead) {
				t.Errorf("%s: AccessLevel %v, want CurrentRead", nid, got)
			}
		}
	}
}

func equal(got, want any) bool {
	switch w := want.(type) {
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w)
	case []byte:
		g, ok := got.([]byte)
		return ok && string(g) == string(w)
	case []float64:
		g, ok := got.([]float64)
		return ok && fmt.Sprint(g) == fmt.Sprint(w)
	case []int32:
		g, ok := got.([]int32)
		return ok && fmt.Sprint(g) == fmt.Sprint(w)
	}
	return got == want
}

func TestServer_Read_OperationLimits(t *testing.T) {
	s := start(t, line.Config{Seed: 1, Machines: 2, ExtraValues: 600}, true)
	c := connect(t, s.url)
	lim := read(t, c, ua.AttributeIDValue, "i=11705", "i=11707", "i=11710", "i=11714")
	for i, want := range []uint32{simopcua.MaxNodesPerRead, simopcua.MaxNodesPerWrite, simopcua.MaxNodesPerBrowse, simopcua.MaxMonitoredItemsPerCall} {
		if got := lim[i].Value.Value(); got != want {
			t.Errorf("limit %d: got %v, want %d", i, got, want)
		}
	}
	var ids []string
	for k := 1; k <= 2; k++ {
		for i := range 500 {
			ids = append(ids, simopcua.ExtraNodeID(k, i))
		}
	}
	tick := uint32(s.srv.Tick())
	vals := read(t, c, ua.AttributeIDValue, ids...) // 1000 nodes in one request
	for i, v := range vals {
		if want := uint16(i%500)<<8 | uint16(tick&0xff); v.Status != ua.StatusOK || v.Value.Value() != want {
			t.Fatalf("%s: %v %v, want %#x", ids[i], v.Status, v.Value.Value(), want)
		}
	}
	_, err := c.Read(context.Background(), &ua.ReadRequest{NodesToRead: append(make([]*ua.ReadValueID, 0),
		func() []*ua.ReadValueID {
			r := make([]*ua.ReadValueID, simopcua.MaxNodesPerRead+1)
			for i := range r {
				r[i] = &ua.ReadValueID{NodeID: nid(t, "ns=2;s=Line1.M1.Tick"), AttributeID: ua.AttributeIDValue}
			}
			return r
		}()...)})
	if !errors.Is(err, ua.StatusBadTooManyOperations) {
		t.Errorf("read of %d nodes: got %v, want BadTooManyOperations", simopcua.MaxNodesPerRead+1, err)
	}
	// The connection survives the refusal.
	read(t, c, ua.AttributeIDValue, "ns=2;s=Line1.M1.Tick")
}

func TestServer_Endpoints(t *testing.T) {
	s := start(t, line.Config{Seed: 1}, true)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.url, "opc.tcp://"))
	for _, u := range []string{s.url, "opc.tcp://localhost:" + port, s.url + "/", "opc.tcp://plcsim.example:" + port} {
		eps, err := opcua.GetEndpoints(context.Background(), strings.Replace(s.url, "127.0.0.1", "127.0.0.1", 1), opcua.RequestTimeout(5*time.Second))
		_ = eps
		if err != nil {
			t.Fatal(err)
		}
		c, err := opcua.NewClient(s.url, opcua.AutoReconnect(false))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Dial(context.Background()); err != nil {
			t.Fatal(err)
		}
		var resp *ua.GetEndpointsResponse
		err = c.Send(context.Background(), &ua.GetEndpointsRequest{EndpointURL: u}, func(r ua.Response) error {
			resp, _ = r.(*ua.GetEndpointsResponse)
			return nil
		})
		c.Close(context.Background())
		if err != nil || resp == nil || len(resp.Endpoints) != 1 {
			t.Fatalf("GetEndpoints(%s): %v %v", u, resp, err)
		}
		ep := resp.Endpoints[0]
		if ep.SecurityMode != ua.MessageSecurityModeNone || ep.UserIdentityTokens[0].TokenType != ua.UserTokenTypeAnonymous ||
			!strings.EqualFold(ep.EndpointURL, strings.TrimSuffix(u, "/")) {
			t.Errorf("GetEndpoints(%s): %+v", u, ep)
		}
	}
	// A client naming the server localhost connects and reads.
	c := connect(t, "opc.tcp://localhost:"+port)
	read(t, c, ua.AttributeIDValue, "i=2258")
}
