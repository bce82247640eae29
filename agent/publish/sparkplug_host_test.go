package publish_test

// Conformance with a primary host (P1-P7, the TCK's PrimaryHostTest script, with windows of
// 1.5 s) and Floorlink's store and forward around it (F1-F2).

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent/publish"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
)

func TestSparkplugConformance_PrimaryHost(t *testing.T) {
	const quiet = 1500 * time.Millisecond
	h := mqtttest.StartSpyBroker(t)
	src := newMemSource()
	o := sparkplugOptions(h.URL())
	o.Sparkplug.PrimaryHostID = "scada"
	o.Sparkplug.HoldBack = time.Hour // nothing confirmed before the host left may be forgotten
	p, err := publish.New(src, o, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	state := "spBv1.0/STATE/scada"
	startPublisher(t, p)
	noneAfter := func(mark int, verb string) func([]mqtttest.Event) error {
		return func(evs []mqtttest.Event) error {
			if n := count(spMessages(t, evs, mark), verb); n > 0 {
				return fmt.Errorf("%d %s", n, verb)
			}
			return nil
		}
	}
	waitFor := func(mark int, verb string, n int) {
		t.Helper()
		h.WaitFor(t, 10*time.Second, func(evs []mqtttest.Event) error {
			if got := count(spMessages(t, evs, mark), verb); got < n {
				return fmt.Errorf("%d %s, want %d", got, verb, n)
			}
			return nil
		})
	}
	subscribedState := func(mark int) func([]mqtttest.Event) error {
		return func(evs []mqtttest.Event) error {
			for _, e := range evs[mark:] {
				if e.Kind == mqtttest.EventSubscribe && e.Client == spEdge && slices.Contains(e.SubscriptionFilters, state) {
					if q := e.SubscriptionQoS[slices.Index(e.SubscriptionFilters, state)]; q != 1 {
						return fmt.Errorf("STATE subscribed at QoS %d", q)
					}
					return nil
				}
			}
			return errors.New("no SUBSCRIBE to " + state)
		}
	}
	h.WaitFor(t, 10*time.Second, subscribedState(0))

	t.Run("P1_other_host_online_no_births", func(t *testing.T) {
		mark := h.Len()
		h.Publish("spBv1.0/STATE/other", stateJSON(true, time.Now().UnixMilli()), true, 1)
		h.Never(t, quiet, noneAfter(mark, "NBIRTH"))
	})
	t0 := time.Now().UnixMilli()
	t.Run("P2_host_offline_no_births", func(t *testing.T) {
		mark := h.Len()
		h.Publish(state, stateJSON(false, t0), true, 1)
		h.Never(t, quiet, noneAfter(mark, "NBIRTH"))
	})
	t1 := t0 + 1000
	t.Run("P3_host_online_births", func(t *testing.T) {
		mark := h.Len()
		h.Publish(state, stateJSON(true, t1), true, 1)
		waitFor(mark, "NBIRTH", 1)
		waitFor(mark, "DBIRTH", 2)
	})
	for i := 1; i <= 10; i++ {
		src.add(spRecord(t, i, time.Now()))
	}
	waitFor(0, "DDATA", 10)
	t.Run("P4_stale_offline_ignored", func(t *testing.T) {
		mark := h.Len()
		h.Publish(state, stateJSON(false, t1-500), true, 1)
		h.Never(t, quiet, noneAfter(mark, "NDEATH"))
	})
	t2 := t1 + 1000
	markOffline := h.Len()
	t.Run("P5_host_offline_ndeath_disconnect_reconnect_no_births", func(t *testing.T) {
		h.Publish(state, stateJSON(false, t2), true, 1)
		h.WaitFor(t, 10*time.Second, func(evs []mqtttest.Event) error {
			var ndeath, disc, conn = -1, -1, -1
			for i, e := range evs[markOffline:] {
				switch {
				case e.Kind == mqtttest.EventPublish && e.Topic == spTopic("NDEATH") && ndeath < 0:
					ndeath = i
				case e.Kind == mqtttest.EventDisconnect && ndeath >= 0 && disc < 0:
					disc = i
				case e.Kind == mqtttest.EventConnect && disc >= 0:
					conn = i
				}
			}
			if ndeath < 0 || disc < 0 || conn < 0 {
				return fmt.Errorf("NDEATH %d, DISCONNECT %d, CONNECT %d after the offline STATE", ndeath, disc, conn)
			}
			return nil
		})
		h.WaitFor(t, 10*time.Second, subscribedState(markOffline))
		h.Never(t, quiet, noneAfter(markOffline, "NBIRTH"))
	})
	// F1: records of the host's absence stay in the buffer; no DATA goes out.
	for i := 11; i <= 20; i++ {
		src.add(spRecord(t, i, time.Now()))
	}
	t.Run("P6_older_online_ignored", func(t *testing.T) {
		mark := h.Len()
		h.Publish(state, stateJSON(true, t2-500), true, 1)
		h.Never(t, quiet, noneAfter(mark, "NBIRTH"))
	})
	t.Run("F1_no_data_while_host_away", func(t *testing.T) {
		ms := spMessages(t, h.Events(), markOffline)
		for _, m := range ms {
			if isData(m.verb) {
				t.Errorf("%v while the host was offline", m)
			}
		}
		if c := src.Cursor(); c >= 11 {
			t.Errorf("cursor %d passed records stored while the host was away", c)
		}
	})
	markBack := h.Len()
	t.Run("P7_host_back_births", func(t *testing.T) {
		h.Publish(state, stateJSON(true, t2+1000), true, 1)
		waitFor(markBack, "NBIRTH", 1)
		waitFor(markBack, "DBIRTH", 2)
	})
	t.Run("F2_backlog_historical_after_births_same_seq_stream", func(t *testing.T) {
		h.WaitFor(t, 10*time.Second, func(evs []mqtttest.Event) error {
			ns, _ := nValues(spMessages(t, evs, markBack))
			for i := 11; i <= 20; i++ {
				if !slices.Contains(ns, uint64(i)) {
					return fmt.Errorf("n=%d not replayed yet (got %v)", i, ns)
				}
			}
			return nil
		})
		ms := spMessages(t, h.Events(), markBack)
		if len(ms) < 3 || ms[0].verb != "NBIRTH" || ms[1].verb != "DBIRTH" || ms[2].verb != "DBIRTH" {
			t.Fatalf("after the host came back: %v, want the births first", ms[:min(3, len(ms))])
		}
		for i, m := range ms {
			if m.pl.GetSeq() != uint64(i%256) {
				t.Fatalf("%v: seq %d, want %d (one stream from the NBIRTH)", m, m.pl.GetSeq(), i%256)
			}
		}
		ns, hist := nValues(ms)
		for i, n := range ns {
			if !hist[i] {
				t.Errorf("replayed n=%d not historical", n)
			}
		}
		// With the hold-back of an hour, what went out before the host left is replayed too.
		for i := 1; i <= 10; i++ {
			if !slices.Contains(ns, uint64(i)) {
				t.Errorf("n=%d, confirmed before the host left, was not replayed", i)
			}
		}
		t.Logf("replayed %v after the births", ns)
	})
}
