package publish_test

// Issue 8, acceptance 3, at the publisher's level: a real Mosquitto, a simulated primary host
// (the test publishes its STATE), records arriving all the time. Once the host goes offline for
// 20 s, once the connection is cut by a loopback proxy: no DATA while the host or the link is
// away, and afterwards every record of the gap arrives as is_historical after the new births.

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorlink/floorlink/agent/publish"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
)

// producer adds a press-1 record every 50 ms, n = 1, 2, ..., until stopped.
type producer struct {
	src  *memSource
	stop chan struct{}
	wg   sync.WaitGroup

	mu sync.Mutex
	at []time.Time // at[n-1]: when record n was stored
}

func startProducer(t *testing.T, src *memSource) *producer {
	pr := &producer{src: src, stop: make(chan struct{})}
	pr.wg.Add(1)
	go func() {
		defer pr.wg.Done()
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for n := 1; ; n++ {
			now := time.Now()
			src.add(spRecord(t, n, now))
			pr.mu.Lock()
			pr.at = append(pr.at, now)
			pr.mu.Unlock()
			select {
			case <-pr.stop:
				return
			case <-tk.C:
			}
		}
	}()
	t.Cleanup(pr.halt)
	return pr
}

func (pr *producer) halt() {
	select {
	case <-pr.stop:
	default:
		close(pr.stop)
	}
	pr.wg.Wait()
}

// between returns the n of the records stored in [from, to].
func (pr *producer) between(from, to time.Time) []uint64 {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var out []uint64
	for i, at := range pr.at {
		if !at.Before(from) && !at.After(to) {
			out = append(out, uint64(i+1))
		}
	}
	return out
}

func (pr *producer) count() int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return len(pr.at)
}

// hostClient is the simulated primary host: it publishes its STATE, retained, at QoS 1.
func hostClient(t *testing.T, url string) func(online bool) {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("scada").SetCleanSession(true).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("host connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return func(online bool) {
		tok := c.Publish("spBv1.0/STATE/scada", 1, true, stateJSON(online, time.Now().UnixMilli()))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish STATE: %v", tok.Error())
		}
	}
}

// spReceived decodes what a subscriber received on spBv1.0/#, in arrival order.
func spReceived(t *testing.T, msgs []mqtttest.Message) []spMsg {
	var out []spMsg
	for i, m := range msgs {
		if !strings.HasPrefix(m.Topic, "spBv1.0/"+spGroup+"/") {
			continue
		}
		parts := strings.Split(m.Topic, "/")
		sm := spMsg{i: i, ev: mqtttest.Event{Topic: m.Topic, QoS: m.QoS, Retain: m.Retained}, verb: parts[2], pl: decodeSparkplug(t, m.Payload)}
		if len(parts) > 4 {
			sm.device = parts[4]
		}
		out = append(out, sm)
	}
	return out
}

// checkGap checks the messages around an outage that began at from and ended at to: after the
// first NDEATH following from, no DATA until an NBIRTH; that NBIRTH is followed by the DBIRTHs;
// every record stored during [from, to] arrives after it, historical; and all records 1..n
// arrive at least once.
func checkGap(t *testing.T, msgs []spMsg, pr *producer, from, to time.Time, n int) {
	t.Helper()
	death := -1
	for i, m := range msgs {
		if m.verb == "NDEATH" && i > 0 {
			death = i
			break
		}
	}
	if death < 0 {
		t.Fatal("no NDEATH around the outage")
	}
	birth := -1
	for i := death + 1; i < len(msgs); i++ {
		if isData(msgs[i].verb) {
			t.Fatalf("%v between the NDEATH and the next NBIRTH", msgs[i])
		}
		if msgs[i].verb == "NBIRTH" {
			birth = i
			break
		}
	}
	if birth < 0 || birth+2 >= len(msgs) || msgs[birth+1].verb != "DBIRTH" || msgs[birth+2].verb != "DBIRTH" {
		t.Fatalf("no NBIRTH and DBIRTHs after the NDEATH")
	}
	after := map[uint64]bool{}
	ns, hist := nValues(msgs[birth:])
	for i, n := range ns {
		if hist[i] {
			after[n] = true
		}
	}
	gap := pr.between(from, to)
	if len(gap) == 0 {
		t.Fatal("no record stored during the outage")
	}
	for _, n := range gap {
		if !after[n] {
			t.Fatalf("record n=%d of the outage did not arrive as historical after the new births", n)
		}
	}
	all, _ := nValues(msgs)
	seen := map[uint64]bool{}
	for _, n := range all {
		seen[n] = true
	}
	for i := 1; i <= n; i++ {
		if !seen[uint64(i)] {
			t.Fatalf("record n=%d never arrived", i)
		}
	}
	t.Logf("%d records, %d of them stored during the outage, replayed as historical after the births (%d DATA values in all, %d duplicates)",
		n, len(gap), len(all), len(all)-n)
}

