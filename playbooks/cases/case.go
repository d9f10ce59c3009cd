// Package cases is the playbook author's test bench: a case file names a
// playbook, an organisation file for the lab and what the diagnosis must (and
// must not) find, propose and escalate; optionally reliefs to approve and what
// must hold after their verification. Load reads case files, Run runs one
// against a fresh lab. README.md documents the format.
package cases

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/playbooks"
)

// BuiltinPrefix marks an org: that names one of the lab's built-in
// organisation files (lab.OrgNames) rather than a path.
const BuiltinPrefix = "builtin:"

// Case is one parsed case file.
type Case struct {
	// File is the case file's path as found (Load joins it to its directory).
	File string
	// Name is File relative to the directory Load read, without the extension
	// ("ndr-5.5.4/overloaded-queue"), for listings and filters.
	Name string
	// Playbook is a playbook id or a code that resolves to one ("5.5.4").
	Playbook string
	// Org is the organisation as written: a path relative to the case file, or
	// BuiltinPrefix and a built-in name.
	Org string
	// Params are the run's parameters as a user would type them; the
	// playbook's typed parameters validate them when the case runs.
	Params map[string]string
	// Expect is checked on the diagnosis.
	Expect Expect
	// Approve are reliefs run, in order, after the diagnosis.
	Approve []string
	// After is checked on what the approved reliefs' verification found; nil
	// when the case has no after:.
	After *Expect

	// orgPath is Org resolved against the case file ("" for a built-in).
	orgPath string
	// lines maps a key path ("expect.findings", "approve[1]") to its line.
	lines map[string]int
}

// Expect is what a phase of the run must show. A nil list was not given and is
// not checked; an empty one was (with Only, "none at all").
type Expect struct {
	// Findings are rule ids; each must be found at least as many times as it
	// is listed.
	Findings    []string
	NotFindings []string
	// Only makes every list given among Findings, Proposals and Escalations
	// exact: nothing else may appear.
	Only         bool
	Proposals    []ProposalExpect
	NotProposals []string
	Escalations  []string
	// NotEscalations are escalation ids that must not be raised.
	NotEscalations []string
	// Text are substrings that must each appear in some finding's text.
	Text []string

	// Verified (after: only) is whether every approved relief's verification
	// must hold (true) or fail (false); nil leaves it unchecked.
	Verified *bool
	// Failed (after: only) says the approved reliefs are expected to fail to
	// run; otherwise a relief that fails is a mismatch.
	Failed bool
}

// ProposalExpect is one expected proposal. Only what is set is compared.
type ProposalExpect struct {
	Relief string
	// Hosts, when set, are the hosts it must run on (in any order).
	Hosts []string
	// Args, when set, must each equal the proposal's argument of that name.
	Args map[string]any
	// Blocked, when set, says whether the proposal must be blocked (cooldown…).
	Blocked *bool
}

// Load reads every *.yaml and *.yml file below dir (or the one file dir names),
// sorted by path, skipping directories named orgs (organisation files live
// there). Every problem in every file is returned at once, as
// playbooks.Problems, each with its file and line.
func Load(dir string) ([]Case, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("cases: %w", err)
	}
	var files []string
	root := dir
	if !info.IsDir() {
		files, root = []string{dir}, filepath.Dir(dir)
	} else {
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != dir && d.Name() == "orgs" {
					return filepath.SkipDir
				}
				return nil
			}
			if ext := filepath.Ext(path); ext == ".yaml" || ext == ".yml" {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("cases: %w", err)
		}
	}
	slices.Sort(files)
	var (
		out []Case
		all playbooks.Problems
	)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("cases: %w", err)
		}
		c, err := Parse(f, data)
		var ps playbooks.Problems
		if errors.As(err, &ps) {
			all = append(all, ps...)
			continue
		}
		if err != nil {
			return nil, err
		}
		if rel, err := filepath.Rel(root, f); err == nil {
			c.Name = strings.TrimSuffix(filepath.ToSlash(rel), filepath.Ext(rel))
		}
		out = append(out, c)
	}
	if len(all) > 0 {
		return nil, all
	}
	return out, nil
}

