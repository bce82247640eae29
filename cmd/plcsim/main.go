// Command plcsim simulates a production line and serves it over Modbus TCP and Modbus RTU, for
// tests, benchmarks and demos. simulators/README.md documents the model, the register map and the
// faults.
//
// Usage:
//
//	plcsim [--seed 1] [--machines 3] [--registers 0] [--step 100ms] [--speed 1]
//	       [--modbus-tcp 127.0.0.1:5020]
//	       [--modbus-rtu | --rtu-device /dev/ttyUSB0] [--baud 115200] [--parity none] [--stop-bits 1] [--no-pacing]
//	       [--delay 0s] [--unit-delay UNIT:DURATION]... [--late UNIT:DURATION]... [--silent-unit UNIT]...
//	       [--exception UNIT:[TABLE:]FIRST-LAST:CODE]... [--fragment-gap 0s] [--fragment-size 0] [--drop-every 0s]
//	       [--opcua 127.0.0.1:4840] [--opcua-host NAME]... [--opcua-remove NODE]...
//	       [--scenario FILE] [--clock-start RFC3339] [--clock-epoch RFC3339Nano]
//
// --scenario scripts machines of the line (simulators/scenario); --clock-start and --clock-epoch
// pace it by a clock shared with other processes: at real time r it serves tick
// floor((r - epoch) x speed / step), tick 0 before the epoch (default: when plcsim starts).
//
// Modbus TCP is served on --modbus-tcp unless an RTU flag is given without it; --modbus-rtu
// creates a pseudo-terminal, --rtu-device serves an existing serial device (an RS-485 adapter);
// both framings can run at once, on one line and one set of faults. Once serving, plcsim prints
// one line to stdout per framing, "modbus-tcp listening on HOST:PORT" (port 0 picks a free port)
// then "modbus-rtu listening on /dev/pts/N" (or the device's path), then with --opcua
// "opcua listening on opc.tcp://HOST:PORT"; scripts and tests read them. --opcua without
// --modbus-tcp serves no Modbus TCP, as an RTU flag does.
// It logs to stderr.
//
// SIGUSR1 drops every Modbus TCP connection; SIGUSR2 toggles refusing new ones. SIGINT or SIGTERM
// stops plcsim with exit status 0; a usage error exits 2, any other error 1.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/floorlink/floorlink/simulators/line"
	simmodbus "github.com/floorlink/floorlink/simulators/modbus"
	simopcua "github.com/floorlink/floorlink/simulators/opcua"
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

// faults are the fault flags, applied to the server before it serves.
type faults struct {
	delay        time.Duration
	unitDelay    []unitDuration
	late         []unitDuration
	silent       []byte
	exceptions   []simmodbus.AddressException
	fragmentGap  time.Duration
	fragmentSize int
	dropEvery    time.Duration
}

type unitDuration struct {
	unit byte
	d    time.Duration
}

