package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// TestSecret_NeverPrinted sets the password through ${MQTT_PASSWORD} and looks for it in every
// way a File gets printed, encoded or logged.
func TestSecret_NeverPrinted(t *testing.T) {
	f, err := Load("testdata/good/full.yaml", testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := f.MQTT.Password.Reveal(); got != testSecret {
		t.Fatalf("Reveal() = %q, want the variable's value", got)
	}
	pw := f.MQTT.Password
	outputs := map[string]string{
		"fmt File":   fmt.Sprintf("%v %+v %#v %s", f, f, f, f.MQTT.Password),
		"fmt MQTT":   fmt.Sprintf("%v %+v %#v %s %q %x %X %d %10s %-8v", f.MQTT, f.MQTT, f.MQTT, pw, pw, pw, pw, pw, pw, pw),
		"fmt values": fmt.Sprint(pw, *f, []Secret{pw}, map[string]Secret{"k": pw}) + fmt.Sprintln(pw) + pw.String() + pw.GoString(),
	}
	if b, err := json.Marshal(f); err != nil {
		t.Fatal(err)
	} else {
		outputs["json"] = string(b)
	}
	if b, err := yaml.Marshal(f); err != nil {
		t.Fatal(err)
	} else {
		outputs["yaml"] = string(b)
	}
	if b, err := pw.MarshalText(); err != nil {
		t.Fatal(err)
	} else {
		outputs["text"] = string(b)
	}
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"slog json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		log := slog.New(h(&b))
		log.Info("config", "file", f, "mqtt", f.MQTT, "password", pw, slog.Any("value", *f))
		log.With("password", pw).Info("connect", slog.Group("mqtt", "password", f.MQTT.Password))
		outputs[name] = b.String()
	}
	for name, out := range outputs {
		if strings.Contains(out, testSecret) {
			t.Errorf("%s shows the secret:\n%s", name, out)
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s does not show [redacted]:\n%s", name, out)
		}
	}
}

func TestSecret_Empty(t *testing.T) {
	var s Secret
	b, _ := json.Marshal(s)
	if got := fmt.Sprintf("%v|%s|%q|%#v|%s", s, s, s, s, b); got != `||||""` {
		t.Errorf("empty secret prints %q, want nothing", got)
	}
	if !s.IsZero() || NewSecret("x").IsZero() {
		t.Error("IsZero wrong")
	}
}

// TestSecret_NotInProblems puts a secret that breaks every rule into every kind of field and
// checks that no problem shows it, even in part.
func TestSecret_NotInProblems(t *testing.T) {
	const secret = "Hunter2/+#:x%"
	opts := Options{LookupEnv: func(name string) (string, bool) { return secret, name == "S" }}
	fields := []string{
		"gateway.id", "gateway.site", "gateway.timezone", "gateway.data_dir",
		"mqtt.client_id", "mqtt.format", "mqtt.topic_template", "mqtt.max_inflight", "mqtt.keep_alive",
		"buffer.max_bytes", "buffer.sync", "http.listen",
		"device.name", "device.protocol", "device.address", "device.unit_id", "device.poll_interval",
		"tag.name", "tag.address", "tag.scale", "tag.deadband", "tag.heartbeat", "broker",
	}
	var problems int
	for _, field := range fields {
		doc := map[string]map[string]string{
			"gateway": {"id": "g", "site": "s", "area": "a", "line": "l"},
			"mqtt":    {},
			"buffer":  {},
			"http":    {},
			"device":  {"name": "d", "protocol": "modbus-tcp", "address": "h:502"},
			"tag":     {"name": "t", "address": `"40001"`, "type": "uint16"},
		}
		broker := "tcp://b:1883"
		if field == "broker" {
			broker = "${S}"
		} else {
			section, key, _ := strings.Cut(field, ".")
			doc[section][key] = "${S}"
		}
		flow := func(m map[string]string) string {
			var parts []string
			for k, v := range m {
				if !strings.HasPrefix(v, `"`) {
					v = `"` + v + `"`
				}
				parts = append(parts, k+": "+v)
			}
			return "{" + strings.Join(parts, ", ") + "}"
		}
		src := "gateway: " + flow(doc["gateway"]) + "\nmqtt:\n  brokers: [\"" + broker + "\"]\n"
		for k, v := range doc["mqtt"] {
			src += "  " + k + ": \"" + v + "\"\n"
		}
		src += "  password: ${S}\nbuffer: " + flow(doc["buffer"]) + "\nhttp: " + flow(doc["http"]) +
			"\ndevices:\n  - " + strings.TrimSuffix(flow(doc["device"]), "}") + ", tags: [" + flow(doc["tag"]) + "]}\n"
		f, err := Parse("x.yaml", []byte(src), opts)
		if f == nil {
			t.Fatalf("%s: syntax error in the test's YAML:\n%s\n%v", field, src, err)
		}
		if err == nil {
			continue
		}
		problems++
		if strings.Contains(err.Error(), "Hunter2") {
			t.Errorf("%s: a problem shows the secret:\n%v", field, err)
		}
		if !strings.Contains(err.Error(), "${S}") {
			t.Errorf("%s: the problem does not name the variable:\n%v", field, err)
		}
	}
	if problems < len(fields)-4 { // data_dir, client_id, tag name and address take any text
		t.Errorf("only %d of %d placements were problems; the test no longer exercises the messages", problems, len(fields))
	}

	// And the fixture with the password in wrong places among other errors.
	_, err := Load("testdata/bad/secret_in_errors.yaml", testOptions())
	if err == nil || strings.Contains(err.Error(), testSecret) {
		t.Errorf("secret_in_errors: got %v, want problems without the secret", err)
	}
}
