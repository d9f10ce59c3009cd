package playbooks

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// The expression environment every rule, condition and argument sees:
//
//	params    the validated parameters (map)
//	steps.ID  the rows of a step (a list of objects, each with a Host)
//	status.ID the step's status: ok, failed, timeout, skipped, pending
//	it        the current element inside a rule with `each`
//	args      a step's computed `with` arguments (inside its `when` and cmdlet args)
//	host      the host a cmdlet runs on (inside cmdlet args and foreach)
//	item      the current item of a cmdlet's foreach (inside its args)
//	hosts     the hosts a relief would run on (inside its block)
//	phase     "diagnose" or "verify"
//	since     start of the observation window: now − params.window while
//	          diagnosing, the end of the relief while verifying
//	ok(step), done(relief), failed(relief), proposed(relief), found(rule)
//	smtpClass(text), queueKind(row), certCovers(names, expected)
//	          the shared classifications (classify.go)
func compileEnv() map[string]any {
	env := map[string]any{
		"params":   map[string]any{},
		"steps":    map[string]any{},
		"status":   map[string]string{},
		"it":       map[string]any{},
		"args":     map[string]any{},
		"host":     "",
		"item":     map[string]any{},
		"hosts":    []string{},
		"phase":    "",
		"since":    time.Time{},
		"ok":       func(string) bool { return false },
		"done":     func(string) bool { return false },
		"failed":   func(string) bool { return false },
		"proposed": func(string) bool { return false },
		"found":    func(string) bool { return false },
	}
	maps.Copy(env, classifiers())
	return env
}

// refs names what an expression refers to, so the linter can check each name.
type refs struct {
	steps   []string // steps.X, status.X, ok("X")
	reliefs []string // done/failed/proposed("X")
	rules   []string // found("X")
	params  []string // params.X
}

func (r *refs) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		prop, isStr := n.Property.(*ast.StringNode)
		if ok && isStr && (id.Value == "steps" || id.Value == "status") {
			r.steps = append(r.steps, prop.Value)
		}
		if ok && isStr && id.Value == "params" {
			r.params = append(r.params, prop.Value)
		}
	case *ast.CallNode:
		callee, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || len(n.Arguments) != 1 {
			return
		}
		arg, isStr := n.Arguments[0].(*ast.StringNode)
		if !isStr {
			return
		}
		switch callee.Value {
		case "ok":
			r.steps = append(r.steps, arg.Value)
		case "done", "failed", "proposed":
			r.reliefs = append(r.reliefs, arg.Value)
		case "found":
			r.rules = append(r.rules, arg.Value)
		}
	}
}

// exprCompiler compiles the expressions of one playbook. expr.Compile builds
// its configuration and describes the environment's types anew for every
// expression, and a patch (how refs used to be collected) makes it type-check
// twice: together more than half of its time. This builds the two
// configurations (any result, boolean result) once, type-checks once, and
// compiles each distinct expression once — a playbook's texts repeat the same
// holes ({{ it.Identity }}) and conditions. TestCompilerIsExprCompile holds the
// programs and errors to expr.Compile's.
//
// Not safe for concurrent use: a check uses it in one goroutine at a time
// (the phases of a deferred check run one after the other).
type exprCompiler struct {
	anyResult, boolResult *conf.Config
	done                  map[exprKey]compiled
	// deferred, when set, leaves a template's holes to be compiled when it is
	// first rendered (deferredTemplates); they are parsed now, for what they
	// refer to.
	deferred *deferredTemplates
}

type exprKey struct {
	src    string
	asBool bool
}

type compiled struct {
	prog *vm.Program
	refs *refs
	err  error
}

// newExprCompiler compiles as expr.Compile does; optimize runs expr's
// optimiser, which also refuses some constant expressions (1 / 0).
func newExprCompiler(optimize bool) *exprCompiler {
	env := compileEnv()
	config := func(opts ...expr.Option) *conf.Config {
		c := conf.CreateNew()
		expr.Env(env)(c)
		for _, o := range opts {
			o(c)
		}
		return c
	}
	return &exprCompiler{anyResult: config(expr.Optimize(optimize)), boolResult: config(expr.AsBool(), expr.Optimize(optimize)), done: map[exprKey]compiled{}}
}

// compile compiles an expression against the environment and returns what it
// refers to. asBool demands a boolean result. The program and refs may be
// shared with another use of the same expression: neither is changed after.
func (c *exprCompiler) compile(src string, asBool bool) (*vm.Program, *refs, error) {
	k := exprKey{src, asBool}
	if d, ok := c.done[k]; ok {
		return d.prog, d.refs, d.err
	}
	config := c.anyResult
	if asBool {
		config = c.boolResult
	}
	prog, r, err := compileWith(src, config)
	if err != nil {
		err = fmt.Errorf("expression %q: %s", src, firstLine(err.Error()))
		prog, r = nil, nil
	}
	c.done[k] = compiled{prog, r, err}
	return prog, r, err
}

// refsOf is what compile returns for src's refs, from parsing it alone: a
// deferred template hole is checked and compiled later.
func (c *exprCompiler) refsOf(src string) (*refs, error) {
	_, r, err := parseRefs(src, c.anyResult)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %s", src, firstLine(err.Error()))
	}
	return r, nil
}

