package lab

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ndrbot/ndrbot/executors/psobj"
	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// Organisation files: YAML descriptions of an Exchange 2019 organisation, its
// Microsoft 365 tenant and the outside world, from which the lab answers every
// cmdlet (ORGFILE.md documents the format). Keys in PascalCase are the Exchange
// property of that name; lower-case keys are the lab's own. A file may extend
// another (extends: base): mappings merge key by key, anything else replaces,
// and a key set to null removes what the base had.

//go:embed orgs/*.yaml
var builtinOrgs embed.FS

// OrgNames lists the organisation files built into the lab, sorted.
func OrgNames() []string {
	entries, _ := fs.ReadDir(builtinOrgs, "orgs")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	slices.Sort(names)
	return names
}

// NewOrg builds a lab from a built-in organisation file (OrgNames).
func NewOrg(name string, opts Options) (*Lab, error) {
	data, err := fs.ReadFile(builtinOrgs, "orgs/"+name+".yaml")
	if err != nil {
		return nil, fmt.Errorf("lab: no built-in organisation %q (known: %s)", name, strings.Join(OrgNames(), ", "))
	}
	return parseOrg("orgs/"+name+".yaml", data, opts, true)
}

// LoadOrg builds a lab from an organisation file; extends: finds its base next
// to the file, else among the built-in ones.
func LoadOrg(path string) (*Lab, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lab: read organisation file: %w", err)
	}
	return ParseOrg(path, data, Options{Bases: os.DirFS(filepath.Dir(path))})
}

// ParseOrg builds a lab from an organisation file's contents; name is used in
// messages (file:line) and as the lab's scenario name.
func ParseOrg(name string, data []byte, opts Options) (*Lab, error) {
	return parseOrg(name, data, opts, false)
}

