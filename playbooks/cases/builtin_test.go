package cases_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/playbooks/cases"
)

// The built-in playbooks pass their own cases on the built-in organisations.
func TestBuiltinCasesPass(t *testing.T) {
	kinds := map[string]string{"exchange": "exchange", "jea": "jea", "eop": "probe", "net": "probe", "graph": "graph"}
	cat, err := playbooks.Load("", kinds)
	require.NoError(t, err)
	all, err := cases.Builtin()
	require.NoError(t, err)
	require.NotEmpty(t, all)
	for _, c := range all {
		t.Run(c.Name, func(t *testing.T) {
			res := cases.Run(context.Background(), c, cat, cases.Options{Kinds: kinds})
			for _, f := range res.Failures {
				t.Error(f)
			}
		})
	}
}

// Throttling as Exchange applies it: precedence (own, Organization, Global),
// inherited values, raise only what is low, Global never changed, 554 5.2.0 seen.
func TestThrottlingPrecedenceCases(t *testing.T) {
	kinds := map[string]string{"exchange": "exchange", "jea": "jea", "eop": "probe", "net": "probe", "graph": "graph"}
	cat, err := playbooks.Load("", kinds)
	require.NoError(t, err)
	all, err := cases.Load("testdata/throttling")
	require.NoError(t, err)
	require.Len(t, all, 3)
	for _, c := range all {
		t.Run(c.Name, func(t *testing.T) {
			res := cases.Run(context.Background(), c, cat, cases.Options{Kinds: kinds})
			for _, f := range res.Failures {
				t.Error(f)
			}
		})
	}
}

// Restarting safely: not offered when it would leave the site without a healthy
// transport server; verified by a test message through the path that failed.
func TestRestartSafetyCases(t *testing.T) {
	kinds := map[string]string{"exchange": "exchange", "jea": "jea", "eop": "probe", "net": "probe", "graph": "graph"}
	cat, err := playbooks.Load("", kinds)
	require.NoError(t, err)
	all, err := cases.Load("testdata/restart")
	require.NoError(t, err)
	require.Len(t, all, 3)
	for _, c := range all {
		t.Run(c.Name, func(t *testing.T) {
			res := cases.Run(context.Background(), c, cat, cases.Options{Kinds: kinds})
			for _, f := range res.Failures {
				t.Error(f)
			}
			if c.Name == "delivery-test-fails" && res.Run != nil {
				var texts []string
				for _, f := range res.Run.Findings() {
					if f.Rule == "delivery-test" {
						texts = append(texts, f.Text)
					}
				}
				require.NotEmpty(t, texts)
				require.Contains(t, texts[0], "NOT delivered (*FAILURE*)")
			}
		})
	}
}
