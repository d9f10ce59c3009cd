package playbooks

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
)

//go:embed builtin/*.yaml
var builtin embed.FS

// Catalog is the set of playbooks the bot knows: the built-in ones, added to or
// overridden (by id) by a configured directory.
type Catalog struct {
	byID map[string]*Playbook
	// unparsed are the built-ins an Index knows by id and matches only, until
	// one is chosen or the playbooks are listed.
	unparsed map[string]*unparsed
	// deferred is set by Index: playbooks are checked and compiled when Resolve
	// first returns them, not at load.
	deferred *deferredCheck
}

// unparsed is a built-in playbook known by its head's id and matches; it is
// built once, when first needed (builtinParse).
type unparsed struct {
	head Head   // without Params
	file string // under builtin/

	once sync.Once
	pb   *Playbook
	err  error
}

// fullHead is the head with its params, from the playbook built whole; one
// that does not parse is listed without them (Resolve reports its problems).
func (u *unparsed) fullHead() Head {
	if pb, err := u.playbook(); err == nil {
		return pb.Head()
	}
	return u.head
}

func (u *unparsed) read() ([]byte, error) { return builtin.ReadFile("builtin/" + u.file) }

// knownMatches are the matches its head names; nil for no entry.
func (u *unparsed) knownMatches() []string {
	if u == nil {
		return nil
	}
	return u.head.Matches
}

// playbook parses it as an Index does (indexParse), once.
func (u *unparsed) playbook() (*Playbook, error) {
	u.once.Do(func() {
		data, err := u.read()
		if err != nil {
			u.err = err
			return
		}
		if u.pb, u.err = builtinParse(u.file, data); u.pb != nil {
			u.pb.builtin = true
		}
	})
	return u.pb, u.err
}

// builtinParse is indexParse for the built-in file named file: what parse
// returned for it when ndrbot was built (builtin_parsed.go), which takes no
// YAML parser, unless data is not that file; a build that changed a built-in
// and did not rewrite builtin_parsed.go parses it.
func builtinParse(file string, data []byte) (*Playbook, error) {
	if pb := parsedBuiltin(file); pb != nil && pb.Version == sourceVersion(data) {
		return pb, nil
	}
	return indexParse("builtin:"+file, data)
}

// deferredCheck checks each playbook of an Index once, when it is first chosen:
// its steps at once, the rest (rules, reliefs, escalations and the fields every
// expression reads) in the background, while the diagnosis's first steps wait
// on the network. The engine waits for the rest before it evaluates a rule
// (Playbook.await).
type deferredCheck struct {
	targets map[string]string
	kinds   []executors.Kind

	mu sync.Mutex
	// steps holds the verdict of each chosen playbook's first phase: its
	// problems together with the second phase's, or nil when the second phase
	// was started (Playbook.pending).
	steps map[*Playbook]error
}

// pendingCheck is the second phase of a deferred check.
type pendingCheck struct {
	done chan struct{}
	err  error // Problems; set before done is closed
}

// Index is Load for a process that runs one playbook (ndrbot diagnose). It reads
// the built-ins' ids and matches without reading them (builtinHeads; their
// params when Heads asks), parses the files of dir (so their problems are reported at
// once, as Load does), and parses, checks and compiles a built-in only when
// Resolve first returns it or All lists it. The chosen playbook's steps are checked before Resolve
// returns; its rules, reliefs and escalations are compiled concurrently with
// the diagnosis's first steps, and their problems, if any, end the diagnosis
// (Engine.Diagnose) and are returned by the next Resolve.
func Index(dir string, targets map[string]string, kinds ...executors.Kind) (*Catalog, error) {
	return Prefetch("").Index(dir, targets, kinds...)
}

// Prefetched is what an Index does first and needs no configuration for: the
// built-ins known by their heads, and the one a code chooses built (Prefetch).
type Prefetched struct {
	cat *Catalog // the built-ins alone
}

// Prefetch indexes the built-ins and builds the one code chooses (none for
// ""), from its Go copy (builtin_parsed.go), before the configuration is read.
// A configured directory that replaces that playbook makes it wasted work, not
// a wrong choice.
func Prefetch(code string) *Prefetched {
	p := &Prefetched{cat: newCatalog()}
	p.cat.indexBuiltins()
	if id, ok := p.Choose(code); ok {
		_, _ = p.cat.unparsed[id].playbook() // kept: Resolve returns it, or its problems
	}
	return p
}

// Choose is the built-in Catalog.Choose names for code; a configured
// directory may still replace it.
func (p *Prefetched) Choose(code string) (string, bool) {
	if code == "" {
		return "", false
	}
	return p.cat.Choose(code)
}

// Index is Index(dir, targets, kinds…) on what p read; call it once.
func (p *Prefetched) Index(dir string, targets map[string]string, kinds ...executors.Kind) (*Catalog, error) {
	c := p.cat
	var all Problems
	if err := c.addDir(dir, indexParse, &all); err != nil {
		return nil, err
	}
	if len(all) > 0 {
		return nil, all
	}
	c.deferred = &deferredCheck{targets: targets, kinds: kinds, steps: map[*Playbook]error{}}
	return c, nil
}

