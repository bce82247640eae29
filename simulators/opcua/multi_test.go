package opcua_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/floorlink/floorlink/simulators/line"
)

// subscribeSub is subscribe that returns the subscription; every item must be Good.
func subscribeSub(t testing.TB, c *opcua.Client, ids ...string) (*opcua.Subscription, chan *opcua.PublishNotificationData) {
	t.Helper()
	sub, st, ch := subscribeItems(t, c, ids...)
	for i, code := range st {
		if code != ua.StatusOK {
			t.Fatalf("monitor %s: %v", ids[i], code)
		}
	}
	return sub, ch
}

// clientStats is what one client of TestServer_ManyClients_Subscriptions saw.
type clientStats struct {
	ticks, times int       // tick and CurrentTime notifications
	reads        int       // successful reads
	lastTick     time.Time // when the last tick notification arrived
	lastTime     time.Time // when the last CurrentTime notification arrived
	err          error     // the first failure
}

// TestServer_ManyClients_Subscriptions: three clients, each with its own session and a
// subscription (CurrentTime and a tick), created one after another while the earlier ones are
// already publishing, with a fourth client's subscription created and deleted in between; for
// 10 s every client keeps receiving both items and answers Reads, and its subscription is still
// its own. gopcua numbers subscriptions len(subscriptions)+1: once one was deleted the next
// client got a live subscription's id, took it over, and the first client's next request on it
// was refused, which makes gopcua's client drop its channel ("unexpected EOF" on the server).
func TestServer_ManyClients_Subscriptions(t *testing.T) {
	s := start(t, line.Config{Seed: 1, Step: 100 * time.Millisecond}, false)
	const clients = 3
	const watch = 10 * time.Second

	cs := make([]*opcua.Client, clients)
	subs := make([]*opcua.Subscription, clients)
	chs := make([]chan *opcua.PublishNotificationData, clients)
	subIDs := map[uint32]int{}
	var passing *opcua.Subscription
	for i := range clients {
		cs[i] = connect(t, s.url)
		sub, ch := subscribeSub(t, cs[i], "i=2258", "ns=2;s=Line1.M1.Tick")
		if j, dup := subIDs[sub.SubscriptionID]; dup {
			t.Errorf("client %d got subscription id %d, already client %d's", i, sub.SubscriptionID, j)
		}
		subIDs[sub.SubscriptionID] = i
		subs[i], chs[i] = sub, ch
		switch i {
		case 0:
			// A passing client's subscription, between the first two and deleted after the
			// second: its id is the one gopcua hands out again.
			passing, _ = subscribeSub(t, connect(t, s.url), "i=2258")
		case 1:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := passing.Cancel(ctx); err != nil {
				t.Fatalf("delete the passing subscription: %v", err)
			}
			cancel()
		}
		// The earlier clients must survive this one's subscription: each gets a data change.
		for j := 0; j <= i; j++ {
			next(t, chs[j], 5*time.Second)
		}
	}

	begin := time.Now()
	stats := make([]clientStats, clients)
	ctx, cancel := context.WithTimeout(context.Background(), watch+5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(2)
		st := &stats[i]
		var mu sync.Mutex
		fail := func(err error) {
			mu.Lock()
			if st.err == nil {
				st.err = err
			}
			mu.Unlock()
		}
		go func() { // notifications
			defer wg.Done()
			end := time.After(watch) // the test's input: watch for 10 s
			for {
				select {
				case <-end:
					return
				case n := <-chs[i]:
					if n.Error != nil {
						fail(fmt.Errorf("notification: %w", n.Error))
						return
					}
					dc, ok := n.Value.(*ua.DataChangeNotification)
					if !ok {
						continue
					}
					now := time.Now()
					mu.Lock()
					for _, it := range dc.MonitoredItems {
						switch it.ClientHandle {
						case 0:
							st.times++
							st.lastTime = now
						case 1:
							st.ticks++
							st.lastTick = now
						}
					}
					mu.Unlock()
				}
			}
		}()
		go func() { // reads, every 200 ms
			defer wg.Done()
			tk := time.NewTicker(200 * time.Millisecond)
			defer tk.Stop()
			end := time.After(watch)
			for {
				select {
				case <-end:
					return
				case <-tk.C:
				}
				rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
				resp, err := cs[i].Read(rctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{
					{NodeID: nid(t, "ns=2;s=Line1.M1.Tick"), AttributeID: ua.AttributeIDValue},
				}})
				rcancel()
				if err == nil && (len(resp.Results) != 1 || resp.Results[0].Status != ua.StatusOK) {
					err = fmt.Errorf("read results %v", resp.Results)
				}
				if err != nil {
					fail(fmt.Errorf("read: %w", err))
					return
				}
				mu.Lock()
				st.reads++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	end := begin.Add(watch)
	for i, st := range stats {
		t.Logf("client %d: %d tick and %d CurrentTime notifications, %d reads", i, st.ticks, st.times, st.reads)
		if st.err != nil {
			t.Errorf("client %d: %v", i, st.err)
			continue
		}
		// Ticks change 10 times a second and are published every 100 ms; CurrentTime once a second.
		if st.ticks < 50 || end.Sub(st.lastTick) > 2*time.Second {
			t.Errorf("client %d: %d tick notifications in %v, the last %v before the end", i, st.ticks, watch, end.Sub(st.lastTick))
		}
		if st.times < 8 || end.Sub(st.lastTime) > 2500*time.Millisecond {
			t.Errorf("client %d: %d CurrentTime notifications in %v, the last %v before the end", i, st.times, watch, end.Sub(st.lastTime))
		}
		if st.reads < 30 {
			t.Errorf("client %d: %d reads in %v", i, st.reads, watch)
		}
	}
	// Every subscription is still its client's: it takes one more item.
	for i, sub := range subs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth,
			opcua.NewMonitoredItemCreateRequestWithDefaults(nid(t, "ns=2;s=Line1.M2.Tick"), ua.AttributeIDValue, 2))
		cancel()
		if err != nil {
			t.Errorf("client %d: monitor one more item in subscription %d: %v", i, sub.SubscriptionID, err)
		} else if res.Results[0].StatusCode != ua.StatusOK {
			t.Errorf("client %d: monitor one more item in subscription %d: %v", i, sub.SubscriptionID, res.Results[0].StatusCode)
		}
	}
}
