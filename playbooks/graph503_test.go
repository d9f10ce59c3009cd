package playbooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/graph"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

// The graph checks that change something: a diagnosis never calls them.
var changing503 = []string{graph.CheckRenewSubscription, graph.CheckRecreateSubscription}

const (
	postmasterSub   = "5d1c6f2e-8a4b-4f0e-9c3d-2b7a1e6f4c90"
	postmasterInbox = "users/postmaster@contoso.com/mailFolders('Inbox')/messages"
)

// diagnose503 runs the graph-503 playbook against a lab scenario, with the
// parameters validated and typed exactly as the CLI and chat do it.
func diagnose503(t *testing.T, scenario string, raw map[string]string) labRun {
	t.Helper()
	l, err := lab.New(scenario, lab.Options{Playbook: "graph-503"})
	require.NoError(t, err)
	return diagnose503On(t, l, labTargetsFor(l), raw)
}

func diagnose503On(t *testing.T, l *lab.Lab, targets playbooks.Targets, raw map[string]string) labRun {
	t.Helper()
	pb := builtin(t, "graph-503")
	if raw == nil {
		raw = map[string]string{}
	}
	params, err := pb.Params.Resolve(raw)
	require.NoError(t, err)
	return diagnoseRun(t, l, targets, pb, params, 6000)
}

// gone names a subscription Graph already deleted, as an operator passes it from
// the app's records: the lab's postmaster mailbox (all folders) since 95 minutes ago.
func gone(extra ...string) map[string]string {
	raw := map[string]string{
		"subscription":     "0f9e8d7c-6b5a-4d3c-8b2a-190817161514",
		"resource":         "users/postmaster@contoso.com/messages",
		"notification_url": "https://ndr-hooks.contoso.com/graph/notify",
		"expired_at":       time.Now().Add(-95 * time.Minute).UTC().Format(time.RFC3339),
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(raw, extra[i])
			continue
		}
		raw[extra[i]] = extra[i+1]
	}
	return raw
}

// branch503 is one branch of the graph-503 playbook: what a diagnosis finds,
// proposes (and on which hosts) and escalates.
type branch503 struct {
	name        string
	scenario    string
	params      map[string]string
	findings    []string
	hosts       map[string][]string
	escalations []string
	skipped     []string
	failed      []string
}

