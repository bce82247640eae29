package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // gateways often run minimal images without /usr/share/zoneinfo

	"github.com/goccy/go-yaml/ast"
)

// childKeys lists the keys of the mapping at a generic path, from the field table, in table
// order (which is the order of the reference).
func childKeys(path string) []string {
	prefix := path + "."
	if path == "" {
		prefix = ""
	}
	var keys []string
	for _, f := range fields {
		rest, ok := strings.CutPrefix(f.path, prefix)
		if ok && rest != "" && !strings.ContainsAny(rest, ".[") {
			keys = append(keys, rest)
		}
	}
	return keys
}

// file decodes the root mapping. Sections are decoded in an order that lets later ones use
// earlier ones (devices inherit the gateway's area and line); problems are sorted afterwards.
func (d *decoder) file(f *File, root ast.Node) {
	m := d.mapping("", root, d.pos[""], childKeys(""))
	section := func(key, missing string, decode func(*mapping)) {
		sub := m.sub(key, childKeys(key))
		if sub.present {
			decode(sub)
			return
		}
		if missing != "" && !m.failed(key) {
			m.bad(key, "missing (want %s)", missing)
		}
		d.quietly(func() { decode(sub) })
	}
	section("gateway", "a mapping with id, site, area and line", func(m *mapping) { d.gateway(&f.Gateway, m) })
	section("mqtt", "a mapping with at least brokers", func(m *mapping) { d.mqtt(&f.MQTT, m, &f.Gateway) })
	section("buffer", "", func(m *mapping) { d.buffer(&f.Buffer, m) })
	section("http", "", func(m *mapping) { d.http(&f.HTTP, m) })
	for i, n := range m.list("devices") {
		path := fmt.Sprintf("devices[%d]", i)
		f.Devices = append(f.Devices, Device{})
		d.item(path, n, childKeys("devices[]"), func(m *mapping) { d.device(&f.Devices[i], m, &f.Gateway) })
	}
	d.assets(f, m.list("assets")) // after the devices, whose tags assets name
	d.crossChecks(f)
}

// item decodes a list item as a mapping with decode. An item that is not a mapping is reported
// once: its keys are then decoded quietly, for their defaults, not reported one by one as
// missing.
func (d *decoder) item(path string, n ast.Node, keys []string, decode func(*mapping)) {
	at := d.pos[path] // recorded by mapping.list
	if unwrap(n) == nil {
		d.problem(at, path, "want a mapping, got nothing")
	}
	m := d.mapping(path, unwrap(n), at, keys)
	if m.present {
		decode(m)
	} else {
		d.quietly(func() { decode(m) })
	}
}

func (d *decoder) gateway(g *Gateway, m *mapping) {
	m.level("id", &g.ID, true)
	m.level("site", &g.Site, true)
	m.level("area", &g.Area, true)
	m.level("line", &g.Line, true)
	var dir string
	if m.str("data_dir", &dir) {
		if dir == "" {
			m.bad("data_dir", "want a directory, got \"\"")
		} else {
			g.DataDir = d.abs(dir)
		}
	}
	g.Timezone, g.Location = "UTC", time.UTC
	if s, ok := m.strScalar("timezone"); ok {
		tz := s.text
		switch loc, err := time.LoadLocation(tz); {
		case tz == "" || tz == "Local":
			// LoadLocation takes both, but "" is UTC in disguise and Local is whatever the
			// gateway's image says: shift boundaries must not move with an OS update.
			m.bad("timezone", "want an IANA zone name like Asia/Seoul or UTC, got %s", s.what())
		case err != nil:
			m.bad("timezone", "unknown time zone %s (want an IANA zone name like Asia/Seoul or UTC)", s.what())
		default:
			g.Timezone, g.Location = tz, loc
		}
	}
}

// abs resolves a path from the file against the file's directory.
func (d *decoder) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(d.dir, p)
}

func (d *decoder) mqtt(q *MQTT, m *mapping, g *Gateway) {
	items := m.list("brokers")
	if len(items) == 0 && !m.failed("brokers") {
		if m.has("brokers") {
			m.bad("brokers", "want at least one broker like tcp://127.0.0.1:1883")
		} else {
			m.bad("brokers", "required: at least one broker like tcp://127.0.0.1:1883")
		}
	}
	for i, n := range items {
		path := fmt.Sprintf("%s.brokers[%d]", m.path, i)
		q.Brokers = append(q.Brokers, "")
		s, ok := d.scalarOf(path, unwrap(n), "want a broker URL like tcp://127.0.0.1:1883")
		if !ok {
			continue
		}
		if msg := checkBroker(s); msg != "" {
			d.problem(s.pos, path, "%s", msg)
			continue
		}
		q.Brokers[i] = s.text
	}

	if m.str("client_id", &q.ClientID) && q.ClientID != "" {
		if msg := checkText(q.ClientID); msg != "" {
			m.bad("client_id", "%s", msg)
		}
	}
	if q.ClientID == "" {
		q.ClientID = g.ID
	}
	m.str("username", &q.Username)
	d.password(q, m)

	if s, ok := m.strScalar("format"); ok {
		switch s.text {
		case "json", "sparkplug":
			q.Format = s.text
		default:
			m.bad("format", "unknown format %s (want json or sparkplug)", s.what())
		}
	}
	if s, ok := m.strScalar("topic_template"); ok {
		if msg := checkTopicTemplate(s.text); msg != "" {
			if s.expanded {
				msg = s.what() + ": " + msg
			}
			m.bad("topic_template", "%s", msg)
		} else {
			q.TopicTemplate = s.text
		}
	}
	m.integer("max_inflight", &q.MaxInflight, 1, 65535, "")
	m.duration("keep_alive", &q.KeepAlive, "want 1s to 18h12m15s in whole seconds (MQTT counts keep-alive in seconds, up to 65535)",
		func(v time.Duration) bool { return v >= time.Second && v <= 65535*time.Second && v%time.Second == 0 })
	m.duration("connect_timeout", &q.ConnectTimeout, "want more than 0", positive)
	m.duration("reconnect_min", &q.ReconnectMin, "want more than 0", positive)
	if m.duration("reconnect_max", &q.ReconnectMax, "want more than 0", positive) &&
		!m.failed("reconnect_min") && q.ReconnectMax < q.ReconnectMin {
		m.bad("reconnect_max", "want at least reconnect_min (%v), got %v", q.ReconnectMin, q.ReconnectMax)
		q.ReconnectMax = q.ReconnectMin
	}
	m.duration("shutdown_grace", &q.ShutdownGrace, "want more than 0", positive)
	m.duration("stats_interval", &q.StatsInterval, "want 0 (off) or at least 1s",
		func(v time.Duration) bool { return v == 0 || v >= time.Second })
	if m.has("max_drain_rate") && m.number("max_drain_rate", &q.MaxDrainRate) && q.MaxDrainRate <= 0 {
		m.bad("max_drain_rate", "want more than 0 messages/s, got %g", q.MaxDrainRate)
		q.MaxDrainRate = 0
	}
	if s, ok := m.scalar("max_message_bytes", wantSize); ok {
		v, ok := parseSize(s.text)
		switch {
		case !ok:
			m.bad("max_message_bytes", "%s, got %s", wantSize, s.what())
		case v < 1<<10 || v > 256<<20:
			m.bad("max_message_bytes", "want 1KiB to 256MiB, got %s", s.what())
		default:
			q.MaxMessageBytes = v
		}
	}
	for key, dst := range map[string]*string{"group_id": &q.GroupID, "edge_node_id": &q.EdgeNodeID, "primary_host_id": &q.PrimaryHostID} {
		// "" is none, as a written-out File has it.
		if s, ok := m.strScalar(key); ok && s.text != "" && m.isLevel(key, s) {
			*dst = s.text
		}
	}
	m.duration("hold_back", &q.HoldBack, "want more than 0", positive)
	if q.Format == "sparkplug" {
		if q.GroupID == "" && !m.failed("group_id") {
			m.bad("group_id", "required with format: sparkplug (the Sparkplug group id)")
		}
		if q.EdgeNodeID == "" {
			q.EdgeNodeID = g.ID
		}
	}
	if t := m.sub("tls", childKeys("mqtt.tls")); t.present {
		q.TLS = &TLS{}
		d.tls(q.TLS, t)
	}
}

// tls reads the TLS section; the files must be readable now, so that a wrong path is a problem
// at validate time, not a reconnect loop on the gateway.
func (d *decoder) tls(t *TLS, m *mapping) {
	file := func(key string, dst *string) {
		var name string
		if !m.str(key, &name) || name == "" {
			return
		}
		*dst = d.abs(name)
		if _, err := d.opts.ReadFile(*dst); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			m.bad(key, "read %q: %v", name, err)
		}
	}
	file("ca_file", &t.CAFile)
	file("cert_file", &t.CertFile)
	file("key_file", &t.KeyFile)
	if (t.CertFile == "") != (t.KeyFile == "") && !m.failed("cert_file") && !m.failed("key_file") {
		missing := "key_file"
		if t.CertFile == "" {
			missing = "cert_file"
		}
		m.bad(missing, "cert_file and key_file go together: set both or neither")
	}
	m.str("server_name", &t.ServerName)
	if s, ok := m.scalar("insecure_skip_verify", "want true or false"); ok {
		switch s.text {
		case "true":
			t.InsecureSkipVerify = true
		case "false":
			t.InsecureSkipVerify = false
		default:
			m.bad("insecure_skip_verify", "want true or false, got %s", s.what())
		}
	}
}

func positive(v time.Duration) bool { return v > 0 }

// password reads the secret from password or password_file. Nothing here may put the secret,
// or any piece of it, in a message.
func (d *decoder) password(q *MQTT, m *mapping) {
	d.secret(m, &q.Password, &q.PasswordFile)
}

// secret reads a password from the keys password or password_file of m into pw, and the
// absolute name of the file into file.
func (d *decoder) secret(m *mapping, pw *Secret, file *string) {
	hasPW, hasFile := m.has("password"), m.has("password_file")
	if hasPW && hasFile {
		later := "password_file"
		if p, f := m.posOf("password"), m.posOf("password_file"); p.line > f.line || p.line == f.line && p.col > f.col {
			later = "password"
		}
		m.bad(later, "password and password_file are mutually exclusive: keep one")
		return
	}
	if hasPW {
		s, ok := m.scalar("password", "want a string")
		if ok {
			// Any scalar is taken as written: the quoting rules of str would have to show the
			// value to explain themselves.
			*pw = NewSecret(s.text)
		}
		return
	}
	var name string
	if !m.str("password_file", &name) {
		return
	}
	if name == "" {
		m.bad("password_file", "want a file name, got \"\"")
		return
	}
	*file = d.abs(name)
	b, err := d.opts.ReadFile(*file)
	if err != nil {
		// The message names the file as written: the absolute path is in the PathError too,
		// but it differs from machine to machine.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		m.bad("password_file", "read password file %q: %v", name, err)
		return
	}
	s := strings.TrimSuffix(string(b), "\n")
	if len(s) < len(b) {
		s = strings.TrimSuffix(s, "\r")
	}
	*pw = NewSecret(s)
}

func (d *decoder) buffer(b *Buffer, m *mapping) {
	if s, ok := m.scalar("max_bytes", wantSize); ok {
		v, ok := parseSize(s.text)
		maxBytes := int64(0)
		if d.intSize == 32 {
			maxBytes = 512 << 20
		}
		switch {
		case !ok:
			m.bad("max_bytes", "%s, got %s", wantSize, s.what())
		case v < 1<<20:
			m.bad("max_bytes", "want at least 1MiB, got %s", s.what())
		case maxBytes > 0 && v > maxBytes:
			m.bad("max_bytes", "want at most %s on a 32-bit gateway (it cannot map a larger file), got %s", formatSize(maxBytes), s.what())
		default:
			b.MaxBytes = v
		}
	}
	m.duration("max_age", &b.MaxAge, "want more than 0", positive)
	m.oneOf("sync", "sync mode", &b.Sync, "always", "none")
	m.duration("commit_interval", &b.CommitInterval, "want 0 to 1m",
		func(v time.Duration) bool { return v <= time.Minute })
}

