package playbooks_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
)

// brokenTarget answers one target with err and the others from the lab.
type brokenTarget struct {
	lab.Targets
	name string
	err  error
}

func (b brokenTarget) Executor(name string) (executors.Executor, error) {
	if name == b.name {
		return nil, b.err
	}
	return b.Targets.Executor(name)
}

// An on-premises-only deployment (no exo target set up) loses nothing to the
// Exchange Online branch of ndr-5.5.4: a sender the on-premises Get-Mailbox
// does not find costs one note that says what to configure, and nothing else
// of the branch runs or speaks; a sender found on-premises costs nothing.
func TestNDR554CloudBranchWithoutEXO(t *testing.T) {
	notConfigured := executors.NotConfigured(config.Target{Kind: config.KindEXO}.RequireApp("exo"))
	tests := []struct {
		scenario, sender string
		skipped          int
		finding          string // the on-premises branch still speaks
	}{
		{scenario: "cloud-sender-over-quota", sender: "bulk-notices@contoso.com", skipped: 1, finding: "queues-healthy"},
		{scenario: "throttled-sender", sender: "alice@contoso.com", finding: "throttled-sender"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			l, err := lab.New(tc.scenario, lab.Options{})
			require.NoError(t, err)
			run := diagnoseRun(t, l, brokenTarget{labTargetsFor(l), "exo", notConfigured}, builtin(t, "5.5.4"),
				map[string]any{"sender": tc.sender, "window": 15 * time.Minute}, 3000).run

			var skipped []incident.Finding
			for _, f := range run.Findings() {
				assert.False(t, strings.HasPrefix(f.Rule, "cloud-"), "%s: %s", f.Rule, f.Text)
				if f.Rule == "step-skipped" {
					skipped = append(skipped, f)
				}
			}
			require.Len(t, skipped, tc.skipped)
			if tc.skipped > 0 {
				assert.Equal(t, "exo_mailbox", skipped[0].Step)
				assert.Equal(t, incident.SeverityInfo, skipped[0].Severity)
				assert.Contains(t, skipped[0].Text, `exo target "exo" not configured: set targets.exo.tenant_id`)
			}
			for _, s := range run.Steps() {
				if strings.HasPrefix(s.Step, "exo_") {
					assert.Equal(t, incident.StepSkipped, s.Status, s.Step)
				}
			}
			assert.Contains(t, rules(run.Findings()), tc.finding)
			assert.NotContains(t, escalationIDs(run.Escalations()), "cloud-quota")
			for _, c := range l.Calls() {
				assert.NotEqual(t, "exo", c.Target, "no call reaches Exchange Online: %s", c.Cmdlet)
			}
		})
	}
}

// The cloud-quota escalation names the daily limit that refuses the mail: the
// default outbound spam policy's RecipientLimitPerDay when its action
// restricts the sender (then the 5.1.8 family), otherwise Exchange Online's
// 10,000 — never 10,000 beside a policy that stops the mailbox at 500.
func TestNDR554CloudQuotaNamesTheEffectiveLimit(t *testing.T) {
	tests := []struct {
		scenario, sender string
		want, notWant    []string
	}{
		{scenario: "cloud-sender-over-quota", sender: "bulk-notices@contoso.com",
			want:    []string{"sent to 9950 recipients", "The limit is Exchange Online's 10,000 recipients a day", "554 5.2.0 SubmissionQuotaExceeded"},
			notWant: []string{"outbound spam policy", "ndr-5.1.8"}},
		{scenario: "cloud-sender-policy-day-limit", sender: "frank@contoso.com",
			want: []string{"sent to 480 recipients", "The limit is 500 recipients a day, set by this tenant's outbound spam policy Default",
				"BlockUserForToday stops the mailbox from sending until the next day (UTC)", "ndr-5.1.8 sender=frank@contoso.com"},
			notWant: []string{"10,000", "SubmissionQuotaExceeded"}},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			run := diagnose(t, tc.scenario, map[string]any{"sender": tc.sender, "window": 15 * time.Minute}).run
			var reason string
			for _, e := range run.Escalations() {
				if e.Rule == "cloud-quota" {
					reason = e.Reason
				}
			}
			require.NotEmpty(t, reason, "cloud-quota not raised: %v", escalationIDs(run.Escalations()))
			for _, w := range tc.want {
				assert.Contains(t, reason, w)
			}
			for _, w := range tc.notWant {
				assert.NotContains(t, reason, w)
			}
		})
	}
}
