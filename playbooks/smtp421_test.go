package playbooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/executors/probe"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

const (
	ex01 = "ex01.lab.contoso.com"
	ex02 = "ex02.lab.contoso.com"
)

// The cmdlets that change something: a diagnosis (steps and previews) never calls them.
var changing421 = []string{"Set-TransportService", "Retry-Queue", "Suspend-Queue", "Resume-Queue"}

// diagnose421 runs the smtp-421 playbook against a lab scenario, with the
// parameters validated and typed exactly as the CLI and chat do it.
func diagnose421(t *testing.T, scenario string, raw map[string]string) labRun {
	t.Helper()
	l, err := lab.New(scenario, lab.Options{Playbook: "smtp-421"})
	require.NoError(t, err)
	return diagnose421On(t, l, labTargetsFor(l), raw)
}

func diagnose421On(t *testing.T, l *lab.Lab, targets playbooks.Targets, raw map[string]string) labRun {
	t.Helper()
	pb := builtin(t, "smtp-421")
	if raw == nil {
		raw = map[string]string{"domain": "fabrikam.com"}
	}
	params, err := pb.Params.Resolve(raw)
	require.NoError(t, err)
	return diagnoseRun(t, l, targets, pb, params, 3000)
}

func fabrikam(extra ...string) map[string]string {
	raw := map[string]string{"domain": "fabrikam.com"}
	for i := 0; i+1 < len(extra); i += 2 {
		raw[extra[i]] = extra[i+1]
	}
	return raw
}

func proposalHosts(ps []incident.Proposal) map[string][]string {
	out := map[string][]string{}
	for _, p := range ps {
		out[p.Relief] = p.Hosts
	}
	return out
}

// branch421 is one branch of the smtp-421 playbook: what a diagnosis finds,
// proposes (and on which lab hosts) and escalates.
type branch421 struct {
	name        string
	scenario    string
	params      map[string]string
	findings    []string
	hosts       map[string][]string // proposals and the hosts each runs on
	escalations []string
	skipped     []string
}

func branches421() []branch421 {
	return []branch421{
		{name: "healthy", scenario: "healthy", params: fabrikam(),
			findings: []string{"queues-clear", "destination-accepts", "connector-route", "spf-ok", "ip-clean"}},
		{name: "our concurrency: lower the limit where it is high, then retry", scenario: "concurrency-too-high", params: fabrikam(),
			findings: []string{"queue-refused", "our-concurrency", "retry-after-limits", "destination-accepts", "connector-route", "spf-ok", "ip-clean"},
			// EX02 was already at 5: only EX01 is lowered; the queue is on EX01.
			hosts: map[string][]string{"lower-per-domain-connections": {ex01}, "retry-queue": {ex01}}},
		{name: "a lower target counts EX02 too", scenario: "concurrency-too-high", params: fabrikam("connections", "3"),
			findings: []string{"queue-refused", "our-concurrency", "our-concurrency", "retry-after-limits", "destination-accepts", "connector-route", "spf-ok", "ip-clean"},
			hosts:    map[string][]string{"lower-per-domain-connections": {ex01, ex02}, "retry-queue": {ex01}}},
		{name: "limits already at the target: say so, retry at once", scenario: "concurrency-too-high", params: fabrikam("connections", "25"),
			findings: []string{"queue-refused", "limits-already-low", "retry-after-limits", "destination-accepts", "connector-route", "spf-ok", "ip-clean"},
			hosts:    map[string][]string{"retry-queue": {ex01}}},
		{name: "destination overloaded for everyone: suspend, no lowering", scenario: "destination-overloaded", params: fabrikam(),
			findings: []string{"queue-refused", "queue-refused", "destination-overloaded", "suspend-while-overloaded", "suspend-while-overloaded",
				"connector-route", "spf-ok", "ip-clean"},
			hosts: map[string][]string{"suspend-queue": {ex01, ex02}}},
		{name: "our IP listed: escalate, neither lower nor retry", scenario: "ip-listed", params: fabrikam(),
			findings:    []string{"queue-refused", "destination-accepts", "connector-route", "spf-ok", "ip-listed"},
			escalations: []string{"ip-listed"}},
		{name: "ip parameter replaces the connectors' address", scenario: "ip-listed", params: fabrikam("ip", "198.51.100.7"),
			findings: []string{"queue-refused", "limits-already-low", "retry-after-limits", "destination-accepts", "connector-route", "spf-ok", "ip-clean"},
			hosts:    map[string][]string{"retry-queue": {ex01}}},
		{name: "suspended queue, destination accepts again: resume", scenario: "queue-suspended", params: fabrikam(),
			findings: []string{"destination-accepts", "queue-resumable", "connector-route", "spf-ok", "no-sending-ip"},
			hosts:    map[string][]string{"resume-queue": {ex01}}, skipped: []string{"dnsbl"}},
		{name: "MX does not answer: not a connection limit", scenario: "healthy", params: map[string]string{"domain": "adatum.com"},
			findings: []string{"queues-clear", "destination-unreachable", "connector-route", "spf-ok", "ip-clean"}},
		{name: "the bot's own probe limit holds", scenario: "healthy", params: map[string]string{"domain": "wingtiptoys.com"},
			findings: []string{"queues-clear", "destination-unprobed", "connector-route", "spf-ok", "ip-clean"}},
		{name: "sending domain without SPF", scenario: "healthy", params: fabrikam("sending_domain", "litwareinc.com"),
			findings: []string{"queues-clear", "destination-accepts", "connector-route", "spf-missing", "ip-clean"}, skipped: []string{"domains"}},
		{name: "two SPF records", scenario: "healthy", params: fabrikam("sending_domain", "tailspintoys.com"),
			findings: []string{"queues-clear", "destination-accepts", "connector-route", "spf-multiple", "ip-clean"}, skipped: []string{"domains"}},
		{name: "sending domain does not resolve", scenario: "healthy", params: fabrikam("sending_domain", "nowhere.example"),
			findings: []string{"queues-clear", "destination-accepts", "connector-route", "spf-lookup-failed", "ip-clean"}, skipped: []string{"domains"}},
		{name: "a DNSBL zone that does not answer", scenario: "healthy", params: fabrikam("ip", "198.51.100.99"),
			findings: []string{"queues-clear", "destination-accepts", "connector-route", "spf-ok", "ip-clean", "dnsbl-unanswered"}},
	}
}

