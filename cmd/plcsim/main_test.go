package main_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goburrow/modbus"
	"go.uber.org/goleak"
)

// bin is the plcsim binary, built once by TestMain (without -race, as STYLE.md asks).
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plcsim-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "plcsim")
	// go test puts its GOROOT's bin first in PATH, so this is the same toolchain.
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build plcsim: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

var (
	tcpLine = regexp.MustCompile(`^modbus-tcp listening on (127\.0\.0\.1:\d+)$`)
	rtuLine = regexp.MustCompile(`^modbus-rtu listening on (/\S+)$`)
)

// process is a running plcsim.
type process struct {
	cmd     *exec.Cmd
	addr    string // from the modbus-tcp line, if any
	rtuPath string // from the modbus-rtu line, if any
	stderr  *bytes.Buffer
	done    chan error
}

// startPlcsim runs plcsim with args and waits for its address lines, as args call for them: the
// TCP line (unless an RTU flag comes without --modbus-tcp), then the RTU line, and no other. The
// process is killed at cleanup if still running; its stderr is printed if the test failed.
func startPlcsim(t *testing.T, args ...string) *process {
	t.Helper()
	rtu := slices.Contains(args, "--modbus-rtu") || slices.Contains(args, "--rtu-device")
	tcp := !rtu || slices.Contains(args, "--modbus-tcp")
	p := &process{cmd: exec.Command(bin, args...), stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var want []*regexp.Regexp
	if tcp {
		want = append(want, tcpLine)
	}
	if rtu {
		want = append(want, rtuLine)
	}
	lines := make(chan string, len(want))
	go func() {
		// Read stdout to the end so that Wait can return.
		sc := bufio.NewScanner(stdout)
		n := 0
		for sc.Scan() {
			if n < len(want) {
				lines <- sc.Text()
			} else {
				t.Errorf("unexpected stdout line %q", sc.Text())
			}
			n++
		}
		close(lines)
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("plcsim stderr:\n%s", p.stderr)
		}
	})
	timeout := time.After(10 * time.Second)
	for _, re := range want {
		select {
		case line, ok := <-lines:
			m := re.FindStringSubmatch(line)
			if !ok || m == nil {
				t.Fatalf("stdout line %q, want %q", line, re)
			}
			if re == tcpLine {
				p.addr = m[1]
			} else {
				p.rtuPath = m[1]
			}
		case <-timeout:
			t.Fatal("no address line within 10s")
		}
	}
	return p
}

// wait returns plcsim's exit code, failing if it does not exit within limit.
func (p *process) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
		return 0
	case <-time.After(limit):
		t.Fatalf("plcsim still running %v after the signal", limit)
		return -1
	}
}

func TestPlcsim_ServeAndStop(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			p := startPlcsim(t, "--modbus-tcp", "127.0.0.1:0", "--machines", "2", "--speed", "10")
			h := modbus.NewTCPClientHandler(p.addr)
			h.SlaveId = 2
			h.Timeout = 5 * time.Second
			defer h.Close()
			c := modbus.NewClient(h)
			b, err := c.ReadHoldingRegisters(0, 20)
			if err != nil {
				t.Fatalf("read holding 0-19 of unit 2: %v", err)
			}
			if state := binary.BigEndian.Uint16(b); state < 1 || state > 6 {
				t.Errorf("state %d outside 1..6", state)
			}
			if ideal := binary.BigEndian.Uint16(b[2*15:]); ideal != 2500 {
				t.Errorf("ideal cycle time of machine 2 = %d ms, want 2500", ideal)
			}
			h.SlaveId = 3
			_, err = c.ReadHoldingRegisters(0, 1)
			var me *modbus.ModbusError
			if !errors.As(err, &me) || me.ExceptionCode != 0x0B {
				t.Errorf("unit 3 of 2 machines: got %v, want exception 0x0B", err)
			}
			h.Close()

			begin := time.Now()
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 5*time.Second); code != 0 {
				t.Errorf("exit code %d after %v, want 0", code, sig)
			}
			if took := time.Since(begin); took > time.Second {
				t.Errorf("stopped %v after %v, want within 1s", took, sig)
			}
			if !strings.Contains(p.stderr.String(), "plcsim stopped") {
				t.Errorf("stderr lacks the stop event:\n%s", p.stderr)
			}
		})
	}
}

