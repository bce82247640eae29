package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorlink/floorlink/agent/record"
)

// sparkplug is the Sparkplug B 3.0 edge node (docs/sparkplug.md). Its fields belong to Run's
// goroutine, except those under mu, which paho's callbacks and DeviceLost/DeviceFound set.
type sparkplug struct {
	p *Publisher
	o SparkplugOptions

	nbirth, ndeath, ndata, ncmd, state, barrier string

	node     *spDevice
	devices  []*spDevice
	bySource map[sourceKey]*spDevice

	bdSeq     uint8 // of the current (last) CONNECT: its Will, its NBIRTH
	nextBdSeq uint8
	seq       uint8 // of the next message; NBIRTH resets it to 0
	pending   bool  // a device's death or birth may be due: see devices

	aliases  map[[2]string]uint64 // (device id, metric name) → alias, kept across reloads
	maxAlias uint64

	ctl chan struct{} // one token: something under mu changed

	mu         sync.Mutex
	rebirth    bool   // a rebirth command arrived
	hostKnown  bool   // a valid STATE of the primary host arrived
	hostOnline bool   // what the newest valid STATE said
	hostTS     uint64 // its timestamp: older STATEs are stale (a Will of an earlier host session)
	lostAfter  map[*spDevice]uint64
	newDevices *[]SparkplugDevice // from a reload, not yet applied
}

type sourceKey struct {
	source string
	asset  bool
}

// spDevice is a Sparkplug device, or the edge node itself (node metrics, id "").
type spDevice struct {
	id, source          string
	asset               bool
	dbirth, ddata, dead string // topics; for the node NBIRTH, NDATA, ""
	metrics             []spMetric
	byName              map[string]int // tag or KPI name → metrics index
	byEvent             map[string]int // event field name (metric "Event/<field>") → metrics index

	// On Run's goroutine: born says whether the device's DBIRTH went out in this session since
	// its last DDEATH; lost says the device is lost, with its DDEATH due once every record stored
	// until then (through lostAfter) was sent.
	born      bool
	lost      bool
	lostAfter uint64
}

type spMetric struct {
	Metric
	alias uint64
	// last is the newest value sent, for births; lastAt its record's time (zero: none yet).
	last   record.Field
	lastAt time.Time
}

func newSparkplug(p *Publisher) (*sparkplug, error) {
	o, err := p.opts.Sparkplug.withDefaults(p.opts.Gateway)
	if err != nil {
		return nil, err
	}
	base := "spBv1.0/" + o.GroupID + "/"
	s := &sparkplug{p: p, o: o,
		nbirth: base + "NBIRTH/" + o.EdgeNodeID, ndeath: base + "NDEATH/" + o.EdgeNodeID,
		ndata: base + "NDATA/" + o.EdgeNodeID, ncmd: base + "NCMD/" + o.EdgeNodeID,
		// The barrier is on a topic of our own, outside spBv1.0/, so that no host sees it.
		barrier:   "floorlink/v1/" + p.opts.Site + "/gateway/" + p.opts.Gateway + "/barrier",
		nextBdSeq: o.BdSeq,
		bySource:  map[sourceKey]*spDevice{},
		ctl:       make(chan struct{}, 1),
		lostAfter: map[*spDevice]uint64{},
	}
	if o.PrimaryHostID != "" {
		s.state = "spBv1.0/STATE/" + o.PrimaryHostID
	}
	s.node = s.table("", "", false, o.NodeMetrics)
	s.node.dbirth, s.node.ddata = s.nbirth, s.ndata
	s.setDevices(o.Devices)
	return s, nil
}

