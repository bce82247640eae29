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

// fieldErrors flattens a joined error from New into "device: path: message" lines (device
// omitted for options errors); it fails the test if a device problem is not a
// *drivers.FieldError.
func fieldErrors(t *testing.T, err error) []string {
	t.Helper()
	var out []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *drivers.FieldError
		switch {
		case errors.As(e, &fe):
			out = append(out, fe.Device+": "+e.Error())
		case strings.HasPrefix(e.Error(), "modbus options:"), strings.HasPrefix(e.Error(), "modbus:"):
			out = append(out, e.Error())
		default:
			t.Errorf("%q is neither a *drivers.FieldError nor an options error", e)
		}
	}
	return out
}

func goodDevice() drivers.Device {
	return drivers.Device{
		Name: "press-1", Protocol: "modbus-tcp", Address: "127.0.0.1:502", UnitID: 1,
		Tags: []drivers.Tag{{Name: "state", Address: "40001", Type: drivers.TypeUint16}},
	}
}

func newOne(dev drivers.Device, opts Options) (*Driver, error) {
	return New([]drivers.Device{dev}, opts, nil)
}

func TestNew_AllErrorsAtOnce(t *testing.T) {
	dev := drivers.Device{
		Name:         "press-1",
		Protocol:     "modbus-tcp",
		Address:      "plc1",
		UnitID:       250,
		PollInterval: -time.Second,
		Timeout:      -1,
		SourceTime:   true,
		Modbus:       drivers.ModbusOptions{Retries: 11, RequestDelay: -1, MaxRegisters: 126, AddressBase: 2},
		Tags: []drivers.Tag{
			{Name: "ok", Address: "40001", Type: drivers.TypeUint16},
			{Name: "bad-bit", Address: "40001.16", Type: drivers.TypeBool},
			{Name: "bad-type", Address: "40002", Type: "int128"},
			{Name: "bad-order", Address: "40003", Type: drivers.TypeFloat32, ByteOrder: "ABDC"},
			{Name: "float-on-coil", Address: "00001", Type: drivers.TypeFloat32},
			{Name: "bool-no-bit", Address: "hr:4", Type: drivers.TypeBool},
			{Name: "int-on-bit", Address: "hr:4.2", Type: drivers.TypeInt16},
			{Name: "past-end", Address: "hr:65535", Type: drivers.TypeUint32},
			{Name: "ok", Address: "hr:9", Type: drivers.TypeInt16, ByteOrder: "ABCD"},
			{Name: "", Address: "nonsense", Type: drivers.TypeBool, ByteOrder: "AB"},
			{Name: "no-length", Address: "hr:20", Type: drivers.TypeString},
			{Name: "length-on-int", Address: "hr:30", Type: drivers.TypeInt64, Length: 4},
			{Name: "negative-poll", Address: "hr:40", Type: drivers.TypeUint16, PollInterval: -1},
		},
	}
	_, err := New([]drivers.Device{dev}, Options{MaxBits: -1, MinBackoff: time.Minute}, nil)
	if err == nil {
		t.Fatal("New accepted an invalid device")
	}
	want := []string{
		`modbus options: MaxBits -1: want 1..2000, or 0 for 2000`,
		`modbus options: MinBackoff 1m0s is above MaxBackoff 30s`,
		`press-1: address: "plc1": want host:port, e.g. "192.0.2.10:502"`,
		`press-1: unit_id: 250 is reserved: want 1..247 for a device behind a gateway, 0 or 255 for a device addressed directly`,
		`press-1: timestamp: source: modbus devices carry no clock: use timestamp: gateway`,
		`press-1: poll_interval: -1s is negative: want a positive duration, or zero for 1s`,
		`press-1: timeout: -1ns is negative: want a positive duration, or zero for 2s`,
		`press-1: retries: 11: want 0..10`,
		`press-1: request_delay: -1ns: want 0 to 10s`,
		`press-1: max_registers: 126: want 1..125 (the protocol's limit for one read), or 0 for 125`,
		`press-1: address_base: 2: want 0 (hr:0 is the first holding register) or 1 (hr:1 is); address_base says what co:N, di:N, ir:N and hr:N count from; Modicon references such as 40001 are always 1-based`,
		`press-1: tags[1].address: "40001.16": bit must be 0..15`,
		`press-1: tags[2].type: "int128": want one of bool, int16, uint16, int32, uint32, int64, uint64, float32, float64, string, bcd16, bcd32`,
		`press-1: tags[3].byte_order: "ABDC": want "" or "ABCD" (big-endian, the default), "CDAB" (word-swapped), "BADC" (byte-swapped) or "DCBA" (little-endian) for float32`,
		`press-1: tags[4].type: float32 needs an input or holding register (3xxxx, 4xxxx, ir:N, hr:N); "00001" is a coil, which holds a bool`,
		`press-1: tags[5].address: "hr:4": a bool on a register needs a bit, e.g. "hr:4.0"`,
		`press-1: tags[6].type: int16 at "hr:4.2": a register bit holds a bool only`,
		`press-1: tags[7].address: "hr:65535": uint32 takes 2 registers and the last one, 65536, is past 65535`,
		`press-1: tags[8].name: "ok" is already the name of tags[0]: names must be unique within a device`,
		`press-1: tags[8].byte_order: "ABCD": want "", "AB" (big-endian, the default) or "BA" (byte-swapped) for int16`,
		`press-1: tags[9].name: empty: a tag needs a name`,
		`press-1: tags[9].address: "nonsense": want a Modicon reference (00001 coil, 10001 discrete input, 30001 input register, 40001 holding register; 6 digits up to 465536) or a zero-based co:N, di:N, ir:N, hr:N (N 0..65535), optionally with .bit for a register (40001.3, hr:0.3)`,
		`press-1: tags[9].byte_order: "AB": a bool has no byte order: want ""`,
		`press-1: tags[10].length: 0: a string needs its length in registers (two characters each), 1..123`,
		`press-1: tags[11].length: 4: only strings have a length (in registers); remove it from this int64`,
		`press-1: tags[12].poll_interval: -1ns is negative: want a positive duration, or zero for the device's`,
	}
	if diff := cmp.Diff(want, fieldErrors(t, err)); diff != "" {
		t.Errorf("New errors (-want +got):\n%s", diff)
	}
}

