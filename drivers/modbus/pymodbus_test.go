package modbus

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/floorlink/floorlink/drivers"
)

// python is Debian's interpreter, which has python3-pymodbus (a python3 earlier on PATH may
// not): research/modbus.md §3.
const python = "/usr/bin/python3"

// pyServerScript serves unit 1 from pymodbus 3.0 (zero_mode, so address N is register N):
// holding register i holds i, except the registers given on stdin as "address value" lines;
// input register i holds 3i (mod 65536); coil i is i even; discrete input i is i multiple of 3.
//
// Debian's python3-pymodbus 3.0 imports pyserial and pyserial-asyncio when it loads, even for
// TCP, without depending on their packages: the script stands in empty modules when they are
// missing (only the serial server would use them).
const pyServerScript = `
import sys, logging, types
for name in ("serial", "serial_asyncio"):
    try:
        __import__(name)
    except ImportError:
        stub = types.ModuleType(name)
        stub.create_serial_connection = None
        sys.modules[name] = stub
from pymodbus.datastore import ModbusSequentialDataBlock as Blk, ModbusSlaveContext, ModbusServerContext
from pymodbus.server import StartTcpServer
from pymodbus.transaction import ModbusSocketFramer
logging.basicConfig(level=logging.WARNING)
N = 4000
hr = list(range(N))
for line in sys.stdin:
    a, v = line.split()
    hr[int(a)] = int(v)
unit = ModbusSlaveContext(hr=Blk(0, hr), ir=Blk(0, [(3 * i) & 0xFFFF for i in range(N)]),
                          co=Blk(0, [i % 2 == 0 for i in range(N)]), di=Blk(0, [i % 3 == 0 for i in range(N)]),
                          zero_mode=True)
StartTcpServer(context=ModbusServerContext(slaves={1: unit}, single=False), address=("127.0.0.1", int(sys.argv[1])),
               framer=ModbusSocketFramer)
`

// startPymodbus starts the pymodbus server on a free loopback port with the holding registers
// regs set, waits until it accepts connections, and kills it in Cleanup. The port is reserved
// by listening and closing; if another process takes it first, it tries another.
func startPymodbus(t *testing.T, regs map[int]uint16) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "pyserver.py")
	if err := os.WriteFile(script, []byte(pyServerScript), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdin strings.Builder
	keys := make([]int, 0, len(regs))
	for a := range regs {
		keys = append(keys, a)
	}
	sort.Ints(keys)
	for _, a := range keys {
		fmt.Fprintf(&stdin, "%d %d\n", a, regs[a])
	}
	for attempt := 0; attempt < 5; attempt++ {
		addr := reserveAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		var out bytes.Buffer
		cmd := exec.Command(python, script, port)
		cmd.Stdin = strings.NewReader(stdin.String())
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start pymodbus: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				t.Cleanup(func() {
					cmd.Process.Kill()
					<-exited
					if t.Failed() {
						t.Logf("pymodbus output:\n%s", out.String())
					}
				})
				return addr
			}
			select {
			case err := <-exited:
				t.Logf("pymodbus exited (%v) before accepting on %s: %s", err, addr, out.String())
			case <-time.After(20 * time.Millisecond):
				if time.Now().Before(deadline) {
					continue
				}
				cmd.Process.Kill()
				<-exited
				t.Fatalf("pymodbus did not accept on %s within 20s: %s", addr, out.String())
			}
			break
		}
	}
	t.Fatal("pymodbus never started")
	return ""
}

// TestDriver_Pymodbus reads an independent Modbus server (Debian's pymodbus) with known
// registers: every type in every byte order from the layout block, and coils, discrete inputs,
// input registers and plain holding registers from its own patterns.
func TestDriver_Pymodbus(t *testing.T) {
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s: %v (make deps installs python3-pymodbus)", python, err)
	}
	dev, regs, want := layoutDevice("", 1000)
	addr := startPymodbus(t, regs)
	dev.Address = addr
	dev.Tags = append(dev.Tags,
		tag("hr7", "hr:7", drivers.TypeUint16, ""),
		tag("hr8_u32", "400009", drivers.TypeUint32, ""), // registers 8 and 9
		tag("ir5", "ir:5", drivers.TypeUint16, ""),
		tag("ir30000", "ir:30000", drivers.TypeUint16, ""), // past pymodbus' 4000 registers: exception
		tag("co4", "co:4", drivers.TypeBool, ""),
		tag("co5", "00006", drivers.TypeBool, ""),
		tag("di9", "di:9", drivers.TypeBool, ""),
		tag("di10", "di:10", drivers.TypeBool, ""),
	)
	r := startDriver(t, dev, Options{})
	b := r.waitBatches(t, 1)[0]
	n := len(want)
	checkLayout(t, drivers.Batch{Samples: b.Samples[:n]}, want)
	extra := []drivers.Sample{
		good(n, drivers.UintValue(7)),
		good(n+1, drivers.UintValue(8<<16|9)),
		good(n+2, drivers.UintValue(15)),
		bad(n+3, "exception 2"),
		good(n+4, drivers.BoolValue(true)),
		good(n+5, drivers.BoolValue(false)),
		good(n+6, drivers.BoolValue(true)),
		good(n+7, drivers.BoolValue(false)),
	}
	for i, w := range extra {
		if got := b.Samples[n+i]; got != w {
			t.Errorf("%s: got %+v, want %+v", dev.Tags[n+i].Name, got, w)
		}
	}
}
