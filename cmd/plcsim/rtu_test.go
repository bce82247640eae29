package main_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goburrow/modbus"

	"github.com/floorlink/floorlink/simulators/simtest"
)

func rtuClient(t *testing.T, path string, unit byte) (modbus.Client, *modbus.RTUClientHandler) {
	t.Helper()
	h := modbus.NewRTUClientHandler(path)
	h.BaudRate, h.DataBits, h.Parity, h.StopBits = 115200, 8, "N", 1
	h.SlaveId = unit
	h.Timeout = 2 * time.Second
	t.Cleanup(func() { h.Close() })
	return modbus.NewClient(h), h
}

// stop sends SIGINT and expects exit status 0 within 5 s.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGINT, want 0", code)
	}
}

func TestPlcsim_RTU(t *testing.T) {
	p := startPlcsim(t, "--modbus-rtu", "--machines", "2", "--speed", "10")
	// mbpoll (libmodbus): the ideal cycle times of both machines.
	for unit, want := range map[string]string{"1": "2000", "2": "2500"} {
		out, err := exec.Command("mbpoll", "-m", "rtu", "-b", "115200", "-P", "none", "-a", unit, "-0", "-r", "15", "-c", "1", "-t", "4", "-1", p.rtuPath).CombinedOutput()
		if err != nil || !regexp.MustCompile(`(?m)^\[15\]:\s+`+want+`$`).Match(out) {
			t.Errorf("mbpoll unit %s: %v, want holding 15 = %s:\n%s", unit, err, want, out)
		}
	}
	// goburrow: the state, and the tick moving on.
	c, _ := rtuClient(t, p.rtuPath, 2)
	read := func() (uint16, uint32) {
		b, err := c.ReadHoldingRegisters(0, 3)
		if err != nil {
			t.Fatalf("goburrow RTU read of unit 2: %v", err)
		}
		return binary.BigEndian.Uint16(b), binary.BigEndian.Uint32(b[2:])
	}
	state, first := read()
	if state < 1 || state > 6 {
		t.Errorf("state %d outside 1..6", state)
	}
	waitFor(t, 5*time.Second, func() error {
		if _, tick := read(); tick <= first {
			return fmt.Errorf("tick %d, want it past %d", tick, first)
		}
		return nil
	})
	p.stop(t)
	if !strings.Contains(p.stderr.String(), "modbus_rtu="+p.rtuPath) {
		t.Errorf("stderr lacks the RTU path:\n%s", p.stderr)
	}
}

