package drivers

import (
	"context"
	"time"
)

// Device is one PLC endpoint as the drivers see it. Several devices may share one connection
// (units behind a Modbus gateway, slaves on one RS-485 port): their driver then polls them in
// turn over it.
type Device struct {
	// Name identifies the device in records, topics, logs and metrics.
	Name string
	// Protocol selects the driver: "modbus-tcp" or "modbus-rtu".
	Protocol string
	// Address is the protocol's endpoint: host:port for Modbus TCP, a serial device path for
	// Modbus RTU. Devices with the same Protocol and Address share a connection.
	Address string
	// UnitID is the Modbus unit identifier (0–255 over TCP, 1–247 on a serial line).
	UnitID uint8
	// PollInterval is the time between the starts of two poll cycles. Zero means one second.
	// A tag may have its own (Tag.PollInterval).
	PollInterval time.Duration
	// Timeout bounds one request, including the dial when a connection is opened. Zero means
	// two seconds.
	Timeout time.Duration
	// SourceTime asks for the device's own timestamps when it gives them ("timestamp: source");
	// otherwise samples are stamped with the gateway's read time. PLCs often run local time
	// labelled UTC, so the gateway's clock is the default.
	SourceTime bool
	// Modbus holds the options only Modbus devices have.
	Modbus ModbusOptions
	// OPCUA holds the options only OPC UA devices have (Protocol "opcua", Address the endpoint
	// URL opc.tcp://host:port/path, Tag.Address a node id like "ns=2;s=Line1.Press.State").
	OPCUA OPCUAOptions
	// Tags are the signals read from the device, in the order of the config file.
	Tags []Tag
}

// ModbusOptions are a Modbus device's protocol options. The zero value is the protocol's
// defaults.
type ModbusOptions struct {
	// Serial is the line setting of a modbus-rtu port; every device of a port has the same.
	Serial Serial
	// Retries is how many times a request that timed out is sent again before the cycle marks
	// its tags bad; zero means none.
	Retries int
	// RequestDelay is the pause before each request to this device, for slow devices and
	// gateways that need a gap; zero means none.
	RequestDelay time.Duration
	// MaxRegisters bounds one read of registers (1–125, zero means 125) and MaxGap the
	// registers nobody asked for that one read may span to join two tags (negative: none; zero
	// means the driver's default).
	MaxRegisters, MaxGap int
	// AddressBase is what the explicit address forms ("hr:N", "co:N"…) count from: 0 (the
	// protocol's own numbering, the default) or 1 (as some PLC manuals print them). Modicon
	// references (40001) are always 1-based.
	AddressBase int
}

// OPCUAOptions are an OPC UA device's options. The zero value is anonymous, unsecured polling.
type OPCUAOptions struct {
	// SecurityPolicy is None (the default), Basic256Sha256, Aes128_Sha256_RsaOaep or
	// Aes256_Sha256_RsaPss; SecurityMode is None, Sign or SignAndEncrypt ("" picks the most
	// secure mode the server offers for the policy).
	SecurityPolicy, SecurityMode string
	// Auth is anonymous (the default), username or certificate; Username and Password for
	// username (Password comes from a secret), UserCertFile and UserKeyFile for certificate.
	Auth, Username, Password  string
	UserCertFile, UserKeyFile string
	// PKIDir holds the application instance certificate and key and the trusted/, issuers/ and
	// rejected/ directories of server certificates. TrustOnFirstUse accepts and trusts an unknown
	// server certificate (commissioning only).
	PKIDir          string
	TrustOnFirstUse bool
	// ApplicationURI of the client, urn:floorlink:<gateway id>.
	ApplicationURI string
	// Mode is poll (the default: batched Reads every PollInterval) or subscribe (monitored
	// items).
	Mode string
	// SamplingInterval and PublishingInterval for subscribe mode; zero means the device's
	// PollInterval and twice it. QueueSize of each monitored item; zero means 1.
	SamplingInterval, PublishingInterval time.Duration
	QueueSize                            int
	// Timestamp is source (the default), server or gateway: which time samples carry.
	Timestamp string
}

// Serial is the line setting of a serial port.
type Serial struct {
	// Baud is the bit rate; zero means 9600.
	Baud int
	// DataBits is 7 or 8; zero means 8.
	DataBits int
	// Parity is "none" (the default), "even" or "odd".
	Parity string
	// StopBits is 1 (the default) or 2.
	StopBits int
}

// Tag is one named signal on a device.
type Tag struct {
	// Name is the key of the tag's value in every record; unique within its device.
	Name string
	// Address is protocol-specific (Modbus: "40001", "hr:0", "40001.3"); its driver parses it.
	Address string
	// Type is the data type stored at Address.
	Type DataType
	// ByteOrder is the order of the bytes of a multi-register value, as the letters of a
	// big-endian ABCD value on the wire: "ABCD" (the default), "CDAB" (word-swapped), "BADC",
	// "DCBA".
	ByteOrder string
	// Scale multiplies the raw value; zero means 1. Offset is added after scaling. A tag with a
	// scale other than 1 or a non-zero offset yields float samples.
	Scale, Offset float64
	// Unit is the engineering unit, e.g. "°C"; informational.
	Unit string
	// Length is the length of a TypeString value, in registers (two characters each).
	Length int
	// PollInterval, when not zero, polls this tag on its own schedule instead of the device's
	// (fast and slow tags on one device).
	PollInterval time.Duration
	// Enum maps raw integer values to names ("1: running"); the pipeline publishes the name,
	// and a value missing from the map as its number with quality uncertain. nil: no map.
	Enum map[int64]string
	// Deadband, for OPC UA subscriptions: the server's data-change filter (absolute, or percent
	// of the EU range when DeadbandPercent). Zero: every change.
	Deadband        float64
	DeadbandPercent bool
}

