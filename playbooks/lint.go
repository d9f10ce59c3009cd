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
	stepIDs := map[string]*Step{}
	for _, s := range pb.Steps {
		stepIDs[s.ID] = s
	}
	reliefIDs := map[string]bool{}
	for _, r := range pb.Reliefs {
		reliefIDs[r.ID] = true
	}
	ruleIDs := map[string]bool{}
	for _, r := range pb.Rules {
		if ruleIDs[r.ID] {
			pr.add(r.Line, "rules: duplicate id %q", r.ID)
		}
		ruleIDs[r.ID] = true
	}

	checkTarget := func(a lintAction) {
		if a.target == "" {
			pr.add(a.line, "%s.target is required", a.where)
			return
		}
		kind, known := knownTargets[a.target]
		if knownTargets != nil && !known {
			pr.add(a.line, "%s.target: unknown target %q (configured: %s)", a.where, a.target, strings.Join(sortedKeys(knownTargets), ", "))
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
		case known && len(kinds) > 0:
			checkKind(pr, pb, kinds, kind, a)
		}
	}

	// refsOK reports references to unknown steps, reliefs and rules. allowedSteps,
	// when not nil, limits step references (a step may only read what it needs).
	refsOK := func(line int, where string, r *refs, allowedSteps map[string]bool) {
		for _, s := range r.steps {
			if stepIDs[s] == nil {
				pr.add(line, "%s: unknown step %q", where, s)
			} else if allowedSteps != nil && !allowedSteps[s] {
				pr.add(line, "%s: reads step %q, which is not in its needs", where, s)
			}
		}
		for _, id := range r.reliefs {
			if !reliefIDs[id] {
				pr.add(line, "%s: unknown relief %q", where, id)
			}
		}
		for _, id := range r.rules {
			if !ruleIDs[id] {
				pr.add(line, "%s: unknown rule %q", where, id)
			}
		}
		for _, name := range r.params {
			if _, declared := pb.Params[name]; !declared {
				pr.add(line, "%s: unknown name params.%s (declared: %s)", where, name, strings.Join(sortedKeys(pb.Params), ", "))
			}
		}
	}
	compileArgs := func(line int, where string, args []Arg, allowed map[string]bool) {
		for i := range args {
			prog, r, err := compile(args[i].Expr, false)
			if err != nil {
				pr.add(line, "%s.with.%s: %v", where, args[i].Name, err)
				continue
			}
			args[i].prog = prog
			refsOK(line, where+".with."+args[i].Name, r, allowed)
		}
	}

	// A relief's arguments are fixed when it is approved (params, its with, the
	// host): reading steps would let what runs drift from what was approved.
	compileCmdlet := func(where string, c *Cmdlet, allowed map[string]bool, relief bool) {
		if c == nil {
			return
		}
		if c.ForEach != "" {
			prog, r, err := compile(c.ForEach, false)
			switch {
			case err != nil:
				pr.add(c.Line, "%s.foreach: %v", where, err)
			case relief && len(r.steps) > 0:
				pr.add(c.Line, "%s.foreach: a relief's list reads params, args (its with) and host, not steps (%s): compute it in with", where, strings.Join(r.steps, ", "))
			default:
				c.foreach = prog
				refsOK(c.Line, where+".foreach", r, allowed)
			}
		}
		for i := range c.Derive {
			d := &c.Derive[i]
			if relief {
				pr.add(c.Line, "%s.derive: only steps add columns", where)
				break
			}
			if !argNameRE.MatchString(d.Name) {
				pr.add(c.Line, "%s.derive: %q is not a column name", where, d.Name)
			}
			prog, r, err := compile(d.Expr, false)
			if err != nil {
				pr.add(c.Line, "%s.derive.%s: %v", where, d.Name, err)
				continue
			}
			d.prog = prog
			refsOK(c.Line, where+".derive."+d.Name, r, allowed)
		}
		if c.Where != "" {
			if relief {
				pr.add(c.Line, "%s.where: only steps filter their rows", where)
			} else if prog, r, err := compile(c.Where, true); err != nil {
				pr.add(c.Line, "%s.where: %v", where, err)
			} else {
				c.where = prog
				refsOK(c.Line, where+".where", r, allowed)
			}
		}
		seen := map[string]bool{}
		for i := range c.Args {
			a := &c.Args[i]
			if seen[strings.ToLower(a.Name)] {
				pr.add(a.Line, "%s.args: %s is given twice", where, a.Name)
			}
			seen[strings.ToLower(a.Name)] = true
			if a.Expr == "" {
				continue
			}
			prog, r, err := compile(a.Expr, false)
			if err != nil {
				pr.add(a.Line, "%s.args.%s: %v", where, a.Name, err)
				continue
			}
			a.prog = prog
			if relief && len(r.steps) > 0 {
				pr.add(a.Line, "%s.args.%s: a relief's arguments read params, args (its with) and host, not steps (%s): compute the value in with", where, a.Name, strings.Join(r.steps, ", "))
				continue
			}
			refsOK(a.Line, where+".args."+a.Name, r, allowed)
		}
	}

	for _, s := range pb.Steps {
		where := "steps." + s.ID
		checkTarget(lintAction{where: where, line: s.Line, target: s.Target, script: s.PowerShell, check: s.Check,
			checkLine: s.checkLine, with: s.With, cmdlet: s.Cmdlet})
		for _, n := range s.Needs {
			if stepIDs[n] == nil {
				pr.add(s.Line, "%s.needs: unknown step %q", where, n)
			}
		}
		allowed := ancestors(s, stepIDs)
		if s.When != "" {
			prog, r, err := compile(s.When, true)
			if err != nil {
				pr.add(s.Line, "%s.when: %v", where, err)
			} else {
				s.when = prog
				refsOK(s.Line, where+".when", r, allowed)
			}
		}
		compileArgs(s.Line, where, s.With, allowed)
		compileCmdlet(where, s.Cmdlet, allowed, false)
	}
	if cycle := findCycle(pb.Steps, stepIDs); cycle != nil {
		pr.add(stepIDs[cycle[0]].Line, "steps: needs form a cycle: %s", strings.Join(cycle, " → "))
	}

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
			prog, rf, err := compile(r.Each, false)
			if err != nil {
				pr.add(r.Line, "%s.each: %v", where, err)
			} else {
				r.each = prog
				refsOK(r.Line, where+".each", rf, nil)
				reads(rf)
			}
		}
		if r.When == "" {
			pr.add(r.Line, "%s.when is required", where)
		} else if prog, rf, err := compile(r.When, true); err != nil {
			pr.add(r.Line, "%s.when: %v", where, err)
		} else {
			r.when = prog
			refsOK(r.Line, where+".when", rf, nil)
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
		if r.finding, rf, err = compileTemplate(r.Finding); err != nil {
			pr.add(r.Line, "%s.finding: %v", where, err)
		} else {
			refsOK(r.Line, where+".finding", rf, nil)
			if r.reads != nil {
				reads(rf)
			}
		}
		if r.evidence, rf, err = compileTemplate(r.Evidence); err != nil {
			pr.add(r.Line, "%s.evidence: %v", where, err)
		} else {
			refsOK(r.Line, where+".evidence", rf, nil)
			if r.reads != nil {
				reads(rf)
			}
		}
		if r.Propose != "" && !reliefIDs[r.Propose] {
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
		checkTarget(a)
		compileArgs(r.Line, where, r.With, nil)
		compileCmdlet(where, r.Cmdlet, nil, true)
		compileCmdlet(where+".preview", r.PreviewCmdlet, nil, true)
		compileCmdlet(where+".readback", r.Readback, nil, true)
		if g := r.Gate; g != nil {
			for _, id := range g.Steps {
				if stepIDs[id] == nil {
					pr.add(g.Line, "%s.gate.steps: unknown step %q", where, id)
				}
			}
			if prog, rf, err := compile(g.OK, true); err != nil {
				pr.add(g.Line, "%s.gate.ok: %v", where, err)
			} else {
				g.ok = prog
				refsOK(g.Line, where+".gate.ok", rf, nil)
			}
		}
		if b := r.Block; b != nil {
			if prog, rf, err := compile(b.When, true); err != nil {
				pr.add(b.Line, "%s.block.when: %v", where, err)
			} else {
				b.when = prog
				refsOK(b.Line, where+".block.when", rf, nil)
			}
			var err error
			if b.reason, _, err = compileTemplate(b.Reason); err != nil {
				pr.add(b.Line, "%s.block.reason: %v", where, err)
			}
		}
		if g := r.Guard; g != nil && g.Cmdlet != nil {
			compileCmdlet(where+".guard", g.Cmdlet, nil, true)
			if prog, rf, err := compile(g.When, true); err != nil {
				pr.add(g.Line, "%s.guard.when: %v", where, err)
			} else if len(rf.steps) > 0 {
				pr.add(g.Line, "%s.guard.when: reads the rows it fetched (it), params, args and host, not steps", where)
			} else {
				g.when = prog
			}
			var err error
			if g.refuse, _, err = compileTemplate(g.Refuse); err != nil {
				pr.add(g.Line, "%s.guard.refuse: %v", where, err)
			}
		}
		if r.Verify != nil {
			for _, s := range r.Verify.Steps {
				if stepIDs[s] == nil {
					pr.add(r.Verify.Line, "%s.verify.steps: unknown step %q", where, s)
				}
			}
			if r.Verify.OK != "" {
				prog, rf, err := compile(r.Verify.OK, true)
				if err != nil {
					pr.add(r.Verify.Line, "%s.verify.ok: %v", where, err)
				} else {
					r.Verify.ok = prog
					refsOK(r.Verify.Line, where+".verify.ok", rf, nil)
				}
			}
		}
	}

	for _, e := range pb.Escalate {
		where := "escalate." + e.ID
		if e.When == "" {
			pr.add(e.Line, "%s.when is required", where)
		} else if prog, rf, err := compile(e.When, true); err != nil {
			pr.add(e.Line, "%s.when: %v", where, err)
		} else {
			e.when = prog
			refsOK(e.Line, where+".when", rf, nil)
		}
		if e.Reason == "" || e.Owner == "" {
			pr.add(e.Line, "%s: reason and owner are required", where)
		}
		var err error
		var rf *refs
		if e.reason, rf, err = compileTemplate(e.Reason); err != nil {
			pr.add(e.Line, "%s.reason: %v", where, err)
		} else {
			refsOK(e.Line, where+".reason", rf, nil)
		}
	}

	checkFields(pr, pb, describeShapes(pb, knownTargets, kinds))
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
