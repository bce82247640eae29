// Command plcsim simulates a production line and serves it over Modbus TCP, for tests, benchmarks
// and demos. simulators/README.md documents the model and the register map.
//
// Usage:
//
//	plcsim [--seed 1] [--machines 3] [--registers 0] [--step 100ms] [--speed 1] [--modbus-tcp 127.0.0.1:5020]
//
// Once listening it prints exactly one line to stdout, "modbus-tcp listening on HOST:PORT" (port
// 0 picks a free port; scripts and tests read the line), and logs to stderr. SIGINT or SIGTERM
// stops it with exit status 0; a usage error exits 2, any other error 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/floorlink/floorlink/simulators/line"
	simmodbus "github.com/floorlink/floorlink/simulators/modbus"
	"github.com/floorlink/floorlink/simulators/pace"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "plcsim:", err)
		os.Exit(1)
	}
}

// errUsage marks a bad command line, already reported by the flag set.
var errUsage = errors.New("usage")

// run is plcsim until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plcsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Int64("seed", 1, "random seed: the same seed and flags give the same line, tick for tick")
	machines := fs.Int("machines", 3, fmt.Sprintf("machines in the line, 1..%d; machine k is Modbus unit id k", line.MaxMachines))
	registers := fs.Int("registers", 0, fmt.Sprintf("extra holding registers per machine from 100 on, 0..%d; register 100+i holds (i mod 256)<<8 | (tick mod 256)", line.MaxExtraValues))
	step := fs.Duration("step", 100*time.Millisecond, "simulated time per tick, 1ms..1s")
	speed := fs.Float64("speed", 1, "simulated time per real time (10 = ten times faster than the clock)")
	modbusTCP := fs.String("modbus-tcp", "127.0.0.1:5020", "Modbus TCP listen address; port 0 picks a free port")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	usage := func(format string, a ...any) error {
		fmt.Fprintf(stderr, format+"\n", a...)
		fs.Usage()
		return errUsage
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected arguments: %q", fs.Args())
	case *machines < 1:
		return usage("--machines %d: want 1..%d", *machines, line.MaxMachines)
	case *registers < 0:
		return usage("--registers %d: want 0..%d", *registers, line.MaxExtraValues)
	case *step <= 0:
		return usage("--step %v: want 1ms..1s", *step)
	case !(*speed > 0):
		return usage("--speed %v: want more than 0", *speed)
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	l, err := line.New(line.Config{Seed: *seed, Machines: *machines, Step: *step, ExtraValues: *registers})
	if err != nil {
		return err
	}
	p, err := pace.New(l, pace.Options{Speed: *speed})
	if err != nil {
		return err
	}
	srv, err := simmodbus.New(simmodbus.Options{
		Source: simmodbus.NewLineSource(l, p.Locker()),
		Logger: log.With("server", "modbus-tcp"),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *modbusTCP)
	if err != nil {
		return fmt.Errorf("listen modbus tcp: %w", err)
	}
	fmt.Fprintf(stdout, "modbus-tcp listening on %s\n", ln.Addr())
	log.Info("plcsim started", "seed", *seed, "machines", *machines, "registers", *registers, "step", *step,
		"speed", *speed, "modbus_tcp", ln.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.Run(gctx) })
	g.Go(func() error { return srv.Run(gctx, ln) })
	err = g.Wait()
	var tick uint64
	p.View(func(l *line.Line) { tick = l.Tick() })
	log.Info("plcsim stopped", "tick", tick)
	return err
}
