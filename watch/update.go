package watch

import "time"

// Kind is what an Update tells.
type Kind uint8

// The kinds of Update.
const (
	// Telemetry is a device's values from one poll cycle.
	Telemetry Kind = iota + 1
	// KPI is an asset's figures for one closed window.
	KPI
	// Event is a change of state, a fault or a drop, of a device or of the gateway itself.
	Event
	// Stats is the gateway's periodic stats message.
	Stats
	// Status is the gateway's retained online/offline status.
	Status
)

var kindNames = [...]string{Telemetry: "telemetry", KPI: "kpi", Event: "event", Stats: "stats", Status: "status"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// Update is what one message says, in the vocabulary of the view; a Decoder makes it from a
// message of its format. Fields a kind does not use are zero.
type Update struct {
	Kind Kind
	// Site, Area and Line place the source (from the topic). Gateway topics have a Site only.
	Site, Area, Line string
	// Gateway is the gateway's id: from the payload of a record, from the topic of stats and
	// status.
	Gateway string
	// Source is the device or asset a record is about; for the gateway's own events, its id.
	Source string
	// Seq and TS are the record's; TS is zero when the message has none.
	Seq        uint64
	TS         time.Time
	Historical bool
	// Values are the record's values, in no particular order.
	Values []Value
	// GatewayStats is set for Kind Stats, GatewayStatus for Kind Status.
	GatewayStats  *GatewayStats
	GatewayStatus *GatewayStatus
}

// Value is one named value of a record, as the message wrote it.
type Value struct {
	Name string
	// Text is the value as published: a JSON number's digits, true or false, a string's
	// contents; "" with Null.
	Text string
	// Null is a value published as null: the tag has no good value.
	Null bool
	// Quality is "" for a good value, else the contract's quality: "bad:timeout",
	// "uncertain:stale", ...
	Quality string
}

// GatewayStats are the figures of a gateway's stats message that the view shows.
type GatewayStats struct {
	TS      time.Time
	Session uint64
	Epoch   string
	// Buffer: records waiting (depth), its file's size, the age of the oldest waiting record,
	// records dropped by its limits, appends refused with a full queue.
	Depth      uint64
	FileBytes  int64
	OldestAge  time.Duration
	Dropped    uint64
	QueueFull  uint64
	Head       uint64
	Cursor     uint64
	NotStored  uint64 // records the pipeline could not store
	Published  uint64
	Acked      uint64
	Rate       float64 // acknowledged messages per second
	DeadLetter uint64
}

// GatewayStatus is a gateway's retained status.
type GatewayStatus struct {
	State   string // online or offline
	TS      time.Time
	Session uint64
}

// A Decoder reads one message of its format into Updates. JSON is the one for the JSON
// contract; Sparkplug B (issue 8) will be another.
type Decoder interface {
	// Filters are the topic filters that carry the format's messages.
	Filters() []string
	// Decode appends the updates of the message on topic to dst. A message on a topic of
	// another format, or of a kind the view does not show, appends nothing and returns nil;
	// a message of the format that does not decode returns an error. Decode keeps nothing of
	// payload.
	Decode(dst []Update, topic string, payload []byte) ([]Update, error)
}
