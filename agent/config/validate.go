package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// topicLevel checks a name that becomes one MQTT topic level (MQTT 3.1.1 section 4.7: / splits
// levels, + and # are wildcards, NUL is forbidden; spaces at the ends are legal but invisible
// in every tool that shows topics). It returns how s breaks the rules, to follow s in a message.
func topicLevel(s string) string {
	if s == "" {
		return "is empty: a name that becomes a topic level needs at least one character"
	}
	if i := strings.IndexAny(s, "/+#\x00"); i >= 0 {
		return fmt.Sprintf("holds %q: a name that becomes a topic level cannot hold /, +, # or NUL", s[i:i+1])
	}
	if strings.TrimSpace(s) != s {
		return "starts or ends with a space: a name that becomes a topic level must not"
	}
	return checkText(s)
}

var topicVars = []string{"gateway", "site", "area", "line", "source", "kind"}

// checkTopicTemplate checks mqtt.topic_template. The template is not secret, but it may come
// from the environment; messages quote only the offending piece.
func checkTopicTemplate(t string) string {
	if t == "" {
		return "must not be empty"
	}
	if strings.HasPrefix(t, "$") {
		return "must not start with $ (MQTT leaves such topics to the broker)"
	}
	seen := map[string]bool{}
	for i := 0; i < len(t); i++ {
		switch c := t[i]; c {
		case '{':
			end := strings.IndexByte(t[i:], '}')
			if end < 0 {
				return "has a { without its }"
			}
			name := t[i+1 : i+end]
			ok := false
			for _, v := range topicVars {
				ok = ok || v == name
			}
			if !ok {
				return fmt.Sprintf("unknown placeholder {%s} (want {gateway}, {site}, {area}, {line}, {source} or {kind})", name)
			}
			seen[name] = true
			i += end
		case '}':
			return "has a } without its {"
		case '+', '#', 0:
			return fmt.Sprintf("holds %q: wildcards and NUL cannot be in a topic name", string(c))
		}
	}
	for _, level := range strings.Split(t, "/") {
		if level == "" {
			return "has an empty topic level (a leading, trailing or double /)"
		}
	}
	if !seen["source"] || !seen["kind"] {
		return "must contain {source} and {kind}: without them, records of different devices or kinds share one topic"
	}
	return ""
}

// checkBroker checks one broker URL. A URL with credentials is refused without being shown:
// the password would end up in logs through every message that names the broker.
func checkBroker(s scalar) string {
	const want = "want a broker URL like tcp://127.0.0.1:1883"
	u, err := url.Parse(s.text)
	if err != nil {
		if strings.Contains(s.text, "@") {
			return want
		}
		return fmt.Sprintf("%s, got %s", want, s.what())
	}
	if u.User != nil {
		return "credentials in a broker URL are not allowed: set mqtt.username and mqtt.password"
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
	case "tcps", "ws", "wss":
		return fmt.Sprintf("scheme %s:// is not supported (want tcp://, mqtt://, or ssl://, tls://, mqtts:// for TLS)", u.Scheme)
	default:
		return fmt.Sprintf("%s, got %s", want, s.what())
	}
	if u.Opaque != "" || u.Host == "" {
		return fmt.Sprintf("%s, got %s (no host)", want, s.what())
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Sprintf("%s, got %s (a broker URL has no path or query)", want, s.what())
	}
	if msg := checkHostPort(u.Host, false); msg != "" {
		return fmt.Sprintf("%s, got %s%s", want, s.what(), msg)
	}
	return ""
}

