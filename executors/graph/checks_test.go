package graph

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
	"github.com/ndrbot/ndrbot/incident"
)

func issuesPage(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/servicehealth-issues.json")
	require.NoError(t, err)
	return b
}

func TestServiceHealth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		params  map[string]any
		wantIDs []string
		filter  string
	}{
		{"active Exchange Online issues", nil, []string{"EX1093441", "EX1093417", "EX1093300"},
			"service eq 'Exchange Online' and isResolved eq false"},
		{"with resolved ones", map[string]any{"include_resolved": true}, []string{"EX226792", "EX1093441", "EX1093417", "EX1093300"},
			"service eq 'Exchange Online'"},
		{"another service", map[string]any{"service": "Microsoft Teams"}, []string{"TM1093450"},
			"service eq 'Microsoft Teams' and isResolved eq false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil, nil)
			require.NoError(t, h.fake.SetIssues(issuesPage(t)))
			out, err := h.run(t, CheckServiceHealth, tt.params, 10*time.Second)
			require.NoError(t, err)
			var rows []ServiceHealthIssue
			decode(t, out, &rows)
			var ids []string
			for _, r := range rows {
				ids = append(ids, r.ID)
			}
			assert.Equal(t, tt.wantIDs, ids)
			sent := h.fake.GraphRequests(http.MethodGet, "/admin/serviceAnnouncement/issues")
			assert.Equal(t, tt.filter, sent[0].Query("$filter"))
			assert.Equal(t, (len(tt.wantIDs)+1)/2, len(sent), "pages of 2 followed through @odata.nextLink")
		})
	}

	// Field by field, from the page shaped like Graph's own example: "Incident" and
	// "ServiceDegradation" come out as the enum spellings.
	h := newHarness(t, nil, nil)
	require.NoError(t, h.fake.SetIssues(issuesPage(t)))
	out, err := h.run(t, CheckServiceHealth, map[string]any{"include_resolved": true}, 10*time.Second)
	require.NoError(t, err)
	var rows []ServiceHealthIssue
	decode(t, out, &rows)
	require.Len(t, rows, 4)
	assert.Equal(t, ServiceHealthIssue{
		ID: "EX226792", Title: "Limited number of users unable to send or receive email through the Exchange Online service",
		Classification: "incident", Status: "serviceRestored", Service: "Exchange Online",
		Feature: "Mailflow - delayed delivery from Internet", StartDateTime: "2020-11-13T21:00:00Z",
		LastModified: "2020-11-14T18:20:24Z", EndDateTime: "2020-11-14T17:15:00Z",
		ImpactDescription: "Users may have been unable to send or receive email through the Exchange Online service.",
		IsResolved:        true,
	}, rows[0])
	for _, key := range []string{`"Id":"EX1093441"`, `"Classification":"incident"`, `"Status":"serviceDegradation"`,
		`"StartDateTime":"2026-05-15T00:01:00Z"`, `"LastModified":"2026-05-15T00:32:11Z"`, `"ImpactDescription":"Users may see`, `"Service":"Exchange Online"`} {
		assert.Contains(t, string(out.Stdout), key, "PascalCase row fields")
	}
	assert.Equal(t, "serviceDegradation", rows[1].Status)
	assert.Equal(t, "", rows[1].EndDateTime)
	assert.Equal(t, "advisory", rows[2].Classification)
	assert.Equal(t, "investigating", rows[2].Status)
	assert.Equal(t, "extendedRecovery", rows[3].Status)

	_, err = h.run(t, CheckServiceHealth, map[string]any{"service": "x' or isResolved eq true or service eq 'y"}, 10*time.Second)
	assert.ErrorIs(t, err, incident.ErrInvalidInput)
}

func TestSubscriptionRowExpiry(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 15, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		expires    time.Time
		window     int
		minutes    int
		expired    bool
		inWindow   bool
		maxMinutes int
	}{
		{"three days left", now.Add(72 * time.Hour), 1440, 4320, false, false, 10070},
		{"inside the window", now.Add(90 * time.Minute), 120, 90, false, true, 10070},
		{"seconds left round down", now.Add(59 * time.Second), 1, 0, false, true, 10070},
		{"outside a zero window", now.Add(59 * time.Second), 0, 0, false, false, 10070},
		{"just expired", now.Add(-30 * time.Second), 60, -1, true, true, 10070},
		{"expired an hour ago", now.Add(-time.Hour), 60, -60, true, true, 10070},
	}
	h := newHarness(t, nil, nil)
	for _, tt := range tests {
		sub := subscriptionModel("id-1", "users/postmaster@contoso.com/mailFolders('Inbox')/messages", tt.expires)
		r := h.exec.subscriptionRow(sub, now, tt.window)
		assert.Equal(t, tt.minutes, r.ExpiresInMinutes, tt.name)
		assert.Equal(t, tt.expired, r.Expired, tt.name)
		assert.Equal(t, tt.inWindow, r.InRenewalWindow, tt.name)
		assert.Equal(t, tt.maxMinutes, r.MaxMinutes, tt.name)
	}
}