// Parse reads one case file; file names it in problems and is where a relative
// org: path starts from. The error, when not nil, is playbooks.Problems.
func Parse(file string, data []byte) (Case, error) {
	c := Case{File: file, Name: strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)), lines: map[string]int{}}
	p := &parser{file: file, lines: c.lines}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Case{}, playbooks.Problems{{File: file, Line: playbooks.YAMLErrorLine(err), Msg: err.Error()}}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return Case{}, playbooks.Problems{{File: file, Line: 1, Msg: "a case is a YAML mapping (playbook:, org:, expect: …)"}}
	}
	root := doc.Content[0]
	top := p.fields("", root, "playbook", "org", "params", "expect", "approve", "after")

	c.Playbook = p.str("playbook", top["playbook"])
	if c.Playbook == "" {
		p.add(root.Line, "playbook: required (a playbook id or a code it matches)")
	}
	c.Org = p.str("org", top["org"])
	switch name, builtin := strings.CutPrefix(c.Org, BuiltinPrefix); {
	case c.Org == "":
		p.add(root.Line, "org: required (a path relative to this file, or %s<name>)", BuiltinPrefix)
	case builtin:
		if !slices.Contains(lab.OrgNames(), name) {
			p.add(top["org"].Line, "org: no built-in organisation %q (known: %s)", name, strings.Join(lab.OrgNames(), ", "))
		}
	default:
		c.orgPath = c.Org
		if !filepath.IsAbs(c.orgPath) {
			c.orgPath = filepath.Join(filepath.Dir(file), filepath.FromSlash(c.Org))
		}
		if _, err := os.Stat(c.orgPath); err != nil {
			p.add(top["org"].Line, "org: %v", err)
		}
	}
	c.Params = p.params(top["params"])
	if top["expect"] == nil {
		p.add(root.Line, "expect: required (findings:, proposals:, escalations: …)")
	} else {
		c.Expect = p.expect("expect", top["expect"], false)
	}
	c.Approve = p.strs("approve", top["approve"])
	if top["after"] != nil {
		if len(c.Approve) == 0 {
			p.add(p.lines["after"], "after: checks what approved reliefs left; it needs approve:")
		}
		a := p.expect("after", top["after"], true)
		c.After = &a
	}
	if len(p.list) > 0 {
		return Case{}, p.list
	}
	return c, nil
}

// parser collects problems for one file and remembers where each key was.
type parser struct {
	file  string
	lines map[string]int
	list  playbooks.Problems
}

func (p *parser) add(line int, format string, args ...any) {
	p.list = append(p.list, playbooks.Problem{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// fields reads a mapping, reporting keys that are not allowed: a misspelt
// expectation would otherwise check nothing and pass.
func (p *parser) fields(prefix string, n *yaml.Node, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, "%s: expected a mapping", prefix)
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(allowed, k.Value) {
			p.add(k.Line, "%s: unknown key (allowed: %s)", join(prefix, k.Value), strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			p.add(k.Line, "%s: duplicate key", join(prefix, k.Value))
		}
		out[k.Value] = v
		p.lines[join(prefix, k.Value)] = k.Line
	}
	return out
}

func (p *parser) str(key string, n *yaml.Node) string {
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		p.add(n.Line, "%s: expected a string", key)
		return ""
	}
	return n.Value
}

// strs reads a list of strings (a single string is a list of one); the result
// is non-nil when the key was given, so "findings: []" means "none".
func (p *parser) strs(key string, n *yaml.Node) []string {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return []string{}
	}
	if n.Kind == yaml.ScalarNode {
		p.lines[key+"[0]"] = n.Line
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, "%s: expected a list of strings", key)
		return nil
	}
	out := []string{}
	for i, c := range n.Content {
		item := fmt.Sprintf("%s[%d]", key, i)
		p.lines[item] = c.Line
		if s := p.str(item, c); s != "" {
			out = append(out, s)
		} else if c.Kind == yaml.ScalarNode {
			p.add(c.Line, "%s: empty", item)
		}
	}
	return out
}

func (p *parser) params(n *yaml.Node) map[string]string {
	if n == nil {
		return map[string]string{}
	}
	f := p.fieldsAny("params", n)
	out := make(map[string]string, len(f))
	for k, v := range f {
		if v.Kind != yaml.ScalarNode {
			p.add(v.Line, "params.%s: expected a value as typed on the command line", k)
			continue
		}
		out[k] = v.Value
	}
	return out
}

