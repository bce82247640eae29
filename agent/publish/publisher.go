package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorlink/floorlink/agent/record"
)

// Source is the durable, ordered record queue the publisher drains. *buffer.Buffer satisfies it.
type Source interface {
	// ReadAfter calls fn for the entries after seq after, in order, at most max of them. payload
	// is valid only while fn runs.
	ReadAfter(after uint64, max int, fn func(seq uint64, payload []byte) error) error
	// Ack records that every entry up to and including through was delivered.
	Ack(through uint64) error
	// Cursor is the last acknowledged seq; Head the last stored one.
	Cursor() uint64
	Head() uint64
	// Wait blocks until Head() > after or ctx ends.
	Wait(ctx context.Context, after uint64) error
}

// Stats are the publisher's counters since New.
type Stats struct {
	Connected   bool
	Session     uint64 // number of the current or last session
	Published   uint64 // messages handed to the broker, re-sends included
	Acked       uint64 // cursor: last seq the broker acknowledged and the buffer recorded
	DeadLetters uint64 // records skipped because they could not be decoded or sent
	Split       uint64 // records sent in parts
	Connects    uint64 // sessions begun

	// Sparkplug mode only.
	Births     uint64 // NBIRTHs sent: one per session the host accepted, one per rebirth
	Rebirths   uint64 // rebirth commands obeyed
	Undeclared uint64 // values left out of DATA because no birth declared their metric
}

// Publisher sends the records of a Source to an MQTT broker, in order, at least once.
type Publisher struct {
	src    Source
	opts   Options
	log    *slog.Logger
	mode   mode
	status string // status topic
	stats  string // stats topic

	lastSession uint64 // number of the last session the broker accepted; only Run's goroutine

	connected   atomic.Bool
	session     atomic.Uint64
	published   atomic.Uint64
	acked       atomic.Uint64
	deadLetters atomic.Uint64
	split       atomic.Uint64
	connects    atomic.Uint64
	births      atomic.Uint64
	rebirths    atomic.Uint64
	undeclared  atomic.Uint64
}

// New validates opts; it does not connect. A nil log discards.
func New(src Source, opts Options, log *slog.Logger) (*Publisher, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, lv := range []struct{ name, v string }{{"gateway", o.Gateway}, {"site", o.Site}} {
		if err := CheckTopicLevel(lv.v); err != nil {
			return nil, fmt.Errorf("%s: %w", lv.name, err)
		}
	}
	t, err := newTopics(o.TopicTemplate, &o)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{src: src, opts: o, log: log,
		status: "floorlink/v1/" + o.Site + "/gateway/" + o.Gateway + "/status",
		stats:  "floorlink/v1/" + o.Site + "/gateway/" + o.Gateway + "/stats"}
	if o.Format == FormatSparkplug {
		if p.mode, err = newSparkplug(p); err != nil {
			return nil, err
		}
	} else {
		p.mode = &jsonMode{p: p, topics: t}
	}
	p.acked.Store(src.Cursor())
	p.lastSession = o.LastSession
	return p, nil
}

// StatusTopic is where the retained online/offline status goes (JSON mode).
func (p *Publisher) StatusTopic() string { return p.status }

// Reconfigure applies a reload of the devices and assets: places are the {area}/{line} of
// sources that differ from the gateway's (JSON topics), devices the Sparkplug devices (ignored
// in JSON mode). In Sparkplug mode a changed set of devices or metrics is published by a node
// rebirth before the next data, with the aliases of unchanged metrics kept. Records already
// stored are published under the new configuration; a value whose metric is gone is left out
// (Stats.Undeclared). Safe for concurrent use.
func (p *Publisher) Reconfigure(places map[string]Place, devices []SparkplugDevice) error {
	switch m := p.mode.(type) {
	case *jsonMode:
		m.topics.setPlaces(places)
	case *sparkplug:
		return m.reconfigure(devices)
	}
	return nil
}

// StatsTopic is where the periodic gateway stats go (QoS 0, not retained, not buffered).
func (p *Publisher) StatsTopic() string { return p.stats }