func TestSubscriptions(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 15, 0, 0, 0, 0, time.UTC)
	fakeClock, execClock := newClock(now), newClock(now.Add(2*time.Minute))
	h := newHarness(t, []graphfake.Option{graphfake.WithClock(fakeClock.Now)}, nil, WithClock(execClock.Now))
	for _, s := range []graphfake.Subscription{
		{ID: "sub-days", Resource: "users/postmaster@contoso.com/mailFolders('Inbox')/messages", ChangeType: "created",
			NotificationURL: "https://hooks.contoso.com/graph/notify?code=s3cr3t-function-key", ClientState: "client-state-SECRET-1",
			Expiration: now.Add(72 * time.Hour)},
		{ID: "sub-soon", Resource: "users/journal@contoso.com/messages", ChangeType: "created,updated",
			NotificationURL: "https://hooks.contoso.com/graph/notify", ClientState: "client-state-SECRET-2",
			Expiration: now.Add(45 * time.Minute)},
		// Live for Graph, already past for the bot's clock (2 minutes ahead).
		{ID: "sub-lapsing", Resource: "users/postmaster@contoso.com/mailFolders('Inbox')/messages", ChangeType: "created",
			NotificationURL: "https://other.contoso.com/hook", ClientState: "client-state-SECRET-3", Expiration: now.Add(90 * time.Second)},
		// Expired: Graph has deleted it.
		{ID: "sub-gone", Resource: "users/x@contoso.com/messages", ChangeType: "created",
			NotificationURL: "https://hooks.contoso.com/n", ClientState: "client-state-SECRET-4", Expiration: now.Add(-time.Minute)},
	} {
		h.fake.PutSubscription(s)
	}
	out, err := h.run(t, CheckSubscriptions, map[string]any{"window_minutes": 60}, 10*time.Second)
	require.NoError(t, err)
	var rows []Subscription
	decode(t, out, &rows)
	require.Len(t, rows, 3, "pages of 2, the expired one gone")
	assert.Equal(t, Subscription{ID: "sub-lapsing", Resource: "users/postmaster@contoso.com/mailFolders('Inbox')/messages",
		ChangeType: "created", ExpirationDateTime: "2026-05-15T00:01:30Z", ExpiresInMinutes: -1, Expired: true,
		InRenewalWindow: true, MaxMinutes: 10070, NotificationHost: "other.contoso.com"}, rows[0])
	assert.Equal(t, "sub-soon", rows[1].ID)
	assert.Equal(t, 43, rows[1].ExpiresInMinutes)
	assert.True(t, rows[1].InRenewalWindow)
	assert.Equal(t, "sub-days", rows[2].ID)
	assert.Equal(t, 72*60-2, rows[2].ExpiresInMinutes)
	assert.False(t, rows[2].InRenewalWindow)
	assert.Equal(t, "hooks.contoso.com", rows[2].NotificationHost)
	for _, key := range []string{`"Id":"sub-days"`, `"Resource":`, `"ChangeType":"created,updated"`, `"ExpirationDateTime":"2026-05-18T00:00:00Z"`,
		`"ExpiresInMinutes":4318`, `"NotificationHost":"hooks.contoso.com"`} {
		assert.Contains(t, string(out.Stdout), key, "PascalCase row fields")
	}
	// Never the clientState, never a URL's path or query.
	for _, leak := range []string{"client-state-SECRET", "clientState", "ClientState", "s3cr3t-function-key", "/graph/notify"} {
		assert.NotContains(t, string(out.Stdout), leak)
	}
}

