package config

import (
	"fmt"
	"strings"
)

// field documents one key of the file. fields is the one place defaults live: the decoder
// applies def when a key is missing (see mapping.scalar), and the reference in
// docs/configuration.md is generated from this table and checked against it by a test, so the
// code, the table and the docs cannot drift apart.
type field struct {
	path string // with [] for list items: "devices[].tags[].scale"
	typ  string
	// def is the default as YAML text, decoded like a value written in the file. Empty: no
	// default (see note).
	def string
	// manual: the default depends on other keys, so the decoder applies it itself, and def
	// (when set) is the value it uses.
	manual bool
	// note is shown instead of def in the reference: "required", or how a manual default is
	// derived.
	note string
	rng  string // the values allowed, for the reference
	doc  string // one line
}

// fields is read-only after start: it is the schema's table of defaults and docs.
var fields = []field{
	{path: "gateway", typ: "mapping", note: "required", doc: "Who this gateway is and where it keeps its data."},
	{path: "gateway.id", typ: "string", note: "required", rng: "topic level", doc: "Unique id of the gateway in the plant: names the MQTT client, the topic subtree and every message."},
	{path: "gateway.site", typ: "string", note: "required", rng: "topic level", doc: "ISA-95 site (the plant), the `{site}` of topics."},
	{path: "gateway.area", typ: "string", note: "required", rng: "topic level", doc: "ISA-95 area, the `{area}` of topics; a device may override it."},
	{path: "gateway.line", typ: "string", note: "required", rng: "topic level", doc: "ISA-95 line, the `{line}` of topics; a device may override it."},
	{path: "gateway.data_dir", typ: "path", def: "./data", rng: "directory", doc: "Where the buffer file lives; relative to the directory of the config file."},
	{path: "gateway.timezone", typ: "string", def: "UTC", rng: "IANA zone name, e.g. Asia/Seoul", doc: "The plant's time zone, for shifts and KPI windows (from the embedded tz database)."},

	{path: "mqtt", typ: "mapping", note: "required", doc: "The broker connection and what is published."},
	{path: "mqtt.brokers", typ: "list of URLs", note: "required", rng: "at least 1; `tcp://host:port` or `mqtt://host:port`", doc: "Brokers, tried in turn (failover, not load sharing)."},
	{path: "mqtt.client_id", typ: "string", manual: true, note: "`gateway.id`", rng: "UTF-8 without control characters", doc: "MQTT client id; must be unique on the broker, as the gateway id is. `\"\"` means the default."},
	{path: "mqtt.username", typ: "string", note: "none", doc: "User name for the broker; none means anonymous."},
	{path: "mqtt.password", typ: "secret", note: "none", rng: "not with `password_file`", doc: "Password for the broker, usually `${MQTT_PASSWORD}`; never printed or logged."},
	{path: "mqtt.password_file", typ: "path", note: "none", rng: "not with `password`", doc: "File holding the password (one trailing newline is dropped), relative to the config file's directory."},
	{path: "mqtt.format", typ: "string", def: "json", rng: "`json` or `sparkplug`", doc: "Payload encoding: the JSON contract (docs/mqtt.md) or Sparkplug B 3.0 (docs/sparkplug.md)."},
	{path: "mqtt.group_id", typ: "string", note: "required with `format: sparkplug`", rng: "topic level", doc: "Sparkplug group id."},
	{path: "mqtt.edge_node_id", typ: "string", manual: true, note: "`gateway.id`", rng: "topic level", doc: "Sparkplug edge node id; unique within the group."},
	{path: "mqtt.primary_host_id", typ: "string", note: "none", rng: "topic level", doc: "Sparkplug primary host whose STATE the node waits for before its births; none: publish whenever connected."},
	{path: "mqtt.hold_back", typ: "duration", def: "45s", rng: "more than 0", doc: "Sparkplug only: how long confirmed data stays replayable as history if the session or the host is lost (at least 1.5 × the host's keep-alive)."},
	{path: "mqtt.topic_template", typ: "string", def: "floorlink/v1/{site}/{area}/{line}/{source}/{kind}", rng: "placeholders `{gateway}` `{site}` `{area}` `{line}` `{source}` `{kind}`; `{source}` and `{kind}` required", doc: "Topic of each record; `{source}` is the device (or asset), `{kind}` is telemetry, kpi or event."},
	{path: "mqtt.max_inflight", typ: "integer", def: "64", rng: "1 to 65535", doc: "QoS 1 messages sent and not yet acknowledged."},
	{path: "mqtt.keep_alive", typ: "duration", def: "30s", rng: "1s to 18h12m15s, whole seconds", doc: "MQTT keep-alive; the broker sends the Last Will after 1.5 times this without traffic."},
	{path: "mqtt.connect_timeout", typ: "duration", def: "10s", rng: "more than 0", doc: "Bound on one connection attempt."},
	{path: "mqtt.reconnect_min", typ: "duration", def: "1s", rng: "more than 0", doc: "First wait between connection attempts; it doubles, with jitter, up to `reconnect_max`."},
	{path: "mqtt.reconnect_max", typ: "duration", def: "30s", rng: "at least `reconnect_min`", doc: "Longest wait between connection attempts."},
	{path: "mqtt.shutdown_grace", typ: "duration", def: "5s", rng: "more than 0", doc: "How long a stopping agent waits for the broker to acknowledge what is in flight."},
	{path: "mqtt.max_drain_rate", typ: "number", manual: true, note: "the larger of 1000 and 4 × the ingest rate", rng: "more than the ingest rate (the sum over devices of 1/`poll_interval`)", doc: "Most messages sent per second; a backlog after an outage drains at this rate, in order, then live records follow."},
	{path: "mqtt.max_message_bytes", typ: "size", def: "256KiB", rng: "1KiB to 256MiB", doc: "Largest payload sent; a record whose message would be larger is split into parts (docs/mqtt.md)."},
	{path: "mqtt.tls", typ: "mapping", note: "none (system roots for `ssl://` brokers)", rng: "only with `ssl://`, `tls://` or `mqtts://` brokers", doc: "TLS for the broker connection."},
	{path: "mqtt.tls.ca_file", typ: "path", note: "the system's roots", rng: "PEM file", doc: "CA certificates that sign the broker's certificate; relative to the config file's directory."},
	{path: "mqtt.tls.cert_file", typ: "path", note: "none", rng: "PEM file; with `key_file`", doc: "Client certificate, for brokers that authenticate clients by certificate."},
	{path: "mqtt.tls.key_file", typ: "path", note: "none", rng: "PEM file; with `cert_file`", doc: "Private key of the client certificate; keep it readable only by the agent's user."},
	{path: "mqtt.tls.server_name", typ: "string", note: "the broker URL's host", doc: "Name expected in the broker's certificate, when it differs from the host in the URL."},
	{path: "mqtt.tls.insecure_skip_verify", typ: "boolean", def: "false", rng: "`true` or `false`", doc: "Accept any broker certificate. For commissioning only: it allows a man in the middle."},
	{path: "mqtt.stats_interval", typ: "duration", def: "10s", rng: "0 (off) or at least 1s", doc: "Period of the gateway stats message."},

	{path: "buffer", typ: "mapping", note: "all defaults", doc: "The store-and-forward file that keeps every record until the broker has it."},
	{path: "buffer.max_bytes", typ: "size", def: "512MiB", rng: "at least 1MiB; at most 512MiB on 32-bit gateways", doc: "Most the buffer file may grow to; when full, the oldest records are dropped and counted."},
	{path: "buffer.max_age", typ: "duration", def: "168h", rng: "more than 0", doc: "Records older than this are dropped unsent."},
	{path: "buffer.sync", typ: "string", def: "always", rng: "`always` or `none`", doc: "`always` fsyncs every commit; `none` spares SD cards but a power loss may lose the last commits."},
	{path: "buffer.commit_interval", typ: "duration", def: "0s", rng: "0 to 1m", doc: "Least time between two commits (fewer fsyncs, more latency); 0 commits as soon as the previous one ends."},

	{path: "devices", typ: "list of mappings", note: "none", doc: "The PLCs this gateway polls."},
	{path: "devices[].name", typ: "string", note: "required", rng: "topic level; unique; not the gateway's id", doc: "The device's name in records, topics, logs and metrics."},
	{path: "devices[].protocol", typ: "string", note: "required", rng: "`modbus-tcp`, `modbus-rtu` or `opcua`", doc: "How to talk to the device."},
	{path: "devices[].address", typ: "string", note: "required", rng: "modbus-tcp: `host:port`; modbus-rtu: a serial device path like `/dev/ttyUSB0`; opcua: an endpoint URL `opc.tcp://host:port[/path]`", doc: "The connection. Modbus devices with the same protocol and address share it (one bus); every opcua device has its own."},
	{path: "devices[].unit_id", typ: "integer", def: "1", manual: true, note: "1 on modbus-tcp; required on modbus-rtu", rng: "modbus-tcp 0 to 255; modbus-rtu 1 to 247; unique on a bus", doc: "Modbus unit id of the device on its connection."},
	{path: "devices[].serial", typ: "mapping", note: "modbus-rtu: all defaults", rng: "modbus-rtu only; the same on every device of a port", doc: "Line setting of the serial port."},
	{path: "devices[].serial.baud", typ: "integer", def: "9600", rng: "1200, 2400, 4800, 9600, 19200, 38400, 57600 or 115200", doc: "Bits per second."},
	{path: "devices[].serial.data_bits", typ: "integer", def: "8", rng: "7 or 8", doc: "Bits per character."},
	{path: "devices[].serial.parity", typ: "string", def: "none", rng: "`none`, `even` or `odd`", doc: "Parity bit."},
	{path: "devices[].serial.stop_bits", typ: "integer", def: "1", rng: "1 or 2", doc: "Stop bits."},
	{path: "devices[].poll_interval", typ: "duration", def: "1s", rng: "at least 10ms", doc: "Time between the starts of two poll cycles."},
	{path: "devices[].timeout", typ: "duration", def: "2s", rng: "more than 0, less than 60s", doc: "Bound on one request, including the dial of a new connection."},
	{path: "devices[].area", typ: "string", manual: true, note: "`gateway.area`", rng: "topic level", doc: "Overrides the gateway's area in this device's topics; `\"\"` keeps the gateway's."},
	{path: "devices[].line", typ: "string", manual: true, note: "`gateway.line`", rng: "topic level", doc: "Overrides the gateway's line in this device's topics; `\"\"` keeps the gateway's."},
	{path: "devices[].timestamp", typ: "string", def: "gateway", manual: true, note: "`gateway`; opcua: `source`", rng: "`gateway` or `source`; opcua also `server`", doc: "Whose clock stamps samples: the gateway's read time, the device's own time where the protocol gives one (Modbus PLCs often run local time labelled UTC, hence their default; OPC UA timestamps are UTC by the spec), or the OPC UA server's."},
	{path: "devices[].retries", typ: "integer", def: "0", rng: "0 to 10", doc: "Times a request that timed out is sent again before its tags are marked bad in that cycle."},
	{path: "devices[].request_delay", typ: "duration", def: "0s", rng: "0 to 10s", doc: "Pause before each request to this device, for slow devices and gateways that need a gap."},
	{path: "devices[].max_registers", typ: "integer", def: "125", rng: "1 to 125", doc: "Most registers one read may ask for; some devices answer less than the protocol allows."},
	{path: "devices[].max_gap", typ: "integer", def: "16", rng: "0 to 124", doc: "Most registers nobody asked for that one read may span to join two tags; 0 reads only adjacent tags together."},
	{path: "devices[].address_base", typ: "integer", def: "0", rng: "0 or 1", doc: "What the explicit addresses (`hr:N`, `ir:N`, `co:N`, `di:N`) count from; Modicon references (`40001`) are always 1-based."},
	{path: "devices[].security_policy", typ: "string", manual: true, note: "opcua: `None`", rng: "opcua only: `None`, `Basic256Sha256`, `Aes128_Sha256_RsaOaep`, `Aes256_Sha256_RsaPss`", doc: "OPC UA security policy of the endpoint to use (docs/opcua.md)."},
	{path: "devices[].security_mode", typ: "string", note: "the most secure the server offers for the policy", rng: "opcua only: `None`, `Sign`, `SignAndEncrypt`; `None` exactly with policy `None`", doc: "OPC UA message security mode."},
	{path: "devices[].auth", typ: "string", manual: true, note: "opcua: `anonymous`", rng: "opcua only: `anonymous`, `username`, `certificate`", doc: "How the gateway identifies itself to the OPC UA server as a user."},
	{path: "devices[].username", typ: "string", note: "none", rng: "opcua only; required with `auth: username`", doc: "OPC UA user name."},
	{path: "devices[].password", typ: "secret", note: "none", rng: "opcua only; not with `password_file`", doc: "OPC UA user's password, usually `${OPCUA_PASSWORD}`; never printed or logged."},
	{path: "devices[].password_file", typ: "path", note: "none", rng: "opcua only; not with `password`", doc: "File holding the OPC UA user's password (one trailing newline is dropped), relative to the config file's directory."},
	{path: "devices[].user_cert_file", typ: "path", note: "none", rng: "opcua only; with `auth: certificate`; DER or PEM", doc: "X.509 user certificate, relative to the config file's directory."},
	{path: "devices[].user_key_file", typ: "path", note: "none", rng: "opcua only; with `user_cert_file`; PEM", doc: "Private key of the user certificate; keep it readable only by the agent's user."},
	{path: "devices[].pki_dir", typ: "path", manual: true, note: "opcua: `<data_dir>/pki`", rng: "opcua only; a directory", doc: "The gateway's application instance certificate (`own/`) and the server certificates it trusts (`trusted/`, `issuers/`) or refused (`rejected/`); relative to the config file's directory."},
	{path: "devices[].trust_on_first_use", typ: "boolean", def: "false", manual: true, rng: "opcua only; `true` or `false`", doc: "Trust an unknown server certificate and store it in `trusted/`. For commissioning only: it allows a man in the middle."},
	{path: "devices[].mode", typ: "string", manual: true, note: "opcua: `poll`", rng: "opcua only: `poll` or `subscribe`", doc: "`poll` reads every tag each `poll_interval` in batched Reads; `subscribe` has the server report changes (monitored items)."},
	{path: "devices[].sampling_interval", typ: "duration", manual: true, note: "opcua: `poll_interval`", rng: "opcua only; at least 10ms", doc: "Subscribe mode: how often the server samples each tag."},
	{path: "devices[].publishing_interval", typ: "duration", manual: true, note: "opcua: 2 × `poll_interval`", rng: "opcua only; at least 10ms", doc: "Subscribe mode: how often the server sends the changes it sampled."},
	{path: "devices[].queue_size", typ: "integer", manual: true, note: "opcua: `1`", rng: "opcua only; 1 to 1000", doc: "Subscribe mode: values the server keeps per tag between two publishes (the oldest is discarded)."},
	{path: "devices[].tags", typ: "list of mappings", note: "required", rng: "at least 1", doc: "The signals read from the device."},
	{path: "devices[].tags[].name", typ: "string", note: "required", rng: "1 to 255 bytes of UTF-8, no control characters; unique in the device", doc: "Key of the tag's value in every record."},
	{path: "devices[].tags[].address", typ: "string", note: "required", rng: "the driver's grammar: Modbus `40001`, `400001`, `40001.3`, `hr:0`; OPC UA a node id `ns=2;s=Line1.M1.State`, `i=2258`", doc: "Where the value is. Quote an address with leading zeros: `\"00001\"`."},
	{path: "devices[].tags[].type", typ: "string", manual: true, note: "required; opcua: `auto` (not with `format: sparkplug`)", rng: "the driver's types: Modbus `bool`, `int16`, `uint16`, `int32`, `uint32`, `int64`, `uint64`, `float32`, `float64`, `string`, `bcd16`, `bcd32`; OPC UA `bool`, `int8`, `uint8`, the 16- to 64-bit integers, `float32`, `float64`, `string`, `datetime`, `bytes`, `auto` (the node's own type)", doc: "Data type at the address."},
	{path: "devices[].tags[].byte_order", typ: "string", note: "the driver's (`ABCD`)", rng: "`ABCD`, `CDAB`, `BADC`, `DCBA` (32- and 64-bit); `AB`, `BA` (16-bit and strings)", doc: "Order of the bytes of a multi-register value (docs/modbus.md has the table)."},
	{path: "devices[].tags[].scale", typ: "number", def: "1", rng: "finite, not 0", doc: "Multiplies the raw value."},
	{path: "devices[].tags[].offset", typ: "number", def: "0", rng: "finite", doc: "Added after scaling."},
	{path: "devices[].tags[].unit", typ: "string", note: "none", doc: "Engineering unit, e.g. `°C`; metadata only."},
	{path: "devices[].tags[].deadband", typ: "number or percentage", def: "0", rng: "a number at least 0 (scaled units), or `\"N%\"` with N from 0 to 100 (of the last published value)", doc: "Changes smaller than this are not published; 0 publishes every cycle. On an opcua device in subscribe mode an absolute deadband is also the server's data-change filter."},
	{path: "devices[].tags[].length", typ: "integer", note: "required for `string`", rng: "1 to 123; only for Modbus `string` tags (0: none)", doc: "Length of a string tag in registers (two characters each)."},
	{path: "devices[].tags[].poll_interval", typ: "duration", note: "the device's", rng: "0 (the device's) or at least 10ms", doc: "Polls this tag on its own schedule: fast and slow tags on one device."},
	{path: "devices[].tags[].enum", typ: "mapping of integers to names", note: "none", rng: "integer keys, non-empty names", doc: "Publishes the name of an integer value (`{1: running, 4: down}`); a value not in the map keeps its number with quality uncertain."},
	{path: "devices[].tags[].heartbeat", typ: "duration", def: "0s", rng: "0 (none) or at least the device's `poll_interval`", doc: "Longest time a tag under a deadband goes unpublished."},

	{path: "assets", typ: "list of mappings", note: "none", rng: "each with a `name`, and `state`, `counters` or both", doc: "Machines whose KPIs (OEE after ISO 22400-2) are computed from tags of the devices; docs/kpi.md has the KPIs and an example."},
	{path: "assets[].name", typ: "string", note: "required", rng: "topic level; unique among assets; not a device's name or the gateway's id; `<name>-kpi` not a device's name", doc: "The asset's name: the `{source}` of its KPI records; its Sparkplug device id is `<name>-kpi`."},
	{path: "assets[].state", typ: "mapping", note: "none (all planned time unknown)", rng: "an enum `tag` with its `map`, or boolean tags", doc: "What the machine is doing: running, idle, blocked, down, setup or maintenance."},
	{path: "assets[].state.device", typ: "string", note: "required", rng: "a device of `devices`", doc: "The device of the state tags."},
	{path: "assets[].state.tag", typ: "string", note: "none", rng: "an integer tag of the device; not with the boolean tags", doc: "The enum state tag."},
	{path: "assets[].state.map", typ: "mapping of integers to states", manual: true, note: "the tag's `enum`", rng: "states `running`, `idle`, `blocked`, `down`, `setup`, `maintenance`; a value once; at least one `running`", doc: "The state each value of the enum tag means; a value not in the map is unknown time."},
	{path: "assets[].state.running", typ: "string", note: "none; required with boolean tags", rng: "a bool or integer tag of the device", doc: "Boolean form: true while the machine runs. With several bits set, the state is the first of fault, maintenance, setup, blocked, idle, running; none set is idle."},
	{path: "assets[].state.fault", typ: "string", note: "none", rng: "a bool or integer tag of the device", doc: "Boolean form: true while the machine is down (a fault)."},
	{path: "assets[].state.setup", typ: "string", note: "none", rng: "a bool or integer tag of the device", doc: "Boolean form: true during setup (changeover)."},
	{path: "assets[].state.maintenance", typ: "string", note: "none", rng: "a bool or integer tag of the device", doc: "Boolean form: true during maintenance."},
	{path: "assets[].state.blocked", typ: "string", note: "none", rng: "a bool or integer tag of the device", doc: "Boolean form: true while blocked (downstream full)."},
	{path: "assets[].state.idle", typ: "string", note: "none", rng: "a bool or integer tag of the device", doc: "Boolean form: true while idle or starved."},
	{path: "assets[].state.max_age", typ: "duration", manual: true, note: "3 poll intervals of the tag plus the device's timeout", rng: "0 (the default) or at least 1s", doc: "How long a good sample stands as evidence without a newer one; past it, time is unknown."},
	{path: "assets[].counters", typ: "mapping", note: "none (no quantities, performance or OEE)", rng: "`device` and at least two of `total`, `good`, `reject`", doc: "Part counters; any two give the third."},
	{path: "assets[].counters.device", typ: "string", note: "required", rng: "a device of `devices`", doc: "The device of the counter tags."},
	{path: "assets[].counters.total", typ: "string", note: "none", rng: "an integer tag of the device", doc: "Counts every part made."},
	{path: "assets[].counters.good", typ: "string", note: "none", rng: "an integer tag of the device", doc: "Counts the good parts."},
	{path: "assets[].counters.reject", typ: "string", note: "none", rng: "an integer tag of the device", doc: "Counts the scrap parts."},
	{path: "assets[].counters.bits", typ: "integer", manual: true, note: "the counter tags' type: 16, 32 or 64", rng: "16, 32 or 64", doc: "Where the counters roll over to 0; a counter that goes back further than a quarter of that is a reset, not negative production."},
	{path: "assets[].ideal_cycle", typ: "duration or mapping", note: "none (performance and OEE are null)", rng: "more than 0 and less than 24h; or `{device, tag, unit}`", doc: "Ideal cycle time of one part (ISO 22400 planned run time per item): a constant, or read from a tag, so that a product changeover changes it."},
	{path: "assets[].ideal_cycle.device", typ: "string", note: "required", rng: "a device of `devices`", doc: "The device of the ideal cycle tag."},
	{path: "assets[].ideal_cycle.tag", typ: "string", note: "required", rng: "a tag of the device", doc: "The tag holding the ideal cycle time (after its scale and offset); a bad sample keeps the last good value."},
	{path: "assets[].ideal_cycle.unit", typ: "string", manual: true, note: "`s`", rng: "`ms`, `s` or `min`", doc: "What one unit of the tag's value is."},
	{path: "assets[].micro_stop", typ: "duration", manual: true, note: "`0s` (none)", rng: "0 to 1h", doc: "A stop that ends with the machine running again sooner than this is a micro-stop: a speed loss in APT, not a stop."},
	{path: "assets[].schedule", typ: "mapping", note: "none (every hour is planned: 24/7)", doc: "When production is planned: shifts, breaks, non-working days."},
	{path: "assets[].schedule.timezone", typ: "string", manual: true, note: "`gateway.timezone`", rng: "IANA zone name, e.g. Asia/Seoul", doc: "The zone of the shifts and of every window of the asset; it wins over the gateway's."},
	{path: "assets[].schedule.shifts", typ: "list of mappings", note: "none (the whole day is planned)", rng: "not overlapping on the weekly clock", doc: "The shifts."},
	{path: "assets[].schedule.shifts[].name", typ: "string", note: "required", rng: "unique in the schedule; no control characters", doc: "The shift's name, in the `shift` field of its records."},
	{path: "assets[].schedule.shifts[].start", typ: "string", note: "required", rng: "`\"HH:MM\"` or `\"HH:MM:SS\"`, quoted, 00:00 to 23:59", doc: "When the shift starts, local time."},
	{path: "assets[].schedule.shifts[].end", typ: "string", note: "required", rng: "`\"HH:MM\"`, quoted, 00:00 to 24:00", doc: "When it ends; not after `start` means the next day (22:00-06:00), equal to it a 24-hour shift."},
	{path: "assets[].schedule.shifts[].breaks", typ: "list of mappings", note: "none", rng: "within the shift, not overlapping", doc: "Planned pauses: planned downtime, not planned busy time."},
	{path: "assets[].schedule.shifts[].breaks[].start", typ: "string", note: "required", rng: "`\"HH:MM\"`, quoted", doc: "When the break starts."},
	{path: "assets[].schedule.shifts[].breaks[].end", typ: "string", note: "required", rng: "`\"HH:MM\"`, quoted", doc: "When the break ends."},
	{path: "assets[].schedule.shifts[].days", typ: "list of strings", note: "every day", rng: "`mon` `tue` `wed` `thu` `fri` `sat` `sun`", doc: "The days the shift starts on; a night shift belongs to the day it starts."},
	{path: "assets[].schedule.non_working", typ: "list of strings", note: "none", rng: "dates `\"YYYY-MM-DD\"`, quoted", doc: "Days on which no shift starts (holidays); a shift that started the day before still ends."},
	{path: "assets[].windows", typ: "list of strings", manual: true, note: "`[shift, day]` with shifts, else `[day]`", rng: "`shift` (needs shifts), `day`, or a duration that divides 24h (`1m`, `15m`, `1h`...); each once", doc: "The windows a KPI record is made for; durations are aligned to the local clock."},
	{path: "assets[].live_interval", typ: "duration", manual: true, note: "`10s` with a shift or day window, else `0s`", rng: "0 (off) or at least 1s; needs a shift or day window", doc: "Period of the retained, unbuffered \"current shift so far\" message."},

	{path: "http", typ: "mapping", note: "all defaults", doc: "The status, health and metrics listener."},
	{path: "http.listen", typ: "string", def: "127.0.0.1:8088", rng: "`host:port`, or `\"\"` to disable", doc: "Address to listen on; loopback by default."},
}

