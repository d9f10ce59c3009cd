package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// redacted is what a set Secret shows instead of its value.
const redacted = "[redacted]"

// Secret is a string that never prints itself. Every encoder the bot uses (fmt, slog,
// encoding/json, YAML, anything going through encoding.TextMarshaler) sees
// "[redacted]", or "" when the secret is unset so an operator can tell the two apart.
type Secret string

// String redacts the value so a Secret cannot leak through fmt or slog.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// Format covers every fmt verb: without it %d or %x print the raw string through
// fmt's fallback paths, and %#v bypasses String.
func (s Secret) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
}

// LogValue covers slog handlers that do not call String (JSON handler on a struct).
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON keeps the value out of JSON (audit events, API dumps).
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText covers encoders that only know encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalYAML keeps the value out of `bot config check` and any YAML dump.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// Reveal returns the real value; call it only where the secret is used.
func (s Secret) Reveal() string { return string(s) }
