package cases_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/playbooks/cases"
)

// The CLI hands its catalog over as it is.
var _ cases.Resolver = (*playbooks.Catalog)(nil)

// kinds is what a configuration would give for the test playbook's targets;
// exchange and jea are left out on purpose: named after their kind, they need
// no entry.
var kinds = map[string]string{"eop": "probe"}

// catalog resolves the test playbooks by id or code, as *playbooks.Catalog
// does for the real ones, without the built-ins (being migrated elsewhere).
type catalog []*playbooks.Playbook

func (c catalog) Resolve(code string) (*playbooks.Playbook, error) {
	for _, pb := range c {
		if pb.ID == code || slices.Contains(pb.Matches, code) {
			return pb, nil
		}
	}
	return nil, os.ErrNotExist
}

func testCatalog(t *testing.T) catalog {
	t.Helper()
	files, err := filepath.Glob("testdata/playbooks/*.yaml")
	require.NoError(t, err)
	var c catalog
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		pb, err := playbooks.Parse(f, data, map[string]string{"exchange": "exchange", "jea": "jea", "eop": "probe"})
		require.NoError(t, err)
		c = append(c, pb)
	}
	return c
}

func run(t *testing.T, c cases.Case, opts cases.Options) cases.Result {
	t.Helper()
	if opts.Kinds == nil {
		opts.Kinds = kinds
	}
	return cases.Run(context.Background(), c, testCatalog(t), opts)
}

func TestLoadFindsCasesSorted(t *testing.T) {
	cs, err := cases.Load("testdata/cases")
	require.NoError(t, err)
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	assert.Equal(t, []string{"network-down", "overloaded", "relief-fails"}, names)
	assert.Equal(t, filepath.Join("testdata", "cases", "overloaded.yaml"), cs[1].File)
	assert.Equal(t, map[string]string{"sender": "billing@contoso.com"}, cs[1].Params)

	// One file is a directory of one case.
	one, err := cases.Load("testdata/cases/overloaded.yaml")
	require.NoError(t, err)
	require.Len(t, one, 1)
	assert.Equal(t, "overloaded", one[0].Name)
}

func TestShippedCasesPass(t *testing.T) {
	cs, err := cases.Load("testdata/cases")
	require.NoError(t, err)
	for _, c := range cs {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			r := run(t, c, cases.Options{})
			assert.True(t, r.Passed, strings.Join(r.Failures, "\n"))
			assert.Empty(t, r.Failures)
			assert.Positive(t, r.Duration)
			require.NotNil(t, r.Run)
		})
	}
}

// copyTree copies testdata's orgs and cases into a temporary directory, so a
// test can change one file and keep the relative org: paths.
func copyTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"orgs", "cases"} {
		files, err := filepath.Glob(filepath.Join("testdata", sub, "*.yaml"))
		require.NoError(t, err)
		require.NoError(t, os.Mkdir(filepath.Join(dir, sub), 0o755))
		for _, f := range files {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, sub, filepath.Base(f)), data, 0o644))
		}
	}
	return dir
}

func edit(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(data), old)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644))
}

// The issue's own test: the same case fails when its organisation file changes.
func TestSameCaseFailsWhenItsOrgChanges(t *testing.T) {
	dir := copyTree(t)
	load := func() cases.Case {
		cs, err := cases.Load(filepath.Join(dir, "cases", "overloaded.yaml"))
		require.NoError(t, err)
		return cs[0]
	}
	require.True(t, run(t, load(), cases.Options{}).Passed, "the unchanged copy passes")

	edit(t, filepath.Join(dir, "orgs", "overloaded.yaml"), "MessageCount: 1523", "MessageCount: 12")
	r := run(t, load(), cases.Options{})
	assert.False(t, r.Passed)
	file := filepath.Join(dir, "cases", "overloaded.yaml")
	assert.Contains(t, r.Failures, file+":7: expect.proposals[0]: restart-transport not proposed (proposed: none; findings: still-failing, queues-healthy)")
	assert.Contains(t, r.Failures, file+":5: expect.findings: queue-overloaded not found (findings: still-failing, queues-healthy)")
	assert.Contains(t, r.Failures, file+":10: approve[0]: restart-transport not proposed, so it cannot be approved (proposed: none; findings: still-failing, queues-healthy)")
}

// Each kind of expectation fails, with the key, what was expected and what
// was got, when the organisation does not bear it out.
func TestEachExpectationFailsClearly(t *testing.T) {
	tests := []struct {
		name, org, body string
		want            string // the failure, after "file:line: "
		line            int
	}{
		{name: "finding missing", org: "overloaded", body: "expect:\n  findings: [network-down]\n",
			line: 4, want: "expect.findings: network-down not found (findings: still-failing, queue-overloaded)"},
		{name: "finding too few times", org: "overloaded", body: "expect:\n  findings: [still-failing, still-failing]\n",
			line: 4, want: "expect.findings: still-failing found ×1, expected ×2 (findings: still-failing, queue-overloaded)"},
		{name: "only", org: "overloaded", body: "expect:\n  only: true\n  findings: [still-failing]\n",
			line: 5, want: "expect.findings: unexpected queue-overloaded ×1 (only: true; findings: still-failing, queue-overloaded)"},
		{name: "not_findings", org: "overloaded", body: "expect:\n  not_findings: [queue-overloaded]\n",
			line: 4, want: `expect.not_findings: queue-overloaded found: "Queue EX01\\7 holds 1523 messages (> 1000)"`},
		{name: "proposal hosts", org: "overloaded", body: "expect:\n  proposals:\n    - {relief: restart-transport, hosts: [ex02.lab.contoso.com]}\n",
			line: 5, want: "expect.proposals[0].hosts: restart-transport on ex01.lab.contoso.com, expected on ex02.lab.contoso.com"},
		{name: "proposal blocked", org: "overloaded", body: "expect:\n  proposals: [{relief: restart-transport, blocked: true}]\n",
			line: 4, want: "expect.proposals[0].blocked: restart-transport may run, expected it blocked"},
		{name: "proposal args", org: "overloaded", body: "expect:\n  proposals: [{relief: restart-transport, args: {policy: Tight}}]\n",
			line: 4, want: "expect.proposals[0].args.policy: restart-transport has no argument policy (args: {\"service\":\"MSExchangeTransport\",\"within\":5})"},
		{name: "proposal arg value", org: "overloaded", body: "expect:\n  proposals: [{relief: restart-transport, args: {within: 10}}]\n",
			line: 4, want: "expect.proposals[0].args.within: restart-transport: expected 10, got 5"},
		{name: "only proposals", org: "overloaded", body: "expect:\n  only: true\n  proposals: []\n",
			line: 5, want: "expect.proposals: unexpected restart-transport on ex01.lab.contoso.com (only: true; because: queue-overloaded)"},
		{name: "no restart", org: "overloaded", body: "expect:\n  not_proposals: [restart-transport]\n",
			line: 4, want: "expect.not_proposals: restart-transport proposed on ex01.lab.contoso.com (because: queue-overloaded)"},
		{name: "escalation missing", org: "overloaded", body: "expect:\n  escalations: [eop-side]\n",
			line: 4, want: "expect.escalations: eop-side not raised (raised: none; findings: still-failing, queue-overloaded)"},
		{name: "escalation unwanted", org: "network-down", body: "expect:\n  not_escalations: [network]\n",
			line: 4, want: "expect.not_escalations: network raised: Port 25 to EOP failed"},
		{name: "text", org: "overloaded", body: "expect:\n  text: ['holds 12 messages']\n",
			line: 4, want: `expect.text[0]: no finding says "holds 12 messages" (finding texts: "5.5.4 still happening on ex01.lab.contoso.com", "Queue EX01\\7 holds 1523 messages (> 1000)")`},
		{name: "approve not proposed", org: "network-down", body: "expect:\n  findings: [network-down]\napprove: [restart-transport]\n",
			line: 5, want: "approve[0]: restart-transport not proposed, so it cannot be approved (proposed: none; findings: still-failing, queues-healthy, network-down)"},
		{name: "after verified", org: "relief-fails", body: "expect: {findings: [queue-overloaded]}\napprove: [restart-transport]\nafter:\n  verified: true\n",
			line: 6, want: "after.verified: restart-transport verification: expected verified, got not verified (after: findings: still-failing, queue-overloaded)"},
		{name: "after escalation", org: "overloaded", body: "expect: {findings: [queue-overloaded]}\napprove: [restart-transport]\nafter:\n  escalations: [persists-after-relief]\n",
			line: 6, want: "after.escalations: persists-after-relief not raised (raised: none; findings: queues-healthy)"},
		{name: "after failed", org: "overloaded", body: "expect: {findings: [queue-overloaded]}\napprove: [restart-transport]\nafter: {failed: true}\n",
			line: 5, want: "after.failed: restart-transport ran on ex01.lab.contoso.com, expected it to fail"},
		{name: "after findings", org: "relief-fails", body: "expect: {findings: [queue-overloaded]}\napprove: [restart-transport]\nafter:\n  not_findings: [queue-overloaded]\n",
			line: 6, want: `after.not_findings: queue-overloaded found: "Queue EX01\\7 holds 1610 messages (> 1000)"`},
	}
	orgs, err := filepath.Abs(filepath.Join("testdata", "orgs"))
	require.NoError(t, err)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "case.yaml")
			body := "playbook: lab-queue\norg: " + filepath.Join(orgs, tc.org+".yaml") + "\n" + tc.body
			require.NoError(t, os.WriteFile(file, []byte(body), 0o644))
			cs, err := cases.Load(file)
			require.NoError(t, err)
			r := run(t, cs[0], cases.Options{})
			assert.False(t, r.Passed)
			assert.Equal(t, []string{fmt.Sprintf("%s:%d: %s", file, tc.line, tc.want)}, r.Failures)
		})
	}
}

func TestLoadReportsEveryBadFileWithLine(t *testing.T) {
	_, err := cases.Load("testdata/bad")
	var ps playbooks.Problems
	require.ErrorAs(t, err, &ps)
	assert.Equal(t, []string{
		"testdata/bad/misspelt-key.yaml:5: expect.not_findigns: unknown key (allowed: findings, not_findings, only, escalations, not_escalations, text, proposals, not_proposals)",
		"testdata/bad/no-playbook.yaml:2: playbook: required (a playbook id or a code it matches)",
	}, strings.Split(err.Error(), "\n"))
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"top-level key", "playbook: lab-queue\norg: builtin:healthy\nexpect: {findings: [x]}\napprove_all: true\n",
			"c.yaml:4: approve_all: unknown key (allowed: playbook, org, params, expect, approve, after)"},
		{"proposal key", "playbook: lab-queue\norg: builtin:healthy\nexpect:\n  proposals: [{relief: r, host: [a]}]\n",
			"c.yaml:4: expect.proposals[0].host: unknown key (allowed: relief, hosts, args, blocked)"},
		{"no org", "playbook: lab-queue\nexpect: {findings: [x]}\n",
			"c.yaml:1: org: required (a path relative to this file, or builtin:<name>)"},
		{"org missing", "playbook: lab-queue\norg: nowhere.yaml\nexpect: {findings: [x]}\n",
			"c.yaml:2: org: stat nowhere.yaml: no such file or directory"},
		{"unknown builtin", "playbook: lab-queue\norg: builtin:nowhere\nexpect: {findings: [x]}\n",
			`c.yaml:2: org: no built-in organisation "nowhere"`},
		{"no expect", "playbook: lab-queue\norg: builtin:healthy\n",
			"c.yaml:1: expect: required"},
		{"empty expect", "playbook: lab-queue\norg: builtin:healthy\nexpect: {}\n",
			"c.yaml:3: expect: name at least one expectation"},
		{"after without approve", "playbook: lab-queue\norg: builtin:healthy\nexpect: {findings: [x]}\nafter: {verified: true}\n",
			"c.yaml:4: after: checks what approved reliefs left; it needs approve:"},
		{"proposals after", "playbook: lab-queue\norg: builtin:healthy\nexpect: {findings: [x]}\napprove: [r]\nafter: {proposals: [r]}\n",
			"c.yaml:5: after.proposals: unknown key"},
		{"not a bool", "playbook: lab-queue\norg: builtin:healthy\nexpect:\n  only: sure\n  findings: [x]\n",
			`c.yaml:4: expect.only: "sure" is not true or false`},
		{"bad yaml", "playbook: lab-queue\norg: [\n", "c.yaml:2: yaml: line 2:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cases.Parse("c.yaml", []byte(tc.body))
			var ps playbooks.Problems
			require.ErrorAs(t, err, &ps)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// What only the playbook can tell: checked by Validate, and reported by Run
// as failures before anything runs.
func TestValidateAgainstThePlaybook(t *testing.T) {
	orgs, err := filepath.Abs(filepath.Join("testdata", "orgs"))
	require.NoError(t, err)
	org := filepath.Join(orgs, "overloaded.yaml")
	tests := []struct {
		name, body string
		opts       cases.Options
		want       []string
	}{
		{name: "unknown relief in approve", body: "playbook: lab-queue\norg: " + org + "\nexpect: {findings: [queue-overloaded]}\napprove:\n  - restart-transport\n  - restart-transprot\n",
			want: []string{`c.yaml:6: approve[1]: lab-queue has no relief "restart-transprot" (its reliefs: restart-transport)`}},
		{name: "unknown playbook", body: "playbook: 5.5.5\norg: " + org + "\nexpect: {findings: [queue-overloaded]}\n",
			want: []string{"c.yaml:1: playbook: file does not exist"}},
		// A misspelt rule in not_findings would otherwise pass for ever.
		{name: "unknown ids", body: "playbook: lab-queue\norg: " + org + "\nexpect:\n  not_findings: [conector-unhealthy]\n  escalations: [eop]\n  proposals: [restart]\n",
			want: []string{
				`c.yaml:4: expect.not_findings[0]: lab-queue has no rule "conector-unhealthy" (its rules: step-failed, step-skipped, still-failing, queue-overloaded, queue-elevated, queues-healthy, network-down)`,
				`c.yaml:5: expect.escalations[0]: lab-queue has no escalation "eop" (its escalations: persists-after-relief, eop-side, network)`,
				`c.yaml:6: expect.proposals[0]: lab-queue has no relief "restart" (its reliefs: restart-transport)`,
			}},
		{name: "bad param", body: "playbook: lab-queue\norg: " + org + "\nparams: {sender: not-an-address}\nexpect: {findings: [queue-overloaded]}\n",
			want: []string{"c.yaml:3: params: sender"}},
		{name: "target without kind", body: "playbook: lab-queue\norg: " + org + "\nexpect: {findings: [queue-overloaded]}\n",
			opts: cases.Options{Kinds: map[string]string{}},
			want: []string{`c.yaml:1: playbook: lab-queue uses target "eop", which has no kind (configure it, or pass its kind)`}},
		{name: "org of another playbook", body: "playbook: lab-queue\norg: builtin:overloaded-queue\nexpect: {findings: [queue-overloaded]}\n",
			want: []string{"c.yaml:2: org: lab: organisation orgs/overloaded-queue.yaml simulates a ndr-5.5.4 incident, not lab-queue"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cases.Parse("c.yaml", []byte(tc.body))
			require.NoError(t, err)
			opts := tc.opts
			if opts.Kinds == nil {
				opts.Kinds = kinds
			}
			err = cases.Validate(c, testCatalog(t), opts)
			var ps playbooks.Problems
			require.ErrorAs(t, err, &ps)
			require.Len(t, ps, len(tc.want), err.Error())
			for i, w := range tc.want {
				assert.Contains(t, ps[i].String(), w)
			}
			r := cases.Run(context.Background(), c, testCatalog(t), opts)
			assert.False(t, r.Passed)
			assert.Nil(t, r.Run, "nothing runs")
			assert.Len(t, r.Failures, len(tc.want))
		})
	}
}

// A built-in organisation needs no file; every Run gets a fresh lab, so an
// approved relief in one case does not leak into the next.
func TestBuiltinOrgAndFreshLabPerRun(t *testing.T) {
	c, err := cases.Parse("c.yaml", []byte("playbook: lab-queue\norg: builtin:healthy\nexpect:\n  findings: [queues-healthy]\n  not_findings: [still-failing]\n  escalations: []\n  only: true\n"))
	require.NoError(t, err)
	r := run(t, c, cases.Options{})
	assert.True(t, r.Passed, strings.Join(r.Failures, "\n"))

	cs, err := cases.Load("testdata/cases/overloaded.yaml")
	require.NoError(t, err)
	for range 2 {
		r := run(t, cs[0], cases.Options{})
		assert.True(t, r.Passed, strings.Join(r.Failures, "\n"))
	}
}

// A relief misspelt in approve: passes Load (it is well-formed YAML) but cannot run.
func TestUnknownReliefInApproveFile(t *testing.T) {
	cs, err := cases.Load("testdata/bad/bad-approve.yaml")
	require.NoError(t, err)
	err = cases.Validate(cs[0], testCatalog(t), cases.Options{Kinds: kinds})
	require.EqualError(t, err, `testdata/bad/bad-approve.yaml:6: approve[0]: lab-queue has no relief "restart-transprot" (its reliefs: restart-transport)`)
}
