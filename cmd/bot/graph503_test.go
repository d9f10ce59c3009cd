package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors/graph"
	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
	"github.com/ndrbot/ndrbot/slack/slackfake"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

const labSubscription = "5d1c6f2e-8a4b-4f0e-9c3d-2b7a1e6f4c90"

// Each branch of graph-503 from the terminal, against the lab: no tenant needed.
func TestDiagnoseGraph503LabScenarios(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		want   []string
		absent []string
	}{
		{"healthy exits 0", []string{"diagnose", "graph-503", "--lab", "healthy"}, exitHealthy,
			[]string{"Graph accepted a renewal of subscription " + labSubscription, "result: healthy (exit 0)"}, nil},
		{"Microsoft's incident: renew and wait, no escalation", []string{"diagnose", "503", "--lab", "service-incident"}, exitFindings,
			[]string{"Microsoft reports EX1084523, an active Exchange Online incident", "The 503s are Microsoft's: EX1084523 is open",
				"Proposed relief: renew-subscription", "hosts:    contoso.onmicrosoft.com", "check: renew-subscription",
				"data:     subscription_id=" + labSubscription, "renew-subscription not approved: nothing was changed"},
			[]string{"ESCALATE"}},
		{"the service recovers while the renewal retries", []string{"diagnose", "graph-503", "--lab", "service-incident", "--approve", "renew-subscription"}, exitFindings,
			[]string{"✓ renew-subscription ran on contoso.onmicrosoft.com", "✓ verified: renew-subscription worked",
				"after relief: • info     Microsoft 365 service health shows no active Exchange Online incident or advisory"},
			[]string{"ESCALATE"}},
		{"renewals failing: renew first", []string{"diagnose", "serviceunavailable", "--lab", "renewal-failing"}, exitFindings,
			[]string{"Microsoft 365 service health shows no active Exchange Online incident or advisory",
				"Graph refused to renew subscription " + labSubscription + ": 503 ExtensionError after 5 attempts with backoff",
				"evidence: request-id 7c1e0001-", "Proposed relief: renew-subscription",
				"expires in 40 minutes and its renewal still fails (503 ExtensionError after 5 attempts): inside the 360-minute recreate margin",
				"Proposed relief: recreate-subscription", "replace_live=true"},
			[]string{"ESCALATE"}},
		{"renewals keep failing while health is clean: Microsoft support", []string{"diagnose", "graph-503", "--lab", "renewal-failing", "--approve", "renew-subscription"}, exitEscalation,
			[]string{"✖ renew-subscription failed:", "503 Service Unavailable (ExtensionError",
				"ESCALATE to Microsoft support (Microsoft Graph / Exchange Online), with the request ids",
				"PATCH /subscriptions/" + labSubscription + " answered 503 ExtensionError", "request-id 7c1e0001-", "client-request-id 1a2b0001-",
				"Open a service request in the Microsoft 365 admin center"}, nil},
		// recreate_before=30m too: with the default 6h, the 40 minutes left ask for a
		// replacement before the lapse (recreate-before-expiry), which is ours to try.
		{"nothing of ours to retry: Microsoft support at once", []string{"diagnose", "graph-503", "renewal_window=30m", "recreate_before=30m", "--lab", "renewal-failing"}, exitEscalation,
			[]string{"live beyond the 30-minute renewal window", "ESCALATE to Microsoft support"}, []string{"Proposed relief"}},
		{"an expired subscription: what was lost, recreate and reconcile", []string{"diagnose", "graph-503", "--lab", "subscription-expired"}, exitFindings,
			[]string{"Subscription " + labSubscription + " to users/postmaster@contoso.com/mailFolders('Inbox')/messages expired at ",
				"11 message(s) reached postmaster@contoso.com's Inbox since the subscription lapsed at ",
				"Proposed relief: recreate-subscription", "rollback: DELETE /subscriptions/{SubscriptionId}"}, nil},
		{"recreate and reconcile verifies", []string{"diagnose", "graph-503", "--lab", "subscription-expired", "--approve", "recreate-subscription"}, exitFindings,
			[]string{"✓ recreate-subscription ran on contoso.onmicrosoft.com", "✓ verified: recreate-subscription worked",
				"after relief: • info     All 2 subscription(s) of the app live beyond the 1440-minute renewal window"},
			[]string{"after relief: ▲ WARNING  11 message(s)"}},
		{"a scenario of another playbook is refused", []string{"diagnose", "graph-503", "--lab", "overloaded-queue"}, exitUsage, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(t.TempDir()) // no ndrbot.yaml, a fresh store
			r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, "", false, tc.args...)
			assert.Equal(t, tc.code, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
			for _, w := range tc.want {
				assert.Contains(t, r.out, w)
			}
			for _, w := range tc.absent {
				assert.NotContains(t, r.out, w)
			}
		})
	}
}

