package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floorlink/floorlink/agent/config"
	"github.com/floorlink/floorlink/agent/publish"
	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/buffer"
	"github.com/floorlink/floorlink/drivers"
	"github.com/floorlink/floorlink/drivers/modbus"
	"github.com/floorlink/floorlink/drivers/opcua"
)

// BufferFile is the name of the buffer file in gateway.data_dir.
const BufferFile = "buffer.db"

// Buffer state keys: the MQTT session counter, and the run of consecutive dropped seqs the
// latest drop event announced (two big-endian uint64: first, last).
const (
	stateSession = "mqtt_session"
	stateDropRun = "drop_run"
)

// Agent is one running gateway: its buffer, publisher and devices.
type Agent struct {
	cfg     *config.File
	log     *slog.Logger
	buf     *buffer.Buffer
	pub     *publish.Publisher
	devices []*device
	conns   []*connection
	counts  counters
	rate    statsState
	started time.Time // when Run began
	metrics *metrics
	status  struct { // the last rendered /api/v1/status
		mu  sync.Mutex
		doc []byte
		gz  []byte // doc, gzipped
		at  time.Time
	}
	// dropRun is the run of consecutive drops being announced; only the buffer's writer
	// goroutine (OnDrop) touches it after New.
	dropRun struct{ first, last uint64 }

	httpAddr atomic.Value // string: the HTTP listener's address once it listens

	now func() time.Time // the clock of samples and KPI windows
	kpi *kpiRunner       // without assets, one without an engine

	devMu   sync.RWMutex // guards devices and conns, which a reload replaces
	reloads chan reloadRequest
	// loopBeat is when Run's loop last came round (UnixNano; 0 when Run is not in it); Alive
	// compares it with loopStall, and the writer's commit in progress with commitStall.
	loopBeat    atomic.Int64
	loopStall   time.Duration
	commitStall time.Duration
}

// What Alive allows. systemd's watchdog (WatchdogSec=30s in the shipped unit) asks every 15 s
// and kills after 30 s without an answer: a loop stalled for loopStall misses one question, a
// commit hung for commitStall one or two. A reload holds Run's loop while it swaps connections
// (well under loopStall); a commit on a slow SD card takes a second or two, far from commitStall.
const (
	loopBeat    = time.Second
	loopStall   = 10 * time.Second
	commitStall = 20 * time.Second
)

// Option changes how New builds the agent.
type Option func(*Agent)

// WithClock makes now the clock that stamps samples and drives the KPI windows, instead of
// time.Now: a simulated, accelerated clock for tests and demos of whole shifts (floorlink run
// --clock-*). Times it returns must carry no monotonic reading (t.Round(0)), so that nothing
// takes its pace for a wall-clock jump. The buffer, MQTT and HTTP keep the real clock.
func WithClock(now func() time.Time) Option { return func(a *Agent) { a.now = now } }

// device is one configured device and what the agent keeps of it.
type device struct {
	dev    drivers.Device
	conf   config.Device
	status *deviceStatus
}

// connection is one driver and the devices it serves.
type connection struct {
	key     string // protocol and address: what a reload compares
	driver  drivers.Driver
	devices []*device
	stop    context.CancelFunc // ends the driver's Run; set by startConnection
	done    chan struct{}      // closed when the driver's Run has returned
}

// startConnection runs c's driver until ctx ends or c.stop, feeding its devices' sinks.
func (a *Agent) startConnection(ctx context.Context, c *connection) {
	sink := connSink{}
	for _, d := range c.devices {
		s := newDeviceSink(d.dev, tagPolicies(d.conf.Tags), a.buf, &a.counts, a.log)
		s.status = d.status
		s.kpi = a.kpi
		if a.cfg.MQTT.Format == "sparkplug" {
			s.onEvent = a.deviceEvent
		}
		sink[d.dev.Name] = s
	}
	ctx, c.stop = context.WithCancel(ctx)
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		if err := c.driver.Run(ctx, sink); err != nil {
			a.log.Error("connection stopped", "devices", len(c.devices), "err", err)
		}
	}()
}

