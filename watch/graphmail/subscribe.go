package graphmail

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/executors/graph"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/internal/backoff"
	"github.com/ndrbot/ndrbot/store"
)

// Notifications mode: a Graph change-notification subscription on the folder makes
// Graph POST to the bot when a message arrives; each notification runs a delta round
// at once. The delta query stays the source of truth — a notification only says
// "look now" — so a missed notification, or a subscription that lapsed, costs
// latency, never messages: the next round reads everything since the stored cursor.

// SubscriberOptions configure a Subscriber.
type SubscriberOptions struct {
	Store store.WatchStore
	// Key names the watch in the store (Source.Key).
	Key string
	// NotificationURL is the public https URL Graph posts to (also used for lifecycle
	// notifications); ClientState is the secret Graph echoes in each notification.
	NotificationURL string
	ClientState     string
	// Poke runs a delta round now: after a (re)created subscription it reconciles what
	// arrived while there was none.
	Poke func()
	// Thread and Channel receive the notice when renewals keep failing as expiry nears.
	Thread  commands.Thread
	Channel string
	// Lifetime asked for each subscription (default: the resource's maximum, 10070
	// minutes for Outlook messages, less 10 minutes of clock skew).
	Lifetime time.Duration
	// RenewBefore: renewal starts when less than this is left (default half the
	// lifetime: days of room for retries). AlertBefore: failing renewals post a notice
	// when less than this is left (default a quarter of the lifetime, at most 24h).
	RenewBefore time.Duration
	AlertBefore time.Duration
	// RecreateBefore: when renewals still fail with less than this left, a new
	// subscription replaces the old one before it lapses (default half AlertBefore),
	// rather than after.
	RecreateBefore time.Duration
	// Check is how often the subscription is looked at (default 1m); failed renewals
	// are retried with backoff from RetryMin to RetryMax (default 1m, 15m).
	Check    time.Duration
	RetryMin time.Duration
	RetryMax time.Duration
	Now      func() time.Time
	Log      *slog.Logger
}

// Subscriber keeps the watch's subscription alive: it creates one, renews it well
// before expiry with retries, says so in the alert channel when renewal keeps failing
// as expiry approaches, replaces it before it lapses when renewals still fail near
// expiry, and recreates it (then reconciles by delta) after a lapse. It never posts a
// subscription without first looking for one it already made (a 504 or a lost
// connection may have created it), and calls one deleted only when GET
// /subscriptions/{id} answers 404.
type Subscriber struct {
	src      *Source
	o        SubscriberOptions
	resource string
	wake     chan struct{}

	mu      sync.Mutex
	force   string // "renew" or "removed", asked by a lifecycle notification
	current string // the subscription id in the store, for lifecycle notifications
}

// NewSubscriber returns the subscription keeper of the source's folder.
func (s *Source) NewSubscriber(o SubscriberOptions) (*Subscriber, error) {
	switch {
	case o.Store == nil || o.Key == "":
		return nil, errors.New("watch subscriber: store and key are required")
	case o.NotificationURL == "" || o.ClientState == "":
		return nil, errors.New("watch subscriber: notification URL and client state are required")
	case len(o.ClientState) > 128:
		return nil, errors.New("watch subscriber: client state longer than 128 characters")
	}
	if u, err := url.Parse(o.NotificationURL); err != nil || u.Scheme != "https" {
		return nil, fmt.Errorf("watch subscriber: notification URL %q is not https", o.NotificationURL)
	}
	resource := "users/" + s.o.Mailbox + "/mailFolders('" + s.o.Folder + "')/messages"
	if o.Lifetime <= 0 {
		o.Lifetime = time.Duration(graph.MaxLifetimeMinutes(resource))*time.Minute - 10*time.Minute
	}
	if o.RenewBefore <= 0 {
		o.RenewBefore = o.Lifetime / 2
	}
	if o.AlertBefore <= 0 {
		o.AlertBefore = min(o.Lifetime/4, 24*time.Hour)
	}
	if o.RecreateBefore <= 0 {
		o.RecreateBefore = o.AlertBefore / 2
	}
	if o.Check <= 0 {
		o.Check = time.Minute
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Minute
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 15 * time.Minute
	}
	if o.Now == nil {
		o.Now = s.o.Now
	}
	if o.Log == nil {
		o.Log = s.o.Log
	}
	if o.Poke == nil {
		o.Poke = func() {}
	}
	o.Log = o.Log.With("component", "watch-subscription", "watch", o.Key)
	return &Subscriber{src: s, o: o, resource: resource, wake: make(chan struct{}, 1)}, nil
}