// Every branch of the smtp-421 playbook, through the lab.
func TestSMTP421Branches(t *testing.T) {
	for _, tc := range branches421() {
		t.Run(tc.name, func(t *testing.T) {
			checkBranch421(t, tc, diagnose421(t, tc.scenario, tc.params), func(h string) string { return h })
		})
	}
}

// checkBranch421 compares a diagnosis with a branch; host names a lab host as the
// run's executors call it.
func checkBranch421(t *testing.T, tc branch421, r labRun, host func(string) string) {
	t.Helper()
	assert.Equal(t, tc.findings, rules(r.run.Findings()))
	want := map[string][]string{}
	for relief, hosts := range tc.hosts {
		for _, h := range hosts {
			want[relief] = append(want[relief], host(h))
		}
	}
	assert.Equal(t, want, proposalHosts(r.run.Proposals()))
	assert.Equal(t, tc.escalations, escalationIDs(r.run.Escalations()))
	var skipped []string
	for _, s := range r.run.Steps() {
		switch s.Status {
		case incident.StepSkipped:
			skipped = append(skipped, s.Step)
		case incident.StepOK:
		default:
			t.Errorf("step %s: %s %s", s.Step, s.Status, s.Error)
		}
	}
	assert.Equal(t, tc.skipped, skipped)
	for _, p := range r.run.Proposals() {
		assert.Empty(t, p.Blocked, p.Relief)
		assert.NotEmpty(t, p.Preview, "%s: the current value is shown before approval", p.Relief)
	}
	for _, c := range r.lab.Calls() {
		assert.NotContains(t, changing421, c.Cmdlet, "a diagnosis must not change anything (%s)", c.Step)
	}
}

