package deploy

// A minimal Helm renderer, so the chart is rendered and checked in CI without a helm
// binary or the Helm SDK (whose Kubernetes dependencies would dwarf the module).
//
// It follows Helm 3's engine where the chart can tell: every file under templates/
// is parsed into one template set named "<chart>/templates/<file>", files starting
// with "_" are partials, each other file is executed with .Values (the chart's
// values.yaml coalesced with the overrides), .Release, .Chart and .Template, and
// "<no value>" is removed from the output. Values are decoded the way Helm decodes
// them (YAML through JSON, so every number is a float64), which is why the
// templates convert with `int`.
//
// Only the functions the templates use exist here (helmFuncs): text/template refuses
// to parse a template calling any other, so a template that strays from the subset
// makes the tests fail rather than render differently from Helm. When helm is on
// PATH, TestChartMatchesHelm renders the same values with it and compares.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

type chart struct {
	dir  string
	meta struct {
		Name       string `yaml:"name"`
		Version    string `yaml:"version"`
		AppVersion string `yaml:"appVersion"`
	}
	defaults  map[string]any
	templates map[string]string // "<chart>/templates/<file>" → text
}

func loadChart(dir string) (*chart, error) {
	c := &chart{dir: dir, templates: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(b, &c.meta); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	if b, err = os.ReadFile(filepath.Join(dir, "values.yaml")); err != nil {
		return nil, err
	}
	if c.defaults, err = helmValues(b); err != nil {
		return nil, fmt.Errorf("values.yaml: %w", err)
	}
	files, err := os.ReadDir(filepath.Join(dir, "templates"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if f.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "templates", f.Name()))
		if err != nil {
			return nil, err
		}
		c.templates[c.basePath()+"/"+f.Name()] = string(b)
	}
	return c, nil
}

func (c *chart) basePath() string { return c.meta.Name + "/templates" }

