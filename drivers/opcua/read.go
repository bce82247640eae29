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

// limits are the server's operation limits; zero means none advertised.
type limits struct {
	nodesPerRead    int
	monitorsPerCall int
}

// limits reads the server's OperationLimits. A server without them (or failing to answer) is
// read with the request-size budget alone.
func (d *Driver) limits(ctx context.Context, cl *opcua.Client) limits {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.timeout)
	defer cancel()
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnNeither, NodesToRead: []*ua.ReadValueID{
		{NodeID: ua.NewNumericNodeID(0, id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead), AttributeID: ua.AttributeIDValue},
		{NodeID: ua.NewNumericNodeID(0, id.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall), AttributeID: ua.AttributeIDValue},
	}}
	res, err := cl.Read(ctx, req)
	var l limits
	if err != nil || len(res.Results) != 2 {
		return l
	}
	get := func(dv *ua.DataValue) int {
		if dv == nil || dv.Status != ua.StatusOK || dv.Value == nil {
			return 0
		}
		if n, ok := dv.Value.Value().(uint32); ok && n < 1<<20 {
			return int(n)
		}
		return 0
	}
	l.nodesPerRead, l.monitorsPerCall = get(res.Results[0]), get(res.Results[1])
	return l
}

// readChunk is one Read request of a plan and the tags it reads, in order.
type readChunk struct {
	req  *ua.ReadRequest
	tags []int
}

// nodeBytes estimates the encoded size of one node in a request: a ReadValueID or a
// MonitoredItemCreateRequest is some 40 bytes around its node id.
func nodeBytes(n *ua.NodeID) int { return 48 + len(n.StringID()) }

// planReads splits the reads of tags into requests under the server's MaxNodesPerRead and the
// request-size budget.
func (d *Driver) planReads(tags []int, lim limits) []readChunk {
	ts := ua.TimestampsToReturnBoth
	var plan []readChunk
	var cur readChunk
	size := 0
	flush := func() {
		if len(cur.tags) > 0 {
			plan = append(plan, cur)
		}
		cur, size = readChunk{}, 0
	}
	for _, t := range tags {
		n := d.cfg.tags[t].node
		b := nodeBytes(n)
		if len(cur.tags) > 0 && (size+b > d.reqMax || lim.nodesPerRead > 0 && len(cur.tags) >= lim.nodesPerRead) {
			flush()
		}
		if cur.req == nil {
			cur.req = &ua.ReadRequest{TimestampsToReturn: ts}
		}
		cur.req.NodesToRead = append(cur.req.NodesToRead, &ua.ReadValueID{NodeID: n, AttributeID: ua.AttributeIDValue})
		cur.tags = append(cur.tags, t)
		size += b
	}
	flush()
	return plan
}

// read runs the plan's requests and sends one Batch with every tag read. A failed request ends
// the session: its error says which.
func (d *Driver) read(ctx context.Context, cl *opcua.Client, plan []readChunk, sink drivers.Sink) error {
	b := &d.batch
	b.Samples = b.Samples[:0]
	start := time.Now()
	for _, ch := range plan {
		rctx, cancel := context.WithTimeout(ctx, d.cfg.timeout)
		res, err := cl.Read(rctx, ch.req)
		cancel()
		if err != nil {
			return fmt.Errorf("%w: read %d nodes from device %q: %w", ErrConnectionLost, len(ch.tags), d.cfg.dev.Name, err)
		}
		if len(res.Results) != len(ch.tags) {
			return fmt.Errorf("%w: read %d nodes from device %q: %d results", ErrConnectionLost, len(ch.tags), d.cfg.dev.Name, len(res.Results))
		}
		for i, t := range ch.tags {
			b.Samples = append(b.Samples, drivers.Sample{})
			d.fill(sink, &b.Samples[len(b.Samples)-1], t, res.Results[i])
		}
	}
	b.ReadTime, b.Took = d.now(), time.Since(start)
	sink.Batch(b)
	return nil
}

// fill sets s from the DataValue of tag t, checking its type against the config.
func (d *Driver) fill(sink drivers.Sink, s *drivers.Sample, t int, dv *ua.DataValue) {
	*s = drivers.Sample{Tag: t}
	if dv == nil {
		s.Quality, s.Reason = drivers.QualityBad, reasonNoValue
		return
	}
	switch d.cfg.timestamp {
	case TimestampSource:
		s.SourceTime = dv.SourceTimestamp
	case TimestampServer:
		s.SourceTime = dv.ServerTimestamp
	}
	q, reason := quality(dv.Status)
	if q == drivers.QualityBad {
		s.Quality, s.Reason = q, reason
		return
	}
	val, typ, _, ok := decode(dv.Value)
	spec := &d.cfg.tags[t]
	switch {
	case dv.Value == nil || dv.Value.Value() == nil:
		s.Quality, s.Reason = drivers.QualityBad, reasonNoValue
		return
	case !ok:
		s.Quality, s.Reason = drivers.QualityBad, reasonUnsupported
		d.fault(sink, t, fmt.Errorf("tag %q (%s) on device %q: the server sends %s, which the driver does not map",
			spec.name, spec.node, d.cfg.dev.Name, dv.Value.Type()))
		return
	case !matches(spec.typ, typ):
		s.Quality, s.Reason = drivers.QualityBad, reasonTypeMismatch
		d.fault(sink, t, fmt.Errorf("tag %q (%s) on device %q: type %s in the config, but the server sends %s: fix the type, or use auto",
			spec.name, spec.node, d.cfg.dev.Name, spec.typ, typ))
		return
	}
	s.Value, s.Quality, s.Reason = val, q, reason
}