// Stats returns the current counters; safe to call from any goroutine.
func (p *Publisher) Stats() Stats {
	return Stats{Connected: p.connected.Load(), Session: p.session.Load(), Published: p.published.Load(),
		Acked: p.acked.Load(), DeadLetters: p.deadLetters.Load(), Split: p.split.Load(), Connects: p.connects.Load(),
		Births: p.births.Load(), Rebirths: p.rebirths.Load(), Undeclared: p.undeclared.Load()}
}

// mode is what differs between the JSON contract and Sparkplug B; the session, backoff, window,
// cursor and Source machinery around it is shared. Every method runs on Run's goroutine.
type mode interface {
	// will is the Last Will of the next connection attempt.
	will(session uint64, begun time.Time) message
	// begin runs once the broker accepted the connection, before the drain: announcements,
	// subscriptions, and for Sparkplug the wait for the primary host and the births.
	begin(ctx context.Context, c *conn) error
	// encode appends the slots of the messages of rec, stored at seq, to out; buf is a spare
	// payload buffer to reuse. An error makes the record a dead letter.
	encode(out []slot, seq uint64, rec *record.Record, historical bool, buf []byte) ([]slot, error)
	// batch is the most records to read and send at once when room records fit in the window.
	batch(room int) int
	// send hands a batch to paho and sets the token that confirms each slot.
	send(c *conn, batch []slot)
	// holdBack is how long a confirmed record stays replayable before the cursor passes it.
	holdBack() time.Duration
	// control is signalled when handle has work (a command, the host's state, a device lost or
	// found); nil when there is never any. sent is the last seq handed to paho.
	control() <-chan struct{}
	handle(c *conn, sent uint64) error
	// end says goodbye before a clean DISCONNECT.
	end(c *conn)
}

// message is a topic, payload, QoS and retain flag, e.g. a Will.
type message struct {
	topic    string
	payload  []byte
	qos      byte
	retained bool
}

// conn is one MQTT connection the broker accepted.
type conn struct {
	client  mqtt.Client
	lost    <-chan error
	session uint64
	broker  string
	begun   time.Time // when the connection attempt began
}

// publish sends m and waits for it (QoS 1: its PUBACK) within timeout; it fails when the
// connection is lost or ctx ends first.
func (c *conn) publish(ctx context.Context, m message, timeout time.Duration) error {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return waitToken(tctx, c.client.Publish(m.topic, m.qos, m.retained, m.payload), c.lost)
}

// Run connects, publishes and reconnects until ctx ends. Then it stops sending, waits up to
// Options.Grace for the window in flight, records the cursor, says goodbye (the offline status;
// in Sparkplug mode the NDEATH) and disconnects. It returns nil after ctx ends; other errors are
// retried, never returned.
func (p *Publisher) Run(ctx context.Context) error {
	backoff := p.opts.MinBackoff
	for attempt := 0; ; attempt++ {
		broker := p.opts.Brokers[attempt%len(p.opts.Brokers)]
		connected, err := p.runSession(ctx, broker)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			backoff = p.opts.MinBackoff
		}
		p.log.Warn("mqtt session ended", "broker", broker, "err", err, "retry_in", backoff.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(jitter(backoff)):
		}
		backoff = min(backoff*2, p.opts.MaxBackoff)
	}
}

// jitter spreads reconnects of many gateways after a broker restart over ±20%.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// slot is one message in flight. buf is owned by the slot: paho holds the payload until the
// broker acknowledges it, so it is reused only after the token completed.
type slot struct {
	seq   uint64
	topic string
	buf   []byte
	qos   byte
	// token confirms the slot: its own PUBACK (QoS 1), or the PUBACK of the barrier that
	// follows its batch (Sparkplug's QoS 0 data). nil retires at once: a dead letter, or a record
	// with nothing to send.
	token mqtt.Token
	// more is set on every message of a record but the last (the parts of a split record, a
	// birth sent before a record's data): the seq is acknowledged when its last message is.
	more bool
}