// parseOrg is ParseOrg; builtin says data is one of the built-in files.
func parseOrg(name string, data []byte, opts Options, builtin bool) (*Lab, error) {
	ld := &loader{files: map[*yaml.Node]string{}, bases: opts.Bases}
	root, err := ld.load(name, data, 0, builtin)
	if err != nil {
		return nil, err
	}
	var f fileOrg
	if err := root.Decode(&f); err != nil {
		return nil, ld.yamlErr(name, err)
	}
	if opts.Playbook != "" && f.Playbook != "" && f.Playbook != opts.Playbook {
		return nil, fmt.Errorf("lab: organisation %s simulates a %s incident, not %s", name, f.Playbook, opts.Playbook)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	o, err := ld.build(&f, now().UTC().Truncate(time.Second))
	if err != nil {
		return nil, err
	}
	o.now = now
	o.m365.anchor(o.now())
	o.complete()
	scenario := strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	return &Lab{scenario: scenario, latency: opts.Latency, org: o, about: f.About, playbook: f.Playbook}, nil
}

// loader reads a file and its bases, remembering which file each node came from.
type loader struct {
	files map[*yaml.Node]string
	bases fs.FS
}

// A file is checked alone, so that errors point into the right file, unless
// it is built in (builtin): those were checked alone when ndrbot was built
// (TestBuiltinOrgsAlone), and the merged file is decoded in any case.
func (ld *loader) load(name string, data []byte, depth int, builtin bool) (*yaml.Node, error) {
	if depth > 8 {
		return nil, fmt.Errorf("lab: %s: extends nests deeper than 8 files (a cycle?)", name)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, ld.yamlErr(name, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("lab: %s: empty organisation file", name)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("lab: %s:%d: an organisation file is a mapping (servers:, mailboxes:, …)", name, root.Line)
	}
	ld.mark(root, name)
	extends := scalarAt(root, "extends")
	if !builtin {
		var err error
		if extends, err = ld.checkAlone(root, name); err != nil {
			return nil, err
		}
	}
	if extends == "" {
		return root, nil
	}
	baseName, baseData, baseBuiltin, err := ld.readBase(extends)
	if err != nil {
		return nil, fmt.Errorf("lab: %s: extends %q: %w", name, extends, err)
	}
	base, err := ld.load(baseName, baseData, depth+1, baseBuiltin)
	if err != nil {
		return nil, err
	}
	merged := merge(base, root)
	// The merged file is not a base any more.
	dropKey(merged, "extends")
	return merged, nil
}

// checkAlone checks one file on its own: its keys, and that it decodes. It
// returns the file's extends.
func (ld *loader) checkAlone(root *yaml.Node, name string) (string, error) {
	if err := checkKeys(root, reflect.TypeFor[fileOrg](), name); err != nil {
		return "", err
	}
	var f fileOrg
	if err := root.Decode(&f); err != nil {
		return "", ld.yamlErr(name, err)
	}
	return f.Extends, nil
}

// scalarAt is the value of a mapping's scalar key; "" when it has none.
func scalarAt(m *yaml.Node, key string) string {
	if j := keyIndex(m, key); j >= 0 && m.Content[j+1].Kind == yaml.ScalarNode {
		return m.Content[j+1].Value
	}
	return ""
}

// readBase finds the base name extends: next to the file, else built in
// (builtin).
func (ld *loader) readBase(name string) (file string, data []byte, builtin bool, err error) {
	file = name
	if !strings.HasSuffix(file, ".yaml") {
		file += ".yaml"
	}
	if ld.bases != nil {
		if data, err := fs.ReadFile(ld.bases, file); err == nil {
			return file, data, false, nil
		}
	}
	data, err = fs.ReadFile(builtinOrgs, "orgs/"+file)
	if err != nil {
		return "", nil, false, fmt.Errorf("no such organisation file (next to it or built in: %s)", strings.Join(OrgNames(), ", "))
	}
	return "orgs/" + file, data, true, nil
}

func (ld *loader) mark(n *yaml.Node, file string) {
	ld.files[n] = file
	for _, c := range n.Content {
		ld.mark(c, file)
	}
}

// at renders a node's position as file:line.
func (ld *loader) at(n *yaml.Node) string {
	if n == nil {
		return "?"
	}
	return fmt.Sprintf("%s:%d", ld.files[n], n.Line)
}

var yamlLineRE = lazyre.New(`line (\d+): `)

// yamlErr rewrites yaml.v3's "line N: …" messages as file:N: ….
func (ld *loader) yamlErr(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var msgs []string
		for _, m := range te.Errors {
			msgs = append(msgs, yamlLineRE().ReplaceAllString(m, name+":$1: "))
		}
		return fmt.Errorf("lab: %s", strings.Join(msgs, "; "))
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE().FindStringSubmatchIndex(msg); m != nil && m[0] == 0 {
		return fmt.Errorf("lab: %s:%s: %s", name, msg[m[2]:m[3]], msg[m[1]:])
	}
	var pe *posError
	if errors.As(err, &pe) {
		return fmt.Errorf("lab: %s:%d: %s", name, pe.line, pe.msg)
	}
	return fmt.Errorf("lab: %s: %w", name, err)
}

// posError is a value error found while decoding a scalar.
type posError struct {
	line int
	msg  string
}

func (e *posError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// merge lays over on top of base: mappings merge key by key, a null value
// removes the key, anything else replaces.
func merge(base, over *yaml.Node) *yaml.Node {
	if base == nil || base.Kind != yaml.MappingNode || over.Kind != yaml.MappingNode {
		return over
	}
	out := *base
	out.Content = slices.Clone(base.Content)
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i], over.Content[i+1]
		j := keyIndex(&out, k.Value)
		switch {
		case v.Tag == "!!null":
			if j >= 0 {
				out.Content = slices.Delete(out.Content, j, j+2)
			}
		case j >= 0:
			out.Content[j+1] = merge(out.Content[j+1], v)
		default:
			out.Content = append(out.Content, k, v)
		}
	}
	return &out
}

func keyIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

func dropKey(m *yaml.Node, key string) {
	if j := keyIndex(m, key); j >= 0 {
		m.Content = slices.Delete(m.Content, j, j+2)
	}
}

// keyedOf is implemented by keyed collections, for checkKeys.
type keyedOf interface{ elemType() reflect.Type }

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// checkKeys rejects a key the schema does not have, with file:line, so a typo
// in an organisation file fails instead of being silently ignored.
func checkKeys(n *yaml.Node, t reflect.Type, file string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if k, ok := reflect.New(t).Interface().(keyedOf); ok {
		if n.Kind != yaml.MappingNode {
			return nil // the decoder reports the kind
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i+1], k.elemType(), file); err != nil {
				return err
			}
		}
		return nil
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			f, ok := fieldByTag(t, key)
			if !ok {
				return fmt.Errorf("lab: %s:%d: unknown key %q (known here: %s)", file, n.Content[i].Line, key, strings.Join(tags(t), ", "))
			}
			if err := checkKeys(n.Content[i+1], f.Type, file); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if err := checkKeys(n.Content[i+1], t.Elem(), file); err != nil {
					return err
				}
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				if err := checkKeys(c, t.Elem(), file); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tags(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			out = append(out, tag)
		}
	}
	return out
}

