// Command floorlink-demo runs a whole Floorlink line in one process, for a first look and for
// demos: plcsim's simulated line served over Modbus TCP, an embedded MQTT broker, and the agent
// on a config file (configs/demo.yaml), with a live view of what reaches the broker.
//
// It is a development tool, never shipped to gateways: the embedded broker (mochi-mqtt) must stay
// out of the agent's binary. `make demo` runs it.
//
// Usage:
//
//	floorlink-demo [-c configs/demo.yaml] [--seed 1] [--speed 1] [--modbus ADDR] [--broker ADDR]
//	               [--data-dir DIR] [--duration 0]
//
// plcsim listens where the config's devices look for it and the broker where the config's first
// broker URL points, both on loopback; --modbus and --broker move them (port 0 picks a free port)
// and the loaded config is rewritten to match. Each run uses a fresh data dir under the system's
// temporary directory unless --data-dir is given, so a demo never replays an old backlog. The
// agent, the broker and plcsim log to demo.log in the data dir.
//
// The view is `floorlink watch`'s (package watch): in a terminal it redraws in place once a
// second; otherwise it prints plain key=value lines at every refresh, one for the gateway, one
// per device and a summary line (the watch package and docs/operations.md have the format).
//
// SIGINT or SIGTERM stops everything, the agent first, and exits 0; a second signal kills the
// process at once. A bad command line or configuration exits 2, any other failure 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/floorlink/floorlink/watch"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Once the first signal has started the shutdown, restore the default handling, so that a
	// second Ctrl-C kills a demo that hangs.
	context.AfterFunc(ctx, stop)
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, watch.IsTerminal(os.Stdout)))
}

// usageError marks errors that exit 2: a bad command line or configuration.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// run is the demo until ctx ends or --duration passes; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, terminal bool) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err == nil {
		err = launch(ctx, o, stdout, stderr, terminal)
	}
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "floorlink-demo:", err)
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := pflag.NewFlagSet("floorlink-demo", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVarP(&o.config, "config", "c", "configs/demo.yaml", "agent configuration file")
	fs.Int64Var(&o.seed, "seed", 1, "plcsim's random seed: the same seed gives the same line, tick for tick")
	fs.Float64Var(&o.speed, "speed", 1, "simulated time per real time (10 runs the line ten times faster)")
	fs.StringVar(&o.modbus, "modbus", "", "plcsim's Modbus TCP listen address, on loopback (default: the config's device address; port 0 picks one)")
	fs.StringVar(&o.broker, "broker", "", "the MQTT broker's listen address, on loopback (default: the config's broker; port 0 picks one)")
	fs.StringVar(&o.dataDir, "data-dir", "", "the agent's data dir, also holding demo.log (default: a new directory under "+os.TempDir()+")")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: run until Ctrl-C)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return o, err
		}
		return o, usageError{err}
	}
	switch {
	case fs.NArg() > 0:
		return o, usageError{fmt.Errorf("unexpected arguments: %q", fs.Args())}
	case !(o.speed > 0):
		return o, usageError{fmt.Errorf("--speed %v: want more than 0", o.speed)}
	case o.duration < 0:
		return o, usageError{fmt.Errorf("--duration %v: want 0 or more", o.duration)}
	}
	return o, nil
}
