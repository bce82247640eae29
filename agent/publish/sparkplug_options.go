package publish

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/floorlink/floorlink/agent/record"
)

// SparkplugOptions configure Sparkplug B mode (Options.Format = FormatSparkplug). The gateway is
// the edge node; each Device is a Sparkplug device. docs/sparkplug.md has the mapping.
type SparkplugOptions struct {
	// GroupID is the Sparkplug group of the edge node (mqtt.group_id). Required.
	GroupID string
	// EdgeNodeID is the edge node's id (mqtt.edge_node_id); "" means Options.Gateway. Group and
	// edge node must be unique in the whole infrastructure.
	EdgeNodeID string
	// PrimaryHostID, when set (mqtt.primary_host_id), makes the edge node wait for that host's
	// STATE online before its births, and leave (NDEATH, DISCONNECT) when it goes offline, while
	// records keep going into the buffer.
	PrimaryHostID string
	// HoldBack is how long a record the broker confirmed stays replayable: the cursor passes only
	// records confirmed at least HoldBack ago, and losing the session or the host replays the rest
	// as historical. Set it to at least 1.5 × the primary host's MQTT keep-alive, the time the
	// broker may take to publish the host's offline STATE. Zero means 45s (a keep-alive of 30s).
	HoldBack time.Duration

	// BdSeq is the bdSeq of the first CONNECT: the value OnBdSeq persisted last, 0 for a new
	// buffer. Each CONNECT uses the next one, 255 wrapping to 0.
	BdSeq uint8
	// OnBdSeq, when set, is called before every CONNECT with the bdSeq of the CONNECT after it,
	// for the caller to persist and pass as BdSeq after a restart (the agent keeps it in the
	// buffer's state). An error is logged and the CONNECT goes ahead. Called from Run's goroutine.
	OnBdSeq func(next uint8) error

	// NodeMetrics are the edge node's own metrics, for the gateway's event records (source ""),
	// named "Event/<field>". bdSeq and "Node Control/Rebirth" are always there; do not list them.
	NodeMetrics []Metric
	// Devices are the Sparkplug devices, in birth order.
	Devices []SparkplugDevice
	// Current, when set, returns the current values of a device's metrics, named as the metrics
	// (source and asset as in SparkplugDevice; source "" for the node), for its birth. Metrics it leaves out get the last
	// value the publisher sent, else is_null. Called from Run's goroutine at each birth.
	Current func(source string, asset bool) []record.Field
}

// SparkplugDevice is one Sparkplug device of the edge node: a Floorlink device (its telemetry
// and event records) or an asset (its KPI records).
type SparkplugDevice struct {
	// ID is the Sparkplug device id: "" means Source for a device and Source+"-kpi" for an
	// asset. Ids are unique per edge node, also ignoring case, and valid topic levels.
	ID string
	// Source is the device or asset name the records carry.
	Source string
	// Asset is true when Source is an asset, whose KPI records this device publishes.
	Asset bool
	// Metrics are the device's metrics, in birth order: tag names for a device, KPI names for an
	// asset, and "Event/<field>" for the fields of the device's event records. A record's value
	// whose metric is not listed is left out of DATA (Stats.Undeclared): a host only accepts
	// metrics the birth declared.
	Metrics []Metric
}

// Metric is a metric's name and Sparkplug datatype.
type Metric struct {
	Name string
	Type DataType
}

// DataType is a Sparkplug B datatype (specification 6.4.16); the numbers are the wire values.
// The publisher supports the scalar types below.
type DataType uint32

// Scalar Sparkplug datatypes.
const (
	TypeInt8     DataType = 1
	TypeInt16    DataType = 2
	TypeInt32    DataType = 3
	TypeInt64    DataType = 4
	TypeUInt8    DataType = 5
	TypeUInt16   DataType = 6
	TypeUInt32   DataType = 7
	TypeUInt64   DataType = 8
	TypeFloat    DataType = 9
	TypeDouble   DataType = 10
	TypeBoolean  DataType = 11
	TypeString   DataType = 12
	TypeDateTime DataType = 13 // ms since the Unix epoch, UTC
	TypeText     DataType = 14
)