// parseRefs parses src and walks the tree for what it refers to, before a
// checker or optimiser rewrites it.
func parseRefs(src string, config *conf.Config) (*parser.Tree, *refs, error) {
	tree, err := parser.ParseWithConfig(src, config)
	if err != nil {
		return nil, nil, err
	}
	r := &refs{}
	ast.Walk(&tree.Node, r)
	return tree, r, nil
}

// compileWith is expr.Compile's pipeline (parse, check, optimise, emit) with
// a configuration made beforehand; the parsed tree is walked for refs before
// the checker and optimiser rewrite it, as expr.Patch would have.
func compileWith(src string, config *conf.Config) (*vm.Program, *refs, error) {
	tree, r, err := parseRefs(src, config)
	if err != nil {
		return nil, nil, err
	}
	if _, err := checker.Check(tree, config); err != nil {
		return nil, nil, err
	}
	if config.Optimize {
		if err := optimizer.Optimize(&tree.Node, config); err != nil {
			var fe *file.Error
			if errors.As(err, &fe) {
				return nil, nil, fe.Bind(tree.Source)
			}
			return nil, nil, err
		}
	}
	prog, err := compiler.Compile(tree, config)
	if err != nil {
		return nil, nil, err
	}
	return prog, r, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// template is text with {{ expression }} holes.
type template struct {
	parts []string // literal text; len(parts) == len(holes)+1
	holes []*vm.Program
	// later, when set, stands for holes: compiled on the first render.
	later *laterHoles
}

// deferredTemplates compiles the holes of a built-in's templates when each
// template is first rendered. Most never are — a rule's finding only when it
// matches, an escalation's reason only when it is raised — and every one of
// a built-in's compiled when ndrbot was built (Load's check, in
// TestBuiltinsLintClean): compiling them all before the first finding cost a
// third of the diagnosis's compiling. They compile as a built-in's other
// expressions do, without the optimiser (deferredCheck.ready). It is safe for
// concurrent use.
type deferredTemplates struct {
	mu    sync.Mutex
	exprs *exprCompiler // made on first use
}

func (d *deferredTemplates) compile(src string) *vm.Program {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exprs == nil {
		d.exprs = newExprCompiler(false)
	}
	prog, _, _ := d.exprs.compile(src, false) // nil: rendered as an error is, "?"
	return prog
}

// laterHoles are a template's holes before their first render.
type laterHoles struct {
	srcs []string
	by   *deferredTemplates

	once  sync.Once
	progs []*vm.Program
}

func (l *laterHoles) programs() []*vm.Program {
	l.once.Do(func() {
		l.progs = make([]*vm.Program, len(l.srcs))
		for i, src := range l.srcs {
			l.progs[i] = l.by.compile(src)
		}
	})
	return l.progs
}

// holes finds a template's {{ expression }} holes: each one's bounds and its
// expression's, as `\{\{(.*?)\}\}` matches them (FindAllStringSubmatchIndex;
// an expression does not span lines). Scanned by hand: the regular
// expression was a tenth of compiling a playbook (TestHolesIsTheRegexp).
func holes(src string) [][4]int {
	var out [][4]int
	for i := 0; ; {
		j := strings.Index(src[i:], "{{")
		if j < 0 {
			return out
		}
		start := i + j
		inside := src[start+2:]
		end := strings.Index(inside, "}}")
		if nl := strings.IndexByte(inside, '\n'); end < 0 || (nl >= 0 && nl < end) {
			i = start + 1
			continue
		}
		out = append(out, [4]int{start, start + 2 + end + 2, start + 2, start + 2 + end})
		i = start + 2 + end + 2
	}
}

func (c *exprCompiler) template(src string) (template, *refs, error) {
	var t template
	if c.deferred != nil {
		t.later = &laterHoles{by: c.deferred}
	}
	all := &refs{}
	last := 0
	for _, m := range holes(src) {
		hole := strings.TrimSpace(src[m[2]:m[3]])
		var (
			prog *vm.Program
			r    *refs
			err  error
		)
		if t.later != nil {
			r, err = c.refsOf(hole)
			t.later.srcs = append(t.later.srcs, hole)
		} else {
			prog, r, err = c.compile(hole, false)
			t.holes = append(t.holes, prog)
		}
		if err != nil {
			return template{}, nil, err
		}
		t.parts = append(t.parts, src[last:m[0]])
		all.steps = append(all.steps, r.steps...)
		all.reliefs = append(all.reliefs, r.reliefs...)
		all.rules = append(all.rules, r.rules...)
		all.params = append(all.params, r.params...)
		last = m[1]
	}
	t.parts = append(t.parts, src[last:])
	return t, all, nil
}

func (t template) render(env map[string]any) string {
	holes := t.holes
	if t.later != nil {
		holes = t.later.programs()
	}
	var b strings.Builder
	for i, part := range t.parts {
		b.WriteString(part)
		if i < len(holes) {
			if holes[i] == nil {
				b.WriteString("?")
				continue
			}
			v, err := expr.Run(holes[i], env)
			if err != nil {
				b.WriteString("?")
				continue
			}
			b.WriteString(display(v))
		}
	}
	return b.String()
}

// display formats a value from JSON or an expression for humans: whole numbers
// without a decimal point, missing values as "n/a".
func display(v any) string {
	switch x := v.(type) {
	case nil:
		return "n/a"
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case time.Duration:
		return x.String()
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}

func runBool(prog *vm.Program, env map[string]any) (bool, error) {
	v, err := expr.Run(prog, env)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("expression returned %T, not a boolean", v)
	}
	return b, nil
}
