package playbooks

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/internal/suggest"
)

// What the target kinds say about themselves (executors.Kind), held against
// what a step or relief runs: whether the kind runs scripts, cmdlets or checks,
// whether a check exists and gets its arguments, whether a described cmdlet
// gets its mandatory parameters and no unknown one, and which properties its
// rows have. The kinds come in as data: this package knows no kind by name.

// lintAction is what a step or relief runs, as lint sees it.
type lintAction struct {
	where     string
	line      int
	target    string
	script    string
	check     string
	checkLine int
	with      []Arg
	cmdlet    *Cmdlet
	// reads are a relief's read-only cmdlets (preview, guard, readback), by
	// where they are, run on the relief's target too.
	reads map[string]*Cmdlet
}

// checkKind holds one action against the kind of its target.
func checkKind(pr *problems, pb *Playbook, kinds executors.Kinds, kind string, a lintAction) {
	k, ok := kinds.Lookup(kind)
	if !ok {
		pr.add(a.line, "%s: target %q is of kind %q, which this build has no executor for (kinds: %s)",
			a.where, a.target, kind, strings.Join(kinds.Names(), ", "))
		return
	}
	switch {
	case a.script != "" && !k.Scripts:
		pr.add(a.line, "%s: target %q is of kind %s; powershell scripts run only on %s targets (a no-language endpoint takes cmdlet steps)",
			a.where, a.target, kind, orList(kindsWith(kinds, func(k executors.Kind) bool { return k.Scripts })))
	case a.cmdlet != nil && !k.Cmdlets:
		pr.add(a.line, "%s: target %q is of kind %s; a cmdlet needs a target of kind %s",
			a.where, a.target, kind, orList(kindsWith(kinds, func(k executors.Kind) bool { return k.Cmdlets })))
	case a.check != "" && len(k.Checks) == 0:
		pr.add(a.checkLine, "%s: check %q needs a target of kind %s, not %s target %q",
			a.where, a.check, orList(kindsWith(kinds, func(k executors.Kind) bool { return len(k.Checks) > 0 })), kind, a.target)
	case a.check != "":
		checkCheck(pr, pb, k, a)
	case a.cmdlet != nil:
		checkCmdlet(pr, k, a.where, a.cmdlet)
	}
	if k.Cmdlets {
		for _, where := range sortedKeys(a.reads) {
			if c := a.reads[where]; c != nil {
				checkCmdlet(pr, k, where, c)
			}
		}
	}
}

// checkCheck reports an unknown check and a missing argument. A check's
// arguments are the playbook's parameters and the action's with.
func checkCheck(pr *problems, pb *Playbook, k executors.Kind, a lintAction) {
	c, ok := k.Check(a.check)
	if !ok {
		pr.add(a.checkLine, "%s.check: unknown check %q for %s targets (checks: %s)%s",
			a.where, a.check, k.Name, strings.Join(k.CheckNames(), ", "), didYouMean(a.check, k.CheckNames()))
		return
	}
	given := func(name string) bool {
		_, param := pb.Params[name]
		return param || slices.ContainsFunc(a.with, func(w Arg) bool { return w.Name == name })
	}
	for _, p := range c.Params {
		if p.Required && !given(p.Name) {
			pr.add(a.checkLine, "%s: check %q needs the argument %q: set it in with, or declare a playbook parameter of that name",
				a.where, c.Name, p.Name)
		}
	}
	for _, group := range c.OneOf {
		if !slices.ContainsFunc(group, given) {
			pr.add(a.checkLine, "%s: check %q needs one of the arguments %s: set one in with, or declare a playbook parameter of that name",
				a.where, c.Name, quoteList(group))
		}
	}
}

// checkCmdlet holds a cmdlet against its description, when the kind has one:
// unknown and ambiguous parameters (when its parameters are all described),
// mandatory ones left out, and selected properties it does not write (when
// its properties are all described).
func checkCmdlet(pr *problems, k executors.Kind, where string, c *Cmdlet) {
	d, ok := k.Command(c.Name)
	if !ok {
		return
	}
	bound := map[string]bool{}
	for _, arg := range c.Args {
		p, found, ambiguous := d.Param(arg.Name)
		switch {
		case found:
			bound[p.Name] = true
		case len(ambiguous) > 0:
			pr.add(arg.Line, "%s.args: -%s is ambiguous for %s (-%s)", where, arg.Name, d.Name, strings.Join(ambiguous, ", -"))
		case d.AllParams:
			names := executors.ParamNames(d.Params)
			pr.add(arg.Line, "%s.args: %s has no parameter -%s (parameters: -%s)%s",
				where, d.Name, arg.Name, strings.Join(names, ", -"), didYouMean(arg.Name, names))
		}
	}
	for _, p := range d.Params {
		if p.Required && !bound[p.Name] {
			pr.add(c.Line, "%s: %s needs -%s (a mandatory parameter)", where, d.Name, p.Name)
		}
	}
	for _, group := range d.OneOf {
		if !slices.ContainsFunc(group, func(n string) bool { return bound[n] }) {
			pr.add(c.Line, "%s: %s needs one of -%s", where, d.Name, strings.Join(group, ", -"))
		}
	}
	if d.AllFields {
		for _, s := range c.Select {
			if !slices.ContainsFunc(d.Fields, func(f string) bool { return strings.EqualFold(f, s) }) {
				pr.add(c.selectLine, "%s.select: %s writes no property %q (properties: %s)%s",
					where, d.Name, s, strings.Join(sorted(d.Fields), ", "), didYouMean(s, d.Fields))
			}
		}
	}
}