// fieldsAny reads a mapping whose keys are free (params, args).
func (p *parser) fieldsAny(prefix string, n *yaml.Node) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, "%s: expected a mapping", prefix)
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if _, dup := out[k.Value]; dup {
			p.add(k.Line, "%s.%s: duplicate key", prefix, k.Value)
		}
		out[k.Value] = n.Content[i+1]
		p.lines[prefix+"."+k.Value] = k.Line
	}
	return out
}

func (p *parser) boolean(key string, n *yaml.Node) *bool {
	if n == nil {
		return nil
	}
	v, err := strconv.ParseBool(p.str(key, n))
	if err != nil {
		p.add(n.Line, "%s: %q is not true or false", key, n.Value)
		return nil
	}
	return &v
}

// expect reads expect: or after:. after: has no proposals (a verification
// proposes nothing) but may say how the reliefs went.
func (p *parser) expect(key string, n *yaml.Node, after bool) Expect {
	allowed := []string{"findings", "not_findings", "only", "escalations", "not_escalations", "text"}
	if after {
		allowed = append(allowed, "verified", "failed")
	} else {
		allowed = append(allowed, "proposals", "not_proposals")
	}
	f := p.fields(key, n, allowed...)
	e := Expect{
		Findings:       p.strs(key+".findings", f["findings"]),
		NotFindings:    p.strs(key+".not_findings", f["not_findings"]),
		NotProposals:   p.strs(key+".not_proposals", f["not_proposals"]),
		Escalations:    p.strs(key+".escalations", f["escalations"]),
		NotEscalations: p.strs(key+".not_escalations", f["not_escalations"]),
		Text:           p.strs(key+".text", f["text"]),
		Verified:       p.boolean(key+".verified", f["verified"]),
	}
	if b := p.boolean(key+".only", f["only"]); b != nil {
		e.Only = *b
	}
	if b := p.boolean(key+".failed", f["failed"]); b != nil {
		e.Failed = *b
	}
	e.Proposals = p.proposals(key+".proposals", f["proposals"])
	if len(f) == 0 && n.Kind == yaml.MappingNode {
		p.add(n.Line, "%s: name at least one expectation (findings:, proposals:, escalations: …)", key)
	}
	return e
}

func (p *parser) proposals(key string, n *yaml.Node) []ProposalExpect {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		n = &yaml.Node{Kind: yaml.SequenceNode, Line: n.Line, Content: []*yaml.Node{n}}
	}
	out := []ProposalExpect{}
	for i, c := range n.Content {
		item := fmt.Sprintf("%s[%d]", key, i)
		p.lines[item] = c.Line
		if c.Kind == yaml.ScalarNode {
			out = append(out, ProposalExpect{Relief: p.str(item, c)})
			continue
		}
		f := p.fields(item, c, "relief", "hosts", "args", "blocked")
		pe := ProposalExpect{
			Relief:  p.str(item+".relief", f["relief"]),
			Hosts:   p.strs(item+".hosts", f["hosts"]),
			Blocked: p.boolean(item+".blocked", f["blocked"]),
		}
		if pe.Relief == "" && c.Kind == yaml.MappingNode {
			p.add(c.Line, "%s.relief: required", item)
		}
		if a := f["args"]; a != nil {
			args := p.fieldsAny(item+".args", a)
			pe.Args = make(map[string]any, len(args))
			for name, v := range args {
				var val any
				if err := v.Decode(&val); err != nil {
					p.add(v.Line, "%s.args.%s: %v", item, name, err)
				}
				pe.Args[name] = val
			}
		}
		out = append(out, pe)
	}
	return out
}

// line is where a key path was written; its parent's line when the path is
// not known (a Case built by hand has none: 0, and messages carry no line).
func (c Case) line(key string) int {
	for key != "" {
		if l, ok := c.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// at formats a message located at a key of the case file.
func (c Case) at(key, format string, args ...any) string {
	return playbooks.Problem{File: c.File, Line: c.line(key), Msg: key + ": " + fmt.Sprintf(format, args...)}.String()
}
