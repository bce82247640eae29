package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorlink/floorlink/agent/config"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/simulators/simtest"
)

// kpiMessages subscribes to the KPI topics of the broker and collects what arrives.
type kpiMessages struct {
	mu     sync.Mutex
	closed []map[string]any // .../kpi, in arrival order
	live   []map[string]any // .../kpi/live
	retain []bool           // of live
}

func subscribeKPI(t *testing.T, broker *mqtttest.Broker) *kpiMessages {
	t.Helper()
	m := &kpiMessages{}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("kpi-test"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect the test subscriber: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe("floorlink/v1/+/+/+/+/kpi/#", 1, func(_ mqtt.Client, msg mqtt.Message) {
		var doc map[string]any
		if err := json.Unmarshal(msg.Payload(), &doc); err != nil {
			t.Errorf("%s: %v", msg.Topic(), err)
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if strings.HasSuffix(msg.Topic(), "/kpi/live") {
			m.live, m.retain = append(m.live, doc), append(m.retain, msg.Retained())
		} else {
			m.closed = append(m.closed, doc)
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return m
}

func (m *kpiMessages) snapshot() (closed, live []map[string]any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.closed), slices.Clone(m.live)
}

// kpiConfig writes a gateway config with one machine of plcsim and its asset.
func kpiConfig(t *testing.T, dir, brokerURL, modbusAddr, format string) *config.File {
	t.Helper()
	path := filepath.Join(dir, "gw.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`gateway: {id: gw-k, site: s, area: a, line: l, data_dir: data}
mqtt:
  brokers: [%q]
  reconnect_min: 50ms
  reconnect_max: 200ms
  format: %s
  group_id: plant
http: {listen: "127.0.0.1:0"}
devices:
  - name: m1
    protocol: modbus-tcp
    address: %q
    unit_id: 1
    poll_interval: 20ms
    tags:
      - {name: state, address: "40001", type: uint16}
      - {name: parts_total, address: "40004", type: uint32}
      - {name: good_total, address: "40006", type: uint32}
      - {name: reject_total, address: "40008", type: uint32}
      - {name: ideal_cycle_time_ms, address: "40016", type: uint16}
assets:
  - name: press
    state: {device: m1, tag: state, map: {1: running, 2: idle, 3: blocked, 4: down, 5: setup, 6: maintenance}}
    counters: {device: m1, total: parts_total, good: good_total, reject: reject_total, bits: 32}
    ideal_cycle: {device: m1, tag: ideal_cycle_time_ms, unit: ms}
    windows: [1m, day]
    live_interval: 1s
`, brokerURL, format, modbusAddr)), 0o644)
	cfg, err := LoadConfig(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestAgent_KPI runs an asset on a simulated clock 60 times faster than the wall (a minute a
// second): closed one-minute windows arrive on the asset's kpi topic, one after another, with
// every field declared to Sparkplug; the live message is retained with seq 0; the status API
// and the metrics show the asset; the snapshot is in the buffer after the stop.
func TestAgent_KPI(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Line: simtest.LineConfig{Seed: 5}})
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	msgs := subscribeKPI(t, broker)
	dir := t.TempDir()
	cfg := kpiConfig(t, dir, broker.URL(), sim.ModbusAddr(), "json")
	start, epoch := time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC), time.Now()
	clock := func() time.Time { return start.Add(time.Since(epoch) * 60).Round(0) }
	a, err := New(cfg, nil, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-done
		}
	})

	waitFor(t, 30*time.Second, func() error {
		closed, live := msgs.snapshot()
		if len(closed) < 3 || len(live) == 0 {
			return fmt.Errorf("%d closed windows and %d live messages so far", len(closed), len(live))
		}
		return nil
	})
	closed, live := msgs.snapshot()
	declared := map[string]bool{}
	for _, m := range kpiMetrics() {
		declared[m.Name] = true
	}
	var prevEnd string
	closed = slices.DeleteFunc(closed, func(doc map[string]any) bool { return doc["values"].(map[string]any)["window"] == "day" })
	for i, doc := range closed {
		values := doc["values"].(map[string]any)
		if values["window"] != "1m" || values["partial"] != false {
			t.Errorf("window %d: window %v partial %v", i, values["window"], values["partial"])
		}
		if s, _ := values["window_s"].(float64); s != 60 {
			t.Errorf("window %d: window_s %v, want 60", i, values["window_s"])
		}
		if prevEnd != "" && values["window_start"] != prevEnd {
			t.Errorf("window %d starts at %v, the one before ended at %v", i, values["window_start"], prevEnd)
		}
		end, _ := time.Parse(time.RFC3339, doc["ts"].(string))
		prevEnd = end.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		if seq, _ := doc["seq"].(float64); seq < 1 {
			t.Errorf("window %d: seq %v", i, doc["seq"])
		}
		for k := range values {
			if !declared[k] {
				t.Errorf("KPI field %q is not declared to Sparkplug (kpiMetrics)", k)
			}
		}
		// Every second of a window is in one bucket of the time model.
		var sum float64
		for _, k := range []string{"unscheduled_s", "planned_down_s", "unknown_s", "run_s", "micro_stop_s", "setup_s", "down_s", "idle_s", "blocked_s", "maintenance_s"} {
			v, _ := values[k].(float64)
			sum += v
		}
		if i > 0 && (sum < 59.999 || sum > 60.001) { // the first window began before the first sample
			t.Errorf("window %d: buckets add up to %v s", i, sum)
		}
	}
	if v := live[len(live)-1]; v["seq"] != float64(0) || v["values"].(map[string]any)["partial"] != true {
		t.Errorf("live message: seq %v partial %v", v["seq"], v["values"].(map[string]any)["partial"])
	}

	resp, err := http.Get("http://" + a.HTTPAddr() + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var status struct {
		Assets []map[string]any `json:"assets"`
	}
	json.Unmarshal(body, &status)
	if len(status.Assets) != 1 || status.Assets[0]["name"] != "press" || status.Assets[0]["availability"] == nil {
		t.Errorf("status assets: %s", body)
	}
	resp, err = http.Get("http://" + a.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `floorlink_kpi_windows_closed_total{asset="press"}`) {
		t.Error("no floorlink_kpi_windows_closed_total for the asset in /metrics")
	}

	cancel()
	stopped = true
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
