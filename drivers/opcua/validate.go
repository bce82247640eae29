package opcua

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/floorlink/floorlink/drivers"
)

// Protocol is the Device.Protocol this package serves.
const Protocol = "opcua"

// Values of drivers.OPCUAOptions fields.
const (
	ModePoll      = "poll"
	ModeSubscribe = "subscribe"

	TimestampSource  = "source"
	TimestampServer  = "server"
	TimestampGateway = "gateway"

	AuthAnonymous   = "anonymous"
	AuthUsername    = "username"
	AuthCertificate = "certificate"
)

// SecurityPolicies lists the security policies a device may ask for, in the order error
// messages show them. Basic128Rsa15 and Basic256 are deprecated by the OPC Foundation and
// refused.
func SecurityPolicies() []string {
	return []string{"None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"}
}

// SecurityModes lists the message security modes a device may ask for.
func SecurityModes() []string { return []string{"None", "Sign", "SignAndEncrypt"} }

// Types returns the tag data types this driver accepts, in the order error messages show them.
// TypeAuto takes the node's own type.
func Types() []drivers.DataType {
	return []drivers.DataType{drivers.TypeBool, drivers.TypeInt8, drivers.TypeUint8, drivers.TypeInt16, drivers.TypeUint16,
		drivers.TypeInt32, drivers.TypeUint32, drivers.TypeInt64, drivers.TypeUint64, drivers.TypeFloat32, drivers.TypeFloat64,
		drivers.TypeString, drivers.TypeDateTime, drivers.TypeBytes, drivers.TypeAuto}
}

// config is a validated device with its defaults applied.
type config struct {
	dev       drivers.Device
	endpoint  string
	policy    string // short name, e.g. "Basic256Sha256"
	mode      ua.MessageSecurityMode
	auth      string
	appURI    string
	subscribe bool
	interval  time.Duration // poll interval
	timeout   time.Duration
	sampling  time.Duration
	publish   time.Duration
	queue     uint32
	timestamp string
	tags      []tagSpec
}

// tagSpec is a validated tag.
type tagSpec struct {
	name     string
	node     *ua.NodeID
	typ      drivers.DataType
	deadband float64
	percent  bool
}

