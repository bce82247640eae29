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

	"github.com/floorlink/floorlink/drivers"
)

// Defaults for zero fields of Options and Device.
const (
	DefaultPollInterval = time.Second
	DefaultTimeout      = 2 * time.Second
	DefaultMinBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultMaxRegisters = 125  // the protocol's limit for function codes 3 and 4
	DefaultMaxBits      = 2000 // the protocol's limit for function codes 1 and 2
	DefaultMaxGap       = 16
)

// Options tune a Driver. The zero value is ready to use.
type Options struct {
	// Now stamps batches and events; nil means time.Now.
	Now func() time.Time

	// MinBackoff and MaxBackoff bound the wait between two connection attempts while the device
	// is unreachable: the n-th wait is drawn uniformly from [c/2, c] with c = MinBackoff·2ⁿ⁻¹
	// capped at MaxBackoff, and never below MinBackoff. Zero means 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration

	// MaxRegisters bounds one read of input or holding registers, 1..125; zero means 125. Some
	// devices and gateways answer less than the protocol allows.
	MaxRegisters int
	// MaxBits bounds one read of coils or discrete inputs, 1..2000; zero means 2000.
	MaxBits int
	// MaxGap is the most registers nobody asked for that one read may span to join two tags
	// (for coils and discrete inputs, 16×MaxGap bits: the same payload bytes). Zero means 16; a
	// negative value means 0, i.e. only adjacent or overlapping tags share a read, for devices
	// whose register map has holes that answer "illegal data address".
	MaxGap int
}

// Driver polls one Modbus TCP device (unit) and reports to a drivers.Sink. It implements
// drivers.Driver.
//
// New plans every read up front; Run does the I/O from the caller's goroutine, one request at a
// time. Run must not be called again while it runs; it may be called again after it returns.
type Driver struct {
	name     string
	address  string
	unit     uint8
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time
	minWait  time.Duration
	maxWait  time.Duration
	log      *slog.Logger

	reads []read
	// what names each read in errors: `read holding registers 0-19 on device "press-1" (unit 1)`.
	what []string

	// batch and its Samples are reused by every cycle (one sample per tag, Samples[i].Tag == i),
	// so a steady poll loop allocates nothing per sample.
	batch drivers.Batch

	// dial opens connections; tests swap in an in-memory one.
	dial dialFunc
	// jitter returns a uniform duration in [0, n]; tests pin it.
	jitter func(n time.Duration) time.Duration

	running atomic.Bool
}

var _ drivers.Driver = (*Driver)(nil)

