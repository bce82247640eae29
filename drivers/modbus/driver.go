package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/goburrow/modbus"
	"github.com/goburrow/serial"

	"github.com/floorlink/floorlink/drivers"
)

// Defaults for zero fields of Options and Device.
const (
	DefaultPollInterval    = time.Second
	DefaultTimeout         = 2 * time.Second
	DefaultMinBackoff      = 500 * time.Millisecond
	DefaultMaxBackoff      = 30 * time.Second
	DefaultMaxRegisters    = 125  // the protocol's limit for function codes 3 and 4
	DefaultMaxBits         = 2000 // the protocol's limit for function codes 1 and 2
	DefaultMaxGap          = 16
	DefaultReprobeInterval = 5 * time.Minute
	DefaultResyncQuiet     = 50 * time.Millisecond
)

// Options tune a Driver. The zero value is ready to use.
type Options struct {
	// Now stamps batches and events; nil means time.Now.
	Now func() time.Time

	// MinBackoff and MaxBackoff bound the wait between two connection attempts while the
	// connection cannot be opened or keeps failing: the n-th wait is drawn uniformly from
	// [c/2, c] with c = MinBackoff·2ⁿ⁻¹ capped at MaxBackoff, and never below MinBackoff. Zero
	// means 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration

	// MaxBits bounds one read of coils or discrete inputs, 1..2000; zero means 2000. (Register
	// reads are bounded per device: Device.Modbus.MaxRegisters.)
	MaxBits int

	// ReprobeInterval is how long a read that was split to isolate an exception (see the
	// package doc) is read split before the whole read is tried again, so that a device whose
	// register map was fixed heals. Zero means 5 minutes.
	ReprobeInterval time.Duration

	// ResyncQuiet is the silence that ends a resynchronisation of a serial line after a timeout
	// or a garbled reply: zero means 50ms, and less than 20ms is raised to 20ms (USB serial
	// adapters deliver in chunks up to about 16 ms apart). It must be longer than any gap
	// inside one of the devices' frames.
	ResyncQuiet time.Duration
}

// Driver polls the Modbus devices on one connection (a TCP device, several units behind a TCP
// gateway, or the units on one RS-485 port) and reports to a drivers.Sink. It implements
// drivers.Driver.
//
// New plans every read up front; Run does the I/O from the caller's goroutine, one request at a
// time on the connection. Run must not be called again while it runs; it may be called again
// after it returns.
type Driver struct {
	protocol string
	address  string
	serial   serial.Config // modbus-rtu only
	devs     []*device
	groups   []*group // every device's poll groups
	now      func() time.Time
	minWait  time.Duration
	maxWait  time.Duration
	reprobe  time.Duration
	quiet    time.Duration
	log      *slog.Logger

	// dial and open reach the device; tests swap in in-memory ones.
	dial dialFunc
	open openFunc
	// jitter returns a uniform duration in [0, n]; tests pin it.
	jitter func(n time.Duration) time.Duration

	running atomic.Bool
}

var _ drivers.Driver = (*Driver)(nil)

// device is one unit on the connection.
type device struct {
	name    string
	unit    uint8
	timeout time.Duration
	retries int
	delay   time.Duration
	log     *slog.Logger
	groups  []*group

	// State of one Run, owned by its goroutine.
	client modbus.Client
	link   link
}

// group is the tags of one device polled at one interval, and their plan.
type group struct {
	dev      *device
	interval time.Duration
	reads    []*planned
	// batch and its Samples (one per tag of the group, in config order; Samples[i].Tag is the
	// tag's index in Device.Tags) are reused by every poll, so a steady poll loop allocates
	// nothing per sample.
	batch drivers.Batch

	next time.Time // when the group is due; state of one Run
}

// planned is one read of a group's plan, with what exception isolation learned about it.
type planned struct {
	piece
	// split, when not nil, is what the read is replaced by since an exception was isolated
	// (at learned): pieces that read, and single tags that fail.
	split   []piece
	learned time.Time
	// faulty is set while the read (or one of its pieces) fails with an exception or a
	// malformed reply, so that the fault is reported once when it starts.
	faulty bool
}

