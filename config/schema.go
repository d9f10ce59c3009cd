package config

import (
	"fmt"
	"github.com/ndrbot/ndrbot/internal/suggest"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// envPrefix starts every variable the bot reads for its configuration.
const envPrefix = "NDRBOT_"

// envConfigFile names the config file when --config is not given (containers).
const envConfigFile = "NDRBOT_CONFIG"

type shape int

const (
	leafShape   shape = iota // a value: string, bool, number, duration, []string
	structShape              // fixed keys
	mapShape                 // free-form entry names (targets), all of one schema
)

// schema is the shape of Config as the loader sees it, derived from the Go types so
// that a new section needs no loader code: the file checker, the env mapping, the
// defaults and the printer all walk it.
type schema struct {
	shape  shape
	typ    reflect.Type
	fields []*schemaField // structShape, in declaration order
	elem   *schema        // mapShape

	// Leaf attributes, from the field's tags.
	isPath  bool
	aliases []string
}

type schemaField struct {
	key    string
	index  []int // reflect field index in the struct
	schema *schema
}

var durationType = reflect.TypeFor[time.Duration]()

// buildSchema fails on a type the loader cannot read from YAML or env, so that a
// section added with, say, a []struct field is caught by the package's tests rather
// than silently ignored.
func buildSchema(t reflect.Type, where string) (*schema, error) {
	switch {
	case t == durationType:
		return &schema{shape: leafShape, typ: t}, nil
	case t.Kind() == reflect.Struct:
		s := &schema{shape: structShape, typ: t}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			key, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if key == "-" {
				continue
			}
			if key == "" {
				return nil, fmt.Errorf("config: %s.%s has no mapstructure key", where, f.Name)
			}
			child, err := buildSchema(f.Type, where+"."+key)
			if err != nil {
				return nil, err
			}
			if child.shape == leafShape {
				child.isPath = f.Tag.Get("config") == "path"
				if a := f.Tag.Get("env"); a != "" {
					child.aliases = strings.Split(a, ",")
				}
			}
			s.fields = append(s.fields, &schemaField{key: key, index: f.Index, schema: child})
		}
		return s, nil
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		elem, err := buildSchema(t.Elem(), where+".*")
		if err != nil {
			return nil, err
		}
		return &schema{shape: mapShape, typ: t, elem: elem}, nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return &schema{shape: leafShape, typ: t}, nil
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return &schema{shape: leafShape, typ: t}, nil
	}
	return nil, fmt.Errorf("config: %s has type %s, which the loader does not support", where, t)
}

func configSchema() (*schema, error) { return buildSchema(reflect.TypeFor[Config](), "config") }

func (s *schema) field(key string) *schemaField {
	for _, f := range s.fields {
		if f.key == key {
			return f
		}
	}
	return nil
}

// parseText turns the text of an env variable or YAML scalar into the value viper
// hands to mapstructure: every leaf is converted here so a bad value is reported with
// the variable or file line it came from, not as a mapstructure path.
func parseText(t reflect.Type, s string) (any, error) {
	if t == durationType {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err == nil {
			return d, nil
		}
		// A bare number would otherwise become nanoseconds: the classic "60" → 60ns.
		if _, nerr := strconv.ParseFloat(strings.TrimSpace(s), 64); nerr == nil {
			return nil, fmt.Errorf("%q has no unit (write e.g. %q)", s, strings.TrimSpace(s)+"s")
		}
		return nil, fmt.Errorf("%q is not a duration (e.g. 10s, 2m, 1h30m)", s)
	}
	switch t.Kind() {
	case reflect.String:
		return s, nil
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		return n, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return nil, fmt.Errorf("%q is not a non-negative integer", s)
		}
		return n, nil
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), t.Bits())
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return f, nil
	case reflect.Slice:
		return splitList(s), nil
	}
	return nil, fmt.Errorf("unsupported type %s", t)
}

// splitList reads a comma-separated list, trimming blanks and dropping empty items so
// "a, b," is [a b].
func splitList(s string) []string {
	out := []string{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// EnvName returns the environment variable that overrides a key: "NDRBOT_" and the key's
// segments upper-cased and joined by "_", with "-" in map entry names (target names)
// also becoming "_". EnvName("targets.exchange-west.password") is
// "NDRBOT_TARGETS_EXCHANGE_WEST_PASSWORD". List indexes ("endpoints[1]") are dropped:
// a list is set as one comma-separated variable.
func EnvName(key string) string {
	segs := strings.Split(key, ".")
	for i, s := range segs {
		if j := strings.IndexByte(s, '['); j >= 0 {
			s = s[:j]
		}
		segs[i] = envSegment(s)
	}
	return envPrefix + strings.Join(segs, "_")
}

func envSegment(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

// validEntryName says whether a map entry name (a target name) can round-trip through
// viper (which lower-cases keys and splits them at dots) and the environment.
func validEntryName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_' {
			return false
		}
	}
	return true
}

// flatten lists the leaves of v (described by s) as dotted keys with the values
// viper should hold; zero values are skipped when skipZero.
func flatten(v reflect.Value, s *schema, prefix string, skipZero bool, out map[string]any) {
	switch s.shape {
	case structShape:
		for _, f := range s.fields {
			flatten(v.FieldByIndex(f.index), f.schema, join(prefix, f.key), skipZero, out)
		}
	case mapShape:
		for _, k := range v.MapKeys() {
			flatten(v.MapIndex(k), s.elem, join(prefix, k.String()), skipZero, out)
		}
	case leafShape:
		if skipZero && v.IsZero() {
			return
		}
		out[prefix] = leafValue(v)
	}
}

// leafValue converts a typed Go value to the plain value the loader stores for it, the
// same shapes parseText produces.
func leafValue(v reflect.Value) any {
	if v.Type() == durationType {
		return time.Duration(v.Int())
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint()
	case reflect.Float32, reflect.Float64:
		return v.Float()
	case reflect.Slice:
		out := make([]string, v.Len())
		for i := range out {
			out[i] = v.Index(i).String()
		}
		return out
	}
	return v.Interface()
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// nest turns dotted keys into the nested maps viper's config layer expects.
func nest(leaves map[string]any) map[string]any {
	root := map[string]any{}
	for k, v := range leaves {
		segs := strings.Split(k, ".")
		m := root
		for _, s := range segs[:len(segs)-1] {
			next, ok := m[s].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[s] = next
			}
			m = next
		}
		m[segs[len(segs)-1]] = v
	}
	return root
}

// suggest returns ` (did you mean "x"?)` for the closest candidate within a small edit
// distance, or "".
func didYouMean(got string, candidates []string) string {
	best := suggest.Closest(got, candidates, max(2, len(got)/5))
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
