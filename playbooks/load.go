package playbooks

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/internal/lazyre"
	"github.com/ndrbot/ndrbot/playbooks/params"
)

var idRE = lazyre.New(`^[a-z0-9][a-z0-9.\-]*$`)

// Parse reads one playbook file. It returns every problem it finds, each with the
// file and line, as Problems. knownTargets, when not nil, is the set of configured
// target groups and their kinds; a step or relief on another target is a problem.
// kinds describe the target kinds (executors/registry): what each runs, its
// checks and cmdlets, their parameters and the fields of their rows. Without
// them nothing is checked against a kind.
func Parse(file string, data []byte, knownTargets map[string]string, kinds ...executors.Kind) (*Playbook, error) {
	pb, pr, err := parse(file, data)
	if err != nil {
		return nil, err
	}
	check(pr, pb, knownTargets, kinds)
	if len(pr.list) > 0 {
		return nil, pr.list.sorted()
	}
	return pb, nil
}

// sourceVersion is a playbook's Version: the start of its file's SHA-256.
func sourceVersion(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:12]
}

// parse reads one playbook file into its structure, without the cross-checks
// and expression compilation of check: what listing and choosing a playbook
// need. The problems found so far are in the returned problems.
func parse(file string, data []byte) (*Playbook, *problems, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, Problems{{File: file, Line: YAMLErrorLine(err), Msg: err.Error()}}
	}
	pr := &problems{file: file}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		pr.add(1, "a playbook is a YAML mapping")
		return nil, nil, pr.list
	}
	pb := &Playbook{Source: file, Version: sourceVersion(data)}
	root := doc.Content[0]
	top := fields(pr, root, "id", "title", "summary", "matches", "params", "steps", "rules", "reliefs", "escalate")

	pb.ID = str(pr, top["id"])
	if pb.ID == "" {
		pr.add(root.Line, "id is required")
	} else if !idRE().MatchString(pb.ID) {
		pr.add(top["id"].Line, "id %q: use lower-case letters, digits, '.' and '-'", pb.ID)
	}
	pb.Title = str(pr, top["title"])
	if pb.Title == "" {
		pr.add(root.Line, "title is required")
	}
	pb.Summary = str(pr, top["summary"])
	pb.Matches = strs(pr, top["matches"])
	parseParams(pr, pb, top["params"])
	parseSteps(pr, pb, top["steps"])
	parseRules(pr, pb, top["rules"])
	parseReliefs(pr, pb, top["reliefs"])
	parseEscalations(pr, pb, top["escalate"])
	if len(pb.Steps) == 0 {
		pr.add(root.Line, "steps: a playbook needs at least one step")
	}
	return pb, pr, nil
}

var yamlLineRE = lazyre.New(`line (\d+)`)

// YAMLErrorLine is the line a YAML parse error names, 0 when it names none.
func YAMLErrorLine(err error) int {
	if m := yamlLineRE().FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// fields reads a mapping node, reporting keys that are not allowed: a misspelt
// key would otherwise silently do nothing.
func fields(pr *problems, n *yaml.Node, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n == nil {
		return out
	}
	if n.Kind != yaml.MappingNode {
		pr.add(n.Line, "expected a mapping")
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(allowed, k.Value) {
			pr.add(k.Line, "unknown key %q (allowed: %s)", k.Value, strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			pr.add(k.Line, "duplicate key %q", k.Value)
		}
		out[k.Value] = v
	}
	return out
}

// entries returns a mapping's key/value pairs in file order.
func entries(pr *problems, n *yaml.Node) [][2]*yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		pr.add(n.Line, "expected a mapping")
		return nil
	}
	var out [][2]*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if seen[k.Value] {
			pr.add(k.Line, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		out = append(out, [2]*yaml.Node{k, n.Content[i+1]})
	}
	return out
}

func str(pr *problems, n *yaml.Node) string {
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		pr.add(n.Line, "expected a string")
		return ""
	}
	return n.Value
}

func strs(pr *problems, n *yaml.Node) []string {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		pr.add(n.Line, "expected a list of strings")
		return nil
	}
	var out []string
	for _, c := range n.Content {
		out = append(out, str(pr, c))
	}
	return out
}

func duration(pr *problems, n *yaml.Node) time.Duration {
	s := str(pr, n)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		pr.add(n.Line, "%q is not a duration (e.g. 90s, 5m, 1h)", s)
		return 0
	}
	return d
}

func integer(pr *problems, n *yaml.Node) int {
	s := str(pr, n)
	if s == "" {
		return 0
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		pr.add(n.Line, "%q is not a whole number", s)
	}
	return v
}

func boolean(pr *problems, n *yaml.Node, def bool) bool {
	s := str(pr, n)
	if s == "" {
		return def
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		pr.add(n.Line, "%q is not true or false", s)
	}
	return v
}

