package opcua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua"

	"github.com/floorlink/floorlink/drivers"
)

// Defaults for zero fields of Options and Device.
const (
	DefaultPollInterval         = time.Second
	DefaultTimeout              = 5 * time.Second
	DefaultMinBackoff           = 500 * time.Millisecond
	DefaultMaxBackoff           = 30 * time.Second
	DefaultItemsPerSubscription = 1000
	// DefaultRequestBytes keeps every request under one 64 KiB chunk: gopcua v0.8.0 breaks the
	// connection on encrypted requests that need two (upstream #781).
	DefaultRequestBytes = 48 << 10
)

// Options tune a Driver. The zero value is ready to use.
type Options struct {
	// Now stamps batches and events and is the time certificates are checked at; nil means
	// time.Now.
	Now func() time.Time

	// MinBackoff and MaxBackoff bound the wait between two connection attempts: the n-th wait
	// is drawn uniformly from [c/2, c] with c = MinBackoff·2ⁿ⁻¹ capped at MaxBackoff, and never
	// below MinBackoff. Zero means 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration

	// HeartbeatTimeout is how long a subscription may go without a notification of its
	// heartbeat item (the server's CurrentTime, sampled every second) before the driver drops
	// the session and builds a new one. Zero means 3 × max(1s, publishing interval) + the
	// device's timeout.
	HeartbeatTimeout time.Duration

	// ItemsPerSubscription bounds the monitored items of one subscription (plus its heartbeat);
	// zero means 1000.
	ItemsPerSubscription int

	// RequestBytes bounds the estimated size of one Read or CreateMonitoredItems request; zero
	// means 48 KiB.
	RequestBytes int
}

// Driver reads one OPC UA device (a server endpoint) by polling or subscription and reports to
// a drivers.Sink. It implements drivers.Driver. See the package doc for the supervisor.
//
// New validates; Run does the I/O from the caller's goroutine (gopcua runs its own goroutines
// per client, which Run closes before it returns). Run must not be called again while it runs.
type Driver struct {
	cfg     config
	pki     *PKI // nil for security None with anonymous or username tokens
	now     func() time.Time
	minWait time.Duration
	maxWait time.Duration
	hbLimit time.Duration
	perSub  int
	reqMax  int
	log     *slog.Logger
	jitter  func(n time.Duration) time.Duration
	running atomic.Bool

	// State of one Run, owned by its goroutine.
	batch    drivers.Batch // reused: Samples has room for every tag
	link     link
	reported []bool // a type problem of tag i was reported
	missing  []bool // tag i's node was refused by the server
}

var _ drivers.Driver = (*Driver)(nil)

type link uint8

const (
	linkUnknown link = iota
	linkUp
	linkDown
)

