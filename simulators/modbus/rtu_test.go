package modbus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goburrow/modbus"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/floorlink/floorlink/simulators/line"
	simmodbus "github.com/floorlink/floorlink/simulators/modbus"
	"github.com/floorlink/floorlink/simulators/simtest"
)

// RTU tests: the server on a pty it serves through simmodbus.OpenPTY, read by goburrow's stock
// RTU client, by mbpoll (libmodbus) and by a raw client framed here from the serial line spec.

// startRTU is start plus the same server on a pty, so TCP and RTU serve one line and one set
// of faults. The pty's path is f.rtuPath.
func startRTU(t testing.TB, cfg line.Config, opts simmodbus.Options, ro simmodbus.RTUOptions) *fixture {
	t.Helper()
	f := start(t, cfg, opts)
	p, err := simmodbus.OpenPTY(ro)
	if err != nil {
		t.Fatal(err)
	}
	f.rtuPath = p.Path()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.RunRTU(ctx, p.Port(), ro) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("RunRTU: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("RunRTU did not return within 5s of its context ending")
		}
		if err := p.Close(); err != nil {
			t.Errorf("close pty: %v", err)
		}
	})
	return f
}

// rtuClient returns goburrow's stock RTU client for unit on the pty, 115200 8N1.
func (f *fixture) rtuClient(t testing.TB, unit byte, timeout time.Duration) (modbus.Client, *modbus.RTUClientHandler) {
	t.Helper()
	h := modbus.NewRTUClientHandler(f.rtuPath)
	h.BaudRate, h.DataBits, h.Parity, h.StopBits = 115200, 8, "N", 1
	h.SlaveId = unit
	h.Timeout = timeout
	t.Cleanup(func() { h.Close() })
	return modbus.NewClient(h), h
}

// rawRTU is a client that writes bytes onto the line and reads what comes back, with times.
type rawRTU struct {
	f *os.File
}

func openRaw(t testing.TB, path string) *rawRTU {
	t.Helper()
	// The pty is raw already (OpenPTY); O_NONBLOCK lets the runtime poller serve deadlines.
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &rawRTU{f: f}
}

func (c *rawRTU) send(t testing.TB, b []byte) time.Time {
	t.Helper()
	at := time.Now()
	if _, err := c.f.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
	return at
}

// chunk is what one read returned, and when.
type chunk struct {
	at time.Time
	b  []byte
}