// table builds a device's metric table. Aliases are unique across the edge node, devices
// included (6.4.6); bdSeq and the Rebirth metric have none. A metric keeps the alias it had
// under the same device id before a reload, so a host's alias map stays valid for it; a new
// one takes the next number.
func (s *sparkplug) table(id, source string, asset bool, ms []Metric) *spDevice {
	if s.aliases == nil {
		s.aliases = map[[2]string]uint64{}
	}
	d := &spDevice{id: id, source: source, asset: asset, byName: map[string]int{}, byEvent: map[string]int{}}
	for i, m := range ms {
		key := [2]string{id, m.Name}
		alias, ok := s.aliases[key]
		if !ok {
			s.maxAlias++
			alias = s.maxAlias
			s.aliases[key] = alias
		}
		d.metrics = append(d.metrics, spMetric{Metric: m, alias: alias})
		if ev, ok := cutPrefix(m.Name, eventPrefix); ok {
			d.byEvent[ev] = i
		} else {
			d.byName[m.Name] = i
		}
	}
	return d
}

// setDevices replaces the devices (checked by withDefaults). A device whose id and metrics stay
// keeps its state (born, lost, last values).
func (s *sparkplug) setDevices(devs []SparkplugDevice) {
	base := "spBv1.0/" + s.o.GroupID + "/"
	old := map[string]*spDevice{}
	for _, d := range s.devices {
		old[d.id] = d
	}
	s.devices, s.bySource = nil, map[sourceKey]*spDevice{}
	for _, sd := range devs {
		d := s.table(sd.ID, sd.Source, sd.Asset, sd.Metrics)
		if o := old[sd.ID]; o != nil && o.source == d.source && o.asset == d.asset && sameMetrics(o.metrics, d.metrics) {
			d = o
		}
		d.dbirth, d.ddata, d.dead = base+"DBIRTH/"+s.o.EdgeNodeID+"/"+d.id, base+"DDATA/"+s.o.EdgeNodeID+"/"+d.id,
			base+"DDEATH/"+s.o.EdgeNodeID+"/"+d.id
		s.devices = append(s.devices, d)
		s.bySource[sourceKey{d.source, d.asset}] = d
	}
	s.mu.Lock()
	for d := range s.lostAfter {
		if s.bySource[sourceKey{d.source, d.asset}] != d {
			delete(s.lostAfter, d)
		}
	}
	s.mu.Unlock()
}

func sameMetrics(a, b []spMetric) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Metric != b[i].Metric || a[i].alias != b[i].alias {
			return false
		}
	}
	return true
}

// reconfigure takes the devices of a reload: they replace the current ones before the next
// message, with a node rebirth (NBIRTH, then every DBIRTH) when the set or any metric changed.
func (s *sparkplug) reconfigure(devs []SparkplugDevice) error {
	o := s.o
	o.Devices = devs
	checked, err := o.withDefaults(s.p.opts.Gateway)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.newDevices = &checked.Devices
	s.mu.Unlock()
	s.signal()
	return nil
}

// applyDevices installs the devices of a reconfigure, on Run's goroutine; it reports whether
// the edge node must be reborn.
func (s *sparkplug) applyDevices() bool {
	s.mu.Lock()
	devs := s.newDevices
	s.newDevices = nil
	s.mu.Unlock()
	if devs == nil {
		return false
	}
	before := s.devices
	s.setDevices(*devs)
	if len(before) != len(s.devices) {
		return true
	}
	for i := range before {
		if before[i] != s.devices[i] {
			return true
		}
	}
	return false
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return s, false
}

func (s *sparkplug) signal() {
	select {
	case s.ctl <- struct{}{}:
	default:
	}
}

// next returns the seq of the next message: one counter over every message but NDEATH, 0-255.
func (s *sparkplug) next() uint8 {
	n := s.seq
	s.seq++
	return n
}

// will takes the next bdSeq for this CONNECT, lets the caller persist the one after it, and
// returns the NDEATH the broker publishes if the connection dies (QoS 1, not retained: 5.4).
func (s *sparkplug) will(_ uint64, begun time.Time) message {
	s.bdSeq = s.nextBdSeq
	s.nextBdSeq = s.bdSeq + 1 // wraps 255 → 0
	if s.o.OnBdSeq != nil {
		if err := s.o.OnBdSeq(s.nextBdSeq); err != nil {
			s.p.log.Error("record sparkplug bdSeq", "bdseq", s.nextBdSeq, "err", err)
		}
	}
	return message{topic: s.ndeath, payload: s.deathPayload(begun), qos: 1}
}