func TestPlcsim_Deterministic(t *testing.T) {
	// At speed 0.001 a tick lasts 100 s, so each process serves tick 0, whose noisy process
	// values depend on the seed alone.
	read := func(seed string) []byte {
		p := startPlcsim(t, "--modbus-tcp", "127.0.0.1:0", "--seed", seed, "--speed", "0.001")
		h := modbus.NewTCPClientHandler(p.addr)
		h.SlaveId = 1
		defer h.Close()
		b, err := modbus.NewClient(h).ReadHoldingRegisters(0, 20)
		if err != nil {
			t.Fatal(err)
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t, 5*time.Second); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		return b
	}
	a, b, c := read("7"), read("7"), read("8")
	if !bytes.Equal(a, b) {
		t.Errorf("seed 7 twice at tick 0:\n% x\n% x", a, b)
	}
	if bytes.Equal(a, c) {
		t.Errorf("seeds 7 and 8 served the same registers at tick 0: % x", a)
	}
}

// TestPlcsim_Registers: --registers 500 on 20 machines serves holding registers 100..599 of every
// unit by the README's formula, at the tick that the same request carries; 600 is exception 2.
func TestPlcsim_Registers(t *testing.T) {
	p := startPlcsim(t, "--modbus-tcp", "127.0.0.1:0", "--machines", "20", "--registers", "500")
	for unit := byte(1); unit <= 20; unit++ {
		h := modbus.NewTCPClientHandler(p.addr)
		h.SlaveId = unit
		h.Timeout = 5 * time.Second
		c := modbus.NewClient(h)
		// Registers 1..125 carry the tick and the first 26 extras in one request.
		b, err := c.ReadHoldingRegisters(1, 125)
		if err != nil {
			t.Fatalf("unit %d: read holding 1-125: %v", unit, err)
		}
		tick := binary.BigEndian.Uint32(b)
		for r := 100; r <= 125; r++ {
			i := r - 100
			if got, want := binary.BigEndian.Uint16(b[2*(r-1):]), uint16(i%256)<<8|uint16(tick%256); got != want {
				t.Errorf("unit %d: holding %d = %#04x at tick %d, want %#04x", unit, r, got, tick, want)
			}
		}
		// The rest of the block: the index byte is exact whatever the tick.
		for first := 126; first < 600; first += 125 {
			n := min(125, 600-first)
			b, err := c.ReadHoldingRegisters(uint16(first), uint16(n))
			if err != nil {
				t.Fatalf("unit %d: read holding %d-%d: %v", unit, first, first+n-1, err)
			}
			for j := range n {
				if got, want := b[2*j], byte(first+j-100); got != want {
					t.Errorf("unit %d: holding %d high byte %#02x, want %#02x", unit, first+j, got, want)
				}
			}
		}
		_, err = c.ReadHoldingRegisters(600, 1)
		var me *modbus.ModbusError
		if !errors.As(err, &me) || me.ExceptionCode != 2 {
			t.Errorf("unit %d: holding 600: got %v, want exception 2", unit, err)
		}
		h.Close()
	}
}

func TestPlcsim_BadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"machines 0", []string{"--machines", "0"}, 2, "--machines 0"},
		{"machines too many", []string{"--machines", "300", "--modbus-tcp", "127.0.0.1:0"}, 1, "machines 300"},
		{"negative speed", []string{"--speed", "-1"}, 2, "--speed -1"},
		{"step 0", []string{"--step", "0s"}, 2, "--step 0s"},
		{"registers negative", []string{"--registers", "-1"}, 2, "--registers -1"},
		{"registers too many", []string{"--registers", "65437", "--modbus-tcp", "127.0.0.1:0"}, 1, "extra values 65437"},
		{"step too long", []string{"--step", "5s", "--modbus-tcp", "127.0.0.1:0"}, 1, "step 5s"},
		{"unknown flag", []string{"--nope"}, 2, "flag provided but not defined"},
		{"argument", []string{"extra"}, 2, "unexpected arguments"},
		{"bad address", []string{"--modbus-tcp", "127.0.0.1:99999"}, 1, "listen modbus tcp"},
		{"help", []string{"--help"}, 0, "-modbus-tcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.Stdout = io.Discard
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit code %d, stderr:\n%s\nwant code %d and %q", code, stderr.String(), tt.code, tt.want)
			}
		})
	}
}

func TestPlcsim_PortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(bin, "--modbus-tcp", ln.Addr().String())
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "address already in use") {
		t.Errorf("got %v with output:\n%s\nwant exit 1 and the listen error", err, out)
	}
}
