package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The values of the OPC UA keys. They repeat what drivers/opcua accepts (config imports nothing
// of ours); the driver checks again, so a drift shows up as a problem, never as a wrong value.
var (
	opcuaPolicies = []string{"None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"}
	opcuaModes    = []string{"None", "Sign", "SignAndEncrypt"}
	opcuaAuths    = []string{"anonymous", "username", "certificate"}
	opcuaAcquire  = []string{"poll", "subscribe"}
)

// opcuaKeys are the device keys only opcua devices have. On another protocol each must be
// absent or hold its zero value, as a File written back holds them.
var opcuaKeys = []string{"security_policy", "security_mode", "auth", "username", "password", "password_file",
	"user_cert_file", "user_key_file", "pki_dir", "trust_on_first_use", "mode", "sampling_interval",
	"publishing_interval", "queue_size"}

// timestamp decodes devices[].timestamp, whose default and values depend on the protocol:
// OPC UA stamps values in UTC by the spec, so its source time is the default there, and only
// OPC UA has a server time.
func (d *decoder) timestamp(dv *Device, m *mapping) {
	allowed := []string{"gateway", "source"}
	dv.Timestamp = "gateway"
	if dv.Protocol == "opcua" {
		allowed = append(allowed, "server")
		dv.Timestamp = "source"
	}
	if !m.has("timestamp") {
		return
	}
	s, ok := m.strScalar("timestamp")
	switch {
	case !ok:
	case s.text == "server" && dv.Protocol != "opcua":
		if dv.Protocol != "" { // an unknown protocol is reported once, at protocol
			m.bad("timestamp", "server is only for opcua devices (want gateway or source)")
		}
	case !slices.Contains(allowed, s.text):
		m.bad("timestamp", "unknown timestamp %s (want %s)", s.what(), orList(allowed))
	default:
		dv.Timestamp = s.text
	}
}

// opcua decodes the OPC UA keys of a device. On other protocols it only checks that they are
// unset. The cross-field rules (security_mode None with a policy, auth username without a
// username, a user certificate without its key) are the driver's: the agent places its
// complaints, so that each is reported once.
func (d *decoder) opcua(dv *Device, m *mapping, g *Gateway) {
	if dv.Protocol != "opcua" {
		if dv.Protocol == "" {
			return // unknown protocol: reported once, at protocol
		}
		for _, key := range opcuaKeys {
			if m.has(key) && !d.zeroValue(m, key) {
				m.bad(key, "only for opcua devices (this one is %s)", dv.Protocol)
			}
		}
		return
	}
	enum := func(key, noun string, dst *string, def string, allowed []string) {
		*dst = def
		if !m.has(key) {
			return
		}
		s, ok := m.strScalar(key)
		switch {
		case !ok:
		case s.text == "": // the default, as a File written back with no mode holds it
		case !slices.Contains(allowed, s.text):
			m.bad(key, "unknown %s %s (want %s)", noun, s.what(), orList(allowed))
		default:
			*dst = s.text
		}
	}
	enum("security_policy", "security policy", &dv.SecurityPolicy, "None", opcuaPolicies)
	enum("security_mode", "security mode", &dv.SecurityMode, "", opcuaModes)
	enum("auth", "auth", &dv.Auth, "anonymous", opcuaAuths)
	enum("mode", "mode", &dv.Mode, "poll", opcuaAcquire)

	if m.str("username", &dv.Username) && dv.Username != "" {
		if msg := checkText(dv.Username); msg != "" {
			m.bad("username", "%s", msg)
			dv.Username = ""
		}
	}
	d.secret(m, &dv.Password, &dv.PasswordFile)
	d.readable(m, "user_cert_file", &dv.UserCertFile)
	d.readable(m, "user_key_file", &dv.UserKeyFile)

	dv.PKIDir = filepath.Join(g.DataDir, "pki")
	var dir string
	if m.str("pki_dir", &dir) && dir != "" {
		dv.PKIDir = d.abs(dir)
	}
	if g.DataDir == "" && dir == "" {
		dv.PKIDir = "" // data_dir has a problem of its own
	}
	if s, ok := m.scalar("trust_on_first_use", "want true or false"); ok && m.has("trust_on_first_use") {
		switch s.text {
		case "true":
			dv.TrustOnFirstUse = true
		case "false":
		default:
			m.bad("trust_on_first_use", "want true or false, got %s", s.what())
		}
	}

	const wantInterval = "want at least 10ms"
	atLeast10ms := func(v time.Duration) bool { return v >= 10*time.Millisecond }
	dv.SamplingInterval, dv.PublishingInterval = dv.PollInterval, 2*dv.PollInterval
	if m.has("sampling_interval") {
		m.duration("sampling_interval", &dv.SamplingInterval, wantInterval, atLeast10ms)
	}
	if m.has("publishing_interval") {
		m.duration("publishing_interval", &dv.PublishingInterval, wantInterval, atLeast10ms)
	}
	dv.QueueSize = 1
	if m.has("queue_size") {
		m.integer("queue_size", &dv.QueueSize, 1, 1000, "want 1 to 1000")
	}
}

// zeroValue reports whether key holds the zero value of its field: "", 0, 0s or false. Any
// other value, or one that is not a scalar, is not.
func (d *decoder) zeroValue(m *mapping, key string) bool {
	n := m.value(key)
	s, ok := d.scalarOf(joinPath(m.path, key), n, "want a value")
	if !ok {
		return true // reported by scalarOf
	}
	switch strings.TrimSpace(s.text) {
	case "", "0", "0s", "false":
		return true
	}
	return false
}

// readable decodes key as a path relative to the file's directory and checks that the file
// can be read now, so that a wrong path is a problem at validate time, not a reconnect loop
// on the gateway.
func (d *decoder) readable(m *mapping, key string, dst *string) {
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

// endpointAddress checks the address of an opcua device, an endpoint URL
// opc.tcp://host:port[/path]. A URL with credentials is refused without being shown: the URL
// appears in logs and events.
func endpointAddress(m *mapping, s scalar) bool {
	if u, err := url.Parse(s.text); err == nil && u.User != nil {
		m.bad("address", "credentials in an endpoint URL are not allowed: set auth, username and password")
		return false
	}
	if msg := checkEndpoint(s.text); msg != "" {
		m.bad("address", "want an endpoint URL like opc.tcp://192.168.0.20:4840 on opcua, got %s%s", s.what(), msg)
		return false
	}
	return true
}

// checkEndpoint checks an OPC UA endpoint URL and returns a parenthesized reason to append
// to a message, or "".
func checkEndpoint(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return " (not a URL)"
	case u.Scheme != "opc.tcp":
		if u.Scheme == "" {
			return " (no opc.tcp:// scheme)"
		}
		return fmt.Sprintf(" (scheme %s://: want opc.tcp://)", u.Scheme)
	case u.Host == "":
		return " (no host)"
	case u.RawQuery != "" || u.Fragment != "":
		return " (an endpoint URL has no query)"
	}
	if u.Port() == "" {
		return " (no port: OPC UA servers usually listen on 4840)"
	}
	return checkHostPort(u.Host, false)
}
