package modbus_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/goburrow/modbus"
	"go.uber.org/goleak"

	"github.com/floorlink/floorlink/simulators/line"
	simmodbus "github.com/floorlink/floorlink/simulators/modbus"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixture is a line served by a Server on 127.0.0.1:0. The line moves only by step.
type fixture struct {
	mu   sync.Mutex // guards line
	line *line.Line
	srv  *simmodbus.Server
	addr string
	// rtuPath is the pty the same server serves Modbus RTU on, when started by startRTU.
	rtuPath string
}

func start(t testing.TB, cfg line.Config, opts simmodbus.Options) *fixture {
	t.Helper()
	l, err := line.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{line: l}
	opts.Source = simmodbus.NewLineSource(l, &f.mu)
	f.srv, err = simmodbus.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5s of its context ending")
		}
	})
	return f
}

func (f *fixture) step(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.line.Step()
	}
}

func (f *fixture) snapshot(unit int) line.Machine {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.line.Snapshot(unit)
}

// client returns goburrow's stock TCP client for unit, closed at cleanup.
func (f *fixture) client(t testing.TB, unit byte) (modbus.Client, *modbus.TCPClientHandler) {
	t.Helper()
	h := modbus.NewTCPClientHandler(f.addr)
	h.SlaveId = unit
	h.Timeout = 5 * time.Second
	t.Cleanup(func() { h.Close() })
	return modbus.NewClient(h), h
}

// waitFor polls cond until it returns nil or the deadline passes, then fails with its last error.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
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
		<-time.After(5 * time.Millisecond) // poll interval
	}
}

// exceptionCode returns the exception code of a goburrow error, or fails.
func exceptionCode(t testing.TB, err error, fc byte) byte {
	t.Helper()
	var me *modbus.ModbusError
	if !errors.As(err, &me) {
		t.Fatalf("got error %v (%T), want *modbus.ModbusError", err, err)
	}
	if me.FunctionCode != fc|0x80 {
		t.Errorf("exception function code %#x, want %#x", me.FunctionCode, fc|0x80)
	}
	return me.ExceptionCode
}
