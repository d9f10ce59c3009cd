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
	// deferred is set by Index: playbooks are checked and compiled when Resolve
	// first returns them, not at load.
	deferred *deferredCheck
}

// deferredCheck checks each playbook of an Index once, when it is first chosen.
type deferredCheck struct {
	targets map[string]string
	kinds   []executors.Kind

	mu      sync.Mutex
	pending map[string]*problems // id → parse problems so far, until checked
	failed  map[string]error
}

// Index is Load for a process that runs one playbook (bot diagnose): it reads
// and parses every playbook, so listing and choosing work and malformed files are
// reported, but checks and compiles a playbook's expressions only when Resolve
// first returns it — compiling them all was most of a diagnosis's start-up.
func Index(dir string, targets map[string]string, kinds ...executors.Kind) (*Catalog, error) {
	d := &deferredCheck{targets: targets, kinds: kinds, pending: map[string]*problems{}, failed: map[string]error{}}
	c, err := load(dir, func(file string, data []byte) (*Playbook, error) {
		pb, pr, err := parse(file, data)
		if err != nil {
			return nil, err
		}
		if len(pr.list) > 0 {
			return nil, pr.list.sorted()
		}
		d.pending[pb.ID] = pr
		return pb, nil
	})
	if err != nil {
		return nil, err
	}
	c.deferred = d
	return c, nil
}

// ready checks and compiles pb if that was deferred; it is safe for concurrent use.
func (d *deferredCheck) ready(pb *Playbook) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err, failed := d.failed[pb.ID]; failed {
		return err
	}
	pr, pending := d.pending[pb.ID]
	if !pending {
		return nil
	}
	delete(d.pending, pb.ID)
	check(pr, pb, d.targets, d.kinds)
	if len(pr.list) > 0 {
		d.failed[pb.ID] = pr.list.sorted()
		return d.failed[pb.ID]
	}
	return nil
}

// Load reads the built-in playbooks and then every *.yaml/*.yml in dir (when dir is
// not empty). targets maps configured target names to their kind; nil skips the
// target check. kinds describe the target kinds (see Parse). Every problem in
// every file is returned at once.
func Load(dir string, targets map[string]string, kinds ...executors.Kind) (*Catalog, error) {
	return load(dir, func(file string, data []byte) (*Playbook, error) { return Parse(file, data, targets, kinds...) })
}

func load(dir string, parseFile func(file string, data []byte) (*Playbook, error)) (*Catalog, error) {
	c := &Catalog{byID: map[string]*Playbook{}}
	var all Problems
	add := func(pb *Playbook, err error) {
		var ps Problems
		if errors.As(err, &ps) {
			all = append(all, ps...)
			return
		}
		if err != nil {
			all = append(all, Problem{Msg: err.Error()})
			return
		}
		c.byID[pb.ID] = pb
	}
	entries, err := fs.Glob(builtin, "builtin/*.yaml")
	if err != nil {
		return nil, err
	}
	for _, name := range entries {
		data, err := builtin.ReadFile(name)
		if err != nil {
			return nil, err
		}
		add(parseFile("builtin:"+filepath.Base(name), data))
	}
	if dir != "" {
		files, err := yamlFiles(dir)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("playbooks: %w", err)
			}
			add(parseFile(f, data))
		}
	}
	if len(all) > 0 {
		return nil, all
	}
	return c, nil
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

// All lists the playbooks by id.
func (c *Catalog) All() []*Playbook {
	out := make([]*Playbook, 0, len(c.byID))
	for _, id := range sortedKeys(c.byID) {
		out = append(out, c.byID[id])
	}
	return out
}

// Resolve finds the playbook for an NDR code, phrase or playbook id.
func (c *Catalog) Resolve(code string) (*Playbook, error) {
	for _, pb := range c.All() {
		if pb.matches(code) {
			if c.deferred != nil {
				if err := c.deferred.ready(pb); err != nil {
					return nil, err
				}
			}
			return pb, nil
		}
	}
	var known []string
	for _, pb := range c.All() {
		known = append(known, pb.ID+" ("+strings.Join(pb.Matches, ", ")+")")
	}
	return nil, fmt.Errorf("%w: no playbook for %q; known: %s", incident.ErrNotFound, truncate(code, 40), strings.Join(known, "; "))
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