// The net steps run once, at the bot's vantage point; the Exchange steps on every
// server, or once for organisation-wide cmdlets.
func TestSMTP421StepHosts(t *testing.T) {
	r := diagnose421(t, "concurrency-too-high", nil)
	want := map[string][]string{
		"queues": {ex01, ex02}, "limits": {ex01, ex02}, "connectors": {ex01}, "domains": {ex01},
		"destination": {probe.VantagePoint}, "spf": {probe.VantagePoint}, "dnsbl": {probe.VantagePoint},
	}
	got := map[string][]string{}
	for _, s := range r.run.Steps() {
		hosts := slices.Clone(s.Hosts)
		sort.Strings(hosts)
		got[s.Step] = hosts
	}
	assert.Equal(t, want, got)
}

// Parameters and computed values reach Exchange as data: every Exchange step and
// relief is a cmdlet whose arguments are literals or whole expressions, and the
// domain is compared on the bot's side, never sent inside a filter string.
func TestSMTP421ArgsAreData(t *testing.T) {
	r := diagnose421(t, "concurrency-too-high", fabrikam("sending_domain", "contoso.com"))
	pb := r.run.Playbook
	for _, s := range pb.Steps {
		assert.Empty(t, s.PowerShell, s.ID)
		if s.Target == "exchange" {
			require.NotNil(t, s.Cmdlet, s.ID)
		}
	}
	for _, rel := range pb.Reliefs {
		require.NotNil(t, rel.Cmdlet, rel.ID)
		assert.NotContains(t, rel.Cmdlet.Text(), "fabrikam", rel.ID)
	}
	byStep := map[string]lab.Call{}
	for _, c := range r.lab.Calls() {
		byStep[c.Step] = c
	}
	for _, a := range byStep["queues"].Args {
		assert.NotContains(t, fmt.Sprint(a.Value), "fabrikam", "the queues step reads every queue; the domain filters rows on the bot's side")
	}
	assert.Equal(t, "fabrikam.com", byStep["destination"].Params["domain"])
	assert.EqualValues(t, 1, byStep["destination"].Params["max_hosts"], "one polite probe of the best MX")
	assert.Equal(t, "contoso.com", byStep["spf"].Params["domain"], "with: overrides the destination domain for the SPF step")
	assert.Equal(t, []any{"203.0.113.25"}, byStep["dnsbl"].Params["ips"], "the public SourceIPAddress of the Internet connector")

	retry, ok := r.run.Proposal("retry-queue")
	require.True(t, ok)
	assert.Equal(t, []any{map[string]any{"Host": "ex01.lab.contoso.com", "Identity": `EX01\18`}}, retry.Args["queues"],
		"the queue identity from the evidence row, with the server that holds it")
	assert.EqualValues(t, 5, retry.Args["connections"])
	assert.NotContains(t, retry.Command, `EX01\18`)
	lower, ok := r.run.Proposal("lower-per-domain-connections")
	require.True(t, ok)
	assert.EqualValues(t, 5, lower.Args["connections"])
}

// relief421 is a relief path: the reliefs approved in order, whether each ran and
// was verified, and what escalated.
type relief421 struct {
	name        string
	scenario    string
	params      map[string]string
	reliefs     []string
	ok          []bool
	verified    []bool
	escalations []string
	reason      []string // in the escalation's reason: evidence for the postmaster
	errText     string
	notAfter    []string // rules that must not fire on the re-checked results
}

// The cmdlet each relief changes things with.
var reliefCmdlet = map[string]string{"lower-per-domain-connections": "Set-TransportService", "retry-queue": "Retry-Queue",
	"suspend-queue": "Suspend-Queue", "resume-queue": "Resume-Queue"}

