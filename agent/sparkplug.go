package agent

import (
	"github.com/floorlink/floorlink/agent/config"
	"github.com/floorlink/floorlink/agent/kpi"
	"github.com/floorlink/floorlink/agent/publish"
	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/drivers"
)

// stateBdSeq is the buffer state key of the Sparkplug bdSeq of the next CONNECT (one byte).
const stateBdSeq = "sparkplug_bdseq"

// sparkplugOptions describes the edge node's devices and metrics to the publisher: one Sparkplug
// device per configured device, its tags as metrics with the datatype the pipeline publishes
// (scaled tags are doubles, enum tags strings), plus the fields of its event records.
func (a *Agent) sparkplugOptions(cfg *config.File) (publish.SparkplugOptions, error) {
	o := publish.SparkplugOptions{
		GroupID: cfg.MQTT.GroupID, EdgeNodeID: cfg.MQTT.EdgeNodeID, PrimaryHostID: cfg.MQTT.PrimaryHostID,
		HoldBack: cfg.MQTT.HoldBack, OnBdSeq: a.saveBdSeq, Current: a.currentValues,
		NodeMetrics: []publish.Metric{
			{Name: "Event/event", Type: publish.TypeString}, {Name: "Event/error", Type: publish.TypeString},
			{Name: "Event/reason", Type: publish.TypeString},
			{Name: "Event/first_seq", Type: publish.TypeUInt64}, {Name: "Event/last_seq", Type: publish.TypeUInt64},
			{Name: "Event/count", Type: publish.TypeUInt64},
			{Name: "Event/jump_seconds", Type: publish.TypeDouble}, {Name: "Event/wall_seconds", Type: publish.TypeDouble},
			{Name: "Event/monotonic_seconds", Type: publish.TypeDouble},
		},
	}
	b, err := a.buf.State(stateBdSeq)
	if err != nil {
		return o, err
	}
	if len(b) == 1 {
		o.BdSeq = b[0]
	}
	o.Devices, err = a.sparkplugDevices(cfg, a.devices)
	return o, err
}

// sparkplugDevices are the Sparkplug devices of the devices and of cfg's assets.
func (a *Agent) sparkplugDevices(cfg *config.File, devices []*device) ([]publish.SparkplugDevice, error) {
	var out []publish.SparkplugDevice
	for _, d := range devices {
		sd := publish.SparkplugDevice{Source: d.dev.Name}
		for _, t := range d.dev.Tags {
			sd.Metrics = append(sd.Metrics, publish.Metric{Name: t.Name, Type: sparkplugType(&t)})
		}
		sd.Metrics = append(sd.Metrics, publish.Metric{Name: "Event/event", Type: publish.TypeString},
			publish.Metric{Name: "Event/error", Type: publish.TypeString})
		out = append(out, sd)
	}
	for _, as := range cfg.Assets {
		out = append(out, publish.SparkplugDevice{Source: as.Name, Asset: true, Metrics: kpiMetrics()})
	}
	return out, nil
}

