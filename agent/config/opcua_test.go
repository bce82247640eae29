package config

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestParse_OPCUA pins the OPC UA keys of testdata/good/opcua.yaml: defaults on the polled
// device, every key as written on the subscribed one, paths made absolute, the password read
// from its file, and each opcua device a bus of its own.
func TestParse_OPCUA(t *testing.T) {
	f, err := Load("testdata/good/opcua.yaml", testOptions())
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("testdata/good")
	if err != nil {
		t.Fatal(err)
	}
	ignore := cmpopts.IgnoreFields(Device{}, "Tags", "Area", "Line", "MaxRegisters", "MaxGap", "Timeout", "Password")
	want := []Device{{
		Name: "cnc-1", Protocol: "opcua", Address: "opc.tcp://192.168.0.20:4840", PollInterval: 500 * time.Millisecond,
		Timestamp: "source", SecurityPolicy: "None", Auth: "anonymous", PKIDir: "/var/lib/floorlink/pki",
		Mode: "poll", SamplingInterval: 500 * time.Millisecond, PublishingInterval: time.Second, QueueSize: 1,
	}, {
		Name: "robot-1", Protocol: "opcua", Address: "opc.tcp://robot-1.plant.local:4840/UA/Robot", PollInterval: time.Second,
		Timestamp: "server", SecurityPolicy: "Basic256Sha256", SecurityMode: "SignAndEncrypt", Auth: "username",
		Username: "floorlink", PasswordFile: filepath.Join(dir, "secrets/opcua-password"), PKIDir: filepath.Join(dir, "pki"),
		Mode: "subscribe", SamplingInterval: 100 * time.Millisecond, PublishingInterval: 250 * time.Millisecond, QueueSize: 10,
	}}
	if diff := cmp.Diff(want, f.Devices, ignore); diff != "" {
		t.Errorf("devices (-want +got):\n%s", diff)
	}
	if got := f.Devices[1].Password.Reveal(); got != "line1-opcua" {
		t.Errorf("got password %q, want the file's line1-opcua", got)
	}
	if got := f.Devices[0].Tags[1].Type; got != "auto" {
		t.Errorf("got type %q for a tag without one, want auto", got)
	}
	if got := f.Devices[1].Tags[0].Deadband; got != (Deadband{Value: 0.5}) {
		t.Errorf("got deadband %v, want 0.5", got)
	}
	// Two opcua devices on one endpoint are still two connections.
	f.Devices[1].Address = f.Devices[0].Address
	buses := f.Buses()
	if len(buses) != 2 || buses[0].Protocol != "opcua" || len(buses[0].Devices) != 1 || buses[1].Devices[0] != 1 {
		t.Errorf("got buses %+v, want one per opcua device", buses)
	}
}

// TestParse_OPCUAKeysElsewhere checks that a modbus device written back with the zero values
// of the OPC UA keys (as FuzzParse's round trip writes every key) parses to the same device.
func TestParse_OPCUAKeysElsewhere(t *testing.T) {
	f := mustParse(t, "x.yaml", `
gateway: {id: gw-1, site: s, area: a, line: l}
mqtt: {brokers: ["tcp://b:1883"]}
devices:
  - name: press-1
    protocol: modbus-tcp
    address: 127.0.0.1:502
    security_policy: ""
    security_mode: ""
    auth: ""
    username: ""
    user_cert_file: ""
    pki_dir: ""
    trust_on_first_use: false
    mode: ""
    sampling_interval: 0s
    publishing_interval: 0s
    queue_size: 0
    tags: [{name: t, address: "40001", type: int16}]
`)
	d := f.Devices[0]
	if d.Timestamp != "gateway" || d.Mode != "" || d.PKIDir != "" || d.QueueSize != 0 || d.SecurityPolicy != "" {
		t.Errorf("got %+v, want the OPC UA keys unset and timestamp gateway", d)
	}
}