func parseParams(pr *problems, pb *Playbook, n *yaml.Node) {
	pb.Params = params.Set{}
	for _, kv := range entries(pr, n) {
		name := kv[0].Value
		var spec params.Spec
		fields(pr, kv[1], "type", "required", "default", "values", "min", "max", "help", "example")
		if !params.ValidName(name) {
			pr.add(kv[0].Line, "params.%s: a name is a lower-case letter followed by lower-case letters, digits or _", name)
		}
		if err := kv[1].Decode(&spec); err != nil {
			pr.add(kv[1].Line, "params.%s: %v", name, err)
			continue
		}
		if err := spec.Check(); err != nil {
			pr.add(kv[1].Line, "params.%s: %v", name, err)
		}
		pb.Params[name] = spec
		pb.ParamOrder = append(pb.ParamOrder, name)
	}
}

func parseArgs(pr *problems, n *yaml.Node) []Arg {
	var out []Arg
	for _, kv := range entries(pr, n) {
		out = append(out, Arg{Name: kv[0].Value, Expr: str(pr, kv[1])})
	}
	return out
}

var (
	cmdletNameRE = lazyre.New(`^[A-Z][A-Za-z]*-[A-Za-z][A-Za-z0-9]*$`)
	argNameRE    = lazyre.New(`^[A-Za-z][A-Za-z0-9]*$`)
	wholeHoleRE  = lazyre.New(`^\{\{(.*)\}\}$`)
)

// parseCmdlet reads the cmdlet, args and select keys of a step, relief or
// preview; nil when there is no cmdlet.
func parseCmdlet(pr *problems, where string, line int, f map[string]*yaml.Node) *Cmdlet {
	name := str(pr, f["cmdlet"])
	if name == "" {
		if f["args"] != nil || f["select"] != nil || f["foreach"] != nil || f["where"] != nil || f["derive"] != nil {
			pr.add(line, "%s: args, select, where, derive and foreach go with cmdlet", where)
		}
		return nil
	}
	c := &Cmdlet{Name: name, Select: strs(pr, f["select"]), ForEach: str(pr, f["foreach"]), Where: str(pr, f["where"]), Derive: parseArgs(pr, f["derive"]), Line: f["cmdlet"].Line}
	c.selectLine = lineOf(f["select"], c.Line)
	if !cmdletNameRE().MatchString(name) {
		pr.add(c.Line, "%s.cmdlet: %q is not a cmdlet name (Verb-Noun, letters and digits)", where, name)
	}
	for _, kv := range entries(pr, f["args"]) {
		a := CmdletArg{Name: kv[0].Value, Line: kv[0].Line}
		if !argNameRE().MatchString(a.Name) {
			pr.add(kv[0].Line, "%s.args: %q is not a parameter name (letters and digits, no dash)", where, a.Name)
		}
		a.Value, a.Expr = argValue(pr, where+".args."+a.Name, kv[1])
		c.Args = append(c.Args, a)
	}
	for _, s := range c.Select {
		if !argNameRE().MatchString(s) {
			pr.add(f["select"].Line, "%s.select: %q is not a property name", where, s)
		}
	}
	return c
}

// argValue reads a cmdlet argument: "{{ expression }}" as a whole is computed at
// run time; anything else is a literal with YAML's type (a list of literals for
// a multi-valued parameter).
func argValue(pr *problems, where string, n *yaml.Node) (any, string) {
	switch n.Kind {
	case yaml.SequenceNode:
		var out []any
		for _, c := range n.Content {
			v, e := argValue(pr, where, c)
			if e != "" {
				pr.add(c.Line, "%s: an expression goes in place of the whole list", where)
			}
			out = append(out, v)
		}
		return out, ""
	case yaml.ScalarNode:
	default:
		pr.add(n.Line, "%s: expected a value, a list or \"{{ expression }}\"", where)
		return nil, ""
	}
	if n.Tag == "!!str" {
		if m := wholeHoleRE().FindStringSubmatch(strings.TrimSpace(n.Value)); m != nil {
			e := strings.TrimSpace(m[1])
			if e == "" || strings.Contains(e, "{{") {
				pr.add(n.Line, "%s: one expression per argument", where)
			}
			return nil, e
		}
		if strings.Contains(n.Value, "{{") {
			pr.add(n.Line, "%s: text with {{ }} inside is not allowed: make the whole value one expression, so nothing is spliced into text", where)
		}
		return n.Value, ""
	}
	var v any
	switch n.Tag {
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			pr.add(n.Line, "%s: %v", where, err)
		}
		v = i
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			pr.add(n.Line, "%s: %v", where, err)
		}
		v = f
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			pr.add(n.Line, "%s: %v", where, err)
		}
		v = b
	default:
		pr.add(n.Line, "%s: %q is not a value a cmdlet takes (text, number, true/false or a list)", where, n.Value)
	}
	return v, ""
}

func parseSteps(pr *problems, pb *Playbook, n *yaml.Node) {
	for _, kv := range entries(pr, n) {
		f := fields(pr, kv[1], "title", "target", "powershell", "check", "cmdlet", "args", "select", "where", "derive", "foreach", "needs", "when", "with", "timeout", "run_on")
		s := &Step{
			ID:         kv[0].Value,
			Line:       kv[0].Line,
			Title:      str(pr, f["title"]),
			Target:     str(pr, f["target"]),
			PowerShell: str(pr, f["powershell"]),
			Check:      str(pr, f["check"]),
			Cmdlet:     parseCmdlet(pr, "steps."+kv[0].Value, kv[0].Line, f),
			Needs:      strs(pr, f["needs"]),
			When:       str(pr, f["when"]),
			With:       parseArgs(pr, f["with"]),
			Timeout:    duration(pr, f["timeout"]),
			RunOn:      str(pr, f["run_on"]),
			checkLine:  lineOf(f["check"], kv[0].Line),
		}
		if s.Title == "" {
			s.Title = s.ID
		}
		if s.Timeout == 0 {
			s.Timeout = 2 * time.Minute
		}
		switch s.RunOn {
		case "":
			s.RunOn = "all"
		case "all", "one":
		default:
			pr.add(f["run_on"].Line, "steps.%s.run_on: %q must be all or one", s.ID, s.RunOn)
		}
		pb.Steps = append(pb.Steps, s)
	}
}

// lineOf is the line of a key's value, or def when the key is absent.
func lineOf(n *yaml.Node, def int) int {
	if n == nil {
		return def
	}
	return n.Line
}

// list returns a sequence's items, reporting a value of another shape.
func list(pr *problems, n *yaml.Node, key string) []*yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		pr.add(n.Line, "%s: expected a list", key)
		return nil
	}
	return n.Content
}

func parseRules(pr *problems, pb *Playbook, n *yaml.Node) {
	for i, c := range list(pr, n, "rules") {
		f := fields(pr, c, "id", "each", "when", "severity", "finding", "evidence", "propose")
		r := &Rule{
			ID:       str(pr, f["id"]),
			Each:     str(pr, f["each"]),
			When:     str(pr, f["when"]),
			Severity: incident.Severity(str(pr, f["severity"])),
			Finding:  str(pr, f["finding"]),
			Evidence: str(pr, f["evidence"]),
			Propose:  str(pr, f["propose"]),
			Line:     c.Line,
		}
		if r.ID == "" {
			r.ID = fmt.Sprintf("rule-%d", i+1)
		}
		pb.Rules = append(pb.Rules, r)
	}
}

func parseReliefs(pr *problems, pb *Playbook, n *yaml.Node) {
	for _, kv := range entries(pr, n) {
		f := fields(pr, kv[1], "title", "target", "powershell", "check", "cmdlet", "args", "select", "foreach", "with", "preview", "guard", "readback", "gate", "block", "risk", "rollback", "approval", "cooldown", "verify", "timeout")
		r := &Relief{
			ID:         kv[0].Value,
			Line:       kv[0].Line,
			Title:      str(pr, f["title"]),
			Target:     str(pr, f["target"]),
			PowerShell: str(pr, f["powershell"]),
			Check:      str(pr, f["check"]),
			Cmdlet:     parseCmdlet(pr, "reliefs."+kv[0].Value, kv[0].Line, f),
			With:       parseArgs(pr, f["with"]),
			Risk:       str(pr, f["risk"]),
			Rollback:   str(pr, f["rollback"]),
			Cooldown:   duration(pr, f["cooldown"]),
			Timeout:    duration(pr, f["timeout"]),
			checkLine:  lineOf(f["check"], kv[0].Line),
		}
		if r.Timeout == 0 {
			r.Timeout = 5 * time.Minute
		}
		if rb := f["readback"]; rb != nil {
			rf := fields(pr, rb, "cmdlet", "args", "select", "foreach")
			if r.Readback = parseCmdlet(pr, "reliefs."+r.ID+".readback", rb.Line, rf); r.Readback == nil {
				pr.add(rb.Line, "reliefs.%s.readback: name a cmdlet", r.ID)
			}
		}
		if g := f["gate"]; g != nil {
			gf := fields(pr, g, "steps", "ok", "every", "within")
			r.Gate = &Gate{Steps: strs(pr, gf["steps"]), OK: str(pr, gf["ok"]), Every: duration(pr, gf["every"]), Within: duration(pr, gf["within"]), Line: g.Line}
			if len(r.Gate.Steps) == 0 || r.Gate.OK == "" {
				pr.add(g.Line, "reliefs.%s.gate: name the steps to re-read and ok (true when the host just changed is healthy again)", r.ID)
			}
			if r.Gate.Every == 0 {
				r.Gate.Every = 30 * time.Second
			}
			if r.Gate.Within == 0 {
				r.Gate.Within = 10 * time.Minute
			}
		}
		if b := f["block"]; b != nil {
			bf := fields(pr, b, "when", "reason")
			r.Block = &Block{When: str(pr, bf["when"]), Reason: str(pr, bf["reason"]), Line: b.Line}
			if r.Block.When == "" || r.Block.Reason == "" {
				pr.add(b.Line, "reliefs.%s.block: when and reason are required", r.ID)
			}
		}
		if g := f["guard"]; g != nil {
			gf := fields(pr, g, "cmdlet", "args", "select", "foreach", "when", "refuse")
			r.Guard = &Guard{Cmdlet: parseCmdlet(pr, "reliefs."+r.ID+".guard", g.Line, gf), When: str(pr, gf["when"]), Refuse: str(pr, gf["refuse"]), Line: g.Line}
			if r.Guard.Cmdlet == nil || r.Guard.When == "" || r.Guard.Refuse == "" {
				pr.add(g.Line, "reliefs.%s.guard: name a cmdlet, when (for every row, as it) and refuse (the reason given)", r.ID)
			}
		}
		if pv := f["preview"]; pv != nil && pv.Kind == yaml.MappingNode {
			pf := fields(pr, pv, "cmdlet", "args", "select", "foreach")
			r.PreviewCmdlet = parseCmdlet(pr, "reliefs."+r.ID+".preview", pv.Line, pf)
			if r.PreviewCmdlet == nil {
				pr.add(pv.Line, "reliefs.%s.preview: a preview mapping names a cmdlet", r.ID)
			}
		} else {
			r.Preview = str(pr, pv)
		}
		if a := f["approval"]; a == nil {
			pr.add(kv[0].Line, "reliefs.%s: an approval policy is required (approval: {role, approvers, four_eyes, expires})", r.ID)
		} else {
			af := fields(pr, a, "role", "approvers", "four_eyes", "expires")
			r.Approval = incident.ApprovalPolicy{
				Role:      str(pr, af["role"]),
				Approvers: integer(pr, af["approvers"]),
				FourEyes:  boolean(pr, af["four_eyes"], true),
				Expires:   duration(pr, af["expires"]),
			}
			switch r.Approval.Role {
			case "":
				r.Approval.Role = "approver"
			case "approver", "admin":
			default:
				pr.add(a.Line, "reliefs.%s.approval.role: %q is not a role (approver or admin)", r.ID, r.Approval.Role)
			}
			if r.Approval.Approvers == 0 {
				r.Approval.Approvers = 1
			}
			if r.Approval.Approvers < 1 || r.Approval.Approvers > 5 {
				pr.add(a.Line, "reliefs.%s.approval.approvers: %d must be 1..5", r.ID, r.Approval.Approvers)
			}
			if r.Approval.Expires == 0 {
				pr.add(a.Line, "reliefs.%s.approval.expires is required (minutes, not days)", r.ID)
			} else if r.Approval.Expires > 24*time.Hour {
				pr.add(af["expires"].Line, "reliefs.%s.approval.expires: %s is too long for an incident (at most 24h)", r.ID, r.Approval.Expires)
			}
		}
		if v := f["verify"]; v != nil {
			vf := fields(pr, v, "after", "steps", "ok")
			r.Verify = &Verify{After: duration(pr, vf["after"]), Steps: strs(pr, vf["steps"]), OK: str(pr, vf["ok"]), Line: v.Line}
			if len(r.Verify.Steps) == 0 {
				pr.add(v.Line, "reliefs.%s.verify.steps: name the step(s) to re-run", r.ID)
			}
		}
		if r.Risk == "" {
			pr.add(kv[0].Line, "reliefs.%s.risk: say what could go wrong", r.ID)
		}
		pb.Reliefs = append(pb.Reliefs, r)
	}
}

func parseEscalations(pr *problems, pb *Playbook, n *yaml.Node) {
	for i, c := range list(pr, n, "escalate") {
		f := fields(pr, c, "id", "when", "reason", "owner", "next")
		e := &Escalation{
			ID:     str(pr, f["id"]),
			When:   str(pr, f["when"]),
			Reason: str(pr, f["reason"]),
			Owner:  str(pr, f["owner"]),
			Next:   str(pr, f["next"]),
			Line:   c.Line,
		}
		if e.ID == "" {
			e.ID = fmt.Sprintf("escalate-%d", i+1)
		}
		pb.Escalate = append(pb.Escalate, e)
	}
}
