package playbooks_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/registry"
	"github.com/ndrbot/ndrbot/playbooks"
)

// The built-in playbooks lint clean against every kind's description, with the
// lab's targets and with the default configuration's (what ndrbot playbooks lint
// checks them against).
func TestBuiltinsLintClean(t *testing.T) {
	for name, targets := range map[string]map[string]string{"lab": labTargets, "default config": config.Default(nil).TargetKinds()} {
		t.Run(name, func(t *testing.T) {
			cat, err := playbooks.Load("", targets, registry.Kinds()...)
			require.NoError(t, err)
			assert.NotEmpty(t, cat.All())
		})
	}
}

// Each broken playbook is rejected with the file and line of the problem.
func TestLintErrorsHaveLines(t *testing.T) {
	tests := []struct {
		file string
		line int
		msg  string
	}{
		{"unknown-target.yaml", 7, `unknown target "dmz-probe"`},
		{"unknown-refs.yaml", 8, `unknown step "queue"`},
		{"unknown-refs.yaml", 8, `propose: unknown relief "restart-transprot"`},
		{"unknown-refs.yaml", 15, `unknown relief "restart-transport"`},
		{"bad-expr.yaml", 8, `rules.broken.when: expression`},
		{"no-approval.yaml", 8, `an approval policy is required`},
		{"bad-role.yaml", 13, `approval.role: "approvers" is not a role (approver or admin)`},
		{"cycle.yaml", 4, `needs form a cycle: a → c → b → a`},
		{"misspelt.yaml", 6, `unknown key "powershel"`},
		{"bad-yaml.yaml", 2, `yaml:`},
		{"undeclared-need.yaml", 7, `reads step "queues", which is not in its needs`},
		{"cmdlet-errors.yaml", 13, `text with {{ }} inside is not allowed`},
		{"cmdlet-errors.yaml", 16, `is not a cmdlet name`},
		{"cmdlet-errors.yaml", 17, `set one of cmdlet, powershell and check`},
		{"cmdlet-errors.yaml", 21, `a cmdlet needs a target of kind exchange, exo, jea, lab or winrm`},
		{"cmdlet-errors.yaml", 24, `powershell scripts run only on winrm targets`},
		{"cmdlet-errors.yaml", 30, `unknown name params.sendr`},
		{"cmdlet-errors.yaml", 31, `args, select, where, derive and foreach go with cmdlet`},
		{"cmdlet-errors.yaml", 45, `a relief's arguments read params, args (its with) and host, not steps`},
		{"cmdlet-errors.yaml", 33, `check "smtp" needs a target of kind graph, lab or probe, not exchange target "exchange"`},

		// What the kinds say about themselves (executors.Kind, executors/registry).
		{"unknown-check.yaml", 7, `steps.network.check: unknown check "smtpp" for probe targets (checks: dkim, dmarc, dns, dnsbl, mx, smtp, smtp-mx, spf, tcp); did you mean "smtp"?`},
		{"check-argument.yaml", 11, `steps.mx: check "mx" needs the argument "domain": set it in with, or declare a playbook parameter of that name`},
		{"cmdlet-mandatory.yaml", 6, `steps.component: Get-ServerComponentState needs -Identity (a mandatory parameter)`},
		{"cmdlet-parameter.yaml", 9, `steps.queues.args: Get-Queue has no parameter -ResultSise (parameters: -Identity, -Server, -Filter, -ResultSize,`},
		{"cmdlet-parameter.yaml", 9, `did you mean "ResultSize"?`},
		{"cmdlet-errors.yaml", 45, `reliefs.restart.args: Restart-Service has no parameter -Force (parameters: -Name)`},
		{"select-property.yaml", 8, `steps.queues.select: Get-Queue writes no property "MessageCnt" (properties: DeferredMessageCount,`},
		{"rule-field.yaml", 15, `rules.queue-deep.when: reads MessageCnt, which no row of steps.queues has (fields: Deep, DeliveryType, Host, Identity, MessageCount, Status); did you mean "MessageCount"?`},
		{"rule-field.yaml", 20, `rules.eop-down.when: reads Stauts, which no row of steps.network has (fields: Address, BannerMs,`},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "lint", tc.file)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			_, err = playbooks.Parse(path, data, labTargets, registry.Kinds()...)
			var ps playbooks.Problems
			require.True(t, errors.As(err, &ps), "want lint problems, got %v", err)
			for _, p := range ps {
				if p.Line == tc.line && strings.Contains(p.Msg, tc.msg) {
					assert.Equal(t, path, p.File)
					return
				}
			}
			t.Errorf("no problem at line %d containing %q in:\n%v", tc.line, tc.msg, err)
		})
	}
}

