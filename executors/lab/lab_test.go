package lab

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/probe"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

func TestScenariosBelongToPlaybooks(t *testing.T) {
	assert.Equal(t, []string{"concurrency-too-high", "connection-timed-out", "destination-overloaded", "healthy", "ip-listed", "queue-suspended"}, ScenariosFor("smtp-421"))
	assert.Equal(t, []string{"cloud-sender-across-queries", "cloud-sender-admin-api-only", "cloud-sender-over-quota", "cloud-sender-policy-day-limit",
		"cloud-sender-restricted", "cloud-sender-trace-capped", "component-maintenance",
		"connector-unhealthy", "eop-side", "healthy", "network-down", "overloaded-queue", "relief-fails", "retry-transient",
		"shadow-redundancy-big", "throttled-sender", "tls-cert-expired"}, ScenariosFor("ndr-5.5.4"))
	assert.Equal(t, "smtp-421", ScenarioPlaybook("ip-listed"))
	assert.Empty(t, ScenarioPlaybook("healthy"), "healthy serves every playbook")

	_, err := New("concurrency-too-high", Options{Playbook: "ndr-5.5.4"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `scenario "concurrency-too-high" simulates a smtp-421 incident, not ndr-5.5.4`)
	assert.Contains(t, err.Error(), "scenarios for ndr-5.5.4: cloud-sender-across-queries, cloud-sender-admin-api-only, cloud-sender-over-quota,")

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

// Every cmdlet and parameter the built-in playbooks call is simulated: a
// playbook step the lab cannot answer would fail every lab run.
func TestLabSimulatesEveryBuiltinCmdlet(t *testing.T) {
	cat, err := playbooks.Load("", nil)
	require.NoError(t, err)
	known, online := map[string]*cmdlet{}, map[string]*cmdlet{}
	for _, c := range cmdlets() {
		known[c.name] = c
	}
	for _, c := range exoCmdlets() {
		online[c.name] = c.cmdlet
	}
	for _, pb := range cat.All() {
		for _, perm := range pb.Permissions() {
			from := known
			if slices.Contains(perm.Targets, "exo") { // Exchange Online's cmdlets (exo.go)
				from = online
			}
			c, ok := from[perm.Cmdlet]
			if !assert.True(t, ok, "%s: %s is not simulated", pb.ID, perm.Cmdlet) {
				continue
			}
			for _, name := range perm.Params {
				found := slices.ContainsFunc(c.params, func(p param) bool { return strings.EqualFold(p.name, name) }) ||
					slices.ContainsFunc(commonParams, func(p string) bool { return strings.EqualFold(p, name) })
				assert.True(t, found, "%s: %s -%s is not simulated", pb.ID, perm.Cmdlet, name)
			}
		}
	}
}