// New validates dev (Protocol "opcua") and opts. It returns every problem at once, joined with
// errors.Join; a problem with the device is a *drivers.FieldError whose Path is relative to it
// ("address", "security_policy", "tags[3].address"…). With a security policy other than None
// it opens the PKI directory (creating its subdirectories); the certificate is created on the
// first connection. New starts no goroutine. A nil log discards.
func New(dev drivers.Device, opts Options, log *slog.Logger) (*Driver, error) {
	var errs []error
	if opts.MinBackoff < 0 || opts.MaxBackoff < 0 || opts.HeartbeatTimeout < 0 {
		errs = append(errs, fmt.Errorf("opcua options: MinBackoff %v, MaxBackoff %v, HeartbeatTimeout %v: want positive durations, or 0 for the defaults",
			opts.MinBackoff, opts.MaxBackoff, opts.HeartbeatTimeout))
	}
	minWait, maxWait := cmpOr(opts.MinBackoff, DefaultMinBackoff), cmpOr(opts.MaxBackoff, DefaultMaxBackoff)
	if minWait > maxWait {
		errs = append(errs, fmt.Errorf("opcua options: MinBackoff %v is above MaxBackoff %v", minWait, maxWait))
	}
	if opts.ItemsPerSubscription < 0 || opts.RequestBytes < 0 {
		errs = append(errs, fmt.Errorf("opcua options: ItemsPerSubscription %d, RequestBytes %d: want positive numbers, or 0 for the defaults",
			opts.ItemsPerSubscription, opts.RequestBytes))
	}
	c, cerrs := validate(dev, &opts)
	errs = append(errs, cerrs...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		cfg:     c,
		now:     opts.Now,
		minWait: minWait,
		maxWait: maxWait,
		hbLimit: opts.HeartbeatTimeout,
		perSub:  cmpOr(opts.ItemsPerSubscription, DefaultItemsPerSubscription),
		reqMax:  cmpOr(opts.RequestBytes, DefaultRequestBytes),
		log:     log.With("device", dev.Name),
		jitter:  func(n time.Duration) time.Duration { return rand.N(n + 1) },
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.hbLimit == 0 {
		d.hbLimit = 3*max(time.Second, c.publish) + c.timeout
	}
	if c.policy != "None" || c.auth == AuthCertificate {
		p, err := OpenPKI(dev.OPCUA.PKIDir, c.appURI)
		if err != nil {
			return nil, &drivers.FieldError{Device: dev.Name, Path: "pki_dir", Err: err}
		}
		d.pki = p
	}
	d.batch = drivers.Batch{Device: dev.Name, Samples: make([]drivers.Sample, 0, len(c.tags))}
	return d, nil
}

// Run reads the device until ctx ends, then returns nil. In poll mode it reads every tag each
// PollInterval in batched Reads and sends one Batch per poll; in subscribe mode it sends one
// Batch per notification, holding the tags that changed, after one Batch with every tag read
// when the subscriptions are made.
//
// Run owns the connection: it connects (a device down at start is retried, never fatal),
// watches it, and on any failure or doubt closes the client and builds a new one after a
// capped exponential backoff with jitter. While the device is down it sends one all-bad Batch
// per failed attempt, whose Reason says why ("unreachable", "server certificate not
// trusted"…); an Event reports each transition (connected, disconnected with the error), and
// a fault Event each tag whose node the server refuses or whose type differs from the config.
//
// Run returns within about a second of ctx ending, even when the server does not answer. It
// returns an error only when it is already running.
func (d *Driver) Run(ctx context.Context, sink drivers.Sink) error {
	if !d.running.CompareAndSwap(false, true) {
		return fmt.Errorf("run opcua device %q: already running", d.cfg.dev.Name)
	}
	defer d.running.Store(false)
	d.link = linkUnknown
	d.reported = make([]bool, len(d.cfg.tags))
	d.missing = make([]bool, len(d.cfg.tags))
	attempt := 0
	for {
		healthy, err := d.session(ctx, sink)
		if ctx.Err() != nil {
			return nil
		}
		if healthy {
			attempt = 0
		}
		attempt++
		d.down(sink, err)
		d.allBad(sink, reasonFor(err))
		if !sleep(ctx, d.backoff(attempt)) {
			return nil
		}
	}
}

// session connects and acquires until the session fails. healthy reports that data flowed.
func (d *Driver) session(ctx context.Context, sink drivers.Sink) (healthy bool, err error) {
	cl, states, err := d.connect(ctx)
	if err != nil {
		return false, err
	}
	defer closeClient(ctx, cl)
	d.up(sink)
	lim := d.limits(ctx, cl)
	for i := range d.missing {
		d.missing[i] = false
	}
	if d.cfg.subscribe {
		return d.subscribe(ctx, cl, states, lim, sink)
	}
	return d.poll(ctx, cl, states, lim, sink)
}

// closeClient closes the session and the connection, waiting at most a second for the server
// (it may be the one that stopped answering).
func closeClient(ctx context.Context, cl *opcua.Client) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = cl.Close(cctx)
}

// poll reads every tag each interval until the session fails.
func (d *Driver) poll(ctx context.Context, cl *opcua.Client, states <-chan opcua.ConnState, lim limits, sink drivers.Sink) (bool, error) {
	plan := d.planReads(allTags(len(d.cfg.tags)), lim)
	healthy := false
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return healthy, nil
		case st := <-states:
			if err := lost(st); err != nil {
				return healthy, err
			}
			continue
		case <-timer.C:
		}
		start := time.Now()
		if err := d.read(ctx, cl, plan, sink); err != nil {
			return healthy, err
		}
		healthy = true
		next = next.Add(d.cfg.interval * (start.Sub(next)/d.cfg.interval + 1))
		timer.Reset(time.Until(next))
	}
}

// lost turns a client state into the error that ends a session, or nil.
func lost(st opcua.ConnState) error {
	switch st {
	case opcua.Closed, opcua.Disconnected, opcua.Reconnecting:
		return fmt.Errorf("%w: client %s", ErrConnectionLost, st)
	}
	return nil
}

func (d *Driver) up(sink drivers.Sink) {
	if d.link == linkUp {
		return
	}
	d.link = linkUp
	d.log.Info("device connected", "endpoint", d.cfg.endpoint)
	sink.Event(drivers.Event{Device: d.cfg.dev.Name, Time: d.now(), Kind: drivers.EventConnected})
}

func (d *Driver) down(sink drivers.Sink, err error) {
	if d.link == linkDown {
		return
	}
	d.link = linkDown
	d.log.Warn("device disconnected", "endpoint", d.cfg.endpoint, "err", err)
	sink.Event(drivers.Event{Device: d.cfg.dev.Name, Time: d.now(), Kind: drivers.EventDisconnected, Err: err})
}

// fault reports a problem with one tag, once per Run.
func (d *Driver) fault(sink drivers.Sink, tag int, err error) {
	if d.reported[tag] {
		return
	}
	d.reported[tag] = true
	d.log.Warn("tag fault", "tag", d.cfg.tags[tag].name, "err", err)
	sink.Event(drivers.Event{Device: d.cfg.dev.Name, Time: d.now(), Kind: drivers.EventFault, Err: err})
}

func (d *Driver) allBad(sink drivers.Sink, reason string) {
	b := &d.batch
	b.Samples = b.Samples[:0]
	for i := range d.cfg.tags {
		b.Samples = append(b.Samples, drivers.Sample{Tag: i, Quality: drivers.QualityBad, Reason: reason})
	}
	b.ReadTime, b.Took = d.now(), 0
	sink.Batch(b)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backoff returns the wait before connection attempt n (1-based).
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

func allTags(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}