// read reads until n bytes arrived or the deadline passed, returning each read separately.
func (c *rawRTU) read(n int, deadline time.Time) ([]chunk, error) {
	var got []chunk
	total := 0
	c.f.SetReadDeadline(deadline)
	for total < n {
		buf := make([]byte, 512)
		k, err := c.f.Read(buf)
		if k > 0 {
			got = append(got, chunk{time.Now(), buf[:k]})
			total += k
		}
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// frame reads one answer of n bytes within 5 s.
func (c *rawRTU) frame(t testing.TB, n int) []byte {
	t.Helper()
	got, err := c.read(n, time.Now().Add(5*time.Second))
	b := join(got)
	if err != nil || len(b) != n {
		t.Fatalf("read %d bytes (% x), %v; want %d", len(b), b, err, n)
	}
	return b
}

// quiet fails if anything arrives within d: the only way to see that no answer comes.
func (c *rawRTU) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	got, err := c.read(1, time.Now().Add(d))
	if !errors.Is(err, os.ErrDeadlineExceeded) || len(got) > 0 {
		t.Fatalf("got % x (%v) within %v, want silence", join(got), err, d)
	}
}

func join(cs []chunk) []byte {
	var b []byte
	for _, c := range cs {
		b = append(b, c.b...)
	}
	return b
}

// rtuRead is a read request ADU, CRC by refCRC (in rtuframe_test.go, another package: written
// again here from the spec's table method).
func rtuRead(unit, fc byte, addr, qty uint16) []byte {
	return withCRC(unit, fc, byte(addr>>8), byte(addr), byte(qty>>8), byte(qty))
}

func withCRC(b ...byte) []byte {
	crc := uint16(0xFFFF)
	for _, x := range b {
		crc ^= uint16(x)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return append(b, byte(crc), byte(crc>>8))
}

func crcOK(f []byte) bool {
	return len(f) >= 4 && bytes.Equal(withCRC(f[:len(f)-2]...), f)
}

func TestRTU_Goburrow(t *testing.T) {
	f := startRTU(t, line.Config{Seed: 5, InitialParts: 65_500}, simmodbus.Options{}, simmodbus.RTUOptions{})
	f.step(6000)
	for unit := 1; unit <= 3; unit++ {
		c, _ := f.rtuClient(t, byte(unit), 2*time.Second)
		b, err := c.ReadHoldingRegisters(0, 20)
		if err != nil {
			t.Fatalf("unit %d: read holding 0-19: %v", unit, err)
		}
		if diff := cmp.Diff(wantHolding(f.snapshot(unit)), decodeHolding(b)); diff != "" {
			t.Errorf("unit %d: holding 0-19 (-snapshot +served):\n%s", unit, diff)
		}
		b, err = c.ReadInputRegisters(2, 2)
		if err != nil || u32(b, 0) != f.snapshot(unit).Tick {
			t.Errorf("unit %d: input 2-3: % x, %v; want tick %d", unit, b, err, f.snapshot(unit).Tick)
		}
		b, err = c.ReadCoils(0, 3)
		if err != nil || len(b) != 1 {
			t.Errorf("unit %d: coils 0-2: % x, %v", unit, b, err)
		}
		_, err = c.ReadHoldingRegisters(100, 1)
		if got := exceptionCode(t, err, 3); got != byte(simmodbus.IllegalDataAddress) {
			t.Errorf("unit %d: holding 100: exception %d, want 2", unit, got)
		}
		_, err = c.WriteSingleRegister(0, 1)
		if got := exceptionCode(t, err, 6); got != byte(simmodbus.IllegalFunction) {
			t.Errorf("unit %d: write: exception %d, want 1", unit, got)
		}
	}
}

// mbpollValues runs Debian's mbpoll (libmodbus) once against the pty and returns the registers it
// printed, by address.
func mbpollValues(t *testing.T, path string, args ...string) (map[int]int, string, error) {
	t.Helper()
	all := append([]string{"-m", "rtu", "-b", "115200", "-P", "none", "-0", "-1", "-o", "2"}, args...)
	out, err := exec.Command("mbpoll", append(all, path)...).CombinedOutput()
	vals := map[int]int{}
	for _, m := range regexp.MustCompile(`(?m)^\[(\d+)\]:\s+(0x[0-9A-Fa-f]+|-?\d+)`).FindAllStringSubmatch(string(out), -1) {
		addr, _ := strconv.Atoi(m[1])
		v, _ := strconv.ParseInt(m[2], 0, 32)
		vals[addr] = int(v)
	}
	return vals, string(out), err
}

func TestRTU_Mbpoll(t *testing.T) {
	f := startRTU(t, line.Config{Seed: 9}, simmodbus.Options{}, simmodbus.RTUOptions{})
	f.step(3000)
	for unit := 1; unit <= 3; unit++ {
		vals, out, err := mbpollValues(t, f.rtuPath, "-a", strconv.Itoa(unit), "-r", "0", "-c", "20", "-t", "4:hex")
		if err != nil {
			t.Fatalf("unit %d: mbpoll: %v\n%s", unit, err, out)
		}
		m := f.snapshot(unit)
		want := map[int]int{
			0: int(m.State), 1: int(m.Tick >> 16), 2: int(m.Tick & 0xFFFF), 9: int(uint16(m.PartsTotal)),
			14: int(m.CycleTimeMs), 15: int(m.IdealCycleTimeMs), 16: int(m.AlarmCode),
		}
		for addr, w := range want {
			if got, ok := vals[addr]; !ok || got != w {
				t.Errorf("unit %d: mbpoll shows holding %d = %d (present %v), want %d\n%s", unit, addr, got, ok, w, out)
			}
		}
		if len(vals) != 20 {
			t.Errorf("unit %d: mbpoll printed %d registers, want 20:\n%s", unit, len(vals), out)
		}
	}
	// Exceptions reach libmodbus too.
	_, out, err := mbpollValues(t, f.rtuPath, "-a", "1", "-r", "100", "-c", "1", "-t", "4")
	if err == nil || !regexp.MustCompile(`(?i)illegal data address`).MatchString(out) {
		t.Errorf("mbpoll of holding 100: %v, want exit 1 and illegal data address:\n%s", err, out)
	}
	// The layout block through libmodbus's own decoders: mbpoll's 32-bit modes read the low word
	// first (our CDAB) and, with -B, the high word first (our ABCD).
	addr := map[string]uint16{}
	for _, l := range simmodbus.Layouts() {
		addr[l.Name] = l.Address
	}
	for _, tt := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"int16_abcd_neg", []string{"-t", "3"}, "53191 (-12345)"},
		{"int32_abcd_neg", []string{"-t", "3:int", "-B"}, "-123456789"},
		{"int32_cdab_neg", []string{"-t", "3:int"}, "-123456789"},
		{"float32_abcd_pi", []string{"-t", "3:float", "-B"}, "3.14159"},
		{"float32_cdab_pi", []string{"-t", "3:float"}, "3.14159"},
		{"float32_cdab_neg", []string{"-t", "3:float"}, "-123.456"},
	} {
		a := strconv.Itoa(int(addr[tt.name]))
		_, out, err := mbpollValues(t, f.rtuPath, append([]string{"-a", "2", "-r", a, "-c", "1"}, tt.flags...)...)
		if want := "[" + a + "]: \t" + tt.want; err != nil || !strings.Contains(out, want) {
			t.Errorf("mbpoll %v of %s: %v, want %q in:\n%s", tt.flags, tt.name, err, want, out)
		}
	}
}