// keyed is a YAML mapping of name → T that keeps the file's order (Get-Queue
// lists queues in order) and each entry's node for messages.
type keyed[T any] struct{ items []keyedItem[T] }

type keyedItem[T any] struct {
	key  string
	node *yaml.Node
	val  T
}

func (k *keyed[T]) elemType() reflect.Type { return reflect.TypeFor[T]() }

func (k *keyed[T]) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return &posError{n.Line, "expected a mapping of name → entry"}
	}
	k.items = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		var v T
		if n.Content[i+1].Tag != "!!null" {
			if err := n.Content[i+1].Decode(&v); err != nil {
				return err
			}
		}
		k.items = append(k.items, keyedItem[T]{key: n.Content[i].Value, node: n.Content[i], val: v})
	}
	return nil
}

// unlimitedVal is an Unlimited<int>: a number or Unlimited.
type unlimitedVal struct{ v *int64 }

func (l *unlimitedVal) UnmarshalYAML(n *yaml.Node) error {
	if strings.EqualFold(n.Value, "Unlimited") {
		l.v = nil
		return nil
	}
	x, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil || x < 0 {
		return &posError{n.Line, fmt.Sprintf("%q is neither a number ≥ 0 nor Unlimited", n.Value)}
	}
	l.v = &x
	return nil
}

// span is an EnhancedTimeSpan: "00:05:00", "2.00:00:00" or a Go duration ("5m").
type spanVal time.Duration

func (s *spanVal) UnmarshalYAML(n *yaml.Node) error {
	if d, ok := psobj.ParseTimeSpan(n.Value); ok && strings.Contains(n.Value, ":") {
		*s = spanVal(d)
		return nil
	}
	d, err := parseDuration(n.Value)
	if err != nil {
		return &posError{n.Line, fmt.Sprintf("%q is not a time span (00:05:00, 2.00:00:00 or 5m)", n.Value)}
	}
	*s = spanVal(d)
	return nil
}

// parseDuration is time.ParseDuration plus days ("2d", "-1d12h").
func parseDuration(s string) (time.Duration, error) {
	neg := strings.HasPrefix(s, "-")
	body := strings.TrimLeft(s, "+-")
	var days int64
	if i := strings.IndexByte(body, 'd'); i > 0 {
		n, err := strconv.ParseInt(body[:i], 10, 64)
		if err != nil {
			return 0, err
		}
		days, body = n, body[i+1:]
	}
	var d time.Duration
	if body != "" {
		var err error
		if d, err = time.ParseDuration(body); err != nil {
			return 0, err
		}
	}
	d += time.Duration(days) * 24 * time.Hour
	if neg {
		d = -d
	}
	return d, nil
}

// when is a time on the lab's clock: "now", an offset ("-3m", "+7m", "-1d2h")
// or RFC 3339; "never" is $null.
type when struct {
	abs   time.Time
	rel   time.Duration
	isAbs bool
	never bool
}

func (w *when) UnmarshalYAML(n *yaml.Node) error {
	v := strings.TrimSpace(n.Value)
	switch {
	case v == "now":
		*w = when{}
	case v == "never" || v == "":
		*w = when{never: true}
	case strings.HasPrefix(v, "-") || strings.HasPrefix(v, "+"):
		d, err := parseDuration(v)
		if err != nil {
			return &posError{n.Line, fmt.Sprintf("%q is not an offset from now (-3m, +7m, -1d2h)", v)}
		}
		*w = when{rel: d}
	default:
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return &posError{n.Line, fmt.Sprintf("%q is not a time (now, -3m, +7m, never or RFC 3339)", v)}
		}
		*w = when{abs: t.UTC(), isAbs: true}
	}
	return nil
}

func (w when) at(now time.Time) time.Time {
	switch {
	case w.never:
		return time.Time{}
	case w.isAbs:
		return w.abs
	}
	return now.Add(w.rel)
}

// size is a ByteQuantifiedSize: "35 MB", "36700160" or Unlimited.
type size struct{ bytes int64 }

func (s *size) UnmarshalYAML(n *yaml.Node) error {
	if strings.EqualFold(n.Value, "Unlimited") {
		s.bytes = sizeUnlimited
		return nil
	}
	if x, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
		s.bytes = x
		return nil
	}
	if x, ok := psobj.ParseBytes(n.Value); ok {
		s.bytes = x
		return nil
	}
	return &posError{n.Line, fmt.Sprintf("%q is not a size (35 MB, 36700160 or Unlimited)", n.Value)}
}
