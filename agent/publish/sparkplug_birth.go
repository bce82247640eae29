package publish

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/floorlink/floorlink/agent/publish/sparkplugpb"
	"github.com/floorlink/floorlink/agent/record"
)

// Births, deaths and commands are rare and small, so they use the generated types; only DATA
// has a hand-made encoder (sparkplug_data.go).

// nodeBirth is the NBIRTH payload (6.4.19): seq, timestamp, bdSeq (Int64, the Will's value),
// Node Control/Rebirth (Boolean false, never aliased), then the node's metrics.
func (s *sparkplug) nodeBirth(now time.Time, seq uint8) []byte {
	ts := msTime(now)
	pl := &sparkplugpb.Payload{Timestamp: proto.Uint64(ts), Seq: proto.Uint64(uint64(seq))}
	pl.Metrics = append(pl.Metrics,
		&sparkplugpb.Payload_Metric{Name: proto.String(metricBdSeq), Timestamp: proto.Uint64(ts),
			Datatype: proto.Uint32(uint32(TypeInt64)), Value: &sparkplugpb.Payload_Metric_LongValue{LongValue: uint64(s.bdSeq)}},
		&sparkplugpb.Payload_Metric{Name: proto.String(metricRebirth), Timestamp: proto.Uint64(ts),
			Datatype: proto.Uint32(uint32(TypeBoolean)), Value: &sparkplugpb.Payload_Metric_BooleanValue{BooleanValue: false}})
	pl.Metrics = append(pl.Metrics, s.birthMetrics(s.node, now)...)
	return marshal(pl)
}

// deviceBirth is a DBIRTH payload (6.4.20): every metric of the device with name, alias,
// datatype, timestamp and its current value or is_null.
func (s *sparkplug) deviceBirth(d *spDevice, now time.Time, seq uint8) []byte {
	pl := &sparkplugpb.Payload{Timestamp: proto.Uint64(msTime(now)), Seq: proto.Uint64(uint64(seq)),
		Metrics: s.birthMetrics(d, now)}
	return marshal(pl)
}

func (s *sparkplug) birthMetrics(d *spDevice, now time.Time) []*sparkplugpb.Payload_Metric {
	var current map[string]record.Field
	if s.o.Current != nil {
		fields := s.o.Current(d.source, d.asset)
		current = make(map[string]record.Field, len(fields))
		for _, f := range fields {
			current[f.Name] = f
		}
	}
	out := make([]*sparkplugpb.Payload_Metric, 0, len(d.metrics))
	for i := range d.metrics {
		m := &d.metrics[i]
		f, at := m.last, m.lastAt
		if c, ok := current[m.Name]; ok {
			f, at = c, now
		}
		if at.IsZero() {
			f, at = record.Field{Name: m.Name, Kind: record.Null, Quality: record.Bad}, now
		}
		if !f.SourceTime.IsZero() {
			at = f.SourceTime
		}
		pm := &sparkplugpb.Payload_Metric{Name: proto.String(m.Name), Alias: proto.Uint64(m.alias),
			Timestamp: proto.Uint64(msTime(at)), Datatype: proto.Uint32(uint32(m.Type))}
		setValue(pm, toWire(m.Type, &f))
		out = append(out, pm)
	}
	return out
}

// setValue puts v into pm: the oneof field, or is_null, and the Quality property unless good.
func setValue(pm *sparkplugpb.Payload_Metric, v wireValue) {
	switch v.field {
	case fieldMetricInt:
		pm.Value = &sparkplugpb.Payload_Metric_IntValue{IntValue: uint32(v.bits)}
	case fieldMetricLong:
		pm.Value = &sparkplugpb.Payload_Metric_LongValue{LongValue: v.bits}
	case fieldMetricFloat:
		pm.Value = &sparkplugpb.Payload_Metric_FloatValue{FloatValue: math.Float32frombits(uint32(v.bits))}
	case fieldMetricDouble:
		pm.Value = &sparkplugpb.Payload_Metric_DoubleValue{DoubleValue: math.Float64frombits(v.bits)}
	case fieldMetricBool:
		pm.Value = &sparkplugpb.Payload_Metric_BooleanValue{BooleanValue: v.bits != 0}
	case fieldMetricString:
		pm.Value = &sparkplugpb.Payload_Metric_StringValue{StringValue: v.str}
	default:
		pm.IsNull = proto.Bool(true)
	}
	if v.quality != qualityGood {
		pm.Properties = &sparkplugpb.Payload_PropertySet{Keys: []string{qualityKey},
			Values: []*sparkplugpb.Payload_PropertyValue{{Type: proto.Uint32(propertyTypeInt32),
				Value: &sparkplugpb.Payload_PropertyValue_IntValue{IntValue: uint32(v.quality)}}}}
	}
}

// deviceDeath is a DDEATH payload (6.4.26): timestamp and seq, no metrics.
func (s *sparkplug) deviceDeath(now time.Time, seq uint8) []byte {
	return marshal(&sparkplugpb.Payload{Timestamp: proto.Uint64(msTime(now)), Seq: proto.Uint64(uint64(seq))})
}

// deathPayload is the NDEATH (6.4.25), as the Will and on a clean stop: a timestamp and the one
// metric bdSeq, Int64, unaliased; no seq.
func (s *sparkplug) deathPayload(now time.Time) []byte {
	ts := msTime(now)
	return marshal(&sparkplugpb.Payload{Timestamp: proto.Uint64(ts), Metrics: []*sparkplugpb.Payload_Metric{{
		Name: proto.String(metricBdSeq), Timestamp: proto.Uint64(ts), Datatype: proto.Uint32(uint32(TypeInt64)),
		Value: &sparkplugpb.Payload_Metric_LongValue{LongValue: uint64(s.bdSeq)}}}})
}

func marshal(pl *sparkplugpb.Payload) []byte {
	b, err := proto.Marshal(pl)
	if err != nil {
		// Every field is set by this file with types proto accepts; Marshal fails only for
		// invalid UTF-8 in a string, which proto2 does not check.
		panic(fmt.Sprintf("marshal sparkplug payload: %v", err))
	}
	return b
}

// parseRebirth reports whether an NCMD payload asks for a rebirth: a metric named
// "Node Control/Rebirth" whose value is true (a Boolean; a non-zero integer is taken too).
func parseRebirth(payload []byte) (bool, error) {
	var pl sparkplugpb.Payload
	if err := proto.Unmarshal(payload, &pl); err != nil {
		return false, fmt.Errorf("decode NCMD payload: %w", err)
	}
	for _, m := range pl.GetMetrics() {
		if m.GetName() != metricRebirth {
			continue
		}
		if v, ok := metricUint(m); ok && v != 0 {
			return true, nil
		}
		if m.GetBooleanValue() {
			return true, nil
		}
	}
	return false, nil
}

// metricUint reads an integer metric from either field: UInt32 belongs in int_value (6.4.17),
// but Tahu, the 3.0.0 TCK and npm sparkplug-payload write it in long_value, so both are accepted.
func metricUint(m *sparkplugpb.Payload_Metric) (uint64, bool) {
	switch v := m.GetValue().(type) {
	case *sparkplugpb.Payload_Metric_IntValue:
		return uint64(v.IntValue), true
	case *sparkplugpb.Payload_Metric_LongValue:
		return v.LongValue, true
	}
	return 0, false
}