// piece is a read and the words that name it in errors.
type piece struct {
	read
	// what names the read in errors: `read holding registers 0-19 on device "press-1" (unit 1)`.
	what string
	// failed is set on the pieces of a split that failed when it was learned ("exception 2"):
	// they are read alone, and never merged with others.
	failed string
}

func newPiece(r read, dev *device) piece {
	return piece{read: r, what: fmt.Sprintf("read %s %d-%d on device %q (unit %d)", r.space.noun(), r.start, r.last(), dev.name, dev.unit)}
}

// New validates devs, which share one connection (the same Protocol and Address: units behind
// a TCP gateway or on one serial port), and opts, and plans the reads of each device's poll
// groups (its tags grouped by poll interval). It returns every problem at once (joined with
// errors.Join); a problem with a device is a *drivers.FieldError naming the device, whose Path is
// relative to it ("address", "unit_id", "max_registers", "serial.baud", "tags[3].address"…).
// New does no I/O and starts no goroutine. A nil log discards.
func New(devs []drivers.Device, opts Options, log *slog.Logger) (*Driver, error) {
	var errs []error
	if len(devs) == 0 {
		errs = append(errs, errors.New("modbus: no devices"))
	}
	opts.MaxBits = cmpOrInt(opts.MaxBits, DefaultMaxBits)
	if opts.MaxBits < 1 || opts.MaxBits > 2000 {
		errs = append(errs, fmt.Errorf("modbus options: MaxBits %d: want 1..2000, or 0 for 2000", opts.MaxBits))
		opts.MaxBits = DefaultMaxBits
	}
	minWait, maxWait := cmpOr(opts.MinBackoff, DefaultMinBackoff), cmpOr(opts.MaxBackoff, DefaultMaxBackoff)
	switch {
	case opts.MinBackoff < 0 || opts.MaxBackoff < 0:
		errs = append(errs, fmt.Errorf("modbus options: MinBackoff %v, MaxBackoff %v: want positive durations, or 0 for the defaults", opts.MinBackoff, opts.MaxBackoff))
	case minWait > maxWait:
		errs = append(errs, fmt.Errorf("modbus options: MinBackoff %v is above MaxBackoff %v", minWait, maxWait))
	}
	if opts.ReprobeInterval < 0 || opts.ResyncQuiet < 0 {
		errs = append(errs, fmt.Errorf("modbus options: ReprobeInterval %v, ResyncQuiet %v: want positive durations, or 0 for the defaults", opts.ReprobeInterval, opts.ResyncQuiet))
	}

	configs := make([]devConfig, len(devs))
	for i, dev := range devs {
		var derrs []error
		configs[i], derrs = validateDevice(dev, &opts)
		errs = append(errs, derrs...)
	}
	errs = append(errs, checkConnection(configs)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	first := configs[0]
	d := &Driver{
		protocol: first.protocol,
		address:  first.dev.Address,
		now:      opts.Now,
		minWait:  minWait,
		maxWait:  maxWait,
		reprobe:  cmpOr(opts.ReprobeInterval, DefaultReprobeInterval),
		quiet:    max(cmpOr(opts.ResyncQuiet, DefaultResyncQuiet), rtuMinQuiet),
		log:      log.With("address", first.dev.Address),
		dial:     (&net.Dialer{}).DialContext,
		open:     openSerial,
		jitter:   func(n time.Duration) time.Duration { return rand.N(n + 1) },
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.protocol == ProtocolRTU {
		d.serial = serialConfig(first.dev.Address, first.dev.Modbus.Serial)
	}
	for _, c := range configs {
		dev := &device{name: c.dev.Name, unit: c.dev.UnitID, timeout: c.timeout, retries: c.retries, delay: c.delay,
			log: log.With("device", c.dev.Name)}
		for _, gc := range c.groups {
			g := &group{dev: dev, interval: gc.interval}
			for _, r := range plan(gc.specs, c.lim) {
				g.reads = append(g.reads, &planned{piece: newPiece(r, dev)})
			}
			g.batch = drivers.Batch{Device: dev.name, Samples: make([]drivers.Sample, len(gc.specs))}
			for i, s := range gc.specs {
				g.batch.Samples[i] = drivers.Sample{Tag: s.tag, Quality: drivers.QualityBad, Reason: reasonNotRead}
			}
			dev.groups = append(dev.groups, g)
			d.groups = append(d.groups, g)
		}
		d.devs = append(d.devs, dev)
	}
	return d, nil
}

// NewDevice is New for a connection with one device.
//
// Deprecated: a temporary bridge for callers written before New took several devices; use
// New([]drivers.Device{dev}, opts, log).
func NewDevice(dev drivers.Device, opts Options, log *slog.Logger) (*Driver, error) {
	return New([]drivers.Device{dev}, opts, log)
}

// checkConnection checks what the devices of one connection must agree on: protocol, address,
// the serial line setting, distinct unit ids and names.
func checkConnection(cs []devConfig) []error {
	var errs []error
	if len(cs) == 0 {
		return nil
	}
	first := cs[0]
	units := map[uint8]string{first.dev.UnitID: first.dev.Name}
	names := map[string]bool{first.dev.Name: true}
	for _, c := range cs[1:] {
		bad := func(path, format string, args ...any) {
			errs = append(errs, &drivers.FieldError{Device: c.dev.Name, Path: path, Err: fmt.Errorf(format, args...)})
		}
		switch {
		case c.protocol != first.protocol:
			bad("protocol", "%q differs from device %q's %q: one driver serves one connection", c.protocol, first.dev.Name, first.protocol)
		case c.dev.Address != first.dev.Address:
			bad("address", "%q differs from device %q's %q: one driver serves one connection", c.dev.Address, first.dev.Name, first.dev.Address)
		case c.protocol == ProtocolRTU && normSerial(c.dev.Modbus.Serial) != normSerial(first.dev.Modbus.Serial):
			a, b := normSerial(c.dev.Modbus.Serial), normSerial(first.dev.Modbus.Serial)
			bad("serial", "%d %d%c%d differs from device %q's %d %d%c%d on %s: every device on a port has the port's one line setting",
				a.Baud, a.DataBits, a.Parity[0]-32, a.StopBits, first.dev.Name, b.Baud, b.DataBits, b.Parity[0]-32, b.StopBits, c.dev.Address)
		}
		if other, dup := units[c.dev.UnitID]; dup {
			bad("unit_id", "%d is also device %q's on %s: unit ids must be unique on a connection", c.dev.UnitID, other, c.dev.Address)
		} else {
			units[c.dev.UnitID] = c.dev.Name
		}
		if names[c.dev.Name] {
			bad("name", "%q twice on one connection: device names must be unique", c.dev.Name)
		}
		names[c.dev.Name] = true
	}
	return errs
}

func cmpOrInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// transport is what a session needs of its connection: goburrow's Transporter (one request
// ADU in, the reply out) plus connection control. tcpTransport and rtuTransport implement it.
type transport interface {
	modbus.Transporter
	connect() error
	connected() bool
	close()
	release()
	setTimeout(time.Duration)
}

// link is the connectivity of one device, reported through events.
type link uint8

const (
	linkUnknown link = iota // at start: neither event sent yet
	linkUp
	linkDown
)

// session is the state of one Run call.
type session struct {
	d    *Driver
	ctx  context.Context
	sink drivers.Sink
	t    transport
}

// Run polls the devices until ctx ends, then returns nil. Each poll group of each device is
// polled on its own interval (the device's PollInterval, or the tags' own) and ends with one
// Batch holding the group's tags. Requests go one at a time, in turn, on the one connection.
//
// A read that fails marks its tags Bad and the poll goes on; a read answered with an exception
// is isolated (see the package doc). A device that does not answer within its timeout (after
// its retries) has the rest of that poll marked Bad without being asked, so a silent unit costs
// the others on its connection one timeout per poll. When the connection itself fails (cannot
// be opened, reset, port gone), the rest of the poll is Bad and Run retries with capped
// exponential backoff and jitter, sending one all-Bad batch per group per failed attempt. Events
// report each device's transitions (connected, disconnected) and the start of a fault on a read,
// once each.
//
// Run returns promptly when ctx ends, even while a request waits on a device that does not
// answer. It returns an error only when it is already running.
func (d *Driver) Run(ctx context.Context, sink drivers.Sink) error {
	if !d.running.CompareAndSwap(false, true) {
		return fmt.Errorf("run modbus connection %s: already running", d.address)
	}
	defer d.running.Store(false)

	s := d.newSession(ctx, sink)
	defer s.t.release()

	now := time.Now()
	for _, g := range d.groups {
		g.next = now
	}
	attempt := 0
	for {
		g := d.groups[0]
		for _, o := range d.groups[1:] {
			if o.next.Before(g.next) {
				g = o
			}
		}
		if !s.sleep(time.Until(g.next)) {
			return nil
		}
		start := time.Now()
		ok := s.poll(g)
		if ctx.Err() != nil {
			return nil
		}
		// The next due time on the group's phase after this poll's start: a poll that overran
		// the interval is followed by at most one immediate poll; missed ones are dropped, not
		// bursted.
		g.next = g.next.Add(g.interval * (start.Sub(g.next)/g.interval + 1))
		if ok {
			attempt = 0
			continue
		}
		attempt++
		if !s.sleep(d.backoff(attempt)) {
			return nil
		}
		// Poll on intervals counted from this attempt, not on the old phase.
		now := time.Now()
		for _, g := range d.groups {
			g.next = now
		}
	}
}

// newSession builds the state of one Run: a transport bound to ctx and, per device, goburrow's
// client over it with the device's packager. The caller releases s.t.
func (d *Driver) newSession(ctx context.Context, sink drivers.Sink) *session {
	s := &session{d: d, ctx: ctx, sink: sink}
	if d.protocol == ProtocolRTU {
		s.t = newRTUTransport(ctx, d.serial, d.devs[0].timeout, d.quiet, d.open)
	} else {
		t := newTCPTransport(ctx, d.address, d.devs[0].timeout, d.dial)
		t.single = len(d.devs) == 1
		s.t = t
	}
	for _, dev := range d.devs {
		dev.link = linkUnknown
		// goburrow's handlers serve only as packagers (ADU encoding, CRC or MBAP header, the
		// unit id check); our transport does the I/O.
		var pk modbus.Packager
		if d.protocol == ProtocolRTU {
			h := &modbus.RTUClientHandler{}
			h.SlaveId = dev.unit
			pk = h
		} else {
			h := &modbus.TCPClientHandler{}
			h.SlaveId = dev.unit
			pk = h
		}
		dev.client = modbus.NewClient2(pk, s.t)
		for _, g := range dev.groups {
			for _, p := range g.reads {
				p.split, p.faulty = nil, false
			}
		}
	}
	return s
}

// sleep waits for d, or until the Run's context ends: then it reports false.
func (s *session) sleep(d time.Duration) bool {
	if d <= 0 {
		return s.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backoff returns the wait before connection attempt n (1-based, counting failed polls since
// the last good one).
func (d *Driver) backoff(n int) time.Duration {
	ceil := d.maxWait
	if n-1 < 62 {
		if c := d.minWait << (n - 1); c > 0 && c>>(n-1) == d.minWait && c < ceil {
			ceil = c
		}
	}
	w := ceil/2 + d.jitter(ceil-ceil/2)
	return min(max(w, d.minWait), d.maxWait)
}

// exceptionReason is the Reason of a sample whose read was answered with exception code: a
// constant string for the codes the spec defines, so that marking samples bad allocates
// nothing.
func exceptionReason(code byte) string {
	switch code {
	case 1:
		return "exception 1"
	case 2:
		return "exception 2"
	case 3:
		return "exception 3"
	case 4:
		return "exception 4"
	case 5:
		return "exception 5"
	case 6:
		return "exception 6"
	case 8:
		return "exception 8"
	case 10:
		return "exception 10"
	case 11:
		return "exception 11"
	}
	return "exception " + strconv.Itoa(int(code))
}