func reliefs421() []relief421 {
	return []relief421{
		{name: "lowering the limit then retrying drains the queue", scenario: "concurrency-too-high",
			reliefs: []string{"lower-per-domain-connections", "retry-queue"}, ok: []bool{true, true}, verified: []bool{true, true},
			// The queue's last refusal predates the lowered limit: not "already low, still refused".
			notAfter: []string{"limits-already-low", "retry-after-limits", "our-concurrency"}},
		{name: "a retry before the limit is lowered is refused on the server", scenario: "concurrency-too-high",
			reliefs: []string{"retry-queue"}, ok: []bool{false},
			errText: "MaxPerDomainOutboundConnections on EX01 is 20, above 5: lower it first"},
		{name: "suspending does not help an overloaded destination: postmaster", scenario: "destination-overloaded",
			reliefs: []string{"suspend-queue"}, ok: []bool{true}, verified: []bool{false},
			escalations: []string{"destination-still-refusing"},
			reason: []string{"fabrikam.com still refuses our mail", "mx1.fabrikam.com 198.51.100.10:25 answered 421 4.3.2 Service not available, too many connections",
				`EX01\18 Suspended 412 messages, last try `, "Our sending IP(s): 203.0.113.25",
				"EX01 MaxPerDomainOutboundConnections=20 MaxOutboundConnections=1000"}},
		{name: "a retry refused again (the listed IP was not the one checked): postmaster", scenario: "ip-listed", params: fabrikam("ip", "198.51.100.7"),
			reliefs: []string{"retry-queue"}, ok: []bool{true}, verified: []bool{false},
			escalations: []string{"destination-still-refusing"},
			reason:      []string{`EX01\18 Retry 230 messages`, "421 4.7.0", "Our sending IP(s): 198.51.100.7", "EX02 MaxPerDomainOutboundConnections=5"}},
		{name: "resuming once the destination accepts drains the queue", scenario: "queue-suspended",
			reliefs: []string{"resume-queue"}, ok: []bool{true}, verified: []bool{true}},
	}
}

func TestSMTP421ReliefVerificationAndEscalation(t *testing.T) {
	for _, tc := range reliefs421() {
		t.Run(tc.name, func(t *testing.T) {
			checkRelief421(t, tc, diagnose421(t, tc.scenario, tc.params))
		})
	}
}

func checkRelief421(t *testing.T, tc relief421, r labRun) {
	t.Helper()
	var verified []bool
	for i, id := range tc.reliefs {
		res, err := r.eng.Relieve(context.Background(), r.run, id)
		require.NoError(t, err)
		require.Equal(t, tc.ok[i], res.OK, res.Error)
		if !res.OK {
			assert.Contains(t, res.Error, tc.errText)
			assert.Nil(t, res.Verified, "a failed relief is not verified")
			continue
		}
		require.NotNil(t, res.Verified, id)
		verified = append(verified, *res.Verified)

		p, _ := r.run.Proposal(id)
		changes := 0
		for _, c := range r.lab.Calls() {
			if c.Cmdlet == reliefCmdlet[id] {
				changes++
			}
		}
		assert.Equal(t, len(p.Hosts), changes, "%s ran once per proposed host", id)
		_, err = r.eng.Relieve(context.Background(), r.run, id)
		assert.ErrorIs(t, err, incident.ErrConflict)
	}
	assert.Equal(t, tc.verified, verified)
	assert.Equal(t, tc.escalations, escalationIDs(r.run.Escalations()))
	for _, e := range r.run.Escalations() {
		for _, w := range tc.reason {
			assert.Contains(t, e.Reason, w)
		}
	}
	for _, f := range r.run.Findings() {
		if f.Phase == playbooks.PhaseVerify {
			assert.NotContains(t, tc.notAfter, f.Rule, f.Text)
		}
	}
}

// The current value is recorded before anything changes — in the preview shown for
// approval and in the relief's own output — and the rollback says how to restore it.
func TestSMTP421RollbackValues(t *testing.T) {
	tests := []struct {
		scenario string
		relief   string
		preview  []string
		output   []string
		rollback string
	}{
		// The preview shows the value to restore before anyone approves; the
		// relief's output is the read-back after the change.
		{"concurrency-too-high", "lower-per-domain-connections",
			[]string{`"Name":"EX01"`, `"MaxPerDomainOutboundConnections":20`},
			[]string{`"Name":"EX01"`, `"MaxPerDomainOutboundConnections":5`},
			"Set-TransportService -Identity <server> -MaxPerDomainOutboundConnections <value shown in the preview>"},
		{"destination-overloaded", "suspend-queue",
			[]string{`"Identity":"EX01\\18"`, `"Status":"Retry"`, `"Identity":"EX02\\11"`},
			[]string{`"Identity":"EX01\\18"`, `"Status":"Suspended"`},
			"Resume-Queue -Identity <queue>"},
		{"queue-suspended", "resume-queue",
			[]string{`"Identity":"EX01\\18"`, `"Status":"Suspended"`, `"MessageCount":612`},
			[]string{`"Identity":"EX01\\18"`, `"Status":"Ready"`},
			"Suspend-Queue -Identity <queue>"},
	}
	for _, tc := range tests {
		t.Run(tc.relief, func(t *testing.T) {
			r := diagnose421(t, tc.scenario, nil)
			p, ok := r.run.Proposal(tc.relief)
			require.True(t, ok)
			for _, w := range tc.preview {
				assert.Contains(t, p.Preview, w)
			}
			assert.Contains(t, p.Rollback, tc.rollback)
			res, err := r.eng.Relieve(context.Background(), r.run, tc.relief)
			require.NoError(t, err)
			require.True(t, res.OK, res.Error)
			for _, w := range tc.output {
				assert.Contains(t, res.Output, w)
			}
		})
	}
}

