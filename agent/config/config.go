package config

import (
	"os"
	"strconv"
	"time"
)

// File is one configuration file, decoded, with defaults applied. Parse fills every field; a
// field whose value was wrong keeps its zero value or its default, and the problem is in the
// *Error returned with the File.
//
// A File is not modified after Parse returns and is safe for concurrent reads.
type File struct {
	// Path is the file's name as given to Load or Parse; problems name it.
	Path string `yaml:"-" json:"-"`

	Gateway Gateway  `yaml:"gateway" json:"gateway"`
	MQTT    MQTT     `yaml:"mqtt" json:"mqtt"`
	Buffer  Buffer   `yaml:"buffer" json:"buffer"`
	Devices []Device `yaml:"devices" json:"devices"`
	Assets  []Asset  `yaml:"assets" json:"assets"`
	HTTP    HTTP     `yaml:"http" json:"http"`

	pos *positions // a pointer, so that printing a File does not print the table
}

// Gateway identifies this gateway, places it in the plant, and says where it keeps its data.
type Gateway struct {
	// ID names the MQTT client, the topic subtree and every message; unique per plant.
	ID string `yaml:"id" json:"id"`
	// Site, Area and Line place the gateway in the ISA-95 hierarchy and in topics.
	Site string `yaml:"site" json:"site"`
	Area string `yaml:"area" json:"area"`
	Line string `yaml:"line" json:"line"`
	// DataDir is absolute: a relative data_dir is resolved against the directory of the
	// config file, so the agent finds its buffer whatever its working directory.
	DataDir string `yaml:"data_dir" json:"data_dir"`
	// Timezone is the IANA name of the plant's zone, and Location the zone itself (never nil
	// in a File from Parse).
	Timezone string         `yaml:"timezone" json:"timezone"`
	Location *time.Location `yaml:"-" json:"-"`
}

// MQTT is the broker connection and the shape of what is published.
type MQTT struct {
	// Brokers are tried in turn: "tcp://host:port" or "mqtt://host:port". A broker with a
	// problem is left "", so that Brokers[i] stays mqtt.brokers[i] of the file.
	Brokers  []string `yaml:"brokers" json:"brokers"`
	ClientID string   `yaml:"client_id" json:"client_id"`
	Username string   `yaml:"username" json:"username"`
	// Password comes from the password key or from the file named by PasswordFile (absolute
	// once parsed); at most one of the two is set in the file.
	Password      Secret `yaml:"password" json:"password"`
	PasswordFile  string `yaml:"password_file" json:"password_file"`
	Format        string `yaml:"format" json:"format"`
	TopicTemplate string `yaml:"topic_template" json:"topic_template"`
	MaxInflight   int    `yaml:"max_inflight" json:"max_inflight"`

	KeepAlive      time.Duration `yaml:"keep_alive" json:"keep_alive"`
	ConnectTimeout time.Duration `yaml:"connect_timeout" json:"connect_timeout"`
	// ReconnectMin and ReconnectMax bound the wait between connection attempts.
	ReconnectMin time.Duration `yaml:"reconnect_min" json:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max" json:"reconnect_max"`
	// ShutdownGrace bounds the wait for acknowledgements of the messages in flight at stop.
	ShutdownGrace time.Duration `yaml:"shutdown_grace" json:"shutdown_grace"`
	// StatsInterval is the period of the gateway stats message; zero disables it.
	StatsInterval time.Duration `yaml:"stats_interval" json:"stats_interval"`
	// MaxDrainRate bounds the messages sent per second, a backlog included; it exceeds the
	// ingest rate of the devices, so a backlog always drains.
	MaxDrainRate float64 `yaml:"max_drain_rate" json:"max_drain_rate"`
	// MaxMessageBytes bounds one message's payload; a record that would exceed it is split.
	MaxMessageBytes int64 `yaml:"max_message_bytes" json:"max_message_bytes"`
	// TLS configures encrypted connections to ssl://, tls:// and mqtts:// brokers; nil uses
	// the system's roots.
	TLS *TLS `yaml:"tls" json:"tls"`
	// GroupID, EdgeNodeID and PrimaryHostID place the gateway in Sparkplug B (format:
	// sparkplug): the group, the edge node (default: the gateway id) and the primary host whose
	// STATE it waits for (none: publish whenever connected).
	GroupID       string `yaml:"group_id" json:"group_id"`
	EdgeNodeID    string `yaml:"edge_node_id" json:"edge_node_id"`
	PrimaryHostID string `yaml:"primary_host_id" json:"primary_host_id"`
	// HoldBack is how long Sparkplug data stays replayable after the broker confirmed it: at
	// least 1.5 times the host's keep-alive.
	HoldBack time.Duration `yaml:"hold_back" json:"hold_back"`
}

