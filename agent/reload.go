package agent

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/floorlink/floorlink/agent/config"
	"github.com/floorlink/floorlink/agent/publish"
)

// reloadRequest is a configuration for Run to apply, and where the outcome goes.
type reloadRequest struct {
	cfg  *config.File
	done chan error
}

// ErrNotRunning is Reload's error when Run is not running (not yet, or no more).
var ErrNotRunning = errors.New("agent not running")

// Reload applies a new configuration, which LoadConfig accepted, to the running agent: its
// devices and assets. A connection whose devices are all unchanged keeps polling without a
// gap; a changed one is stopped and started again alone; a new one starts, a removed one
// stops. The buffer is never reopened. Changes to the gateway, mqtt, buffer and http sections
// need a restart: they are logged and not applied. When the devices or assets cannot be
// applied (a driver refuses them), Reload returns the problems as a *config.Error and the
// agent runs on unchanged.
//
// KPIs: an unchanged asset goes on with its windows (the seconds around the reload are unknown
// time and the parts counted across them produced_unknown: its state is read anew); an asset
// whose configuration changed has its windows closed at the reload, shorter, and starts new
// ones; a removed asset's windows end with it.
//
// In Sparkplug mode a change of the devices or their metrics is published by a node rebirth,
// with the aliases of unchanged metrics kept. Reload is safe for concurrent use.
func (a *Agent) Reload(ctx context.Context, cfg *config.File) error {
	req := reloadRequest{cfg: cfg, done: make(chan error, 1)}
	select {
	case a.reloads <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// apply is Reload on Run's goroutine; ctx is Run's.
func (a *Agent) apply(ctx context.Context, cfg *config.File) error {
	old := a.cfg
	oldGateway, newGateway := old.Gateway, cfg.Gateway
	oldGateway.Location, newGateway.Location = nil, nil // compared by Timezone: a zone loaded twice differs in its cache
	for _, sec := range []struct {
		name     string
		was, now any
	}{
		{"gateway", oldGateway, newGateway}, {"mqtt", old.MQTT, cfg.MQTT},
		{"buffer", old.Buffer, cfg.Buffer}, {"http", old.HTTP, cfg.HTTP},
	} {
		if !reflect.DeepEqual(sec.was, sec.now) {
			a.log.Warn("reload: the "+sec.name+" section changed: restart the agent to apply it; running on with the old one", "section", sec.name)
		}
	}
	merged := *cfg
	merged.Gateway, merged.MQTT, merged.Buffer, merged.HTTP = old.Gateway, old.MQTT, old.Buffer, old.HTTP

	current := map[string]*connection{}
	for _, c := range a.connections() {
		current[c.key] = c
	}
	var (
		next, started []*connection
		problems      []config.Problem
	)
	for _, bus := range merged.Buses() {
		if c := current[busKey(&merged, bus)]; c != nil && sameDevices(c, &merged, bus) {
			next = append(next, c)
			delete(current, c.key)
			continue
		}
		c, err := a.newConnection(&merged, bus)
		if err != nil {
			problems = append(problems, placeErrors(cfg, fmt.Sprintf("devices[%d]", bus.Devices[0]), err)...)
			continue
		}
		next, started = append(next, c), append(started, c)
	}
	var devices []*device
	for _, c := range next {
		devices = append(devices, c.devices...)
	}
	kpi, ps := newKPI(&merged, devicesOf(devices), a.log)
	problems = append(problems, ps...)
	if len(problems) > 0 {
		err := config.Join(cfg, problems...)
		a.log.Error("reload refused: running on with the old configuration", "err", err)
		return err
	}
	var places map[string]publish.Place
	var spDevices []publish.SparkplugDevice
	if o, err := publishOptions(&merged, "", 0); err == nil {
		places = o.Places
	}
	if merged.MQTT.Format == "sparkplug" {
		sp, err := a.sparkplugDevices(&merged, devices)
		if err != nil {
			a.log.Error("reload refused: running on with the old configuration", "err", err)
			return err
		}
		spDevices = sp
	}

	// Stop what goes before anything new starts: a device that moved to another connection
	// is never polled twice at once.
	for _, c := range current {
		c.stop()
	}
	for _, c := range current {
		<-c.done
	}
	a.kpi.swap(kpi, a.now())
	for _, c := range started {
		for _, d := range c.devices {
			d.status.latency = a.metrics.latency.WithLabelValues(d.dev.Name)
		}
	}
	a.devMu.Lock()
	a.conns, a.devices = next, devices
	a.devMu.Unlock()
	if err := a.pub.Reconfigure(places, spDevices); err != nil {
		a.log.Error("reload: publisher", "err", err) // checked above: cannot happen
	}
	for _, c := range started {
		a.startConnection(ctx, c)
	}
	a.log.Info("configuration reloaded", "connections", len(next), "restarted", len(started),
		"stopped", len(current), "devices", len(devices), "assets", len(merged.Assets))
	return nil
}

// sameDevices reports whether bus has exactly c's devices with the same configuration.
func sameDevices(c *connection, cfg *config.File, bus config.Bus) bool {
	if len(c.devices) != len(bus.Devices) {
		return false
	}
	return slices.EqualFunc(c.devices, bus.Devices, func(d *device, i int) bool {
		return reflect.DeepEqual(d.conf, cfg.Devices[i])
	})
}