// DataType is the type of a tag's raw value at its address.
type DataType string

// Data types. A driver may support a subset; its New says which it refuses and why.
const (
	TypeBool    DataType = "bool"
	TypeInt16   DataType = "int16"
	TypeUint16  DataType = "uint16"
	TypeInt32   DataType = "int32"
	TypeUint32  DataType = "uint32"
	TypeInt64   DataType = "int64"
	TypeUint64  DataType = "uint64"
	TypeFloat32 DataType = "float32"
	TypeFloat64 DataType = "float64"
	// TypeString is fixed-length text (Tag.Length registers, ASCII, trailing NULs and spaces
	// trimmed).
	TypeString DataType = "string"
	// TypeBCD16 and TypeBCD32 are binary-coded decimal: four digits per register.
	TypeBCD16 DataType = "bcd16"
	TypeBCD32 DataType = "bcd32"
	// TypeInt8, TypeUint8, TypeDateTime and TypeBytes are OPC UA's SByte, Byte, DateTime
	// (published as RFC 3339 text) and ByteString (published as base64); TypeAuto takes the
	// node's own data type.
	TypeInt8     DataType = "int8"
	TypeUint8    DataType = "uint8"
	TypeDateTime DataType = "datetime"
	TypeBytes    DataType = "bytes"
	TypeAuto     DataType = "auto"
)

// DataTypes lists the data types in the order error messages show them.
func DataTypes() []DataType {
	return []DataType{TypeBool, TypeInt8, TypeUint8, TypeInt16, TypeUint16, TypeInt32, TypeUint32, TypeInt64, TypeUint64,
		TypeFloat32, TypeFloat64, TypeString, TypeBCD16, TypeBCD32, TypeDateTime, TypeBytes, TypeAuto}
}

// Quality says how far a sample can be trusted, after OPC UA's three classes of StatusCode.
type Quality uint8

// Qualities. The zero value is Good so that a freshly decoded sample is good unless marked.
const (
	QualityGood Quality = iota
	QualityUncertain
	QualityBad
)

func (q Quality) String() string {
	switch q {
	case QualityGood:
		return "good"
	case QualityUncertain:
		return "uncertain"
	case QualityBad:
		return "bad"
	}
	return "invalid"
}

// Sample is one reading of one tag.
type Sample struct {
	// Tag is the index of the tag in its Device.Tags. An index, not a name, so that a batch costs
	// no string work; the consumer holds the Device and looks the name up.
	Tag int
	// Value is the raw decoded value (before scale and offset). It is the zero Value when Quality
	// is Bad.
	Value Value
	// Quality of the reading; Reason says why it is not Good, e.g. "timeout", "unreachable",
	// "exception 2". Reasons are short constant strings so that a bad cycle does not allocate.
	Quality Quality
	Reason  string
	// SourceTime is when the device says the value was taken; zero when the device gives none
	// (Modbus never does).
	SourceTime time.Time
}

// Batch is the samples of one device from one poll cycle or one subscription notification.
type Batch struct {
	// Device is the name of the device the samples came from.
	Device string
	// ReadTime is when the cycle's responses arrived (the last of them).
	ReadTime time.Time
	// Took is how long the cycle's requests took, for the request latency metric; zero when
	// the driver does not measure it.
	Took time.Duration
	// Samples, one per tag read in the cycle.
	Samples []Sample
}

// EventKind names a driver event.
type EventKind string

// Driver events.
const (
	// EventConnected: the driver has a working connection to the device.
	EventConnected EventKind = "connected"
	// EventDisconnected: the connection was lost or could not be made; Err says why.
	EventDisconnected EventKind = "disconnected"
	// EventFault: the device answered but something is wrong: a Modbus exception (the
	// connection stays up) or a malformed reply (the driver closes the connection, whose framing
	// it can no longer trust, and redials on the next read).
	EventFault EventKind = "fault"
)

// Event is a change in a device's connectivity or a fault worth telling the backend about.
// Drivers report a change once, not on every failed cycle.
type Event struct {
	Device string
	Time   time.Time
	Kind   EventKind
	// Err is the cause for EventDisconnected and EventFault; nil for EventConnected.
	Err error
}

// Sink receives what a driver produces. Both methods are called from the driver's own goroutine,
// one call at a time per driver, and must not block for long: a slow sink delays the next poll.
type Sink interface {
	// Batch receives one cycle's samples. b and b.Samples are only valid until Batch returns.
	Batch(b *Batch)
	// Event receives a connectivity change or fault.
	Event(e Event)
}

// Driver polls or subscribes to one connection (a TCP device, a gateway or a serial port) and
// reports to a Sink.
type Driver interface {
	// Run reads until ctx ends, reconnecting with backoff, and returns nil then. It returns an
	// error only for a problem no retry can fix. Run never waits on a device that does not answer
	// once ctx is done.
	Run(ctx context.Context, sink Sink) error
}

// FieldError is a problem with one field of a device's configuration. Device names the device
// (a driver for a shared connection checks several); Path is relative to it, e.g.
// "tags[3].address"; the agent prefixes the device's own path and adds the file position from
// the config.
type FieldError struct {
	Device string
	Path   string
	Err    error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }
