package playbooks

import (
	"slices"
	"strings"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
)

// check validates cross-references and compiles every expression. kinds, when
// not empty, say what each target kind runs (describe.go); the fields of the
// rows each step returns are then checked in every expression (fields.go).
func check(pr *problems, pb *Playbook, knownTargets map[string]string, kinds executors.Kinds) {
	c := newPlaybookCheck(pb, knownTargets, kinds, true)
	c.steps(pr)
	c.rest(pr)
}

// playbookCheck checks one playbook in two phases: steps, what a diagnosis
// needs before its first step starts, and rest (rules, reliefs, escalations and
// the fields every expression reads), which a diagnosis needs only once steps
// have finished. Run one after the other they report exactly what one pass
// would, in the same order.
type playbookCheck struct {
	pb           *Playbook
	knownTargets map[string]string
	kinds        executors.Kinds
	exprs        *exprCompiler

	stepIDs   map[string]*Step
	reliefIDs map[string]bool
	ruleIDs   map[string]bool
	// readsFindings is set by refsOK when an expression refers to rules or
	// reliefs: steps reads it for each step.
	readsFindings bool
}

// newPlaybookCheck checks pb; optimize: compile with expr's optimiser
// (newExprCompiler).
func newPlaybookCheck(pb *Playbook, knownTargets map[string]string, kinds executors.Kinds, optimize bool) *playbookCheck {
	c := &playbookCheck{pb: pb, knownTargets: knownTargets, kinds: kinds, exprs: newExprCompiler(optimize),
		stepIDs: map[string]*Step{}, reliefIDs: map[string]bool{}, ruleIDs: map[string]bool{}}
	for _, s := range pb.Steps {
		c.stepIDs[s.ID] = s
	}
	for _, r := range pb.Reliefs {
		c.reliefIDs[r.ID] = true
	}
	for _, r := range pb.Rules {
		c.ruleIDs[r.ID] = true
	}
	return c
}

func (c *playbookCheck) checkTarget(pr *problems, a lintAction) {
	if a.target == "" {
		pr.add(a.line, "%s.target is required", a.where)
		return
	}
	kind, known := c.knownTargets[a.target]
	if c.knownTargets != nil && !known {
		pr.add(a.line, "%s.target: unknown target %q (configured: %s)", a.where, a.target, strings.Join(sortedKeys(c.knownTargets), ", "))
	}
	set := 0
	for _, on := range []bool{a.script != "", a.check != "", a.cmdlet != nil} {
		if on {
			set++
		}
	}
	switch {
	case set == 0:
		pr.add(a.line, "%s: set cmdlet, powershell or check", a.where)
	case set > 1:
		pr.add(a.line, "%s: set one of cmdlet, powershell and check", a.where)
	case known && len(c.kinds) > 0:
		checkKind(pr, c.pb, c.kinds, kind, a)
	}
}

// refsOK reports references to unknown steps, reliefs and rules. allowedSteps,
// when not nil, limits step references (a step may only read what it needs).
func (c *playbookCheck) refsOK(pr *problems, line int, where string, r *refs, allowedSteps map[string]bool) {
	if len(r.rules) > 0 || len(r.reliefs) > 0 {
		c.readsFindings = true
	}
	for _, s := range r.steps {
		if c.stepIDs[s] == nil {
			pr.add(line, "%s: unknown step %q", where, s)
		} else if allowedSteps != nil && !allowedSteps[s] {
			pr.add(line, "%s: reads step %q, which is not in its needs", where, s)
		}
	}
	for _, id := range r.reliefs {
		if !c.reliefIDs[id] {
			pr.add(line, "%s: unknown relief %q", where, id)
		}
	}
	for _, id := range r.rules {
		if !c.ruleIDs[id] {
			pr.add(line, "%s: unknown rule %q", where, id)
		}
	}
	for _, name := range r.params {
		if _, declared := c.pb.Params[name]; !declared {
			pr.add(line, "%s: unknown name params.%s (declared: %s)", where, name, strings.Join(sortedKeys(c.pb.Params), ", "))
		}
	}
}

