package e2e_test

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorlink/floorlink/agent/publish/mqtttest"
)

// TestEndToEnd_Sparkplug_HostOffline20s runs the agent as an edge node that serves a primary
// host, simulated by the test's STATE messages. The host goes offline for 20 s: the node
// leaves (NDEATH) and publishes no DATA while the host is away; when the host is back, new
// births come first and every tick plcsim served in the gap arrives, as is_historical.
func TestEndToEnd_Sparkplug_HostOffline20s(t *testing.T) {
	s := startStack(t, stackOptions{})
	cfg, err := os.ReadFile(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	sp := strings.Replace(string(cfg), "  shutdown_grace: 2s\n",
		"  shutdown_grace: 2s\n  format: sparkplug\n  group_id: plant1\n  primary_host_id: scada\n  hold_back: 3s\n", 1)
	os.WriteFile(s.cfgPath, []byte(sp), 0o644)
	sub := mqtttest.Subscribe(t, s.broker.URL(), "spBv1.0/#")
	host := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(s.broker.URL()).SetClientID("scada").SetAutoReconnect(false))
	if tok := host.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("host connect: %v", tok.Error())
	}
	t.Cleanup(func() { host.Disconnect(100) })
	setHost := func(online bool) {
		t.Helper()
		payload := fmt.Sprintf(`{"online":%t,"timestamp":%d}`, online, time.Now().UnixMilli())
		if tok := host.Publish("spBv1.0/STATE/scada", 1, true, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish STATE: %v", tok.Error())
		}
	}
	setHost(true)
	a := startAgent(t, s.cfgPath)
	count := func(msgs []spMsg, verb string, after time.Time) int {
		n := 0
		for _, m := range msgs {
			if m.verb == verb && m.at.After(after) {
				n++
			}
		}
		return n
	}
	sub.WaitFor(t, 30*time.Second, func(msgs []mqtttest.Message) error {
		if n := count(sparkplugMessages(t, msgs), "DDATA", time.Time{}); n < 30 {
			return fmt.Errorf("%d DDATA", n)
		}
		return nil
	})

	away := time.Now()
	setHost(false)
	var left time.Time // when the node's NDEATH arrived
	sub.WaitFor(t, 10*time.Second, func(msgs []mqtttest.Message) error {
		for _, m := range sparkplugMessages(t, msgs) {
			if m.verb == "NDEATH" && m.at.After(away) {
				left = m.at
				return nil
			}
		}
		return fmt.Errorf("no NDEATH since the host went offline")
	})
	<-time.After(20 * time.Second) // the host stays away 20 s: the outage under test
	back := time.Now()
	setHost(true)
	sub.WaitFor(t, 30*time.Second, func(msgs []mqtttest.Message) error {
		if n := count(sparkplugMessages(t, msgs), "DDATA", back.Add(2*time.Second)); n < 10 {
			return fmt.Errorf("%d DDATA since the host came back", n)
		}
		return nil
	})
	if code := a.Stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}

	msgs := sparkplugMessages(t, sub.Messages())
	if n := count(msgs, "DDATA", left) - count(msgs, "DDATA", back); n != 0 {
		t.Errorf("%d DDATA published while the host was offline", n)
	}
	// After the host's return: an NBIRTH before any DATA, then the gap as historical.
	alias := map[string]map[uint64]string{}
	ticks := map[string]map[uint32]bool{}
	bornAgain, historical := false, 0
	for _, m := range msgs {
		switch m.verb {
		case "NBIRTH":
			if m.at.After(back) {
				bornAgain = true
			}
		case "DBIRTH":
			alias[m.device] = map[uint64]string{}
			for _, mt := range m.p.Metrics {
				alias[m.device][mt.GetAlias()] = mt.GetName()
			}
		case "DDATA":
			if m.at.After(back) && !bornAgain {
				t.Fatalf("DDATA of %s after the host's return before the new NBIRTH", m.device)
			}
			historical += recordTicks(m, alias, ticks, back)
		}
	}
	if historical < 3*150 { // 20 s at 100 ms polls, three machines, give or take the edges
		t.Errorf("%d historical ticks after the host's return, want the 20 s of the outage (~600)", historical)
	}
	for m := 1; m <= 3; m++ {
		dev := fmt.Sprintf("m%d", m)
		if missing, served := missingTicks(s.sim, m, ticks[dev]); len(missing) > 0 {
			t.Errorf("device %s: %d of %d served ticks never arrived, first %+v", dev, len(missing), served, missing[0])
		}
	}
	t.Logf("%d messages; NDEATH %v after the host left; %d historical ticks after its return", len(msgs), left.Sub(away).Round(time.Millisecond), historical)
}
