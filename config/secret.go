package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
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

// MarshalYAML keeps the value out of `ndrbot config check` and any YAML dump.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// Reveal returns the real value; call it only where the secret is used.
func (s Secret) Reveal() string { return string(s) }

// SecretRef is one secret of a configuration: its key, its value when set
// directly (from the environment), and the file it is read from otherwise.
type SecretRef struct {
	Key   string
	Value Secret
	File  string
	// KeyFile marks a file of key material (keytab, certificate with its key)
	// rather than a Secret's X_file.
	KeyFile bool
}

// keyFiles are path fields that hold private key material without a Secret
// sibling: a Kerberos keytab, a Graph certificate with its private key.
var keyFiles = map[string]bool{"KeytabFile": true, "CertificateFile": true}

// Secrets lists every secret of cfg, found by walking its fields (a Secret and
// its X_file sibling, and the key files) so a secret added to a new section is
// covered without editing a list. Keys use the YAML names, maps their keys.
func (c Config) Secrets() []SecretRef {
	var out []SecretRef
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Map:
			keys := v.MapKeys()
			slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				walk(prefix+k.String()+".", v.MapIndex(k))
			}
		case reflect.Struct:
			t := v.Type()
			for i := range t.NumField() {
				sf := t.Field(i)
				if !sf.IsExported() {
					continue
				}
				name := strings.Split(sf.Tag.Get("mapstructure"), ",")[0]
				if name == "" {
					name = strings.ToLower(sf.Name)
				}
				f := v.Field(i)
				switch {
				case f.Type() == reflect.TypeFor[Secret]():
					ref := SecretRef{Key: prefix + name, Value: f.Interface().(Secret)}
					if file := v.FieldByName(sf.Name + "File"); file.IsValid() && file.Kind() == reflect.String {
						ref.File = file.String()
					}
					out = append(out, ref)
				case keyFiles[sf.Name] && f.Kind() == reflect.String:
					if f.String() != "" {
						out = append(out, SecretRef{Key: prefix + name, File: f.String(), KeyFile: true})
					}
				default:
					walk(prefix+name+".", f)
				}
			}
		}
	}
	walk("", reflect.ValueOf(c))
	return out
}

// LooseSecretFiles names the secret files that group or others may read: a
// warning, not an error, because an orchestrator's mounted secrets may be 0644
// inside a private volume. Files that cannot be read are left to the loader.
func (c Config) LooseSecretFiles() []string {
	var out []string
	for _, r := range c.Secrets() {
		if r.File == "" {
			continue
		}
		st, err := os.Stat(r.File)
		if err != nil || st.Mode().Perm()&0o077 == 0 {
			continue
		}
		key := r.Key
		if !r.KeyFile {
			key += "_file" // the sibling that names it
		}
		out = append(out, fmt.Sprintf("secret file %s (%s) is readable by group or others (mode %04o); chmod 600 it",
			r.File, key, st.Mode().Perm()))
	}
	return out
}
