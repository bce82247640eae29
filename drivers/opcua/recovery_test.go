package opcua

import (
	"fmt"
	"testing"
	"time"

	"github.com/floorlink/floorlink/drivers"
	"github.com/floorlink/floorlink/drivers/opcua/internal/uatest"
)

// TestDriver_NodeOPCUA_Recovery is issue 7's acceptance 3 at driver level, with 3
// subscriptions: the server is killed and restarted twice (the second time without one node)
// and frozen once (SIGSTOP, SIGCONT). Each time data resumes within MaxBackoff + 5 s, every
// remaining tag delivers again, the removed one is bad with its status, and a value changed
// during the outage arrives. A quiet plant (no value changes; the heartbeat alone) causes no
// reconnect over a quiet period several times the watchdog's limit.
func TestDriver_NodeOPCUA_Recovery(t *testing.T) {
	const maxBackoff = 2 * time.Second
	srv := uatest.Start(t, uatest.Options{Gen: 1})
	dev := typesDevice(srv.Endpoint, ModeSubscribe)
	dev.Timeout = 2 * time.Second
	// No Counter: between the outages nothing changes but the heartbeat.
	counter := len(uatest.Vars())
	dev.Tags[counter] = drivers.Tag{Name: "Gen", Address: fmt.Sprintf("ns=%d;s=Line1.Gen", uatest.Namespace), Type: drivers.TypeString}
	static, gen := counter+1, counter
	d, err := New(dev, Options{MinBackoff: 200 * time.Millisecond, MaxBackoff: maxBackoff, HeartbeatTimeout: 3 * time.Second, ItemsPerSubscription: 7}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := (len(dev.Tags) + 6) / 7; n < 3 {
		t.Fatalf("%d subscriptions, want at least 3", n)
	}
	c := &collector{}
	run(t, d, c)

	removed := -1
	// resumed waits until every tag but the removed one delivered a good sample read after from,
	// and the values that changed during the outage arrived.
	resumed := func(what string, from time.Time, want map[int]string) {
		t.Helper()
		limit := maxBackoff + 5*time.Second
		waitFor(t, limit, func() error {
			for i := range dev.Tags {
				if i == removed {
					continue
				}
				ss := c.since(i, from)
				if len(ss) == 0 || ss[len(ss)-1].Quality != drivers.QualityGood {
					return fmt.Errorf("%s: tag %s has no good sample since %v", what, dev.Tags[i].Name, from.Format(time.TimeOnly))
				}
			}
			for i, v := range want {
				if err := goodValue(c, i, v); err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
			}
			return nil
		})
		if !from.IsZero() {
			t.Logf("%s: data resumed %v after the server was back", what, time.Since(from).Round(time.Millisecond))
		}
	}

	resumed("start", time.Time{}, map[int]string{gen: `"1"`})
	srv.Set(7)
	waitFor(t, 3*time.Second, func() error { return goodValue(c, static, "7") })

	t.Run("quiet", func(t *testing.T) {
		before := len(c.eventsOf(drivers.EventConnected)) + len(c.eventsOf(drivers.EventDisconnected))
		<-time.After(12 * time.Second) // the test's input: 4 × the heartbeat limit without a change
		if after := len(c.eventsOf(drivers.EventConnected)) + len(c.eventsOf(drivers.EventDisconnected)); after != before {
			t.Errorf("%d connection events during a quiet period, want none", after-before)
		}
	})

	srv.Restart(uatest.Options{Gen: 2})
	resumed("restart 1", time.Now(), map[int]string{gen: `"2"`, static: "0"})

	srv.Restart(uatest.Options{Gen: 3, Omit: []string{"Int32"}})
	removed = 5 // Types.Int32
	resumed("restart 2 without Int32", time.Now(), map[int]string{gen: `"3"`})
	waitFor(t, 3*time.Second, func() error {
		s, ok := c.last(removed)
		if !ok || s.Quality != drivers.QualityBad || s.Reason != "BadNodeIdUnknown" {
			return fmt.Errorf("removed tag: %+v, want bad BadNodeIdUnknown", s)
		}
		return nil
	})

	downs := len(c.eventsOf(drivers.EventDisconnected))
	srv.Stop()
	waitFor(t, 15*time.Second, func() error {
		if len(c.eventsOf(drivers.EventDisconnected)) == downs {
			return fmt.Errorf("frozen server not detected")
		}
		return nil
	})
	srv.Set(99) // read by the server when it resumes: a change during the outage
	srv.Cont()
	resumed("freeze", time.Now(), map[int]string{static: "99", gen: `"3"`})
	if n := len(c.eventsOf(drivers.EventConnected)); n != 4 {
		t.Errorf("%d connected events, want 4 (start, 2 restarts, freeze)", n)
	}
}