// lookupField returns the table entry of a generic path.
func lookupField(path string) (field, bool) {
	for _, f := range fields {
		if f.path == path {
			return f, true
		}
	}
	return field{}, false
}

// applied returns the default the decoder applies by itself when the key at path is missing.
func applied(path string) (string, bool) {
	f, ok := lookupField(path)
	if !ok || f.manual || f.def == "" {
		return "", false
	}
	return f.def, true
}

// manualDefault returns the value of a default the decoder applies itself.
func manualDefault(path string) string {
	f, _ := lookupField(path)
	return f.def
}

// reference writes the field reference of docs/configuration.md: one table per top-level key.
func reference() string {
	var b strings.Builder
	section := ""
	for _, f := range fields {
		top, _, _ := strings.Cut(f.path, ".")
		top = strings.TrimSuffix(top, "[]")
		if top != section {
			if section != "" {
				b.WriteString("\n")
			}
			section = top
			fmt.Fprintf(&b, "### `%s`\n\n", top)
			b.WriteString("| Key | Type | Default | Allowed | Description |\n|---|---|---|---|---|\n")
		}
		def := f.note
		if def == "" || (f.def != "" && !f.manual) {
			def = "`" + f.def + "`"
		}
		rng := f.rng
		switch {
		case rng != "":
		case strings.HasSuffix(f.typ, "mapping") || strings.HasSuffix(f.typ, "mappings"):
			rng = "—"
		default:
			rng = "any"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.path, f.typ, def, rng, f.doc)
	}
	return b.String()
}