// New validates dev and opts and plans the reads. It returns every problem at once (joined with
// errors.Join); a problem with the device is a *drivers.FieldError whose Path is relative to the
// device ("address", "unit_id", "tags[3].address", "tags[3].type", "tags[3].byte_order"). New
// does no I/O and starts no goroutine. A nil log discards.
func New(dev drivers.Device, opts Options, log *slog.Logger) (*Driver, error) {
	specs, errs := validateDevice(dev)
	lim := limits{maxRegisters: opts.MaxRegisters, maxBits: opts.MaxBits, maxGap: opts.MaxGap}
	if lim.maxRegisters == 0 {
		lim.maxRegisters = DefaultMaxRegisters
	}
	if lim.maxRegisters < 1 || lim.maxRegisters > 125 {
		errs = append(errs, fmt.Errorf("modbus options: MaxRegisters %d: want 1..125, or 0 for 125", opts.MaxRegisters))
	}
	if lim.maxBits == 0 {
		lim.maxBits = DefaultMaxBits
	}
	if lim.maxBits < 1 || lim.maxBits > 2000 {
		errs = append(errs, fmt.Errorf("modbus options: MaxBits %d: want 1..2000, or 0 for 2000", opts.MaxBits))
	}
	switch {
	case lim.maxGap == 0:
		lim.maxGap = DefaultMaxGap
	case lim.maxGap < 0:
		lim.maxGap = 0
	}
	minWait, maxWait := cmpOr(opts.MinBackoff, DefaultMinBackoff), cmpOr(opts.MaxBackoff, DefaultMaxBackoff)
	switch {
	case opts.MinBackoff < 0 || opts.MaxBackoff < 0:
		errs = append(errs, fmt.Errorf("modbus options: MinBackoff %v, MaxBackoff %v: want positive durations, or 0 for the defaults", opts.MinBackoff, opts.MaxBackoff))
	case minWait > maxWait:
		errs = append(errs, fmt.Errorf("modbus options: MinBackoff %v is above MaxBackoff %v", minWait, maxWait))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		name:     dev.Name,
		address:  dev.Address,
		unit:     dev.UnitID,
		interval: cmpOr(dev.PollInterval, DefaultPollInterval),
		timeout:  cmpOr(dev.Timeout, DefaultTimeout),
		now:      opts.Now,
		minWait:  minWait,
		maxWait:  maxWait,
		log:      log.With("device", dev.Name),
		reads:    plan(specs, lim),
		dial:     (&net.Dialer{}).DialContext,
		jitter:   func(n time.Duration) time.Duration { return rand.N(n + 1) },
	}
	if d.now == nil {
		d.now = time.Now
	}
	for _, r := range d.reads {
		d.what = append(d.what, fmt.Sprintf("read %s %d-%d on device %q (unit %d)", r.space.noun(), r.start, r.last(), d.name, d.unit))
	}
	d.batch = drivers.Batch{Device: dev.Name, Samples: make([]drivers.Sample, len(dev.Tags))}
	for i := range d.batch.Samples {
		d.batch.Samples[i] = drivers.Sample{Tag: i, Quality: drivers.QualityBad, Reason: reasonNotRead}
	}
	return d, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Reasons for bad samples: constant strings, so that marking samples bad allocates nothing.
const (
	reasonTimeout     = "timeout"
	reasonUnreachable = "unreachable"
	reasonMalformed   = "malformed reply"
	reasonNotRead     = "not read"
)

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

// link is the connection state the driver reports through events.
type link uint8

const (
	linkUnknown link = iota // at start: neither event sent yet
	linkUp
	linkDown
)

// session is the state of one Run call.
type session struct {
	d      *Driver
	sink   drivers.Sink
	t      *transport
	client modbus.Client
	link   link
	// faulty[i] is set while reads[i] fails with an exception or a malformed reply, so that the
	// fault is reported once when it starts.
	faulty []bool
	// excCode and excReason cache the reason of reads[i]'s last exception, so an uncommon code
	// is formatted once, not every cycle.
	excCode   []byte
	excReason []string
}

// Run polls the device every PollInterval until ctx ends, then returns nil. Each cycle ends
// with one Batch holding every tag; a read that fails marks its tags Bad and the cycle goes on,
// unless the connection failed: then the rest of the cycle is Bad too and Run retries with
// capped exponential backoff and jitter, sending one all-Bad batch per attempt. Events report
// the transitions (connected, disconnected) and the start of a fault on a read, once each.
//
// Run returns promptly when ctx ends, even while a request waits on a device that does not
// answer. It returns an error only when it is already running.
func (d *Driver) Run(ctx context.Context, sink drivers.Sink) error {
	if !d.running.CompareAndSwap(false, true) {
		return fmt.Errorf("run device %q: already running", d.name)
	}
	defer d.running.Store(false)

	s := d.newSession(ctx, sink)
	defer s.t.release()

	ticker := time.NewTicker(d.interval)
	defer ticker.Stop()
	attempt := 0
	for {
		ok := s.cycle(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if ok {
			attempt = 0
			// A cycle that overran the interval finds at most one tick waiting: it starts the
			// next cycle at once, and the ticks missed in between are dropped, not bursted.
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
			}
			continue
		}
		attempt++
		timer := time.NewTimer(d.backoff(attempt))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		// Poll on an interval counted from this attempt, not on the ticker's old phase.
		ticker.Reset(d.interval)
	}
}

// newSession builds the state of one Run: a transport bound to ctx and goburrow's client over
// it. The caller releases s.t.
func (d *Driver) newSession(ctx context.Context, sink drivers.Sink) *session {
	t := newTransport(ctx, d.address, d.timeout, d.dial)
	// goburrow's TCPClientHandler serves only as the packager (MBAP encoding, transaction ids,
	// the unit id check); our transport does the I/O.
	pk := &modbus.TCPClientHandler{}
	pk.SlaveId = d.unit
	return &session{
		d:         d,
		sink:      sink,
		t:         t,
		client:    modbus.NewClient2(pk, t),
		faulty:    make([]bool, len(d.reads)),
		excCode:   make([]byte, len(d.reads)),
		excReason: make([]string, len(d.reads)),
	}
}

// backoff returns the wait before connection attempt n (1-based, counting failed cycles since
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

// cycle reads every planned read once and hands the batch to the sink. It reports false when
// the connection failed (or could not be opened), and sends nothing when ctx ended meanwhile.
func (s *session) cycle(ctx context.Context) bool {
	d := s.d
	for i := range d.reads {
		r := &d.reads[i]
		err := s.read(r)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			s.up()
			s.faulty[i] = false
			continue
		}

		var exc *modbus.ModbusError
		var ce *connError
		switch {
		case errors.As(err, &exc):
			// The device answered: the connection is fine, only this read is not.
			s.up()
			if s.excCode[i] != exc.ExceptionCode || s.excReason[i] == "" {
				s.excCode[i], s.excReason[i] = exc.ExceptionCode, exceptionReason(exc.ExceptionCode)
			}
			setBad(d.batch.Samples, r.fields, s.excReason[i])
			s.fault(i, err)
		case errors.As(err, &ce):
			reason := reasonUnreachable
			if ce.timeout() {
				reason = reasonTimeout
			}
			for j := i; j < len(d.reads); j++ {
				setBad(d.batch.Samples, d.reads[j].fields, reason)
			}
			s.down(fmt.Errorf("%s: %w", d.what[i], err))
			s.emit()
			return false
		default:
			// A reply that breaks framing or does not hold what we asked for: the stream may be
			// out of step, so drop the connection; the next read dials again.
			s.t.close()
			setBad(d.batch.Samples, r.fields, reasonMalformed)
			s.fault(i, err)
		}
	}
	s.emit()
	return true
}