func (c *playbookCheck) compileArgs(pr *problems, line int, where string, args []Arg, allowed map[string]bool) {
	for i := range args {
		prog, r, err := c.exprs.compile(args[i].Expr, false)
		if err != nil {
			pr.add(line, "%s.with.%s: %v", where, args[i].Name, err)
			continue
		}
		args[i].prog = prog
		c.refsOK(pr, line, where+".with."+args[i].Name, r, allowed)
	}
}

// compileCmdlet compiles a cmdlet's expressions. A relief's arguments are fixed
// when it is approved (params, its with, the host): reading steps would let
// what runs drift from what was approved.
func (c *playbookCheck) compileCmdlet(pr *problems, where string, cm *Cmdlet, allowed map[string]bool, relief bool) {
	if cm == nil {
		return
	}
	if cm.ForEach != "" {
		prog, r, err := c.exprs.compile(cm.ForEach, false)
		switch {
		case err != nil:
			pr.add(cm.Line, "%s.foreach: %v", where, err)
		case relief && len(r.steps) > 0:
			pr.add(cm.Line, "%s.foreach: a relief's list reads params, args (its with) and host, not steps (%s): compute it in with", where, strings.Join(r.steps, ", "))
		default:
			cm.foreach = prog
			c.refsOK(pr, cm.Line, where+".foreach", r, allowed)
		}
	}
	for i := range cm.Derive {
		d := &cm.Derive[i]
		if relief {
			pr.add(cm.Line, "%s.derive: only steps add columns", where)
			break
		}
		if !argNameRE().MatchString(d.Name) {
			pr.add(cm.Line, "%s.derive: %q is not a column name", where, d.Name)
		}
		prog, r, err := c.exprs.compile(d.Expr, false)
		if err != nil {
			pr.add(cm.Line, "%s.derive.%s: %v", where, d.Name, err)
			continue
		}
		d.prog = prog
		c.refsOK(pr, cm.Line, where+".derive."+d.Name, r, allowed)
	}
	if cm.Where != "" {
		if relief {
			pr.add(cm.Line, "%s.where: only steps filter their rows", where)
		} else if prog, r, err := c.exprs.compile(cm.Where, true); err != nil {
			pr.add(cm.Line, "%s.where: %v", where, err)
		} else {
			cm.where = prog
			c.refsOK(pr, cm.Line, where+".where", r, allowed)
		}
	}
	seen := map[string]bool{}
	for i := range cm.Args {
		a := &cm.Args[i]
		if seen[strings.ToLower(a.Name)] {
			pr.add(a.Line, "%s.args: %s is given twice", where, a.Name)
		}
		seen[strings.ToLower(a.Name)] = true
		if a.Expr == "" {
			continue
		}
		prog, r, err := c.exprs.compile(a.Expr, false)
		if err != nil {
			pr.add(a.Line, "%s.args.%s: %v", where, a.Name, err)
			continue
		}
		a.prog = prog
		if relief && len(r.steps) > 0 {
			pr.add(a.Line, "%s.args.%s: a relief's arguments read params, args (its with) and host, not steps (%s): compute the value in with", where, a.Name, strings.Join(r.steps, ", "))
			continue
		}
		c.refsOK(pr, a.Line, where+".args."+a.Name, r, allowed)
	}
}

// steps is the first phase: duplicate rule ids, then every step (its target,
// needs and expressions), then needs cycles.
func (c *playbookCheck) steps(pr *problems) {
	seen := map[string]bool{}
	for _, r := range c.pb.Rules {
		if seen[r.ID] {
			pr.add(r.Line, "rules: duplicate id %q", r.ID)
		}
		seen[r.ID] = true
	}
	for _, s := range c.pb.Steps {
		where := "steps." + s.ID
		c.readsFindings = false
		c.checkTarget(pr, lintAction{where: where, line: s.Line, target: s.Target, script: s.PowerShell, check: s.Check,
			checkLine: s.checkLine, with: s.With, cmdlet: s.Cmdlet})
		for _, n := range s.Needs {
			if c.stepIDs[n] == nil {
				pr.add(s.Line, "%s.needs: unknown step %q", where, n)
			}
		}
		allowed := ancestors(s, c.stepIDs)
		if s.When != "" {
			prog, r, err := c.exprs.compile(s.When, true)
			if err != nil {
				pr.add(s.Line, "%s.when: %v", where, err)
			} else {
				s.when = prog
				c.refsOK(pr, s.Line, where+".when", r, allowed)
			}
		}
		c.compileArgs(pr, s.Line, where, s.With, allowed)
		c.compileCmdlet(pr, where, s.Cmdlet, allowed, false)
		s.readsFindings = c.readsFindings
	}
	if cycle := findCycle(c.pb.Steps, c.stepIDs); cycle != nil {
		pr.add(c.stepIDs[cycle[0]].Line, "steps: needs form a cycle: %s", strings.Join(cycle, " → "))
	}
}