func (d *decoder) http(h *HTTP, m *mapping) {
	s, ok := m.strScalar("listen")
	if !ok {
		return
	}
	if s.text != "" {
		if msg := checkHostPort(s.text, true); msg != "" {
			m.bad("listen", "want host:port like 127.0.0.1:8088, or \"\" to disable, got %s%s", s.what(), msg)
			return
		}
	}
	h.Listen = s.text
}

var protocols = []string{"modbus-tcp", "modbus-rtu", "opcua"}

func (d *decoder) device(dv *Device, m *mapping, g *Gateway) {
	m.level("name", &dv.Name, true)
	if !m.oneOf("protocol", "protocol", &dv.Protocol, protocols...) && !m.has("protocol") && !m.failed("protocol") {
		m.bad("protocol", "required (want %s)", orList(protocols))
	}
	d.deviceAddress(dv, m)

	switch dv.Protocol {
	case "modbus-tcp":
		if m.has("unit_id") {
			m.integer("unit_id", &dv.UnitID, 0, 255, "want a unit id from 0 to 255 on modbus-tcp")
		} else {
			dv.UnitID, _ = parseIntDefault(manualDefault("devices[].unit_id"))
		}
		if m.has("serial") {
			m.bad("serial", "only for modbus-rtu: a modbus-tcp device has no serial line")
		}
	case "modbus-rtu":
		if m.has("unit_id") {
			m.integer("unit_id", &dv.UnitID, 1, 247, "want a unit id from 1 to 247 on modbus-rtu")
		} else if !m.failed("unit_id") {
			m.bad("unit_id", "required on modbus-rtu (want 1 to 247)")
		}
		dv.Serial = &Serial{}
		d.serial(dv.Serial, m.sub("serial", childKeys("devices[].serial")))
	case "opcua":
		var unit int
		if m.integer("unit_id", &unit, 0, 255, "") && unit != 0 {
			m.bad("unit_id", "only for modbus: an opcua device is addressed by its endpoint URL")
		}
		if m.has("serial") {
			m.bad("serial", "only for modbus-rtu: an opcua device has no serial line")
		}
	default:
		m.integer("unit_id", &dv.UnitID, 0, 255, "")
	}

	m.duration("poll_interval", &dv.PollInterval, "want at least 10ms",
		func(v time.Duration) bool { return v >= 10*time.Millisecond })
	m.duration("timeout", &dv.Timeout, "want more than 0 and less than 60s",
		func(v time.Duration) bool { return v > 0 && v < time.Minute })
	d.timestamp(dv, m)
	m.integer("retries", &dv.Retries, 0, 10, "want 0 to 10")
	m.duration("request_delay", &dv.RequestDelay, "want 0 to 10s", func(v time.Duration) bool { return v <= 10*time.Second })
	m.integer("max_registers", &dv.MaxRegisters, 1, 125, "want 1 to 125 (the protocol's limit)")
	m.integer("max_gap", &dv.MaxGap, 0, 124, "want 0 to 124")
	m.integer("address_base", &dv.AddressBase, 0, 1, "want 0 or 1")
	d.opcua(dv, m, g)
	dv.Area, dv.Line = g.Area, g.Line
	for _, key := range []string{"area", "line"} {
		dst := &dv.Area
		if key == "line" {
			dst = &dv.Line
		}
		// "" keeps the gateway's, as the reference's example `area: ""` shows.
		if s, ok := m.strScalar(key); ok && s.text != "" && m.isLevel(key, s) {
			*dst = s.text
		}
	}

	items := m.list("tags")
	if len(items) == 0 && !m.failed("tags") {
		m.bad("tags", "want at least one tag")
	}
	names := map[string]int{}
	for k, n := range items {
		path := fmt.Sprintf("%s.tags[%d]", m.path, k)
		dv.Tags = append(dv.Tags, Tag{})
		t := &dv.Tags[k]
		d.item(path, n, childKeys("devices[].tags[]"), func(tm *mapping) {
			d.tag(t, tm, dv.Protocol)
			if t.Name != "" {
				if j, dup := names[t.Name]; dup {
					tm.bad("name", "%q is already the name of %s.tags[%d]", t.Name, m.path, j)
				} else {
					names[t.Name] = k
				}
			}
			poll := dv.PollInterval
			if t.PollInterval > 0 {
				poll = t.PollInterval
			}
			if t.Heartbeat > 0 && t.Heartbeat < poll && !m.failed("poll_interval") {
				tm.bad("heartbeat", "want 0 (none) or at least the tag's poll interval (%v), got %v", poll, t.Heartbeat)
			}
		})
	}
}

