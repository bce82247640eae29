package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/floorlink/floorlink/agent"
	"github.com/floorlink/floorlink/agent/config"
	"github.com/floorlink/floorlink/simulators/line"
	"github.com/floorlink/floorlink/watch"
)

// options are the command line.
type options struct {
	config   string
	seed     int64
	speed    float64
	modbus   string // plcsim's listen address; "" means the config's device address
	broker   string // the broker's listen address; "" means the config's broker
	dataDir  string // "" means a new directory under os.TempDir()
	duration time.Duration
}

// LogFile is the name of the log in the data dir: the agent, the broker and plcsim write there,
// never over the view.
const LogFile = "demo.log"

// maxGrace caps mqtt.shutdown_grace. The broker runs in this process and acknowledges at once,
// so a longer grace buys nothing, and Ctrl-C must stop the whole demo within 2 s.
const maxGrace = time.Second

// telemetryFilter is what the view subscribes to: everything the agent publishes (the watch
// package's JSON decoder reads it).
const telemetryFilter = "floorlink/#"

// launch runs the demo until ctx ends or o.duration passes.
func launch(ctx context.Context, o options, stdout, stderr io.Writer, terminal bool) error {
	cfg, err := loadConfig(o.config)
	if err != nil {
		return usageError{err}
	}
	p, err := planDemo(cfg, o)
	if err != nil {
		return usageError{err}
	}
	dataDir, err := makeDataDir(o.dataDir)
	if err != nil {
		return err
	}
	logPath := filepath.Join(dataDir, LogFile)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open the demo log: %w", err)
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, nil))

	d, err := start(cfg, p, o, dataDir, logPath, log)
	if err != nil {
		if o.dataDir == "" { // nothing ran: leave no empty directory behind
			logFile.Close()
			os.RemoveAll(dataDir)
		}
		return err
	}
	fmt.Fprintf(stderr, "floorlink-demo: plcsim (seed %d, %d machines, speed %g) on %s, broker on %s; "+
		"log in %s\n", o.seed, p.machines, o.speed, d.sim.Addr(), d.broker.URL(), logPath)
	took, err := d.run(ctx, o.duration, stdout, terminal)
	if terminal {
		fmt.Fprintln(stdout) // leave the last frame in place, the prompt below it
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "floorlink-demo: stopped in %v; log in %s\n", took.Round(time.Millisecond), logPath)
	return nil
}

// loadConfig reads the agent's configuration. Any problem is fatal: the demo config is meant to
// be valid, and a copy an integrator edits should fail as `floorlink run` fails.
func loadConfig(path string) (*config.File, error) {
	return config.Load(path, config.Options{})
}

// plan says where the demo's parts listen and which devices plcsim serves.
type plan struct {
	modbus, broker string // listen addresses
	simDevices     []int  // indexes in config.File.Devices
	machines       int    // in plcsim's line
}

// planDemo reads the plan from the config and the flags. plcsim serves the modbus-tcp devices
// that share the first one's address, one machine per unit id; other devices are polled where
// the config says. Both listeners must be on loopback: the broker lets anyone publish, and
// neither has anything to do with a real network.
func planDemo(cfg *config.File, o options) (plan, error) {
	var p plan
	simAddr := ""
	for i, d := range cfg.Devices {
		if d.Protocol != "modbus-tcp" || (simAddr != "" && d.Address != simAddr) {
			continue
		}
		simAddr = d.Address
		if d.UnitID < 1 || d.UnitID > line.MaxMachines {
			return p, fmt.Errorf("%s: devices[%d].unit_id: %d is not a machine of plcsim's line (want 1..%d)",
				cfg.Path, i, d.UnitID, line.MaxMachines)
		}
		p.simDevices = append(p.simDevices, i)
		p.machines = max(p.machines, d.UnitID)
	}
	if len(p.simDevices) == 0 {
		return p, fmt.Errorf("%s: no modbus-tcp device for plcsim to serve", cfg.Path)
	}
	// The line is plcsim's default of three machines unless the config asks for more: a
	// downstream machine changes how the ones before it block, so a smaller line would not be
	// the line the config's comments describe.
	p.machines = max(p.machines, 3)
	p.modbus = cmp.Or(o.modbus, simAddr)
	if len(cfg.MQTT.Brokers) == 0 {
		return p, fmt.Errorf("%s: mqtt.brokers: the demo needs a broker address to listen on", cfg.Path)
	}
	u, err := url.Parse(cfg.MQTT.Brokers[0])
	if err != nil || u.Host == "" {
		return p, fmt.Errorf("%s: mqtt.brokers[0]: %q is not a broker address (want tcp://host:port)",
			cfg.Path, cfg.MQTT.Brokers[0])
	}
	p.broker = cmp.Or(o.broker, u.Host)
	if err := checkLoopback("plcsim", p.modbus); err != nil {
		return p, err
	}
	if err := checkLoopback("broker", p.broker); err != nil {
		return p, err
	}
	return p, nil
}

// checkLoopback refuses a listen address off loopback before anything binds it.
func checkLoopback(what, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s listen address: %w", what, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%s listen address %s: the demo listens on loopback only (127.0.0.1)", what, addr)
}

