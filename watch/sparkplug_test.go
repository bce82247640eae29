package watch

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/floorlink/floorlink/agent/publish/sparkplugpb"
)

func spPayload(t *testing.T, seq uint64, metrics ...*sparkplugpb.Payload_Metric) []byte {
	t.Helper()
	b, err := proto.Marshal(&sparkplugpb.Payload{Timestamp: proto.Uint64(1764000000000), Seq: proto.Uint64(seq), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func metric(name string, alias uint64, dt sparkplugpb.DataType, set func(*sparkplugpb.Payload_Metric)) *sparkplugpb.Payload_Metric {
	m := &sparkplugpb.Payload_Metric{Alias: proto.Uint64(alias)}
	if dt != 0 { // DATA carries no datatype
		m.Datatype = proto.Uint32(uint32(dt))
	}
	if name != "" {
		m.Name = proto.String(name)
	}
	set(m)
	return m
}

// TestSparkplug_Decode: births teach the aliases, alias-only DATA comes back with names and the
// contract's value text (signed ints sign-extended), -kpi devices are KPIs, Event/ metrics are
// events, NBIRTH/NDEATH are the gateway's status.
func TestSparkplug_Decode(t *testing.T) {
	d := NewSparkplug("plant1")
	i32 := func(v int32) func(*sparkplugpb.Payload_Metric) {
		return func(m *sparkplugpb.Payload_Metric) {
			m.Value = &sparkplugpb.Payload_Metric_IntValue{IntValue: uint32(v)}
		}
	}
	str := func(v string) func(*sparkplugpb.Payload_Metric) {
		return func(m *sparkplugpb.Payload_Metric) { m.Value = &sparkplugpb.Payload_Metric_StringValue{StringValue: v} }
	}
	var out []Update
	var err error
	out, err = d.Decode(out, "spBv1.0/plant1/NBIRTH/gw1", spPayload(t, 0,
		metric("bdSeq", 0, sparkplugpb.DataType_Int64, func(m *sparkplugpb.Payload_Metric) { m.Value = &sparkplugpb.Payload_Metric_LongValue{LongValue: 3} })))
	if err != nil {
		t.Fatal(err)
	}
	out, err = d.Decode(out, "spBv1.0/plant1/DBIRTH/gw1/press-1", spPayload(t, 1,
		metric("spindle", 7, sparkplugpb.DataType_Int32, i32(-1500)), metric("Event/event", 8, sparkplugpb.DataType_String, str(""))))
	if err != nil {
		t.Fatal(err)
	}
	out, err = d.Decode(out[:0], "spBv1.0/plant1/DDATA/gw1/press-1", spPayload(t, 2,
		metric("", 7, 0, i32(-1499)), metric("", 8, 0, str("disconnected"))))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Kind != Telemetry || out[0].Source != "press-1" || out[0].Gateway != "gw1" || out[0].Site != "plant1" ||
		len(out[0].Values) != 1 || out[0].Values[0] != (Value{Name: "spindle", Text: "-1499"}) {
		t.Fatalf("DDATA telemetry: %+v", out)
	}
	if out[1].Kind != Event || out[1].Values[0] != (Value{Name: "event", Text: "disconnected"}) {
		t.Fatalf("DDATA event: %+v", out[1])
	}
	out, err = d.Decode(out[:0], "spBv1.0/plant1/DBIRTH/gw1/press-1-kpi", spPayload(t, 3,
		metric("oee", 1, sparkplugpb.DataType_Double, func(m *sparkplugpb.Payload_Metric) {
			m.Value = &sparkplugpb.Payload_Metric_DoubleValue{DoubleValue: 0.608}
		})))
	if err != nil || len(out) != 1 || out[0].Kind != KPI || out[0].Source != "press-1" || out[0].Values[0].Text != "0.608" {
		t.Fatalf("KPI birth: %+v, %v", out, err)
	}
	out, err = d.Decode(out[:0], "spBv1.0/plant1/NDEATH/gw1", spPayload(t, 0))
	if err != nil || len(out) != 1 || out[0].Kind != Status || out[0].GatewayStatus.State != "offline" {
		t.Fatalf("NDEATH: %+v, %v", out, err)
	}
	if _, err := d.Decode(nil, "spBv1.0/plant1/DDATA/gw1/x", []byte{0xff, 0xff}); err == nil {
		t.Fatal("a broken payload decoded")
	}
	if out, _ := d.Decode(nil, "spBv1.0/STATE/host", []byte(`{"online":true}`)); len(out) != 0 {
		t.Fatalf("STATE gave updates: %+v", out)
	}
}