func TestDiagnoseGraph503JSONReportsTheReconcile(t *testing.T) {
	t.Chdir(t.TempDir())
	r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, "", false, "diagnose", "graph-503", "--lab", "subscription-expired",
		"--approve", "recreate-subscription", "--json")
	require.Equal(t, exitFindings, r.code, r.err)
	var rep runReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &rep), r.out)
	assert.Equal(t, "graph-503", rep.Playbook)
	require.Len(t, rep.Reliefs, 1)
	var rec graph.Recreation
	require.NoError(t, json.Unmarshal([]byte(rep.Reliefs[0].Output), &rec))
	assert.Equal(t, labSubscription, rec.OldSubscriptionID)
	require.NotNil(t, rec.Reconcile)
	assert.Equal(t, 11, rec.Reconcile.MissedCount)
	assert.Len(t, rec.Reconcile.Missed, 11)
}

// Without an app registration graph-503 cannot run at all: a usage error naming the
// keys to set, before anything runs. A half-configured target is a config error.
func TestDiagnoseGraph503WithoutAppRegistration(t *testing.T) {
	builtins, err := filepath.Glob(filepath.Join("..", "..", "playbooks", "builtin", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, builtins)
	t.Chdir(t.TempDir())
	r := bot(t, nil, "", false, "diagnose", "graph-503")
	assert.Equal(t, exitUsage, r.code, "stdout:\n%s", r.out)
	assert.Contains(t, r.err, `graph target "graph" not configured: set targets.graph.tenant_id, targets.graph.client_id and a credential (NDRBOT_TARGETS_GRAPH_CLIENT_SECRET, targets.graph.client_secret_file or targets.graph.certificate_file)`)
	assert.Empty(t, r.out, "nothing ran")

	r = bot(t, []string{"NDRBOT_TARGETS_GRAPH_TENANT_ID=contoso.onmicrosoft.com"}, "", false, "diagnose", "graph-503")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.err, "targets.graph.client_id: required")
	assert.Contains(t, r.err, "targets.graph.client_secret: a credential is required: set NDRBOT_TARGETS_GRAPH_CLIENT_SECRET")

	// The built-ins — every one of them — lint with the default, unconfigured
	// graph target.
	r = bot(t, nil, "", false, "playbooks", "lint")
	assert.Equal(t, exitHealthy, r.code, r.err)
	assert.Contains(t, r.out, fmt.Sprintf("%d playbooks OK", len(builtins)))
	r = bot(t, nil, "", false, "playbooks", "list")
	assert.Contains(t, r.out, "graph-503")
	assert.Contains(t, r.out, "graph-503, graph 503, 503, serviceunavailable")
}

// graph503Site is a working directory whose ndrbot.yaml points the graph target at a
// fake Graph, with a copy of graph-503 whose verification waits 10ms instead of a
// minute (outside the lab waits are not scaled).
func graph503Site(t *testing.T, fake *graphfake.Server) string {
	t.Helper()
	dir := t.TempDir()
	pb, err := os.ReadFile(filepath.Join("..", "..", "playbooks", "builtin", "graph-503.yaml"))
	require.NoError(t, err)
	const wait = "    verify:\n      after: 1m\n"
	require.Equal(t, 2, bytes.Count(pb, []byte(wait)), "the reliefs' verify waits moved")
	pb = bytes.ReplaceAll(pb, []byte(wait), []byte("    verify:\n      after: 10ms\n"))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "playbooks"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "playbooks", "graph-503.yaml"), pb, 0o600))
	cfg := "targets:\n" + graphTarget(fake) + "playbooks:\n  dir: playbooks\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ndrbot.yaml"), []byte(cfg), 0o600))
	t.Chdir(dir)
	return dir
}