// TLS is the broker connection's TLS setting. Paths are absolute once parsed.
type TLS struct {
	CAFile             string `yaml:"ca_file" json:"ca_file"`
	CertFile           string `yaml:"cert_file" json:"cert_file"`
	KeyFile            string `yaml:"key_file" json:"key_file"`
	ServerName         string `yaml:"server_name" json:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" json:"insecure_skip_verify"`
}

// Buffer is the durable record queue.
type Buffer struct {
	// MaxBytes is the most the buffer file may grow to; the oldest records go first.
	MaxBytes int64 `yaml:"max_bytes" json:"max_bytes"`
	// MaxAge is the age past which a record is dropped unsent.
	MaxAge time.Duration `yaml:"max_age" json:"max_age"`
	// Sync is "always" (every commit is fsynced) or "none" (SD-card gateways: a power loss may
	// lose the last commits).
	Sync string `yaml:"sync" json:"sync"`
	// CommitInterval is the least time between two commits; zero commits as soon as the
	// previous commit ends.
	CommitInterval time.Duration `yaml:"commit_interval" json:"commit_interval"`
}

// Device is one PLC endpoint.
type Device struct {
	Name     string `yaml:"name" json:"name"`
	Protocol string `yaml:"protocol" json:"protocol"`
	// Address is host:port for modbus-tcp, a serial device path for modbus-rtu and the
	// endpoint URL for opcua.
	Address string `yaml:"address" json:"address"`
	UnitID  int    `yaml:"unit_id" json:"unit_id"`
	// Serial is the line setting of a modbus-rtu port (defaults applied); nil for modbus-tcp.
	Serial       *Serial       `yaml:"serial" json:"serial"`
	PollInterval time.Duration `yaml:"poll_interval" json:"poll_interval"`
	Timeout      time.Duration `yaml:"timeout" json:"timeout"`
	// Area and Line place the device's topics; they are the gateway's unless overridden.
	Area string `yaml:"area" json:"area"`
	Line string `yaml:"line" json:"line"`
	// Timestamp is "gateway" (samples carry the gateway's read time), "source" (the device's
	// own time, where the protocol gives one) or, on opcua, "server" (the server's time).
	Timestamp string `yaml:"timestamp" json:"timestamp"`
	// Retries, RequestDelay, MaxRegisters, MaxGap and AddressBase are Modbus request options.
	Retries      int           `yaml:"retries" json:"retries"`
	RequestDelay time.Duration `yaml:"request_delay" json:"request_delay"`
	MaxRegisters int           `yaml:"max_registers" json:"max_registers"`
	MaxGap       int           `yaml:"max_gap" json:"max_gap"`
	AddressBase  int           `yaml:"address_base" json:"address_base"`

	// The OPC UA options (protocol opcua; Address is then the endpoint URL opc.tcp://host:port).
	// On other protocols they stay at their zero values. SecurityPolicy is None,
	// Basic256Sha256, Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss; SecurityMode None, Sign or
	// SignAndEncrypt, "" for the most secure the server offers for the policy.
	SecurityPolicy string `yaml:"security_policy" json:"security_policy"`
	SecurityMode   string `yaml:"security_mode" json:"security_mode"`
	// Auth is anonymous, username (Username and Password, the password from the password key
	// or the file PasswordFile, absolute once parsed) or certificate (UserCertFile and
	// UserKeyFile, absolute once parsed).
	Auth         string `yaml:"auth" json:"auth"`
	Username     string `yaml:"username" json:"username"`
	Password     Secret `yaml:"password" json:"password"`
	PasswordFile string `yaml:"password_file" json:"password_file"`
	UserCertFile string `yaml:"user_cert_file" json:"user_cert_file"`
	UserKeyFile  string `yaml:"user_key_file" json:"user_key_file"`
	// PKIDir holds the gateway's application instance certificate and the trusted/, issuers/
	// and rejected/ server certificates; absolute, <data_dir>/pki by default. TrustOnFirstUse
	// trusts an unknown server certificate (commissioning only).
	PKIDir          string `yaml:"pki_dir" json:"pki_dir"`
	TrustOnFirstUse bool   `yaml:"trust_on_first_use" json:"trust_on_first_use"`
	// Mode is poll (batched Reads every PollInterval) or subscribe (monitored items sampled
	// every SamplingInterval, reported every PublishingInterval, QueueSize values each).
	Mode               string        `yaml:"mode" json:"mode"`
	SamplingInterval   time.Duration `yaml:"sampling_interval" json:"sampling_interval"`
	PublishingInterval time.Duration `yaml:"publishing_interval" json:"publishing_interval"`
	QueueSize          int           `yaml:"queue_size" json:"queue_size"`

	Tags []Tag `yaml:"tags" json:"tags"`
}

