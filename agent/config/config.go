// Package config turns Floorlink's YAML file into Go types: strict decoding (an unknown key is an
// error), defaults, and errors that name the file, line and field.
//
// It describes the file, not the parts: it imports nothing of Floorlink's, and the agent maps
// these types onto each part's options. Each part validates its own options; the agent adds the
// file position of the field a part complains about from Positions.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/goccy/go-yaml"
)

// File is one configuration file.
type File struct {
	// Path is where the file was read from; set by Load.
	Path string `yaml:"-"`

	Gateway Gateway  `yaml:"gateway"`
	MQTT    MQTT     `yaml:"mqtt"`
	Buffer  Buffer   `yaml:"buffer"`
	Devices []Device `yaml:"devices"`
}

// Gateway identifies this gateway and where it keeps its data.
type Gateway struct {
	// ID is unique per plant; it names the MQTT client, the topic subtree and every message.
	ID string `yaml:"id"`
	// Site, Area and Line place the gateway in the ISA-95 hierarchy and in topics.
	Site string `yaml:"site"`
	Area string `yaml:"area"`
	Line string `yaml:"line"`
	// DataDir holds the buffer file; default "./data". Relative paths are relative to the
	// working directory.
	DataDir string `yaml:"data_dir"`
}

// MQTT is the broker connection.
type MQTT struct {
	Brokers       []string      `yaml:"brokers"`
	ClientID      string        `yaml:"client_id"`
	Username      string        `yaml:"username"`
	Password      string        `yaml:"password"`
	TopicTemplate string        `yaml:"topic_template"`
	MaxInflight   int           `yaml:"max_inflight"`
	KeepAlive     time.Duration `yaml:"keep_alive"`
	// ReconnectMin and ReconnectMax bound the wait between connection attempts.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// ShutdownGrace bounds the wait for acknowledgements of the messages in flight at stop.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
}

// Buffer is the durable record queue.
type Buffer struct {
	// Sync is "always" (default: every commit is fsynced) or "none" (for SD-card gateways: may
	// lose the last commit on power loss).
	Sync string `yaml:"sync"`
	// CommitInterval is the least time between two commits; default 0 (commit as soon as the
	// previous commit ends).
	CommitInterval time.Duration `yaml:"commit_interval"`
}

// Device is one PLC endpoint.
type Device struct {
	Name         string        `yaml:"name"`
	Protocol     string        `yaml:"protocol"`
	Address      string        `yaml:"address"`
	UnitID       int           `yaml:"unit_id"`
	PollInterval time.Duration `yaml:"poll_interval"`
	Timeout      time.Duration `yaml:"timeout"`
	Tags         []Tag         `yaml:"tags"`
}

// Tag is one signal of a device.
type Tag struct {
	Name      string   `yaml:"name"`
	Address   string   `yaml:"address"`
	Type      string   `yaml:"type"`
	ByteOrder string   `yaml:"byte_order"`
	Scale     *float64 `yaml:"scale"`
	Offset    float64  `yaml:"offset"`
	Unit      string   `yaml:"unit"`
}

// Load reads and decodes the file at path, applies defaults and checks what the file alone can
// tell. Errors name the file and, where the decoder knows it, the line.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	return Parse(path, data)
}

// Parse decodes data as if read from path.
func Parse(path string, data []byte) (*File, error) {
	f := &File{Path: path}
	dec := yaml.NewDecoder(bytes.NewReader(data), yaml.DisallowUnknownField(), yaml.Strict())
	if err := dec.Decode(f); err != nil {
		return nil, &Error{Path: path, Err: errors.New(yaml.FormatError(err, false, true))}
	}
	f.applyDefaults()
	if err := f.check(); err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	return f, nil
}

func (f *File) applyDefaults() {
	if f.Gateway.DataDir == "" {
		f.Gateway.DataDir = "./data"
	}
	if f.Buffer.Sync == "" {
		f.Buffer.Sync = "always"
	}
	for i := range f.Devices {
		d := &f.Devices[i]
		if d.PollInterval == 0 {
			d.PollInterval = time.Second
		}
		if d.Timeout == 0 {
			d.Timeout = 2 * time.Second
		}
	}
}

func (f *File) check() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if f.Gateway.ID == "" {
		bad("gateway.id", "required")
	}
	if f.Gateway.Site == "" {
		bad("gateway.site", "required")
	}
	if f.Gateway.Area == "" {
		bad("gateway.area", "required")
	}
	if f.Gateway.Line == "" {
		bad("gateway.line", "required")
	}
	if len(f.MQTT.Brokers) == 0 {
		bad("mqtt.brokers", "at least one broker is required")
	}
	if f.Buffer.Sync != "always" && f.Buffer.Sync != "none" {
		bad("buffer.sync", "%q is not one of always, none", f.Buffer.Sync)
	}
	names := map[string]int{}
	for i, d := range f.Devices {
		p := fmt.Sprintf("devices[%d]", i)
		if d.Name == "" {
			bad(p+".name", "required")
		} else if j, dup := names[d.Name]; dup {
			bad(p+".name", "%q is already the name of devices[%d]", d.Name, j)
		} else {
			names[d.Name] = i
		}
		if d.Name == f.Gateway.ID && d.Name != "" {
			bad(p+".name", "%q is the gateway's id; a device needs a name of its own", d.Name)
		}
		if d.Protocol != "modbus-tcp" {
			bad(p+".protocol", "%q is not supported (want modbus-tcp)", d.Protocol)
		}
		if d.PollInterval < 0 {
			bad(p+".poll_interval", "must be positive")
		}
		tags := map[string]int{}
		for k, t := range d.Tags {
			tp := fmt.Sprintf("%s.tags[%d]", p, k)
			if t.Name == "" {
				bad(tp+".name", "required")
			} else if j, dup := tags[t.Name]; dup {
				bad(tp+".name", "%q is already the name of tags[%d]", t.Name, j)
			} else {
				tags[t.Name] = k
			}
		}
	}
	return errors.Join(errs...)
}

// Error is a problem with a configuration file.
type Error struct {
	Path string
	Err  error
}

func (e *Error) Error() string { return e.Path + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }
