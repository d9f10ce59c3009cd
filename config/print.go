package config

import (
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Redacted returns a deep copy of c with every set Secret replaced by "[redacted]",
// for code that hands the configuration to something that might show it.
func (c Config) Redacted() Config {
	out := c
	out.origins = maps.Clone(c.origins)
	rv := reflect.ValueOf(&out).Elem()
	redact(rv)
	return out
}

// redact walks an addressable value. Maps are rebuilt rather than edited in place, so
// the copy shares nothing with the original.
func redact(rv reflect.Value) {
	switch rv.Kind() {
	case reflect.Struct:
		for i := range rv.NumField() {
			if rv.Type().Field(i).IsExported() {
				redact(rv.Field(i))
			}
		}
	case reflect.Map:
		if rv.IsNil() {
			return
		}
		m := reflect.MakeMapWithSize(rv.Type(), rv.Len())
		for _, k := range rv.MapKeys() {
			e := reflect.New(rv.Type().Elem()).Elem()
			e.Set(rv.MapIndex(k))
			redact(e)
			m.SetMapIndex(k, e)
		}
		rv.Set(m)
	case reflect.Slice:
		if rv.IsNil() {
			return
		}
		s := reflect.MakeSlice(rv.Type(), rv.Len(), rv.Len())
		reflect.Copy(s, rv)
		for i := range s.Len() {
			redact(s.Index(i))
		}
		rv.Set(s)
	case reflect.String:
		if rv.Type() == secretType && rv.String() != "" {
			rv.SetString(redacted)
		}
	}
}

// Print writes the effective configuration as YAML for `ndrbot config check`: every key,
// secrets as "[redacted]" (or "" when unset), and a comment on each value that did not
// come from the defaults saying where it came from (file:line or env variable). Keys a
// target's kind does not use are left out while they are empty, so a probe target does
// not list WinRM settings (kinds says which keys each kind reads); the output loads
// back to the same configuration.
func (c Config) Print(w io.Writer, kinds Kinds) error {
	var doc yaml.Node
	if err := doc.Encode(c.Redacted()); err != nil {
		return fmt.Errorf("encoding configuration: %w", err)
	}
	annotate(&doc, "", c.origins)
	pruneTargets(&doc, c.Targets, kinds)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("writing configuration: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("writing configuration: %w", err)
	}
	return nil
}

func annotate(n *yaml.Node, prefix string, origins map[string]string) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			annotate(c, prefix, origins)
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := join(prefix, k.Value)
		if v.Kind == yaml.MappingNode {
			annotate(v, key, origins)
			continue
		}
		if o := origins[key]; o != "" && o != "default" {
			// On the key, so it shows on the key's line for block lists too.
			k.LineComment = strings.ReplaceAll(o, "\n", " ")
		}
	}
}

// pruneTargets removes, from each target's mapping, the keys its kind ignores and
// that hold their zero value.
func pruneTargets(doc *yaml.Node, targets map[string]Target, kinds Kinds) {
	top := doc
	if top.Kind == yaml.DocumentNode && len(top.Content) > 0 {
		top = top.Content[0]
	}
	tnode := mappingValue(top, "targets")
	if tnode == nil {
		return
	}
	for i := 0; i+1 < len(tnode.Content); i += 2 {
		name, body := tnode.Content[i].Value, tnode.Content[i+1]
		t, ok := targets[name]
		kind, known := kinds.Lookup(t.Kind)
		// A lab target accepts every key but, like any kind, is printed without
		// the empty ones of other kinds.
		if !ok || body.Kind != yaml.MappingNode || !known {
			continue
		}
		zero := zeroKeys(t)
		kept := body.Content[:0]
		for j := 0; j+1 < len(body.Content); j += 2 {
			key := body.Content[j].Value
			if zero[key] && !slices.Contains(kind.Keys, key) && kinds.keyKinds(key) != nil {
				continue
			}
			kept = append(kept, body.Content[j], body.Content[j+1])
		}
		body.Content = kept
	}
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// zeroKeys lists the mapstructure keys of t's fields that hold their zero value.
func zeroKeys(t Target) map[string]bool {
	out := map[string]bool{}
	rv := reflect.ValueOf(t)
	for i := range rv.NumField() {
		key, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("mapstructure"), ",")
		if rv.Field(i).IsZero() {
			out[key] = true
		}
	}
	return out
}