// Resource is what the subscription watches.
func (m *Subscriber) Resource() string { return m.resource }

// Lifecycle handles a lifecycle notification for subscriptionID, as "Reduce
// missing subscriptions and change notifications" asks
// (https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events):
//   - reauthorizationRequired: renew now (a PATCH of expirationDateTime also
//     reauthorizes);
//   - subscriptionRemoved: read the subscription (GET /subscriptions/{id}); on 404
//     recreate it and reconcile, otherwise renew it;
//   - missed: resynchronise — a delta round now.
//
// A notification about another subscription than the watch's own (an old one it
// replaced) changes nothing but a delta round for missed.
func (m *Subscriber) Lifecycle(event, subscriptionID string) {
	m.mu.Lock()
	current := m.current
	m.mu.Unlock()
	other := subscriptionID != "" && current != "" && subscriptionID != current
	switch event {
	case "missed":
		m.o.Poke()
	case "reauthorizationRequired", "subscriptionRemoved":
		if other {
			m.o.Log.Info("lifecycle notification for another subscription ignored", "event", event, "subscription", subscriptionID, "current", current)
			return
		}
		if event == "subscriptionRemoved" {
			m.ask("removed")
		} else {
			m.ask("renew")
		}
	default:
		m.o.Log.Warn("unknown lifecycle event ignored", "event", event, "subscription", subscriptionID)
	}
}