func TestRTU_NoAnswer(t *testing.T) {
	f := startRTU(t, line.Config{}, simmodbus.Options{}, simmodbus.RTUOptions{NoPacing: true})
	c := openRaw(t, f.rtuPath)
	good := rtuRead(1, 3, 0, 1)
	tests := []struct {
		name string
		req  []byte
	}{
		{"crc low byte corrupted", func() []byte { b := bytes.Clone(good); b[6] ^= 0x01; return b }()},
		{"crc high byte corrupted", func() []byte { b := bytes.Clone(good); b[7] ^= 0x80; return b }()},
		{"data corrupted", func() []byte { b := bytes.Clone(good); b[5] ^= 0x04; return b }()},
		{"unit not on the bus", rtuRead(9, 3, 0, 1)},
		{"broadcast", rtuRead(0, 3, 0, 1)},
		{"cut short", good[:6]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.send(t, tt.req)
			c.quiet(t, 300*time.Millisecond)
			// The line is usable at once: the next good request is answered.
			c.send(t, good)
			if b := c.frame(t, 7); !crcOK(b) || b[0] != 1 || b[1] != 3 || b[2] != 2 {
				t.Errorf("answer % x, want unit 1, function 3, 2 bytes and a good CRC", b)
			}
		})
	}
}

func TestRTU_GarbageBeforeRequest(t *testing.T) {
	f := startRTU(t, line.Config{}, simmodbus.Options{}, simmodbus.RTUOptions{NoPacing: true})
	req := rtuRead(2, 4, 0, 4)
	tests := []struct {
		name  string
		parts [][]byte // written one after the other; a pause of 100 ms between
	}{
		{"noise in the same write", [][]byte{append([]byte{0x00, 0xFF, 0x13, 0x37}, req...)}},
		{"noise, pause, request", [][]byte{{0x00, 0xFF, 0x13}, req}},
		{"half a frame, pause, request", [][]byte{req[:5], req}},
		{"a long frame's start swallows it until the silence", [][]byte{append([]byte{2, 16, 0, 0, 0, 100, 200}, req...)}},
		{"an answer from another device first", [][]byte{append(withCRC(7, 3, 2, 0, 1), req...)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openRaw(t, f.rtuPath)
			for i, p := range tt.parts {
				if i > 0 {
					c.quiet(t, 100*time.Millisecond) // and nothing answered the garbage
				}
				c.send(t, p)
			}
			b := c.frame(t, 3+8+2)
			m := f.snapshot(2)
			if !crcOK(b) || b[0] != 2 || b[1] != 4 || b[2] != 8 || u32(b[3:], 2) != m.Tick {
				t.Errorf("answer % x, want unit 2's input registers 0-3 (tick %d)", b, m.Tick)
			}
			c.quiet(t, 100*time.Millisecond) // answered once
		})
	}
}

