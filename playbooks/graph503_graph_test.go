package playbooks_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/graph"
	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

// The graph-503 playbook end to end through the real graph executor (msgraph-sdk-go
// and azidentity) against graphfake over HTTPS: a graph target whose graph_url and
// authority_url point at the fake, trusting its CA through ca_file. The retry policy
// is the default's shape with shorter waits; the clock is shared by the fake and the
// executor, so expiries and the lapse are exact.

const (
	e2eSecret      = "e2e-client-secret-NEVER-print"
	e2eClientState = "e2e-client-state-NEVER-print"
	e2eMailbox     = "postmaster@contoso.com"
)

// e2eRetry: 5 attempts as in production, waits of 20–40, 40–80, 80–160 and 160–320 ms.
var e2eRetry = graph.RetryPolicy{MaxAttempts: 5, BaseDelay: 40 * time.Millisecond, MaxDelay: time.Second, MinAttemptTime: 20 * time.Millisecond}

type settableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *settableClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// clientStateFrom hands recreate-subscription its clientState below the engine, as
// the bot's wiring does from the graph target's client_state.
type clientStateFrom struct {
	executors.Executor
	state string
}

func (c clientStateFrom) Run(ctx context.Context, host string, a executors.Action) (executors.Output, error) {
	if a.Check == graph.CheckRecreateSubscription {
		p := maps.Clone(a.Params)
		p["client_state"] = c.state
		a.Params = p
	}
	return c.Executor.Run(ctx, host, a)
}

type graphOnly struct{ exec executors.Executor }

func (g graphOnly) Executor(name string) (executors.Executor, error) {
	if name != "graph" {
		return nil, config.ErrUnknownTarget
	}
	return g.exec, nil
}

type graphSite struct {
	fake *graphfake.Server
	clk  *settableClock
	exec *graph.Executor
	eng  *playbooks.Engine
}

func newGraphSite(t *testing.T, now time.Time) *graphSite {
	t.Helper()
	clk := &settableClock{t: now}
	fake := graphfake.New(t, graphfake.WithClientSecret(e2eSecret), graphfake.WithClock(clk.Now))
	exec, err := graph.New("graph", config.Target{
		Kind: config.KindGraph, TenantID: fake.Tenant, ClientID: fake.ClientID, ClientSecret: config.Secret(e2eSecret),
		GraphURL: fake.URL, AuthorityURL: fake.URL, CAFile: fake.CAFile(), Cloud: config.CloudGlobal,
	}, graph.WithRetryPolicy(e2eRetry), graph.WithClock(clk.Now))
	require.NoError(t, err)
	require.Equal(t, []string{graphfake.DefaultTenant}, exec.Hosts())
	eng := playbooks.NewEngine(graphOnly{clientStateFrom{exec, e2eClientState}}, playbooks.Options{WaitScale: 6000})
	return &graphSite{fake: fake, clk: clk, exec: exec, eng: eng}
}

func (s *graphSite) diagnose(t *testing.T, raw map[string]string) *playbooks.Run {
	t.Helper()
	pb := builtin(t, "graph-503")
	params, err := pb.Params.Resolve(raw)
	require.NoError(t, err)
	run := playbooks.NewRun("r-e2e", pb, params, time.Now(), nil)
	require.NoError(t, s.eng.Diagnose(context.Background(), run))
	return run
}

// setIssues loads the recorded service health page (executors/graph/testdata): one
// active Exchange Online incident (EX1093441), an active advisory, and issues that
// are resolved or of other services.
func (s *graphSite) setIssues(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "executors", "graph", "testdata", "servicehealth-issues.json"))
	require.NoError(t, err)
	require.NoError(t, s.fake.SetIssues(b))
}

func (s *graphSite) noIssues(t *testing.T) {
	t.Helper()
	require.NoError(t, s.fake.SetIssues([]byte(`{"value": []}`)))
}