func branches503() []branch503 {
	tenant := []string{lab.Tenant}
	return []branch503{
		{name: "healthy", scenario: "healthy",
			findings: []string{"m365-clear", "subscriptions-ok", "renewal-works"}, skipped: []string{"lookup", "lapse"}},
		// Renewals still fail 95 (40) minutes before expiry: the replacement is
		// proposed now, before the lapse (it used to wait for the lapse).
		{name: "Microsoft's incident: renew and keep retrying, recreate before the lapse, no escalation", scenario: "service-incident",
			findings: []string{"m365-incident", "subscription-expiring", "renewal-fails", "recreate-before-expiry", "wait-for-microsoft"},
			hosts:    map[string][]string{"renew-subscription": tenant, "recreate-subscription": tenant}, skipped: []string{"lookup", "lapse"}},
		{name: "Microsoft's incident, outside the renewal window but inside the recreate margin: still wait, no escalation", scenario: "service-incident",
			params:   map[string]string{"renewal_window": "30m"},
			findings: []string{"m365-incident", "subscriptions-ok", "renewal-fails", "recreate-before-expiry", "wait-for-microsoft"},
			hosts:    map[string][]string{"recreate-subscription": tenant}, skipped: []string{"lookup", "lapse"}},
		{name: "Microsoft's incident and nothing to renew or recreate yet: still wait, no escalation", scenario: "service-incident",
			params:   map[string]string{"renewal_window": "30m", "recreate_before": "30m"},
			findings: []string{"m365-incident", "subscriptions-ok", "renewal-fails", "wait-for-microsoft"}, skipped: []string{"lookup", "lapse"}},
		{name: "renewals fail, service health clean: renew first, recreate before the lapse", scenario: "renewal-failing",
			findings: []string{"m365-clear", "subscription-expiring", "renewal-fails", "recreate-before-expiry"},
			hosts:    map[string][]string{"renew-subscription": tenant, "recreate-subscription": tenant}, skipped: []string{"lookup", "lapse"}},
		{name: "renewals fail, nothing of ours to retry: Microsoft support at once", scenario: "renewal-failing",
			params:   map[string]string{"renewal_window": "30m", "recreate_before": "30m"},
			findings: []string{"m365-clear", "subscriptions-ok", "renewal-fails"}, escalations: []string{"renewals-keep-failing"},
			skipped: []string{"lookup", "lapse"}},
		{name: "an expired subscription Graph still lists: recreate and reconcile", scenario: "subscription-expired",
			findings: []string{"m365-clear", "subscription-expired", "renewal-works", "lapse-missed"},
			hosts:    map[string][]string{"recreate-subscription": tenant}, skipped: []string{"lookup"}},
		{name: "a subscription Graph deleted (GET answered 404), named by the parameters", scenario: "healthy", params: gone(),
			findings: []string{"m365-clear", "subscription-gone", "subscriptions-ok", "renewal-works", "lapse-missed"},
			hosts:    map[string][]string{"recreate-subscription": tenant}},
		{name: "no id, the resource unlisted: not called deleted, recreate looks first", scenario: "healthy", params: gone("subscription", ""),
			findings: []string{"m365-clear", "subscription-unlisted", "subscriptions-ok", "renewal-works", "lapse-missed"},
			hosts:    map[string][]string{"recreate-subscription": tenant}, skipped: []string{"lookup"}},
		{name: "a deleted subscription without its resource: say what to pass", scenario: "healthy",
			params:   map[string]string{"subscription": "0f9e8d7c-6b5a-4d3c-8b2a-190817161514"},
			findings: []string{"m365-clear", "subscription-gone-unknown", "subscriptions-ok", "renewal-works"}, skipped: []string{"lapse"}},
		{name: "the named subscription is live: probe that one", scenario: "renewal-failing",
			params:   map[string]string{"subscription": postmasterSub},
			findings: []string{"m365-clear", "subscription-expiring", "renewal-fails", "recreate-before-expiry"},
			hosts:    map[string][]string{"renew-subscription": tenant, "recreate-subscription": tenant}, skipped: []string{"lookup", "lapse"}},
	}
}

// Every branch of the graph-503 playbook, through the lab.
func TestGraph503Branches(t *testing.T) {
	for _, tc := range branches503() {
		t.Run(tc.name, func(t *testing.T) {
			checkBranch503(t, tc, diagnose503(t, tc.scenario, tc.params))
		})
	}
}

func checkBranch503(t *testing.T, tc branch503, r labRun) {
	t.Helper()
	assert.Equal(t, tc.findings, rules(r.run.Findings()))
	want := tc.hosts
	if want == nil {
		want = map[string][]string{}
	}
	assert.Equal(t, want, proposalHosts(r.run.Proposals()))
	assert.Equal(t, tc.escalations, escalationIDs(r.run.Escalations()))
	var skipped, failed []string
	for _, s := range r.run.Steps() {
		switch s.Status {
		case incident.StepSkipped:
			skipped = append(skipped, s.Step)
		case incident.StepOK:
		default:
			failed = append(failed, s.Step)
		}
	}
	assert.Equal(t, tc.skipped, skipped)
	assert.Equal(t, tc.failed, failed)
	for _, p := range r.run.Proposals() {
		assert.Empty(t, p.Blocked, p.Relief)
		assert.Equal(t, "check: "+p.Relief, p.Command)
		assert.NotEmpty(t, p.Rollback, p.Relief)
		assert.NotEmpty(t, p.Because, "%s: the findings it answers", p.Relief)
	}
	for _, c := range r.lab.Calls() {
		assert.NotContains(t, changing503, c.Cmdlet, "a diagnosis must not change anything (%s)", c.Step)
	}
}