func (m *Subscriber) ask(what string) {
	m.mu.Lock()
	if m.force != "removed" {
		m.force = what
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Subscriber) setCurrent(id string) {
	m.mu.Lock()
	m.current = id
	m.mu.Unlock()
}

// Run keeps the subscription until ctx ends.
func (m *Subscriber) Run(ctx context.Context) error {
	for {
		if err := m.Tick(ctx); err != nil && ctx.Err() == nil {
			m.o.Log.Warn("subscription", "err", err)
		}
		t := time.NewTimer(m.o.Check)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-m.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// Tick looks at the subscription once: create it when there is none or it lapsed,
// renew it when it is due (or asked to), retrying failures with backoff.
func (m *Subscriber) Tick(ctx context.Context) error {
	now := m.o.Now()
	m.mu.Lock()
	force := m.force
	m.force = ""
	m.mu.Unlock()
	rec, err := m.o.Store.WatchSubscription(ctx, m.o.Key)
	switch {
	case errors.Is(err, incident.ErrNotFound):
		return m.create(ctx, store.WatchSubscription{Watch: m.o.Key}, false)
	case err != nil:
		return err
	}
	m.setCurrent(rec.SubscriptionID)
	if force == "removed" && rec.State != store.SubscriptionLapsed && now.Before(rec.ExpiresAt) {
		// Graph says it removed the subscription: believe the 404, not the message.
		gone, err := m.gone(ctx, rec.SubscriptionID)
		switch {
		case err != nil:
			m.ask("removed") // look again next tick
			return fmt.Errorf("reading the subscription after a subscriptionRemoved notification: %w", err)
		case gone:
			return m.lapse(ctx, rec, "deleted by Graph: GET /subscriptions/"+rec.SubscriptionID+" answered 404 after a subscriptionRemoved lifecycle notification")
		}
		m.o.Log.Info("subscriptionRemoved, but Graph still has the subscription: renewing it", "subscription", rec.SubscriptionID)
		force = "renew"
	}
	switch {
	case rec.State == store.SubscriptionLapsed || !now.Before(rec.ExpiresAt):
		if rec.State != store.SubscriptionLapsed {
			return m.lapse(ctx, rec, "expired "+rec.ExpiresAt.UTC().Format(time.RFC3339))
		}
		if rec.Failures > 0 && now.Before(m.retryAt(rec)) {
			return nil
		}
		return m.create(ctx, rec, true)
	case force == "renew" || rec.ExpiresAt.Sub(now) <= m.o.RenewBefore:
		if force == "" && rec.Failures > 0 && now.Before(m.retryAt(rec)) {
			return nil
		}
		return m.renew(ctx, rec)
	}
	return nil
}

// lapse records the subscription as lapsed for why, then recreates it at once,
// whatever renewals failed before.
func (m *Subscriber) lapse(ctx context.Context, rec store.WatchSubscription, why string) error {
	rec.State, rec.Failures, rec.LastError = store.SubscriptionLapsed, 0, why
	m.o.Log.Warn("subscription lapsed; recreating it and reconciling by delta", "subscription", rec.SubscriptionID, "why", why)
	if err := m.o.Store.PutWatchSubscription(ctx, rec); err != nil {
		return err
	}
	return m.create(ctx, rec, true)
}

// gone reads the subscription by id: true only when Graph answers 404.
func (m *Subscriber) gone(ctx context.Context, id string) (bool, error) {
	var sub subscription
	err := m.src.send(ctx, abs.GET, "/subscriptions/"+url.PathEscape(id), nil, &sub)
	var ge *graphError
	switch {
	case errors.As(err, &ge) && ge.status == http.StatusNotFound:
		return true, nil
	case err != nil:
		return false, err
	}
	return false, nil
}

// existing finds a live subscription of the app to the watch's resource that
// notifies the watch's URL (with the watch's clientState, when Graph shows it),
// other than except: one an earlier create made although its answer was lost.
func (m *Subscriber) existing(ctx context.Context, except string) (*subscription, error) {
	now := m.o.Now()
	path := "/subscriptions"
	for range 20 {
		var page struct {
			Value    []subscription `json:"value"`
			NextLink string         `json:"@odata.nextLink"`
		}
		if err := m.src.send(ctx, abs.GET, path, nil, &page); err != nil {
			return nil, err
		}
		for _, sub := range page.Value {
			if sub.ID == except || !sub.expiry(time.Time{}).After(now) || !graph.SameResource(sub.Resource, m.resource) ||
				sub.NotificationURL != m.o.NotificationURL || (sub.ClientState != "" && sub.ClientState != m.o.ClientState) {
				continue
			}
			return &sub, nil
		}
		if page.NextLink == "" {
			return nil, nil
		}
		u, err := m.src.client.CheckLink(page.NextLink)
		if err != nil {
			return nil, err
		}
		path = strings.TrimPrefix(u.String(), m.src.ep.GraphURL)
	}
	return nil, nil
}

// retryAt is when the next attempt after rec.Failures failures (kept in the store)
// may run: RetryMin·2^(Failures-1) after the last one, at most RetryMax, without
// jitter (one subscription per watch: there is no herd to spread).
func (m *Subscriber) retryAt(rec store.WatchSubscription) time.Time {
	return rec.UpdatedAt.Add(backoff.Policy{Base: m.o.RetryMin, Max: m.o.RetryMax}.Step(rec.Failures))
}

func (m *Subscriber) create(ctx context.Context, rec store.WatchSubscription, lapsed bool) error {
	now := m.o.Now()
	was := rec.SubscriptionID
	rec.Watch, rec.Resource = m.o.Key, m.resource
	fail := func(err error) error {
		rec.Failures++
		rec.LastError = err.Error()
		if rec.State == "" {
			rec.State = store.SubscriptionLapsed
		}
		if perr := m.o.Store.PutWatchSubscription(ctx, rec); perr != nil {
			return errors.Join(err, perr)
		}
		if rec.Failures >= 3 && rec.AlertedAt.IsZero() {
			m.notice(ctx, &rec, "critical", "NDR watch: cannot create its Graph subscription",
				fmt.Sprintf("%d attempts to subscribe to %s failed; the watch keeps polling every poll interval meanwhile. Last error: %s",
					rec.Failures, m.resource, rec.LastError))
		}
		return fmt.Errorf("creating the subscription: %w", err)
	}
	// Look before posting: an earlier create whose answer was lost (504, reset)
	// may have made one, and a second would double every notification.
	sub, err := m.existing(ctx, was)
	if err != nil {
		return fail(fmt.Errorf("looking for an existing subscription before creating one: %w", err))
	}
	adopted := sub != nil
	if sub == nil {
		exp := now.Add(m.o.Lifetime)
		body := map[string]any{
			"changeType": "created", "notificationUrl": m.o.NotificationURL, "lifecycleNotificationUrl": m.o.NotificationURL,
			"resource": m.resource, "expirationDateTime": exp.UTC().Format("2006-01-02T15:04:05Z"), "clientState": m.o.ClientState,
		}
		var created subscription
		err := m.src.send(ctx, abs.POST, "/subscriptions", body, &created)
		var ge *graphError
		if errors.As(err, &ge) && (ge.status == 0 || ge.status == http.StatusGatewayTimeout) {
			// The answer was lost, not the request: Graph may have created it.
			if found, lerr := m.existing(ctx, was); lerr == nil && found != nil {
				sub, adopted, err = found, true, nil
			}
		}
		if err != nil {
			return fail(err)
		}
		if sub == nil {
			created.ExpirationDateTime = created.expiry(exp).Format(time.RFC3339)
			sub = &created
		}
	}
	rec = store.WatchSubscription{Watch: m.o.Key, SubscriptionID: sub.ID, Resource: m.resource, ExpiresAt: sub.expiry(now.Add(m.o.Lifetime)),
		State: store.SubscriptionActive, RenewedAt: now}
	if err := m.o.Store.PutWatchSubscription(ctx, rec); err != nil {
		return err
	}
	m.setCurrent(sub.ID)
	m.o.Log.Info("subscription created", "subscription", sub.ID, "expires", rec.ExpiresAt, "replaces", was, "adopted", adopted)
	// Reconcile: what arrived while there was no subscription comes with the delta.
	m.o.Poke()
	if lapsed && was != "" {
		m.o.Log.Info("reconciling the lapse by delta", "old_subscription", was)
	}
	return nil
}

// replace creates the successor of a live subscription whose renewals keep failing
// close to its expiry, then deletes the old one: a lapse costs notifications, an
// overlap only a duplicate "look now".
func (m *Subscriber) replace(ctx context.Context, rec store.WatchSubscription) error {
	old := rec.SubscriptionID
	if err := m.create(ctx, rec, false); err != nil {
		return fmt.Errorf("replacing subscription %s before it lapses: %w", old, err)
	}
	if err := m.src.send(ctx, abs.DELETE, "/subscriptions/"+url.PathEscape(old), nil, nil); err != nil {
		var ge *graphError
		if !errors.As(err, &ge) || ge.status != http.StatusNotFound {
			m.o.Log.Warn("deleting the replaced subscription failed; it lapses at its expiry", "subscription", old, "err", err)
		}
	}
	now := m.o.Now()
	m.notice(ctx, &rec, "info", "NDR watch: Graph subscription replaced before expiry",
		fmt.Sprintf("Renewals of subscription %s kept failing (%d attempts; last error: %s) with %s left, so a new subscription replaced it before it lapsed. No notification was lost.",
			old, rec.Failures, rec.LastError, rec.ExpiresAt.Sub(now).Round(time.Minute)))
	return nil
}

func (m *Subscriber) renew(ctx context.Context, rec store.WatchSubscription) error {
	now := m.o.Now()
	exp := now.Add(m.o.Lifetime)
	var sub subscription
	err := m.src.send(ctx, abs.PATCH, "/subscriptions/"+url.PathEscape(rec.SubscriptionID),
		map[string]any{"expirationDateTime": exp.UTC().Format("2006-01-02T15:04:05Z")}, &sub)
	var ge *graphError
	if errors.As(err, &ge) && ge.status == http.StatusNotFound {
		// The PATCH's 404 is confirmed by a GET before the subscription is called
		// deleted: recreating a live one would double every notification.
		gone, gerr := m.gone(ctx, rec.SubscriptionID)
		if gerr == nil && gone {
			return m.lapse(ctx, rec, "deleted by Graph: PATCH and GET /subscriptions/"+rec.SubscriptionID+" answered 404")
		}
	}
	if err != nil {
		rec.Failures++
		rec.LastError = err.Error()
		rec.State = store.SubscriptionFailing
		left := rec.ExpiresAt.Sub(now)
		m.o.Log.Warn("renewal failed; retrying", "subscription", rec.SubscriptionID, "failures", rec.Failures,
			"expires_in", left.Round(time.Minute), "err", err)
		if left <= m.o.AlertBefore && rec.AlertedAt.IsZero() {
			m.notice(ctx, &rec, "critical", "NDR watch: Graph subscription renewal keeps failing",
				fmt.Sprintf("%d renewals of subscription %s failed; it expires at %s (in %s). The bot keeps retrying, then recreates it "+
					"and reconciles by delta; the watch keeps polling meanwhile. Last error: %s",
					rec.Failures, rec.SubscriptionID, rec.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"), left.Round(time.Minute), rec.LastError))
		}
		if perr := m.o.Store.PutWatchSubscription(ctx, rec); perr != nil {
			return errors.Join(err, perr)
		}
		if left <= m.o.RecreateBefore && left > 0 {
			// Renewals still fail this close to expiry: replace it now rather than
			// recreate it after the lapse.
			m.o.Log.Warn("renewals keep failing near expiry; replacing the subscription before it lapses",
				"subscription", rec.SubscriptionID, "expires_in", left.Round(time.Minute))
			if rerr := m.replace(ctx, rec); rerr != nil {
				return errors.Join(fmt.Errorf("renewing the subscription: %w", err), rerr)
			}
			return nil
		}
		return fmt.Errorf("renewing the subscription: %w", err)
	}
	if rec.State == store.SubscriptionFailing {
		m.o.Log.Info("renewal recovered", "subscription", rec.SubscriptionID, "after_failures", rec.Failures)
		if !rec.AlertedAt.IsZero() {
			m.notice(ctx, &rec, "info", "NDR watch: Graph subscription renewed again",
				fmt.Sprintf("Subscription %s renewed after %d failed attempts.", rec.SubscriptionID, rec.Failures))
		}
	}
	rec.ExpiresAt, rec.State, rec.Failures, rec.LastError, rec.RenewedAt, rec.AlertedAt =
		sub.expiry(exp), store.SubscriptionActive, 0, "", now, time.Time{}
	return m.o.Store.PutWatchSubscription(ctx, rec)
}

// notice posts to the alert channel and records that it did.
func (m *Subscriber) notice(ctx context.Context, rec *store.WatchSubscription, severity, title, text string) {
	if m.o.Thread == nil || m.o.Channel == "" {
		return
	}
	now := m.o.Now()
	key := fmt.Sprintf("watch-notice:%s:%s:%d", m.o.Key, severity, now.Unix())
	if err := m.o.Thread.Publish(ctx, commands.Message{Channel: m.o.Channel, TopLevel: true, Key: key,
		Notice: &commands.NoticeView{Severity: severity, Title: title, Text: text, At: now}}); err != nil {
		m.o.Log.Error("posting a notice", "err", err)
		return
	}
	if severity != "info" {
		rec.AlertedAt = now
	}
}

type subscription struct {
	ID                 string `json:"id"`
	ExpirationDateTime string `json:"expirationDateTime"`
	Resource           string `json:"resource"`
	NotificationURL    string `json:"notificationUrl"`
	ClientState        string `json:"clientState"`
}

func (s subscription) expiry(asked time.Time) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999Z"} {
		if t, err := time.Parse(layout, s.ExpirationDateTime); err == nil {
			return t.UTC()
		}
	}
	return asked
}

// graphError is a Graph error answer.
type graphError struct {
	status int
	msg    string
}

func (e *graphError) Error() string { return e.msg }

// send makes one JSON request to Graph and decodes the answer into out.
func (s *Source) send(ctx context.Context, method abs.HttpMethod, path string, body any, out any) error {
	u, err := url.Parse(s.ep.GraphURL + path)
	if err != nil {
		return err
	}
	ri := abs.NewRequestInformation()
	ri.Method = method
	ri.SetUri(*u)
	ri.Headers.TryAdd("Accept", "application/json")
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		ri.SetStreamContentAndContentType(b, "application/json")
	}
	b, err := s.client.Send(ctx, ri)
	if err != nil {
		e := describe(methodName(method)+" "+path, err)
		status := 0
		var oe *odataerrors.ODataError
		var ae *abs.ApiError
		switch {
		case errors.As(err, &oe):
			status = oe.ResponseStatusCode
		case errors.As(err, &ae):
			status = ae.ResponseStatusCode
		}
		return &graphError{status: status, msg: e.Error()}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decoding Graph's answer: %w", err)
		}
	}
	return nil
}

// NotificationHandler is the endpoint Graph posts change notifications to:
//
//   - POST ?validationToken=… (subscription creation): the token echoed as
//     text/plain, at once (Graph waits at most 10 s);
//   - POST {"value":[…]}: every notification's clientState is checked (in constant
//     time) against clientState, others are ignored; a valid change notification
//     calls onChange, a lifecycle notification onLifecycle(event, subscriptionID).
//     Both must not block; the answer is 202 Accepted within Graph's 3 s.
func NotificationHandler(clientState string, onChange func(), onLifecycle func(event, subscriptionID string), log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "watch-notifications")
	want := []byte(clientState)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if tok, ok := r.URL.Query()["validationToken"]; ok {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusOK)
			if len(tok) > 0 {
				_, _ = io.WriteString(w, tok[0])
			}
			return
		}
		raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		var batch struct {
			Value []struct {
				SubscriptionID string `json:"subscriptionId"`
				ClientState    string `json:"clientState"`
				ChangeType     string `json:"changeType"`
				LifecycleEvent string `json:"lifecycleEvent"`
			} `json:"value"`
		}
		if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&batch); err != nil {
			http.Error(w, "not a notification", http.StatusBadRequest)
			return
		}
		changed, refused := false, 0
		for _, n := range batch.Value {
			if subtle.ConstantTimeCompare([]byte(n.ClientState), want) != 1 {
				refused++
				continue
			}
			if n.LifecycleEvent != "" {
				log.Info("lifecycle notification", "event", n.LifecycleEvent, "subscription", n.SubscriptionID)
				if onLifecycle != nil {
					onLifecycle(n.LifecycleEvent, n.SubscriptionID)
				}
				continue
			}
			changed = true
		}
		if refused > 0 {
			log.Warn("notifications with a wrong clientState ignored", "count", refused, "remote", r.RemoteAddr)
		}
		if changed && onChange != nil {
			onChange()
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

func methodName(m abs.HttpMethod) string {
	switch m {
	case abs.POST:
		return "POST"
	case abs.PATCH:
		return "PATCH"
	case abs.DELETE:
		return "DELETE"
	}
	return "GET"
}
