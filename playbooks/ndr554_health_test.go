package playbooks_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

// diagnose554On runs ndr-5.5.4 with the lab behind targets.
func diagnose554On(t *testing.T, l *lab.Lab, targets playbooks.Targets) labRun {
	t.Helper()
	eng := playbooks.NewEngine(targets, playbooks.Options{WaitScale: 3000})
	obs := &recorder{}
	run := playbooks.NewRun("r-554", builtin(t, "5.5.4"), map[string]any{}, time.Now(), obs)
	require.NoError(t, eng.Diagnose(context.Background(), run))
	return labRun{run: run, eng: eng, lab: l, obs: obs}
}

// Microsoft's open mail-flow incident is the explanation: it is quoted, and the
// admin is told to follow it and wait — not sent to Microsoft support.
func TestNDR554MicrosoftIncidentMeansWait(t *testing.T) {
	r := diagnose(t, "eop-side", nil)
	require.Equal(t, []string{"microsoft-incident"}, escalationIDs(r.run.Escalations()))
	esc := r.run.Escalations()[0]
	assert.True(t, strings.HasPrefix(esc.Reason, "5.5.4 continues and Microsoft reports an open Exchange Online mail-flow incident: EX1093441 (serviceDegradation since "), esc.Reason)
	assert.Contains(t, esc.Reason, "): Some users' messages are delayed or rejected with 451 4.4.0 and 550 5.5.4 errors.")
	assert.Contains(t, esc.Owner, "no support case needed")
	assert.NotContains(t, esc.Owner, "support (")
	assert.Contains(t, esc.Next, "resend once it is resolved")

	var incidentFinding incident.Finding
	for _, f := range r.run.Findings() {
		if f.Rule == "m365-incident" {
			incidentFinding = f
		}
	}
	assert.Equal(t, incident.SeverityWarning, incidentFinding.Severity)
	assert.Contains(t, incidentFinding.Text, "Microsoft reports EX1093441, an open Exchange Online mail-flow incident (serviceDegradation since ")
	assert.Contains(t, incidentFinding.Evidence, "E-Mail and calendar access: Users may see delays")

	// Without Microsoft's incident it is the EOP side, and a support case.
	r = diagnose(t, "throttled-sender", map[string]any{"sender": "bob@contoso.com"})
	require.Equal(t, []string{"eop-side"}, escalationIDs(r.run.Escalations()))
	assert.Contains(t, r.run.Escalations()[0].Reason, "Microsoft 365 service health shows no open Exchange Online mail-flow incident.")
	assert.Equal(t, "Microsoft support (EOP side)", r.run.Escalations()[0].Owner)
}

// Without a Graph app registration the service-health step fails with a finding
// that says what to configure, and the rest of the tree — eop-side included —
// works as before.
func TestNDR554WithoutGraphApp(t *testing.T) {
	notConfigured := config.Target{Kind: config.KindGraph}.RequireApp("graph")
	require.ErrorIs(t, notConfigured, config.ErrNotConfigured)
	tests := []struct {
		scenario    string
		findings    []string
		escalations []string
		reason      string
	}{
		{scenario: "healthy", findings: []string{"step-failed", "not-failing", "queues-healthy", "port25-open"}},
		{scenario: "eop-side", findings: []string{"step-failed", "still-failing", "still-failing", "queues-healthy", "port25-open"},
			escalations: []string{"eop-side"}, reason: "the problem is on the EOP side. Microsoft 365 service health was not read (see the health step)."},
		{scenario: "network-down", findings: []string{"step-failed", "still-failing", "still-failing", "queues-healthy", "port25-blocked", "port25-blocked", "network-down"},
			escalations: []string{"network"}},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			l, err := lab.New(tc.scenario, lab.Options{})
			require.NoError(t, err)
			r := diagnose554On(t, l, brokenTarget{labTargetsFor(l), "graph", notConfigured})
			assert.Equal(t, tc.findings, rules(r.run.Findings()))
			assert.Equal(t, tc.escalations, escalationIDs(r.run.Escalations()))
			if tc.reason != "" {
				assert.Contains(t, r.run.Escalations()[0].Reason, tc.reason)
			}
			f := r.run.Findings()[0]
			assert.Equal(t, "health", f.Step)
			assert.Equal(t, `Step "health" (Microsoft 365 service health (Exchange Online)) did not complete: graph target "graph" not configured: `+
				`set targets.graph.tenant_id, targets.graph.client_id and a credential (NDRBOT_TARGETS_GRAPH_CLIENT_SECRET, `+
				`targets.graph.client_secret_file or targets.graph.certificate_file); the README's "Microsoft Graph" section lists the app registration and its permissions`, f.Text)
			for _, s := range r.run.Steps() {
				// health is the broken one; the throttling branch runs only for a sender,
				// the delivery test only when verifying a relief, the Exchange Online
				// steps only for a sender the on-premises Get-Mailbox does not find.
				if !slices.Contains([]string{"health", "mailbox", "policies", "associations", "mailflow",
					"exo_mailbox", "exo_blocked", "exo_policy", "exo_domains", "exo_trace"}, s.Step) {
					assert.Equal(t, incident.StepOK, s.Status, s.Step)
				}
			}
		})
	}
}
