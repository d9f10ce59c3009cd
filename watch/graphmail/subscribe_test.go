package graphmail_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
	"github.com/ndrbot/ndrbot/watch"
	"github.com/ndrbot/ndrbot/watch/graphmail"
)

const clientState = "wAtCh-cl1ent-state"

func TestNotificationHandler(t *testing.T) {
	var changes atomic.Int32
	var mu sync.Mutex
	var events []string
	h := graphmail.NotificationHandler(clientState, func() { changes.Add(1) }, func(e, id string) {
		mu.Lock()
		events = append(events, e+" "+id)
		mu.Unlock()
	}, nil)
	post := func(query, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/graph/notify"+query, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	// The validation handshake: the token, decoded, as text/plain.
	token := "Validation: Testing client application reachability for subscription Request-Id: 2f4b0c5e-<&>"
	w := post("?validationToken="+url.QueryEscape(token), "")
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, token, w.Body.String())
	assert.True(t, strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain"))
	assert.Zero(t, changes.Load())

	note := func(state, lifecycle string) string {
		lc := ""
		if lifecycle != "" {
			lc = `,"lifecycleEvent":"` + lifecycle + `"`
		}
		return `{"value":[{"subscriptionId":"7f105c7d-2dc5-4530-97cd-4e7ae6534c07","subscriptionExpirationDateTime":"2026-11-30T10:00:00.0000000Z",` +
			`"changeType":"created","resource":"Users/postmaster@contoso.com/Messages/AAMkAD","clientState":"` + state + `","tenantId":"t"` + lc + `}]}`
	}
	w = post("", note(clientState, ""))
	assert.Equal(t, http.StatusAccepted, w.Code)
	assert.EqualValues(t, 1, changes.Load(), "a valid notification runs a delta round")

	w = post("", note("forged", ""))
	assert.Equal(t, http.StatusAccepted, w.Code)
	assert.EqualValues(t, 1, changes.Load(), "a wrong clientState is ignored")

	w = post("", note(clientState, "reauthorizationRequired"))
	assert.Equal(t, http.StatusAccepted, w.Code)
	assert.EqualValues(t, 1, changes.Load())
	assert.Equal(t, []string{"reauthorizationRequired 7f105c7d-2dc5-4530-97cd-4e7ae6534c07"}, events, "with the subscription it is about")
	post("", note("forged", "subscriptionRemoved"))
	assert.Len(t, events, 1, "forged lifecycle events are ignored too")

	assert.Equal(t, http.StatusBadRequest, post("", "{").Code)
	r := httptest.NewRequest(http.MethodGet, "/graph/notify", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
}

type tclock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *tclock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *tclock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type notices struct {
	mu   sync.Mutex
	msgs []commands.Message
}

func (n *notices) Publish(_ context.Context, m commands.Message) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.msgs = append(n.msgs, m)
	return nil
}

func (n *notices) list() []commands.NoticeView {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []commands.NoticeView
	for _, m := range n.msgs {
		out = append(out, *m.Notice)
	}
	return out
}

type subRig struct {
	fake  *graphfake.Server
	clock *tclock
	src   *graphmail.Source
	st    store.Store
	sub   *graphmail.Subscriber
	pokes atomic.Int32
	out   *notices
}

func newSubRig(t *testing.T) *subRig {
	r := &subRig{clock: &tclock{t: time.Now().UTC().Truncate(time.Second)}, out: &notices{}}
	r.fake = graphfake.New(t, graphfake.WithClientSecret(secret), graphfake.WithClock(r.clock.Now))
	var err error
	r.src, err = graphmail.New("graph", target(r.fake), graphmail.Options{Mailbox: mailbox, Now: r.clock.Now})
	require.NoError(t, err)
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ndrbot.db"), store.Options{Now: r.clock.Now})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	r.st = st
	r.sub, err = r.src.NewSubscriber(graphmail.SubscriberOptions{Store: st, Key: r.src.Key(),
		NotificationURL: "https://ndrbot.contoso.com/graph/notify", ClientState: clientState,
		Poke: func() { r.pokes.Add(1) }, Thread: r.out, Channel: "C0ESC", Now: r.clock.Now})
	require.NoError(t, err)
	return r
}

func (r *subRig) record(t *testing.T) store.WatchSubscription {
	t.Helper()
	rec, err := r.st.WatchSubscription(context.Background(), r.src.Key())
	require.NoError(t, err)
	return rec
}

func (r *subRig) patches() int { return len(r.fake.GraphRequests(http.MethodPatch, "/subscriptions/")) }

// Created, renewed well before expiry, retried with backoff while Graph answers 503,
// a notice when renewal keeps failing as expiry nears, renewed again when it clears.
func TestSubscriptionRenewal(t *testing.T) {
	r := newSubRig(t)
	ctx := context.Background()
	require.NoError(t, r.sub.Tick(ctx))
	subs := r.fake.Subscriptions()
	require.Len(t, subs, 1)
	s := subs[0]
	assert.Equal(t, "users/postmaster@contoso.com/mailFolders('inbox')/messages", s.Resource)
	assert.Equal(t, "created", s.ChangeType)
	assert.Equal(t, "https://ndrbot.contoso.com/graph/notify", s.NotificationURL)
	assert.Equal(t, clientState, s.ClientState)
	assert.WithinDuration(t, r.clock.Now().Add(10060*time.Minute), s.Expiration, time.Minute, "Outlook's maximum less a margin")
	rec := r.record(t)
	assert.Equal(t, store.SubscriptionActive, rec.State)
	assert.Equal(t, s.ID, rec.SubscriptionID)
	assert.EqualValues(t, 1, r.pokes.Load(), "a new subscription reconciles by delta")

	// Not due yet: nothing happens.
	r.clock.Advance(24 * time.Hour)
	require.NoError(t, r.sub.Tick(ctx))
	assert.Zero(t, r.patches())

	// Past half its lifetime: renewed.
	r.clock.Advance(3 * 24 * time.Hour)
	require.NoError(t, r.sub.Tick(ctx))
	assert.Equal(t, 1, r.patches())
	rec = r.record(t)
	assert.WithinDuration(t, r.clock.Now().Add(10060*time.Minute), rec.ExpiresAt, time.Minute)

	// Half a lifetime later Graph answers 503 (no Retry-After) to every renewal.
	r.clock.Advance(3*24*time.Hour + 12*time.Hour)
	r.fake.AddFault(graphfake.Fault{Method: http.MethodPatch, Path: "/subscriptions", Times: -1})
	require.Error(t, r.sub.Tick(ctx))
	rec = r.record(t)
	assert.Equal(t, store.SubscriptionFailing, rec.State)
	assert.Equal(t, 1, rec.Failures)
	assert.Contains(t, rec.LastError, "503")
	assert.Empty(t, r.out.list(), "days before expiry: retry quietly")
	before := r.patches()
	require.NoError(t, r.sub.Tick(ctx), "inside the backoff: no attempt")
	assert.Equal(t, before, r.patches())

	// Retries continue with backoff; as expiry comes within a day, one notice.
	for range 40 {
		r.clock.Advance(90 * time.Minute)
		_ = r.sub.Tick(ctx)
	}
	rec = r.record(t)
	assert.Equal(t, store.SubscriptionFailing, rec.State)
	assert.Greater(t, rec.Failures, 20)
	ns := r.out.list()
	require.Len(t, ns, 1, "one notice, not one per failure")
	assert.Equal(t, "critical", ns[0].Severity)
	assert.Contains(t, ns[0].Title, "renewal keeps failing")
	assert.Contains(t, ns[0].Text, rec.SubscriptionID)

	// Graph recovers before expiry: renewed, and the channel is told.
	r.fake.ClearFaults()
	r.clock.Advance(20 * time.Minute)
	require.NoError(t, r.sub.Tick(ctx))
	rec = r.record(t)
	assert.Equal(t, store.SubscriptionActive, rec.State)
	assert.Zero(t, rec.Failures)
	assert.True(t, rec.ExpiresAt.After(r.clock.Now().Add(6*24*time.Hour)))
	ns = r.out.list()
	require.Len(t, ns, 2)
	assert.Equal(t, "info", ns[1].Severity)
	assert.Len(t, r.fake.Subscriptions(), 1, "renewed, not recreated")
}

// A subscription that lapsed (renewals failed until it expired) is recreated, and
// the delta round it triggers recovers exactly the messages that arrived meanwhile.
func TestSubscriptionLapseRecreateAndReconcile(t *testing.T) {
	r := newSubRig(t)
	ctx := context.Background()
	w, err := watch.New(watch.Options{Key: r.src.Key(), Source: r.src, Store: r.st, Thread: r.out, Channel: "C0ESC", Now: r.clock.Now})
	require.NoError(t, err)
	require.NoError(t, r.sub.Tick(ctx))
	first := r.record(t).SubscriptionID
	r.fake.Deliver(mailbox, "inbox", "before", r.clock.Now())
	_, err = w.Poll(ctx)
	require.NoError(t, err)

	// Graph answers 503 to renewals, and then to creations, past the expiry; mail
	// keeps arriving with no one notified.
	r.fake.AddFault(graphfake.Fault{Path: "/subscriptions", Times: -1})
	for i := range 100 {
		r.clock.Advance(2 * time.Hour)
		_ = r.sub.Tick(ctx)
		if i%10 == 0 {
			r.fake.Deliver(mailbox, "inbox", fmt.Sprintf("missed-%d", i), r.clock.Now())
		}
	}
	rec := r.record(t)
	require.Equal(t, store.SubscriptionLapsed, rec.State)
	require.True(t, r.clock.Now().After(rec.ExpiresAt))
	ns := r.out.list()
	require.NotEmpty(t, ns)
	assert.Contains(t, ns[0].Title, "renewal keeps failing", "the channel was told before the lapse")

	r.fake.ClearFaults()
	r.clock.Advance(16 * time.Minute) // past the retry backoff
	pokes := r.pokes.Load()
	require.NoError(t, r.sub.Tick(ctx))
	rec = r.record(t)
	assert.Equal(t, store.SubscriptionActive, rec.State)
	assert.NotEqual(t, first, rec.SubscriptionID, "recreated")
	assert.Equal(t, pokes+1, r.pokes.Load(), "and a delta round is asked for")

	res, err := w.Poll(ctx)
	require.NoError(t, err)
	assert.Equal(t, 10, res.New, "exactly the 10 messages of the lapse")
	res, err = w.Poll(ctx)
	require.NoError(t, err)
	assert.Zero(t, res.New)
}

// Lifecycle notifications, handled as
// https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events
// asks, for the watch's own subscription only; subscriptionRemoved recreates only
// once GET /subscriptions/{id} answers 404 (it used to recreate on the word of the
// notification alone).
func TestSubscriptionLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name      string
		event     string
		other     bool // about another subscription than the watch's
		removed   bool // Graph really deleted it
		patches   int
		recreated bool
		pokes     int32
	}{
		{name: "reauthorizationRequired renews now", event: "reauthorizationRequired", patches: 1},
		{name: "reauthorizationRequired for another subscription: nothing", event: "reauthorizationRequired", other: true},
		{name: "subscriptionRemoved, GET answers 404: recreated and reconciled", event: "subscriptionRemoved", removed: true, recreated: true, pokes: 1},
		{name: "subscriptionRemoved, Graph still has it: renewed, not duplicated", event: "subscriptionRemoved", patches: 1},
		{name: "subscriptionRemoved for another subscription: nothing", event: "subscriptionRemoved", other: true, removed: true},
		{name: "missed resynchronises by delta", event: "missed", pokes: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSubRig(t)
			ctx := context.Background()
			require.NoError(t, r.sub.Tick(ctx))
			id := r.record(t).SubscriptionID
			pokes := r.pokes.Load()
			if tc.removed {
				r.fake.RemoveSubscription(id)
			}
			about := id
			if tc.other {
				about = "00000000-dead-4bee-8f00-000000000000"
			}
			r.sub.Lifecycle(tc.event, about)
			require.NoError(t, r.sub.Tick(ctx))
			assert.Equal(t, tc.patches, r.patches())
			rec := r.record(t)
			if tc.recreated {
				assert.NotEqual(t, id, rec.SubscriptionID)
				assert.Len(t, r.fake.Subscriptions(), 1)
			} else {
				assert.Equal(t, id, rec.SubscriptionID)
			}
			assert.Equal(t, store.SubscriptionActive, rec.State)
			assert.Equal(t, pokes+tc.pokes, r.pokes.Load())
			if tc.event == "subscriptionRemoved" && !tc.other {
				assert.Len(t, r.fake.GraphRequests(http.MethodGet, "/subscriptions/"+id), 1, "read by id before deciding")
			}
		})
	}
}

