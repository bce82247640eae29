package opcua

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/floorlink/floorlink/drivers"
	"github.com/floorlink/floorlink/drivers/opcua/internal/uatest"
)

// typesDevice is a device with every static variable of the node-opcua server, typed as the
// config would, then Counter (uint32, changing every 100 ms) and Static (float64, set by tests).
func typesDevice(endpoint, mode string) drivers.Device {
	dev := drivers.Device{Name: "press-1", Protocol: Protocol, Address: endpoint, PollInterval: 200 * time.Millisecond,
		OPCUA: drivers.OPCUAOptions{Mode: mode, SamplingInterval: 100 * time.Millisecond, PublishingInterval: 100 * time.Millisecond}}
	for _, v := range uatest.Vars() {
		dev.Tags = append(dev.Tags, drivers.Tag{Name: v.Name, Address: fmt.Sprintf("ns=%d;s=Line1.Types.%s", uatest.Namespace, v.Name), Type: drivers.DataType(v.Type)})
	}
	dev.Tags = append(dev.Tags,
		drivers.Tag{Name: "Counter", Address: fmt.Sprintf("ns=%d;s=Line1.Counter", uatest.Namespace), Type: drivers.TypeUint32},
		drivers.Tag{Name: "Static", Address: fmt.Sprintf("ns=%d;s=Line1.Static", uatest.Namespace), Type: drivers.TypeAuto})
	return dev
}

// TestDriver_NodeOPCUA_Types: poll and subscribe deliver every type with the server's values
// and source timestamps, and a change within a second in subscribe mode.
func TestDriver_NodeOPCUA_Types(t *testing.T) {
	srv := uatest.Start(t, uatest.Options{})
	for _, mode := range []string{ModePoll, ModeSubscribe} {
		t.Run("mode="+mode, func(t *testing.T) {
			dev := typesDevice(srv.Endpoint, mode)
			d, err := New(dev, Options{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := &collector{}
			run(t, d, c)
			vars := uatest.Vars()
			waitFor(t, 20*time.Second, func() error {
				for i, v := range vars {
					if err := goodValue(c, i, v.Value); err != nil {
						return fmt.Errorf("%s: %w", v.Name, err)
					}
				}
				return nil
			})
			for i, v := range vars {
				s, _ := c.last(i)
				if s.SourceTime.IsZero() || time.Since(s.SourceTime) > time.Hour {
					t.Errorf("%s: source time %v, want the server's", v.Name, s.SourceTime)
				}
			}
			counter := len(vars)
			if n := len(c.eventsOf(drivers.EventFault)); n != 0 {
				t.Errorf("%d fault events, want none: %v", n, c.eventsOf(drivers.EventFault))
			}
			// The counter changes every 100 ms: samples must keep arriving with increasing values.
			from := time.Now()
			waitFor(t, 5*time.Second, func() error {
				ss := c.since(counter, from)
				if len(ss) < 3 {
					return fmt.Errorf("%d counter samples since %v, want 3", len(ss), from)
				}
				return nil
			})
			if mode == ModeSubscribe {
				// A change reaches the sink within a second.
				srv.Set(41.5)
				set := time.Now()
				waitFor(t, 3*time.Second, func() error { return goodValue(c, counter+1, "41.5") })
				s, _ := c.last(counter + 1)
				if lat := s.read.Sub(set); lat > time.Second {
					t.Errorf("change delivered after %v, want within 1s", lat)
				}
			}
		})
	}
}

// TestDriver_NodeOPCUA_TypeMismatch: a tag typed unlike its node is bad with "type mismatch",
// reported once by a fault event; the other tags flow.
func TestDriver_NodeOPCUA_TypeMismatch(t *testing.T) {
	srv := uatest.Start(t, uatest.Options{})
	dev := typesDevice(srv.Endpoint, ModePoll)
	dev.Tags[0].Type = drivers.TypeInt16 // Boolean on the server
	d, err := New(dev, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	run(t, d, c)
	waitFor(t, 20*time.Second, func() error {
		if len(c.since(0, time.Time{})) < 3 {
			return fmt.Errorf("fewer than 3 polls")
		}
		return goodValue(c, 1, "-100")
	})
	s, _ := c.last(0)
	if s.Quality != drivers.QualityBad || s.Reason != reasonTypeMismatch {
		t.Errorf("mismatched tag: %s %q, want bad %q", s.Quality, s.Reason, reasonTypeMismatch)
	}
	f := c.eventsOf(drivers.EventFault)
	if len(f) != 1 || !strings.Contains(f[0].Err.Error(), "type int16 in the config, but the server sends bool") {
		t.Errorf("fault events %v, want one naming the types", f)
	}
}