// TestPlcsim_TCPAndRTU serves one line over both framings: the same machine reads the same there.
func TestPlcsim_TCPAndRTU(t *testing.T) {
	p := startPlcsim(t, "--modbus-tcp", "127.0.0.1:0", "--modbus-rtu", "--speed", "0.001", "--no-pacing")
	h := modbus.NewTCPClientHandler(p.addr)
	h.SlaveId = 3
	defer h.Close()
	viaTCP, err := modbus.NewClient(h).ReadHoldingRegisters(0, 20)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := rtuClient(t, p.rtuPath, 3)
	viaRTU, err := c.ReadHoldingRegisters(0, 20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(viaTCP, viaRTU) {
		t.Errorf("unit 3 at tick 0:\nTCP % x\nRTU % x", viaTCP, viaRTU)
	}
	p.stop(t)
}

// TestPlcsim_RTUDevice serves a serial device by path: a pty made here stands in for it.
func TestPlcsim_RTUDevice(t *testing.T) {
	master, slave := simtest.PTYPair(t)
	p := startPlcsim(t, "--rtu-device", slave.Name(), "--baud", "9600", "--parity", "even", "--stop-bits", "1")
	if p.rtuPath != slave.Name() {
		t.Errorf("printed %q, want the device %q", p.rtuPath, slave.Name())
	}
	// Read holding 15 of unit 1, framed here (CRC from the serial line spec's table method).
	req := []byte{1, 3, 0, 15, 0, 1}
	crc := uint16(0xFFFF)
	for _, b := range req {
		crc ^= uint16(b)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	req = append(req, byte(crc), byte(crc>>8))
	sent := time.Now()
	if _, err := master.Write(req); err != nil {
		t.Fatal(err)
	}
	answer := make([]byte, 7)
	simtest.ReadFull(t, master, answer)
	took := time.Since(sent)
	if answer[0] != 1 || answer[1] != 3 || answer[2] != 2 || binary.BigEndian.Uint16(answer[3:]) != 2000 {
		t.Errorf("answer % x, want unit 1's ideal cycle time 2000", answer)
	}
	// 8 + 7 characters of 11 bits at 9600 baud, and 3.5 characters between: 21 ms at least.
	if wire := 15*11*time.Second/9600 + 35*11*time.Second/96000; took < wire {
		t.Errorf("answer after %v, want at least the wire time %v", took, wire)
	}
	p.stop(t)
}

func TestPlcsim_FaultFlags(t *testing.T) {
	p := startPlcsim(t, "--modbus-tcp", "127.0.0.1:0", "--speed", "0.001",
		"--exception", "1:40-42:2", "--exception", "2:input:1000-1000:4",
		"--silent-unit", "3", "--unit-delay", "2:300ms", "--fragment-gap", "20ms")
	client := func(unit byte, timeout time.Duration) modbus.Client {
		h := modbus.NewTCPClientHandler(p.addr)
		h.SlaveId = unit
		h.Timeout = timeout
		t.Cleanup(func() { h.Close() })
		return modbus.NewClient(h)
	}
	code := func(err error) int {
		var me *modbus.ModbusError
		if errors.As(err, &me) {
			return int(me.ExceptionCode)
		}
		return -1
	}
	c1 := client(1, 2*time.Second)
	if _, err := c1.ReadHoldingRegisters(0, 100); code(err) != 2 {
		t.Errorf("unit 1 holding 0-99: %v, want exception 2", err)
	}
	if _, err := c1.ReadHoldingRegisters(43, 57); err != nil {
		t.Errorf("unit 1 holding 43-99: %v", err)
	}
	c2 := client(2, 2*time.Second)
	begin := time.Now()
	if _, err := c2.ReadInputRegisters(1000, 1); code(err) != 4 {
		t.Errorf("unit 2 input 1000: %v, want exception 4", err)
	}
	// 300 ms of delay and two 20 ms gaps between the pieces.
	if took := time.Since(begin); took < 340*time.Millisecond {
		t.Errorf("unit 2 answered after %v, want at least 340ms", took)
	}
	if _, err := client(3, 300*time.Millisecond).ReadHoldingRegisters(0, 1); err == nil {
		t.Error("silent unit 3 answered")
	}
	p.stop(t)
}

// TestPlcsim_Signals: SIGUSR1 drops the TCP connections, SIGUSR2 toggles refusing new ones.
func TestPlcsim_Signals(t *testing.T) {
	p := startPlcsim(t, "--modbus-tcp", "127.0.0.1:0", "--modbus-rtu")
	h := modbus.NewTCPClientHandler(p.addr)
	h.SlaveId = 1
	h.Timeout = 2 * time.Second
	defer h.Close()
	c := modbus.NewClient(h)
	if _, err := c.ReadHoldingRegisters(0, 1); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 5*time.Second, func() error {
		if _, err := c.ReadHoldingRegisters(0, 1); err == nil {
			return errors.New("the connection still answers after SIGUSR1")
		}
		return nil
	})
	h.Close()
	p.cmd.Process.Signal(syscall.SIGUSR2)
	waitFor(t, 5*time.Second, func() error {
		h.Close()
		if _, err := c.ReadHoldingRegisters(0, 1); err == nil {
			return errors.New("a new connection is served after SIGUSR2")
		}
		return nil
	})
	p.cmd.Process.Signal(syscall.SIGUSR2)
	waitFor(t, 5*time.Second, func() error {
		h.Close()
		_, err := c.ReadHoldingRegisters(0, 1)
		return err
	})
	// RTU is untouched by both.
	rc, _ := rtuClient(t, p.rtuPath, 1)
	if _, err := rc.ReadHoldingRegisters(0, 1); err != nil {
		t.Errorf("RTU after the signals: %v", err)
	}
	p.stop(t)
}

// waitFor polls cond until it returns nil or the deadline passes, then fails with its last error.
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		<-time.After(20 * time.Millisecond) // poll interval
	}
}

func TestPlcsim_BadRTUFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"both rtu flags", []string{"--modbus-rtu", "--rtu-device", "/dev/null"}, 2, "want one of them"},
		{"nothing to serve", []string{"--modbus-tcp", ""}, 2, "nothing to serve"},
		{"parity", []string{"--modbus-rtu", "--parity", "mark"}, 2, `--parity "mark"`},
		{"stop bits", []string{"--modbus-rtu", "--stop-bits", "3"}, 2, "--stop-bits 3"},
		{"baud", []string{"--modbus-rtu", "--baud", "0"}, 2, "--baud 0"},
		{"exception syntax", []string{"--exception", "1:40"}, 2, "want UNIT:[TABLE:]FIRST-LAST:CODE"},
		{"exception table", []string{"--exception", "1:outputs:40-42:2"}, 2, `table "outputs"`},
		{"exception range", []string{"--exception", "1:42-40:2"}, 2, `addresses "42-40"`},
		{"exception code", []string{"--exception", "1:40-42:0"}, 2, `code "0"`},
		{"silent unit", []string{"--silent-unit", "0"}, 2, `unit "0"`},
		{"late syntax", []string{"--late", "2"}, 2, "want UNIT:DURATION"},
		{"negative delay", []string{"--delay", "-1s"}, 2, "must not be negative"},
		{"no device", []string{"--rtu-device", "/nonexistent/ttyUSB9"}, 1, "open serial device"},
		{"not a tty", []string{"--rtu-device", "/dev/null"}, 1, "configure serial device"},
		{"device baud", []string{"--rtu-device", "/dev/null", "--baud", "12345"}, 1, "baud 12345"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(string(out), tt.want) {
				t.Errorf("exit code %d, output:\n%s\nwant code %d and %q", code, out, tt.code, tt.want)
			}
		})
	}
}
