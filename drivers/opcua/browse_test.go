package opcua

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/floorlink/floorlink/drivers"
	"github.com/floorlink/floorlink/drivers/opcua/internal/uatest"
)

// TestBrowse_NodeOPCUA_RoundTrip browses the node-opcua server's Line1 folder, checks every
// static variable's type and value, then feeds the result back as a device's tags (as the CLI's
// YAML skeleton does) and checks that polling delivers the same values with the same types.
func TestBrowse_NodeOPCUA_RoundTrip(t *testing.T) {
	srv := uatest.Start(t, uatest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := Browse(ctx, srv.Endpoint, drivers.OPCUAOptions{}, fmt.Sprintf("ns=%d;s=Line1", uatest.Namespace), 0)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]Node{}
	for _, n := range nodes {
		byPath[n.Path] = n
	}
	for _, v := range uatest.Vars() {
		n, ok := byPath["Types/"+v.Name]
		if !ok {
			t.Errorf("Types/%s not browsed; got %d nodes", v.Name, len(nodes))
			continue
		}
		if string(n.DataType) != v.Type || n.Value.String() != v.Value || n.AccessLevel != "read" {
			t.Errorf("%s: %s (%s) %s access %s, want %s %s access read", v.Name, n.DataType, n.UAType, n.Value, n.AccessLevel, v.Type, v.Value)
		}
	}
	if n := byPath["Types/Enum"]; n.UAType != "MessageSecurityMode" {
		t.Errorf("Enum's UA type %q, want MessageSecurityMode", n.UAType)
	}
	if n := byPath["Types/DoubleArray"]; !n.Array {
		t.Errorf("DoubleArray not an array")
	}

	dev := drivers.Device{Name: "browsed", Protocol: Protocol, Address: srv.Endpoint, PollInterval: 200 * time.Millisecond}
	var want []Node
	for _, n := range nodes {
		if n.DataType == "" {
			continue
		}
		dev.Tags = append(dev.Tags, drivers.Tag{Name: n.Path, Address: n.NodeID, Type: n.DataType})
		want = append(want, n)
	}
	d, err := New(dev, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	run(t, d, c)
	waitFor(t, 20*time.Second, func() error {
		for i, n := range want {
			if n.Path == "Counter" {
				continue // changes every 100 ms
			}
			if err := goodValue(c, i, n.Value.String()); err != nil {
				return fmt.Errorf("%s: %w", n.Path, err)
			}
		}
		return nil
	})
}
