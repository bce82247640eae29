package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/simulators/simtest"
)

// reloadConfig is a gateway with two machines on two connections (the same plcsim reached as
// 127.0.0.1 and as localhost), m2's tags given.
func reloadConfig(dataDir, brokerURL, modbusAddr, format, m2Tags string) string {
	_, port, _ := strings.Cut(modbusAddr, ":")
	sp := ""
	if format == "sparkplug" {
		sp = "  format: sparkplug\n  group_id: plant1\n  hold_back: 1s\n"
	}
	return fmt.Sprintf(`gateway: {id: gw-e2e, site: test-site, area: body, line: line-1, data_dir: %q}
mqtt:
  brokers: [%q]
  reconnect_min: 100ms
  reconnect_max: 500ms
  shutdown_grace: 2s
%shttp: {listen: ""}
devices:
  - name: m1
    protocol: modbus-tcp
    address: "127.0.0.1:%s"
    unit_id: 1
    poll_interval: 100ms
    tags:
      - {name: state, address: "40001", type: uint16}
      - {name: tick, address: "40002", type: uint32}
  - name: m2
    protocol: modbus-tcp
    address: "localhost:%s"
    unit_id: 2
    poll_interval: 100ms
    tags:
%s`, dataDir, brokerURL, sp, port, port, m2Tags)
}

const (
	m2Tags    = "      - {name: tick, address: \"40002\", type: uint32}\n"
	m2TagsNew = m2Tags + "      - {name: parts_total, address: \"40004\", type: uint32}\n"
	// A type the driver refuses.
	m2TagsBroken = m2TagsNew + "      - {name: broken, address: \"40006\", type: flaot32}\n"
)

// TestReload adds a tag to one device by SIGHUP, then writes a broken file: the new tag flows,
// the other device keeps polling without a missed cycle (its connection is untouched), the
// broken file is refused with its file:line:col in the log, and the agent runs on.
func TestReload(t *testing.T) {
	for _, format := range []string{"json", "sparkplug"} {
		t.Run(format, func(t *testing.T) { testReload(t, format) })
	}
}

func testReload(t *testing.T, format string) {
	dir := t.TempDir()
	sim := simtest.Start(t, simtest.Options{Line: simtest.LineConfig{Seed: 7}})
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	sub := mqtttest.Subscribe(t, broker.URL(), "#")
	cfgPath := filepath.Join(dir, "floorlink.yaml")
	write := func(tags string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(reloadConfig(filepath.Join(dir, "data"), broker.URL(), sim.ModbusAddr(), format, tags)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(m2Tags)
	agent := startAgent(t, cfgPath)

	// m2's values by tag, per message, and m1's read times, from either format.
	type m2Msg struct {
		at     time.Time
		fields map[string]bool
	}
	decode := func(msgs []mqtttest.Message) (m1 []time.Time, m2 []m2Msg, aliases map[string]map[string]uint64, births int) {
		aliases = map[string]map[string]uint64{} // per NBIRTH seen last: device → metric → alias
		if format == "json" {
			for _, r := range records(t, msgs) {
				if r.Kind != "telemetry" {
					continue
				}
				switch r.Source {
				case "m1":
					m1 = append(m1, r.TS)
				case "m2":
					f := map[string]bool{}
					for k := range r.Values {
						f[k] = true
					}
					m2 = append(m2, m2Msg{r.TS, f})
				}
			}
			return m1, m2, aliases, 0
		}
		names := map[string]map[uint64]string{}
		for _, m := range sparkplugMessages(t, msgs) {
			switch m.verb {
			case "NBIRTH":
				births++
			case "DBIRTH":
				names[m.device] = map[uint64]string{}
				aliases[m.device] = map[string]uint64{}
				for _, mt := range m.p.Metrics {
					names[m.device][mt.GetAlias()] = mt.GetName()
					aliases[m.device][mt.GetName()] = mt.GetAlias()
				}
			case "DDATA":
				at := time.UnixMilli(int64(m.p.GetTimestamp()))
				f := map[string]bool{}
				for _, mt := range m.p.Metrics {
					if mt.Timestamp != nil {
						at = time.UnixMilli(int64(mt.GetTimestamp()))
					}
					f[names[m.device][mt.GetAlias()]] = true
				}
				switch m.device {
				case "m1":
					if f["tick"] {
						m1 = append(m1, at)
					}
				case "m2":
					m2 = append(m2, m2Msg{at, f})
				}
			}
		}
		return m1, m2, aliases, births
	}
	sub.WaitFor(t, 30*time.Second, func(msgs []mqtttest.Message) error {
		if _, m2, _, _ := decode(msgs); len(m2) < 10 {
			return fmt.Errorf("%d m2 messages", len(m2))
		}
		return nil
	})
	_, _, aliasesBefore, _ := decode(sub.Messages())

	write(m2TagsNew)
	reloaded := time.Now()
	if err := syscall.Kill(agent.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	sub.WaitFor(t, 30*time.Second, func(msgs []mqtttest.Message) error {
		_, m2, _, _ := decode(msgs)
		n := 0
		for _, m := range m2 {
			if m.fields["parts_total"] {
				n++
			}
		}
		if n < 10 {
			return fmt.Errorf("%d m2 messages with the new tag", n)
		}
		return nil
	})

	write(m2TagsBroken)
	if err := syscall.Kill(agent.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(cfgPath)
	before, _, _ := strings.Cut(string(text), "flaot32")
	at := fmt.Sprintf("%s:%d:", cfgPath, strings.Count(before, "\n")+1)
	waitFor(t, 20*time.Second, func() error {
		if log := agent.Log(); !strings.Contains(log, "reload refused: "+at) {
			return fmt.Errorf("no refusal naming %s in the log yet", at)
		}
		return nil
	})
	count := len(sub.Messages())
	sub.WaitFor(t, 20*time.Second, func(msgs []mqtttest.Message) error {
		if len(msgs) < count+20 {
			return fmt.Errorf("%d messages since the broken file", len(msgs)-count)
		}
		return nil
	})
	if code := agent.Stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}

	m1, m2, aliasesAfter, births := decode(sub.Messages())
	sort.Slice(m1, func(i, j int) bool { return m1[i].Before(m1[j]) })
	// m1 was polled every cycle through both reloads: no two reads further apart than 1.9
	// intervals (a missed cycle makes two).
	var worst time.Duration
	for i := 1; i < len(m1); i++ {
		worst = max(worst, m1[i].Sub(m1[i-1]))
	}
	if worst >= 190*time.Millisecond {
		t.Errorf("m1's reads were %v apart at worst across the reloads (poll interval 100ms)", worst)
	}
	for _, m := range m2 {
		if m.fields["broken"] {
			t.Fatal("the broken file's tag was applied")
		}
	}
	if format == "json" {
		checkSeqs(t, records(t, sub.Messages()))
	} else {
		if births < 2 {
			t.Errorf("%d NBIRTH: the reload did not rebirth the node", births)
		}
		for dev, as := range aliasesBefore {
			for name, alias := range as {
				if got := aliasesAfter[dev][name]; got != alias {
					t.Errorf("%s/%s: alias %d before the reload, %d after", dev, name, alias, got)
				}
			}
		}
		if aliasesAfter["m2"]["parts_total"] == 0 {
			t.Error("the new tag has no alias in m2's DBIRTH after the reload")
		}
	}
	t.Logf("%s: m1 %d reads, worst gap %v; m2 %d messages; reload at %v", format, len(m1), worst, len(m2), reloaded.Format(time.TimeOnly))
}
