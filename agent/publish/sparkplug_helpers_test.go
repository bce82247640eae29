package publish_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/floorlink/floorlink/agent/publish"
	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/agent/publish/sparkplugpb"
	"github.com/floorlink/floorlink/agent/record"
)

// The Sparkplug tests' edge node: group "plant", edge node "gw1", the device press-1 and the
// asset press (device press-kpi).
const (
	spGroup = "plant"
	spEdge  = "gw1"
)

func spTopic(verb string, device ...string) string {
	t := "spBv1.0/" + spGroup + "/" + verb + "/" + spEdge
	if len(device) > 0 {
		t += "/" + device[0]
	}
	return t
}

func sparkplugOptions(brokerURL string) publish.Options {
	o := options(brokerURL)
	o.Format = publish.FormatSparkplug
	o.Sparkplug = publish.SparkplugOptions{
		GroupID:  spGroup,
		HoldBack: 300 * time.Millisecond,
		NodeMetrics: []publish.Metric{
			{Name: "Event/event", Type: publish.TypeString}, {Name: "Event/error", Type: publish.TypeString},
		},
		Devices: []publish.SparkplugDevice{
			{Source: "press-1", Metrics: []publish.Metric{
				{Name: "n", Type: publish.TypeUInt64}, {Name: "temp", Type: publish.TypeFloat},
				{Name: "state", Type: publish.TypeInt16}, {Name: "count32", Type: publish.TypeUInt32},
				{Name: "running", Type: publish.TypeBoolean}, {Name: "recipe", Type: publish.TypeString},
				{Name: "Event/event", Type: publish.TypeString}, {Name: "Event/error", Type: publish.TypeString},
			}},
			{Source: "press", Asset: true, Metrics: []publish.Metric{
				{Name: "oee", Type: publish.TypeDouble}, {Name: "parts", Type: publish.TypeInt64},
			}},
		},
	}
	return o
}

// spRecord is a press-1 telemetry record whose "n" is i, taken at at.
func spRecord(t testing.TB, i int, at time.Time) []byte {
	t.Helper()
	r := record.Record{Kind: record.KindTelemetry, Source: "press-1", Time: at, Fields: []record.Field{
		record.UintField("n", uint64(i)), record.FloatField("temp", 65.25), record.IntField("state", -3),
		record.UintField("count32", 4000000000), record.BoolField("running", i%2 == 0), record.StringField("recipe", "A-1"),
	}}
	b, err := r.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// spMsg is a Sparkplug message a spy broker saw.
type spMsg struct {
	i      int // index in the events
	ev     mqtttest.Event
	verb   string // NBIRTH, DDATA, ...
	device string
	pl     *sparkplugpb.Payload
}

func (m spMsg) String() string {
	return fmt.Sprintf("#%d %s %s seq=%d", m.i, m.verb, m.device, m.pl.GetSeq())
}

func isData(verb string) bool  { return verb == "NDATA" || verb == "DDATA" }
func isBirth(verb string) bool { return verb == "NBIRTH" || verb == "DBIRTH" }

func decodeSparkplug(t testing.TB, payload []byte) *sparkplugpb.Payload {
	t.Helper()
	var pl sparkplugpb.Payload
	if err := proto.Unmarshal(payload, &pl); err != nil {
		t.Fatalf("payload does not decode as Sparkplug B: %v", err)
	}
	return &pl
}

// spMessages returns the Sparkplug messages our edge node published, from events[from:].
func spMessages(t testing.TB, evs []mqtttest.Event, from int) []spMsg {
	t.Helper()
	var out []spMsg
	for i := from; i < len(evs); i++ {
		e := evs[i]
		if e.Kind != mqtttest.EventPublish || e.Client != spEdge || !strings.HasPrefix(e.Topic, "spBv1.0/") {
			continue
		}
		parts := strings.Split(e.Topic, "/")
		m := spMsg{i: i, ev: e, verb: parts[2], pl: decodeSparkplug(t, e.Payload)}
		if len(parts) > 4 {
			m.device = parts[4]
		}
		out = append(out, m)
	}
	return out
}

// metricValue returns the named or aliased metric's value as a comparable Go value.
func metricValue(m *sparkplugpb.Payload_Metric) any {
	if m.GetIsNull() {
		return nil
	}
	switch v := m.GetValue().(type) {
	case *sparkplugpb.Payload_Metric_IntValue:
		return v.IntValue
	case *sparkplugpb.Payload_Metric_LongValue:
		return v.LongValue
	case *sparkplugpb.Payload_Metric_FloatValue:
		return v.FloatValue
	case *sparkplugpb.Payload_Metric_DoubleValue:
		return v.DoubleValue
	case *sparkplugpb.Payload_Metric_BooleanValue:
		return v.BooleanValue
	case *sparkplugpb.Payload_Metric_StringValue:
		return v.StringValue
	}
	return fmt.Sprintf("unexpected %T", m.GetValue())
}

// aliasTable maps aliases to metric names from the births among msgs.
func aliasTable(msgs []spMsg) map[uint64]string {
	out := map[uint64]string{}
	for _, m := range msgs {
		if isBirth(m.verb) {
			for _, x := range m.pl.GetMetrics() {
				if x.Alias != nil {
					out[x.GetAlias()] = m.device + "/" + x.GetName()
				}
			}
		}
	}
	return out
}

// nValues returns the values of press-1's metric "n" in the DDATA among msgs, with whether each
// was historical, in arrival order.
func nValues(msgs []spMsg) (ns []uint64, historical []bool) {
	aliases := aliasTable(msgs)
	for _, m := range msgs {
		if m.verb != "DDATA" || m.device != "press-1" {
			continue
		}
		for _, x := range m.pl.GetMetrics() {
			if aliases[x.GetAlias()] == "press-1/n" {
				ns = append(ns, x.GetLongValue())
				historical = append(historical, x.GetIsHistorical())
			}
		}
	}
	return ns, historical
}

// rebirthCommand is an NCMD payload asking for a rebirth, with or without a payload timestamp.
func rebirthCommand(t testing.TB, timestamp bool) []byte {
	t.Helper()
	pl := &sparkplugpb.Payload{Metrics: []*sparkplugpb.Payload_Metric{{Name: proto.String("Node Control/Rebirth"),
		Datatype: proto.Uint32(uint32(publish.TypeBoolean)), Value: &sparkplugpb.Payload_Metric_BooleanValue{BooleanValue: true}}}}
	if timestamp {
		pl.Timestamp = proto.Uint64(uint64(time.Now().UnixMilli()))
	}
	b, err := proto.Marshal(pl)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func stateJSON(online bool, ts int64) []byte {
	return fmt.Appendf(nil, `{"online":%t,"timestamp":%d}`, online, ts)
}

// count returns how many of msgs have the verb.
func count(msgs []spMsg, verb string) int {
	n := 0
	for _, m := range msgs {
		if m.verb == verb {
			n++
		}
	}
	return n
}