// graph-503 end to end from the terminal through the real graph executor: a
// subscription lapsed and Graph deleted it; the operator names it from the app's
// records; recreate + reconcile lists exactly the messages of the lapse, and the
// new subscription carries the clientState from the configuration — which appears
// nowhere in the output or the audit trail.
func TestDiagnoseGraph503RecreatesAgainstGraph(t *testing.T) {
	const clientState = "cli-client-state-NEVER-print"
	fake := graphfake.New(t)
	graph503Site(t, fake)
	now := time.Now().UTC()
	t0 := now.Add(-30 * time.Minute).Truncate(time.Second)
	const (
		resource = "users/postmaster@contoso.com/mailFolders('Inbox')/messages"
		notify   = "https://ndr-hooks.contoso.com/graph/notify"
	)
	fake.PutSubscription(graphfake.Subscription{ID: "old-sub", Resource: resource, ChangeType: "created", NotificationURL: notify, Expiration: t0})
	fake.Deliver("postmaster@contoso.com", "Inbox", "m-before", t0.Add(-5*time.Minute))
	fake.Deliver("postmaster@contoso.com", "Inbox", "m-lapse-1", t0.Add(2*time.Minute))
	fake.Deliver("postmaster@contoso.com", "Inbox", "m-lapse-2", t0.Add(11*time.Minute))
	fake.Deliver("postmaster@contoso.com", "Archive", "m-archived", t0.Add(12*time.Minute))
	fake.Deliver("postmaster@contoso.com", "Inbox", "m-lapse-3", t0.Add(25*time.Minute))
	fake.Deliver("postmaster@contoso.com", "Inbox", "m-after", now.Add(10*time.Minute)) // after the new subscription

	args := []string{"diagnose", "graph-503", "subscription=old-sub", "resource=" + resource, "notification_url=" + notify,
		"expired_at=" + t0.Format(time.RFC3339), "--approve", "recreate-subscription"}
	env := []string{"NDRBOT_TARGETS_GRAPH_CLIENT_SECRET=" + fake.ClientSecret}

	// Without the clientState the relief refuses, and creates nothing.
	r := bot(t, env, "", false, args...)
	require.Equal(t, exitFindings, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	assert.Contains(t, r.out, "3 message(s) reached postmaster@contoso.com's Inbox since the subscription lapsed at "+t0.Format(time.RFC3339))
	assert.Contains(t, r.out, "✖ recreate-subscription failed:")
	assert.Contains(t, r.out, "set NDRBOT_TARGETS_GRAPH_CLIENT_STATE or targets.graph.client_state_file")
	assert.Empty(t, fake.GraphRequests(http.MethodPost, "/subscriptions"))

	// A fresh store: the failed attempt's cooldown does not carry over.
	require.NoError(t, os.Remove(storeFile))
	env = append(env, "NDRBOT_TARGETS_GRAPH_CLIENT_STATE="+clientState)
	r = bot(t, env, "", false, append(args, "--json")...)
	require.Equal(t, exitFindings, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	var rep runReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &rep), r.out)
	require.Len(t, rep.Reliefs, 1)
	require.True(t, rep.Reliefs[0].OK, rep.Reliefs[0].Error)
	require.NotNil(t, rep.Reliefs[0].Verified)
	assert.True(t, *rep.Reliefs[0].Verified)
	assert.Equal(t, []string{graphfake.DefaultTenant}, rep.Reliefs[0].Hosts)
	var rec graph.Recreation
	require.NoError(t, json.Unmarshal([]byte(rep.Reliefs[0].Output), &rec))
	var missed []string
	for _, m := range rec.Reconcile.Missed {
		missed = append(missed, m.ID)
	}
	assert.Equal(t, []string{"m-lapse-1", "m-lapse-2", "m-lapse-3"}, missed)
	assert.Equal(t, t0.Format(time.RFC3339), rec.Reconcile.Since)

	subs := fake.Subscriptions()
	require.Len(t, subs, 1)
	assert.Equal(t, rec.SubscriptionID, subs[0].ID)
	assert.Equal(t, clientState, subs[0].ClientState)
	assert.Equal(t, notify, subs[0].NotificationURL)

	audit := bot(t, env, "", false, "audit", "export")
	require.Equal(t, exitHealthy, audit.code, audit.err)
	assert.Contains(t, audit.out, rec.SubscriptionID, "the relief's output is in the audit trail")
	for _, leak := range []string{clientState, fake.ClientSecret} {
		assert.NotContains(t, r.out+r.err, leak)
		assert.NotContains(t, audit.out, leak)
	}
	check := bot(t, env, "", false, "config", "check")
	require.Equal(t, exitHealthy, check.code, check.err)
	assert.NotContains(t, check.out, clientState)
	assert.Contains(t, check.out, "client_state: '[redacted]'")
}

