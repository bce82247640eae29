package opcua_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/floorlink/floorlink/simulators/line"
)

// subscribe monitors ids (client handle = index) in a new subscription with a 100 ms interval and
// returns the per-item status and the notification channel.
func subscribe(t testing.TB, c *opcua.Client, ids ...string) ([]ua.StatusCode, chan *opcua.PublishNotificationData) {
	t.Helper()
	_, st, ch := subscribeItems(t, c, ids...)
	return st, ch
}

// subscribeItems is subscribe that also returns the subscription.
func subscribeItems(t testing.TB, c *opcua.Client, ids ...string) (*opcua.Subscription, []ua.StatusCode, chan *opcua.PublishNotificationData) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := make(chan *opcua.PublishNotificationData, 1000)
	sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 100 * time.Millisecond}, ch)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	var items []*ua.MonitoredItemCreateRequest
	for i, s := range ids {
		items = append(items, opcua.NewMonitoredItemCreateRequestWithDefaults(nid(t, s), ua.AttributeIDValue, uint32(i)))
	}
	resp, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth, items...)
	if err != nil {
		t.Fatalf("monitor: %v", err)
	}
	var st []ua.StatusCode
	for _, r := range resp.Results {
		st = append(st, r.StatusCode)
	}
	return sub, st, ch
}

// next returns the next data change notification's items, failing after d.
func next(t testing.TB, ch chan *opcua.PublishNotificationData, d time.Duration) []*ua.MonitoredItemNotification {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case n := <-ch:
			if n.Error != nil {
				t.Fatalf("notification: %v", n.Error)
			}
			if dc, ok := n.Value.(*ua.DataChangeNotification); ok {
				return dc.MonitoredItems
			}
		case <-timeout:
			t.Fatalf("no data change within %v", d)
			return nil
		}
	}
}

func TestServer_Subscribe_Changes(t *testing.T) {
	s := start(t, line.Config{Seed: 1, Step: 100 * time.Millisecond}, false)
	c := connect(t, s.url)
	st, ch := subscribe(t, c, "ns=2;s=Line1.M1.Tick", "i=2258", "ns=2;s=Line1.M2.Types.Int16")
	for i, code := range st {
		if code != ua.StatusOK {
			t.Fatalf("item %d: %v", i, code)
		}
	}
	ticks := map[uint32]bool{}
	var times []time.Time
	constant := 0
	deadline := time.Now().Add(4500 * time.Millisecond)
	for time.Now().Before(deadline) {
		for _, it := range next(t, ch, 3*time.Second) {
			switch it.ClientHandle {
			case 0:
				ticks[it.Value.Value.Value().(uint32)] = true
				if it.Value.SourceTimestamp.IsZero() {
					t.Error("tick without source timestamp")
				}
			case 1:
				times = append(times, it.Value.Value.Value().(time.Time))
			case 2:
				constant++
			}
		}
	}
	if len(ticks) < 10 {
		t.Errorf("%d distinct ticks in 4.5 s at 10 ticks/s", len(ticks))
	}
	// CurrentTime: the initial value, then one change per second.
	if len(times) < 4 {
		t.Fatalf("%d CurrentTime notifications in 4.5 s, want one per second", len(times))
	}
	for i := 2; i < len(times); i++ {
		if d := times[i].Sub(times[i-1]); d < 800*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("CurrentTime notifications %v apart, want about 1s", d)
		}
	}
	if constant != 1 {
		t.Errorf("constant value notified %d times, want once", constant)
	}
}

func TestServer_RemoveNode(t *testing.T) {
	s := start(t, line.Config{Seed: 1}, false)
	c := connect(t, s.url)
	const temp = "ns=2;s=Line1.M1.Temperature"
	st, ch := subscribe(t, c, temp)
	if st[0] != ua.StatusOK {
		t.Fatalf("monitor %s: %v", temp, st[0])
	}
	next(t, ch, 5*time.Second)
	if !s.srv.RemoveNode("Line1.M1.Temperature") || s.srv.RemoveNode("Line1.M9.Nothing") {
		t.Fatal("RemoveNode: wrong report")
	}
	if v := read(t, c, ua.AttributeIDValue, temp)[0]; v.Status != ua.StatusBadNodeIDUnknown {
		t.Errorf("read removed node: %v, want BadNodeIdUnknown", v.Status)
	}
	waitFor(t, 5*time.Second, func() error {
		for _, it := range next(t, ch, 5*time.Second) {
			if it.Value.Status == ua.StatusBadNodeIDUnknown {
				return nil
			}
		}
		return errors.New("monitored item of the removed node still good")
	})
	if st, _ := subscribe(t, c, temp, "ns=2;s=Line1.M1.Pressure"); st[0] != ua.StatusBadNodeIDUnknown || st[1] != ua.StatusOK {
		t.Errorf("monitor removed and present nodes: %v, want [BadNodeIdUnknown Good]", st)
	}
	if vars := browseAll(t, c, ua.NewStringNodeID(2, "Line1.M1"), 0); vars[temp] != "" {
		t.Error("removed node still browsed")
	}
	s.srv.RestoreNode(temp)
	if v := read(t, c, ua.AttributeIDValue, temp)[0]; v.Status != ua.StatusOK {
		t.Errorf("read restored node: %v", v.Status)
	}
}

func TestServer_Restart_SamePort(t *testing.T) {
	s := start(t, line.Config{Seed: 1}, false)
	c := connect(t, s.url)
	read(t, c, ua.AttributeIDValue, "ns=2;s=Line1.M1.Tick")
	_, ch := subscribe(t, c, "i=2258")
	next(t, ch, 5*time.Second)

	s.srv.Stop()
	if s.srv.Serving() {
		t.Error("serving after Stop")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: nid(t, "i=2258"), AttributeID: ua.AttributeIDValue}}}); err == nil {
		t.Error("read over a stopped server's connection succeeded")
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(s.url, "opc.tcp://"), time.Second); err == nil {
		t.Error("stopped server accepts connections")
	}

	begin := time.Now()
	if err := s.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	c2 := connect(t, s.url)
	t.Logf("connected %v after Restart", time.Since(begin).Round(time.Millisecond))
	read(t, c2, ua.AttributeIDValue, "ns=2;s=Line1.M1.Tick")
	if st, ch := subscribe(t, c2, "ns=2;s=Line1.M1.Tick"); st[0] != ua.StatusOK {
		t.Errorf("monitor after restart: %v", st[0])
	} else {
		next(t, ch, 5*time.Second)
	}
	// Restart while serving drops the client too.
	if err := s.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	connect(t, s.url)
}
