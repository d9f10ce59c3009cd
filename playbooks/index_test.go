package playbooks

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/executors/registry"
	"github.com/ndrbot/ndrbot/incident"
)

// dirWith is a playbooks directory holding copies of the named lint fixtures.
func dirWith(t *testing.T, fixtures ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range fixtures {
		data, err := os.ReadFile(filepath.Join("testdata/lint", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o600))
	}
	return dir
}

// Index (bot diagnose) reads the built-ins' heads only and checks only the
// playbook chosen: its steps before Resolve returns, the rest by the time the
// engine needs it. A playbook that does not compile stops nobody who runs
// another, and is reported, with its line, to whoever chooses it. Load (bot
// serve, lint) still refuses it up front.
func TestIndexCompilesOnlyWhatIsChosen(t *testing.T) {
	ctx := context.Background()
	dir := dirWith(t, "bad-expr.yaml", "undeclared-need.yaml")

	_, err := Load(dir, nil)
	require.Error(t, err, "Load compiles everything")

	cat, err := Index(dir, nil)
	require.NoError(t, err)
	assert.Empty(t, cat.byID["ndr-5.5.4"], "a built-in is not parsed before it is needed")
	require.NotNil(t, cat.unparsed["ndr-5.5.4"])

	pb, err := cat.Resolve("5.5.4")
	require.NoError(t, err)
	require.NotEmpty(t, pb.Rules)
	for _, s := range pb.Steps {
		if s.Cmdlet != nil {
			for _, a := range s.Cmdlet.Args {
				assert.True(t, a.Expr == "" || a.prog != nil, "step %s -%s is compiled when Resolve returns", s.ID, a.Name)
			}
		}
	}
	require.NoError(t, pb.await(ctx))
	for _, r := range pb.Rules {
		assert.NotNil(t, r.when, "rule %s of the chosen playbook is compiled", r.ID)
	}
	again, err := cat.Resolve("ndr-5.5.4")
	require.NoError(t, err)
	assert.Same(t, pb, again)
	for _, other := range cat.All() {
		if other.ID == "ndr-5.5.4" {
			continue
		}
		for _, r := range other.Rules {
			assert.Nil(t, r.when, "%s: listed, not compiled", other.ID)
		}
	}

	// Its steps compile, its rule does not: chosen, then the problem comes
	// from await (the engine's wait), and from every later Resolve.
	broken, err := cat.Resolve("bad-expr")
	require.NoError(t, err)
	err = broken.await(ctx)
	for i := range 3 {
		var ps Problems
		require.True(t, errors.As(err, &ps), "%d: %v", i, err)
		require.Len(t, ps, 1)
		assert.Equal(t, 8, ps[0].Line)
		assert.Contains(t, ps[0].Msg, "rules.broken.when: expression")
		_, err = cat.Resolve("bad-expr")
	}

	// Broken in its steps: refused by Resolve, with everything wrong in it.
	_, err = cat.Resolve("undeclared-need")
	var ps Problems
	require.True(t, errors.As(err, &ps), "%v", err)
	assert.Equal(t, 7, ps[0].Line)
	assert.Contains(t, ps[0].Msg, `reads step "queues", which is not in its needs`)

	// A file that is not a playbook at all is still refused when indexing.
	_, err = Index(dirWith(t, "bad-yaml.yaml"), nil)
	assert.Error(t, err)
}

// Whatever a diagnosis defers, it reports exactly what lint does: for every
// lint fixture, Index then Resolve then await give Load's problems, in order,
// or, for a file broken before any check (its YAML, its keys), the problems
// Index refuses it with, as before.
func TestIndexReportsWhatLoadReports(t *testing.T) {
	targets := config.Default(nil).TargetKinds()
	kinds := registry.Kinds()
	files, err := filepath.Glob("testdata/lint/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			dir := dirWith(t, filepath.Base(f))
			_, loadErr := Load(dir, targets, kinds...)
			var want Problems
			require.True(t, errors.As(loadErr, &want), "every fixture is broken: %v", loadErr)

			data, err := os.ReadFile(f)
			require.NoError(t, err)
			_, pr, parseErr := parse(filepath.Join(dir, filepath.Base(f)), data)
			cat, indexErr := Index(dir, targets, kinds...)
			if parseErr != nil || len(pr.list) > 0 {
				var got Problems
				require.True(t, errors.As(indexErr, &got), "refused when indexing: %v", indexErr)
				if parseErr == nil {
					assert.Equal(t, pr.list.sorted(), got)
				}
				return
			}
			require.NoError(t, indexErr)
			id := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(string(data), "\n", 2)[0], "id:"))
			pb, err := cat.Resolve(id)
			if err == nil {
				err = pb.await(context.Background())
			}
			var got Problems
			require.True(t, errors.As(err, &got), "%v", err)
			assert.Equal(t, want, got)
		})
	}
}