// rowShape is what lint knows of the rows of a step (or of a guard's cmdlet):
// every field they may have. A nil *rowShape is rows nothing is known about.
type rowShape struct {
	// from names where the rows come from, for messages: "steps.queues".
	from   []string
	fields map[string]bool
	// cmdlet rows also carry <Field>IsUnlimited beside a field that is
	// Exchange's Unlimited (executors.UnlimitedSuffix).
	cmdlet bool
}

func (s *rowShape) has(field string) bool {
	if s.fields[field] {
		return true
	}
	base, unlimited := strings.CutSuffix(field, executors.UnlimitedSuffix)
	return s.cmdlet && unlimited && s.fields[base]
}

// with is the shape with more fields (derived columns).
func (s *rowShape) with(fields ...string) *rowShape {
	out := &rowShape{from: s.from, fields: make(map[string]bool, len(s.fields)+len(fields)), cmdlet: s.cmdlet}
	for f := range s.fields {
		out.fields[f] = true
	}
	for _, f := range fields {
		out.fields[f] = true
	}
	return out
}

func newShape(from string, cmdlet bool, fields []string) *rowShape {
	s := &rowShape{from: []string{from}, fields: map[string]bool{"Host": true}, cmdlet: cmdlet}
	for _, f := range fields {
		s.fields[f] = true
	}
	return s
}

// shapes are the row shapes lint knows in one playbook.
type shapes struct {
	// steps are the rows of each step whose fields are fully known: a cmdlet's
	// select (whatever the target), or every property of a cmdlet described in
	// full, and its derived columns; a described check's fields. Each row also
	// has the Host the engine adds (Rows).
	steps map[string]*rowShape
	// base are a cmdlet step's rows before its derived columns: what its where
	// and its first derive see as it.
	base map[string]*rowShape
	// guards are the rows of each relief's guard cmdlet (it in guard.when).
	guards map[string]*rowShape
}

func describeShapes(pb *Playbook, targets map[string]string, kinds executors.Kinds) shapes {
	out := shapes{steps: map[string]*rowShape{}, base: map[string]*rowShape{}, guards: map[string]*rowShape{}}
	for _, s := range pb.Steps {
		k, _ := kinds.Lookup(targets[s.Target])
		from := "steps." + s.ID
		switch {
		case s.Cmdlet != nil:
			if base := cmdletShape(from, k, s.Cmdlet); base != nil {
				names := make([]string, 0, len(s.Cmdlet.Derive))
				for _, d := range s.Cmdlet.Derive {
					names = append(names, d.Name)
				}
				out.base[s.ID] = base
				out.steps[s.ID] = base.with(names...)
			}
		case s.Check != "":
			if c, ok := k.Check(s.Check); ok {
				out.steps[s.ID] = newShape(from, false, c.Fields)
			}
		}
	}
	for _, r := range pb.Reliefs {
		if r.Guard == nil {
			continue
		}
		k, _ := kinds.Lookup(targets[r.Target])
		if g := cmdletShape("reliefs."+r.ID+".guard", k, r.Guard.Cmdlet); g != nil {
			out.guards[r.ID] = g
		}
	}
	return out
}

// cmdletShape is the shape of a cmdlet's rows before any derived column, or nil.
func cmdletShape(from string, k executors.Kind, c *Cmdlet) *rowShape {
	if c == nil {
		return nil
	}
	if len(c.Select) > 0 {
		return newShape(from, true, c.Select)
	}
	if d, ok := k.Command(c.Name); ok && d.AllFields {
		return newShape(from, true, d.Fields)
	}
	return nil
}

func kindsWith(kinds executors.Kinds, ok func(executors.Kind) bool) []string {
	var out []string
	for _, k := range kinds {
		if ok(k) {
			out = append(out, k.Name)
		}
	}
	slices.Sort(out)
	return out
}

// orList joins names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

func sorted(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return out
}

// didYouMean suggests the candidate closest to got, as "; did you mean X?".
func didYouMean(got string, candidates []string) string {
	if s := suggest.Closest(got, candidates, max(2, len(got)/4)); s != "" && s != got {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return ""
}