// The findings say what an operator needs: Microsoft's incident and what to do
// about it, the subscription and its expiry, and the ids Microsoft support asks for.
func TestGraph503FindingTexts(t *testing.T) {
	r := diagnose503(t, "service-incident", nil)
	text := strings.Join(texts(r.run.Findings()), "\n")
	for _, w := range []string{
		"Microsoft reports EX1084523, an active Exchange Online incident (serviceDegradation since ",
		"Subscription " + postmasterSub + " to " + postmasterInbox + " expires in 95 minutes",
		"inside the 1440-minute renewal window",
		"Graph refused to renew subscription " + postmasterSub + ": 503 ExtensionError after 5 attempts with backoff (Operation: Update; Exception: [Status Code: ServiceUnavailable; Reason: ])",
		"The 503s are Microsoft's: EX1084523 is open. Wait for Microsoft's fix and keep renewing",
	} {
		assert.Contains(t, text, w)
	}
	var evidence []string
	for _, f := range r.run.Findings() {
		if f.Rule == "renewal-fails" {
			evidence = append(evidence, f.Evidence)
		}
	}
	require.Len(t, evidence, 1)
	assert.Regexp(t, `^request-id [0-9a-f-]{36}, client-request-id [0-9a-f-]{36}, date \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, evidence[0])

	r = diagnose503(t, "subscription-expired", nil)
	text = strings.Join(texts(r.run.Findings()), "\n")
	assert.Contains(t, text, "expired at ")
	assert.Contains(t, text, "(95 minutes ago): no notification has reached ndr-hooks.contoso.com since")
	assert.Contains(t, text, "11 message(s) reached postmaster@contoso.com's Inbox since the subscription lapsed at ")
}

// relief503 is a relief path through the lab.
type relief503 struct {
	name        string
	scenario    string
	params      map[string]string
	relief      string
	ok          bool
	verified    bool
	errText     []string
	output      []string
	escalations []string
	reason      []string
	after       []string // rules found after the relief
}

func reliefs503() []relief503 {
	return []relief503{
		{name: "the service recovers while the renewal retries", scenario: "service-incident", relief: "renew-subscription",
			ok: true, verified: true,
			output: []string{`"SubscriptionId":"` + postmasterSub + `"`, `"Attempts":3`, `"RequestedMinutes":10065`, `"PreviousExpirationDateTime":`},
			after:  []string{"m365-clear", "subscriptions-ok", "renewal-works"}},
		{name: "renewals keep failing while service health is clean: Microsoft support with the ids", scenario: "renewal-failing",
			relief: "renew-subscription", ok: false,
			errText:     []string{"PATCH /subscriptions/{id}: 503 Service Unavailable (ExtensionError", "after 5 attempts; request-id "},
			escalations: []string{"renewals-keep-failing"},
			reason: []string{"Graph keeps refusing subscription renewals while Microsoft 365 service health shows no Exchange Online incident",
				"PATCH /subscriptions/" + postmasterSub + " answered 503 ExtensionError (Operation: Update; Exception: [Status Code: ServiceUnavailable; Reason: ]) after 5 attempts",
				"request-id 7c1e0001-", "client-request-id 1a2b0001-", ", date "}},
		{name: "recreate and reconcile an expired subscription", scenario: "subscription-expired", relief: "recreate-subscription",
			ok: true, verified: true,
			output: []string{`"OldSubscriptionId":"` + postmasterSub + `"`, `"Reconciled":true`, `"MissedCount":11`,
				`"Resource":"` + postmasterInbox + `"`, `"NotificationHost":"ndr-hooks.contoso.com"`},
			after: []string{"m365-clear", "subscriptions-ok", "renewal-works"}},
		{name: "recreate a deleted subscription from the parameters", scenario: "healthy", params: gone(), relief: "recreate-subscription",
			ok: true, verified: true,
			// users/{id}/messages: every folder (it used to be the Inbox alone).
			output: []string{`"OldSubscriptionId":"0f9e8d7c-6b5a-4d3c-8b2a-190817161514"`, `"Scope":"mailbox"`, `"MissedCount":11`,
				`"ChangeType":"created"`, `"Note":`},
			after: []string{"m365-clear", "subscriptions-ok", "renewal-works"}},
	}
}

func TestGraph503ReliefVerificationAndEscalation(t *testing.T) {
	for _, tc := range reliefs503() {
		t.Run(tc.name, func(t *testing.T) {
			r := diagnose503(t, tc.scenario, tc.params)
			res, err := r.eng.Relieve(context.Background(), r.run, tc.relief)
			require.NoError(t, err)
			require.Equal(t, tc.ok, res.OK, res.Error)
			assert.Equal(t, []string{lab.Tenant}, res.Hosts)
			for _, w := range tc.errText {
				assert.Contains(t, res.Error, w)
			}
			for _, w := range tc.output {
				assert.Contains(t, res.Output, w)
			}
			if tc.ok {
				require.NotNil(t, res.Verified)
				assert.Equal(t, tc.verified, *res.Verified)
			} else {
				assert.Nil(t, res.Verified, "a failed relief is not verified")
			}
			assert.Equal(t, tc.escalations, escalationIDs(r.run.Escalations()))
			for _, e := range r.run.Escalations() {
				for _, w := range tc.reason {
					assert.Contains(t, e.Reason, w)
				}
			}
			var after []string
			for _, f := range r.run.Findings() {
				if f.Phase == playbooks.PhaseVerify {
					after = append(after, f.Rule)
				}
			}
			assert.Equal(t, tc.after, after)

			changes := 0
			for _, c := range r.lab.Calls() {
				if c.Cmdlet == tc.relief {
					changes++
				}
			}
			assert.Equal(t, 1, changes, "%s ran once, on the tenant", tc.relief)
			_, err = r.eng.Relieve(context.Background(), r.run, tc.relief)
			assert.ErrorIs(t, err, incident.ErrConflict)
		})
	}
}

// The reconcile reports exactly the messages that arrived during the lapse: the 11
// NDRs after the expiry, none of the six before it.
func TestGraph503RecreateReconcilesExactlyTheLapse(t *testing.T) {
	r := diagnose503(t, "subscription-expired", nil)
	res, err := r.eng.Relieve(context.Background(), r.run, "recreate-subscription")
	require.NoError(t, err)
	require.True(t, res.OK, res.Error)
	var rec graph.Recreation
	require.NoError(t, json.Unmarshal([]byte(res.Output), &rec))
	require.True(t, rec.Reconciled)
	var ids []string
	for _, m := range rec.Reconcile.Missed {
		ids = append(ids, m.ID)
	}
	var want []string
	for i := 6; i <= 16; i++ {
		want = append(want, fmt.Sprintf("AAMkAGNkMzU0ZjE0LTkwMjUtNGFh-ndr-%03d", i))
	}
	assert.Equal(t, want, ids)
	assert.Equal(t, 11, rec.Reconcile.MissedCount)
	assert.NotEqual(t, postmasterSub, rec.SubscriptionID)

	// The diagnosis counted the same messages before anything changed.
	lapse := stepRows(r.run, "lapse")
	require.Len(t, lapse, 1)
	assert.EqualValues(t, 11, lapse[0]["MissedCount"])
	assert.Equal(t, rec.Reconcile.Since, lapse[0]["Since"])

	// The lab now holds the new subscription and Graph dropped the expired one.
	subs := stepRows(r.run, "subscriptions")
	var live []string
	for _, s := range subs {
		assert.Equal(t, false, s["Expired"])
		live = append(live, s["Id"].(string))
	}
	assert.Contains(t, live, rec.SubscriptionID)
	assert.NotContains(t, live, postmasterSub)
}

func stepRows(run *playbooks.Run, step string) []map[string]any {
	for _, s := range run.Steps() {
		if s.Step == step {
			return s.Rows
		}
	}
	return nil
}

// Parameters and computed values reach the executor as data, the subscription id
// from the evidence row; a time that is not RFC 3339 blocks the recreate.
func TestGraph503ArgsAreData(t *testing.T) {
	r := diagnose503(t, "renewal-failing", nil)
	renew, ok := r.run.Proposal("renew-subscription")
	require.True(t, ok)
	assert.Equal(t, map[string]any{"subscription_id": postmasterSub}, renew.Args)
	byStep := map[string]map[string]any{}
	for _, c := range r.lab.Calls() {
		byStep[c.Step] = c.Params
	}
	assert.EqualValues(t, 1440, byStep["subscriptions"]["window_minutes"], "renewal_window in minutes")
	assert.Nil(t, byStep["probe"]["subscription_id"], "no subscription named: the one that expires first")

	raw := gone()
	r = diagnose503(t, "healthy", raw)
	recreate, ok := r.run.Proposal("recreate-subscription")
	require.True(t, ok)
	assert.Equal(t, map[string]any{
		"subscription_id": raw["subscription"], "resource": raw["resource"], "change_type": "created",
		"notification_url": raw["notification_url"], "since": raw["expired_at"], "reconcile": true,
	}, recreate.Args, "optional values left out are no arguments (replace_live, lifecycle_notification_url)")
	for _, c := range r.lab.Calls() {
		byStep[c.Step] = c.Params
	}
	// users/{id}/messages is every folder of the mailbox (it used to be read as the Inbox).
	assert.Equal(t, map[string]any{"mailbox": "postmaster@contoso.com", "folder": nil, "all_folders": true, "since": raw["expired_at"]},
		withoutParams(byStep["lapse"], r.run.Params))

	r = diagnose503(t, "healthy", gone("expired_at", "yesterday"))
	recreate, ok = r.run.Proposal("recreate-subscription")
	require.True(t, ok)
	assert.Contains(t, recreate.Blocked, "arguments could not be computed")
	assert.Contains(t, recreate.Blocked, "invalid date yesterday")
	_, err := r.eng.Relieve(context.Background(), r.run, "recreate-subscription")
	assert.ErrorIs(t, err, incident.ErrNotAllowed)
}

// withoutParams drops the run's parameters from the data a step received.
func withoutParams(p map[string]any, params map[string]any) map[string]any {
	out := maps.Clone(p)
	for k := range params {
		delete(out, k)
	}
	return out
}

// The resource of a mail subscription names the mailbox and folder the lapse is
// counted in, in each shape Graph accepts.
func TestGraph503LapseMailboxFromResource(t *testing.T) {
	for resource, want := range map[string][2]string{
		"users/journal@contoso.com/messages":                        {"journal@contoso.com", ""}, // every folder
		"Users/journal@contoso.com/mailFolders('Archive')/messages": {"journal@contoso.com", "Archive"},
		"/users/journal@contoso.com/mailfolders/inbox/messages":     {"journal@contoso.com", "inbox"},
		"users/journal@contoso.com/events":                          {"", ""},
		"groups/1234/conversations":                                 {"", ""},
	} {
		t.Run(resource, func(t *testing.T) {
			r := diagnose503(t, "healthy", gone("resource", resource))
			var got map[string]any
			for _, c := range r.lab.Calls() {
				if c.Step == "lapse" {
					got = c.Params
				}
			}
			if want[0] == "" {
				assert.Nil(t, got, "not a mail folder: the lapse step is skipped")
				return
			}
			require.NotNil(t, got)
			assert.Equal(t, want[0], got["mailbox"])
			if want[1] == "" {
				assert.Nil(t, got["folder"])
				assert.Equal(t, true, got["all_folders"])
				return
			}
			assert.Equal(t, want[1], got["folder"])
			assert.Nil(t, got["all_folders"])
		})
	}
}

func TestGraph503GraphUnreachable(t *testing.T) {
	l, err := lab.New("renewal-failing", lab.Options{})
	require.NoError(t, err)
	r := diagnose503On(t, l, brokenTarget{labTargetsFor(l), "graph", fmt.Errorf("graph graph: no token from login.microsoftonline.com: 401 invalid_client: %w", executors.ErrAuth)}, nil)
	assert.Equal(t, []string{"graph-unreachable"}, escalationIDs(r.run.Escalations()))
	assert.Equal(t, []string{"step-failed", "step-failed"}, rules(r.run.Findings()))
	assert.Empty(t, r.run.Proposals())
	assert.Empty(t, l.Calls())
}

// The lab answers graph checks with the graph executor's own row types: every row
// decodes strictly into them.
func TestGraph503LabMatchesExecutorTypes(t *testing.T) {
	types := map[string]func() any{
		"health":        func() any { return &[]graph.ServiceHealthIssue{} },
		"subscriptions": func() any { return &[]graph.Subscription{} },
		"probe":         func() any { return &[]graph.RenewalProbe{} },
		"lapse":         func() any { return &[]graph.Reconciliation{} },
	}
	for _, scenario := range []string{"healthy", "service-incident", "renewal-failing", "subscription-expired"} {
		r := diagnose503(t, scenario, nil)
		for _, s := range r.run.Steps() {
			if s.Status != incident.StepOK {
				continue
			}
			rows := make([]map[string]any, len(s.Rows))
			for i, row := range s.Rows {
				rows[i] = maps.Clone(row)
				assert.Equal(t, lab.Tenant, rows[i]["Host"], "%s %s: rows are labelled with the tenant", scenario, s.Step)
				delete(rows[i], "Host")
			}
			b, err := json.Marshal(rows)
			require.NoError(t, err)
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.DisallowUnknownFields()
			assert.NoError(t, dec.Decode(types[s.Step]()), "%s %s: %s", scenario, s.Step, b)
		}
	}
}
