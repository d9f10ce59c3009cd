package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// FileName is the config file looked for in the working directory and in
// $XDG_CONFIG_HOME/ndrbot/.
const FileName = "ndrbot.yaml"

// LoadOptions says where Load looks. Load reads no process state itself (no
// os.Getenv, no os.Getwd), so tests run in parallel with their own environment;
// OSLoadOptions fills these from the process.
type LoadOptions struct {
	// File is --config. When set it must exist; no other file is tried.
	File string
	// Env is the environment as KEY=VALUE pairs (os.Environ's shape). A slice rather
	// than a lookup function because Load has to enumerate it: target names are only
	// discoverable from the variable names, and an unknown NDRBOT_* variable is reported.
	Env []string
	// WorkDir is where ./ndrbot.yaml is looked for and what a relative --config or a
	// relative path from the environment is resolved against. Empty skips ./ndrbot.yaml.
	WorkDir string
	// XDGConfigHome is $XDG_CONFIG_HOME; when empty (or relative, per the XDG spec)
	// HomeDir/.config is used; when both are empty that step is skipped.
	XDGConfigHome string
	HomeDir       string
	// StateDirectory (systemd's $STATE_DIRECTORY) and XDGDataHome ($XDG_DATA_HOME,
	// else HomeDir/.local/share) place the SQLite store when store.path is unset
	// (see defaultStorePath). With none of them the path stays empty: the store is
	// never put in the working directory by default.
	StateDirectory string
	XDGDataHome    string
	// Kinds are the target kinds the build knows (the executors' registry):
	// each target gets its kind's defaults for the keys no layer set. A target
	// of a kind not listed gets none, and Validate reports its kind.
	Kinds Kinds
}

// OSLoadOptions returns the options for the running process with --config file.
func OSLoadOptions(file string) LoadOptions {
	// An unknown working directory only removes a place to look; --config and the
	// environment still work, so the error is not fatal here.
	wd, _ := os.Getwd()
	return EnvLoadOptions(file, os.Environ(), wd)
}

// EnvLoadOptions returns the options for a process whose environment is environ
// (os.Environ's shape) and whose working directory is workDir. Every directory
// Load consults comes from environ, so a caller with an injected environment (a
// test) controls where configuration is read and where the store goes.
func EnvLoadOptions(file string, environ []string, workDir string) LoadOptions {
	env := parseEnviron(environ)
	// os.UserHomeDir's variables, read from environ instead of the process.
	home := env["HOME"]
	if runtime.GOOS == "windows" {
		home = env["USERPROFILE"]
	}
	return LoadOptions{
		File:           file,
		Env:            environ,
		WorkDir:        workDir,
		XDGConfigHome:  env["XDG_CONFIG_HOME"],
		HomeDir:        home,
		StateDirectory: env["STATE_DIRECTORY"],
		XDGDataHome:    env["XDG_DATA_HOME"],
	}
}

// StoreFile is the SQLite database's file name in the default directories.
const StoreFile = "ndrbot.db"

// defaultStorePath is where the SQLite store goes when store.path is unset, and
// what decided it (for Print). systemd's StateDirectory= comes first: a unit that
// declares one means the bot's state to live there (systemd.exec(5): the variable
// holds the absolute path, several joined by ':' when several are declared — the
// first is taken). Then the XDG Base Directory data home: $XDG_DATA_HOME, ignored
// unless absolute (the spec says a relative value is invalid), else
// ~/.local/share. Never the working directory: a database that moves with cd is
// one an operator loses, and `audit verify` would check the wrong one.
func defaultStorePath(opts LoadOptions) (path, via string) {
	if dir, _, _ := strings.Cut(opts.StateDirectory, ":"); filepath.IsAbs(dir) {
		return filepath.Join(dir, StoreFile), "$STATE_DIRECTORY"
	}
	if filepath.IsAbs(opts.XDGDataHome) {
		return filepath.Join(opts.XDGDataHome, "ndrbot", StoreFile), "$XDG_DATA_HOME"
	}
	if filepath.IsAbs(opts.HomeDir) {
		return filepath.Join(opts.HomeDir, ".local", "share", "ndrbot", StoreFile), "~/.local/share"
	}
	return "", ""
}

// Source reports where a loaded configuration came from.
type Source struct {
	// File is the config file read, "" when running on defaults and env alone.
	File string
	// Via says how File was found: "--config", "NDRBOT_CONFIG", "working directory",
	// "XDG config directory", or "defaults".
	Via string
	// Env lists the environment variables that set a value (names only), sorted.
	Env []string
	// Warnings are NDRBOT_* variables that are not settings, each with a
	// suggestion when one is close. They are ignored rather than refused:
	// Kubernetes sets NDRBOT_PORT, NDRBOT_SERVICE_HOST, … for a Service named
	// ndrbot, and the bot must still start; the caller shows them.
	Warnings []string
}