// rest is the second phase: rules, reliefs, escalations (compile), then the
// fields every expression reads (fields). compile writes none of what steps
// writes and reads none of it, so the two may run at once on copies of one
// playbookCheck, each with its own compiler (deferredCheck.ready).
func (c *playbookCheck) rest(pr *problems) {
	c.compile(pr)
	c.fields(pr)
}

// compile checks and compiles the rules, reliefs and escalations.
func (c *playbookCheck) compile(pr *problems) {
	pb := c.pb
	for _, r := range pb.Rules {
		where := "rules." + r.ID
		reads := func(rf *refs) {
			for _, s := range rf.steps {
				if !slices.Contains(r.reads, s) {
					r.reads = append(r.reads, s)
				}
			}
		}
		if r.Each != "" {
			prog, rf, err := c.exprs.compile(r.Each, false)
			if err != nil {
				pr.add(r.Line, "%s.each: %v", where, err)
			} else {
				r.each = prog
				c.refsOK(pr, r.Line, where+".each", rf, nil)
				reads(rf)
			}
		}
		if r.When == "" {
			pr.add(r.Line, "%s.when is required", where)
		} else if prog, rf, err := c.exprs.compile(r.When, true); err != nil {
			pr.add(r.Line, "%s.when: %v", where, err)
		} else {
			r.when = prog
			c.refsOK(pr, r.Line, where+".when", rf, nil)
			reads(rf)
			if len(rf.reliefs) > 0 || len(rf.rules) > 0 {
				// found()/proposed() depend on other rules: evaluate at the end.
				r.reads = nil
			}
		}
		switch r.Severity {
		case incident.SeverityInfo, incident.SeverityWarning, incident.SeverityCritical:
		default:
			pr.add(r.Line, "%s.severity: %q must be info, warning or critical", where, r.Severity)
		}
		if r.Finding == "" {
			pr.add(r.Line, "%s.finding: the text is required", where)
		}
		var err error
		var rf *refs
		if r.finding, rf, err = c.exprs.template(r.Finding); err != nil {
			pr.add(r.Line, "%s.finding: %v", where, err)
		} else {
			c.refsOK(pr, r.Line, where+".finding", rf, nil)
			if r.reads != nil {
				reads(rf)
			}
		}
		if r.evidence, rf, err = c.exprs.template(r.Evidence); err != nil {
			pr.add(r.Line, "%s.evidence: %v", where, err)
		} else {
			c.refsOK(pr, r.Line, where+".evidence", rf, nil)
			if r.reads != nil {
				reads(rf)
			}
		}
		if r.Propose != "" && !c.reliefIDs[r.Propose] {
			pr.add(r.Line, "%s.propose: unknown relief %q", where, r.Propose)
		}
	}

	for _, r := range pb.Reliefs {
		where := "reliefs." + r.ID
		a := lintAction{where: where, line: r.Line, target: r.Target, script: r.PowerShell, check: r.Check,
			checkLine: r.checkLine, with: r.With, cmdlet: r.Cmdlet}
		a.reads = map[string]*Cmdlet{where + ".preview": r.PreviewCmdlet, where + ".readback": r.Readback}
		if r.Guard != nil {
			a.reads[where+".guard"] = r.Guard.Cmdlet
		}
		c.checkTarget(pr, a)
		c.compileArgs(pr, r.Line, where, r.With, nil)
		c.compileCmdlet(pr, where, r.Cmdlet, nil, true)
		c.compileCmdlet(pr, where+".preview", r.PreviewCmdlet, nil, true)
		c.compileCmdlet(pr, where+".readback", r.Readback, nil, true)
		if g := r.Gate; g != nil {
			for _, id := range g.Steps {
				if c.stepIDs[id] == nil {
					pr.add(g.Line, "%s.gate.steps: unknown step %q", where, id)
				}
			}
			if prog, rf, err := c.exprs.compile(g.OK, true); err != nil {
				pr.add(g.Line, "%s.gate.ok: %v", where, err)
			} else {
				g.ok = prog
				c.refsOK(pr, g.Line, where+".gate.ok", rf, nil)
			}
		}
		if b := r.Block; b != nil {
			if prog, rf, err := c.exprs.compile(b.When, true); err != nil {
				pr.add(b.Line, "%s.block.when: %v", where, err)
			} else {
				b.when = prog
				c.refsOK(pr, b.Line, where+".block.when", rf, nil)
			}
			var err error
			if b.reason, _, err = c.exprs.template(b.Reason); err != nil {
				pr.add(b.Line, "%s.block.reason: %v", where, err)
			}
		}
		if g := r.Guard; g != nil && g.Cmdlet != nil {
			c.compileCmdlet(pr, where+".guard", g.Cmdlet, nil, true)
			if prog, rf, err := c.exprs.compile(g.When, true); err != nil {
				pr.add(g.Line, "%s.guard.when: %v", where, err)
			} else if len(rf.steps) > 0 {
				pr.add(g.Line, "%s.guard.when: reads the rows it fetched (it), params, args and host, not steps", where)
			} else {
				g.when = prog
			}
			var err error
			if g.refuse, _, err = c.exprs.template(g.Refuse); err != nil {
				pr.add(g.Line, "%s.guard.refuse: %v", where, err)
			}
		}
		if r.Verify != nil {
			for _, s := range r.Verify.Steps {
				if c.stepIDs[s] == nil {
					pr.add(r.Verify.Line, "%s.verify.steps: unknown step %q", where, s)
				}
			}
			if r.Verify.OK != "" {
				prog, rf, err := c.exprs.compile(r.Verify.OK, true)
				if err != nil {
					pr.add(r.Verify.Line, "%s.verify.ok: %v", where, err)
				} else {
					r.Verify.ok = prog
					c.refsOK(pr, r.Verify.Line, where+".verify.ok", rf, nil)
				}
			}
		}
	}

	for _, e := range pb.Escalate {
		where := "escalate." + e.ID
		if e.When == "" {
			pr.add(e.Line, "%s.when is required", where)
		} else if prog, rf, err := c.exprs.compile(e.When, true); err != nil {
			pr.add(e.Line, "%s.when: %v", where, err)
		} else {
			e.when = prog
			c.refsOK(pr, e.Line, where+".when", rf, nil)
		}
		if e.Reason == "" || e.Owner == "" {
			pr.add(e.Line, "%s: reason and owner are required", where)
		}
		var err error
		var rf *refs
		if e.reason, rf, err = c.exprs.template(e.Reason); err != nil {
			pr.add(e.Line, "%s.reason: %v", where, err)
		} else {
			c.refsOK(pr, e.Line, where+".reason", rf, nil)
		}
	}
}