// A diagnosis whose rules turn out not to compile ends with their problems,
// evaluating no rule; one whose playbook is sound finds what a Load-checked
// one finds.
func TestDeferredCheckAndTheDiagnosis(t *testing.T) {
	ctx := context.Background()
	targets := map[string]string{"exchange": "exchange", "psrp": "exchange", "jea": "jea", "eop": "probe", "net": "probe", "graph": "graph", "exo": "exo"}
	kinds := registry.Kinds()
	diagnose := func(t *testing.T, cat *Catalog, code, scenario string) (*Run, error) {
		t.Helper()
		pb, err := cat.Resolve(code)
		require.NoError(t, err)
		l, err := lab.New(scenario, lab.Options{Now: func() time.Time { return time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) }})
		require.NoError(t, err)
		eng := NewEngine(l.Targets(targets), Options{Now: func() time.Time { return time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) }})
		run := NewRun("r-1", pb, map[string]any{}, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), nil)
		return run, eng.Diagnose(ctx, run)
	}

	t.Run("rules do not compile", func(t *testing.T) {
		cat, err := Index(dirWith(t, "rule-field.yaml"), targets, kinds...)
		require.NoError(t, err)
		run, err := diagnose(t, cat, "rule-field", "healthy")
		var ps Problems
		require.True(t, errors.As(err, &ps), "%v", err)
		assert.Len(t, ps, 2)
		assert.Contains(t, ps[0].Msg, "reads MessageCnt")
		assert.Len(t, run.Steps(), 2, "the read-only steps ran")
		for _, f := range run.Findings() {
			assert.Contains(t, []string{"step-failed", "step-skipped"}, f.Rule, "no rule was evaluated")
		}
	})

	for _, scenario := range []string{"healthy", "overloaded-queue", "throttled-sender"} {
		t.Run(scenario, func(t *testing.T) {
			loaded, err := Load("", targets, kinds...)
			require.NoError(t, err)
			indexed, err := Index("", targets, kinds...)
			require.NoError(t, err)
			want, err := diagnose(t, loaded, "5.5.4", scenario)
			require.NoError(t, err)
			got, err := diagnose(t, indexed, "5.5.4", scenario)
			require.NoError(t, err)
			require.NotEmpty(t, want.Findings())
			assert.Equal(t, want.Findings(), got.Findings())
			assert.Equal(t, want.Proposals(), got.Proposals())
			assert.Equal(t, want.Escalations(), got.Escalations())
		})
	}
}

// Heads gives what choosing for a bounce needs without parsing a built-in's
// YAML (each is built from its Go copy) nor adding it to the catalog.
func TestHeadsParseNothing(t *testing.T) {
	cat, err := Index("", nil)
	require.NoError(t, err)
	heads := cat.Heads()
	assert.Empty(t, cat.byID, "listing the heads parsed a playbook")
	var ids []string
	for _, h := range heads {
		ids = append(ids, h.ID)
	}
	assert.Contains(t, ids, "ndr-5.5.4")
	// Each with its params, as parsing it whole gives.
	loaded, err := Load("", nil)
	require.NoError(t, err)
	for _, h := range heads {
		pb, err := loaded.Resolve(h.ID)
		require.NoError(t, err)
		assert.Equal(t, pb.Head(), h)
	}
}

// The list of known playbooks in Resolve's refusal names the unparsed ones too.
func TestIndexRefusalListsEveryPlaybook(t *testing.T) {
	cat, err := Index(dirWith(t, "rule-field.yaml"), nil)
	require.NoError(t, err)
	_, err = cat.Resolve("9.9.9")
	require.ErrorIs(t, err, incident.ErrNotFound)
	assert.Contains(t, err.Error(), "ndr-5.5.4 (5.5.4, 4.4.0")
	assert.Contains(t, err.Error(), "rule-field ()")
	assert.Empty(t, cat.byID["ndr-5.5.4"], "refusing parses nothing")
}