func TestMaxLifetimeMinutes(t *testing.T) {
	t.Parallel()
	for resource, want := range map[string]int{
		"users/postmaster@contoso.com/mailFolders('Inbox')/messages": 10070,
		"/users/abc/messages":      10070,
		"users/abc/events":         10070,
		"me/contacts":              10070,
		"users":                    41760,
		"groups/123":               41760,
		"groups/123/conversations": 4230,
		"security/alerts?$filter=status eq 'New'":      43200,
		"communications/callRecords":                   4230,
		"communications/presences?$filter=id in ('a')": 60,
		"chats/getAllMessages":                         60,
		"drives/abc/root":                              42300,
		"print/printers/1/jobs":                        4230,
	} {
		assert.Equal(t, want, MaxLifetimeMinutes(resource), resource)
	}
	for _, tt := range []struct {
		req, max, want int
		clamped        bool
	}{
		{0, 10070, 10065, false}, {60, 10070, 60, false}, {20000, 10070, 10065, true}, {10066, 10070, 10065, true},
		{0, 60, 55, false}, {0, 8, 7, false},
	} {
		got, clamped := lifetime(tt.req, tt.max)
		assert.Equal(t, tt.want, got, "lifetime(%d, %d)", tt.req, tt.max)
		assert.Equal(t, tt.clamped, clamped, "lifetime(%d, %d)", tt.req, tt.max)
	}
}

func TestRenewalProbe(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC().Truncate(time.Second)
	setup := func(t *testing.T) *harness {
		h := newHarness(t, nil, nil)
		h.fake.PutSubscription(graphfake.Subscription{ID: "later", Resource: "users/a@contoso.com/messages", ChangeType: "created",
			NotificationURL: "https://hooks.contoso.com/n", Expiration: now.Add(2 * time.Hour)})
		h.fake.PutSubscription(graphfake.Subscription{ID: "first", Resource: "users/b@contoso.com/messages", ChangeType: "created",
			NotificationURL: "https://hooks.contoso.com/n", Expiration: now.Add(time.Hour)})
		return h
	}
	t.Run("renewal works: nothing changes", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		out, err := h.run(t, CheckRenewalProbe, nil, 10*time.Second)
		require.NoError(t, err)
		var row RenewalProbe
		decode(t, out, &row)
		assert.Equal(t, "first", row.SubscriptionID, "the live subscription expiring first")
		assert.Equal(t, "ok", row.Status)
		assert.Equal(t, http.StatusOK, row.HTTPStatus)
		assert.Equal(t, 1, row.Attempts)
		assert.NotEmpty(t, row.RequestID)
		patches := h.fake.GraphRequests(http.MethodPatch, "/subscriptions/first")
		require.Len(t, patches, 1)
		assert.Equal(t, patches[0].Header.Get("client-request-id"), row.ClientRequestID)
		var body map[string]any
		require.NoError(t, json.Unmarshal(patches[0].Body, &body))
		sent, err := time.Parse(time.RFC3339, body["expirationDateTime"].(string))
		require.NoError(t, err)
		assert.True(t, sent.Equal(now.Add(time.Hour)), "PATCHed %s, want the current expiry", sent)
		sub, _ := h.fake.Subscription("first")
		assert.True(t, sub.Expiration.Equal(now.Add(time.Hour)), "the probe moved the expiry")
	})
	t.Run("renewal failing: a result, with the ids", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		h.fake.AddFault(graphfake.Fault{Method: http.MethodPatch, Path: "/subscriptions", Times: -1, OmitHeaders: true})
		out, err := h.run(t, CheckRenewalProbe, map[string]any{"subscription_id": "later"}, 5*time.Second)
		require.NoError(t, err)
		var row RenewalProbe
		decode(t, out, &row)
		assert.Equal(t, "later", row.SubscriptionID)
		assert.Equal(t, "failed", row.Status)
		assert.Equal(t, http.StatusServiceUnavailable, row.HTTPStatus)
		assert.Equal(t, "ExtensionError", row.Code)
		assert.Equal(t, fastRetry.MaxAttempts, row.Attempts)
		assert.NotEmpty(t, row.RequestID)
		assert.NotEmpty(t, row.ClientRequestID)
		assert.NotEmpty(t, row.Date)
	})
	t.Run("nothing to probe", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, nil)
		out, err := h.run(t, CheckRenewalProbe, nil, 10*time.Second)
		require.NoError(t, err)
		var row RenewalProbe
		decode(t, out, &row)
		assert.Equal(t, "none", row.Status)
	})
}

