package lab

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/graph"
	"github.com/ndrbot/ndrbot/incident"
)

func TestGraphScenariosBelongToGraph503(t *testing.T) {
	assert.Equal(t, []string{"healthy", "renewal-failing", "service-incident", "subscription-expired"}, ScenariosFor("graph-503"))
	_, err := New("renewal-failing", Options{Playbook: "ndr-5.5.4"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `scenario "renewal-failing" simulates a graph-503 incident, not ndr-5.5.4`)
}

// graphRun runs one graph check against the lab's tenant and decodes its output.
func graphRun(t *testing.T, l *Lab, check string, params map[string]any, v any) error {
	t.Helper()
	g := l.Target("graph", "graph", nil)
	out, err := g.Run(context.Background(), Tenant, executors.Action{Step: check, Check: check, Params: params})
	if err == nil && v != nil {
		require.NoError(t, json.Unmarshal(out.Stdout, v), "%s", out.Stdout)
	}
	return err
}

func TestGraphTargetIsTheTenant(t *testing.T) {
	l, err := New("healthy", Options{})
	require.NoError(t, err)
	g := l.Target("graph", "graph", nil)
	assert.Equal(t, []string{Tenant}, g.Hosts())
	_, err = g.Run(context.Background(), "ex01.lab.contoso.com", executors.Action{Step: "s", Check: graph.CheckServiceHealth})
	assert.ErrorIs(t, err, executors.ErrUnreachable)
	err = graphRun(t, l, graph.CheckMessageTrace, nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `the lab has no simulation for the graph check "message-trace"`)
}

// The renewal path reacts as the scenario says: 503 for good, or until the service
// recovers during an approved renewal.
func TestGraphRenewalReactsToTheService(t *testing.T) {
	at := time.Date(2026, 5, 15, 0, 5, 19, 0, time.UTC)
	now := func() time.Time { return at }

	l, err := New("renewal-failing", Options{Now: now})
	require.NoError(t, err)
	var probe graph.RenewalProbe
	require.NoError(t, graphRun(t, l, graph.CheckRenewalProbe, nil, &probe))
	assert.Equal(t, "failed", probe.Status)
	assert.Equal(t, 503, probe.HTTPStatus)
	assert.Equal(t, 40, probe.ExpiresInMinutes)
	err = graphRun(t, l, graph.CheckRenewSubscription, map[string]any{"subscription_id": postmasterSub}, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, incident.ErrUnavailable)
	assert.Contains(t, err.Error(), "503 Service Unavailable (ExtensionError")
	require.NoError(t, graphRun(t, l, graph.CheckRenewalProbe, nil, &probe))
	assert.Equal(t, "failed", probe.Status, "still failing after the relief")

	l, err = New("service-incident", Options{Now: now})
	require.NoError(t, err)
	var issues []graph.ServiceHealthIssue
	require.NoError(t, graphRun(t, l, graph.CheckServiceHealth, nil, &issues))
	require.Len(t, issues, 1)
	assert.Equal(t, "EX1084523", issues[0].ID)
	assert.Equal(t, "2026-05-14T22:05:19Z", issues[0].StartDateTime)
	require.NoError(t, graphRun(t, l, graph.CheckRenewalProbe, nil, &probe))
	assert.Equal(t, "failed", probe.Status)
	var renewal graph.Renewal
	require.NoError(t, graphRun(t, l, graph.CheckRenewSubscription, map[string]any{"subscription_id": postmasterSub}, &renewal))
	assert.Equal(t, 3, renewal.Attempts, "the retries outlasted the incident")
	assert.Equal(t, "2026-05-21T23:50:19Z", renewal.ExpirationDateTime, "10065 minutes on")
	require.NoError(t, graphRun(t, l, graph.CheckServiceHealth, nil, &issues))
	assert.Empty(t, issues, "Microsoft marked the incident restored")
	require.NoError(t, graphRun(t, l, graph.CheckServiceHealth, map[string]any{"include_resolved": true}, &issues))
	require.Len(t, issues, 1)
	assert.Equal(t, "serviceRestored", issues[0].Status)
	require.NoError(t, graphRun(t, l, graph.CheckRenewalProbe, nil, &probe))
	assert.Equal(t, "ok", probe.Status)
}

func TestGraphRecreateRefusesWhatItMustNot(t *testing.T) {
	l, err := New("subscription-expired", Options{})
	require.NoError(t, err)
	err = graphRun(t, l, graph.CheckRecreateSubscription, map[string]any{"subscription_id": journalSub}, nil)
	assert.ErrorIs(t, err, incident.ErrConflict, "a live subscription is renewed, not duplicated")
	err = graphRun(t, l, graph.CheckRecreateSubscription, map[string]any{"subscription_id": "0f9e8d7c-unknown"}, nil)
	assert.ErrorIs(t, err, incident.ErrInvalidInput)
	assert.Contains(t, err.Error(), "resource, change_type and notification_url are required")
	err = graphRun(t, l, graph.CheckRecreateSubscription, map[string]any{"resource": journalInbox, "change_type": "created",
		"notification_url": "https://ndr-hooks.contoso.com/n"}, nil)
	assert.ErrorIs(t, err, incident.ErrInvalidInput)
	assert.Contains(t, err.Error(), `"since" is required to reconcile`)
	err = graphRun(t, l, graph.CheckRenewSubscription, map[string]any{"subscription_id": postmasterSub}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no longer exists (Graph deletes expired subscriptions): recreate it")

	var rec graph.Recreation
	require.NoError(t, graphRun(t, l, graph.CheckRecreateSubscription, map[string]any{"subscription_id": postmasterSub}, &rec))
	assert.Equal(t, 11, rec.Reconcile.MissedCount)
	var subs []graph.Subscription
	require.NoError(t, graphRun(t, l, graph.CheckSubscriptions, nil, &subs))
	require.Len(t, subs, 2)
	for _, s := range subs {
		assert.False(t, s.Expired)
		assert.NotEqual(t, postmasterSub, s.ID)
	}
	// A second recreate of the same lapse finds nothing left to recreate.
	err = graphRun(t, l, graph.CheckRecreateSubscription, map[string]any{"subscription_id": postmasterSub}, nil)
	assert.ErrorIs(t, err, incident.ErrInvalidInput)
}
