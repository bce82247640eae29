package modbus

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/drivers"
)

// fieldErrors flattens a joined error from New into "path: message" lines; it fails the test
// if a device problem is not a *drivers.FieldError.
func fieldErrors(t *testing.T, err error) []string {
	t.Helper()
	var out []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *drivers.FieldError
		if !errors.As(e, &fe) && !strings.HasPrefix(e.Error(), "modbus options:") {
			t.Errorf("%q is neither a *drivers.FieldError nor an options error", e)
		}
		out = append(out, e.Error())
	}
	return out
}

func goodDevice() drivers.Device {
	return drivers.Device{
		Name: "press-1", Protocol: "modbus-tcp", Address: "127.0.0.1:502", UnitID: 1,
		Tags: []drivers.Tag{{Name: "state", Address: "40001", Type: drivers.TypeUint16}},
	}
}

func TestNew_AllErrorsAtOnce(t *testing.T) {
	dev := drivers.Device{
		Name:         "press-1",
		Protocol:     "modbus-tcp",
		Address:      "plc1",
		UnitID:       250,
		PollInterval: -time.Second,
		Timeout:      -1,
		Tags: []drivers.Tag{
			{Name: "ok", Address: "40001", Type: drivers.TypeUint16},
			{Name: "bad-bit", Address: "40001.16", Type: drivers.TypeBool},
			{Name: "bad-type", Address: "40002", Type: "int64"},
			{Name: "bad-order", Address: "40003", Type: drivers.TypeFloat32, ByteOrder: "ABDC"},
			{Name: "float-on-coil", Address: "00001", Type: drivers.TypeFloat32},
			{Name: "bool-no-bit", Address: "hr:4", Type: drivers.TypeBool},
			{Name: "int-on-bit", Address: "hr:4.2", Type: drivers.TypeInt16},
			{Name: "past-end", Address: "hr:65535", Type: drivers.TypeUint32},
			{Name: "ok", Address: "hr:9", Type: drivers.TypeInt16, ByteOrder: "ABCD"},
			{Name: "", Address: "nonsense", Type: drivers.TypeBool, ByteOrder: "AB"},
		},
	}
	_, err := New(dev, Options{MaxRegisters: 126, MaxBits: -1, MinBackoff: time.Minute}, nil)
	if err == nil {
		t.Fatal("New accepted an invalid device")
	}
	want := []string{
		`address: "plc1": want host:port, e.g. "192.0.2.10:502"`,
		`unit_id: 250 is reserved: want 1..247 for a device behind a gateway, 0 or 255 for a device addressed directly`,
		`poll_interval: -1s is negative: want a positive duration, or zero for 1s`,
		`timeout: -1ns is negative: want a positive duration, or zero for 2s`,
		`tags[1].address: "40001.16": bit must be 0..15`,
		`tags[2].type: "int64": want one of bool, int16, uint16, int32, uint32, float32`,
		`tags[3].byte_order: "ABDC": want "" or "ABCD" (big-endian, the default), "CDAB" (word-swapped), "BADC" (byte-swapped) or "DCBA" (little-endian) for float32`,
		`tags[4].type: float32 needs an input or holding register (3xxxx, 4xxxx, ir:N, hr:N); "00001" is a coil, which holds a bool`,
		`tags[5].address: "hr:4": a bool on a register needs a bit, e.g. "hr:4.0"`,
		`tags[6].type: int16 at "hr:4.2": a register bit holds a bool only`,
		`tags[7].address: "hr:65535": uint32 takes 2 registers and the last one, 65536, is past 65535`,
		`tags[8].name: "ok" is already the name of tags[0]: names must be unique within a device`,
		`tags[8].byte_order: "ABCD": want "", "AB" (big-endian, the default) or "BA" (byte-swapped) for int16`,
		`tags[9].name: empty: a tag needs a name`,
		`tags[9].address: "nonsense": want a Modicon reference (00001 coil, 10001 discrete input, 30001 input register, 40001 holding register; 6 digits up to 465536) or a zero-based co:N, di:N, ir:N, hr:N (N 0..65535), optionally with .bit for a register (40001.3, hr:0.3)`,
		`tags[9].byte_order: "AB": a bool has no byte order: want ""`,
		`modbus options: MaxRegisters 126: want 1..125, or 0 for 125`,
		`modbus options: MaxBits -1: want 1..2000, or 0 for 2000`,
		`modbus options: MinBackoff 1m0s is above MaxBackoff 30s`,
	}
	if diff := cmp.Diff(want, fieldErrors(t, err)); diff != "" {
		t.Errorf("New errors (-want +got):\n%s", diff)
	}
}

