package playbooks

import (
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// Which fields an expression reads from which rows. A map access that names a
// field a row lacks is nil at run time, not an error: a misspelt field in a
// rule quietly never matches. So lint follows the rows of steps whose fields are
// fully known (stepShapes) through an expression — steps.X; filter, sortBy and
// concat of them; an element (first, last, [i], find, a predicate's # or .Field,
// let names, a rule's it) — and reports a field no row of those steps has.
// Anything it cannot follow is unknown and never reported.

// value is what lint knows of an expression's value: rows of a known shape (a
// list of them, or one), or nothing (shape nil).
type value struct {
	shape *rowShape
	list  bool
}

func (v value) element() value {
	if v.shape != nil && v.list {
		return value{shape: v.shape}
	}
	return value{}
}

// scope is what names stand for at a point of an expression.
type scope struct {
	it   value
	ptr  value // # and .Field inside a predicate
	vars map[string]value
}

func (sc scope) withVar(name string, v value) scope {
	vars := make(map[string]value, len(sc.vars)+1)
	for k, x := range sc.vars {
		vars[k] = x
	}
	vars[name] = v
	sc.vars = vars
	return sc
}

// badRead is a field read from rows that do not have it.
type badRead struct {
	field string
	shape *rowShape
}

type fieldWalker struct {
	steps map[string]*rowShape
	bad   []badRead
}

func (w *fieldWalker) read(field string, v value) {
	if v.shape == nil || v.list || v.shape.has(field) {
		return
	}
	if !slices.ContainsFunc(w.bad, func(b badRead) bool { return b.field == field && b.shape == v.shape }) {
		w.bad = append(w.bad, badRead{field: field, shape: v.shape})
	}
}

func (w *fieldWalker) eval(n ast.Node, sc scope) value {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		if v, ok := sc.vars[n.Value]; ok {
			return v
		}
		if n.Value == "it" {
			return sc.it
		}
	case *ast.PointerNode:
		if n.Name == "" {
			return sc.ptr
		}
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "steps" {
			if _, shadowed := sc.vars["steps"]; !shadowed {
				if p, ok := n.Property.(*ast.StringNode); ok {
					if s := w.steps[p.Value]; s != nil {
						return value{shape: s, list: true}
					}
					return value{}
				}
			}
		}
		base := w.eval(n.Node, sc)
		if p, ok := n.Property.(*ast.StringNode); ok {
			if !n.Method {
				w.read(p.Value, base)
			}
			return value{}
		}
		w.eval(n.Property, sc)
		return base.element() // rows[i]
	case *ast.ChainNode:
		return w.eval(n.Node, sc)
	case *ast.SliceNode:
		base := w.eval(n.Node, sc)
		w.eval(n.From, sc)
		w.eval(n.To, sc)
		if base.list {
			return base
		}
	case *ast.BuiltinNode:
		return w.builtin(n, sc)
	case *ast.PredicateNode:
		return w.eval(n.Node, sc)
	case *ast.VariableDeclaratorNode:
		return w.eval(n.Expr, sc.withVar(n.Name, w.eval(n.Value, sc)))
	case *ast.SequenceNode:
		var last value
		for _, x := range n.Nodes {
			last = w.eval(x, sc)
		}
		return last
	case *ast.ConditionalNode:
		w.eval(n.Cond, sc)
		a, b := w.eval(n.Exp1, sc), w.eval(n.Exp2, sc)
		_, aNil := n.Exp1.(*ast.NilNode)
		_, bNil := n.Exp2.(*ast.NilNode)
		switch {
		case a == b, bNil:
			return a
		case aNil:
			return b
		}
	case *ast.BinaryNode:
		w.eval(n.Left, sc)
		w.eval(n.Right, sc)
	case *ast.UnaryNode:
		w.eval(n.Node, sc)
	case *ast.CallNode:
		w.eval(n.Callee, sc)
		for _, a := range n.Arguments {
			w.eval(a, sc)
		}
	case *ast.ArrayNode:
		for _, x := range n.Nodes {
			w.eval(x, sc)
		}
	case *ast.MapNode:
		for _, x := range n.Pairs {
			w.eval(x, sc)
		}
	case *ast.PairNode:
		w.eval(n.Key, sc)
		w.eval(n.Value, sc)
	}
	return value{}
}

// builtin follows rows through expr's builtins: a predicate sees each element
// as # (and .Field); filter, sortBy, take, reverse and uniq keep the rows;
// find, findLast, first and last pick one; concat joins rows of known shapes.
func (w *fieldWalker) builtin(n *ast.BuiltinNode, sc scope) value {
	args := make([]value, len(n.Arguments))
	elem := value{}
	for i, a := range n.Arguments {
		if p, ok := a.(*ast.PredicateNode); ok {
			inner := sc
			inner.ptr = elem
			args[i] = w.eval(p.Node, inner)
			continue
		}
		args[i] = w.eval(a, sc)
		if i == 0 {
			elem = args[0].element()
		}
	}
	if len(args) == 0 {
		return value{}
	}
	switch n.Name {
	case "filter", "sortBy", "take", "reverse", "uniq":
		if args[0].list {
			return args[0]
		}
	case "find", "findLast", "first", "last":
		return elem
	case "concat":
		var shapes []*rowShape
		for _, a := range args {
			if a.shape == nil || !a.list {
				return value{}
			}
			shapes = append(shapes, a.shape)
		}
		return value{shape: union(shapes), list: true}
	}
	return value{}
}