// TestRTU_Pacing checks the lower bound of paced answers: each exchange takes at least its wire
// time at 9600 baud (request and answer at 10 or 11 bits a character, plus 3.5 characters of
// silence).
func TestRTU_Pacing(t *testing.T) {
	const n = 10
	for _, ro := range []simmodbus.RTUOptions{
		{Baud: 9600, Parity: simmodbus.ParityNone},
		{Baud: 9600, Parity: simmodbus.ParityEven},
		{Baud: 9600, StopBits: 2},
		{Baud: 115200},
	} {
		t.Run(fmt.Sprintf("%d-%s-%d", ro.Baud, ro.Parity, ro.StopBits), func(t *testing.T) {
			f := startRTU(t, line.Config{}, simmodbus.Options{}, ro)
			c := openRaw(t, f.rtuPath)
			req := rtuRead(1, 3, 0, 10)
			begin := time.Now()
			for range n {
				c.send(t, req)
				if b := c.frame(t, 25); !crcOK(b) {
					t.Fatalf("answer % x: bad CRC", b)
				}
			}
			took := time.Since(begin)
			bits := 10
			if ro.Parity == simmodbus.ParityEven || ro.StopBits == 2 {
				bits = 11
			}
			// Written from the serial line spec here, not from RTUOptions.WireTime.
			char := time.Duration(bits) * time.Second / time.Duration(ro.Baud)
			gap := 7 * char / 2
			if ro.Baud > 19200 {
				gap = 1750 * time.Microsecond
			}
			wire := n * ((8+25)*char + gap)
			if took < wire {
				t.Errorf("%d exchanges took %v, less than their wire time %v", n, took, wire)
			}
			if w := n * ro.WireTime(8, 25); w != wire {
				t.Errorf("RTUOptions.WireTime gives %v for %d exchanges, want %v", w, n, wire)
			}
			t.Logf("%d exchanges of 8+25 bytes: %v, wire time %v (%.2f)", n, took, wire, float64(took)/float64(wire))
		})
	}
}

func TestRTU_Fragments(t *testing.T) {
	for _, ro := range []simmodbus.RTUOptions{{NoPacing: true}, {Baud: 9600}} {
		t.Run(fmt.Sprintf("pacing=%v", !ro.NoPacing), func(t *testing.T) {
			f := startRTU(t, line.Config{}, simmodbus.Options{}, ro)
			f.srv.SetFragments(simmodbus.Fragments{Gap: 20 * time.Millisecond})
			c := openRaw(t, f.rtuPath)
			for _, tt := range []struct {
				req  []byte
				size int
			}{
				{rtuRead(1, 3, 0, 10), 25},    // 9+9+7
				{rtuRead(1, 3, 100, 1), 5},    // an exception: 2+2+1
				{rtuRead(3, 1, 0, 16), 3 + 4}, // 3+3+1
			} {
				measureFragments(t, 3, func() []chunk {
					c.send(t, tt.req)
					got, err := c.read(tt.size, time.Now().Add(5*time.Second))
					if b := join(got); err != nil || !crcOK(b) {
						t.Fatalf("answer % x, %v", b, err)
					}
					return got
				})
			}
			// goburrow reassembles them.
			cl, _ := f.rtuClient(t, 2, 2*time.Second)
			if b, err := cl.ReadHoldingRegisters(14, 2); err != nil || u16(b, 1) != 2500 {
				t.Errorf("goburrow through fragments: % x, %v; want ideal cycle 2500", b, err)
			}
		})
	}
}

// measureFragments checks that an answer arrives in pieces pieces at least 15 ms apart (the server
// pauses 20 ms), as read by the client. On a loaded machine the client or the kernel may deliver a
// piece late, which shortens the gap after it or merges two pieces; a delay never makes gaps
// appear, so up to five answers are measured and one clean one suffices.
func measureFragments(t *testing.T, pieces int, answer func() []chunk) {
	t.Helper()
	var problems []string
	for attempt := range 5 {
		got := answer()
		var gaps []time.Duration
		for i := 1; i < len(got); i++ {
			gaps = append(gaps, got[i].at.Sub(got[i-1].at))
		}
		t.Logf("attempt %d: %d bytes in %d reads, gaps %v", attempt, len(join(got)), len(got), gaps)
		problem := ""
		if len(got) != pieces {
			problem = fmt.Sprintf("%d reads, want %d pieces", len(got), pieces)
		}
		for i, g := range gaps {
			if g < 15*time.Millisecond {
				problem = fmt.Sprintf("piece %d arrived %v after the one before, want at least 15ms", i+1, g)
			}
		}
		if problem == "" {
			return
		}
		problems = append(problems, problem)
	}
	t.Errorf("no answer in clean pieces in 5 attempts: %v", problems)
}