// String returns the file used, or "defaults".
func (s Source) String() string {
	if s.File == "" {
		return "defaults"
	}
	return s.File
}

// Load builds the effective configuration: defaults, then the file (resolved as
// --config FILE → NDRBOT_CONFIG → ./ndrbot.yaml → $XDG_CONFIG_HOME/ndrbot/ndrbot.yaml →
// none), then NDRBOT_* variables. Every problem in the file (unknown or misspelt keys,
// wrong types) and in the environment (unparsable values, ambiguous names) is
// reported at once, each naming the key with its file:line or the variable. An
// NDRBOT_* name that is no setting is a warning in Source.Warnings, not an error.
// An unset SQLite store.path is filled in from the directories in opts.
//
// Load does not call Validate.
func Load(opts LoadOptions) (Config, Source, error) {
	root, err := configSchema()
	if err != nil {
		return Config{}, Source{}, err
	}
	env := parseEnviron(opts.Env)
	src, err := findFile(opts, env)
	if err != nil {
		return Config{}, Source{}, err
	}

	l := &loader{
		root:     root,
		defaults: map[string]any{},
		file:     map[string]any{},
		env:      map[string]any{},
		origins:  map[string]string{},
		kinds:    opts.Kinds,
	}
	flatten(reflect.ValueOf(defaults()), root, "", false, l.defaults)
	for k := range l.defaults {
		l.origins[k] = "default"
	}
	if src.File != "" {
		data, err := os.ReadFile(src.File)
		if err != nil {
			return Config{}, Source{}, fmt.Errorf("config file: %w", err)
		}
		l.readFile(src.File, data)
	}
	src.Env = l.readEnv(env, opts.WorkDir)
	if len(l.errs) > 0 {
		return Config{}, Source{}, errors.Join(l.errs...)
	}
	src.Warnings = l.warnings

	cfg, err := l.decode()
	if err != nil {
		return Config{}, Source{}, fmt.Errorf("%s: %w", src, err)
	}
	// Resolved here, not left to the store, so `config check` prints the file the
	// bot will open and every command opens the same one.
	if cfg.Store.Driver == "sqlite" && cfg.Store.Path == "" {
		if path, via := defaultStorePath(opts); path != "" {
			cfg.Store.Path = path
			cfg.origins["store.path"] = "default from " + via
		}
	}
	return cfg, src, nil
}

// parseEnviron keeps the last of duplicate names, as a shell export would.
func parseEnviron(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = v
		}
	}
	return m
}

func findFile(opts LoadOptions, env map[string]string) (Source, error) {
	explicit, via := opts.File, "--config"
	if explicit == "" && env[envConfigFile] != "" {
		explicit, via = env[envConfigFile], envConfigFile
	}
	if explicit != "" {
		path := explicit
		if !filepath.IsAbs(path) && opts.WorkDir != "" {
			path = filepath.Join(opts.WorkDir, path)
		}
		if err := checkFile(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return Source{}, fmt.Errorf("config file %s (from %s) does not exist: %w", path, via, fs.ErrNotExist)
			}
			return Source{}, fmt.Errorf("config file %s (from %s): %w", path, via, err)
		}
		return Source{File: path, Via: via}, nil
	}

	type candidate struct{ path, via string }
	var candidates []candidate
	if opts.WorkDir != "" {
		candidates = append(candidates, candidate{filepath.Join(opts.WorkDir, FileName), "working directory"})
	}
	xdg := opts.XDGConfigHome
	if !filepath.IsAbs(xdg) {
		xdg = ""
		if opts.HomeDir != "" {
			xdg = filepath.Join(opts.HomeDir, ".config")
		}
	}
	if xdg != "" {
		candidates = append(candidates, candidate{filepath.Join(xdg, "ndrbot", FileName), "XDG config directory"})
	}
	for _, c := range candidates {
		err := checkFile(c.path)
		if err == nil {
			return Source{File: c.path, Via: c.via}, nil
		}
		// A file that exists but cannot be used is an error, not a reason to fall back:
		// the operator believes it is in effect.
		if !errors.Is(err, fs.ErrNotExist) {
			return Source{}, fmt.Errorf("config file %s: %w", c.path, err)
		}
	}
	return Source{Via: "defaults"}, nil
}

func checkFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	return nil
}