// connections and deviceList are the current ones; a reload replaces the slices, never edits
// them.
func (a *Agent) connections() []*connection {
	a.devMu.RLock()
	defer a.devMu.RUnlock()
	return a.conns
}

func (a *Agent) deviceList() []*device {
	a.devMu.RLock()
	defer a.devMu.RUnlock()
	return a.devices
}

func devicesOf(ds []*device) []drivers.Device {
	out := make([]drivers.Device, len(ds))
	for i, d := range ds {
		out[i] = d.dev
	}
	return out
}

// newConnection builds the driver of one bus and its devices.
func (a *Agent) newConnection(cfg *config.File, bus config.Bus) (*connection, error) {
	devs := busDevices(cfg, bus)
	var drv drivers.Driver
	var err error
	switch bus.Protocol {
	case opcua.Protocol: // one device per bus
		devs[0].OPCUA.ApplicationURI = "urn:floorlink:" + cfg.Gateway.ID
		drv, err = opcua.New(devs[0], opcua.Options{Now: a.now}, a.log)
	default:
		drv, err = modbus.New(devs, modbus.Options{Now: a.now}, a.log)
	}
	if err != nil {
		return nil, err
	}
	c := &connection{key: busKey(cfg, bus), driver: drv}
	for k, i := range bus.Devices {
		c.devices = append(c.devices, &device{dev: devs[k], conf: cfg.Devices[i], status: newDeviceStatus(devs[k])})
	}
	return c, nil
}

// busKey identifies a connection across a reload: a Modbus bus by its address; an OPC UA
// device has a connection of its own, so also by its name (two devices may share an endpoint).
func busKey(cfg *config.File, bus config.Bus) string {
	key := bus.Protocol + " " + strings.ToLower(bus.Address)
	if len(bus.Devices) == 1 && bus.Protocol == "opcua" {
		key += " " + cfg.Devices[bus.Devices[0]].Name
	}
	return key
}

func busDevices(cfg *config.File, bus config.Bus) []drivers.Device {
	devs := make([]drivers.Device, len(bus.Devices))
	for k, i := range bus.Devices {
		devs[k] = deviceFromConfig(cfg.Devices[i])
	}
	return devs
}

// LoadConfig reads the configuration at path and checks it against every part (the drivers
// check their addresses and types), so that a file's problems come back together, sorted by
// position, as one *config.Error. The File is nil only when the file could not be read or is
// not YAML.
func LoadConfig(path string, opts config.Options) (*config.File, error) {
	cfg, err := config.Load(path, opts)
	if cfg == nil {
		return nil, err
	}
	var problems []config.Problem
	var ce *config.Error
	if errors.As(err, &ce) {
		problems = ce.Problems
	} else if err != nil {
		return nil, err
	}
	problems = append(problems, Check(cfg)...)
	return cfg, config.Join(cfg, problems...)
}

// Check asks every part whether it accepts cfg and returns their problems, placed in the file.
func Check(cfg *config.File) []config.Problem {
	var problems []config.Problem
	for _, bus := range cfg.Buses() {
		devs := busDevices(cfg, bus)
		var err error
		if bus.Protocol == opcua.Protocol {
			devs[0].OPCUA.ApplicationURI = "urn:floorlink:" + cfg.Gateway.ID
			if devs[0].OPCUA.PKIDir != "" {
				// New creates the PKI directory's subdirectories. Checking must not write to
				// the data dir: `floorlink validate` run as root would leave directories the
				// agent's user cannot write its certificate into.
				tmp, terr := os.MkdirTemp("", "floorlink-check-")
				if terr == nil {
					defer os.RemoveAll(tmp)
					devs[0].OPCUA.PKIDir = tmp
				}
			}
			_, err = opcua.New(devs[0], opcua.Options{}, nil)
		} else {
			_, err = modbus.New(devs, modbus.Options{}, nil)
		}
		if err != nil {
			problems = append(problems, placeErrors(cfg, fmt.Sprintf("devices[%d]", bus.Devices[0]), err)...)
		}
	}
	// The assets' bindings to device tags, types and maps.
	var devs []drivers.Device
	for i := range cfg.Devices {
		devs = append(devs, deviceFromConfig(cfg.Devices[i]))
	}
	if _, ps := newKPI(cfg, devs, nil); len(ps) > 0 {
		problems = append(problems, ps...)
	}
	problems = append(problems, sparkplugTypes(cfg)...)
	// The publisher's options (brokers, topic template, levels) are config's own checks: asking
	// the publisher again would report each problem twice.
	return problems
}