func waitAllN(t *testing.T, sub *mqtttest.Subscriber, n int) {
	t.Helper()
	sub.WaitFor(t, 30*time.Second, func(msgs []mqtttest.Message) error {
		all, _ := nValues(spReceived(t, msgs))
		seen := map[uint64]bool{}
		for _, v := range all {
			seen[v] = true
		}
		for i := 1; i <= n; i++ {
			if !seen[uint64(i)] {
				return fmt.Errorf("record n=%d not arrived yet", i)
			}
		}
		return nil
	})
}

func waitNDEATH(t *testing.T, sub *mqtttest.Subscriber, after string) {
	t.Helper()
	sub.WaitFor(t, 10*time.Second, func(msgs []mqtttest.Message) error {
		if count(spReceived(t, msgs), "NDEATH") == 0 {
			return fmt.Errorf("no NDEATH after %s", after)
		}
		return nil
	})
}

// finish waits for everything produced so far, stops producing, waits for the rest, stops the
// publisher and checks the outage [from, to].
func finish(t *testing.T, sub *mqtttest.Subscriber, pr *producer, stop func() error, from, to time.Time) {
	t.Helper()
	waitAllN(t, sub, pr.count())
	pr.halt()
	n := pr.count()
	waitAllN(t, sub, n)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkGap(t, spReceived(t, sub.Messages()), pr, from, to, n)
}

func TestSparkplug_Mosquitto_HostOffline20s(t *testing.T) {
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	sub := mqtttest.Subscribe(t, broker.URL(), "spBv1.0/"+spGroup+"/#")
	setHost := hostClient(t, broker.URL())
	setHost(true)
	src := newMemSource()
	o := sparkplugOptions(broker.URL())
	o.Sparkplug.PrimaryHostID = "scada"
	o.Sparkplug.HoldBack = 2 * time.Second
	p, err := publish.New(src, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := startPublisher(t, p)
	pr := startProducer(t, src)
	waitAllN(t, sub, 10)

	from := time.Now()
	setHost(false)
	waitNDEATH(t, sub, "the host went offline")
	<-time.After(20 * time.Second) // the outage the issue asks for: the host stays away 20 s
	to := time.Now()
	setHost(true)
	finish(t, sub, pr, stop, from, to)
}

func TestSparkplug_Mosquitto_ProxyCut(t *testing.T) {
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	proxy := mqtttest.StartProxy(t, broker.Addr())
	sub := mqtttest.Subscribe(t, broker.URL(), "spBv1.0/"+spGroup+"/#")
	src := newMemSource()
	o := sparkplugOptions(proxy.URL())
	o.Sparkplug.HoldBack = 2 * time.Second
	o.KeepAlive = 2 * time.Second
	p, err := publish.New(src, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := startPublisher(t, p)
	pr := startProducer(t, src)
	waitAllN(t, sub, 10)

	from := time.Now()
	proxy.SetRefuse(true)
	proxy.Cut()
	waitNDEATH(t, sub, "the cut (the Will)")
	<-time.After(3 * time.Second) // records pile up while the link is down
	to := time.Now()
	proxy.SetRefuse(false)
	finish(t, sub, pr, stop, from, to)
}