func TestRenewPatchBody(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 15, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		minutes any
		want    time.Duration
		clamped bool
	}{
		{"an hour", 60, time.Hour, false},
		{"as a string", "90", 90 * time.Minute, false},
		{"default: the maximum less the margin", nil, 10065 * time.Minute, false},
		{"beyond Graph's maximum", 20000, 10065 * time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock(now)
			h := newHarness(t, []graphfake.Option{graphfake.WithClock(clk.Now)}, nil, WithClock(clk.Now))
			h.fake.PutSubscription(graphfake.Subscription{ID: "sub-1", Resource: "users/postmaster@contoso.com/mailFolders('Inbox')/messages",
				ChangeType: "created", NotificationURL: "https://hooks.contoso.com/n", ClientState: "state-SECRET", Expiration: now.Add(10 * time.Minute)})
			params := map[string]any{"subscription_id": "sub-1"}
			if tt.minutes != nil {
				params["minutes"] = tt.minutes
			}
			out, err := h.run(t, CheckRenewSubscription, params, 10*time.Second)
			require.NoError(t, err)
			patches := h.fake.GraphRequests(http.MethodPatch, "/subscriptions/sub-1")
			require.Len(t, patches, 1)
			var body map[string]any
			require.NoError(t, json.Unmarshal(patches[0].Body, &body))
			delete(body, "@odata.type")
			require.Len(t, body, 1, "PATCH carries the expiry only: %s", patches[0].Body)
			sent, err := time.Parse(time.RFC3339, body["expirationDateTime"].(string))
			require.NoError(t, err)
			assert.True(t, sent.Equal(now.Add(tt.want)), "expirationDateTime %s, want now+%s", sent, tt.want)

			var row Renewal
			decode(t, out, &row)
			assert.Equal(t, "2026-05-15T00:10:00Z", row.PreviousExpirationDateTime)
			assert.Equal(t, now.Add(tt.want).Format(time.RFC3339), row.ExpirationDateTime)
			assert.Equal(t, int(tt.want/time.Minute), row.ExpiresInMinutes)
			assert.Equal(t, tt.clamped, row.Clamped)
			assert.Equal(t, 10070, row.MaxMinutes)
			sub, _ := h.fake.Subscription("sub-1")
			assert.True(t, sub.Expiration.Equal(now.Add(tt.want)))
		})
	}
	t.Run("gone: recreate instead", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, nil)
		_, err := h.run(t, CheckRenewSubscription, map[string]any{"subscription_id": "sub-gone"}, 10*time.Second)
		assert.ErrorIs(t, err, incident.ErrNotFound)
		assert.Contains(t, err.Error(), "recreate it")
	})
	t.Run("renewal retried through a 503 storm", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, nil)
		h.fake.PutSubscription(graphfake.Subscription{ID: "sub-1", Resource: "users/a@contoso.com/messages", ChangeType: "created",
			NotificationURL: "https://hooks.contoso.com/n", Expiration: time.Now().Add(10 * time.Minute)})
		h.fake.AddFault(graphfake.Fault{Method: http.MethodPatch, Path: "/subscriptions", Times: 2})
		out, err := h.run(t, CheckRenewSubscription, map[string]any{"subscription_id": "sub-1", "minutes": 120}, 10*time.Second)
		require.NoError(t, err)
		var row Renewal
		decode(t, out, &row)
		assert.Equal(t, 3, row.Attempts)
		patches := h.fake.GraphRequests(http.MethodPatch, "/subscriptions/sub-1")
		require.Len(t, patches, 3)
		assert.Equal(t, string(patches[0].Body), string(patches[2].Body), "every attempt sends the same expiry")
	})
}

