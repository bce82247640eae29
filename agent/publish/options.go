package publish

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/floorlink/floorlink/agent/record"
)

// Options configure a Publisher. Zero values take the defaults given per field.
type Options struct {
	// Brokers are tried in turn, one per connection attempt: "tcp://host:port". Required.
	Brokers []string
	// ClientID of the MQTT session; "" means Gateway. Must be unique per broker.
	ClientID string
	// Username and Password for the broker; empty means anonymous.
	Username, Password string
	// TLS configures ssl://, tls:// and mqtts:// brokers; nil means the system's roots.
	TLS *tls.Config

	// Gateway is this gateway's id (required); Site, Area and Line fill the topic template.
	Gateway, Site, Area, Line string
	// Places overrides Area and Line for the records of some sources (devices, assets).
	Places map[string]Place
	// TopicTemplate places records; "" means DefaultTopicTemplate. Placeholders: {gateway}
	// {site} {area} {line} {source} {kind}; {source} and {kind} are required.
	TopicTemplate string

	// Epoch is the buffer file's epoch, sent in every message. Required.
	Epoch string
	// LastSession is the number of the last MQTT session, e.g. of the previous run; the next
	// session is numbered LastSession+1.
	LastSession uint64
	// SessionBegun, when set, is called with the number of each session the broker accepted,
	// before anything is published in it, so the caller can persist it.
	SessionBegun func(session uint64) error

	// MaxInflight bounds QoS 1 messages sent and not yet acknowledged; zero means 64.
	MaxInflight int
	// MaxDrainRate bounds the messages sent per second, backlog and live alike; zero means no
	// limit. It protects the broker when many gateways come back from an outage at once.
	MaxDrainRate float64
	// MaxMessageBytes bounds one payload; a record whose message would be larger is sent in
	// parts (docs/mqtt.md). Zero means 256 KiB.
	MaxMessageBytes int
	// OnDeadLetter, when set, is told of each record skipped because it cannot be sent: it
	// cannot be decoded, or one of its values alone exceeds MaxMessageBytes. The cursor passes
	// it, so one bad record never stalls delivery. Called from Run's goroutine; must not block.
	OnDeadLetter func(seq uint64, err error)
	// KeepAlive is the MQTT keep-alive; zero means 30s.
	KeepAlive time.Duration
	// ConnectTimeout bounds one connection attempt; zero means 10s.
	ConnectTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between connection attempts (exponential, with
	// jitter, reset after a session that got connected); zero means 1s and 30s.
	MinBackoff, MaxBackoff time.Duration
	// AckInterval is the most time acknowledged messages wait before the cursor is committed
	// while more are in flight; zero means 100ms. Each commit costs a buffer write; what is
	// acknowledged but not committed is re-sent after a crash.
	AckInterval time.Duration
	// Grace bounds how long Run, once its context ends, waits for the window in flight to be
	// acknowledged; zero means 5s.
	Grace time.Duration

	// StatsInterval is the period of the gateway stats message; zero sends none. StatsPayload
	// appends its JSON to dst; it is called from the publisher's goroutine while a session is up.
	StatsInterval time.Duration
	StatsPayload  func(dst []byte) []byte

	// LiveInterval is the period of the live KPI messages; zero sends none. Live calls send
	// with each asset's "so far" KPI record; the publisher sends it in JSON mode, retained at
	// QoS 1 on the asset's kpi topic + "/live" with seq 0, never buffered: only the latest
	// matters, and a stale one must not replay. Sparkplug mode sends none (its hosts get the
	// closed windows). Called from the publisher's goroutine while a session is up; rec is
	// valid only during send.
	LiveInterval time.Duration
	Live         func(send func(rec *record.Record))

	// Now stamps status messages and Sparkplug payloads; nil means time.Now.
	Now func() time.Time

	// Format selects what is published: FormatJSON ("" too), the JSON contract of docs/mqtt.md,
	// or FormatSparkplug, Sparkplug B 3.0 (docs/sparkplug.md).
	Format Format
	// Sparkplug configures FormatSparkplug; ignored otherwise.
	Sparkplug SparkplugOptions
}

// Format is the payload format of a Publisher (mqtt.format).
type Format string

// Formats.
const (
	FormatJSON      Format = "json"
	FormatSparkplug Format = "sparkplug"
)

// Place is where a source sits in the plant, for its topics.
type Place struct{ Area, Line string }

func (o Options) withDefaults() (Options, error) {
	var errs []error
	if len(o.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one broker is required"))
	}
	for i, b := range o.Brokers {
		u, err := url.Parse(b)
		if err != nil || u.Host == "" || !knownScheme(u.Scheme) {
			errs = append(errs, fmt.Errorf("brokers[%d]: %q is not a broker address (want tcp://host:port or ssl://host:port)", i, b))
		}
	}
	if o.Gateway == "" {
		errs = append(errs, errors.New("gateway: id is required"))
	}
	if o.Epoch == "" {
		errs = append(errs, errors.New("epoch is required"))
	}
	if o.MaxDrainRate < 0 {
		errs = append(errs, fmt.Errorf("max_drain_rate: %g is negative", o.MaxDrainRate))
	}
	if o.MaxMessageBytes < 0 || (o.MaxMessageBytes > 0 && o.MaxMessageBytes < 512) {
		errs = append(errs, fmt.Errorf("max_message_bytes: %d is below 512", o.MaxMessageBytes))
	}
	switch o.Format {
	case "", FormatJSON, FormatSparkplug:
	default:
		errs = append(errs, fmt.Errorf("format: %q is neither %q nor %q", o.Format, FormatJSON, FormatSparkplug))
	}
	if o.MaxInflight < 0 || o.MaxInflight > 65535 {
		errs = append(errs, fmt.Errorf("max_inflight: %d is out of range 1..65535", o.MaxInflight))
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	if o.ClientID == "" {
		o.ClientID = o.Gateway
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = 64
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 256 << 10
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.KeepAlive, 30*time.Second)
	def(&o.ConnectTimeout, 10*time.Second)
	def(&o.MinBackoff, time.Second)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.AckInterval, 100*time.Millisecond)
	def(&o.Grace, 5*time.Second)
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// paho knows tcp:// and ssl:// (and tls://); mqtt:// and mqtts:// are the IANA names.
	o.Brokers = append([]string(nil), o.Brokers...)
	for i, b := range o.Brokers {
		scheme, rest, _ := strings.Cut(b, "://")
		switch scheme {
		case "mqtt":
			o.Brokers[i] = "tcp://" + rest
		case "mqtts", "tls":
			o.Brokers[i] = "ssl://" + rest
		}
	}
	return o, nil
}

func knownScheme(s string) bool {
	switch s {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
		return true
	}
	return false
}