func TestLintDirReportsEveryFile(t *testing.T) {
	dir := filepath.Join("testdata", "lint")
	fixtures, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	require.Len(t, fixtures, 16)
	n, err := playbooks.LintDir(dir, labTargets, registry.Kinds()...)
	require.Error(t, err)
	assert.Equal(t, len(fixtures), n)
	var ps playbooks.Problems
	require.ErrorAs(t, err, &ps)
	files := map[string]bool{}
	for _, p := range ps {
		files[filepath.Base(p.File)] = true
	}
	assert.Len(t, files, len(fixtures), "every fixture has a problem")
}

// Each fixture of a self-description error has that one problem and no other.
func TestSelfDescriptionFixturesHaveOneProblem(t *testing.T) {
	for _, file := range []string{"unknown-check.yaml", "check-argument.yaml", "cmdlet-mandatory.yaml", "cmdlet-parameter.yaml",
		"select-property.yaml", "rule-field.yaml"} {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join("testdata", "lint", file)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			_, err = playbooks.Parse(path, data, labTargets, registry.Kinds()...)
			var ps playbooks.Problems
			require.ErrorAs(t, err, &ps)
			want := 1
			if file == "rule-field.yaml" {
				want = 2 // a cmdlet step's field and a check step's
			}
			assert.Len(t, ps, want, "%v", err)
		})
	}
}

// Without kind descriptions nothing is held against a kind: the checks and
// cmdlets are not known. A select is still the whole of a cmdlet's rows.
func TestLintWithoutKinds(t *testing.T) {
	for file, problems := range map[string]int{"unknown-check.yaml": 0, "check-argument.yaml": 0, "cmdlet-parameter.yaml": 0, "rule-field.yaml": 1} {
		path := filepath.Join("testdata", "lint", file)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		_, err = playbooks.Parse(path, data, labTargets)
		var ps playbooks.Problems
		errors.As(err, &ps)
		assert.Len(t, ps, problems, "%s: %v", file, err)
	}
}

// A field is checked where rows reach it: let names, concat, first, an
// index, a relief's guard rows; an Unlimited flag is a field of a cmdlet row,
// and what lint cannot follow (rows built in map) is never reported.
func TestLintFieldReads(t *testing.T) {
	const head = `id: reads
title: reads
steps:
  queues:
    target: exchange
    cmdlet: Get-Queue
    select: [Identity, MessageCount]
  limits:
    target: exchange
    cmdlet: Get-TransportService
    select: [Name, MaxPerDomainOutboundConnections]
  net:
    target: eop
    check: tcp
rules:
  - id: r
    severity: info
    finding: x
`
	tests := []struct {
		name, when, want string
	}{
		{"let", `let q = first(steps.queues); q.Identiy != nil`, `reads Identiy, which no row of steps.queues has`},
		{"index", `steps.queues[0].MessageCont > 0`, `reads MessageCont`},
		{"concat", `any(concat(steps.queues, steps.limits), .Nme == "x")`, `reads Nme, which no row of steps.queues or steps.limits has`},
		{"nested predicate", `any(steps.queues, any(steps.net, .Stats == "ok"))`, `reads Stats, which no row of steps.net has`},
		{"unlimited flag", `any(steps.limits, .MaxPerDomainOutboundConnectionsIsUnlimited)`, ``},
		{"union field", `any(concat(steps.queues, steps.limits), .Name == "x")`, ``},
		{"map builds unknown rows", `any(map(steps.queues, let q = #; {X: q.Identity}), .Y)`, ``},
		{"host", `all(steps.net, .Host != "")`, ``},
		{"optional chain", `first(steps.net)?.Statu == "ok"`, `reads Statu`},
		{"ternary with nil", `let n = len(steps.net) > 0 ? first(steps.net) : nil; n?.Adress != nil`, `reads Adress`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := head + "    when: " + strconv.Quote(tc.when) + "\n"
			_, err := playbooks.Parse("reads.yaml", []byte(src), labTargets, registry.Kinds()...)
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestResolveCodes(t *testing.T) {
	cat, err := playbooks.Load("", labTargets)
	require.NoError(t, err)
	for _, code := range []string{"5.5.4", "4.4.0", "ndr-5.5.4", "550 5.5.4", "Service Unavailable"} {
		pb, err := cat.Resolve(code)
		require.NoError(t, err, code)
		assert.Equal(t, "ndr-5.5.4", pb.ID)
	}
	_, err = cat.Resolve("5.1.1")
	assert.ErrorContains(t, err, `no playbook for "5.1.1"`)
}

func TestDirOverridesBuiltin(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("builtin", "ndr-5.5.4.yaml"))
	require.NoError(t, err)
	custom := append([]byte{}, src...)
	custom = append(custom, []byte("\n# site copy\n")...)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ndr.yaml"), custom, 0o600))
	cat, err := playbooks.Load(dir, labTargets)
	require.NoError(t, err)
	pb, err := cat.Resolve("5.5.4")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "ndr.yaml"), pb.Source)
}
