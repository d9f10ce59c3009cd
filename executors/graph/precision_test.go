package graph

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
	"github.com/ndrbot/ndrbot/incident"
)

// The graph-503 precision cases (issue 10, item 8), each against graphfake over
// HTTPS with the real msgraph-sdk-go client.

const (
	precMailbox = "postmaster@contoso.com"
	precNotify  = "https://hooks.contoso.com/graph/notify"
	precState   = "precision-client-state"
)

// users/{id}/messages is "changes to all messages in a user's mailbox"
// (https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview):
// the lapse of such a subscription is reconciled over every folder, while a
// folder's subscription is reconciled in that folder alone.
func TestReconcileScopeFollowsTheResource(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 15, 0, 5, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		resource string
		scope    string
		folder   string
		want     []string
	}{
		{"the whole mailbox", "users/" + precMailbox + "/messages", "mailbox", "",
			[]string{"m-inbox", "m-archive", "m-deleted-items"}},
		{"one folder", "users/" + precMailbox + "/mailFolders('Inbox')/messages", "folder", "Inbox",
			[]string{"m-inbox"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock(t0.Add(30 * time.Minute))
			h := newHarness(t, []graphfake.Option{graphfake.WithClock(clk.Now)}, nil, WithClock(clk.Now))
			h.fake.Deliver(precMailbox, "Inbox", "m-before", t0.Add(-time.Minute))
			h.fake.Deliver(precMailbox, "Inbox", "m-inbox", t0.Add(5*time.Minute))
			h.fake.Deliver(precMailbox, "Archive", "m-archive", t0.Add(6*time.Minute)) // moved by an inbox rule
			h.fake.Deliver(precMailbox, "DeletedItems", "m-deleted-items", t0.Add(7*time.Minute))
			h.fake.Deliver(precMailbox, "Archive", "m-after", t0.Add(45*time.Minute))

			out, err := h.run(t, CheckRecreateSubscription, map[string]any{
				"resource": tc.resource, "change_type": "created", "notification_url": precNotify,
				"client_state": precState, "since": t0.Format(time.RFC3339),
			}, 10*time.Second)
			require.NoError(t, err)
			var row Recreation
			decode(t, out, &row)
			require.True(t, row.Reconciled)
			var ids []string
			for _, m := range row.Reconcile.Missed {
				ids = append(ids, m.ID)
			}
			assert.Equal(t, tc.want, ids)
			assert.Equal(t, tc.scope, row.Reconcile.Scope)
			assert.Equal(t, tc.folder, row.Reconcile.Folder)
			if tc.scope == "mailbox" {
				assert.Contains(t, row.Reconcile.Note, "every folder")
				list := h.fake.GraphRequests(http.MethodGet, "/users/"+precMailbox+"/messages")
				require.NotEmpty(t, list)
				assert.Equal(t, "receivedDateTime ge 2026-05-15T00:05:00Z and receivedDateTime lt 2026-05-15T00:35:00Z", list[0].Query("$filter"))
			}
		})
	}
}

// "Deleted by Graph" is what GET /subscriptions/{id} answering 404 says, and
// nothing else: a 503 is an error, not a deletion.
func TestSubscriptionLookup(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 15, 0, 5, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		present bool
		fault   *graphfake.Fault
		status  string
		errIs   error
	}{
		{name: "live", present: true, status: "live"},
		{name: "404: deleted", status: "deleted"},
		{name: "503: unknown, not deleted", present: true,
			fault: &graphfake.Fault{Method: http.MethodGet, Path: "/subscriptions/", Times: -1}, errIs: incident.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock(t0)
			h := newHarness(t, []graphfake.Option{graphfake.WithClock(clk.Now)}, nil, WithClock(clk.Now))
			if tc.present {
				h.fake.PutSubscription(graphfake.Subscription{ID: "sub-1", Resource: "users/" + precMailbox + "/messages",
					ChangeType: "created", NotificationURL: precNotify, Expiration: t0.Add(40 * time.Minute)})
			}
			if tc.fault != nil {
				h.fake.AddFault(*tc.fault)
			}
			out, err := h.run(t, CheckSubscriptionLookup, map[string]any{"subscription_id": "sub-1"}, 10*time.Second)
			if tc.errIs != nil {
				require.ErrorIs(t, err, tc.errIs)
				return
			}
			require.NoError(t, err)
			var row SubscriptionLookup
			decode(t, out, &row)
			assert.Equal(t, tc.status, row.Status)
			if tc.status == "deleted" {
				assert.Equal(t, http.StatusNotFound, row.HTTPStatus)
				assert.NotEmpty(t, row.RequestID)
			} else {
				assert.Equal(t, 40, row.ExpiresInMinutes)
			}
		})
	}
}