// fields checks the field every expression reads against the rows of the
// steps it reads, as the targets' kinds describe them.
func (c *playbookCheck) fields(pr *problems) {
	checkFields(pr, c.pb, describeShapes(c.pb, c.knownTargets, c.kinds))
}

// ancestors is the set of steps a step may read: everything it needs, transitively.
func ancestors(s *Step, steps map[string]*Step) map[string]bool {
	out := map[string]bool{}
	var walk func(*Step)
	walk = func(s *Step) {
		for _, n := range s.Needs {
			if out[n] {
				continue
			}
			out[n] = true
			if dep := steps[n]; dep != nil {
				walk(dep)
			}
		}
	}
	walk(s)
	return out
}

// findCycle returns the ids on one needs-cycle, or nil.
func findCycle(order []*Step, steps map[string]*Step) []string {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(id string) []string
	visit = func(id string) []string {
		switch state[id] {
		case onPath:
			i := slices.Index(path, id)
			return append(slices.Clone(path[i:]), id)
		case done:
			return nil
		}
		state[id] = onPath
		path = append(path, id)
		if s := steps[id]; s != nil {
			for _, n := range s.Needs {
				if c := visit(n); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[id] = done
		return nil
	}
	for _, s := range order {
		if c := visit(s.ID); c != nil {
			return c
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