// A queue suspended by one run stays held in the next while the destination still
// refuses: neither suspended again nor resumed.
func TestSMTP421SuspendedQueueIsHeldNextRun(t *testing.T) {
	r := diagnose421(t, "destination-overloaded", nil)
	_, err := r.eng.Relieve(context.Background(), r.run, "suspend-queue")
	require.NoError(t, err)

	next := diagnose421On(t, r.lab, labTargetsFor(r.lab), nil)
	assert.Equal(t, []string{"destination-overloaded", "queue-held", "queue-held", "connector-route", "spf-ok", "ip-clean"},
		rules(next.run.Findings()))
	assert.Empty(t, next.run.Proposals())
}

// brokenExchange is the lab with every Exchange server unreachable.
type brokenExchange struct{ lab.Targets }

func (b brokenExchange) Executor(name string) (executors.Executor, error) {
	e, err := b.Targets.Executor(name)
	if err != nil || name != "exchange" {
		return e, err
	}
	return unreachable{e}, nil
}

type unreachable struct{ executors.Executor }

func (unreachable) Run(_ context.Context, host string, a executors.Action) (executors.Output, error) {
	return executors.Output{Host: host}, fmt.Errorf("%s: %s: %w", host, a.Step, executors.ErrUnreachable)
}

func TestSMTP421ExchangeUnreachable(t *testing.T) {
	l, err := lab.New("concurrency-too-high", lab.Options{})
	require.NoError(t, err)
	r := diagnose421On(t, l, brokenExchange{labTargetsFor(l)}, nil)
	assert.Equal(t, []string{"exchange-unreachable"}, escalationIDs(r.run.Escalations()))
	assert.Equal(t, []string{"step-failed", "step-failed", "step-failed", "step-failed", "destination-accepts", "no-sending-ip"},
		rules(r.run.Findings()))
	assert.Empty(t, r.run.Proposals())
}

// The lab answers with the shape of the playbook's own projections: every field it
// returns for a step is a field the step's script writes.
func TestSMTP421LabMatchesProjections(t *testing.T) {
	r := diagnose421(t, "concurrency-too-high", nil)
	pb := r.run.Playbook
	for _, s := range r.run.Steps() {
		step := pb.Step(s.Step)
		if step.PowerShell == "" {
			continue
		}
		require.NotEmpty(t, s.Rows, s.Step)
		for _, row := range s.Rows {
			for k := range row {
				if k == "Host" {
					continue // the engine's label
				}
				assert.Contains(t, step.PowerShell, k, "step %s: the lab returns %s, the script does not project it", s.Step, k)
			}
		}
	}
	// Network rows decode strictly into the probe executor's result types.
	for _, s := range r.run.Steps() {
		step := pb.Step(s.Step)
		if step.Check == "" {
			continue
		}
		rows := make([]map[string]any, len(s.Rows))
		for i, row := range s.Rows {
			rows[i] = maps.Clone(row)
			if step.Check != probe.CheckSMTPMX { // smtp-mx rows carry their own Host
				assert.Equal(t, probe.VantagePoint, rows[i]["Host"])
				delete(rows[i], "Host")
			}
		}
		b, err := json.Marshal(rows)
		require.NoError(t, err)
		var dst any
		switch step.Check {
		case probe.CheckSMTPMX:
			dst = &[]probe.MXProbe{}
		case probe.CheckDNS:
			dst = &[]probe.DNSResult{}
		case probe.CheckDNSBL:
			dst = &[]probe.DNSBLRow{}
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		assert.NoError(t, dec.Decode(dst), "%s: %s", s.Step, b)
	}
}
