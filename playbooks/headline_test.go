package playbooks

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/incident"
)

func TestHeadlineQuotesTheMostSevereFindingAndWhatFollows(t *testing.T) {
	warn := incident.Finding{Rule: "still-failing", Severity: incident.SeverityWarning, Text: "5.5.4 still happening", Phase: PhaseDiagnose}
	probe := incident.Finding{Rule: "network-down", Severity: incident.SeverityCritical, Text: "SMTP to EOP failed: timeout", Phase: PhaseDiagnose}
	queue := incident.Finding{Rule: "queue-overloaded", Severity: incident.SeverityCritical, Text: `Queue EX01\7 holds 1523`, Phase: PhaseDiagnose}
	restart := incident.Proposal{Relief: "restart-transport", Hosts: []string{"ex01"}, Because: []incident.Finding{queue}}

	h := HeadlineOf([]incident.Finding{warn, probe, queue}, nil, nil)
	require.NotNil(t, h.Cause)
	assert.Equal(t, probe.Text, h.Cause.Text, "the most severe, first in the run's order")

	h = HeadlineOf([]incident.Finding{warn, probe, queue}, []incident.Proposal{restart}, nil)
	assert.Equal(t, queue.Text, h.Cause.Text, "among equals, the one the proposal cites")
	assert.Equal(t, "restart-transport", h.Relief.Relief)

	esc := incident.Escalation{Owner: "Network team"}
	h = HeadlineOf([]incident.Finding{warn, probe}, nil, []incident.Escalation{esc})
	assert.Equal(t, "Network team", h.Escalation.Owner)

	info := incident.Finding{Rule: "queues-healthy", Severity: incident.SeverityInfo, Text: "All queues low", Phase: PhaseDiagnose}
	h = HeadlineOf([]incident.Finding{info}, nil, nil)
	assert.Nil(t, h.Cause)
	assert.True(t, h.Healthy())

	after := queue
	after.Phase, after.Text = PhaseVerify, `Queue EX01\7 holds 1610`
	h = HeadlineOf([]incident.Finding{probe, after}, nil, nil)
	assert.Equal(t, after.Text, h.Cause.Text, "after a relief, the state after it")
}

func TestStepVerdictMarksAStepFailedByItsResult(t *testing.T) {
	pb := &Playbook{
		Steps: []*Step{{ID: "network"}, {ID: "queues"}, {ID: "transport"}},
		Rules: []*Rule{{ID: "network-down", reads: []string{"network"}}, {ID: "queue-elevated", reads: []string{"queues"}},
			{ID: "connector-unhealthy", reads: []string{"queues", "transport"}}},
	}
	steps := []incident.StepResult{{Step: "network", Status: incident.StepOK}, {Step: "queues", Status: incident.StepOK},
		{Step: "transport", Status: incident.StepOK}}
	fs := []incident.Finding{
		{Rule: "network-down", Severity: incident.SeverityCritical, Phase: PhaseDiagnose},
		{Rule: "queue-elevated", Severity: incident.SeverityWarning, Phase: PhaseDiagnose},
		{Rule: "connector-unhealthy", Severity: incident.SeverityCritical, Phase: PhaseDiagnose}, // rests on two steps: neither alone
		{Rule: "network-down", Severity: incident.SeverityCritical, Phase: PhaseVerify},
	}
	v := pb.StepVerdicts(steps, fs, PhaseDiagnose)
	assert.Equal(t, StepVerdict{Status: incident.StepFailed, Worst: incident.SeverityCritical}, v["network"])
	assert.Equal(t, StepVerdict{Status: incident.StepOK, Worst: incident.SeverityWarning}, v["queues"])
	assert.Equal(t, StepVerdict{Status: incident.StepOK}, v["transport"])

	v = pb.StepVerdicts(steps, fs[:3], PhaseVerify)
	assert.Equal(t, incident.StepOK, v["network"].Status, "the diagnosis's findings do not judge the re-check")
}