// runSession runs one MQTT connection from connect to loss or shutdown. connected reports
// whether the broker accepted the connection.
func (p *Publisher) runSession(ctx context.Context, broker string) (connected bool, err error) {
	// The Will must carry the session's number before the broker accepts it; a refused attempt
	// does not use up a number.
	session := p.lastSession + 1
	begun := p.opts.Now()
	will := p.mode.will(session, begun)

	lost := make(chan error, 1)
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(p.opts.ClientID).
		SetUsername(p.opts.Username).SetPassword(p.opts.Password).
		// 3.1.1 only: paho would retry a failed connect as MQTT 3.1, whose CONNACK has no
		// session-present flag.
		SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		// A half-open link (the broker gone silent, nothing closed) is noticed within about
		// two keep-alives instead of paho's fixed 10 s ping timeout on top of one.
		SetKeepAlive(p.opts.KeepAlive).SetPingTimeout(min(p.opts.KeepAlive, 10*time.Second)).
		SetConnectTimeout(p.opts.ConnectTimeout).
		SetTLSConfig(p.opts.TLS).
		SetWriteTimeout(p.opts.ConnectTimeout).SetOrderMatters(true).
		SetBinaryWill(will.topic, will.payload, will.qos, will.retained).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	client := mqtt.NewClient(opts)
	tok := client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		// paho cannot abort a connect; it ends by itself within ConnectTimeout.
		return false, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return false, fmt.Errorf("connect to %s: %w", broker, err)
	}
	p.lastSession = session
	p.session.Store(session)
	if p.opts.SessionBegun != nil {
		if err := p.opts.SessionBegun(session); err != nil {
			p.log.Error("record mqtt session number", "session", session, "err", err)
		}
	}
	p.connects.Add(1)
	p.connected.Store(true)
	defer p.connected.Store(false)
	p.log.Info("mqtt connected", "broker", broker, "session", session)

	c := &conn{client: client, lost: lost, session: session, broker: broker, begun: begun}
	err = p.mode.begin(ctx, c)
	if err == nil {
		err = p.drain(ctx, c)
	}
	if ctx.Err() != nil {
		// A clean DISCONNECT suppresses the Will, so say goodbye ourselves.
		p.mode.end(c)
		client.Disconnect(250)
		p.log.Info("mqtt disconnected", "broker", broker, "session", session)
		return true, nil
	}
	if errors.Is(err, errLeave) {
		client.Disconnect(250) // the mode said goodbye; a clean DISCONNECT, so no Will follows
	} else {
		client.Disconnect(0)
	}
	return true, err
}

// errLeave wraps the reason a mode ends a healthy session on purpose (Sparkplug: the primary
// host went offline), after it said goodbye.
var errLeave = errors.New("leaving the session")