// makeDataDir returns dir, created, or a new directory under os.TempDir().
func makeDataDir(dir string) (string, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "floorlink-demo-")
		if err != nil {
			return "", fmt.Errorf("create a data dir: %w", err)
		}
		return d, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	return filepath.Abs(dir)
}

func deviceNames(cfg *config.File) []string {
	names := make([]string, len(cfg.Devices))
	for i, d := range cfg.Devices {
		names[i] = d.Name
	}
	return names
}

// demo is the running parts.
type demo struct {
	sim    *simulator
	broker *broker
	agent  *agent.Agent
	view   *watch.Model
}

// start binds plcsim and the broker, points cfg at them, subscribes the view and builds the
// agent. It starts no goroutine of ours; on error it releases what it built.
func start(cfg *config.File, p plan, o options, dataDir, logPath string, log *slog.Logger) (_ *demo, err error) {
	sim, err := startSimulator(p.modbus, line.Config{Seed: o.seed, Machines: p.machines}, o.speed,
		log.With("component", "plcsim"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			sim.Close()
		}
	}()
	br, err := startBroker(p.broker, log.With("component", "broker"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			br.Close()
		}
	}()

	for _, i := range p.simDevices {
		cfg.Devices[i].Address = sim.Addr()
	}
	cfg.MQTT.Brokers = []string{br.URL()}
	cfg.Gateway.DataDir = dataDir
	if cfg.MQTT.ShutdownGrace <= 0 || cfg.MQTT.ShutdownGrace > maxGrace {
		cfg.MQTT.ShutdownGrace = maxGrace
	}

	// The view reads what the config makes the agent publish: the JSON contract or Sparkplug B.
	var dec watch.Decoder
	filter := telemetryFilter
	if cfg.MQTT.Format == "sparkplug" {
		dec, filter = watch.NewSparkplug(cfg.MQTT.GroupID), "spBv1.0/#"
	} else if j, err := watch.NewJSON(cfg.MQTT.TopicTemplate); err == nil {
		dec = j
	}
	m := watch.New(watch.Options{
		Decoder: dec,
		Title:   "Floorlink demo",
		Header: []string{
			fmt.Sprintf("plcsim %s (seed %d, speed %g)   config %s", sim.Addr(), o.seed, o.speed, o.config),
			"log " + logPath,
		},
		Color: os.Getenv("NO_COLOR") == "", // https://no-color.org
	})
	for _, dc := range cfg.Devices {
		m.Expect(watch.Expected{Site: cfg.Gateway.Site, Area: cmp.Or(dc.Area, cfg.Gateway.Area),
			Line: cmp.Or(dc.Line, cfg.Gateway.Line), Gateway: cfg.Gateway.ID, Device: dc.Name})
	}
	// Subscribed before the agent exists, so the view sees its first status and telemetry.
	if err := br.Subscribe(filter, func(topic string, payload []byte) {
		m.Handle(topic, payload, time.Now())
	}); err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", filter, err)
	}
	m.SetConnection(br.URL(), "connected", nil)

	a, err := agent.New(cfg, log.With("component", "agent"))
	if err != nil {
		if errors.As(err, new(*config.Error)) {
			return nil, usageError{err}
		}
		return nil, err
	}
	log.Info("demo started", "seed", o.seed, "speed", o.speed, "machines", p.machines,
		"modbus_tcp", sim.Addr(), "broker", br.URL(), "data_dir", dataDir)
	return &demo{sim: sim, broker: br, agent: a, view: m}, nil
}

// run runs every part until ctx ends, duration passes (if not zero) or a part fails, then stops
// them in the order that loses nothing: the agent first, while plcsim and the broker still
// answer (it has its own ordered shutdown: drivers, buffer, the publisher's last
// acknowledgements and offline status), then the view and its subscription, the broker, and
// plcsim. It returns how long the stop took.
func (d *demo) run(ctx context.Context, duration time.Duration, stdout io.Writer, terminal bool) (time.Duration, error) {
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	stopping := make(chan time.Time, 1)
	context.AfterFunc(ctx, func() { stopping <- time.Now() })
	failed := make(chan error, 2) // one each from plcsim and the view: never blocks

	simCtx, stopSim := context.WithCancel(context.Background())
	defer stopSim()
	var sim sync.WaitGroup
	sim.Go(func() {
		if err := d.sim.Run(simCtx); err != nil {
			failed <- fmt.Errorf("plcsim: %w", err)
			stop()
		}
	})
	viewCtx, stopView := context.WithCancel(context.Background())
	defer stopView()
	var view sync.WaitGroup
	view.Go(func() {
		if err := d.view.Run(viewCtx, stdout, watch.RunOptions{Terminal: terminal, Size: watch.TerminalSize(stdout)}); err != nil {
			failed <- err
			stop()
		}
	})

	agentErr := d.agent.Run(ctx)
	stop() // when the agent failed on its own
	stopView()
	view.Wait()
	_ = d.broker.Unsubscribe(telemetryFilter) // cannot fail for a valid filter
	_ = d.broker.Close()                      // always nil
	stopSim()
	sim.Wait()
	took := time.Since(<-stopping)

	errs := []error{agentErr}
	for len(failed) > 0 {
		errs = append(errs, <-failed)
	}
	if agentErr != nil {
		errs[0] = fmt.Errorf("agent: %w", agentErr)
	}
	return took, errors.Join(errs...)
}