func TestMessageTrace(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	rows := []graphfake.TraceRow{
		{ID: "t1", MessageID: "<a1@contoso.com>", Sender: "alice@contoso.com", Recipient: "bob@fabrikam.com", Status: "failed",
			Subject: "Quarterly numbers CONFIDENTIAL", Received: now.Add(-2 * time.Hour), Size: 2048, FromIP: "203.0.113.5", ToIP: "198.51.100.7"},
		{ID: "t2", MessageID: "<a2@contoso.com>", Sender: "alice@contoso.com", Recipient: "carol@fabrikam.com", Status: "delivered",
			Subject: "lunch", Received: now.Add(-3 * time.Hour), Size: 1024},
		{ID: "t3", MessageID: "<d1@contoso.com>", Sender: "dave@contoso.com", Recipient: "bob@fabrikam.com", Status: "delivered",
			Received: now.Add(-time.Hour)},
		{ID: "t4", MessageID: "<a3@contoso.com>", Sender: "alice@contoso.com", Recipient: "bob@fabrikam.com", Status: "delivered",
			Received: now.Add(-30 * time.Hour)}, // outside the default 24 h
	}
	t.Run("available", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, nil)
		h.fake.SetTrace(rows)
		out, err := h.run(t, CheckMessageTrace, map[string]any{"sender": "alice@contoso.com"}, 10*time.Second)
		require.NoError(t, err)
		var got []MessageTrace
		decode(t, out, &got)
		require.Len(t, got, 2)
		assert.Equal(t, MessageTrace{Available: true, ID: "t1", MessageID: "<a1@contoso.com>",
			ReceivedDateTime: rows[0].Received.Truncate(time.Second).Format(time.RFC3339), SenderAddress: "alice@contoso.com",
			RecipientAddress: "bob@fabrikam.com", Status: "failed", Size: 2048, FromIP: "203.0.113.5", ToIP: "198.51.100.7"}, got[0])
		assert.NotContains(t, string(out.Stdout), "CONFIDENTIAL", "subjects stay out")
		f := h.fake.GraphRequests(http.MethodGet, "/admin/exchange/tracing/messageTraces")[0].Query("$filter")
		assert.Regexp(t, `^receivedDateTime ge \S+Z and receivedDateTime le \S+Z and senderAddress eq 'alice@contoso\.com'$`, f)
	})
	unavailable := []struct {
		name       string
		status     int
		code, msg  string
		wantReason string
	}{
		{"no permission", http.StatusForbidden, "Forbidden", "Missing role permissions on the request.", "ExchangeMessageTrace.Read.All"},
		{"no service principal", http.StatusUnauthorized, "Unauthorized",
			"Service principal-less Authentication failed: the service principal for App ID 8bd644d1-64a1-4d4b-ae52-2e0cbf64e373 was not found.",
			"8bd644d1-64a1-4d4b-ae52-2e0cbf64e373"},
		{"no such API", http.StatusNotFound, "UnknownError", "", "no message trace API"},
		{"no such segment", http.StatusBadRequest, "BadRequest", "Resource not found for the segment 'tracing'.", "no message trace API"},
	}
	for _, tt := range unavailable {
		t.Run("unavailable: "+tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil, nil)
			h.fake.SetTraceUnavailable(tt.status, tt.code, tt.msg)
			out, err := h.run(t, CheckMessageTrace, map[string]any{"recipient": "bob@fabrikam.com", "hours": 48}, 10*time.Second)
			require.NoError(t, err)
			var got []MessageTrace
			decode(t, out, &got)
			require.Len(t, got, 1)
			assert.False(t, got[0].Available)
			assert.Contains(t, got[0].Reason, tt.wantReason)
			assert.Equal(t, tt.status, got[0].HTTPStatus)
			assert.NotEmpty(t, got[0].RequestID)
			assert.Len(t, h.fake.GraphRequests("", "/admin/exchange/tracing"), 1, "not retried")
		})
	}
	t.Run("a bad request is an error, not unavailability", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, nil)
		h.fake.SetTraceUnavailable(http.StatusBadRequest, "BadRequest", "Invalid filter clause.")
		_, err := h.run(t, CheckMessageTrace, map[string]any{"sender": "alice@contoso.com"}, 10*time.Second)
		var re *RequestError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, http.StatusBadRequest, re.Status)
	})
	t.Run("national cloud: said without asking", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, func(tg *config.Target) { tg.Cloud = config.CloudUSGov })
		out, err := h.run(t, CheckMessageTrace, map[string]any{"sender": "alice@contoso.com"}, 10*time.Second)
		require.NoError(t, err)
		var got []MessageTrace
		decode(t, out, &got)
		require.Len(t, got, 1)
		assert.False(t, got[0].Available)
		assert.Contains(t, got[0].Reason, "only in the global cloud, not in usgov")
		assert.Empty(t, h.fake.GraphRequests("", "/"))
	})
	t.Run("params", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, nil)
		for _, p := range []map[string]any{
			{},
			{"sender": "alice@contoso.com' or senderAddress eq 'x"},
			{"sender": "alice@contoso.com", "hours": 241},
			{"sender": "alice@contoso.com", "status": "bounced"},
		} {
			_, err := h.run(t, CheckMessageTrace, p, 10*time.Second)
			assert.ErrorIs(t, err, incident.ErrInvalidInput, "%v", p)
		}
		assert.Empty(t, h.fake.GraphRequests("", "/"))
	})
}