// checkHostPort checks host:port and returns a parenthesized reason to append to a message, or
// "". A listener may leave the host out (all interfaces) and use port 0 (any free port).
func checkHostPort(s string, listener bool) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		switch {
		case strings.Contains(err.Error(), "missing port"):
			return " (no port)"
		case strings.Contains(err.Error(), "too many colons"):
			return " (an IPv6 address goes in brackets: [fd00::5]:502)"
		}
		return " (not host:port)"
	}
	if host == "" && !listener {
		return " (no host)"
	}
	p, err := strconv.Atoi(port)
	lo := 1
	if listener {
		lo = 0
	}
	if err != nil || p < lo || p > 65535 || strings.HasPrefix(port, "+") {
		return fmt.Sprintf(" (port must be a number from %d to 65535)", lo)
	}
	return ""
}

// at is the position of path or of its nearest ancestor in the file.
func (d *decoder) at(path string) position {
	for {
		if p, ok := d.pos[path]; ok || path == "" {
			return p
		}
		path = parentPath(path)
	}
}

func (d *decoder) problemAt(path, format string, args ...any) {
	d.problem(d.at(path), path, format, args...)
}

// crossChecks checks what no single key can: unique names, and the rules of shared buses.
func (d *decoder) crossChecks(f *File) {
	names := map[string]int{}
	for i, dv := range f.Devices {
		path := fmt.Sprintf("devices[%d].name", i)
		if dv.Name == "" || d.failed[path] {
			continue
		}
		if dv.Name == f.Gateway.ID {
			d.problemAt(path, "%q is the gateway's id: a device needs a name of its own", dv.Name)
		} else if j, dup := names[dv.Name]; dup {
			d.problemAt(path, "%q is already the name of devices[%d]", dv.Name, j)
		} else {
			names[dv.Name] = i
		}
	}
	assets := map[string]int{}
	for i, a := range f.Assets {
		if a.Name == "" {
			continue
		}
		if j, dup := assets[a.Name]; dup {
			d.problemAt(fmt.Sprintf("assets[%d].name", i), "%q is already the name of assets[%d]", a.Name, j)
		} else {
			assets[a.Name] = i
		}
	}
	for _, bus := range f.Buses() {
		d.checkBus(f, bus)
	}
	d.checkDrainRate(f)
	d.checkTLS(f)
}

// IsTLS reports whether a broker URL asks for TLS.
func IsTLS(broker string) bool {
	scheme, _, _ := strings.Cut(broker, "://")
	return scheme == "ssl" || scheme == "tls" || scheme == "mqtts"
}

// IngestRate is the records per second the devices produce when every tag is published every
// cycle: one telemetry record per device per poll.
func (f *File) IngestRate() float64 {
	var r float64
	for _, dv := range f.Devices {
		if dv.PollInterval > 0 {
			r += float64(time.Second) / float64(dv.PollInterval)
		}
	}
	return r
}

// checkDrainRate applies the default of mqtt.max_drain_rate, which depends on the devices, and
// refuses a rate that could never drain a backlog: live records alone would use it all.
func (d *decoder) checkDrainRate(f *File) {
	ingest := f.IngestRate()
	if f.MQTT.MaxDrainRate == 0 {
		if !d.failed["mqtt.max_drain_rate"] {
			f.MQTT.MaxDrainRate = max(1000, 4*ingest)
		}
		return
	}
	if f.MQTT.MaxDrainRate <= ingest {
		d.problemAt("mqtt.max_drain_rate", "%g messages/s cannot drain a backlog: the devices produce %.4g records/s (want more, e.g. %.4g)",
			f.MQTT.MaxDrainRate, ingest, math.Ceil(2*ingest))
	}
}

// checkTLS ties the tls section to the brokers' schemes.
func (d *decoder) checkTLS(f *File) {
	tls := false
	for _, b := range f.MQTT.Brokers {
		tls = tls || IsTLS(b)
	}
	if f.MQTT.TLS != nil && !tls && !d.failed["mqtt.brokers"] {
		d.problemAt("mqtt.tls", "TLS settings need an ssl://, tls:// or mqtts:// broker; every broker here is plain tcp")
	}
}