// indexParse is how an Index parses a playbook: its problems now, its check
// when it is chosen (deferredCheck).
func indexParse(file string, data []byte) (*Playbook, error) {
	pb, pr, err := parse(file, data)
	if err != nil {
		return nil, err
	}
	if len(pr.list) > 0 {
		return nil, pr.list.sorted()
	}
	return pb, nil
}

// ready checks pb if that was deferred; it is safe for concurrent use. It
// returns the problems of pb's steps at once (with those of the rest), and
// those of the rest once they are known; until then the engine waits for them.
func (d *deferredCheck) ready(pb *Playbook) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err, checked := d.steps[pb]; checked {
		if err != nil {
			return err
		}
		select {
		case <-pb.pending.done:
			return pb.pending.err
		default:
			return nil
		}
	}
	// A built-in is compiled without expr's optimiser, which rewrites a tree
	// to run faster: each expression runs a few times in a diagnosis, and all
	// are compiled before its first finding. What the optimiser also refuses
	// (a constant 1 / 0) it refused in a built-in when ndrbot was built
	// (TestBuiltinsLintClean), and the programs do the same
	// (TestCompilerIsExprCompile, TestBuiltinCasesPass).
	optimize := !pb.builtin
	c := newPlaybookCheck(pb, d.targets, d.kinds, optimize)
	// The rest is compiled from now on, on another core, while the steps are
	// checked here; the fields, which read what checking the steps writes,
	// once that is done.
	rest := *c
	rest.exprs = newExprCompiler(optimize)
	if pb.builtin {
		rest.exprs.deferred = &deferredTemplates{}
	}
	restProblems := &problems{file: pb.Source}
	pc := &pendingCheck{done: make(chan struct{})}
	stepsChecked := make(chan struct{})
	go func() {
		defer close(pc.done)
		rest.compile(restProblems)
		// A built-in's fields are checked when ndrbot is built, under every
		// kind each of its targets may be configured as
		// (TestBuiltinFieldsUnderEveryKind): the check, a third of this
		// phase, would find nothing a diagnosis waits for.
		if !pb.builtin {
			<-stepsChecked
			rest.fields(restProblems)
		}
		if len(restProblems.list) > 0 {
			pc.err = restProblems.list.sorted()
		}
	}()
	pr := &problems{file: pb.Source}
	c.steps(pr)
	close(stepsChecked)
	if len(pr.list) > 0 {
		// Broken already: report everything, as Load would.
		<-pc.done
		pr.list = append(pr.list, restProblems.list...)
		if pb.builtin {
			c.fields(pr)
		}
		d.steps[pb] = pr.list.sorted()
		return d.steps[pb]
	}
	d.steps[pb] = nil
	pb.pending = pc
	return nil
}

// Load reads the built-in playbooks and then every *.yaml/*.yml in dir (when dir is
// not empty). targets maps configured target names to their kind; nil skips the
// target check. kinds describe the target kinds (see Parse). Every problem in
// every file is returned at once.
func Load(dir string, targets map[string]string, kinds ...executors.Kind) (*Catalog, error) {
	return load(dir, func(file string, data []byte) (*Playbook, error) { return Parse(file, data, targets, kinds...) })
}

// load reads and parses the built-ins, then dir's files, each through parseFile.
func load(dir string, parseFile func(file string, data []byte) (*Playbook, error)) (*Catalog, error) {
	c := newCatalog()
	var all Problems
	if err := c.addBuiltins(parseFile, &all); err != nil {
		return nil, err
	}
	if err := c.addDir(dir, parseFile, &all); err != nil {
		return nil, err
	}
	if len(all) > 0 {
		return nil, all
	}
	return c, nil
}

func newCatalog() *Catalog {
	return &Catalog{byID: map[string]*Playbook{}, unparsed: map[string]*unparsed{}}
}

// add adds a parsed playbook, replacing one of the same id; the problems of
// one that did not parse go to all.
func (c *Catalog) add(all *Problems, pb *Playbook, err error) {
	var ps Problems
	if errors.As(err, &ps) {
		*all = append(*all, ps...)
		return
	}
	if err != nil {
		*all = append(*all, Problem{Msg: err.Error()})
		return
	}
	delete(c.unparsed, pb.ID)
	c.byID[pb.ID] = pb
}

// indexBuiltins knows the built-in playbooks by the heads written down when
// ndrbot was built (builtinHeads): no file is read until one is chosen.
func (c *Catalog) indexBuiltins() {
	for _, bh := range builtinHeads {
		c.unparsed[bh.ID] = &unparsed{head: Head{ID: bh.ID, Matches: bh.Matches}, file: bh.File}
	}
}

