package opcua

import (
	"errors"
	"strings"
	"testing"

	"github.com/floorlink/floorlink/drivers"
)

func TestNew_FieldErrors(t *testing.T) {
	dev := drivers.Device{Name: "cnc", Protocol: "opcua", Address: "http://x", OPCUA: drivers.OPCUAOptions{
		SecurityPolicy: "Basic128Rsa15", SecurityMode: "Encrypt", Auth: "username", Mode: "push", Timestamp: "local", QueueSize: -1},
		Tags: []drivers.Tag{
			{Name: "a", Address: "Line1.State", Type: "bcd16"},
			{Name: "a", Address: "ns=2;s=x", Type: drivers.TypeString, Deadband: 1, ByteOrder: "CDAB"},
		}}
	_, err := New(dev, Options{MinBackoff: -1}, nil)
	want := map[string]string{
		"address":            "opc.tcp://host:port",
		"security_policy":    "Basic128Rsa15",
		"security_mode":      "Encrypt",
		"username":           "needs a username",
		"mode":               "poll or subscribe",
		"timestamp":          "source, server or gateway",
		"queue_size":         "-1",
		"tags[0].address":    `want "ns=<index>`,
		"tags[0].type":       "bcd16",
		"tags[1].name":       "twice",
		"tags[1].deadband":   "only in mode subscribe",
		"tags[1].byte_order": "only for modbus",
		"pki_dir":            "needs a directory",
	}
	got := map[string]string{}
	for _, e := range unjoin(err) {
		var fe *drivers.FieldError
		if errors.As(e, &fe) {
			if fe.Device != "cnc" {
				t.Errorf("%v: device %q, want cnc", fe, fe.Device)
			}
			got[fe.Path] = fe.Err.Error()
		} else if !strings.Contains(e.Error(), "MinBackoff") {
			t.Errorf("unexpected error %v", e)
		}
	}
	for path, w := range want {
		if !strings.Contains(got[path], w) {
			t.Errorf("%s: got %q, want it to contain %q", path, got[path], w)
		}
	}
}

func TestNew_Defaults(t *testing.T) {
	d, err := New(drivers.Device{Name: "cnc", Protocol: "opcua", Address: "opc.tcp://127.0.0.1:4840",
		Tags: []drivers.Tag{{Name: "t", Address: "i=2258"}}}, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := d.cfg
	if c.interval != DefaultPollInterval || c.timeout != DefaultTimeout || c.subscribe || c.timestamp != TimestampSource ||
		c.tags[0].typ != drivers.TypeAuto || c.policy != "None" || d.pki != nil || !strings.HasPrefix(c.appURI, "urn:floorlink:") {
		t.Errorf("defaults: %+v", c)
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