func TestNew_DeviceErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(d *drivers.Device)
		want string
	}{
		{"no name", func(d *drivers.Device) { d.Name = "" }, "name: empty"},
		{"other protocol", func(d *drivers.Device) { d.Protocol = "opcua" }, `protocol: "opcua": the modbus driver serves "modbus-tcp" only`},
		{"no port", func(d *drivers.Device) { d.Address = "10.0.0.1" }, `address: "10.0.0.1": want host:port`},
		{"empty host", func(d *drivers.Device) { d.Address = ":502" }, `address: ":502": empty host`},
		{"bad port", func(d *drivers.Device) { d.Address = "plc:http" }, `address: "plc:http": port "http": want 1..65535 (Modbus TCP's is 502)`},
		{"port 0", func(d *drivers.Device) { d.Address = "plc:0" }, `address: "plc:0": port "0": want 1..65535`},
		{"no tags", func(d *drivers.Device) { d.Tags = nil }, "tags: none: a device needs at least one tag"},
		{"coil with bit", func(d *drivers.Device) { d.Tags[0] = drivers.Tag{Name: "x", Address: "co:1.1", Type: "bool"} },
			`tags[0].address: "co:1.1": a bit suffix is only for input or holding registers`},
		{"16-bit order on 32-bit", func(d *drivers.Device) { d.Tags[0].Type, d.Tags[0].ByteOrder = drivers.TypeInt32, "BA" },
			`tags[0].byte_order: "BA": want "" or "ABCD"`},
		{"lowercase order", func(d *drivers.Device) { d.Tags[0].ByteOrder = "ba" }, `tags[0].byte_order: "ba": want "", "AB"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := goodDevice()
			tc.edit(&dev)
			_, err := New(dev, Options{}, nil)
			if err == nil {
				t.Fatal("New accepted it")
			}
			got := fieldErrors(t, err)
			if len(got) != 1 || !strings.HasPrefix(got[0], tc.want) {
				t.Errorf("New errors:\n got %q\nwant one starting with %q", got, tc.want)
			}
		})
	}
}

func TestNew_Accepts(t *testing.T) {
	dev := goodDevice()
	dev.Protocol = ""
	dev.UnitID = 255
	dev.Tags = []drivers.Tag{
		{Name: "a", Address: "40001", Type: drivers.TypeUint16, ByteOrder: "BA"},
		{Name: "b", Address: "hr:1", Type: drivers.TypeFloat32, ByteOrder: "DCBA"},
		{Name: "c", Address: "hr:65534", Type: drivers.TypeInt32},
		{Name: "d", Address: "30001.15", Type: drivers.TypeBool},
		{Name: "e", Address: "00001", Type: drivers.TypeBool},
		{Name: "f", Address: "di:7", Type: drivers.TypeBool},
	}
	dev.Address = "[::1]:1502"
	d, err := New(dev, Options{MaxGap: -1, MaxRegisters: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(d.batch.Samples), len(dev.Tags); got != want {
		t.Errorf("batch holds %d samples, want %d", got, want)
	}
	for i, s := range d.batch.Samples {
		if s.Tag != i {
			t.Errorf("Samples[%d].Tag = %d", i, s.Tag)
		}
	}
	wantWhat := []string{
		`read coils 0-0 on device "press-1" (unit 255)`,
		`read discrete inputs 7-7 on device "press-1" (unit 255)`,
		`read input registers 0-0 on device "press-1" (unit 255)`,
		`read holding registers 0-2 on device "press-1" (unit 255)`,
		`read holding registers 65534-65535 on device "press-1" (unit 255)`,
	}
	if diff := cmp.Diff(wantWhat, d.what); diff != "" {
		t.Errorf("reads (-want +got):\n%s", diff)
	}
}

// ExampleNew shows New reporting every problem of a device at once, each with its path.
func ExampleNew() {
	dev := drivers.Device{
		Name:    "press-1",
		Address: "192.0.2.10:502",
		UnitID:  1,
		Tags: []drivers.Tag{
			{Name: "state", Address: "40001", Type: drivers.TypeUint16},
			{Name: "temperature", Address: "40011", Type: drivers.TypeFloat32, ByteOrder: "CDBA"},
			{Name: "door_open", Address: "40001.16", Type: drivers.TypeBool},
		},
	}
	_, err := New(dev, Options{}, nil)
	fmt.Println(err)
	// Output:
	// tags[1].byte_order: "CDBA": want "" or "ABCD" (big-endian, the default), "CDAB" (word-swapped), "BADC" (byte-swapped) or "DCBA" (little-endian) for float32
	// tags[2].address: "40001.16": bit must be 0..15
}