// A PATCH answering 404 is not "deleted": the GET decides.
func TestSubscriptionRenewal404IsConfirmed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		removed   bool
		recreated bool
	}{
		{name: "GET finds it: a failed renewal, no duplicate"},
		{name: "GET answers 404: recreated", removed: true, recreated: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSubRig(t)
			ctx := context.Background()
			require.NoError(t, r.sub.Tick(ctx))
			id := r.record(t).SubscriptionID
			if tc.removed {
				r.fake.RemoveSubscription(id)
			}
			r.fake.AddFault(graphfake.Fault{Method: http.MethodPatch, Path: "/subscriptions/", Times: 1, Status: http.StatusNotFound, Code: "ResourceNotFound"})
			r.clock.Advance(4 * 24 * time.Hour) // renewal due
			err := r.sub.Tick(ctx)
			rec := r.record(t)
			if tc.recreated {
				require.NoError(t, err)
				assert.NotEqual(t, id, rec.SubscriptionID)
				return
			}
			require.Error(t, err)
			assert.Equal(t, id, rec.SubscriptionID)
			assert.Equal(t, store.SubscriptionFailing, rec.State)
			assert.Len(t, r.fake.Subscriptions(), 1)
		})
	}
}

// A create whose answer was lost (504, a dropped connection) is not posted again
// blindly: the subscription it made is found by resource and notification URL and
// adopted; when Graph made none, the next attempt looks first, then posts.
func TestSubscriptionCreateNeverBlind(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fault   graphfake.Fault
		adopted bool
	}{
		{name: "504 after Graph created it", adopted: true,
			fault: graphfake.Fault{Method: http.MethodPost, Path: "/subscriptions", Times: 1, Status: http.StatusGatewayTimeout, AfterProcessing: true}},
		{name: "connection lost after Graph created it", adopted: true,
			fault: graphfake.Fault{Method: http.MethodPost, Path: "/subscriptions", Times: 1, Reset: true, AfterProcessing: true}},
		{name: "504 before Graph acted",
			fault: graphfake.Fault{Method: http.MethodPost, Path: "/subscriptions", Times: 1, Status: http.StatusGatewayTimeout}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSubRig(t)
			ctx := context.Background()
			r.fake.AddFault(tc.fault)
			err := r.sub.Tick(ctx)
			posts := func() int { return len(r.fake.GraphRequests(http.MethodPost, "/subscriptions")) }
			if tc.adopted {
				require.NoError(t, err)
				assert.Equal(t, 1, posts())
				subs := r.fake.Subscriptions()
				require.Len(t, subs, 1)
				assert.Equal(t, subs[0].ID, r.record(t).SubscriptionID, "adopted")
				return
			}
			require.Error(t, err)
			assert.Empty(t, r.fake.Subscriptions())
			r.clock.Advance(2 * time.Minute)
			require.NoError(t, r.sub.Tick(ctx))
			assert.Equal(t, 2, posts())
			require.Len(t, r.fake.Subscriptions(), 1)
			var seq []string
			for _, q := range r.fake.GraphRequests("", "/subscriptions") {
				seq = append(seq, q.Method)
			}
			assert.Equal(t, []string{"GET", "POST", "GET", "GET", "POST"}, seq, "looked before each POST, and after the lost answer")
		})
	}
}