// Serial is the line setting of an RS-485/RS-232 port. Every device on one port has the same.
type Serial struct {
	Baud     int    `yaml:"baud" json:"baud"`
	DataBits int    `yaml:"data_bits" json:"data_bits"`
	Parity   string `yaml:"parity" json:"parity"`
	StopBits int    `yaml:"stop_bits" json:"stop_bits"`
}

// Tag is one signal of a device. Address, Type and ByteOrder belong to the device's driver,
// which checks them; the agent places its complaints with File.Pos.
type Tag struct {
	Name      string `yaml:"name" json:"name"`
	Address   string `yaml:"address" json:"address"`
	Type      string `yaml:"type" json:"type"`
	ByteOrder string `yaml:"byte_order" json:"byte_order"`
	// Scale multiplies the raw value (never zero), then Offset is added.
	Scale  float64 `yaml:"scale" json:"scale"`
	Offset float64 `yaml:"offset" json:"offset"`
	Unit   string  `yaml:"unit" json:"unit"`
	// Deadband suppresses changes smaller than itself; zero publishes every cycle.
	Deadband Deadband `yaml:"deadband" json:"deadband"`
	// Heartbeat is the most time a tag under a deadband stays unpublished; zero means no limit.
	Heartbeat time.Duration `yaml:"heartbeat" json:"heartbeat"`
	// Length is the length of a string tag in registers.
	Length int `yaml:"length" json:"length"`
	// PollInterval, when not zero, polls the tag on its own schedule.
	PollInterval time.Duration `yaml:"poll_interval" json:"poll_interval"`
	// Enum names the tag's integer values; nil: none.
	Enum map[int64]string `yaml:"enum" json:"enum"`
}

// HTTP is the status and metrics listener.
type HTTP struct {
	// Listen is host:port; "" disables the listener.
	Listen string `yaml:"listen" json:"listen"`
}

// Options change how a file is read. The zero value reads the process environment and the
// real file system.
type Options struct {
	// LookupEnv resolves ${VAR}; nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
	// ReadFile reads the files that *_file keys name (already made absolute); nil means
	// os.ReadFile.
	ReadFile func(name string) ([]byte, error)
}

// Load reads the file at path and parses it as Parse does. When the file cannot be read the
// error is the *fs.PathError and the File is nil.
func Load(path string, opts Options) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, opts)
}

// Parse decodes data as if read from path: path names the file in problems, and relative paths
// in the file (data_dir, password_file) are resolved against its directory.
//
// When data is not valid YAML, Parse returns a nil File and an *Error with the syntax error.
// Otherwise it returns a File and, if anything is wrong with it, an *Error listing every
// problem found, sorted by position: the caller can run its own checks on the File and report
// them together with Join.
func Parse(path string, data []byte, opts Options) (*File, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	d := newDecoder(path, opts)
	f := d.decode(data)
	if f == nil {
		return nil, Join(&File{Path: path}, d.problems...)
	}
	return f, Join(f, d.problems...)
}

// Deadband is the least change of a tag's value worth publishing before its heartbeat is due:
// Value in the tag's scaled units or, when Percent, in percent of the last published value.
// The zero Deadband publishes every cycle.
type Deadband struct {
	Value   float64
	Percent bool
}

// IsZero reports whether d publishes every cycle.
func (d Deadband) IsZero() bool { return d.Value == 0 }

// String writes d as it is written in the file: "0.5" or "2%".
func (d Deadband) String() string {
	s := strconv.FormatFloat(d.Value, 'g', -1, 64)
	if d.Percent {
		s += "%"
	}
	return s
}

// MarshalText writes d as String does.
func (d Deadband) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// MarshalJSON writes an absolute deadband as a number and a percentage as a string ("2%").
func (d Deadband) MarshalJSON() ([]byte, error) {
	if d.Percent {
		return []byte(strconv.Quote(d.String())), nil
	}
	return []byte(d.String()), nil
}

// MarshalYAML writes d as the file would: a number, or a string for a percentage.
func (d Deadband) MarshalYAML() (any, error) {
	if d.Percent {
		return d.String(), nil
	}
	return d.Value, nil
}
