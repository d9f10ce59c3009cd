package lab

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/probe"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

func TestScenariosBelongToPlaybooks(t *testing.T) {
	assert.Equal(t, []string{"concurrency-too-high", "destination-overloaded", "healthy", "ip-listed", "queue-suspended"}, ScenariosFor("smtp-421"))
	assert.Equal(t, []string{"connector-unhealthy", "eop-side", "healthy", "network-down", "overloaded-queue", "relief-fails", "throttled-sender"},
		ScenariosFor("ndr-5.5.4"))
	assert.Equal(t, "smtp-421", ScenarioPlaybook("ip-listed"))
	assert.Empty(t, ScenarioPlaybook("healthy"), "healthy serves every playbook")

	_, err := New("concurrency-too-high", Options{Playbook: "ndr-5.5.4"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `scenario "concurrency-too-high" simulates a smtp-421 incident, not ndr-5.5.4`)
	assert.Contains(t, err.Error(), "scenarios for ndr-5.5.4: connector-unhealthy, eop-side, healthy,")

	for _, ok := range []struct{ scenario, playbook string }{
		{"concurrency-too-high", "smtp-421"}, {"healthy", "smtp-421"}, {"healthy", "ndr-5.5.4"}, {"overloaded-queue", ""},
	} {
		_, err := New(ok.scenario, Options{Playbook: ok.playbook})
		assert.NoError(t, err, ok)
	}
}

func TestProbeTargetsWithoutEndpoints(t *testing.T) {
	l, err := New("healthy", Options{})
	require.NoError(t, err)
	assert.Equal(t, []string{probe.VantagePoint}, l.Target("net", "probe", nil).Hosts())
	assert.Equal(t, []string{"outlook.office365.com:25"}, l.Target("eop", "probe", nil).Hosts())
	assert.Equal(t, []string{"mx.contoso.com:25"}, l.Target("net", "probe", []string{"mx.contoso.com:25"}).Hosts())

	net := l.Target("net", "probe", nil)
	for _, check := range []string{probe.CheckSMTP, probe.CheckTCP} {
		_, err := net.Run(context.Background(), probe.VantagePoint, executors.Action{Step: "s", Check: check})
		require.Error(t, err, check)
		assert.ErrorIs(t, err, incident.ErrInvalidInput)
		assert.Contains(t, err.Error(), "targets.net has no endpoints to probe; smtp-mx takes the domain from params")
	}
	out, err := net.Run(context.Background(), probe.VantagePoint, executors.Action{Step: "s", Check: probe.CheckSMTPMX,
		Params: map[string]any{"domain": "fabrikam.com"}})
	require.NoError(t, err)
	assert.Contains(t, string(out.Stdout), `"Exchange":"mx1.fabrikam.com"`)
}

// Each script of the smtp-421 playbook is recognised as the operation it performs —
// a relief that names its own undo in its output is still recognised by its call.
func TestRecognisesSMTP421Scripts(t *testing.T) {
	cat, err := playbooks.Load("", nil)
	require.NoError(t, err)
	pb, err := cat.Resolve("smtp-421")
	require.NoError(t, err)
	steps := map[string]string{"queues": cmdletDomainQueues, "limits": "Get-TransportService",
		"connectors": "Get-SendConnector", "domains": "Get-AcceptedDomain"}
	for id, want := range steps {
		assert.Equal(t, want, recognise(pb.Step(id).PowerShell), id)
	}
	reliefs := map[string][2]string{
		"lower-per-domain-connections": {"Set-TransportService", "Get-TransportService"},
		"retry-queue":                  {"Retry-Queue", cmdletQueuesByIdentity},
		"suspend-queue":                {"Suspend-Queue", cmdletQueuesByIdentity},
		"resume-queue":                 {"Resume-Queue", cmdletQueuesByIdentity},
	}
	for id, want := range reliefs {
		r := pb.Relief(id)
		assert.Equal(t, want[0], recognise(r.PowerShell), id)
		assert.Equal(t, want[1], recognise(r.Preview), id+" preview")
	}
}