var dataTypeNames = [...]string{"", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
	"Float", "Double", "Boolean", "String", "DateTime", "Text"}

func (t DataType) String() string {
	if t >= 1 && int(t) < len(dataTypeNames) {
		return dataTypeNames[t]
	}
	return fmt.Sprintf("DataType(%d)", uint32(t))
}

// Names of the edge node's built-in metrics (specification 6.4.19, 6.4.23).
const (
	metricBdSeq   = "bdSeq"
	metricRebirth = "Node Control/Rebirth"
	// eventPrefix names the metrics of event record fields.
	eventPrefix = "Event/"
)

func (o *SparkplugOptions) withDefaults(gateway string) (SparkplugOptions, error) {
	s := *o
	var errs []error
	if s.EdgeNodeID == "" {
		s.EdgeNodeID = gateway
	}
	if s.HoldBack == 0 {
		s.HoldBack = 45 * time.Second
	}
	if s.HoldBack < 0 {
		errs = append(errs, fmt.Errorf("hold_back: %v is negative", s.HoldBack))
	}
	for _, lv := range []struct{ name, v string }{{"group_id", s.GroupID}, {"edge_node_id", s.EdgeNodeID}} {
		if err := CheckTopicLevel(lv.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", lv.name, err))
		}
	}
	if s.PrimaryHostID != "" {
		if err := CheckTopicLevel(s.PrimaryHostID); err != nil {
			errs = append(errs, fmt.Errorf("primary_host_id: %w", err))
		}
	}
	errs = append(errs, checkMetrics("node metrics", s.NodeMetrics, true)...)
	s.Devices = append([]SparkplugDevice(nil), s.Devices...)
	ids := map[string]string{}     // lower-cased id → id
	sources := map[string]string{} // source and kind → id
	for i := range s.Devices {
		d := &s.Devices[i]
		if d.ID == "" {
			d.ID = d.Source
			if d.Asset {
				d.ID += "-kpi"
			}
		}
		what := fmt.Sprintf("devices[%d] (%s)", i, d.ID)
		if err := CheckTopicLevel(d.ID); err != nil {
			errs = append(errs, fmt.Errorf("%s: device id: %w", what, err))
		}
		if prev, ok := ids[strings.ToLower(d.ID)]; ok {
			errs = append(errs, fmt.Errorf("%s: device id %q clashes with %q (Sparkplug ids must differ in more than case)", what, d.ID, prev))
		}
		ids[strings.ToLower(d.ID)] = d.ID
		if d.Source == "" {
			errs = append(errs, fmt.Errorf("%s: source is required", what))
		}
		key := fmt.Sprintf("%t/%s", d.Asset, d.Source)
		if prev, ok := sources[key]; ok {
			errs = append(errs, fmt.Errorf("%s: source %q is already published by device %q", what, d.Source, prev))
		}
		sources[key] = d.ID
		errs = append(errs, checkMetrics(what, d.Metrics, false)...)
	}
	return s, errors.Join(errs...)
}

func checkMetrics(what string, ms []Metric, node bool) []error {
	var errs []error
	names := map[string]string{}
	for _, m := range ms {
		if m.Name == "" {
			errs = append(errs, fmt.Errorf("%s: a metric has no name", what))
			continue
		}
		if m.Type < TypeInt8 || m.Type > TypeText {
			errs = append(errs, fmt.Errorf("%s: metric %q: datatype %v is not supported", what, m.Name, m.Type))
		}
		low := strings.ToLower(m.Name)
		if node && (low == strings.ToLower(metricBdSeq) || low == strings.ToLower(metricRebirth)) {
			errs = append(errs, fmt.Errorf("%s: metric %q is built in", what, m.Name))
		}
		if prev, ok := names[low]; ok {
			errs = append(errs, fmt.Errorf("%s: metric %q clashes with %q (names must differ in more than case)", what, m.Name, prev))
		}
		names[low] = m.Name
	}
	return errs
}
