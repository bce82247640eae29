package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// redacted stands for a secret's value wherever a Secret is printed or encoded.
const redacted = "[redacted]"

// Secret is a value that must not leak: a password from ${VAR}, a *_file or the file itself.
// Every way of printing or encoding it (fmt with any verb, encoding/json, encoding.TextMarshaler,
// YAML, log/slog) gives "[redacted]", or "" when the secret is empty so that "not set" stays
// visible. Only Reveal gives the value; call it where the value is handed to the library that
// needs it, and nowhere else.
//
// The value sits in an unexported field of a struct (not a named string), so reflection-based
// printers that skip methods cannot reach it either.
type Secret struct {
	value string
}

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{value: s} }

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.value == "" }

func (s Secret) shown() string {
	if s.value == "" {
		return ""
	}
	return redacted
}

// String returns "[redacted]", or "" for an empty secret.
func (s Secret) String() string { return s.shown() }

// GoString returns "[redacted]", or "" for an empty secret.
func (s Secret) GoString() string { return s.shown() }

// Format writes "[redacted]" (or "" for an empty secret) whatever the verb and flags, so that
// %x or %q cannot print the value either.
func (s Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.shown()) }

// MarshalText returns "[redacted]", or "" for an empty secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.shown()), nil }

// MarshalJSON returns the JSON string "[redacted]", or "" for an empty secret.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.shown()) }

// MarshalYAML returns "[redacted]", or "" for an empty secret. Its signature suits both
// goccy/go-yaml and gopkg.in/yaml.v3.
func (s Secret) MarshalYAML() (any, error) { return s.shown(), nil }

// LogValue returns "[redacted]", or "" for an empty secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.shown()) }