// run is plcsim until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plcsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Int64("seed", 1, "random seed: the same seed and flags give the same line, tick for tick")
	machines := fs.Int("machines", 3, fmt.Sprintf("machines in the line, 1..%d; machine k is Modbus unit id k", line.MaxMachines))
	registers := fs.Int("registers", 0, fmt.Sprintf("extra holding registers per machine from 100 on, 0..%d; register 100+i holds (i mod 256)<<8 | (tick mod 256)", line.MaxExtraValues))
	step := fs.Duration("step", 100*time.Millisecond, "simulated time per tick, 1ms..1s")
	speed := fs.Float64("speed", 1, "simulated time per real time (10 = ten times faster than the clock)")
	modbusTCP := fs.String("modbus-tcp", "127.0.0.1:5020", "Modbus TCP listen address; port 0 picks a free port; empty: no TCP (the default when an RTU flag is given without this one)")
	modbusRTU := fs.Bool("modbus-rtu", false, "serve Modbus RTU on a pseudo-terminal plcsim creates (its path is printed)")
	rtuDevice := fs.String("rtu-device", "", "serve Modbus RTU on this serial device (e.g. /dev/ttyUSB0) instead of a pseudo-terminal")
	baud := fs.Int("baud", 115200, "RTU line speed in bits per second, for pacing (and the device's setting)")
	parity := fs.String("parity", "none", "RTU parity: none, even or odd")
	stopBits := fs.Int("stop-bits", 1, "RTU stop bits: 1 or 2")
	noPacing := fs.Bool("no-pacing", false, "write RTU answers at once instead of at the line's wire speed")
	var f faults
	fs.DurationVar(&f.delay, "delay", 0, "delay every answer by this much (a delayed TCP connection answers nothing else meanwhile)")
	fs.Func("unit-delay", "`UNIT:DURATION`: delay the answers of one unit (repeatable)", func(v string) error {
		ud, err := parseUnitDuration(v)
		f.unitDelay = append(f.unitDelay, ud)
		return err
	})
	fs.Func("late", "`UNIT:DURATION`: write the unit's answers this late into the same stream, serving other requests meanwhile (repeatable)", func(v string) error {
		ud, err := parseUnitDuration(v)
		f.late = append(f.late, ud)
		return err
	})
	fs.Func("silent-unit", "`UNIT` that reads its requests and never answers (repeatable)", func(v string) error {
		u, err := parseUnit(v)
		f.silent = append(f.silent, u)
		return err
	})
	fs.Func("exception", "`UNIT:[TABLE:]FIRST-LAST:CODE`: answer exception CODE to reads covering addresses FIRST..LAST of TABLE (holding, input, coils or discrete; default holding) (repeatable)", func(v string) error {
		a, err := parseException(v)
		f.exceptions = append(f.exceptions, a)
		return err
	})
	fs.DurationVar(&f.fragmentGap, "fragment-gap", 0, "write every answer (TCP and RTU) in pieces with this pause between them; 0: whole")
	fs.IntVar(&f.fragmentSize, "fragment-size", 0, "bytes per piece with --fragment-gap; 0: three pieces")
	fs.DurationVar(&f.dropEvery, "drop-every", 0, "drop every Modbus TCP connection this often; 0: never")
	var ou opcuaFlags
	ou.register(fs)
	var sf scenarioFlags
	sf.register(fs)
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
	tcpSet := false
	fs.Visit(func(fl *flag.Flag) { tcpSet = tcpSet || fl.Name == "modbus-tcp" })
	rtu := *modbusRTU || *rtuDevice != ""
	if (rtu || ou.addr != "") && !tcpSet {
		*modbusTCP = ""
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
	case *modbusRTU && *rtuDevice != "":
		return usage("--modbus-rtu and --rtu-device: want one of them")
	case !rtu && *modbusTCP == "" && ou.addr == "":
		return usage("nothing to serve: give --modbus-tcp, --modbus-rtu, --rtu-device or --opcua")
	case *baud <= 0:
		return usage("--baud %d: want more than 0", *baud)
	case *parity != "none" && *parity != "even" && *parity != "odd":
		return usage("--parity %q: want none, even or odd", *parity)
	case *stopBits != 1 && *stopBits != 2:
		return usage("--stop-bits %d: want 1 or 2", *stopBits)
	case f.delay < 0 || f.fragmentGap < 0 || f.dropEvery < 0:
		return usage("--delay, --fragment-gap and --drop-every must not be negative")
	case f.fragmentSize < 0:
		return usage("--fragment-size %d: want 0 or more", f.fragmentSize)
	}
	ro := simmodbus.RTUOptions{Baud: *baud, Parity: simmodbus.Parity(*parity), StopBits: *stopBits, NoPacing: *noPacing}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	scripts, err := sf.load(*speed, *step)
	if err != nil {
		return err
	}
	l, err := line.New(line.Config{Seed: *seed, Machines: *machines, Step: *step, ExtraValues: *registers, Scripts: scripts})
	if err != nil {
		return err
	}
	p, err := pace.New(l, pace.Options{Speed: *speed, Manual: sf.clocked()})
	if err != nil {
		return err
	}
	srv, err := simmodbus.New(simmodbus.Options{
		Source: simmodbus.NewLineSource(l, p.Locker()),
		Logger: log.With("server", "modbus"),
	})
	if err != nil {
		return err
	}
	f.apply(srv)

	var ln net.Listener
	if *modbusTCP != "" {
		if ln, err = net.Listen("tcp", *modbusTCP); err != nil {
			return fmt.Errorf("listen modbus tcp: %w", err)
		}
		defer ln.Close() // when an RTU port fails to open below; Run closes it otherwise
	}
	var port simmodbus.Port
	var rtuPath string
	switch {
	case *modbusRTU:
		pty, err := simmodbus.OpenPTY(ro)
		if err != nil {
			return err
		}
		defer pty.Close()
		port, rtuPath = pty.Port(), pty.Path()
	case *rtuDevice != "":
		dev, err := simmodbus.OpenSerial(*rtuDevice, ro)
		if err != nil {
			return err
		}
		port, rtuPath = dev, *rtuDevice
	}
	ua, uaLn, err := ou.listen(l, p.Locker(), log)
	if err != nil {
		return err
	}
	if uaLn != nil {
		defer uaLn.Close() // Run closes it; this is for an early return
	}
	attrs := []any{"seed", *seed, "machines", *machines, "registers", *registers, "step", *step, "speed", *speed}
	attrs = append(attrs, sf.attrs()...)
	if ln != nil {
		fmt.Fprintf(stdout, "modbus-tcp listening on %s\n", ln.Addr())
		attrs = append(attrs, "modbus_tcp", ln.Addr().String())
	}
	if port != nil {
		fmt.Fprintf(stdout, "modbus-rtu listening on %s\n", rtuPath)
		attrs = append(attrs, "modbus_rtu", rtuPath, "baud", *baud, "parity", *parity, "stop_bits", *stopBits, "pacing", !*noPacing)
	}
	if uaLn != nil {
		fmt.Fprintf(stdout, "opcua listening on %s\n", simopcua.EndpointURL(uaLn.Addr()))
		attrs = append(attrs, "opcua", simopcua.EndpointURL(uaLn.Addr()))
	}
	log.Info("plcsim started", attrs...)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.Run(gctx) })
	if sf.clocked() {
		sf.catchUp(p) // before any server runs: no reader sees the line behind the clock
		g.Go(func() error { return sf.run(gctx, p) })
	}
	// Always, so that SIGUSR1/2 never kill an RTU-only plcsim (their default action).
	g.Go(func() error { return tcpControl(gctx, srv, f.dropEvery, log) })
	if ln != nil {
		g.Go(func() error { return srv.Run(gctx, ln) })
	}
	if port != nil {
		g.Go(func() error { return srv.RunRTU(gctx, port, ro) })
	}
	if ua != nil {
		g.Go(func() error { return ua.Run(gctx, uaLn) })
	}
	err = g.Wait()
	var tick uint64
	p.View(func(l *line.Line) { tick = l.Tick() })
	log.Info("plcsim stopped", "tick", tick)
	return err
}

// apply sets the fault flags on srv.
func (f *faults) apply(srv *simmodbus.Server) {
	srv.SetDelay(f.delay)
	for _, ud := range f.unitDelay {
		srv.SetUnitDelay(ud.unit, ud.d)
	}
	for _, ud := range f.late {
		srv.SetUnitLate(ud.unit, ud.d)
	}
	for _, u := range f.silent {
		srv.SetUnitSilent(u, true)
	}
	srv.SetAddressExceptions(f.exceptions...)
	srv.SetFragments(simmodbus.Fragments{Gap: f.fragmentGap, Size: f.fragmentSize})
}

// tcpControl drops the TCP connections every dropEvery (0: never) and on SIGUSR1, and toggles
// refusing new ones on SIGUSR2, until ctx ends.
func tcpControl(ctx context.Context, srv *simmodbus.Server, dropEvery time.Duration, log *slog.Logger) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	var tick <-chan time.Time
	if dropEvery > 0 {
		t := time.NewTicker(dropEvery)
		defer t.Stop()
		tick = t.C
	}
	refusing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			srv.DropConnections()
			log.Info("modbus tcp connections dropped", "cause", "drop-every")
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 {
				srv.DropConnections()
				log.Info("modbus tcp connections dropped", "cause", "SIGUSR1")
				continue
			}
			refusing = !refusing
			srv.SetRefuse(refusing)
			log.Info("modbus tcp refusing connections", "refusing", refusing)
		}
	}
}

func parseUnit(s string) (byte, error) {
	u, err := strconv.ParseUint(s, 10, 8)
	if err != nil || u < 1 || u > 247 {
		return 0, fmt.Errorf("unit %q: want 1..247", s)
	}
	return byte(u), nil
}

func parseUnitDuration(s string) (unitDuration, error) {
	us, ds, ok := strings.Cut(s, ":")
	if !ok {
		return unitDuration{}, fmt.Errorf("%q: want UNIT:DURATION, e.g. 2:1.5s", s)
	}
	u, err := parseUnit(us)
	if err != nil {
		return unitDuration{}, err
	}
	d, err := time.ParseDuration(ds)
	if err != nil || d < 0 {
		return unitDuration{}, fmt.Errorf("duration %q: want e.g. 1.5s", ds)
	}
	return unitDuration{u, d}, nil
}

// parseException parses UNIT:[TABLE:]FIRST-LAST:CODE.
func parseException(s string) (simmodbus.AddressException, error) {
	parts := strings.Split(s, ":")
	bad := func(why string) (simmodbus.AddressException, error) {
		return simmodbus.AddressException{}, fmt.Errorf("%q: %s; want UNIT:[TABLE:]FIRST-LAST:CODE, e.g. 1:holding:40-42:2", s, why)
	}
	a := simmodbus.AddressException{Table: simmodbus.HoldingRegisters}
	switch len(parts) {
	case 3:
	case 4:
		tables := map[string]simmodbus.Table{
			"holding": simmodbus.HoldingRegisters, "input": simmodbus.InputRegisters,
			"coils": simmodbus.Coils, "discrete": simmodbus.DiscreteInputs,
		}
		t, ok := tables[parts[1]]
		if !ok {
			return bad("table " + strconv.Quote(parts[1]) + " is not holding, input, coils or discrete")
		}
		a.Table = t
		parts = append(parts[:1], parts[2:]...)
	default:
		return bad("wrong number of fields")
	}
	u, err := parseUnit(parts[0])
	if err != nil {
		return bad(err.Error())
	}
	a.Unit = u
	fst, lst, ok := strings.Cut(parts[1], "-")
	if !ok {
		lst = fst
	}
	first, err1 := strconv.ParseUint(fst, 10, 16)
	last, err2 := strconv.ParseUint(lst, 10, 16)
	if err1 != nil || err2 != nil || first > last {
		return bad("addresses " + strconv.Quote(parts[1]) + " are not FIRST-LAST within 0..65535")
	}
	a.First, a.Last = uint16(first), uint16(last)
	code, err := strconv.ParseUint(parts[2], 0, 8)
	if err != nil || code == 0 {
		return bad("code " + strconv.Quote(parts[2]) + " is not 1..255")
	}
	a.Code = simmodbus.Exception(code)
	return a, nil
}