// read performs r and decodes its reply into the batch.
func (s *session) read(r *read) error {
	var data []byte
	var err error
	switch r.space {
	case spaceCoil:
		data, err = s.client.ReadCoils(r.start, r.count)
	case spaceDiscrete:
		data, err = s.client.ReadDiscreteInputs(r.start, r.count)
	case spaceInput:
		data, err = s.client.ReadInputRegisters(r.start, r.count)
	default:
		data, err = s.client.ReadHoldingRegisters(r.start, r.count)
	}
	if err != nil {
		return err
	}
	if r.space.isRegister() {
		return decodeRegisters(s.d.batch.Samples, r.fields, int(r.count), data)
	}
	return decodeBits(s.d.batch.Samples, r.fields, int(r.count), data)
}

func setBad(samples []drivers.Sample, fields []field, reason string) {
	for _, f := range fields {
		samples[f.tag] = drivers.Sample{Tag: f.tag, Quality: drivers.QualityBad, Reason: reason}
	}
}

func (s *session) emit() {
	s.d.batch.ReadTime = s.d.now()
	s.sink.Batch(&s.d.batch)
}

func (s *session) up() {
	if s.link == linkUp {
		return
	}
	s.link = linkUp
	s.d.log.Info("connected", "address", s.d.address, "unit", s.d.unit)
	s.sink.Event(drivers.Event{Device: s.d.name, Time: s.d.now(), Kind: drivers.EventConnected})
}

func (s *session) down(err error) {
	if s.link == linkDown {
		return
	}
	s.link = linkDown
	s.d.log.Info("disconnected", "address", s.d.address, "err", err)
	s.sink.Event(drivers.Event{Device: s.d.name, Time: s.d.now(), Kind: drivers.EventDisconnected, Err: err})
}

func (s *session) fault(i int, err error) {
	if s.faulty[i] {
		return
	}
	s.faulty[i] = true
	err = fmt.Errorf("%s: %w", s.d.what[i], err)
	s.d.log.Warn("read fault", "err", err)
	s.sink.Event(drivers.Event{Device: s.d.name, Time: s.d.now(), Kind: drivers.EventFault, Err: err})
}
