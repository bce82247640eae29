package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestEndToEnd_StatusAPI: /api/v1/status shows every device connected, its counters moving, and
// tag values that are the simulator's at the tick the same document shows.
func TestEndToEnd_StatusAPI(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := startStack(t, stackOptions{httpListen: addr})
	a := startAgent(t, s.cfgPath)

	type tag struct {
		Name    string
		Value   json.RawMessage
		Quality string
	}
	type device struct {
		Name, State string
		Polls       uint64
		Tags        []tag
	}
	var doc struct {
		Gateway struct{ ID string }
		MQTT    struct{ Connected bool }
		Devices []device
	}
	get := func() error {
		resp, err := http.Get("http://" + addr + "/api/v1/status")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		dec := json.NewDecoder(bytes.NewReader(body))
		doc.Devices = nil
		if err := dec.Decode(&doc); err != nil {
			return fmt.Errorf("%v: %s", err, body)
		}
		return nil
	}
	waitFor(t, 30*time.Second, func() error {
		if err := get(); err != nil {
			return err
		}
		if doc.Gateway.ID != "gw-e2e" || !doc.MQTT.Connected || len(doc.Devices) != 3 {
			return fmt.Errorf("status %+v", doc)
		}
		for _, d := range doc.Devices {
			if d.State != "connected" || d.Polls < 5 {
				return fmt.Errorf("device %s: %s after %d polls", d.Name, d.State, d.Polls)
			}
		}
		return nil
	})
	for _, d := range doc.Devices {
		values := map[string]tag{}
		for _, tg := range d.Tags {
			values[tg.Name] = tg
		}
		num := func(name string) json.Number { return json.Number(values[name].Value) }
		tick, err := num("tick").Int64()
		if err != nil {
			t.Fatalf("%s: tick %q", d.Name, values["tick"].Value)
		}
		want, ok := s.sim.Snapshot(machines[d.Name], uint32(tick))
		if !ok {
			t.Fatalf("%s: no snapshot at tick %d", d.Name, tick)
		}
		if got, _ := num("parts_total").Int64(); uint32(got) != want.PartsTotal {
			t.Errorf("%s at tick %d: parts_total %d in the status, %d in the simulator", d.Name, tick, got, want.PartsTotal)
		}
		if got, _ := num("temperature").Float64(); float32(got) != want.Temperature {
			t.Errorf("%s at tick %d: temperature %v in the status, %v in the simulator", d.Name, tick, got, want.Temperature)
		}
		if values["state"].Quality != "good" {
			t.Errorf("%s: state quality %q", d.Name, values["state"].Quality)
		}
	}
	if code := a.Stop(syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