// The seed incident: renewals answer 503 ExtensionError with empty headers, and
// Microsoft reports an Exchange Online incident. The playbook says to wait and keep
// renewing; once the service recovers the approved renewal goes through.
func TestGraph503E2EServiceIncident(t *testing.T) {
	t0 := time.Date(2026, 5, 15, 0, 5, 19, 0, time.UTC)
	s := newGraphSite(t, t0)
	s.setIssues(t)
	s.fake.PutSubscription(graphfake.Subscription{ID: "sub-1", Resource: postmasterInbox, ChangeType: "created",
		NotificationURL: "https://ndr-hooks.contoso.com/graph/notify", ClientState: "app-state", Expiration: t0.Add(95 * time.Minute)})
	s.fake.AddFault(graphfake.Fault{Method: http.MethodPatch, Path: "/subscriptions/", Times: -1, OmitHeaders: true})

	run := s.diagnose(t, map[string]string{})
	// 95 minutes before expiry with renewals failing, the replacement is proposed
	// now, not after the lapse.
	assert.Equal(t, []string{"m365-incident", "m365-advisory", "m365-advisory", "subscription-expiring", "renewal-fails", "recreate-before-expiry", "wait-for-microsoft"},
		rules(run.Findings()))
	assert.Empty(t, run.Escalations(), "Microsoft's incident: wait, do not escalate as ours")
	assert.Equal(t, []string{"renew-subscription", "recreate-subscription"}, reliefIDs(run.Proposals()))
	text := strings.Join(texts(run.Findings()), "\n")
	assert.Contains(t, text, "Microsoft reports EX1093441, an active Exchange Online incident (serviceDegradation since 2026-05-15T00:01:00Z)")
	assert.Contains(t, text, "Subscription sub-1 to "+postmasterInbox+" expires in 95 minutes (2026-05-15T01:40:19Z)")
	assert.Contains(t, text, "The 503s are Microsoft's: EX1093441 is open")

	// The probe PATCHed the expiry it already had, five times, and the finding
	// carries the ids of the last attempt, read from the error body alone.
	patches := s.fake.GraphRequests(http.MethodPatch, "/subscriptions/sub-1")
	require.Len(t, patches, e2eRetry.MaxAttempts)
	assert.Contains(t, string(patches[0].Body), `"expirationDateTime":"2026-05-15T01:40:19`)
	probe := stepRows(run, "probe")
	require.Len(t, probe, 1)
	assert.Equal(t, "failed", probe[0]["Status"])
	assert.EqualValues(t, 503, probe[0]["HTTPStatus"])
	assert.Equal(t, patches[len(patches)-1].Header.Get("client-request-id"), probe[0]["ClientRequestId"])
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-`, probe[0]["RequestId"])
	sub, _ := s.fake.Subscription("sub-1")
	assert.True(t, sub.Expiration.Equal(t0.Add(95*time.Minute)), "the probe changed nothing")

	// Microsoft restores the service; the approved renewal goes through.
	s.fake.ClearFaults()
	s.noIssues(t)
	s.clk.Set(t0.Add(10 * time.Minute))
	res, err := s.eng.Relieve(context.Background(), run, "renew-subscription")
	require.NoError(t, err)
	require.True(t, res.OK, res.Error)
	require.NotNil(t, res.Verified)
	assert.True(t, *res.Verified)
	sub, _ = s.fake.Subscription("sub-1")
	assert.True(t, sub.Expiration.Equal(t0.Add(10*time.Minute+10065*time.Minute)), "renewed to Graph's maximum less the margin: %s", sub.Expiration)
	var renewal graph.Renewal
	require.NoError(t, json.Unmarshal([]byte(res.Output), &renewal))
	assert.Equal(t, "2026-05-15T01:40:19Z", renewal.PreviousExpirationDateTime)
	assert.Empty(t, run.Escalations())
}

// Renewals keep failing while service health is clean: the approved renewal fails
// after the retry policy too, and the escalation hands Microsoft support the ids.
func TestGraph503E2ERenewalsKeepFailing(t *testing.T) {
	t0 := time.Date(2026, 5, 15, 0, 5, 19, 0, time.UTC)
	s := newGraphSite(t, t0)
	s.noIssues(t)
	s.fake.PutSubscription(graphfake.Subscription{ID: "sub-1", Resource: postmasterInbox, ChangeType: "created",
		NotificationURL: "https://ndr-hooks.contoso.com/graph/notify", Expiration: t0.Add(40 * time.Minute)})
	s.fake.AddFault(graphfake.Fault{Method: http.MethodPatch, Path: "/subscriptions/", Times: -1})

	run := s.diagnose(t, map[string]string{})
	assert.Equal(t, []string{"m365-clear", "subscription-expiring", "renewal-fails", "recreate-before-expiry"}, rules(run.Findings()))
	assert.Empty(t, run.Escalations(), "renew first")

	res, err := s.eng.Relieve(context.Background(), run, "renew-subscription")
	require.NoError(t, err)
	require.False(t, res.OK)
	assert.Contains(t, res.Error, "graph PATCH /subscriptions/{id}: 503 Service Unavailable (ExtensionError: Operation: Update; Exception: [Status Code: ServiceUnavailable; Reason: ]) after 5 attempts")
	assert.Len(t, s.fake.GraphRequests(http.MethodPatch, "/subscriptions/sub-1"), 2*e2eRetry.MaxAttempts, "probe and relief, each through the retry policy")

	require.Equal(t, []string{"renewals-keep-failing"}, escalationIDs(run.Escalations()))
	probe := stepRows(run, "probe")[0]
	reason := run.Escalations()[0].Reason
	for _, w := range []string{
		"Graph keeps refusing subscription renewals while Microsoft 365 service health shows no Exchange Online incident.",
		"PATCH /subscriptions/sub-1 answered 503 ExtensionError (Operation: Update; Exception: [Status Code: ServiceUnavailable; Reason: ]) after 5 attempts",
		"request-id " + probe["RequestId"].(string), "client-request-id " + probe["ClientRequestId"].(string), "date " + probe["Date"].(string),
	} {
		assert.Contains(t, reason, w)
	}
	assert.Contains(t, run.Escalations()[0].Owner, "Microsoft support")
	sub, _ := s.fake.Subscription("sub-1")
	assert.True(t, sub.Expiration.Equal(t0.Add(40*time.Minute)), "nothing changed")
}

// A subscription lapsed during a 503 storm and Graph deleted it. The diagnosis counts
// what arrived since; recreate + reconcile creates the subscription again and lists
// exactly the messages received between the lapse and the new subscription.
func TestGraph503E2ERecreateReconcilesTheLapse(t *testing.T) {
	t0 := time.Date(2026, 5, 15, 0, 5, 0, 0, time.UTC) // the old subscription's expiry: the lapse starts
	s := newGraphSite(t, t0.Add(30*time.Minute))
	s.noIssues(t)
	const notify = "https://ndr-hooks.contoso.com/graph/notify"
	s.fake.PutSubscription(graphfake.Subscription{ID: "old-sub", Resource: postmasterInbox, ChangeType: "created",
		NotificationURL: notify, ClientState: "old-state", Expiration: t0})
	s.fake.Deliver(e2eMailbox, "Inbox", "m-before", t0.Add(-10*time.Minute)) // notified before the lapse
	s.fake.Deliver(e2eMailbox, "Inbox", "m-lapse-1", t0.Add(5*time.Minute))
	s.fake.Deliver(e2eMailbox, "Archive", "m-other-folder", t0.Add(6*time.Minute))
	s.fake.Deliver(e2eMailbox, "Inbox", "m-deleted", t0.Add(7*time.Minute))
	s.fake.Remove(e2eMailbox, "Inbox", "m-deleted")
	s.fake.Deliver(e2eMailbox, "Inbox", "m-lapse-2", t0.Add(12*time.Minute))
	s.fake.Deliver(e2eMailbox, "Inbox", "m-lapse-3", t0.Add(20*time.Minute))

	raw := map[string]string{"subscription": "old-sub", "resource": postmasterInbox, "notification_url": notify,
		"expired_at": t0.Format(time.RFC3339)}
	run := s.diagnose(t, raw)
	assert.Equal(t, []string{"m365-clear", "subscription-gone", "nothing-to-probe", "lapse-missed"}, rules(run.Findings()))
	assert.Empty(t, run.Escalations())
	lapse := stepRows(run, "lapse")
	require.Len(t, lapse, 1)
	assert.EqualValues(t, 3, lapse[0]["MissedCount"], "three messages so far")
	assert.Contains(t, strings.Join(texts(run.Findings()), "\n"),
		"3 message(s) reached postmaster@contoso.com's Inbox since the subscription lapsed at 2026-05-15T00:05:00Z")
	deltas := s.fake.GraphRequests(http.MethodGet, "/users/")
	require.NotEmpty(t, deltas)
	assert.Equal(t, "receivedDateTime ge 2026-05-15T00:05:00Z", deltas[0].Query("$filter"))
	assert.Empty(t, s.fake.GraphRequests(http.MethodPost, "/subscriptions"), "a diagnosis creates nothing")

	// One more arrives before the approval; one arrives after the new subscription.
	s.fake.Deliver(e2eMailbox, "Inbox", "m-lapse-4", t0.Add(32*time.Minute))
	s.fake.Deliver(e2eMailbox, "Inbox", "m-after", t0.Add(40*time.Minute))
	s.clk.Set(t0.Add(35 * time.Minute))
	res, err := s.eng.Relieve(context.Background(), run, "recreate-subscription")
	require.NoError(t, err)
	require.True(t, res.OK, res.Error)
	require.NotNil(t, res.Verified)
	assert.True(t, *res.Verified)

	var rec graph.Recreation
	require.NoError(t, json.Unmarshal([]byte(res.Output), &rec))
	require.True(t, rec.Reconciled)
	var missed []string
	for _, m := range rec.Reconcile.Missed {
		missed = append(missed, m.ID)
	}
	assert.Equal(t, []string{"m-lapse-1", "m-lapse-2", "m-lapse-3", "m-lapse-4"}, missed, "exactly the lapse: not before, not another folder, not deleted, not after")
	assert.Equal(t, "2026-05-15T00:05:00Z", rec.Reconcile.Since)
	assert.Equal(t, "2026-05-15T00:40:00Z", rec.Reconcile.Until)

	subs := s.fake.Subscriptions()
	require.Len(t, subs, 1, "Graph deleted the old one; one new one")
	assert.Equal(t, rec.SubscriptionID, subs[0].ID)
	assert.Equal(t, postmasterInbox, subs[0].Resource)
	assert.Equal(t, "created", subs[0].ChangeType)
	assert.Equal(t, notify, subs[0].NotificationURL)
	assert.Equal(t, e2eClientState, subs[0].ClientState, "the clientState from the wiring reached Graph")
	assert.True(t, subs[0].Expiration.Equal(t0.Add(35*time.Minute+10065*time.Minute)))
	for _, leak := range []string{e2eClientState, e2eSecret} {
		assert.NotContains(t, res.Output, leak)
		for _, f := range run.Findings() {
			assert.NotContains(t, f.Text+f.Evidence, leak)
		}
	}
	for _, p := range run.Proposals() {
		assert.NotContains(t, p.Args, "client_state", "the playbook never carries the clientState")
	}
	for _, f := range run.Findings() {
		if f.Phase == playbooks.PhaseVerify {
			assert.NotEqual(t, incident.SeverityCritical, f.Severity, f.Text)
		}
	}
}

// Renewals keep failing 40 minutes before expiry: the playbook says so with what it
// measured, and the approved recreate creates the replacement while the old one
// still lives, then deletes the old one — nothing lapses, nothing to reconcile.
func TestGraph503E2ERecreateBeforeExpiry(t *testing.T) {
	t0 := time.Date(2026, 5, 15, 0, 5, 19, 0, time.UTC)
	s := newGraphSite(t, t0)
	s.noIssues(t)
	const notify = "https://ndr-hooks.contoso.com/graph/notify"
	s.fake.PutSubscription(graphfake.Subscription{ID: "sub-1", Resource: postmasterInbox, ChangeType: "created",
		NotificationURL: notify, LifecycleNotificationURL: notify, Expiration: t0.Add(40 * time.Minute)})
	s.fake.AddFault(graphfake.Fault{Method: http.MethodPatch, Path: "/subscriptions/", Times: -1})

	run := s.diagnose(t, map[string]string{})
	require.Contains(t, rules(run.Findings()), "recreate-before-expiry")
	assert.Contains(t, strings.Join(texts(run.Findings()), "\n"),
		"Subscription sub-1 expires in 40 minutes and its renewal still fails (503 ExtensionError after 5 attempts): inside the 360-minute recreate margin")
	p, ok := run.Proposal("recreate-subscription")
	require.True(t, ok)
	assert.Equal(t, "sub-1", p.Args["subscription_id"])
	assert.Equal(t, true, p.Args["replace_live"])

	res, err := s.eng.Relieve(context.Background(), run, "recreate-subscription")
	require.NoError(t, err)
	require.True(t, res.OK, res.Error)
	var rec graph.Recreation
	require.NoError(t, json.Unmarshal([]byte(res.Output), &rec))
	assert.True(t, rec.Replaced)
	assert.True(t, rec.OldDeleted)
	assert.False(t, rec.Reconciled)
	subs := s.fake.Subscriptions()
	require.Len(t, subs, 1)
	assert.Equal(t, rec.SubscriptionID, subs[0].ID)
	assert.NotEqual(t, "sub-1", subs[0].ID)
	assert.Equal(t, notify, subs[0].LifecycleNotificationURL, "lifecycle notifications keep flowing to the same receiver")
	posts := s.fake.GraphRequests(http.MethodPost, "/subscriptions")
	deletes := s.fake.GraphRequests(http.MethodDelete, "/subscriptions/sub-1")
	require.Len(t, posts, 1)
	require.Len(t, deletes, 1)
	assert.True(t, posts[0].Time.Before(deletes[0].Time), "the replacement exists before the old one goes")
}

// A users/{id}/messages subscription watches every folder of the mailbox, not the
// Inbox: the lapse counts what inbox rules moved elsewhere too, and says how.
func TestGraph503E2EWholeMailboxLapse(t *testing.T) {
	t0 := time.Date(2026, 5, 15, 0, 5, 0, 0, time.UTC)
	s := newGraphSite(t, t0.Add(30*time.Minute))
	s.noIssues(t)
	s.fake.Deliver(e2eMailbox, "Inbox", "m-inbox", t0.Add(5*time.Minute))
	s.fake.Deliver(e2eMailbox, "Archive", "m-archive", t0.Add(6*time.Minute))
	s.fake.Deliver(e2eMailbox, "DeletedItems", "m-deleted-items", t0.Add(7*time.Minute))
	run := s.diagnose(t, map[string]string{"subscription": "old-sub", "resource": "users/" + e2eMailbox + "/messages",
		"notification_url": "https://ndr-hooks.contoso.com/graph/notify", "expired_at": t0.Format(time.RFC3339)})
	assert.Equal(t, []string{"m365-clear", "subscription-gone", "nothing-to-probe", "lapse-missed"}, rules(run.Findings()))
	lapse := stepRows(run, "lapse")
	require.Len(t, lapse, 1)
	assert.EqualValues(t, 3, lapse[0]["MissedCount"], "every folder, not the Inbox alone")
	text := strings.Join(texts(run.Findings()), "\n")
	assert.Contains(t, text, "3 message(s) reached postmaster@contoso.com's mailbox (every folder) since the subscription lapsed at 2026-05-15T00:05:00Z (listed with GET /users/{id}/messages")
	assert.Contains(t, text, "GET /subscriptions/old-sub answered 404, so Graph deleted it")
}