// Renewals keep failing as the expiry nears: the subscription is replaced before
// it lapses (it used to wait for the lapse, then recreate), the old one deleted, and
// the channel told.
func TestSubscriptionReplacedBeforeExpiry(t *testing.T) {
	r := newSubRig(t)
	ctx := context.Background()
	require.NoError(t, r.sub.Tick(ctx))
	first := r.record(t)
	r.fake.AddFault(graphfake.Fault{Method: http.MethodPatch, Path: "/subscriptions/", Times: -1})
	for r.clock.Now().Before(first.ExpiresAt) && r.record(t).SubscriptionID == first.SubscriptionID {
		r.clock.Advance(30 * time.Minute)
		_ = r.sub.Tick(ctx)
	}
	rec := r.record(t)
	require.NotEqual(t, first.SubscriptionID, rec.SubscriptionID, "replaced")
	assert.True(t, r.clock.Now().Before(first.ExpiresAt), "before the old one lapsed")
	assert.LessOrEqual(t, first.ExpiresAt.Sub(r.clock.Now()), 12*time.Hour, "inside the recreate margin (half the alert margin)")
	assert.Equal(t, store.SubscriptionActive, rec.State)
	subs := r.fake.Subscriptions()
	require.Len(t, subs, 1, "the old one deleted")
	assert.Equal(t, rec.SubscriptionID, subs[0].ID)
	ns := r.out.list()
	require.NotEmpty(t, ns)
	assert.Contains(t, ns[len(ns)-1].Title, "replaced before expiry")
	assert.Contains(t, ns[len(ns)-1].Text, "No notification was lost")
}

func TestSubscriberRejects(t *testing.T) {
	r := newSubRig(t)
	for name, o := range map[string]graphmail.SubscriberOptions{
		"no store":        {Key: "k", NotificationURL: "https://x.example/n", ClientState: "s"},
		"http url":        {Store: r.st, Key: "k", NotificationURL: "http://x.example/n", ClientState: "s"},
		"no client state": {Store: r.st, Key: "k", NotificationURL: "https://x.example/n"},
		"long state":      {Store: r.st, Key: "k", NotificationURL: "https://x.example/n", ClientState: strings.Repeat("s", 129)},
	} {
		_, err := r.src.NewSubscriber(o)
		assert.Error(t, err, name)
	}
}
