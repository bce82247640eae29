package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"golang.org/x/sync/errgroup"

	"github.com/floorlink/floorlink/simulators/line"
	simmodbus "github.com/floorlink/floorlink/simulators/modbus"
	"github.com/floorlink/floorlink/simulators/pace"
)

// simulator is plcsim's line paced in real time and served over Modbus TCP, wired as cmd/plcsim
// wires it.
type simulator struct {
	pacer *pace.Pacer
	srv   *simmodbus.Server
	ln    net.Listener
}

// startSimulator builds the line and binds addr; nothing runs until Run. The caller must call
// Run or Close.
func startSimulator(addr string, cfg line.Config, speed float64, log *slog.Logger) (*simulator, error) {
	l, err := line.New(cfg)
	if err != nil {
		return nil, err
	}
	p, err := pace.New(l, pace.Options{Speed: speed})
	if err != nil {
		return nil, err
	}
	srv, err := simmodbus.New(simmodbus.Options{
		Source: simmodbus.NewLineSource(l, p.Locker()),
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen modbus tcp: %w", err)
	}
	return &simulator{pacer: p, srv: srv, ln: ln}, nil
}

// Addr is the Modbus TCP address plcsim serves, with the port it got.
func (s *simulator) Addr() string { return s.ln.Addr().String() }

// Run paces the line and serves it until ctx ends; it closes the listener.
func (s *simulator) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.pacer.Run(gctx) })
	g.Go(func() error { return s.srv.Run(gctx, s.ln) })
	return g.Wait()
}

// Close releases the listener of a simulator that never ran.
func (s *simulator) Close() error { return s.ln.Close() }