// union is the shape of rows that come from any of the shapes.
func union(shapes []*rowShape) *rowShape {
	if len(shapes) == 1 {
		return shapes[0]
	}
	out := &rowShape{fields: map[string]bool{}}
	for _, s := range shapes {
		for _, f := range s.from {
			if !slices.Contains(out.from, f) {
				out.from = append(out.from, f)
			}
		}
		for f := range s.fields {
			out.fields[f] = true
		}
		out.cmdlet = out.cmdlet || s.cmdlet
	}
	return out
}

// fieldCheck reports, for one playbook, the fields its expressions read from
// rows that do not have them.
type fieldCheck struct {
	pr    *problems
	steps map[string]*rowShape
	// seen keeps a text's holes from repeating one problem.
	seen map[string]bool
	// trees are the expressions parsed so far (nil: does not parse): the same
	// expression recurs across a playbook's texts.
	trees map[string]*parser.Tree
}

// expr checks one expression; it is the value it yields.
func (fc fieldCheck) expr(line int, where, src string, it value) value {
	if strings.TrimSpace(src) == "" {
		return value{}
	}
	tree, parsed := fc.trees[src]
	if !parsed {
		var err error
		if tree, err = parser.Parse(src); err != nil {
			tree = nil
		}
		fc.trees[src] = tree
	}
	if tree == nil {
		return value{} // compile has reported it
	}
	w := &fieldWalker{steps: fc.steps}
	v := w.eval(tree.Node, scope{it: it})
	for _, b := range w.bad {
		msg := fmt.Sprintf("%s: reads %s, which no row of %s has (fields: %s)%s",
			where, b.field, strings.Join(b.shape.from, " or "), strings.Join(sortedKeys(b.shape.fields), ", "),
			didYouMean(b.field, sortedKeys(b.shape.fields)))
		if key := fmt.Sprint(line, msg); !fc.seen[key] {
			fc.seen[key] = true
			fc.pr.add(line, "%s", msg)
		}
	}
	return v
}

// template checks each {{ expression }} of a text.
func (fc fieldCheck) template(line int, where, src string, it value) {
	for _, m := range holes(src) {
		fc.expr(line, where, strings.TrimSpace(src[m[2]:m[3]]), it)
	}
}

func (fc fieldCheck) args(line int, where string, args []Arg) {
	for _, a := range args {
		fc.expr(line, where+".with."+a.Name, a.Expr, value{})
	}
}

// cmdlet checks a cmdlet's expressions; own is the shape of its rows (for
// where and derive), or nil.
func (fc fieldCheck) cmdlet(where string, c *Cmdlet, own *rowShape) {
	if c == nil {
		return
	}
	fc.expr(c.Line, where+".foreach", c.ForEach, value{})
	for _, a := range c.Args {
		fc.expr(a.Line, where+".args."+a.Name, a.Expr, value{})
	}
	fc.expr(c.Line, where+".where", c.Where, value{shape: own})
	for _, d := range c.Derive {
		fc.expr(c.Line, where+".derive."+d.Name, d.Expr, value{shape: own})
		if own != nil {
			own = own.with(d.Name) // a later column reads an earlier one
		}
	}
}

// checkFields walks every expression of the playbook.
func checkFields(pr *problems, pb *Playbook, sh shapes) {
	fc := fieldCheck{pr: pr, steps: sh.steps, seen: map[string]bool{}, trees: map[string]*parser.Tree{}}
	for _, s := range pb.Steps {
		where := "steps." + s.ID
		fc.expr(s.Line, where+".when", s.When, value{})
		fc.args(s.Line, where, s.With)
		fc.cmdlet(where, s.Cmdlet, sh.base[s.ID])
	}
	for _, r := range pb.Rules {
		where := "rules." + r.ID
		it := fc.expr(r.Line, where+".each", r.Each, value{}).element()
		fc.expr(r.Line, where+".when", r.When, it)
		fc.template(r.Line, where+".finding", r.Finding, it)
		fc.template(r.Line, where+".evidence", r.Evidence, it)
	}
	for _, r := range pb.Reliefs {
		where := "reliefs." + r.ID
		fc.args(r.Line, where, r.With)
		fc.cmdlet(where, r.Cmdlet, nil)
		fc.cmdlet(where+".preview", r.PreviewCmdlet, nil)
		fc.cmdlet(where+".readback", r.Readback, nil)
		if g := r.Guard; g != nil {
			fc.cmdlet(where+".guard", g.Cmdlet, nil)
			it := value{shape: sh.guards[r.ID]}
			fc.expr(g.Line, where+".guard.when", g.When, it)
			fc.template(g.Line, where+".guard.refuse", g.Refuse, it)
		}
		if g := r.Gate; g != nil {
			fc.expr(g.Line, where+".gate.ok", g.OK, value{})
		}
		if b := r.Block; b != nil {
			fc.expr(b.Line, where+".block.when", b.When, value{})
			fc.template(b.Line, where+".block.reason", b.Reason, value{})
		}
		if v := r.Verify; v != nil {
			fc.expr(v.Line, where+".verify.ok", v.OK, value{})
		}
	}
	for _, e := range pb.Escalate {
		where := "escalate." + e.ID
		fc.expr(e.Line, where+".when", e.When, value{})
		fc.template(e.Line, where+".reason", e.Reason, value{})
	}
}