func parseIntDefault(s string) (int, bool) {
	v, ok := parseInt(s)
	return int(v), ok
}

func (d *decoder) deviceAddress(dv *Device, m *mapping) {
	s, ok := m.strScalar("address")
	switch {
	case !ok:
		if !m.has("address") && !m.failed("address") {
			m.bad("address", "required (host:port for modbus-tcp, a serial device path for modbus-rtu, an endpoint URL for opcua)")
		}
		return
	case s.text == "":
		m.bad("address", "must not be empty (host:port for modbus-tcp, a serial device path for modbus-rtu, an endpoint URL for opcua)")
		return
	}
	switch dv.Protocol {
	case "modbus-tcp":
		if msg := checkHostPort(s.text, false); msg != "" {
			m.bad("address", "want host:port like 192.168.0.10:502 on modbus-tcp, got %s%s", s.what(), msg)
			return
		}
	case "modbus-rtu":
		if !strings.HasPrefix(s.text, "/") {
			m.bad("address", "want a serial device path like /dev/ttyUSB0 on modbus-rtu, got %s", s.what())
			return
		}
	case "opcua":
		if !endpointAddress(m, s) {
			return
		}
	}
	dv.Address = s.text
}

var bauds = []int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200}

func (d *decoder) serial(s *Serial, m *mapping) {
	const wantBaud = "want one of 1200, 2400, 4800, 9600, 19200, 38400, 57600 or 115200"
	var baud int
	if m.integer("baud", &baud, 0, 1<<31-1, wantBaud) {
		if slices.Contains(bauds, baud) {
			s.Baud = baud
		} else {
			m.bad("baud", "%s, got %d", wantBaud, baud)
		}
	}
	var bits int
	if m.integer("data_bits", &bits, 7, 8, "want 7 or 8") {
		s.DataBits = bits
	}
	m.oneOf("parity", "parity", &s.Parity, "none", "even", "odd")
	if m.integer("stop_bits", &bits, 1, 2, "want 1 or 2") {
		s.StopBits = bits
	}
}

func (d *decoder) tag(t *Tag, m *mapping, protocol string) {
	if s, ok := m.strScalar("name"); ok {
		switch msg := checkText(s.text); {
		case s.text == "":
			m.bad("name", "must not be empty")
		case len(s.text) > 255:
			m.bad("name", "want at most 255 bytes, got %d", len(s.text))
		case msg != "":
			m.bad("name", "%s %s", s.what(), msg)
		default:
			t.Name = s.text
		}
	} else if !m.has("name") && !m.failed("name") {
		m.bad("name", "required")
	}
	d.tagAddress(t, m)
	if s, ok := m.strScalar("type"); ok {
		if s.text == "" {
			m.bad("type", "must not be empty")
		} else {
			t.Type = s.text
		}
	} else if protocol == "opcua" && !m.has("type") && !m.failed("type") {
		t.Type = "auto" // the node's own data type
	} else if !m.has("type") && !m.failed("type") {
		m.bad("type", "required (the driver's types: bool, int16, uint16, int32, uint32, float32)")
	}
	m.str("byte_order", &t.ByteOrder)
	if m.number("scale", &t.Scale) && t.Scale == 0 {
		m.bad("scale", "must not be 0 (it would turn every value into the offset)")
		t.Scale = 1
	}
	m.number("offset", &t.Offset)
	if m.str("unit", &t.Unit) {
		if msg := checkText(t.Unit); msg != "" {
			m.bad("unit", "%s", msg)
			t.Unit = ""
		}
	}
	d.deadband(t, m)
	m.duration("heartbeat", &t.Heartbeat, "", nil)
	// Zero means unset for length and poll_interval, as for heartbeat.
	if m.has("length") {
		m.integer("length", &t.Length, 0, 123, "want 1 to 123 registers")
	}
	switch {
	case protocol == "opcua":
		// OPC UA strings carry their length; the driver refuses a length.
	case t.Type == "string" && t.Length == 0 && !m.failed("length"):
		m.bad("length", "required for a string tag: its length in registers (two characters each)")
	case t.Type != "string" && t.Type != "" && t.Length != 0:
		m.bad("length", "only for string tags (this one is %s)", t.Type)
	}
	if m.has("poll_interval") {
		m.duration("poll_interval", &t.PollInterval, "want 0 (the device's) or at least 10ms",
			func(v time.Duration) bool { return v == 0 || v >= 10*time.Millisecond })
	}
	d.enum(t, m)
}