// sparkplugTypes refuses OPC UA tags without a type in Sparkplug mode: a birth certificate
// declares each metric's datatype before the first value is read, and a node's own type
// (auto) is known only then. A guess would turn every value of another kind into a bad one. A
// tag with an enum or a scale has its type from those (converted).
func sparkplugTypes(cfg *config.File) []config.Problem {
	if cfg.MQTT.Format != "sparkplug" {
		return nil
	}
	var problems []config.Problem
	for i, d := range cfg.Devices {
		dev := deviceFromConfig(d)
		for j, t := range d.Tags {
			if _, ok := converted(&dev.Tags[j]); !ok && t.Type == string(drivers.TypeAuto) {
				problems = append(problems, cfg.Problemf(fmt.Sprintf("devices[%d].tags[%d].type", i, j),
					"tag %q of device %q needs a type with format: sparkplug (a birth declares each metric's datatype before the first read); `floorlink opcua browse --yaml` prints each node's type", t.Name, d.Name))
			}
		}
	}
	return problems
}

// New builds the agent from a configuration LoadConfig accepted: it builds the drivers, opens
// the buffer and builds the publisher. It starts nothing. Configuration problems come back as
// one *config.Error; a buffer that cannot be used comes back as its own error.
func New(cfg *config.File, log *slog.Logger, options ...Option) (*Agent, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("gateway", cfg.Gateway.ID)
	a := &Agent{cfg: cfg, log: log, now: time.Now, reloads: make(chan reloadRequest),
		loopStall: loopStall, commitStall: commitStall}
	for _, o := range options {
		o(a)
	}

	// One driver per connection: the devices of a bus (units behind one TCP gateway, slaves on
	// one serial port) are polled in turn over it.
	var problems []config.Problem
	for _, bus := range cfg.Buses() {
		c, err := a.newConnection(cfg, bus)
		if err != nil {
			problems = append(problems, placeErrors(cfg, fmt.Sprintf("devices[%d]", bus.Devices[0]), err)...)
			continue
		}
		a.devices = append(a.devices, c.devices...)
		a.conns = append(a.conns, c)
	}
	if len(problems) == 0 {
		var ps []config.Problem
		a.kpi, ps = newKPI(cfg, devicesOf(a.devices), log)
		problems = append(problems, ps...)
	}
	if err := config.Join(cfg, problems...); err != nil {
		return nil, err
	}

	if err := os.MkdirAll(cfg.Gateway.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	buf, err := buffer.Open(filepath.Join(cfg.Gateway.DataDir, BufferFile), buffer.Options{
		NoSync:         cfg.Buffer.Sync == "none",
		CommitInterval: cfg.Buffer.CommitInterval,
		MaxBytes:       cfg.Buffer.MaxBytes,
		MaxAge:         cfg.Buffer.MaxAge,
		OnDrop:         a.bufferDrop,
		OnClockJump:    a.clockJump,
	}, log)
	if err != nil {
		return nil, err
	}
	a.buf = buf
	a.kpi.buf = buf
	a.restoreKPI()
	lastSession, err := a.lastSession()
	if err != nil {
		buf.Close()
		return nil, err
	}
	if run, err := buf.State(stateDropRun); err == nil && len(run) == 16 {
		a.dropRun.first, a.dropRun.last = binary.BigEndian.Uint64(run), binary.BigEndian.Uint64(run[8:])
	}
	opts, err := publishOptions(cfg, buf.Epoch(), lastSession)
	if err != nil {
		buf.Close()
		return nil, err
	}
	if cfg.MQTT.Format == "sparkplug" {
		opts.Format = publish.FormatSparkplug
		if opts.Sparkplug, err = a.sparkplugOptions(cfg); err != nil {
			buf.Close()
			return nil, err
		}
	}
	opts.SessionBegun = a.sessionBegun
	opts.LiveInterval, opts.Live = a.kpiLiveInterval(), a.kpiLive
	opts.OnDeadLetter = a.deadLetter
	opts.StatsPayload = a.appendStats
	pub, err := publish.New(buf, opts, log)
	if err != nil {
		buf.Close()
		return nil, config.Join(cfg, placeErrors(cfg, "mqtt", err)...)
	}
	a.pub = pub
	a.metrics = newMetrics(a)
	a.kpi.closed = func(asset string) { a.metrics.kpiWindows.WithLabelValues(asset).Inc() }
	for i := range a.devices {
		a.devices[i].status.latency = a.metrics.latency.WithLabelValues(a.devices[i].dev.Name)
	}
	return a, nil
}

func publishOptions(cfg *config.File, epoch string, lastSession uint64) (publish.Options, error) {
	places := map[string]publish.Place{}
	for _, d := range cfg.Devices {
		if d.Area != cfg.Gateway.Area || d.Line != cfg.Gateway.Line {
			places[d.Name] = publish.Place{Area: d.Area, Line: d.Line}
		}
	}
	tlsConfig, err := brokerTLS(cfg)
	if err != nil {
		return publish.Options{}, err
	}
	return publish.Options{
		TLS:             tlsConfig,
		MaxDrainRate:    cfg.MQTT.MaxDrainRate,
		MaxMessageBytes: int(cfg.MQTT.MaxMessageBytes),
		Brokers:         cfg.MQTT.Brokers,
		ClientID:        cfg.MQTT.ClientID,
		Username:        cfg.MQTT.Username,
		Password:        cfg.MQTT.Password.Reveal(),
		Gateway:         cfg.Gateway.ID,
		Site:            cfg.Gateway.Site,
		Area:            cfg.Gateway.Area,
		Line:            cfg.Gateway.Line,
		Places:          places,
		TopicTemplate:   cfg.MQTT.TopicTemplate,
		Epoch:           epoch,
		LastSession:     lastSession,
		MaxInflight:     cfg.MQTT.MaxInflight,
		KeepAlive:       cfg.MQTT.KeepAlive,
		ConnectTimeout:  cfg.MQTT.ConnectTimeout,
		MinBackoff:      cfg.MQTT.ReconnectMin,
		MaxBackoff:      cfg.MQTT.ReconnectMax,
		Grace:           cfg.MQTT.ShutdownGrace,
		StatsInterval:   cfg.MQTT.StatsInterval,
	}, nil
}

// brokerTLS builds the TLS setting of the broker connection from mqtt.tls; nil when the file
// has none (paho then uses the system's roots for ssl:// brokers).
func brokerTLS(cfg *config.File) (*tls.Config, error) {
	t := cfg.MQTT.TLS
	if t == nil {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read mqtt.tls.ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, &config.Error{Problems: []config.Problem{cfg.Problemf("mqtt.tls.ca_file", "%s holds no PEM certificate", t.CAFile)}}
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, &config.Error{Problems: []config.Problem{cfg.Problemf("mqtt.tls.cert_file", "load the client certificate and key: %v", err)}}
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// bufferDrop stores the drop event of records the buffer dropped unsent (full, or too old): the
// backend sees the hole in seq explained. Called from the buffer's writer, which allows Append.
//
// A drop event is a record like any other, so a buffer that stays full drops earlier drop
// events too. Each event therefore announces the whole run of consecutive drops it belongs to,
// from the first seq of the run, so that whichever event survives explains the hole; the run is
// kept in the buffer's state, with the event, across restarts.
func (a *Agent) bufferDrop(d buffer.Drop) {
	first := d.First
	if a.dropRun.last > 0 && d.First == a.dropRun.last+1 {
		first = a.dropRun.first
		// At the limit nearly every commit drops: one line per run, not per commit.
		a.log.Debug("buffer dropped records unsent", "reason", d.Reason, "first_seq", d.First, "last_seq", d.Last, "count", d.Count)
	} else {
		a.log.Error("buffer full or records too old: dropping the oldest records unsent", "reason", d.Reason, "first_seq", d.First, "last_seq", d.Last, "count", d.Count)
	}
	a.dropRun.first, a.dropRun.last = first, d.Last
	run := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, first), d.Last)
	a.storeEvent(record.Record{Kind: record.KindEvent, Time: time.Now(), Fields: []record.Field{
		record.StringField("event", "drop"), record.StringField("reason", d.Reason),
		record.UintField("first_seq", first), record.UintField("last_seq", d.Last), record.UintField("count", d.Last-first+1),
	}}, buffer.State{Key: stateDropRun, Value: run})
}

// clockJump stores an event for a step of the wall clock: KPI time across it is unknown, and
// the buffer does not age records across it.
func (a *Agent) clockJump(j buffer.ClockJump) {
	a.log.Warn("wall clock jumped", "jump", j.Jump(), "wall", j.Wall, "monotonic", j.Monotonic)
	a.storeEvent(record.Record{Kind: record.KindEvent, Time: time.Now(), Fields: []record.Field{
		record.StringField("event", "clock_jump"), record.FloatField("jump_seconds", j.Jump().Seconds()),
		record.FloatField("wall_seconds", j.Wall.Seconds()), record.FloatField("monotonic_seconds", j.Monotonic.Seconds()),
	}})
}

// deadLetter stores a drop event for a record the publisher had to skip, so the backend can
// tell the hole in seq from a loss.
func (a *Agent) deadLetter(seq uint64, err error) {
	a.storeEvent(record.Record{Kind: record.KindEvent, Time: time.Now(), Fields: []record.Field{
		record.StringField("event", "drop"), record.StringField("reason", "dead_letter"),
		record.UintField("first_seq", seq), record.UintField("last_seq", seq), record.UintField("count", 1),
		record.StringField("error", err.Error()),
	}})
}

// deviceFromConfig maps a device of the file onto the drivers' Device. The OPC UA
// ApplicationURI names the gateway, which the device does not know: the caller sets it.
func deviceFromConfig(dc config.Device) drivers.Device {
	dev := drivers.Device{
		Name: dc.Name, Protocol: dc.Protocol, Address: dc.Address, UnitID: uint8(dc.UnitID),
		PollInterval: dc.PollInterval, Timeout: dc.Timeout, SourceTime: dc.Timestamp == "source",
		Modbus: drivers.ModbusOptions{Retries: dc.Retries, RequestDelay: dc.RequestDelay,
			MaxRegisters: dc.MaxRegisters, MaxGap: dc.MaxGap, AddressBase: dc.AddressBase},
	}
	if dc.Protocol == opcua.Protocol {
		dev.OPCUA = drivers.OPCUAOptions{
			SecurityPolicy: dc.SecurityPolicy, SecurityMode: dc.SecurityMode,
			Auth: dc.Auth, Username: dc.Username, Password: dc.Password.Reveal(),
			UserCertFile: dc.UserCertFile, UserKeyFile: dc.UserKeyFile,
			PKIDir: dc.PKIDir, TrustOnFirstUse: dc.TrustOnFirstUse,
			Mode: dc.Mode, SamplingInterval: dc.SamplingInterval, PublishingInterval: dc.PublishingInterval,
			QueueSize: dc.QueueSize, Timestamp: dc.Timestamp,
		}
	}
	if dc.MaxGap == 0 {
		dev.Modbus.MaxGap = -1 // max_gap: 0 in the file means adjacent tags only
	}
	if s := dc.Serial; s != nil {
		dev.Modbus.Serial = drivers.Serial{Baud: s.Baud, DataBits: s.DataBits, Parity: s.Parity, StopBits: s.StopBits}
	}
	for _, tc := range dc.Tags {
		t := drivers.Tag{Name: tc.Name, Address: tc.Address, Type: drivers.DataType(tc.Type),
			ByteOrder: tc.ByteOrder, Scale: tc.Scale, Offset: tc.Offset, Unit: tc.Unit,
			Length: tc.Length, PollInterval: tc.PollInterval, Enum: tc.Enum}
		// In subscribe mode an absolute deadband also becomes the server's data-change filter,
		// in raw units: fewer notifications on the wire, the same values published. A percent
		// deadband stays the pipeline's: OPC UA's percent is of the node's EURange, not of the
		// last value. Non-numeric tags keep theirs in the pipeline as well.
		switch tc.Type {
		case "bool", "string", "datetime", "bytes":
		default:
			if dc.Protocol == opcua.Protocol && dc.Mode == opcua.ModeSubscribe && !tc.Deadband.Percent && tc.Deadband.Value > 0 {
				scale := tc.Scale
				if scale == 0 {
					scale = 1
				}
				t.Deadband = tc.Deadband.Value / math.Abs(scale)
			}
		}
		dev.Tags = append(dev.Tags, t)
	}
	return dev
}

func tagPolicies(tags []config.Tag) []tagPolicy {
	out := make([]tagPolicy, len(tags))
	for i, t := range tags {
		out[i] = tagPolicy{deadband: t.Deadband.Value, percent: t.Deadband.Percent, heartbeat: t.Heartbeat}
	}
	return out
}

// placeErrors turns a part's errors into problems placed in the file: a *drivers.FieldError's
// path is relative to prefix; any other error is placed at prefix itself.
func placeErrors(cfg *config.File, prefix string, err error) []config.Problem {
	var out []config.Problem
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *drivers.FieldError
		if errors.As(err, &fe) {
			p := prefix
			if fe.Device != "" {
				for i, d := range cfg.Devices {
					if d.Name == fe.Device {
						p = fmt.Sprintf("devices[%d]", i)
					}
				}
			}
			out = append(out, cfg.Problemf(p+"."+fe.Path, "%s", fe.Err))
			return
		}
		out = append(out, cfg.Problemf(prefix, "%s", err))
	}
	walk(err)
	return out
}

