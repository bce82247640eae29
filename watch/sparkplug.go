package watch

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/floorlink/floorlink/agent/publish/sparkplugpb"
)

// Sparkplug decodes Sparkplug B 3.0 (docs/sparkplug.md): births declare each device's metrics
// with their aliases and datatypes, DATA messages carry values by alias. The view shows each
// edge node as a gateway (its group as the site), each Sparkplug device as a device, a device
// whose id ends in "-kpi" as an asset's KPIs, and "Event/..." metrics as events. NBIRTH and
// NDEATH set the gateway's status. Safe for concurrent use: the alias tables are behind a lock.
type Sparkplug struct {
	group string

	mu      sync.Mutex
	aliases map[string]map[uint64]declared // "edge/device" → alias → what the birth declared
}

// declared is a metric as its birth declared it: DATA carries neither name nor (as it should
// not) datatype, and the datatype decides how int_value reads (signed types sign-extended).
type declared struct {
	name     string
	datatype uint32
}

// NewSparkplug returns the decoder for group ("" for every group).
func NewSparkplug(group string) *Sparkplug {
	return &Sparkplug{group: group, aliases: map[string]map[uint64]declared{}}
}

// Filters returns spBv1.0/<group>/# (or spBv1.0/# for every group).
func (s *Sparkplug) Filters() []string {
	if s.group == "" {
		return []string{"spBv1.0/#"}
	}
	return []string{"spBv1.0/" + s.group + "/#"}
}

// Decode reads one Sparkplug message.
func (s *Sparkplug) Decode(dst []Update, topic string, payload []byte) ([]Update, error) {
	lv := strings.Split(topic, "/")
	if len(lv) < 4 || lv[0] != "spBv1.0" || lv[1] == "STATE" {
		return dst, nil
	}
	group, verb, edge := lv[1], lv[2], lv[3]
	device := ""
	if len(lv) > 4 {
		device = lv[4]
	}
	var p sparkplugpb.Payload
	if err := proto.Unmarshal(payload, &p); err != nil {
		return dst, fmt.Errorf("%s on %s: %w", verb, topic, err)
	}
	ts := time.UnixMilli(int64(p.GetTimestamp())).UTC()
	key := edge + "/" + device
	switch verb {
	case "NBIRTH", "NDEATH":
		state := "online"
		if verb == "NDEATH" {
			state = "offline"
		}
		u := Update{Kind: Status, Site: group, Gateway: edge, Source: edge, TS: ts,
			GatewayStatus: &GatewayStatus{State: state, TS: ts}}
		dst = append(dst, u)
		if verb == "NDEATH" {
			return dst, nil
		}
		s.learn(key, &p)
		return s.values(dst, group, edge, edge, ts, &p, key), nil
	case "DBIRTH":
		s.learn(key, &p)
		return s.values(dst, group, edge, device, ts, &p, key), nil
	case "NDATA", "DDATA":
		src := device
		if verb == "NDATA" {
			src = edge
		}
		return s.values(dst, group, edge, src, ts, &p, key), nil
	case "DDEATH":
		return append(dst, Update{Kind: Event, Site: group, Gateway: edge, Source: device, TS: ts,
			Values: []Value{{Name: "event", Text: "ddeath"}}}), nil
	}
	return dst, nil
}

// learn records a birth's aliases.
func (s *Sparkplug) learn(key string, p *sparkplugpb.Payload) {
	t := map[uint64]declared{}
	for _, m := range p.Metrics {
		if m.Alias != nil && m.GetName() != "" {
			t[m.GetAlias()] = declared{name: m.GetName(), datatype: m.GetDatatype()}
		}
	}
	s.mu.Lock()
	s.aliases[key] = t
	s.mu.Unlock()
}

// values turns a payload's metrics into a telemetry (or KPI) update and an event update.
func (s *Sparkplug) values(dst []Update, group, edge, source string, ts time.Time, p *sparkplugpb.Payload, key string) []Update {
	s.mu.Lock()
	names := s.aliases[key]
	s.mu.Unlock()
	kind := Telemetry
	if strings.HasSuffix(source, "-kpi") {
		kind = KPI
		source = strings.TrimSuffix(source, "-kpi")
	}
	data := Update{Kind: kind, Site: group, Gateway: edge, Source: source, TS: ts}
	event := Update{Kind: Event, Site: group, Gateway: edge, Source: source, TS: ts}
	for _, m := range p.Metrics {
		name, datatype := m.GetName(), m.GetDatatype()
		if d, ok := names[m.GetAlias()]; ok && m.Alias != nil {
			name = cmp.Or(name, d.name)
			if m.GetDatatype() == 0 { // absent, or Unknown
				datatype = d.datatype
			}
		}
		if name == "" || name == "bdSeq" || strings.HasPrefix(name, "Node Control/") {
			continue
		}
		data.Historical = data.Historical || m.GetIsHistorical()
		v := Value{Name: name, Quality: quality(m)}
		if m.GetIsNull() {
			v.Null = true
		} else {
			v.Text = text(m, datatype)
		}
		if ev, ok := strings.CutPrefix(name, "Event/"); ok {
			v.Name = ev
			event.Values = append(event.Values, v)
			continue
		}
		data.Values = append(data.Values, v)
	}
	if len(data.Values) > 0 {
		dst = append(dst, data)
	}
	if len(event.Values) > 0 {
		dst = append(dst, event)
	}
	return dst
}

// text writes a metric's value as the JSON contract would.
func text(m *sparkplugpb.Payload_Metric, datatype uint32) string {
	switch v := m.GetValue().(type) {
	case *sparkplugpb.Payload_Metric_IntValue:
		switch sparkplugpb.DataType(datatype) {
		case sparkplugpb.DataType_Int8, sparkplugpb.DataType_Int16, sparkplugpb.DataType_Int32:
			return strconv.FormatInt(int64(int32(v.IntValue)), 10) // sign-extended on the wire
		}
		return strconv.FormatUint(uint64(v.IntValue), 10)
	case *sparkplugpb.Payload_Metric_LongValue:
		if sparkplugpb.DataType(datatype) == sparkplugpb.DataType_Int64 {
			return strconv.FormatInt(int64(v.LongValue), 10)
		}
		return strconv.FormatUint(v.LongValue, 10)
	case *sparkplugpb.Payload_Metric_FloatValue:
		return strconv.FormatFloat(float64(v.FloatValue), 'g', -1, 32)
	case *sparkplugpb.Payload_Metric_DoubleValue:
		return strconv.FormatFloat(v.DoubleValue, 'g', -1, 64)
	case *sparkplugpb.Payload_Metric_BooleanValue:
		return strconv.FormatBool(v.BooleanValue)
	case *sparkplugpb.Payload_Metric_StringValue:
		return v.StringValue
	}
	return ""
}

// quality maps the Quality property (192 good, 0 bad, 500 stale) to the contract's words.
func quality(m *sparkplugpb.Payload_Metric) string {
	ps := m.GetProperties()
	if ps == nil {
		return ""
	}
	for i, k := range ps.GetKeys() {
		if k != "Quality" || i >= len(ps.GetValues()) {
			continue
		}
		switch ps.GetValues()[i].GetIntValue() {
		case 192:
			return ""
		case 500:
			return "uncertain:stale"
		default:
			return "bad"
		}
	}
	return ""
}