// enum reads a map of integer values to names.
func (d *decoder) enum(t *Tag, m *mapping) {
	if !m.has("enum") {
		return
	}
	em := m.sub("enum", nil)
	if !em.present {
		return
	}
	t.Enum = map[int64]string{}
	for key, mv := range em.entries {
		path := joinPath(em.path, key)
		n, err := strconv.ParseInt(key, 10, 64)
		if err != nil {
			d.problem(nodePos(mv.Key), path, "want an integer value as the key, got %q", key)
			continue
		}
		s, ok := d.scalarOf(path, unwrap(mv.Value), "want a name")
		if !ok {
			continue
		}
		if s.text == "" || checkText(s.text) != "" {
			d.problem(s.pos, path, "want a name without control characters, got %s", s.what())
			continue
		}
		t.Enum[n] = s.text
	}
}

// tagAddress takes an unquoted decimal number as the address it spells (40001), but refuses
// forms that YAML turns into another number: Modbus addresses live in their digits, and
// 00001 (a coil) read as the number 1 is a different table.
func (d *decoder) tagAddress(t *Tag, m *mapping) {
	s, ok := m.scalar("address", "want an address string like \"40001\"")
	if !ok {
		if !m.has("address") && !m.failed("address") {
			m.bad("address", "required")
		}
		return
	}
	switch v := s.node.(type) {
	case *ast.IntegerNode:
		switch {
		case isDecimalInt(v):
		case strings.Trim(s.raw, "0123456789") == "":
			m.bad("address", "write \"%s\" in quotes: YAML reads an unquoted %s as the number %v, and the leading zeros that select the register table are lost", s.raw, s.raw, v.Value)
			return
		default:
			m.bad("address", "write \"%s\" in quotes: YAML reads an unquoted %s as the number %v", s.raw, s.raw, v.Value)
			return
		}
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		m.bad("address", "write \"%s\" in quotes: an unquoted %s is a number to YAML (40001.10 would become 40001.1)", s.raw, s.raw)
		return
	case *ast.BoolNode:
		m.bad("address", "want an address like \"40001\", got a boolean")
		return
	}
	if strings.TrimSpace(s.text) == "" {
		m.bad("address", "must not be empty")
		return
	}
	t.Address = s.text
}

const wantDeadband = "want a number at least 0 or a percentage like \"2%\""

func (d *decoder) deadband(t *Tag, m *mapping) {
	s, ok := m.scalar("deadband", wantDeadband)
	if !ok {
		return
	}
	text := strings.TrimSpace(s.text)
	if p, isPct := strings.CutSuffix(text, "%"); isPct {
		v, ok := parseFloat(strings.TrimSpace(p))
		if !ok || !isFinite(v) || v < 0 || v > 100 {
			m.bad("deadband", "want a percentage from 0%% to 100%%, got %s", s.what())
			return
		}
		t.Deadband = Deadband{Value: v, Percent: true}
		return
	}
	v, ok := parseFloat(text)
	switch {
	case !ok:
		m.bad("deadband", "%s, got %s", wantDeadband, s.what())
	case !isFinite(v) || v < 0:
		m.bad("deadband", "want a finite number at least 0, got %s", s.what())
	default:
		t.Deadband = Deadband{Value: v}
	}
}