func waitToken(ctx context.Context, t mqtt.Token, lost <-chan error) error {
	select {
	case <-t.Done():
		return t.Error()
	case err := <-lost:
		return fmt.Errorf("connection lost: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain publishes the Source from the cursor with up to MaxInflight records in flight, and
// advances the cursor over the longest confirmed prefix, less what the mode holds back. It
// returns when the connection is lost, a publish fails or the mode ends the session (the caller
// reconnects and the window is re-sent from the cursor), or, after ctx ends, when the window is
// confirmed or Options.Grace has passed.
func (p *Publisher) drain(ctx context.Context, c *conn) error {
	// Records stored before this session's data began are replayed history.
	historicalThrough := p.src.Head()
	acked := p.src.Cursor()
	committed, sent := acked, acked
	hold := horizon{d: p.mode.holdBack(), passed: acked, last: acked}
	lastCommit := time.Now()
	// The cursor is recorded by a goroutine of its own: an Ack is a write transaction whose cost
	// grows with the buffer file (bbolt rewrites its free-page list), 5-10 ms on a 1 GiB backlog,
	// and sending must not wait for it. Requests coalesce: the recorder always takes the latest.
	ackReq := make(chan uint64, 1)
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		for seq := range ackReq {
			p.record(seq)
		}
	}()
	commit := func(ready uint64) {
		if ready <= committed {
			return
		}
		select { // replace a request the recorder has not taken yet
		case <-ackReq:
		default:
		}
		ackReq <- ready
		committed, lastCommit = ready, time.Now()
	}
	defer func() {
		close(ackReq)
		<-ackDone
		// The last word is synchronous: Run's caller closes the buffer next. What is held back
		// stays replayable.
		p.record(hold.ready(acked, time.Now()))
	}()

	// wake is signalled after each buffer commit; one goroutine per session turns the Source's
	// blocking Wait into a channel the loop can select on.
	wake := make(chan struct{}, 1)
	wctx, stopWaker := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for after := historicalThrough; ; {
			if p.src.Wait(wctx, after) != nil {
				return
			}
			after = p.src.Head()
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}()
	defer func() { stopWaker(); wg.Wait() }()

	max := p.opts.MaxInflight
	window := make([]slot, 0, max) // FIFO: window[0] is the oldest
	spare := make([][]byte, 0, max)
	var statsC <-chan time.Time
	if p.opts.StatsInterval > 0 && p.opts.StatsPayload != nil {
		tk := time.NewTicker(p.opts.StatsInterval)
		defer tk.Stop()
		statsC = tk.C
	}
	var statsBuf []byte
	var liveC <-chan time.Time
	if p.opts.LiveInterval > 0 && p.opts.Live != nil {
		tk := time.NewTicker(p.opts.LiveInterval)
		defer tk.Stop()
		liveC = tk.C
	}
	rate := newBucket(p.opts.MaxDrainRate)
	var (
		dec      record.Decoder
		rec      record.Record
		read     []slot // read from the Source, not yet handed to paho
		done     = ctx.Done()
		graceC   <-chan time.Time
		stopping bool
	)
	for {
		// Retire the confirmed prefix.
		n := 0
		for ; n < len(window); n++ {
			s := window[n]
			if s.token != nil {
				if !isDone(s.token) {
					break
				}
				if err := s.token.Error(); err != nil {
					return fmt.Errorf("publish seq %d: %w", s.seq, err)
				}
			}
			if !s.more {
				acked = s.seq
			}
			if s.buf != nil && cap(s.buf) <= 2*p.opts.MaxMessageBytes && len(spare) < 2*max {
				spare = append(spare, s.buf)
			}
		}
		window = window[:copy(window, window[n:])]

		now := time.Now()
		hold.confirm(acked, now)
		ready := hold.ready(acked, now)
		if len(window) == 0 || ready-committed >= uint64(max) || now.Sub(lastCommit) >= p.opts.AckInterval {
			commit(ready)
		}
		if stopping && len(window) == 0 {
			return nil
		}

		// Fill the window, after retiring, so that the loop never blocks with room in the window
		// and records waiting in the Source. Payloads are encoded inside ReadAfter, whose read
		// transaction must stay short, and published after it returns, since paho's Publish may
		// block on the socket.
		var rateC <-chan time.Time
		if room := max - len(window); !stopping && room > 0 {
			if allowed, wait := rate.take(now, room); allowed == 0 {
				rateC = time.After(wait)
			} else {
				for allowed > 0 {
					want := p.mode.batch(allowed)
					read = read[:0]
					got := 0
					err := p.src.ReadAfter(sent, want, func(seq uint64, payload []byte) error {
						got++
						read = p.encode(read, seq, payload, seq <= historicalThrough, &dec, &rec, &spare)
						return nil
					})
					if err != nil {
						return fmt.Errorf("read buffer after seq %d: %w", sent, err)
					}
					if got == 0 {
						break
					}
					p.mode.send(c, read)
					for _, s := range read {
						window = append(window, s)
						sent = s.seq
					}
					rate.spend(len(read))
					allowed -= got
					if got < want {
						break
					}
				}
				if len(window) > 0 && window[0].token == nil {
					continue // dead letters at the head retire at once
				}
			}
		}

		var oldest, more <-chan struct{}
		if len(window) > 0 {
			oldest = window[0].token.Done()
		}
		if !stopping && len(window) < max {
			more = wake
		}
		var ctl <-chan struct{}
		if !stopping {
			ctl = p.mode.control()
		}
		select {
		case <-oldest:
		case <-more:
		case <-rateC:
		case <-hold.due(now):
		case <-ctl:
			if err := p.mode.handle(c, sent); err != nil {
				return err
			}
		case err := <-c.lost:
			return fmt.Errorf("connection lost: %w", err)
		case <-done:
			stopping, done = true, nil
			graceC = time.After(p.opts.Grace)
		case <-statsC:
			// QoS 0 and fresh bytes each time: paho keeps the payload, and a stale figure is
			// worth nothing after a reconnect.
			statsBuf = p.opts.StatsPayload(statsBuf[:0])
			c.client.Publish(p.stats, 0, false, append([]byte(nil), statsBuf...))
		case <-liveC:
			if m, ok := p.mode.(*jsonMode); ok {
				m.live(c)
			}
		case <-graceC:
			p.log.Warn("shutdown grace ended with messages unacknowledged", "in_flight", len(window), "session", c.session)
			return nil
		}
	}
}

// encode decodes the record at seq and asks the mode for its messages; a record that cannot be
// decoded or sent becomes a dead letter (no topic).
func (p *Publisher) encode(out []slot, seq uint64, payload []byte, historical bool, dec *record.Decoder, rec *record.Record, spare *[][]byte) []slot {
	var buf []byte
	if n := len(*spare); n > 0 {
		buf, *spare = (*spare)[n-1][:0], (*spare)[:n-1]
	}
	if err := dec.Decode(payload, rec); err != nil {
		return append(out, p.deadLetter(seq, fmt.Errorf("decode record: %w", err)))
	}
	out2, err := p.mode.encode(out, seq, rec, historical, buf)
	if err != nil {
		return append(out, p.deadLetter(seq, err))
	}
	return out2
}

func (p *Publisher) deadLetter(seq uint64, err error) slot {
	p.deadLetters.Add(1)
	p.log.Error("skip a record that cannot be sent", "seq", seq, "err", err)
	if p.opts.OnDeadLetter != nil {
		p.opts.OnDeadLetter(seq, err)
	}
	return slot{seq: seq}
}

// horizon holds confirmed records back from the cursor for d after their confirmation, so that
// a loss noticed late (a primary host that died without a word is declared offline only after
// 1.5 of its keep-alives) can still rewind over them. d = 0 holds nothing back.
type horizon struct {
	d      time.Duration
	held   []heldSeq // confirmed seqs in order, the oldest first
	last   uint64    // the last seq confirmed
	passed uint64    // the last seq the cursor may pass
}

type heldSeq struct {
	seq uint64
	at  time.Time
}

// confirm notes that everything through acked is confirmed at now.
func (h *horizon) confirm(acked uint64, now time.Time) {
	if h.d > 0 && acked > h.last {
		h.held = append(h.held, heldSeq{acked, now})
		h.last = acked
	}
}

// ready is the last seq the cursor may pass at now.
func (h *horizon) ready(acked uint64, now time.Time) uint64 {
	if h.d <= 0 {
		return acked
	}
	n := 0
	for ; n < len(h.held) && now.Sub(h.held[n].at) >= h.d; n++ {
		h.passed = h.held[n].seq
	}
	h.held = h.held[:copy(h.held, h.held[n:])]
	return h.passed
}

// due fires when the oldest held seq may pass; nil when nothing is held.
func (h *horizon) due(now time.Time) <-chan time.Time {
	if len(h.held) == 0 {
		return nil
	}
	return time.After(h.held[0].at.Add(h.d).Sub(now))
}

// bucket is a token bucket of messages per second. Its burst is a tenth of a second's worth,
// so a backlog leaves at an even pace rather than in bursts the broker must absorb.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newBucket(rate float64) *bucket {
	return &bucket{rate: rate, burst: math.Max(1, rate/10), tokens: math.Max(1, rate/10)}
}

// take returns how many messages may be read now, at most want, or how long to wait for one.
func (b *bucket) take(now time.Time, want int) (int, time.Duration) {
	if b.rate <= 0 {
		return want, 0
	}
	if !b.last.IsZero() {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return 0, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	}
	return min(want, int(b.tokens)), 0
}

// spend takes n messages from the bucket; the parts of a split record may take it below zero,
// which later calls pay back.
func (b *bucket) spend(n int) {
	if b.rate > 0 {
		b.tokens -= float64(n)
	}
}

// record writes the cursor through seq to the Source. A failure is not fatal: what was not
// recorded is re-sent, as after a crash.
func (p *Publisher) record(seq uint64) {
	if seq <= p.acked.Load() {
		return
	}
	if err := p.src.Ack(seq); err != nil {
		p.log.Error("record mqtt acknowledgements", "seq", seq, "err", err)
		return
	}
	p.acked.Store(seq)
}

func isDone(t mqtt.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}