// lastSession reads the MQTT session counter from the buffer file, so that session numbers grow
// across restarts.
func (a *Agent) lastSession() (uint64, error) {
	b, err := a.buf.State(stateSession)
	if err != nil {
		return 0, fmt.Errorf("read mqtt session counter: %w", err)
	}
	if len(b) != 8 {
		return 0, nil
	}
	return binary.BigEndian.Uint64(b), nil
}

func (a *Agent) sessionBegun(n uint64) error {
	return a.buf.SetState(stateSession, binary.BigEndian.AppendUint64(nil, n))
}

// Run runs the gateway until ctx ends, then shuts down in the order that loses nothing:
//  1. stop the drivers (none waits on a device that does not answer);
//  2. commit everything they produced into the buffer;
//  3. let a connected publisher deliver what is stored, the drivers' last records included, up to
//     mqtt.shutdown_grace, then finish its window and record the cursor;
//  4. stop the buffer's writer and close the buffer.
//
// Run closes the buffer; an Agent runs once.
func (a *Agent) Run(ctx context.Context) error {
	a.started = time.Now()
	a.loopBeat.Store(a.started.UnixNano()) // the loop is reached without blocking
	defer a.buf.Close()
	if path, cause := a.buf.MovedAside(); path != "" {
		a.gatewayEvent("buffer_moved_aside", fmt.Errorf("unreadable buffer file moved to %s: %w", path, cause))
	}
	// Servers refuse an expired application certificate, and then every secured OPC UA device
	// goes silent at once: warn a month ahead (opcua.ExpiryWarning), at every start.
	pkiSeen := map[string]bool{}
	for _, d := range a.cfg.Devices {
		if d.Protocol != opcua.Protocol || d.SecurityPolicy == "None" || d.PKIDir == "" || pkiSeen[d.PKIDir] {
			continue
		}
		pkiSeen[d.PKIDir] = true
		if p, err := opcua.OpenPKI(d.PKIDir, "urn:floorlink:"+a.cfg.Gateway.ID); err == nil {
			if info, err := p.Show(); err == nil && info.ExpiresWithin(time.Now(), opcua.ExpiryWarning) {
				a.gatewayEvent("opcua_certificate_expiring", fmt.Errorf("the OPC UA application certificate %s expires at %s: run floorlink opcua cert renew, then give the new certificate to every server that trusted the old one",
					info.Path, info.NotAfter.UTC().Format(time.RFC3339)))
			}
		}
	}

	bufCtx, stopBuffer := context.WithCancel(context.Background())
	pubCtx, stopPublisher := context.WithCancel(context.Background())
	defer stopBuffer()
	defer stopPublisher()

	bufDone := make(chan error, 1)
	go func() { bufDone <- a.buf.Run(bufCtx) }()
	pubDone := make(chan error, 1)
	go func() { pubDone <- a.pub.Run(pubCtx) }()

	// Windows that closed while the agent was down (their ends are behind the restored
	// snapshot's time) are committed before any new sample counts.
	kpiCtx, stopKPI := context.WithCancel(context.Background())
	defer stopKPI()
	a.kpi.flushWindows(a.now())
	kpiDone := make(chan struct{})
	go func() { defer close(kpiDone); a.kpi.run(kpiCtx, a.now) }()

	for _, c := range a.conns {
		a.startConnection(ctx, c)
	}
	stopHTTP := a.serveHTTP(ctx, a.ready(ctx))
	a.log.Info("agent running", "devices", len(a.devices), "epoch", a.buf.Epoch())

	beat := time.NewTicker(loopBeat)
	defer beat.Stop()
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case req := <-a.reloads:
			req.done <- a.apply(ctx, req.cfg)
		case <-beat.C:
			a.loopBeat.Store(time.Now().UnixNano())
		}
	}
	a.loopBeat.Store(0)
	start := time.Now()
	for _, c := range a.connections() {
		<-c.done
	}
	grace, cancel := context.WithTimeout(context.Background(), a.cfg.MQTT.ShutdownGrace)
	defer cancel()
	// The windows the drivers' last samples closed, then the accumulators as they are, so that
	// a restart continues the shift from here; the time until then is unknown.
	stopKPI()
	<-kpiDone
	a.kpi.flushWindows(a.now())
	if err := a.kpi.saveSnapshot(grace); err != nil {
		a.log.Warn("save the kpi snapshot at stop", "err", err)
	}
	if err := a.buf.Flush(grace); err != nil {
		a.log.Warn("flush the buffer at stop", "err", err)
	}
	a.deliverStored(grace)
	stopPublisher()
	pubErr := <-pubDone
	stopBuffer()
	bufErr := <-bufDone
	stopHTTP()
	a.log.Info("agent stopped", "took", time.Since(start).Round(time.Millisecond),
		"records", a.counts.records.Load(), "dropped", a.counts.dropped.Load(),
		"head", a.buf.Head(), "cursor", a.buf.Cursor())
	return errors.Join(bufErr, pubErr)
}