// begin subscribes to NCMD (and STATE), waits for the primary host when there is one, and
// sends the births.
func (s *sparkplug) begin(ctx context.Context, c *conn) error {
	subscribe := func(topic string, cb mqtt.MessageHandler) error {
		if err := waitToken(ctx, c.client.Subscribe(topic, 1, cb), c.lost); err != nil {
			return fmt.Errorf("subscribe %s: %w", topic, err)
		}
		return nil
	}
	if err := subscribe(s.ncmd, s.onCommand); err != nil {
		return err
	}
	if s.state != "" {
		if err := subscribe(s.state, s.onState); err != nil {
			return err
		}
		waiting := false
		for !s.hostIsOnline() {
			if !waiting {
				s.p.log.Info("waiting for the primary host", "host", s.o.PrimaryHostID)
				waiting = true
			}
			select {
			case <-s.ctl:
			case err := <-c.lost:
				return fmt.Errorf("connection lost: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	s.applyDevices()
	s.births(c, s.p.src.Cursor())
	return nil
}

func (s *sparkplug) hostIsOnline() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hostKnown && s.hostOnline
}

// onState takes a STATE of the primary host (3.0: JSON {"online":bool,"timestamp":ms},
// retained). One older than the newest seen is stale and ignored (5.10): a Will of the host's
// previous session must not end a session it began since. Runs on paho's goroutine.
func (s *sparkplug) onState(_ mqtt.Client, m mqtt.Message) {
	var st struct {
		Online    *bool   `json:"online"`
		Timestamp *uint64 `json:"timestamp"`
	}
	if err := json.Unmarshal(m.Payload(), &st); err != nil || st.Online == nil || st.Timestamp == nil {
		s.p.log.Warn("ignore a STATE message that is not Sparkplug 3.0 JSON", "topic", m.Topic(), "payload", string(m.Payload()))
		return
	}
	s.mu.Lock()
	stale := s.hostKnown && *st.Timestamp < s.hostTS
	if !stale {
		s.hostKnown, s.hostOnline, s.hostTS = true, *st.Online, *st.Timestamp
	}
	s.mu.Unlock()
	if stale {
		s.p.log.Info("ignore a stale STATE of the primary host", "online", *st.Online, "timestamp", *st.Timestamp)
		return
	}
	s.signal()
}

// onCommand takes an NCMD; "Node Control/Rebirth" = true asks for a rebirth, whatever the QoS
// and with or without a timestamp. Other commands are ignored: Floorlink writes nothing to
// devices. Runs on paho's goroutine.
func (s *sparkplug) onCommand(_ mqtt.Client, m mqtt.Message) {
	rebirth, err := parseRebirth(m.Payload())
	if err != nil {
		s.p.log.Warn("ignore an NCMD that does not decode", "err", err)
		return
	}
	if !rebirth {
		return
	}
	s.mu.Lock()
	s.rebirth = true
	s.mu.Unlock()
	s.signal()
}

// births sends NBIRTH (seq 0, the CONNECT's bdSeq) and every DBIRTH, built from current state,
// with nothing in between; then the deaths of lost devices whose records were all sent.
func (s *sparkplug) births(c *conn, sent uint64) {
	s.mu.Lock()
	s.rebirth = false
	s.mu.Unlock()
	s.seq = 0
	now := s.p.opts.Now()
	s.publish(c, s.nbirth, s.nodeBirth(now, s.next()))
	s.p.births.Add(1)
	for _, d := range s.devices {
		s.publish(c, d.dbirth, s.deviceBirth(d, now, s.next()))
		d.born = true
	}
	s.pending = true
	s.settleDevices(c, sent)
}

// publish sends a QoS 0 message of the session.
func (s *sparkplug) publish(c *conn, topic string, payload []byte) {
	c.client.Publish(topic, 0, false, payload)
	s.p.published.Add(1)
}

// settleDevices sends the DDEATH of each lost device whose records up to its loss were all sent
// (through sent), and the DBIRTH of each device found again. Run's goroutine only.
func (s *sparkplug) settleDevices(c *conn, sent uint64) {
	s.mu.Lock()
	if len(s.lostAfter) > 0 {
		for d, after := range s.lostAfter {
			d.lost, d.lostAfter = after > 0, after
		}
		clear(s.lostAfter)
		s.pending = true
	}
	s.mu.Unlock()
	if !s.pending {
		return
	}
	s.pending = false
	now := s.p.opts.Now()
	for _, d := range s.devices {
		switch {
		case d.lost && d.born && sent >= d.lostAfter:
			s.publish(c, d.dead, s.deviceDeath(now, s.next()))
			d.born = false
		case d.lost && d.born:
			s.pending = true // not yet: records from before the loss are still to go
		case !d.lost && !d.born:
			s.publish(c, d.dbirth, s.deviceBirth(d, now, s.next()))
			d.born = true
		}
	}
}

// DeviceLost tells a Sparkplug publisher that the device named source (a Floorlink device, not
// an asset) is lost: its DDEATH follows the records stored so far (store the device's
// disconnected event first). A device lost while no session is up gets its DDEATH right after
// the next births. No effect in JSON mode or for an unknown name. Safe for concurrent use;
// never blocks.
func (p *Publisher) DeviceLost(source string) { p.deviceState(source, true) }

// DeviceFound undoes DeviceLost: the device gets a DBIRTH (if it got a DDEATH) before its next
// records. Safe for concurrent use; never blocks.
func (p *Publisher) DeviceFound(source string) { p.deviceState(source, false) }

func (p *Publisher) deviceState(source string, lost bool) {
	s, ok := p.mode.(*sparkplug)
	if !ok {
		return
	}
	d := s.bySource[sourceKey{source, false}]
	if d == nil {
		return
	}
	var after uint64 // 0: found
	if lost {
		after = max(p.src.Head(), 1)
	}
	s.mu.Lock()
	s.lostAfter[d] = after
	s.mu.Unlock()
	s.signal()
}

// route returns the device that publishes rec's values, or nil.
func (s *sparkplug) route(rec *record.Record) *spDevice {
	switch {
	case rec.Kind == record.KindKPI:
		return s.bySource[sourceKey{rec.Source, true}]
	case rec.Kind == record.KindEvent && rec.Source == "":
		return s.node
	case rec.Kind == record.KindTelemetry || rec.Kind == record.KindEvent:
		return s.bySource[sourceKey{rec.Source, false}]
	}
	return nil
}

// encode writes rec's values as alias-only NDATA/DDATA (6.4.21-22), preceded by the device's
// DBIRTH when it has none in this session. A message that would exceed MaxMessageBytes is split
// into several, each with its own seq; a single value larger than that goes as is_null, bad.
func (s *sparkplug) encode(out []slot, seq uint64, rec *record.Record, historical bool, buf []byte) ([]slot, error) {
	d := s.route(rec)
	if d == nil {
		s.p.undeclared.Add(uint64(len(rec.Fields)))
		return append(out, slot{seq: seq}), nil
	}
	if d != s.node && !d.born {
		out = append(out, slot{seq: seq, topic: d.dbirth, buf: s.deviceBirth(d, s.p.opts.Now(), s.next()), more: true})
		d.born, s.pending = true, true // a lost device's data: it dies again after the batch
	}
	now := msTime(s.p.opts.Now())
	limit := s.p.opts.MaxMessageBytes - payloadSeqFieldSize
	buf = appendDataStart(buf, now)
	empty := len(buf)
	parts := 0
	index := d.byName
	if rec.Kind == record.KindEvent {
		index = d.byEvent
	}
	for i := range rec.Fields {
		f := &rec.Fields[i]
		k, ok := index[f.Name]
		if !ok {
			s.p.undeclared.Add(1)
			continue
		}
		m := &d.metrics[k]
		if !rec.Time.Before(m.lastAt) {
			m.last, m.lastAt = *f, rec.Time
		}
		ts := rec.Time
		if !f.SourceTime.IsZero() {
			ts = f.SourceTime
		}
		at := len(buf)
		buf = appendDataMetric(buf, m.alias, msTime(ts), historical, toWire(m.Type, f))
		if len(buf) <= limit {
			continue
		}
		if at > empty {
			// Close this message before the metric, which opens the next one.
			next := append(appendDataStart(nil, now), buf[at:]...)
			out = append(out, slot{seq: seq, topic: d.ddata, buf: appendDataEnd(buf[:at], s.next()), more: true})
			parts++
			buf, at = next, empty
		}
		if len(buf) > limit {
			// The value alone does not fit in a message: say it is missing.
			buf = appendDataMetric(buf[:at], m.alias, msTime(ts), historical, wireValue{quality: qualityBad})
		}
	}
	if len(buf) == empty {
		if n := len(out); n > 0 && out[n-1].seq == seq && out[n-1].more {
			out[n-1].more = false // the record's last message is the one before
			return out, nil
		}
		return append(out, slot{seq: seq}), nil
	}
	if parts > 0 {
		s.p.split.Add(1)
	}
	return append(out, slot{seq: seq, topic: d.ddata, buf: appendDataEnd(buf, s.next())}), nil
}

// batch sends at most a quarter of the window between barriers, so that several barriers are in
// flight and the link never idles waiting for one PUBACK (a broker with Nagle on holds PUBACKs
// back: shared/research/sparkplug-mqtt.md §5).
func (s *sparkplug) batch(room int) int {
	return min(room, max(1, s.p.opts.MaxInflight/4))
}

// send publishes a batch of DATA at QoS 0 (5.16), then a QoS 1 barrier on a topic of our own:
// the broker acknowledges a connection's messages in order, so the barrier's PUBACK confirms the
// whole batch, which paho cannot do for QoS 0.
func (s *sparkplug) send(c *conn, batch []slot) {
	var last uint64
	sentAny := false
	for i := range batch {
		if batch[i].topic != "" {
			s.publish(c, batch[i].topic, batch[i].buf)
			sentAny = true
		}
		last = batch[i].seq
	}
	if sentAny {
		tok := c.client.Publish(s.barrier, 1, false, strconv.AppendUint(nil, last, 10))
		for i := range batch {
			if batch[i].topic != "" {
				batch[i].token = tok
			}
		}
	}
	if s.pending && len(batch) > 0 {
		s.settleDevices(c, last)
	}
}

func (s *sparkplug) holdBack() time.Duration  { return s.o.HoldBack }
func (s *sparkplug) control() <-chan struct{} { return s.ctl }

// handle acts on what arrived: the primary host gone offline (NDEATH, then the caller
// disconnects), a rebirth, devices lost or found.
func (s *sparkplug) handle(c *conn, sent uint64) error {
	s.mu.Lock()
	hostGone := s.state != "" && !(s.hostKnown && s.hostOnline)
	rebirth := s.rebirth
	s.mu.Unlock()
	changed := s.applyDevices()
	if hostGone {
		s.p.log.Warn("primary host offline: leaving until it is back", "host", s.o.PrimaryHostID)
		s.end(c)
		return fmt.Errorf("%w: primary host %s is offline", errLeave, s.o.PrimaryHostID)
	}
	if rebirth {
		s.p.log.Info("rebirth requested")
		s.p.rebirths.Add(1)
		s.births(c, sent)
		return nil
	}
	if changed {
		s.p.log.Info("devices reconfigured: rebirth")
		s.births(c, sent)
		return nil
	}
	s.settleDevices(c, sent)
	return nil
}

// end publishes NDEATH with the CONNECT's bdSeq before a clean DISCONNECT (5.5, 6.4.25), at
// QoS 1 and waited for, so that it is at the broker before the DISCONNECT that cancels the Will.
func (s *sparkplug) end(c *conn) {
	m := message{topic: s.ndeath, payload: s.deathPayload(s.p.opts.Now()), qos: 1}
	if err := c.publish(context.Background(), m, time.Second); err != nil {
		s.p.log.Warn("publish NDEATH", "err", err)
	}
	s.p.published.Add(1)
}