func validate(dev drivers.Device, opts *Options) (config, []error) {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &drivers.FieldError{Device: dev.Name, Path: path, Err: fmt.Errorf(format, args...)})
	}
	c := config{dev: dev, endpoint: dev.Address}
	if dev.Name == "" {
		bad("name", "empty: a device needs a name for its records, topics and logs")
	}
	if dev.Protocol != Protocol {
		bad("protocol", "%q: the opcua driver serves %q", dev.Protocol, Protocol)
	}
	if err := checkEndpoint(dev.Address); err != nil {
		bad("address", "%w", err)
	}
	if dev.PollInterval < 0 {
		bad("poll_interval", "%v is negative: want a positive duration, or zero for 1s", dev.PollInterval)
	}
	if dev.Timeout < 0 {
		bad("timeout", "%v is negative: want a positive duration, or zero for %v", dev.Timeout, DefaultTimeout)
	}
	c.interval = cmpOr(dev.PollInterval, DefaultPollInterval)
	c.timeout = cmpOr(dev.Timeout, DefaultTimeout)

	o := dev.OPCUA
	c.policy = cmpOr(o.SecurityPolicy, "None")
	if !contains(SecurityPolicies(), c.policy) {
		bad("security_policy", "%q: want one of %s", o.SecurityPolicy, strings.Join(SecurityPolicies(), ", "))
	}
	switch o.SecurityMode {
	case "":
		c.mode = ua.MessageSecurityModeInvalid // the best the server offers for the policy
		if c.policy == "None" {
			c.mode = ua.MessageSecurityModeNone
		}
	case "None":
		c.mode = ua.MessageSecurityModeNone
	case "Sign":
		c.mode = ua.MessageSecurityModeSign
	case "SignAndEncrypt":
		c.mode = ua.MessageSecurityModeSignAndEncrypt
	default:
		bad("security_mode", "%q: want one of %s", o.SecurityMode, strings.Join(SecurityModes(), ", "))
	}
	switch {
	case c.policy == "None" && (c.mode == ua.MessageSecurityModeSign || c.mode == ua.MessageSecurityModeSignAndEncrypt):
		bad("security_mode", "%s needs a security policy other than None", o.SecurityMode)
	case c.policy != "None" && o.SecurityMode == "None":
		bad("security_mode", "None with security policy %s: want Sign or SignAndEncrypt, or security_policy: None", c.policy)
	}
	c.auth = cmpOr(o.Auth, AuthAnonymous)
	switch c.auth {
	case AuthAnonymous:
	case AuthUsername:
		if o.Username == "" {
			bad("username", "empty: auth username needs a username")
		}
	case AuthCertificate:
		if o.UserCertFile == "" || o.UserKeyFile == "" {
			bad("user_cert_file", "auth certificate needs user_cert_file and user_key_file")
		}
	default:
		bad("auth", "%q: want anonymous, username or certificate", o.Auth)
	}
	if (c.policy != "None" || c.auth == AuthCertificate) && o.PKIDir == "" {
		bad("pki_dir", "empty: security policy %s needs a directory for the client certificate and the trusted server certificates", c.policy)
	}
	c.appURI = o.ApplicationURI
	if c.appURI == "" {
		host, _ := os.Hostname()
		c.appURI = "urn:floorlink:" + host
	} else if u, err := url.Parse(c.appURI); err != nil || u.Scheme == "" {
		bad("application_uri", "%q: want a URI, e.g. urn:floorlink:<gateway id>", c.appURI)
	}

	switch o.Mode {
	case "", ModePoll:
	case ModeSubscribe:
		c.subscribe = true
	default:
		bad("mode", "%q: want poll or subscribe", o.Mode)
	}
	if o.SamplingInterval < 0 || o.PublishingInterval < 0 {
		bad("sampling_interval", "sampling %v, publishing %v: want positive durations, or zero for the defaults", o.SamplingInterval, o.PublishingInterval)
	}
	c.sampling = cmpOr(o.SamplingInterval, c.interval)
	c.publish = cmpOr(o.PublishingInterval, 2*c.interval)
	if o.QueueSize < 0 || o.QueueSize > 1000 {
		bad("queue_size", "%d: want 1..1000, or 0 for 1", o.QueueSize)
	}
	c.queue = uint32(max(1, min(o.QueueSize, 1000)))
	c.timestamp = cmpOr(o.Timestamp, TimestampSource)
	if !contains([]string{TimestampSource, TimestampServer, TimestampGateway}, c.timestamp) {
		bad("timestamp", "%q: want source, server or gateway", o.Timestamp)
	}

	if len(dev.Tags) == 0 {
		bad("tags", "empty: a device needs at least one tag")
	}
	names := map[string]bool{}
	for i, t := range dev.Tags {
		p := fmt.Sprintf("tags[%d]", i)
		s := tagSpec{name: t.Name, typ: cmpOr(t.Type, drivers.TypeAuto), deadband: t.Deadband, percent: t.DeadbandPercent}
		if t.Name == "" {
			bad(p+".name", "empty")
		} else if names[t.Name] {
			bad(p+".name", "%q twice on device %q: tag names must be unique", t.Name, dev.Name)
		}
		names[t.Name] = true
		id, err := ParseNodeID(t.Address)
		if err != nil {
			bad(p+".address", "%w", err)
		}
		s.node = id
		if !contains(Types(), s.typ) {
			bad(p+".type", "%q: an opcua tag is one of %s", t.Type, typeList())
		}
		if t.ByteOrder != "" {
			bad(p+".byte_order", "only for modbus: OPC UA values carry their own encoding")
		}
		if t.Length != 0 {
			bad(p+".length", "only for modbus strings: OPC UA strings carry their length")
		}
		if t.PollInterval != 0 {
			bad(p+".poll_interval", "not supported for opcua tags: use the device's poll_interval, or mode: subscribe")
		}
		switch {
		case t.Deadband < 0:
			bad(p+".deadband", "%v is negative", t.Deadband)
		case t.DeadbandPercent && t.Deadband > 100:
			bad(p+".deadband", "%v%%: a percent deadband is 0..100", t.Deadband)
		case t.Deadband > 0 && !c.subscribe:
			bad(p+".deadband", "only in mode subscribe (the server filters changes); in poll mode use the pipeline's deadband")
		case t.Deadband > 0 && !numeric(s.typ):
			bad(p+".deadband", "needs a numeric type (or auto), not %s", s.typ)
		}
		c.tags = append(c.tags, s)
	}
	return c, errs
}

// checkEndpoint checks an endpoint URL: opc.tcp://host:port[/path].
func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: want an endpoint URL opc.tcp://host:port[/path]: %w", s, err)
	}
	if u.Scheme != "opc.tcp" || u.Host == "" {
		return fmt.Errorf("%q: want an endpoint URL opc.tcp://host:port[/path]", s)
	}
	return nil
}

func numeric(t drivers.DataType) bool {
	switch t {
	case drivers.TypeBool, drivers.TypeString, drivers.TypeDateTime, drivers.TypeBytes:
		return false
	}
	return true
}

func typeList() string {
	var b strings.Builder
	for i, t := range Types() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(t))
	}
	return b.String()
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
