package opcua

import (
	"context"
	"fmt"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/floorlink/floorlink/drivers"
)

// heartbeatHandle marks the client handle of subscription k's heartbeat item; tags use their
// index as handle.
const heartbeatHandle = 1 << 31

// sub is one subscription of a session and its watchdog state.
type sub struct {
	s      *opcua.Subscription
	tags   []int
	lastHB time.Time // last heartbeat notification (or creation)
}

// subscribe creates the subscriptions, reads every tag once, then delivers notifications until
// the session fails or the watchdog doubts it.
func (d *Driver) subscribe(ctx context.Context, cl *opcua.Client, states <-chan opcua.ConnState, lim limits, sink drivers.Sink) (bool, error) {
	// Buffered so that gopcua's one publish goroutine, which blocks on this channel, rarely
	// waits for a sink.
	notify := make(chan *opcua.PublishNotificationData, 256)
	var subs []*sub
	all := allTags(len(d.cfg.tags))
	for start := 0; start < len(all); start += d.perSub {
		s, err := d.newSub(ctx, cl, len(subs), all[start:min(start+d.perSub, len(all))], lim, notify, sink)
		if err != nil {
			return false, err
		}
		subs = append(subs, s)
	}
	// One full Read: values that changed while the device was away, and the values of items
	// whose servers send no initial notification.
	if err := d.read(ctx, cl, d.planReads(all, lim), sink); err != nil {
		return false, err
	}
	seen := make([]bool, len(d.cfg.tags)) // tag delivered a notification in this session
	created := time.Now()
	tick := time.NewTicker(max(d.hbLimit/4, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case st := <-states:
			if err := lost(st); err != nil {
				return true, err
			}
		case n := <-notify:
			if err := d.notified(n, subs, seen, sink); err != nil {
				return true, err
			}
		case now := <-tick.C:
			for k, s := range subs {
				if now.Sub(s.lastHB) > d.hbLimit {
					return true, fmt.Errorf("%w: subscription %d of device %q: no heartbeat for %v", ErrConnectionLost, k, d.cfg.dev.Name, now.Sub(s.lastHB).Round(time.Millisecond))
				}
			}
			// An item without its first notification is not trusted: read it instead.
			if now.Sub(created) > d.hbLimit {
				var quiet []int
				for t, ok := range seen {
					if !ok && !d.missing[t] {
						quiet = append(quiet, t)
					}
				}
				if len(quiet) > 0 {
					if err := d.read(ctx, cl, d.planReads(quiet, lim), sink); err != nil {
						return true, err
					}
				}
			}
		}
	}
}