// Alive returns nil while the agent's own loops come round: Run's loop (which stops the agent
// and applies reloads) within loopStall, and the buffer's writer, running and not stuck in one
// commit for longer than commitStall. It feeds systemd's watchdog and /healthz, so that an agent
// in a deadlock or on a disk that stopped answering is restarted, while one that cannot reach a
// PLC or a broker, or whose disk is full, is not: restarting fixes none of these, and /readyz
// and the logs tell. A commit that waits for a backup (floorlink buffer backup of a busy file)
// is the backup's doing, not a hang. Alive neither blocks nor starts anything.
//
// Not covered: a deadlock that stops the drivers' sinks or the publisher while Run's loop and
// the writer stay free (the writer then has nothing to commit, and is idle, not stuck).
func (a *Agent) Alive() error {
	beat := a.loopBeat.Load()
	if beat == 0 {
		return errors.New("the agent is not running")
	}
	now := time.Now()
	if d := now.Sub(time.Unix(0, beat)); d > a.loopStall {
		return fmt.Errorf("the agent's main loop has not come round for %v", d.Round(time.Millisecond))
	}
	w := a.buf.Writer()
	if w.Stopped {
		return errors.New("the buffer's writer has stopped")
	}
	if d := now.Sub(w.CommitSince); !w.CommitSince.IsZero() && d > a.commitStall && w.Backups == 0 {
		return fmt.Errorf("the buffer's writer has been in one commit for %v (stored up to seq %d)", d.Round(time.Millisecond), a.buf.Head())
	}
	return nil
}

