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

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
)

//go:embed builtin/*.yaml
var builtin embed.FS

// Catalog is the set of playbooks the bot knows: the built-in ones, added to or
// overridden (by id) by a configured directory.
type Catalog struct {
	byID map[string]*Playbook
}

// Load reads the built-in playbooks and then every *.yaml/*.yml in dir (when dir is
// not empty). targets maps configured target names to their kind; nil skips the
// target check. kinds describe the target kinds (see Parse). Every problem in
// every file is returned at once.
func Load(dir string, targets map[string]string, kinds ...executors.Kind) (*Catalog, error) {
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
		add(Parse("builtin:"+filepath.Base(name), data, targets, kinds...))
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
			add(Parse(f, data, targets, kinds...))
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