// loader holds the three layers as flat leaf maps (dotted key → value) before viper
// merges them, because Load has to know per key which layer set it: to name the
// source in errors and to reject secrets written into the file.
type loader struct {
	root                *schema
	defaults, file, env map[string]any
	origins             map[string]string
	kinds               Kinds
	errs                []error
	warnings            []string
}

func (l *loader) errorf(where, key, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%s: %s: %s", where, key, fmt.Sprintf(format, args...)))
}

func (l *loader) readFile(path string, data []byte) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		l.errs = append(l.errs, fmt.Errorf("%s: %w", path, err))
		return
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return // empty file, or comments only: defaults and env
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		l.errs = append(l.errs, fmt.Errorf("%s:%d: the top level must be a mapping of sections (%s)",
			path, top.Line, strings.Join(fieldKeys(l.root), ", ")))
		return
	}
	l.walkYAML(path, top, l.root, "")
}

func (l *loader) walkYAML(file string, n *yaml.Node, s *schema, key string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	// "key:" with nothing after it leaves the lower layer in place.
	if isNull(n) {
		return
	}
	where := fmt.Sprintf("%s:%d", file, n.Line)
	if s.shape == leafShape {
		val, err := yamlLeaf(n, s)
		if err != nil {
			l.errorf(where, key, "%v", err)
			return
		}
		if str, ok := val.(string); ok && s.isPath && str != "" && !filepath.IsAbs(str) {
			val = filepath.Join(filepath.Dir(file), str)
		}
		l.file[key] = val
		l.origins[key] = where
		return
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(where, key, "expected a mapping, got %s", nodeKind(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		name, child := kn.Value, join(key, kn.Value)
		kwhere := fmt.Sprintf("%s:%d", file, kn.Line)
		// yaml.v3 only rejects duplicate keys when decoding into Go values, not into a
		// Node; a silently shadowed first entry is exactly what this checker exists for.
		if first, dup := seen[name]; dup {
			l.errorf(kwhere, child, "duplicate key (first at line %d)", first)
			continue
		}
		seen[name] = kn.Line
		if s.shape == structShape {
			f := s.field(name)
			if f == nil {
				l.errorf(kwhere, child, "unknown key%s", didYouMean(name, fieldKeys(s)))
				continue
			}
			l.walkYAML(file, vn, f.schema, child)
			continue
		}
		if !validEntryName(name) {
			l.errorf(kwhere, child, "%q is not a valid name: use lower-case letters, digits, '-' and '_', starting with a letter", name)
			continue
		}
		before := len(l.file)
		l.walkYAML(file, vn, s.elem, child)
		// An entry declared with no keys ("lab: {}") must still exist, so Validate can
		// say what it lacks; record its first key (kind, for targets) as empty unless
		// the defaults already define the entry.
		if len(l.file) == before && s.elem.shape == structShape && len(s.elem.fields) > 0 &&
			!hasPrefixKey(l.defaults, child) && s.elem.fields[0].schema.shape == leafShape {
			first := s.elem.fields[0]
			k := join(child, first.key)
			l.file[k] = leafValue(reflect.Zero(first.schema.typ))
			l.origins[k] = kwhere
		}
	}
}

func yamlLeaf(n *yaml.Node, s *schema) (any, error) {
	if s.typ.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode {
		items := make([]string, 0, len(n.Content))
		for _, item := range n.Content {
			if item.Kind == yaml.AliasNode {
				item = item.Alias
			}
			if item.Kind != yaml.ScalarNode || isNull(item) {
				return nil, fmt.Errorf("list item at line %d must be a single value, got %s", item.Line, nodeKind(item))
			}
			items = append(items, item.Value)
		}
		return items, nil
	}
	if n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("expected a single value, got %s", nodeKind(n))
	}
	return parseText(s.typ, n.Value)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func fieldKeys(s *schema) []string {
	keys := make([]string, len(s.fields))
	for i, f := range s.fields {
		keys[i] = f.key
	}
	return keys
}

func hasPrefixKey(m map[string]any, prefix string) bool {
	for k := range m {
		if strings.HasPrefix(k, prefix+".") {
			return true
		}
	}
	return false
}

// readEnv applies NDRBOT_* variables (and env:"…" aliases) and returns the names of
// those that set a value. An empty variable counts as unset, as container runtimes
// and compose files pass empty values for "not configured".
func (l *loader) readEnv(env map[string]string, workDir string) []string {
	var applied []string
	set := func(name, value, key string, leaf *schema) {
		val, err := parseText(leaf.typ, value)
		if err != nil {
			l.errorf(name, key, "%v", err)
			return
		}
		if str, ok := val.(string); ok && leaf.isPath && str != "" && !filepath.IsAbs(str) && workDir != "" {
			val = filepath.Join(workDir, str)
		}
		l.env[key] = val
		l.origins[key] = "env " + name
		applied = append(applied, name)
	}

	// Aliases first so that the NDRBOT_* spelling of the same key wins.
	aliases := map[string]aliasTarget{}
	collectAliases(l.root, "", aliases)
	for _, name := range sortedKeys(aliases) {
		if value := env[name]; value != "" {
			set(name, value, aliases[name].key, aliases[name].leaf)
		}
	}

	for _, name := range sortedKeys(env) {
		rest, ok := strings.CutPrefix(name, envPrefix)
		if !ok || name == envConfigFile || env[name] == "" {
			continue
		}
		var matches []envMatch
		l.matchEnv(rest, l.root, "", envMatch{}, &matches)
		if len(matches) == 0 {
			l.warnings = append(l.warnings, fmt.Sprintf("%s: not a setting, ignored%s", name, didYouMean(name, l.envCandidates(aliases))))
			continue
		}
		// Prefer entry names the defaults or the file already define, then the
		// shortest entry name (the longest key): with no targets defined,
		// NDRBOT_TARGETS_EX_OPERATION_TIMEOUT is target "ex", key operation_timeout.
		slices.SortStableFunc(matches, func(a, b envMatch) int {
			if a.unknown != b.unknown {
				return a.unknown - b.unknown
			}
			return a.nameLen - b.nameLen
		})
		m := matches[0]
		if len(m.clash) > 0 {
			l.errs = append(l.errs, fmt.Errorf("%s: ambiguous: entries %s are both spelt this way in the environment; rename one",
				name, strings.Join(m.clash, ", ")))
			continue
		}
		// Two defined targets that both fit ("ex" + operation_timeout, "ex_operation" +
		// timeout) cannot be told apart; guessing would change the wrong one.
		if len(matches) > 1 && m.unknown == 0 && matches[1].unknown == 0 {
			l.errs = append(l.errs, fmt.Errorf("%s: ambiguous: could be %s or %s; rename one of the targets",
				name, m.key, matches[1].key))
			continue
		}
		set(name, env[name], m.key, m.leaf)
	}
	slices.Sort(applied)
	return slices.Compact(applied)
}

type aliasTarget struct {
	key  string
	leaf *schema
}

// collectAliases finds env:"…" tags outside maps (an alias inside a map entry would
// not say which entry it means).
func collectAliases(s *schema, prefix string, out map[string]aliasTarget) {
	for _, f := range s.fields {
		key := join(prefix, f.key)
		switch f.schema.shape {
		case leafShape:
			for _, a := range f.schema.aliases {
				out[a] = aliasTarget{key, f.schema}
			}
		case structShape:
			collectAliases(f.schema, key, out)
		}
	}
}

type envMatch struct {
	key     string
	leaf    *schema
	unknown int      // entry names not defined by the defaults or the file
	nameLen int      // total length of entry names
	clash   []string // known entry names sharing one env spelling
}

// matchEnv finds every way rest (a variable name without NDRBOT_) can be read as a
// key under s. Struct keys are fixed, so only map entry names make it ambiguous.
func (l *loader) matchEnv(rest string, s *schema, prefix string, m envMatch, out *[]envMatch) {
	switch s.shape {
	case structShape:
		for _, f := range s.fields {
			seg := envSegment(f.key)
			if f.schema.shape == leafShape {
				if rest == seg {
					mm := m
					mm.key, mm.leaf = join(prefix, f.key), f.schema
					*out = append(*out, mm)
				}
			} else if r, ok := strings.CutPrefix(rest, seg+"_"); ok {
				l.matchEnv(r, f.schema, join(prefix, f.key), m, out)
			}
		}
	case mapShape:
		known := l.knownNames(prefix)
		for i := 1; i <= len(rest); i++ {
			if i < len(rest) && rest[i] != '_' {
				continue
			}
			seg, r := rest[:i], ""
			if i < len(rest) {
				r = rest[i+1:]
			}
			if (s.elem.shape == leafShape) != (r == "") {
				continue
			}
			mm := m
			mm.nameLen += len(seg)
			var name string
			switch names := known[seg]; len(names) {
			case 0:
				// Not in the defaults or the file: the variable defines the entry, named in
				// lower case with underscores kept.
				name = strings.ToLower(seg)
				if !validEntryName(name) {
					continue
				}
				mm.unknown++
			case 1:
				name = names[0]
			default:
				name, mm.clash = names[0], names
			}
			if s.elem.shape == leafShape {
				mm.key, mm.leaf = join(prefix, name), s.elem
				*out = append(*out, mm)
				continue
			}
			l.matchEnv(r, s.elem, join(prefix, name), mm, out)
		}
	}
}

// knownNames maps the env spelling of each entry name under prefix (from the defaults
// and the file) to the names that have it.
func (l *loader) knownNames(prefix string) map[string][]string {
	names := map[string]bool{}
	for _, layer := range []map[string]any{l.defaults, l.file} {
		for k := range layer {
			if rest, ok := strings.CutPrefix(k, prefix+"."); ok {
				name, _, _ := strings.Cut(rest, ".")
				names[name] = true
			}
		}
	}
	out := map[string][]string{}
	for _, n := range sortedKeys(names) {
		out[envSegment(n)] = append(out[envSegment(n)], n)
	}
	return out
}

// envCandidates lists the variable names a misspelt one is compared against.
func (l *loader) envCandidates(aliases map[string]aliasTarget) []string {
	var out []string
	var walk func(s *schema, prefix string)
	walk = func(s *schema, prefix string) {
		switch s.shape {
		case leafShape:
			out = append(out, EnvName(prefix))
		case structShape:
			for _, f := range s.fields {
				walk(f.schema, join(prefix, f.key))
			}
		case mapShape:
			for _, names := range l.knownNames(prefix) {
				for _, n := range names {
					walk(s.elem, join(prefix, n))
				}
			}
		}
	}
	walk(l.root, "")
	return append(out, sortedKeys(aliases)...)
}

// decode merges the layers in viper and decodes them into a Config. Per-kind target
// defaults go in last, once each target's kind is known from all three layers.
//
// Every key reaches viper explicitly (SetDefault for each default leaf, Set for each
// variable), so viper's "env is ignored for keys it does not know" trap cannot occur
// and ExperimentalBindStruct is not needed; viper's own AutomaticEnv is not used
// because it reads os.Getenv and cannot see target names it has never heard of.
func (l *loader) decode() (Config, error) {
	v := viper.New()
	for k, val := range l.defaults {
		v.SetDefault(k, val)
	}
	if err := v.MergeConfigMap(nest(l.file)); err != nil {
		return Config{}, fmt.Errorf("merging file: %w", err)
	}
	for k, val := range l.env {
		v.Set(k, val)
	}

	targetSchema := l.root.field("targets").schema.elem
	for name, kind := range l.targetKinds() {
		kd := map[string]any{}
		flatten(reflect.ValueOf(l.kinds.defaults(kind)), targetSchema, "targets."+name, true, kd)
		for k, val := range kd {
			v.SetDefault(k, val)
			if _, set := l.origins[k]; !set {
				l.origins[k] = "default"
			}
		}
	}

	var cfg Config
	err := v.UnmarshalExact(&cfg, viper.DecodeHook(decodeHook()), func(dc *mapstructure.DecoderConfig) {
		// Every leaf is already typed by parseText; weak typing would only hide mistakes
		// such as a number where a list belongs.
		dc.WeaklyTypedInput = false
	})
	if err != nil {
		return Config{}, fmt.Errorf("decoding configuration: %w", err)
	}
	cfg.origins = l.origins
	return cfg, nil
}

// targetKinds returns each target's kind, the highest layer winning.
func (l *loader) targetKinds() map[string]string {
	kinds := map[string]string{}
	for _, layer := range []map[string]any{l.defaults, l.file, l.env} {
		for k, val := range layer {
			rest, ok := strings.CutPrefix(k, "targets.")
			name, field, _ := strings.Cut(rest, ".")
			if ok && field == "kind" {
				kinds[name], _ = val.(string)
			}
		}
	}
	return kinds
}

// decodeHook is viper's default pair (durations from strings, comma lists) composed
// back in, as a custom hook replaces them, plus a guard against unit-less durations.
// The loader hands over typed values already; the hooks keep values set by code
// through viper working the same way.
func decodeHook() mapstructure.DecodeHookFunc {
	return mapstructure.ComposeDecodeHookFunc(
		rejectUnitlessDuration,
		mapstructure.StringToTimeDurationHookFunc(),
		commaList,
	)
}

func rejectUnitlessDuration(from, to reflect.Type, data any) (any, error) {
	if to != durationType || from == durationType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if !reflect.ValueOf(data).IsZero() {
			return nil, fmt.Errorf("duration %v has no unit (write e.g. \"%vs\")", data, data)
		}
	}
	return data, nil
}

func commaList(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice || to.Elem().Kind() != reflect.String {
		return data, nil
	}
	return splitList(reflect.ValueOf(data).String()), nil
}