// TestRTU_Late: the late answer reaches the line after the client's timeout, behind the answer
// of another unit asked meanwhile, where the client's next read finds it.
func TestRTU_Late(t *testing.T) {
	const late, timeout = 600 * time.Millisecond, 200 * time.Millisecond
	f := startRTU(t, line.Config{}, simmodbus.Options{}, simmodbus.RTUOptions{})
	f.srv.SetUnitLate(1, late)
	c := openRaw(t, f.rtuPath)
	sent := c.send(t, rtuRead(1, 3, 15, 1))
	c.quiet(t, timeout) // the client gives up
	c.send(t, rtuRead(2, 3, 15, 1))
	b := c.frame(t, 7)
	if !crcOK(b) || b[0] != 2 || u16(b[3:], 0) != 2500 {
		t.Fatalf("answer % x, want unit 2's ideal cycle time 2500", b)
	}
	b = c.frame(t, 7)
	arrived := time.Since(sent)
	if !crcOK(b) || b[0] != 1 || u16(b[3:], 0) != 2000 {
		t.Fatalf("late answer % x, want unit 1's ideal cycle time 2000", b)
	}
	if arrived < late {
		t.Errorf("late answer after %v, want at least %v", arrived, late)
	}
	t.Logf("late answer on the line %v after its request", arrived)
	f.srv.SetUnitLate(1, 0)
	c.send(t, rtuRead(1, 3, 15, 1))
	if b := c.frame(t, 7); b[0] != 1 {
		t.Errorf("answer % x after clearing, want unit 1's", b)
	}
}

// TestRTU_DelayAndSilence: units on one bus are separate devices: a delayed or silent one holds
// up only itself.
func TestRTU_DelayAndSilence(t *testing.T) {
	f := startRTU(t, line.Config{}, simmodbus.Options{}, simmodbus.RTUOptions{})
	c := openRaw(t, f.rtuPath)

	f.srv.SetUnitDelay(1, 500*time.Millisecond)
	sent := c.send(t, rtuRead(1, 3, 0, 1))
	c.send(t, rtuRead(3, 3, 0, 1))
	if b := c.frame(t, 7); b[0] != 3 {
		t.Errorf("first answer from unit %d, want 3 (unit 1 is delayed)", b[0])
	}
	if b := c.frame(t, 7); b[0] != 1 || time.Since(sent) < 500*time.Millisecond {
		t.Errorf("second answer from unit %d after %v, want unit 1 after 500ms", b[0], time.Since(sent))
	}
	f.srv.SetUnitDelay(1, 0)

	f.srv.SetUnitSilent(2, true)
	cl2, _ := f.rtuClient(t, 2, 300*time.Millisecond)
	if _, err := cl2.ReadHoldingRegisters(0, 1); err == nil {
		t.Error("silent unit 2 answered")
	}
	cl1, _ := f.rtuClient(t, 1, 2*time.Second)
	if _, err := cl1.ReadHoldingRegisters(0, 1); err != nil {
		t.Errorf("unit 1 while unit 2 is silent: %v", err)
	}
	f.srv.SetUnitSilent(2, false)
	if _, err := cl2.ReadHoldingRegisters(0, 1); err != nil {
		t.Errorf("unit 2 after it spoke again: %v", err)
	}
}

func TestRTU_AddressExceptions(t *testing.T) {
	f := startRTU(t, line.Config{}, simmodbus.Options{}, simmodbus.RTUOptions{})
	f.srv.SetAddressExceptions(simmodbus.AddressException{Unit: 1, Table: simmodbus.HoldingRegisters, First: 40, Last: 42, Code: 2})
	c, _ := f.rtuClient(t, 1, 2*time.Second)
	_, err := c.ReadHoldingRegisters(0, 100)
	if got := exceptionCode(t, err, 3); got != 2 {
		t.Errorf("holding 0-99: exception %d, want 2", got)
	}
	if _, err := c.ReadHoldingRegisters(43, 57); err != nil {
		t.Errorf("holding 43-99: %v", err)
	}
}