// deliverStored lets a connected publisher send what is stored, including the drivers' last
// records, until ctx (the shutdown grace) ends, so that a clean stop leaves no backlog behind. A
// disconnected publisher has nothing to wait for: the records stay in the buffer.
func (a *Agent) deliverStored(ctx context.Context) {
	head := a.buf.Head()
	for a.buf.Cursor() < head && a.pub.Stats().Connected {
		select {
		case <-ctx.Done():
			a.log.Warn("stopping with records not yet delivered", "head", head, "cursor", a.buf.Cursor())
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ready reports whether the gateway does its job: delivering, or buffering an outage with room
// to spare. Not ready, with the reason, once a disconnected buffer passes half of max_bytes or
// max_age: records will soon be dropped, and someone should look.
func (a *Agent) ready(ctx context.Context) func() error {
	return func() error {
		if ctx.Err() != nil {
			return errors.New("stopping")
		}
		if a.pub.Stats().Connected {
			return nil
		}
		st := a.buf.Stats()
		if max := a.cfg.Buffer.MaxBytes; max > 0 && st.FileBytes > max/2 && st.Bytes > max/4 {
			return fmt.Errorf("not connected to an MQTT broker, and the buffer holds %d records (%d bytes) in a file of %d of max_bytes %d",
				st.Entries, st.Bytes, st.FileBytes, max)
		}
		if age := a.cfg.Buffer.MaxAge; age > 0 && st.OldestAge > age/2 {
			return fmt.Errorf("not connected to an MQTT broker, and the oldest buffered record is %v old (max_age %v)",
				st.OldestAge.Round(time.Second), age)
		}
		return nil
	}
}

// HTTPAddr returns the address the HTTP listener listens on, "" when it does not (yet).
func (a *Agent) HTTPAddr() string {
	s, _ := a.httpAddr.Load().(string)
	return s
}

// gatewayEvent stores an event of the gateway itself (source "").
func (a *Agent) gatewayEvent(kind string, err error) {
	rec := record.Record{Kind: record.KindEvent, Time: time.Now(),
		Fields: []record.Field{record.StringField("event", kind)}}
	if err != nil {
		rec.Fields = append(rec.Fields, record.StringField("error", err.Error()))
	}
	a.storeEvent(rec)
	a.log.Error("gateway event", "event", kind, "err", err)
}

// storeEvent appends an event record of the gateway; events are never dropped for room before
// telemetry is.
func (a *Agent) storeEvent(rec record.Record, states ...buffer.State) {
	b, err := rec.AppendBinary(nil)
	if err == nil {
		err = a.buf.Append(b, states...)
	}
	if err != nil {
		a.counts.dropped.Add(1)
		a.log.Error("store gateway event", "event", rec.Fields[0].Str, "err", err)
	}
}