// A subscription lapses during a 503 storm; recreate + reconcile finds exactly the
// messages received while no notification could arrive.
func TestRecreateAndReconcile(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 15, 0, 5, 0, 0, time.UTC) // the old subscription's expiry: the lapse starts
	clk := newClock(t0.Add(-time.Hour))
	h := newHarness(t, []graphfake.Option{graphfake.WithClock(clk.Now)}, nil, WithClock(clk.Now))
	const (
		mailbox  = "postmaster@contoso.com"
		resource = "users/postmaster@contoso.com/mailFolders('Inbox')/messages"
		notify   = "https://hooks.contoso.com/graph/notify?code=function-key-SECRET"
		oldState = "old-client-state-SECRET"
		newState = "new-client-state-SECRET-42"
	)
	h.fake.PutSubscription(graphfake.Subscription{ID: "old-sub", Resource: resource, ChangeType: "created",
		NotificationURL: notify, ClientState: oldState, Expiration: t0})
	h.fake.Deliver(mailbox, "Inbox", "m-before", t0.Add(-10*time.Minute)) // notified before the lapse
	h.fake.Deliver(mailbox, "Inbox", "m-lapse-1", t0.Add(5*time.Minute))
	h.fake.Deliver(mailbox, "Archive", "m-other-folder", t0.Add(6*time.Minute))
	h.fake.Deliver(mailbox, "Inbox", "m-deleted", t0.Add(7*time.Minute))
	h.fake.Remove(mailbox, "Inbox", "m-deleted")
	h.fake.Deliver(mailbox, "Inbox", "m-lapse-2", t0.Add(12*time.Minute))
	h.fake.Deliver(mailbox, "Inbox", "m-lapse-3", t0.Add(20*time.Minute))
	h.fake.Deliver(mailbox, "Inbox", "m-after", t0.Add(40*time.Minute)) // after the new subscription

	// The subscription still lives: recreating it would double notifications.
	_, err := h.run(t, CheckRecreateSubscription, map[string]any{"subscription_id": "old-sub", "client_state": newState}, 10*time.Second)
	require.ErrorIs(t, err, incident.ErrConflict)

	clk.Set(t0.Add(30 * time.Minute)) // the lapse: renewals failed, the subscription expired
	out, err := h.run(t, CheckRecreateSubscription, map[string]any{
		"subscription_id": "old-sub", "resource": resource, "change_type": "created", "notification_url": notify,
		"client_state": newState, "since": t0.Format(time.RFC3339),
	}, 10*time.Second)
	require.NoError(t, err)
	var row Recreation
	decode(t, out, &row)

	subs := h.fake.Subscriptions()
	require.Len(t, subs, 1, "the old one expired, one new one")
	created := subs[0]
	assert.Equal(t, created.ID, row.SubscriptionID)
	assert.Equal(t, "old-sub", row.OldSubscriptionID)
	assert.Equal(t, resource, created.Resource)
	assert.Equal(t, "created", created.ChangeType)
	assert.Equal(t, notify, created.NotificationURL)
	assert.Equal(t, newState, created.ClientState, "the fresh clientState reaches Graph")
	assert.True(t, created.Expiration.Equal(t0.Add(30*time.Minute+10065*time.Minute)))
	assert.Equal(t, "hooks.contoso.com", row.NotificationHost)

	require.True(t, row.Reconciled)
	rec := row.Reconcile
	var missed []string
	for _, m := range rec.Missed {
		missed = append(missed, m.ID)
	}
	assert.Equal(t, []string{"m-lapse-1", "m-lapse-2", "m-lapse-3"}, missed)
	assert.Equal(t, 3, rec.MissedCount)
	assert.Equal(t, "2026-05-15T00:10:00Z", rec.Missed[0].ReceivedDateTime)
	assert.Equal(t, t0.Format(time.RFC3339), rec.Since)
	assert.Equal(t, t0.Add(30*time.Minute).Format(time.RFC3339), rec.Until)
	assert.Equal(t, "Inbox", rec.Folder)
	assert.Contains(t, rec.DeltaLink, "$deltatoken=")
	assert.Greater(t, rec.Pages, 1, "paged through @odata.nextLink")

	deltas := h.fake.GraphRequests(http.MethodGet, "/users/")
	require.NotEmpty(t, deltas)
	assert.Equal(t, "receivedDateTime ge 2026-05-15T00:05:00Z", deltas[0].Query("$filter"))
	assert.Equal(t, "id,receivedDateTime", deltas[0].Query("$select"))
	for _, leak := range []string{oldState, newState, "function-key-SECRET", "clientState", "Subject"} {
		assert.NotContains(t, string(out.Stdout), leak)
	}

	// The sync continues from the deltaLink: only what arrived since.
	h.fake.Deliver(mailbox, "Inbox", "m-next", t0.Add(50*time.Minute))
	clk.Set(t0.Add(60 * time.Minute))
	out, err = h.run(t, CheckDeltaReconcile, map[string]any{
		"mailbox": mailbox, "folder": "Inbox", "delta_link": rec.DeltaLink, "since": t0.Format(time.RFC3339),
	}, 10*time.Second)
	require.NoError(t, err)
	var again Reconciliation
	decode(t, out, &again)
	require.Len(t, again.Missed, 1)
	assert.Equal(t, "m-next", again.Missed[0].ID)
	assert.NotEqual(t, rec.DeltaLink, again.DeltaLink)
}