// ndr-5.5.4 over PSRP on a site without a Graph app registration: the service
// health step is skipped with a note that says what to configure, the EOP-side
// escalation still fires on the on-premises evidence, and a healthy site still
// exits 0 (a missing Graph registration is not a finding about mail).
func TestDiagnose554WithoutGraphApp(t *testing.T) {
	s := newPSRPSiteWith(t, "eop-side", false, false)
	r := s.bot(t, "diagnose", "5.5.4")
	require.Equal(t, exitEscalation, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	for _, w := range []string{
		"– health ",
		`• info     Step "health" (Microsoft 365 service health (Exchange Online)) skipped: graph target "graph" not configured: set targets.graph.tenant_id`,
		"ESCALATE to Microsoft support (EOP side)",
		"the problem is on the EOP side. Microsoft 365 service health was not read (see the health step).",
	} {
		assert.Contains(t, r.out, w)
	}

	healthy := newPSRPSiteWith(t, "healthy", false, false)
	r = healthy.bot(t, "diagnose", "5.5.4")
	assert.Equal(t, exitHealthy, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	assert.Contains(t, r.out, `Step "health" (Microsoft 365 service health (Exchange Online)) skipped`)
}

// With Graph configured, the same eop-side incident over PSRP finds what the lab
// finds, Microsoft's incident included.
func TestDiagnose554EOPSideOverPSRPAndGraph(t *testing.T) {
	s := newPSRPSiteIn(t, "eop-side", false)
	require.NoError(t, s.graph.SetIssues([]byte(`{"value": [{
		"id": "EX1093441", "title": "Some users' messages are delayed or rejected with 451 4.4.0 and 550 5.5.4 errors",
		"classification": "Incident", "status": "ServiceDegradation", "service": "Exchange Online",
		"feature": "E-Mail and calendar access", "startDateTime": "2026-05-15T00:01:00Z", "endDateTime": null,
		"lastModifiedDateTime": "2026-05-15T00:32:11.513Z", "isResolved": false,
		"impactDescription": "Users may see delays sending or receiving email, and some senders may receive NDRs with 5.5.4 Service Unavailable."}]}`)))
	r := s.bot(t, "diagnose", "5.5.4", "--json")
	require.Equal(t, exitEscalation, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	var got runReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &got), r.out)

	t.Chdir(t.TempDir())
	r = bot(t, nil, "", false, "diagnose", "5.5.4", "--lab", "eop-side", "--json")
	require.Equal(t, exitEscalation, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	var want runReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &want), r.out)

	assert.Equal(t, findingsOf(want), findingsOf(got))
	require.Len(t, got.Escalations, 1)
	assert.Equal(t, timestamp.ReplaceAllString(want.Escalations[0].Reason, "<time>"), timestamp.ReplaceAllString(got.Escalations[0].Reason, "<time>"))
	assert.Contains(t, got.Escalations[0].Reason, "Microsoft reports an open Exchange Online mail-flow incident: EX1093441 (serviceDegradation since 2026-05-15T00:01:00Z)")
	assert.Equal(t, "microsoft-incident", got.Escalations[0].Rule)
}

// graph-503 against the fake Graph gives the same findings and proposals from the
// terminal and from Slack.
func TestGraph503TerminalAndSlackAgree(t *testing.T) {
	fake := graphfake.New(t)
	graph503Site(t, fake)
	t0 := time.Now().UTC().Add(-30 * time.Minute).Truncate(time.Second)
	const (
		resource = "users/postmaster@contoso.com/mailFolders('Inbox')/messages"
		notify   = "https://ndr-hooks.contoso.com/graph/notify"
	)
	fake.PutSubscription(graphfake.Subscription{ID: "old-sub", Resource: resource, ChangeType: "created", NotificationURL: notify, Expiration: t0})
	fake.Deliver("postmaster@contoso.com", "Inbox", "m-lapse-1", t0.Add(2*time.Minute))
	params := []string{"subscription=old-sub", "resource=" + resource, "notification_url=" + notify, "expired_at=" + t0.Format(time.RFC3339)}
	secret := "NDRBOT_TARGETS_GRAPH_CLIENT_SECRET=" + fake.ClientSecret

	term := bot(t, []string{secret}, "", false, append(append([]string{"diagnose", "graph-503"}, params...), "--json")...)
	require.Contains(t, []int{exitFindings, exitEscalation}, term.code, term.out+term.err)
	var rep runReport
	require.NoError(t, json.Unmarshal([]byte(term.out), &rep), term.out)
	require.NotEmpty(t, rep.Proposals)

	sl := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	defer sl.Close()
	s := startServeEnv(t, sl, 1, []string{secret})
	_, err := sl.SlashCommand(context.Background(), slackfake.SlashCommand{UserID: requesterU, ChannelID: incChannel, ChannelName: "inc-mail",
		Text: "diagnose graph-503 " + strings.Join(params, " ")})
	require.NoError(t, err)
	s.card(t)
	require.Equal(t, 0, s.stop(t))

	st, err := sqlite.Open(context.Background(), storeFile, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	runs, err := st.ListRuns(context.Background(), store.RunFilter{})
	require.NoError(t, err)
	var chatRun string
	for _, r := range runs {
		if r.Origin == "chat" {
			chatRun = r.ID
		}
	}
	require.NotEmpty(t, chatRun)
	fromSlack, err := st.Findings(context.Background(), chatRun)
	require.NoError(t, err)
	assert.Equal(t, findingKeys(rep.Findings), findingKeys(fromSlack))
	props, err := st.Proposals(context.Background(), chatRun)
	require.NoError(t, err)
	var a, b []string
	for _, p := range rep.Proposals {
		a = append(a, p.Relief+"@"+strings.Join(p.Hosts, ","))
	}
	for _, p := range props {
		b = append(b, p.Relief+"@"+strings.Join(p.Hosts, ","))
	}
	assert.Equal(t, a, b)
}
