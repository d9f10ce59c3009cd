package cases_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/playbooks/cases"
)

// runAll runs each case against the built-in playbooks, as `ndrbot playbooks test`
// does, failing a subtest per case with every mismatch it reports; each returns
// the case's result for checks beyond the expectations its file states.
func runAll(t *testing.T, all []cases.Case, each func(*testing.T, cases.Case, cases.Result)) {
	t.Helper()
	kinds := map[string]string{"exchange": "exchange", "jea": "jea", "eop": "probe", "net": "probe", "graph": "graph", "exo": "exo"}
	loaded, err := playbooks.Load("", kinds)
	require.NoError(t, err)
	// An Index compiles a built-in as a diagnosis from the terminal does
	// (without expr's optimiser): the cases pass on both.
	indexed, err := playbooks.Index("", kinds)
	require.NoError(t, err)
	require.NotEmpty(t, all)
	for _, c := range all {
		t.Run(c.Name, func(t *testing.T) {
			for _, on := range []struct {
				name string
				cat  cases.Resolver
			}{{"Load", loaded}, {"Index", indexed}} {
				t.Run(on.name, func(t *testing.T) {
					res := cases.Run(context.Background(), c, on.cat, cases.Options{Kinds: kinds})
					for _, f := range res.Failures {
						t.Error(f)
					}
					if each != nil {
						each(t, c, res)
					}
				})
			}
		})
	}
}

// The built-in playbooks pass their own cases on the built-in organisations.
func TestBuiltinCasesPass(t *testing.T) {
	all, err := cases.Builtin()
	require.NoError(t, err)
	// A rule that cannot be evaluated (nil where a string was expected) is
	// not found, so not_findings would pass over it: none may occur.
	runAll(t, all, func(t *testing.T, c cases.Case, res cases.Result) {
		if res.Run == nil {
			return
		}
		for _, f := range res.Run.Findings() {
			if cases.RuleError(f) {
				t.Errorf("%s: %s", c.Name, f.Text)
			}
		}
	})
}

// Throttling as Exchange applies it: precedence (own, Organization, Global),
// inherited values, raise only what is low, Global never changed, 554 5.2.0 seen.
func TestThrottlingPrecedenceCases(t *testing.T) {
	all, err := cases.Load("testdata/throttling")
	require.NoError(t, err)
	require.Len(t, all, 3)
	runAll(t, all, nil)
}

// Restarting safely: not offered when it would leave the site without a healthy
// transport server; verified by a test message through the path that failed.
func TestRestartSafetyCases(t *testing.T) {
	all, err := cases.Load("testdata/restart")
	require.NoError(t, err)
	require.Len(t, all, 3)
	runAll(t, all, func(t *testing.T, c cases.Case, res cases.Result) {
		if c.Name != "delivery-test-fails" || res.Run == nil {
			return
		}
		var texts []string
		for _, f := range res.Run.Findings() {
			if f.Rule == "delivery-test" {
				texts = append(texts, f.Text)
			}
		}
		require.NotEmpty(t, texts)
		require.Contains(t, texts[0], "NOT delivered (*FAILURE*)")
	})
}