func TestReconcileParams(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil)
	for _, tt := range []struct {
		check  string
		params map[string]any
		want   string
	}{
		{CheckDeltaReconcile, map[string]any{"since": "2026-05-15T00:00:00Z"}, `"mailbox" is required`},
		{CheckDeltaReconcile, map[string]any{"mailbox": "a@contoso.com"}, `"since" is required without delta_link`},
		{CheckDeltaReconcile, map[string]any{"mailbox": "a@contoso.com", "since": "yesterday"}, "not an RFC 3339 time"},
		{CheckDeltaReconcile, map[string]any{"mailbox": "a@contoso.com", "delta_link": "https://evil.example/v1.0/x?$deltatoken=1"}, "not to Graph"},
		{CheckDeltaReconcile, map[string]any{"mailbox": "../../admin", "since": "2026-05-15T00:00:00Z"}, "not a Graph id"},
		{CheckRecreateSubscription, map[string]any{"resource": "users/a/messages", "change_type": "created", "notification_url": "https://h/n"}, `"client_state" is required`},
		{CheckRecreateSubscription, map[string]any{"resource": "users/a/messages", "change_type": "created", "notification_url": "http://h/n", "client_state": "x", "since": "2026-05-15T00:00:00Z"}, "not an https URL"},
		{CheckRecreateSubscription, map[string]any{"resource": "users/a/messages", "change_type": "created", "notification_url": "https://h/n", "client_state": "x"}, `"since" is required to reconcile`},
		{CheckRecreateSubscription, map[string]any{"resource": "users/a/messages", "change_type": "read", "notification_url": "https://h/n", "client_state": "x", "reconcile": false}, "created, updated and/or deleted"},
		{CheckRecreateSubscription, map[string]any{"client_state": strings.Repeat("x", 129)}, "at most 128"},
		{CheckRenewSubscription, map[string]any{}, `"subscription_id" is required`},
	} {
		_, err := h.run(t, tt.check, tt.params, 5*time.Second)
		assert.ErrorIs(t, err, incident.ErrInvalidInput, "%s %v", tt.check, tt.params)
		assert.ErrorContains(t, err, tt.want)
	}
	assert.Empty(t, h.fake.GraphRequests("", "/"), "invalid params never reach Graph")
}

func TestMailResource(t *testing.T) {
	t.Parallel()
	for resource, want := range map[string]mailbox{
		"users/postmaster@contoso.com/mailFolders('Inbox')/messages": {user: "postmaster@contoso.com", folder: "Inbox"},
		"/users/abc/mailfolders/AAMkAGI2=/messages":                  {user: "abc", folder: "AAMkAGI2="},
		// Every folder of the mailbox, not the Inbox (the old, imprecise reading).
		"users/journal@contoso.com/messages": {user: "journal@contoso.com"},
	} {
		got, ok := mailResource(resource)
		assert.True(t, ok, resource)
		assert.Equal(t, want, got, resource)
	}
	for _, resource := range []string{"users/abc/events", "groups/1/conversations", "me/messages"} {
		_, ok := mailResource(resource)
		assert.False(t, ok, resource)
	}
}