// checkBus reports, at the later device, a unit id used twice on one connection and, on a
// serial port, a line setting that differs from the first device's: the driver asks one unit
// at a time over one line, so neither can work.
func (d *decoder) checkBus(f *File, bus Bus) {
	where := "on the same connection " + bus.Address
	if bus.Protocol == "modbus-rtu" {
		where = "on the same port " + bus.Address
	}
	units := map[int]int{}
	for _, i := range bus.Devices {
		dv := f.Devices[i]
		path := fmt.Sprintf("devices[%d].unit_id", i)
		if d.failed[path] {
			continue
		}
		if j, dup := units[dv.UnitID]; dup {
			d.problemAt(path, "unit id %d is already used by devices[%d] (%q) %s", dv.UnitID, j, f.Devices[j].Name, where)
		} else {
			units[dv.UnitID] = i
		}
	}
	if bus.Protocol != "modbus-rtu" {
		return
	}
	first := bus.Devices[0]
	a := f.Devices[first].Serial
	for _, i := range bus.Devices[1:] {
		b := f.Devices[i].Serial
		if a == nil || b == nil || d.failedUnder(fmt.Sprintf("devices[%d].serial", first)) ||
			d.failedUnder(fmt.Sprintf("devices[%d].serial", i)) {
			continue
		}
		diff := func(key string, x, y any) bool {
			if x == y {
				return false
			}
			d.problemAt(fmt.Sprintf("devices[%d].serial.%s", i, key),
				"%v differs from %v of devices[%d] (%q) %s: devices on one port share its line setting",
				y, x, first, f.Devices[first].Name, where)
			return true
		}
		_ = diff("baud", a.Baud, b.Baud) || diff("data_bits", a.DataBits, b.DataBits) ||
			diff("parity", a.Parity, b.Parity) || diff("stop_bits", a.StopBits, b.StopBits)
	}
}

func (d *decoder) failedUnder(prefix string) bool {
	for p := range d.failed {
		if p == prefix || strings.HasPrefix(p, prefix+".") {
			return true
		}
	}
	return false
}

// Bus is one connection that several devices may share: a Modbus TCP endpoint (often a gateway
// in front of RS-485 devices) or a serial port. A driver asks one device of a bus at a time.
// Every opcua device is a bus of its own: an OPC UA session serves one device's tags.
type Bus struct {
	// Protocol is the devices' protocol, "modbus-tcp", "modbus-rtu" or "opcua".
	Protocol string
	// Address is the connection as the first device writes it: host:port or a device path.
	Address string
	// Devices are indices into File.Devices, in file order.
	Devices []int
}

// Buses groups the devices by connection, in the order of each bus's first device. Two
// modbus-tcp addresses are one connection when host (ignoring case) and port are equal; two
// modbus-rtu paths when they are equal once cleaned; an opcua device is always alone, even
// with the endpoint of another. Devices whose protocol or address is invalid belong to no
// bus. The result is new on each call.
func (f *File) Buses() []Bus {
	index := map[string]int{}
	var out []Bus
	for i, dv := range f.Devices {
		key, ok := busKey(dv)
		if dv.Protocol == "opcua" {
			key += "#" + strconv.Itoa(i)
		}
		if !ok {
			continue
		}
		j, seen := index[key]
		if !seen {
			j = len(out)
			index[key] = j
			out = append(out, Bus{Protocol: dv.Protocol, Address: dv.Address})
		}
		out[j].Devices = append(out[j].Devices, i)
	}
	return out
}

func busKey(dv Device) (string, bool) {
	if dv.Address == "" {
		return "", false
	}
	switch dv.Protocol {
	case "modbus-tcp":
		host, port, err := net.SplitHostPort(dv.Address)
		p, perr := strconv.Atoi(port)
		if err != nil || perr != nil {
			return "", false
		}
		return "tcp " + net.JoinHostPort(strings.ToLower(host), strconv.Itoa(p)), true
	case "modbus-rtu":
		return "rtu " + filepath.Clean(dv.Address), true
	case "opcua":
		return "opcua " + dv.Address, true
	}
	return "", false
}
