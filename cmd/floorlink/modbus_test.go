package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/simulators/simtest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// runScan runs `modbus scan` with args and returns its output; the address of the simulator
// is written as SIM in the golden files.
func runScan(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newModbusCommand(&out)
	cmd.SetArgs(append([]string{"scan"}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.ExecuteContext(t.Context())
	return strings.ReplaceAll(out.String(), addr, "SIM"), err
}

// TestModbusScan reads plcsim (in process, stepped by hand to a fixed tick) and compares the
// scan with golden files: machine 1's holding registers, the end of its map where the device
// answers exception 2, its coils, and the YAML skeleton.
func TestModbusScan(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Manual: true})
	sim.Advance(6000) // ten minutes of line time: counters, warm machines
	url := "tcp://" + sim.ModbusAddr()
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"modbus_scan_hr.golden", []string{url, "--unit", "1", "--start", "0", "--count", "24"}},
		{"modbus_scan_holes.golden", []string{url, "--unit", "2", "--start", "97", "--count", "6"}},
		{"modbus_scan_coils.golden", []string{url, "--unit", "1", "--table", "co", "--count", "18"}},
		{"modbus_scan_yaml.golden", []string{url, "--unit", "1", "--start", "8", "--count", "6", "--yaml"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, err := runScan(t, sim.ModbusAddr(), tc.args...)
			if err != nil {
				t.Fatalf("scan: %v\n%s", err, out)
			}
			golden(t, tc.golden, out)
		})
	}
}

// TestModbusScan_RTU scans plcsim's layout block over its pseudo-terminal at 115200 baud: the
// output is the TCP scan's of the same registers, and shows the block's known int32 -123456789
// in each of the four byte orders, and its text.
func TestModbusScan_RTU(t *testing.T) {
	sim := simtest.Start(t, simtest.Options{Manual: true, RTU: true})
	rtu := "rtu://" + sim.RTUPath() + "?baud=115200"
	args := []string{"--unit", "3", "--table", "ir", "--start", "1040", "--count", "8"}
	viaTCP, err := runScan(t, sim.ModbusAddr(), append([]string{"tcp://" + sim.ModbusAddr()}, args...)...)
	if err != nil {
		t.Fatalf("scan over tcp: %v\n%s", err, viaTCP)
	}
	viaRTU, err := runScan(t, sim.RTUPath(), append([]string{rtu}, args...)...)
	if err != nil {
		t.Fatalf("scan over rtu: %v\n%s", err, viaRTU)
	}
	_, body, _ := strings.Cut(viaRTU, "\n")
	_, tcpBody, _ := strings.Cut(viaTCP, "\n")
	if diff := cmp.Diff(tcpBody, body); diff != "" {
		t.Errorf("scan over rtu differs from tcp (-tcp +rtu):\n%s", diff)
	}
	// The pairs section: "ir:N ORDER hex int32 ..." then three "ORDER hex int32 ..." lines.
	int32s := map[string]string{}
	_, pairs, _ := strings.Cut(body, "# pairs")
	reg := ""
	for _, line := range strings.Split(pairs, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], "ir:") {
			reg, f = f[0], f[1:]
		}
		if len(f) >= 3 {
			int32s[reg+" "+f[0]] = f[2]
		}
	}
	// Layout int32_<order>_neg is at ir:1040, 1042, 1044, 1046, each in its own order.
	for i, order := range []string{"ABCD", "CDAB", "BADC", "DCBA"} {
		k := fmt.Sprintf("ir:%d %s", 1040+2*i, order)
		if got := int32s[k]; got != "-123456789" {
			t.Errorf("%s as int32: got %q, want -123456789", k, got)
		}
	}
	text, err := runScan(t, sim.RTUPath(), rtu, "--unit", "3", "--table", "ir", "--start", "1310", "--count", "8")
	if err != nil {
		t.Fatalf("scan over rtu: %v\n%s", err, text)
	}
	for _, want := range []string{"FL", "OO", "RL", "IN", "K-", "PL", "CS", "IM"} {
		if !strings.Contains(text, "  "+want+"\n") {
			t.Errorf("the text FLOORLINK-PLCSIM: no register shows %q:\n%s", want, text)
		}
	}
}

func TestModbusScan_Errors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"http://plc"}, `"http://plc": want tcp://HOST:PORT or rtu:///dev/ttyX?baud=...`},
		{[]string{"rtu://dev/ttyUSB0"}, `want rtu:///dev/ttyUSB0?baud=9600 (three slashes`},
		{[]string{"rtu:///dev/ttyUSB0?baud=fast"}, `baud="fast" is not a number`},
		{[]string{"rtu:///dev/ttyUSB0?speed=9600"}, `unknown parameter "speed"`},
		{[]string{"rtu:///dev/ttyUSB0?baud=9601"}, `serial.baud: 9601: want 1200`},
		{[]string{"rtu:///dev/does-not-exist-floorlink"}, `open /dev/does-not-exist-floorlink`},
		{[]string{"tcp://127.0.0.1:1", "--table", "xx"}, `--table "xx": want hr, ir, co or di`},
		{[]string{"tcp://127.0.0.1:1", "--start", "65535", "--count", "2"}, `--count 2 from --start 65535`},
	} {
		_, err := runScan(t, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("scan %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func TestParseScanURL(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://10.0.0.5":      "modbus-tcp 10.0.0.5:502 {0 0  0}",
		"tcp://10.0.0.5:1502": "modbus-tcp 10.0.0.5:1502 {0 0  0}",
		"tcp://[::1]:502":     "modbus-tcp [::1]:502 {0 0  0}",
		"rtu:///dev/ttyUSB0":  "modbus-rtu /dev/ttyUSB0 {0 0  0}",
		"rtu:///dev/ttyS1?baud=19200&parity=even&data_bits=8&stop_bits=1": "modbus-rtu /dev/ttyS1 {19200 8 even 1}",
	} {
		p, a, l, err := parseScanURL(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := p + " " + a + " " + fmt.Sprint(l); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}