// BenchmarkChoosePlaybook is what choosing the 5.5.4 playbook costs in-process:
// Index as a diagnosis from the terminal does (the built-ins' heads, then the
// chosen one parsed, checked and compiled, its rules in the background: waited
// for here), and Load as serve and lint do (every built-in parsed, checked and
// compiled).
//
//	go test ./playbooks -run '^$' -bench ChoosePlaybook
func BenchmarkChoosePlaybook(b *testing.B) {
	targets, kinds := config.Default(nil).TargetKinds(), registry.Kinds()
	b.Run("Index", func(b *testing.B) {
		for b.Loop() {
			cat, err := Index("", targets, kinds...)
			if err != nil {
				b.Fatal(err)
			}
			pb, err := cat.Resolve("5.5.4")
			if err == nil {
				err = pb.await(context.Background())
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Load", func(b *testing.B) {
		for b.Loop() {
			cat, err := Load("", targets, kinds...)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := cat.Resolve("5.5.4"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestBuiltinFieldsUnderEveryKind is why an Index skips the field check of a
// built-in playbook (deferredCheck.ready): every built-in reads only fields its
// steps return, whatever kind of this build each of its targets is configured
// as. A step's rows have the shape of its own target's kind only, so each
// target is tried with each kind, the others as configured by default; a
// kind that cannot run the playbook's steps or reliefs on that target is
// refused by the checks a diagnosis still runs, and is not tried further.
func TestBuiltinFieldsUnderEveryKind(t *testing.T) {
	kinds := registry.Kinds()
	defaults := config.Default(nil).TargetKinds()
	for _, f := range builtinFiles(t) {
		name, data, pb := f.name, f.data, f.parse(t)
		used := map[string]bool{}
		for _, s := range pb.Steps {
			used[s.Target] = true
		}
		for _, r := range pb.Reliefs {
			used[r.Target] = true
		}
		for target := range used {
			tried := 0
			for _, k := range kinds {
				targets := maps.Clone(defaults)
				targets[target] = k.Name
				pb, _, err := parse(name, data)
				require.NoError(t, err)
				c := newPlaybookCheck(pb, targets, kinds, true)
				refused := &problems{file: name}
				c.steps(refused)
				c.compile(refused)
				if len(refused.list) > 0 {
					continue
				}
				tried++
				fields := &problems{file: name}
				c.fields(fields)
				assert.Empty(t, fields.list, "%s with target %s of kind %s", name, target, k.Name)
			}
			assert.NotZero(t, tried, "%s: no kind of this build runs target %s", name, target)
		}
	}
}

// Choose names, from the heads alone, the playbook Resolve returns.
func TestChooseIsResolve(t *testing.T) {
	targets, kinds := config.Default(nil).TargetKinds(), registry.Kinds()
	cat, err := Index("", targets, kinds...)
	require.NoError(t, err)
	for _, h := range cat.Heads() {
		for _, code := range append([]string{h.ID}, h.Matches...) {
			id, ok := cat.Choose(code)
			require.True(t, ok, code)
			pb, err := cat.Resolve(code)
			require.NoError(t, err, code)
			assert.Equal(t, pb.ID, id, code)
		}
	}
	_, ok := cat.Choose("9.9.9")
	assert.False(t, ok)
}

var update = flag.Bool("update", false, "rewrite builtin_heads.go and builtin_parsed.go from the built-in playbooks")

// TestBuiltinHeads holds builtinHeads to the built-in files: one entry per
// file, in file order, with the id and matches parse reads in it.
func TestBuiltinHeads(t *testing.T) {
	var want []builtinHead
	for _, f := range builtinFiles(t) {
		pb := f.parse(t)
		want = append(want, builtinHead{File: path.Base(f.name), ID: pb.ID, Matches: pb.Matches})
	}
	if *update {
		var b strings.Builder
		b.WriteString("// Code generated by go test ./playbooks -run TestBuiltinHeads -update; DO NOT EDIT.\n\npackage playbooks\n\nvar builtinHeads = []builtinHead{\n")
		for _, h := range want {
			fmt.Fprintf(&b, "\t{File: %q, ID: %q, Matches: %#v},\n", h.File, h.ID, h.Matches)
		}
		b.WriteString("}\n")
		src, err := format.Source([]byte(b.String()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile("builtin_heads.go", src, 0o644))
		return
	}
	assert.Equal(t, want, builtinHeads, "builtin_heads.go is not what the built-in files say: go test ./playbooks -run TestBuiltinHeads -update")
}

// builtinFile is one built-in playbook file: its name under builtin/ and its bytes.
type builtinFile struct {
	name string
	data []byte
}

// builtinFiles is every built-in playbook file, in file order.
func builtinFiles(t testing.TB) []builtinFile {
	t.Helper()
	names, err := fs.Glob(builtin, "builtin/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, names)
	var out []builtinFile
	for _, n := range names {
		data, err := builtin.ReadFile(n)
		require.NoError(t, err)
		out = append(out, builtinFile{n, data})
	}
	return out
}

// parse parses the file, which must parse without a problem.
func (f builtinFile) parse(t testing.TB) *Playbook {
	t.Helper()
	pb, pr, err := parse(f.name, f.data)
	require.NoError(t, err)
	require.Empty(t, pr.list, f.name)
	return pb
}