func TestNew_DeviceErrors(t *testing.T) {
	rtu := func(d *drivers.Device) {
		d.Protocol, d.Address = "modbus-rtu", "/dev/ttyUSB0"
	}
	for _, tc := range []struct {
		name string
		edit func(d *drivers.Device)
		want string
	}{
		{"no name", func(d *drivers.Device) { d.Name = "" }, "name: empty"},
		{"other protocol", func(d *drivers.Device) { d.Protocol = "opcua" }, `protocol: "opcua": the modbus driver serves "modbus-tcp" and "modbus-rtu"`},
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
		{"32-bit order on a string", func(d *drivers.Device) {
			d.Tags[0] = drivers.Tag{Name: "s", Address: "hr:0", Type: drivers.TypeString, Length: 4, ByteOrder: "CDAB"}
		}, `tags[0].byte_order: "CDAB": want "", "AB" (big-endian, the default) or "BA" (the first character in the low byte) for string`},
		{"string over max_registers", func(d *drivers.Device) {
			d.Tags[0] = drivers.Tag{Name: "s", Address: "hr:0", Type: drivers.TypeString, Length: 20}
			d.Modbus.MaxRegisters = 10
		}, `tags[0].length: a string of 20 registers does not fit in one read of max_registers 10`},
		{"float64 over max_registers", func(d *drivers.Device) {
			d.Tags[0] = drivers.Tag{Name: "f", Address: "hr:0", Type: drivers.TypeFloat64}
			d.Modbus.MaxRegisters = 2
		}, `tags[0].type: a float64 of 4 registers does not fit in one read of max_registers 2`},
		{"string past 65535", func(d *drivers.Device) {
			d.Tags[0] = drivers.Tag{Name: "s", Address: "hr:65530", Type: drivers.TypeString, Length: 10}
		}, `tags[0].address: "hr:65530": string takes 10 registers and the last one, 65539, is past 65535`},
		{"base one", func(d *drivers.Device) { d.Tags[0].Address = "hr:0"; d.Modbus.AddressBase = 1 },
			`tags[0].address: "hr:0": address 0 out of range: with address_base 1, hr:N takes N 1..65536`},
		{"serial on tcp", func(d *drivers.Device) { d.Modbus.Serial.Baud = 9600 }, `serial: only for modbus-rtu`},
		{"rtu unit 0", func(d *drivers.Device) { rtu(d); d.UnitID = 0 }, `unit_id: 0: want 1..247 on a serial line (0 is broadcast, which no device answers)`},
		{"rtu no path", func(d *drivers.Device) { rtu(d); d.Address = "" }, `address: empty: want the serial device's path`},
		{"rtu baud", func(d *drivers.Device) { rtu(d); d.Modbus.Serial.Baud = 9601 }, `serial.baud: 9601: want 1200, 2400`},
		{"rtu parity", func(d *drivers.Device) { rtu(d); d.Modbus.Serial.Parity = "N" }, `serial.parity: "N": want "none", "even" or "odd"`},
		{"rtu data bits", func(d *drivers.Device) { rtu(d); d.Modbus.Serial.DataBits = 5 }, `serial.data_bits: 5: want 7 or 8`},
		{"rtu stop bits", func(d *drivers.Device) { rtu(d); d.Modbus.Serial.StopBits = 3 }, `serial.stop_bits: 3: want 1 or 2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := goodDevice()
			tc.edit(&dev)
			_, err := newOne(dev, Options{})
			if err == nil {
				t.Fatal("New accepted it")
			}
			got := fieldErrors(t, err)
			if len(got) != 1 || !strings.HasPrefix(got[0], dev.Name+": "+tc.want) {
				t.Errorf("New errors:\n got %q\nwant one starting with %q", got, dev.Name+": "+tc.want)
			}
		})
	}
}

func TestNew_ConnectionErrors(t *testing.T) {
	a := goodDevice()
	b := goodDevice()
	b.Name, b.UnitID = "press-2", 2
	c := goodDevice()
	c.Name, c.UnitID, c.Address = "press-3", 1, "127.0.0.1:503"
	_, err := New([]drivers.Device{a, b, c}, Options{}, nil)
	want := []string{`press-3: address: "127.0.0.1:503" differs from device "press-1"'s "127.0.0.1:502": one driver serves one connection`,
		`press-3: unit_id: 1 is also device "press-1"'s on 127.0.0.1:503: unit ids must be unique on a connection`}
	if diff := cmp.Diff(want, fieldErrors(t, err)); diff != "" {
		t.Errorf("New errors (-want +got):\n%s", diff)
	}

	rtu := func(name string, unit uint8, s drivers.Serial) drivers.Device {
		d := goodDevice()
		d.Name, d.Protocol, d.Address, d.UnitID, d.Modbus.Serial = name, "modbus-rtu", "/dev/ttyUSB0", unit, s
		return d
	}
	_, err = New([]drivers.Device{
		rtu("meter-1", 1, drivers.Serial{}),
		rtu("meter-2", 2, drivers.Serial{Baud: 9600, Parity: "none", DataBits: 8, StopBits: 1}), // the defaults spelled out
		rtu("meter-3", 3, drivers.Serial{Baud: 19200, Parity: "even"}),
		rtu("meter-1", 4, drivers.Serial{}),
	}, Options{}, nil)
	want = []string{`meter-3: serial: 19200 8E1 differs from device "meter-1"'s 9600 8N1 on /dev/ttyUSB0: every device on a port has the port's one line setting`,
		`meter-1: name: "meter-1" twice on one connection: device names must be unique`}
	if diff := cmp.Diff(want, fieldErrors(t, err)); diff != "" {
		t.Errorf("New errors (-want +got):\n%s", diff)
	}

	if _, err := New(nil, Options{}, nil); err == nil || err.Error() != "modbus: no devices" {
		t.Errorf("New(nil) = %v", err)
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
		{Name: "g", Address: "hr:3", Type: drivers.TypeString, Length: 4, ByteOrder: "BA"},
		{Name: "h", Address: "hr:100", Type: drivers.TypeFloat64, ByteOrder: "CDAB", PollInterval: 100 * time.Millisecond},
		{Name: "i", Address: "hr:104", Type: drivers.TypeBCD32, PollInterval: 100 * time.Millisecond},
		{Name: "j", Address: "hr:7", Type: drivers.TypeBCD16, PollInterval: time.Second}, // the device's interval
	}
	dev.Address = "[::1]:1502"
	dev.Modbus = drivers.ModbusOptions{MaxGap: -1, MaxRegisters: 10}
	d, err := newOne(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range d.groups {
		line := fmt.Sprintf("%v:", g.interval)
		for _, s := range g.batch.Samples {
			line += " " + dev.Tags[s.Tag].Name
		}
		got = append(got, line)
		for _, p := range g.reads {
			got = append(got, "  "+p.what)
		}
	}
	want := []string{
		"1s: a b c d e f g j",
		`  read coils 0-0 on device "press-1" (unit 255)`,
		`  read discrete inputs 7-7 on device "press-1" (unit 255)`,
		`  read input registers 0-0 on device "press-1" (unit 255)`,
		`  read holding registers 0-7 on device "press-1" (unit 255)`,
		`  read holding registers 65534-65535 on device "press-1" (unit 255)`,
		"100ms: h i",
		`  read holding registers 100-105 on device "press-1" (unit 255)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("groups and reads (-want +got):\n%s", diff)
	}
}

// ExampleNew shows New reporting every problem of the devices on one connection at once, each
// with its device and path.
func ExampleNew() {
	press := drivers.Device{
		Name:    "press-1",
		Address: "192.0.2.10:502",
		UnitID:  1,
		Tags: []drivers.Tag{
			{Name: "state", Address: "40001", Type: drivers.TypeUint16},
			{Name: "temperature", Address: "40011", Type: drivers.TypeFloat32, ByteOrder: "CDBA"},
		},
	}
	oven := drivers.Device{
		Name:    "oven-1",
		Address: "192.0.2.10:502", // the same gateway, another unit
		UnitID:  2,
		Tags: []drivers.Tag{
			{Name: "door_open", Address: "40001.16", Type: drivers.TypeBool},
		},
	}
	_, err := New([]drivers.Device{press, oven}, Options{}, nil)
	var fe *drivers.FieldError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		if errors.As(e, &fe) {
			fmt.Printf("%s: %s\n", fe.Device, fe)
		}
	}
	// Output:
	// press-1: tags[1].byte_order: "CDBA": want "" or "ABCD" (big-endian, the default), "CDAB" (word-swapped), "BADC" (byte-swapped) or "DCBA" (little-endian) for float32
	// oven-1: tags[0].address: "40001.16": bit must be 0..15
}