// kpiMetrics are the metrics of an asset's Sparkplug device: the fields of its KPI records.
func kpiMetrics() []publish.Metric {
	m := []publish.Metric{
		{Name: kpi.FieldWindow, Type: publish.TypeString}, {Name: kpi.FieldShift, Type: publish.TypeString},
		{Name: kpi.FieldWindowStart, Type: publish.TypeString}, {Name: kpi.FieldPartial, Type: publish.TypeBoolean},
	}
	for _, n := range []string{kpi.FieldProduced, kpi.FieldGood, kpi.FieldScrap, kpi.FieldProducedPBT,
		kpi.FieldProducedUnknown, kpi.FieldProducedOutsidePBT, kpi.FieldProducedNoIdeal, kpi.FieldStops,
		kpi.FieldMicroStops, kpi.FieldFailures, kpi.FieldCounterResets, kpi.FieldCounterRollovers} {
		m = append(m, publish.Metric{Name: n, Type: publish.TypeInt64})
	}
	for _, n := range []string{kpi.FieldWindowS, kpi.FieldUnscheduledS, kpi.FieldPlannedDownS, kpi.FieldPBTS,
		kpi.FieldKnownPBTS, kpi.FieldUnknownS, kpi.FieldAPTS, kpi.FieldRunS, kpi.FieldMicroStopS, kpi.FieldSetupS,
		kpi.FieldDownS, kpi.FieldDelayS, kpi.FieldIdleS, kpi.FieldBlockedS, kpi.FieldMaintenanceS,
		kpi.FieldIdealTimeS, kpi.FieldIdealCycleS, kpi.FieldAvailability, kpi.FieldCoverage, kpi.FieldPerformance,
		kpi.FieldPerformanceRaw, kpi.FieldQuality, kpi.FieldOEE, kpi.FieldThroughput, kpi.FieldScrapRatio,
		kpi.FieldMTBF, kpi.FieldMTTR, kpi.FieldCycleMean, kpi.FieldCycleLast} {
		m = append(m, publish.Metric{Name: n, Type: publish.TypeDouble})
	}
	return m
}

// converted returns the datatype of a tag whose values the pipeline converts (an enum's names,
// a scaled number), whatever the device's own type; ok is false for a tag published as read.
func converted(t *drivers.Tag) (typ publish.DataType, ok bool) {
	switch {
	case t.Enum != nil:
		return publish.TypeString, true
	case scaled(t):
		return publish.TypeDouble, true
	}
	return 0, false
}

// sparkplugType is the datatype of the values the pipeline publishes for a tag.
func sparkplugType(t *drivers.Tag) publish.DataType {
	if typ, ok := converted(t); ok {
		return typ
	}
	switch t.Type {
	case drivers.TypeBool:
		return publish.TypeBoolean
	case drivers.TypeInt8:
		return publish.TypeInt8
	case drivers.TypeUint8:
		return publish.TypeUInt8
	case drivers.TypeInt16:
		return publish.TypeInt16
	case drivers.TypeUint16, drivers.TypeBCD16:
		return publish.TypeUInt16
	case drivers.TypeInt32:
		return publish.TypeInt32
	case drivers.TypeUint32, drivers.TypeBCD32:
		return publish.TypeUInt32
	case drivers.TypeInt64:
		return publish.TypeInt64
	case drivers.TypeUint64:
		return publish.TypeUInt64
	case drivers.TypeFloat32:
		return publish.TypeFloat
	case drivers.TypeFloat64:
		return publish.TypeDouble
	case drivers.TypeString, drivers.TypeDateTime, drivers.TypeBytes:
		// OPC UA DateTime arrives as RFC 3339 text and ByteString as base64 (drivers/opcua).
		return publish.TypeString
	}
	// TypeAuto (an OPC UA node's own type): config refuses it in Sparkplug mode (sparkplugTypes),
	// and a reload checks the same, so this is only a safe default.
	return publish.TypeDouble
}

func (a *Agent) saveBdSeq(next uint8) error { return a.buf.SetState(stateBdSeq, []byte{next}) }

// currentValues gives a birth the last values of a device's tags, from its status.
func (a *Agent) currentValues(source string, asset bool) []record.Field {
	if asset || source == "" {
		return nil
	}
	for _, d := range a.deviceList() {
		if d.dev.Name != source {
			continue
		}
		s := d.status
		s.mu.Lock()
		defer s.mu.Unlock()
		var out []record.Field
		for _, t := range s.tags {
			if t.ok {
				out = append(out, t.field)
			}
		}
		return out
	}
	return nil
}

// deviceEvent tells a Sparkplug publisher about a device's connectivity, after the event's
// record is stored: a lost device gets its DDEATH once the records before it are sent.
func (a *Agent) deviceEvent(e drivers.Event) {
	switch e.Kind {
	case drivers.EventDisconnected:
		a.pub.DeviceLost(e.Device)
	case drivers.EventConnected:
		a.pub.DeviceFound(e.Device)
	}
}