// helmValues decodes YAML values as Helm does: through JSON, numbers as float64.
func helmValues(data []byte) (map[string]any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	if v == nil {
		return map[string]any{}, nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(j, &out); err != nil {
		return nil, fmt.Errorf("values must be a mapping: %w", err)
	}
	return out, nil
}

// coalesce merges src over dst as Helm merges user values over the chart's: maps
// recursively, anything else replaced, and null deleting the key.
func coalesce(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = coalesce(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

func deepCopy(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

type release struct{ Name, Namespace string }

// rendered is one release's output: each template's text, the NOTES, and the parsed
// manifests in template-name order.
type rendered struct {
	values map[string]any // the coalesced values
	files  map[string]string
	notes  string
	docs   []manifest
}

type manifest struct {
	source string // template file
	obj    map[string]any
}

func (m manifest) kind() string { return str(m.obj["kind"]) }
func (m manifest) name() string { return str(dig(m.obj, "metadata", "name")) }

// render renders the chart for rel with the values files (YAML) layered in order.
func (c *chart) render(rel release, valueFiles ...[]byte) (*rendered, error) {
	vals := deepCopy(c.defaults)
	for _, f := range valueFiles {
		v, err := helmValues(f)
		if err != nil {
			return nil, fmt.Errorf("values: %w", err)
		}
		vals = coalesce(vals, v)
	}
	top := map[string]any{
		"Values": vals,
		"Release": map[string]any{"Name": rel.Name, "Namespace": rel.Namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Chart": map[string]any{"Name": c.meta.Name, "Version": c.meta.Version, "AppVersion": c.meta.AppVersion},
	}

	root := template.New("gotpl")
	funcs := helmFuncs()
	funcs["include"] = func(name string, data any) (string, error) {
		var b strings.Builder
		if err := root.ExecuteTemplate(&b, name, data); err != nil {
			return "", err
		}
		return b.String(), nil
	}
	root.Funcs(funcs).Option("missingkey=zero")
	names := slices.Sorted(maps.Keys(c.templates))
	for _, name := range names {
		if _, err := root.New(name).Parse(c.templates[name]); err != nil {
			return nil, fmt.Errorf("parse error in %s: %w", name, err)
		}
	}

	r := &rendered{values: vals, files: map[string]string{}}
	for _, name := range names {
		if strings.HasPrefix(filepath.Base(name), "_") {
			continue
		}
		data := maps.Clone(top)
		data["Template"] = map[string]any{"Name": name, "BasePath": c.basePath()}
		var b strings.Builder
		if err := root.ExecuteTemplate(&b, name, data); err != nil {
			return nil, fmt.Errorf("execution error in %s: %w", name, err)
		}
		r.files[name] = strings.ReplaceAll(b.String(), "<no value>", "")
	}
	// Like Helm, parse only once every template rendered: a fail in one template
	// is the error, not a YAML problem in another.
	for _, name := range names {
		out, ok := r.files[name]
		if !ok {
			continue
		}
		if filepath.Base(name) == "NOTES.txt" {
			r.notes = out
			continue
		}
		docs, err := splitManifests(out)
		if err != nil {
			return nil, fmt.Errorf("%s: %w\n%s", name, err, numbered(out))
		}
		for _, d := range docs {
			r.docs = append(r.docs, manifest{source: name, obj: d})
		}
	}
	return r, nil
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitManifests parses each YAML document of a template's output; documents with
// nothing but comments or blanks are skipped, as Helm skips them. Duplicate keys
// are errors (yaml.v3), as they are for the API server's strict decoding.
func splitManifests(out string) ([]map[string]any, error) {
	var docs []map[string]any
	for _, part := range docSep.Split(out, -1) {
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(part), &doc); err != nil {
			return nil, err
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	return docs, nil
}

func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(s, "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, l)
	}
	return b.String()
}

// helmFuncs is the subset of Helm's template functions the chart may use (listed in
// templates/_helpers.tpl), each behaving as Helm's (Sprig's) does for the argument
// types values can have. include is added by render, as it needs the template set.
func helmFuncs() template.FuncMap {
	return template.FuncMap{
		// Helm's own.
		"toYaml": func(v any) string {
			var b strings.Builder
			enc := yaml.NewEncoder(&b)
			enc.SetIndent(2)
			if err := enc.Encode(v); err != nil {
				return "" // Helm swallows the error too
			}
			return strings.TrimSuffix(b.String(), "\n")
		},
		"required": func(msg string, v any) (any, error) {
			if v == nil {
				return v, errors.New(msg)
			}
			if s, ok := v.(string); ok && s == "" {
				return v, errors.New(msg)
			}
			return v, nil
		},
		"fail": func(msg string) (string, error) { return "", errors.New(msg) },
		// Sprig's.
		"default": func(d any, given ...any) any {
			if len(given) == 0 || empty(given[0]) {
				return d
			}
			return given[0]
		},
		"quote": func(args ...any) string {
			var out []string
			for _, a := range args {
				if a != nil {
					out = append(out, fmt.Sprintf("%q", strval(a)))
				}
			}
			return strings.Join(out, " ")
		},
		"indent": indent,
		"nindent": func(n int, s string) string {
			return "\n" + indent(n, s)
		},
		"trunc": func(c int, s string) string {
			switch {
			case c < 0 && len(s)+c > 0:
				return s[len(s)+c:]
			case c >= 0 && len(s) > c:
				return s[:c]
			}
			return s
		},
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"replace":    func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
		"contains":   func(sub, s string) bool { return strings.Contains(s, sub) },
		"hasKey": func(m map[string]any, key string) bool {
			_, ok := m[key]
			return ok
		},
		"int": toInt,
		"sha256sum": func(s string) string {
			h := sha256.Sum256([]byte(s))
			return hex.EncodeToString(h[:])
		},
	}
}

func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

// empty is Sprig's notion of an unset value.
func empty(v any) bool {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return true
	}
	switch rv.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return rv.Len() == 0
	case reflect.Bool:
		return !rv.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return rv.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return rv.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return rv.IsNil()
	}
	return false
}

func strval(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case error:
		return v.Error()
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprintf("%v", v)
}

// toInt is Sprig's int (cast.ToInt): numbers truncated, numeric strings parsed,
// anything else 0.
func toInt(v any) int {
	switch v := v.(type) {
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		return int(v)
	case bool:
		if v {
			return 1
		}
		return 0
	case string:
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(v), &n); err == nil {
			return n
		}
	}
	return 0
}

// Small accessors for decoded YAML.

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// num reads a YAML number (int or float) as float64; ok is false for anything else.
func num(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}
