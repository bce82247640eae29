package modbus_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"

	"github.com/goburrow/modbus"

	"github.com/floorlink/floorlink/simulators/line"
	simmodbus "github.com/floorlink/floorlink/simulators/modbus"
)

// Serve a line on 127.0.0.1:0 and read machine 2's state and ideal cycle time with a stock
// client.
func Example() {
	l, err := line.New(line.Config{Seed: 1})
	if err != nil {
		panic(err)
	}
	var mu sync.Mutex // guards l; take it to Step the line while serving
	srv, err := simmodbus.New(simmodbus.Options{Source: simmodbus.NewLineSource(l, &mu)})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Run(ctx, ln) }()
	defer func() {
		cancel()
		<-done
	}()

	h := modbus.NewTCPClientHandler(ln.Addr().String())
	h.SlaveId = 2
	defer h.Close()
	b, err := modbus.NewClient(h).ReadHoldingRegisters(simmodbus.HoldingState, 20)
	if err != nil {
		panic(err)
	}
	state := line.State(binary.BigEndian.Uint16(b[2*simmodbus.HoldingState:]))
	ideal := binary.BigEndian.Uint16(b[2*simmodbus.HoldingIdealCycleTimeMs:])
	fmt.Printf("machine 2: %v, ideal cycle %d ms\n", state, ideal)
	// Output:
	// machine 2: idle, ideal cycle 2500 ms
}

// Serve a line over Modbus RTU on a pseudo-terminal and read machine 3's ideal cycle time with
// goburrow's stock RTU client, as from a serial port.
func ExampleServer_RunRTU() {
	l, err := line.New(line.Config{Seed: 1})
	if err != nil {
		panic(err)
	}
	var mu sync.Mutex
	srv, err := simmodbus.New(simmodbus.Options{Source: simmodbus.NewLineSource(l, &mu)})
	if err != nil {
		panic(err)
	}
	opts := simmodbus.RTUOptions{Baud: 19200, Parity: simmodbus.ParityEven} // paced like 19200 8E1
	pty, err := simmodbus.OpenPTY(opts)
	if err != nil {
		panic(err)
	}
	defer pty.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.RunRTU(ctx, pty.Port(), opts) }()
	defer func() {
		cancel()
		<-done
	}()

	h := modbus.NewRTUClientHandler(pty.Path())
	h.BaudRate, h.Parity, h.SlaveId = 19200, "E", 3
	defer h.Close()
	b, err := modbus.NewClient(h).ReadHoldingRegisters(simmodbus.HoldingIdealCycleTimeMs, 1)
	if err != nil {
		panic(err)
	}
	fmt.Printf("machine 3: ideal cycle %d ms\n", binary.BigEndian.Uint16(b))
	// Output:
	// machine 3: ideal cycle 1800 ms
}