// A create that may have been processed (504, a lost connection) is not posted
// again before the subscriptions are listed: the one it made is adopted, and only
// when Graph lists none is the POST repeated. One subscription comes of it.
func TestRecreateNeverPostsBlindly(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 15, 0, 5, 0, 0, time.UTC)
	resource := "users/" + precMailbox + "/mailFolders('Inbox')/messages"
	for _, tc := range []struct {
		name     string
		faults   []graphfake.Fault
		existing bool
		posts    int
		subs     int
		adopted  bool
		errIs    error
		errText  string
	}{
		{name: "504 after Graph created it: adopted", posts: 1, subs: 1, adopted: true,
			faults: []graphfake.Fault{{Method: http.MethodPost, Path: "/subscriptions", Times: 1, Status: http.StatusGatewayTimeout, AfterProcessing: true}}},
		{name: "connection lost after Graph created it: adopted", posts: 1, subs: 1, adopted: true,
			faults: []graphfake.Fault{{Method: http.MethodPost, Path: "/subscriptions", Times: 1, Reset: true, AfterProcessing: true}}},
		{name: "504 before Graph acted: listed none, posted again", posts: 2, subs: 1,
			faults: []graphfake.Fault{{Method: http.MethodPost, Path: "/subscriptions", Times: 1, Status: http.StatusGatewayTimeout}}},
		{name: "503: refused, retried at once", posts: 3, subs: 1,
			faults: []graphfake.Fault{{Method: http.MethodPost, Path: "/subscriptions", Times: 2}}},
		{name: "a live one to the same resource and URL: nothing created", existing: true, posts: 0, subs: 1,
			errIs: incident.ErrConflict, errText: "already exists"},
		{name: "cannot list: nothing created", posts: 0, subs: 0, errText: "before creating one",
			faults: []graphfake.Fault{{Method: http.MethodGet, Path: "/subscriptions", Times: -1, Status: http.StatusGatewayTimeout}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock(t0)
			h := newHarness(t, []graphfake.Option{graphfake.WithClock(clk.Now)}, nil, WithClock(clk.Now))
			if tc.existing {
				h.fake.PutSubscription(graphfake.Subscription{ID: "app-own", Resource: resource, ChangeType: "created",
					NotificationURL: precNotify, Expiration: t0.Add(time.Hour)})
			}
			for _, f := range tc.faults {
				h.fake.AddFault(f)
			}
			out, err := h.run(t, CheckRecreateSubscription, map[string]any{
				"resource": resource, "change_type": "created", "notification_url": precNotify,
				"client_state": precState, "reconcile": false,
			}, 20*time.Second)
			assert.Len(t, h.fake.GraphRequests(http.MethodPost, "/subscriptions"), tc.posts)
			assert.Len(t, h.fake.Subscriptions(), tc.subs)
			if tc.errIs != nil || tc.errText != "" {
				require.Error(t, err)
				if tc.errIs != nil {
					assert.ErrorIs(t, err, tc.errIs)
				}
				assert.ErrorContains(t, err, tc.errText)
				return
			}
			require.NoError(t, err)
			var row Recreation
			decode(t, out, &row)
			assert.Equal(t, tc.adopted, row.Adopted)
			assert.Equal(t, h.fake.Subscriptions()[0].ID, row.SubscriptionID)
			if tc.adopted {
				assert.Contains(t, row.Note, "adopted")
			}
		})
	}
}

// Renewals keep failing before expiry: replace_live creates the new subscription
// while the old one lives, then deletes the old one; nothing lapsed.
func TestRecreateBeforeExpiry(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 15, 0, 5, 0, 0, time.UTC)
	resource := "users/" + precMailbox + "/mailFolders('Inbox')/messages"
	for _, tc := range []struct {
		name     string
		replace  bool
		errIs    error
		replaced bool
	}{
		{name: "without replace_live: renew instead", errIs: incident.ErrConflict},
		{name: "replace_live: new first, then the old deleted", replace: true, replaced: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock(t0)
			h := newHarness(t, []graphfake.Option{graphfake.WithClock(clk.Now)}, nil, WithClock(clk.Now))
			h.fake.PutSubscription(graphfake.Subscription{ID: "old-sub", Resource: resource, ChangeType: "created",
				NotificationURL: precNotify, LifecycleNotificationURL: precNotify, Expiration: t0.Add(40 * time.Minute)})
			h.fake.AddFault(graphfake.Fault{Method: http.MethodPatch, Path: "/subscriptions/", Times: -1})
			out, err := h.run(t, CheckRecreateSubscription, map[string]any{
				"subscription_id": "old-sub", "client_state": precState, "replace_live": tc.replace,
			}, 20*time.Second)
			if tc.errIs != nil {
				require.ErrorIs(t, err, tc.errIs)
				assert.Empty(t, h.fake.GraphRequests(http.MethodPost, "/subscriptions"))
				return
			}
			require.NoError(t, err)
			var row Recreation
			decode(t, out, &row)
			assert.Equal(t, tc.replaced, row.Replaced)
			assert.True(t, row.OldDeleted)
			assert.False(t, row.Reconciled, "no lapse")
			subs := h.fake.Subscriptions()
			require.Len(t, subs, 1)
			assert.Equal(t, row.SubscriptionID, subs[0].ID)
			assert.Equal(t, precNotify, subs[0].LifecycleNotificationURL, "the lifecycle URL carries over")
			posts := h.fake.GraphRequests(http.MethodPost, "/subscriptions")
			deletes := h.fake.GraphRequests(http.MethodDelete, "/subscriptions/old-sub")
			require.Len(t, posts, 1)
			require.Len(t, deletes, 1)
			assert.True(t, posts[0].Time.Before(deletes[0].Time), "created before the old one went")
		})
	}
}