// TestRTU_TCPTogether: one server, one line, two framings at once; OnRequest sees both.
func TestRTU_TCPTogether(t *testing.T) {
	var mu sync.Mutex
	var units []byte
	f := startRTU(t, line.Config{}, simmodbus.Options{OnRequest: func(r simmodbus.Request) {
		mu.Lock()
		units = append(units, r.Unit)
		mu.Unlock()
	}}, simmodbus.RTUOptions{})
	f.step(77)
	rtu, _ := f.rtuClient(t, 1, 2*time.Second)
	tcp, _ := f.client(t, 2)
	var wg sync.WaitGroup
	for _, c := range []modbus.Client{rtu, tcp} {
		wg.Go(func() {
			for range 20 {
				b, err := c.ReadHoldingRegisters(1, 2)
				if err != nil || u32(b, 0) != 77 {
					t.Errorf("tick % x, %v; want 77", b, err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(units) != 40 {
			return fmt.Errorf("observed %d requests, want 40", len(units))
		}
		return nil
	})
}

// TestRTU_SerialDevice serves a serial device given by path (OpenSerial): a pty made here stands
// in for /dev/ttyUSB0, and the test is the client on its other side.
func TestRTU_SerialDevice(t *testing.T) {
	master, slave := simtest.PTYPair(t)
	f := start(t, line.Config{}, simmodbus.Options{})
	ro := simmodbus.RTUOptions{Baud: 19200, Parity: simmodbus.ParityEven, NoPacing: true}
	dev, err := simmodbus.OpenSerial(slave.Name(), ro)
	if err != nil {
		t.Fatal(err)
	}
	termios, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS) // slave is the test's, blocking is fine
	if err != nil {
		t.Fatal(err)
	}
	// A pty keeps the speed but drops parity (the kernel's pty_set_termios clears PARENB): only
	// a real UART shows it.
	if termios.Cflag&unix.CBAUD != unix.B19200 || termios.Cflag&unix.CSIZE != unix.CS8 ||
		termios.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 || termios.Oflag&unix.OPOST != 0 {
		t.Errorf("device termios cflag %#o lflag %#o oflag %#o: want 19200 baud, 8 bits, raw", termios.Cflag, termios.Lflag, termios.Oflag)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.RunRTU(ctx, dev, ro) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunRTU: %v", err)
		}
	}()
	if _, err := master.Write(rtuRead(3, 3, 15, 1)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 7)
	simtest.ReadFull(t, master, b)
	if !crcOK(b) || b[0] != 3 || u16(b[3:], 0) != 1800 {
		t.Errorf("answer % x, want unit 3's ideal cycle time 1800", b)
	}
	if _, err := simmodbus.OpenSerial(slave.Name(), simmodbus.RTUOptions{Baud: 12345}); err == nil {
		t.Error("OpenSerial at 12345 baud succeeded, want an error: no such termios speed")
	}
}

func TestRunRTU_ContextEnds(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	p, err := simmodbus.OpenPTY(simmodbus.RTUOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.RunRTU(ctx, p.Port(), simmodbus.RTUOptions{}) }()
	c := openRaw(t, p.Path())
	f.srv.SetUnitDelay(1, time.Hour)
	f.srv.SetUnitLate(2, time.Hour)
	c.send(t, rtuRead(1, 3, 0, 1))
	c.send(t, rtuRead(2, 3, 0, 1))
	c.send(t, rtuRead(3, 3, 0, 1))
	c.frame(t, 7) // unit 3: everything is under way
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunRTU returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunRTU did not return within 5s of its context ending")
	}
}

func TestRunRTU_BadOptions(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	for _, ro := range []simmodbus.RTUOptions{{Baud: -1}, {Parity: "mark"}, {StopBits: 3}, {Silence: -time.Second}} {
		p, err := simmodbus.OpenPTY(simmodbus.RTUOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.srv.RunRTU(context.Background(), p.Port(), ro); err == nil {
			t.Errorf("RunRTU with %+v succeeded", ro)
		}
		if _, err := simmodbus.OpenPTY(ro); err == nil {
			t.Errorf("OpenPTY with %+v succeeded", ro)
		}
		p.Close()
	}
}

// TestRTU_BusyUnitDoesNotStallTheBus: a unit delayed for an hour, asked again and again as a
// driver retrying after timeouts would, never holds up the other units.
func TestRTU_BusyUnitDoesNotStallTheBus(t *testing.T) {
	f := startRTU(t, line.Config{}, simmodbus.Options{}, simmodbus.RTUOptions{NoPacing: true})
	f.srv.SetUnitDelay(1, time.Hour)
	c := openRaw(t, f.rtuPath)
	for i := range 40 {
		c.send(t, rtuRead(1, 3, 0, 1))
		c.send(t, rtuRead(2, 3, 15, 1))
		if b := c.frame(t, 7); b[0] != 2 || u16(b[3:], 0) != 2500 {
			t.Fatalf("round %d: answer % x, want unit 2's", i, b)
		}
	}
}