// newSub creates subscription k with its heartbeat and the monitored items of tags.
func (d *Driver) newSub(ctx context.Context, cl *opcua.Client, k int, tags []int, lim limits, notify chan *opcua.PublishNotificationData, sink drivers.Sink) (*sub, error) {
	c := &d.cfg
	// A keep-alive at least every 5 s and a lifetime of 10 keep-alives: a subscription left on
	// the server by a lost session dies within a minute or so instead of gopcua's 1000 s.
	keep := uint32(max(1, 5*time.Second/max(c.publish, time.Millisecond)))
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	s, err := cl.Subscribe(cctx, &opcua.SubscriptionParameters{Interval: c.publish, MaxKeepAliveCount: keep, LifetimeCount: 10 * keep}, notify)
	if err != nil {
		return nil, fmt.Errorf("%w: create subscription %d on device %q: %w", ErrConnectionLost, k, c.dev.Name, err)
	}
	hb := opcua.NewMonitoredItemCreateRequestWithDefaults(ua.NewNumericNodeID(0, id.Server_ServerStatus_CurrentTime), ua.AttributeIDValue, heartbeatHandle|uint32(k))
	hb.RequestedParameters.SamplingInterval = 1000
	hb.RequestedParameters.QueueSize = 1
	reqs := []*ua.MonitoredItemCreateRequest{hb}
	for _, t := range tags {
		spec := &c.tags[t]
		r := opcua.NewMonitoredItemCreateRequestWithDefaults(spec.node, ua.AttributeIDValue, uint32(t))
		r.RequestedParameters.SamplingInterval = float64(c.sampling) / float64(time.Millisecond)
		r.RequestedParameters.QueueSize = c.queue
		r.RequestedParameters.DiscardOldest = true
		if spec.deadband > 0 {
			typ := ua.DeadbandTypeAbsolute
			if spec.percent {
				typ = ua.DeadbandTypePercent
			}
			r.RequestedParameters.Filter = ua.NewExtensionObject(&ua.DataChangeFilter{Trigger: ua.DataChangeTriggerStatusValue,
				DeadbandType: uint32(typ), DeadbandValue: spec.deadband})
		}
		reqs = append(reqs, r)
	}
	// Monitor in calls under the server's MaxMonitoredItemsPerCall and the request budget.
	for start := 0; start < len(reqs); {
		end, size := start, 0
		for end < len(reqs) && (end == start || size+nodeBytes(reqs[end].ItemToMonitor.NodeID) <= d.reqMax) &&
			(lim.monitorsPerCall == 0 || end-start < lim.monitorsPerCall) {
			size += nodeBytes(reqs[end].ItemToMonitor.NodeID)
			end++
		}
		mctx, cancel := context.WithTimeout(ctx, c.timeout)
		res, err := s.Monitor(mctx, ua.TimestampsToReturnBoth, reqs[start:end]...)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%w: monitor %d items in subscription %d on device %q: %w", ErrConnectionLost, end-start, k, c.dev.Name, err)
		}
		if len(res.Results) != end-start {
			return nil, fmt.Errorf("%w: monitor %d items in subscription %d on device %q: %d results", ErrConnectionLost, end-start, k, c.dev.Name, len(res.Results))
		}
		for i, r := range res.Results {
			h := reqs[start+i].RequestedParameters.ClientHandle
			if r.StatusCode == ua.StatusOK || uint32(r.StatusCode)&0xC0000000 != 0x80000000 {
				continue
			}
			if h&heartbeatHandle != 0 {
				return nil, fmt.Errorf("%w: monitor the heartbeat (i=2258, CurrentTime) in subscription %d on device %q: %s", ErrConnectionLost, k, c.dev.Name, statusName(r.StatusCode))
			}
			// The node is gone or refused: its tag alone is bad, with the server's status.
			d.missing[h] = true
			spec := &c.tags[h]
			d.fault(sink, int(h), fmt.Errorf("tag %q (%s) on device %q: monitored item refused: %s", spec.name, spec.node, c.dev.Name, statusName(r.StatusCode)))
		}
		start = end
	}
	return &sub{s: s, tags: tags, lastHB: time.Now()}, nil
}

// notified handles one publish notification: heartbeats feed the watchdog, items go to the
// sink as one Batch.
func (d *Driver) notified(n *opcua.PublishNotificationData, subs []*sub, seen []bool, sink drivers.Sink) error {
	if n.Error != nil {
		return fmt.Errorf("%w: subscription %d on device %q: %w", ErrConnectionLost, n.SubscriptionID, d.cfg.dev.Name, n.Error)
	}
	switch v := n.Value.(type) {
	case *ua.DataChangeNotification:
		b := &d.batch
		b.Samples = b.Samples[:0]
		for _, it := range v.MonitoredItems {
			h := it.ClientHandle
			if h&heartbeatHandle != 0 {
				if k := int(h &^ heartbeatHandle); k < len(subs) {
					subs[k].lastHB = time.Now()
				}
				continue
			}
			if int(h) >= len(d.cfg.tags) {
				continue
			}
			seen[h] = true
			b.Samples = append(b.Samples, drivers.Sample{})
			d.fill(sink, &b.Samples[len(b.Samples)-1], int(h), it.Value)
		}
		if len(b.Samples) > 0 {
			b.ReadTime, b.Took = d.now(), 0
			sink.Batch(b)
		}
	case *ua.StatusChangeNotification:
		return fmt.Errorf("%w: subscription %d on device %q: status %s", ErrConnectionLost, n.SubscriptionID, d.cfg.dev.Name, statusName(v.Status))
	}
	return nil
}
