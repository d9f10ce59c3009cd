package playbooks

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exprCompile is how every expression was compiled before exprCompiler: a
// fresh environment and configuration each time, refs collected by a patch.
func exprCompile(src string, asBool, optimize bool) (string, *refs, error) {
	r := &refs{}
	opts := []expr.Option{expr.Env(compileEnv()), expr.Patch(r), expr.Optimize(optimize)}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return "", nil, err
	}
	return prog.Disassemble(), r, nil
}

// exprCompiler must compile exactly as expr.Compile does, with its optimiser
// and without: the same bytecode,
// the same refs, the same errors. It is held to it for every expression of
// every built-in playbook and lint fixture (the ones a check compiled), both as
// any and as a boolean, and for expressions that fail in each stage. An
// upgrade of expr that changes its pipeline fails here.
func TestCompilerIsExprCompile(t *testing.T) {
	type source struct {
		file string
		data []byte
	}
	var sources []source
	for _, f := range builtinFiles(t) {
		sources = append(sources, source{f.name, f.data})
	}
	lintFiles, err := filepath.Glob("testdata/lint/*.yaml")
	require.NoError(t, err)
	for _, n := range lintFiles {
		data, err := os.ReadFile(n)
		require.NoError(t, err)
		sources = append(sources, source{n, data})
	}

	srcs := map[string]bool{
		"":                              true, // nothing to parse
		"any(steps.queues, .Count >":    true, // parse error
		`params.window + "x"`:           true, // type error
		`1 / 0`:                         true, // fails while optimising (constant folding)
		`"a" in ["a", "b"]`:             true, // rewritten by the optimiser
		`ok("queues") && found("deep")`: true,
		`steps.queues[0].MessageCount`:  true,
		`filter(steps.queues, .MessageCount > 10) | len()`: true,
	}
	for _, s := range sources {
		pb, pr, err := parse(s.file, s.data)
		if err != nil {
			continue // not a playbook at all (bad-yaml)
		}
		c := newPlaybookCheck(pb, nil, nil, true)
		c.steps(pr)
		c.rest(pr)
		for k := range c.exprs.done {
			srcs[k.src] = true
		}
	}
	require.Greater(t, len(srcs), 200, "the expressions of the built-ins are compared")

	for _, optimize := range []bool{true, false} {
		comp := newExprCompiler(optimize)
		for src := range srcs {
			for _, asBool := range []bool{false, true} {
				wantCode, wantRefs, wantErr := exprCompile(src, asBool, optimize)
				prog, gotRefs, gotErr := comp.compile(src, asBool)
				if wantErr != nil {
					require.Error(t, gotErr, "%q asBool=%v", src, asBool)
					assert.Equal(t, fmt.Sprintf("expression %q: %s", src, firstLine(wantErr.Error())), gotErr.Error())
					continue
				}
				require.NoError(t, gotErr, "%q asBool=%v", src, asBool)
				assert.Equal(t, wantCode, prog.Disassemble(), "%q asBool=%v", src, asBool)
				assert.Equal(t, wantRefs, gotRefs, "%q asBool=%v", src, asBool)
				// Compiled once: asking again gives the same program.
				again, _, _ := comp.compile(src, asBool)
				assert.Same(t, prog, again)
			}
		}
	}
}

// holes finds what the regular expression it replaced found, in every
// template of the built-ins and in texts made of the characters that matter.
func TestHolesIsTheRegexp(t *testing.T) {
	re := regexp.MustCompile(`\{\{(.*?)\}\}`)
	var texts, names []string
	for _, f := range builtinFiles(t) {
		texts = append(texts, string(f.data)) // every template is in there
		names = append(names, f.name)
	}
	alphabet := []string{"{", "}", "a", " ", "\n", "{{", "}}", "é", "\xff"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		texts = append(texts, b.String())
	}
	for i, s := range texts {
		var want [][4]int
		for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
			want = append(want, [4]int{m[0], m[1], m[2], m[3]})
		}
		if i < len(names) {
			require.Equal(t, want, holes(s), names[i])
		} else {
			require.Equal(t, want, holes(s), "%q", s)
		}
	}
}

// A built-in's template holes compiled on first render (deferredTemplates)
// refer to the same things and render the same text as holes compiled at once,
// from any number of goroutines; one that does not compile renders as an
// evaluation error does.
func TestDeferredTemplates(t *testing.T) {
	env := compileEnv()
	env["steps"] = map[string]any{"queues": []map[string]any{{"Identity": `EX01\7`, "MessageCount": 5000, "Host": "ex01"}}}
	env["it"] = map[string]any{"Identity": `EX01\7`, "MessageCount": 5000, "Host": "ex01", "Status": "Retry"}
	env["params"] = map[string]any{"domain": "contoso.com", "window": "2h"}
	env["host"] = "ex01"
	var srcs []string
	for _, f := range builtinFiles(t) {
		pb := f.parse(t)
		for _, r := range pb.Rules {
			srcs = append(srcs, r.Finding, r.Evidence)
		}
		for _, e := range pb.Escalate {
			srcs = append(srcs, e.Reason)
		}
		for _, r := range pb.Reliefs {
			if r.Block != nil {
				srcs = append(srcs, r.Block.Reason)
			}
			if r.Guard != nil {
				srcs = append(srcs, r.Guard.Refuse)
			}
		}
	}
	srcs = append(srcs, `queue {{ it.Identity }} holds {{ it.MessageCount + "x" }} messages`) // fails when run
	now, later := newExprCompiler(false), newExprCompiler(false)
	later.deferred = &deferredTemplates{}
	rendered := 0
	for _, src := range srcs {
		eager, eagerRefs, err := now.template(src)
		require.NoError(t, err, src)
		deferred, deferredRefs, err := later.template(src)
		require.NoError(t, err, src)
		assert.Equal(t, eagerRefs, deferredRefs, src)
		want := eager.render(env)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { assert.Equal(t, want, deferred.render(env), src) })
		}
		wg.Wait()
		if strings.Contains(src, "{{") {
			rendered++
		}
	}
	assert.Greater(t, rendered, 100, "the built-ins' templates with holes")
	_, _, err := now.template(`{{ host + 1 }} messages`)
	require.Error(t, err, "a type error")
	bad, _, err := later.template(`{{ host + 1 }} messages`)
	require.NoError(t, err, "a type error is found when the hole is compiled")
	assert.Equal(t, "? messages", bad.render(env))
	_, _, err = later.template(`{{ it.MessageCount + }} messages`)
	require.Error(t, err, "a syntax error is found at once")
}