// addBuiltins reads and parses the built-in playbooks.
func (c *Catalog) addBuiltins(parseFile func(file string, data []byte) (*Playbook, error), all *Problems) error {
	entries, err := fs.Glob(builtin, "builtin/*.yaml")
	if err != nil {
		return err
	}
	for _, name := range entries {
		data, err := builtin.ReadFile(name)
		if err != nil {
			return err
		}
		pb, err := parseFile("builtin:"+filepath.Base(name), data)
		c.add(all, pb, err)
	}
	return nil
}

// builtinHead is a built-in playbook's id and matches, as parse reads them
// from its file under builtin/. builtinHeads, one per file, are written by
// `go test ./playbooks -run TestBuiltinHeads -update`; the test holds them to
// the files.
type builtinHead struct {
	File    string
	ID      string
	Matches []string
}

// addDir adds every playbook file of dir ("": none), replacing the built-ins
// of the same id.
func (c *Catalog) addDir(dir string, parseFile func(file string, data []byte) (*Playbook, error), all *Problems) error {
	if dir == "" {
		return nil
	}
	files, err := yamlFiles(dir)
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("playbooks: %w", err)
		}
		pb, err := parseFile(f, data)
		c.add(all, pb, err)
	}
	return nil
}

// LintDir parses every playbook in dir on its own (without the built-ins).
func LintDir(dir string, targets map[string]string, kinds ...executors.Kind) (int, error) {
	files, err := yamlFiles(dir)
	if err != nil {
		return 0, err
	}
	var all Problems
	ids := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return 0, fmt.Errorf("playbooks: %w", err)
		}
		pb, err := Parse(f, data, targets, kinds...)
		var ps Problems
		if errors.As(err, &ps) {
			all = append(all, ps...)
			continue
		}
		if prev, dup := ids[pb.ID]; dup {
			all = append(all, Problem{File: f, Line: 1, Msg: fmt.Sprintf("id %q is also defined in %s", pb.ID, prev)})
		}
		ids[pb.ID] = f
	}
	if len(all) > 0 {
		return len(files), all
	}
	return len(files), nil
}

func yamlFiles(dir string) ([]string, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("playbooks dir: %w", err)
	}
	if !info.IsDir() {
		return []string{dir}, nil
	}
	var out []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	sort.Strings(out)
	return out, nil
}

// ids are the ids of every playbook, parsed or not, sorted.
func (c *Catalog) ids() []string {
	ids := sortedKeys(c.byID)
	for id := range c.unparsed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// All lists the playbooks by id. An Index parses the built-ins it has not
// parsed yet; one that does not parse (the tests keep every built-in clean) is
// left out, and Resolve reports its problems.
func (c *Catalog) All() []*Playbook {
	out := make([]*Playbook, 0, len(c.byID)+len(c.unparsed))
	for _, id := range c.ids() {
		if pb := c.byID[id]; pb != nil {
			out = append(out, pb)
		} else if pb, err := c.unparsed[id].playbook(); err == nil {
			out = append(out, pb)
		}
	}
	return out
}

// Heads lists every playbook's head by id, without parsing a built-in an Index
// has not parsed yet (one whose rest does not parse is listed; Resolve reports
// its problems when it is chosen).
func (c *Catalog) Heads() []Head {
	out := make([]Head, 0, len(c.byID)+len(c.unparsed))
	for _, id := range c.ids() {
		if pb := c.byID[id]; pb != nil {
			out = append(out, pb.Head())
		} else {
			out = append(out, c.unparsed[id].fullHead())
		}
	}
	return out
}

// Resolve finds the playbook for an NDR code, phrase or playbook id.
func (c *Catalog) Resolve(code string) (*Playbook, error) {
	if id, ok := c.Choose(code); ok {
		pb := c.byID[id]
		if pb == nil {
			var err error
			if pb, err = c.unparsed[id].playbook(); err != nil {
				return nil, err
			}
		}
		if c.deferred != nil {
			if err := c.deferred.ready(pb); err != nil {
				return nil, err
			}
		}
		return pb, nil
	}
	var known []string
	for _, id := range c.ids() {
		ms := c.unparsed[id].knownMatches()
		if pb := c.byID[id]; pb != nil {
			ms = pb.Matches
		}
		known = append(known, id+" ("+strings.Join(ms, ", ")+")")
	}
	return nil, fmt.Errorf("%w: no playbook for %q; known: %s", incident.ErrNotFound, truncate(code, 40), strings.Join(known, "; "))
}

// Choose is the id of the playbook Resolve(code) returns, found by its matches
// alone: nothing is parsed or checked. false: no playbook matches code.
func (c *Catalog) Choose(code string) (string, bool) {
	for _, id := range c.ids() {
		if pb := c.byID[id]; pb != nil {
			if pb.matches(code) {
				return id, true
			}
		} else if matches(id, c.unparsed[id].head.Matches, code) {
			return id, true
		}
	}
	return "", false
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
