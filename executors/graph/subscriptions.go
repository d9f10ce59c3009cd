package graph

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/subscriptions"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
)

// Subscription is one row of the subscriptions check: a change-notification
// subscription of the app (GET /subscriptions). The clientState is never read into a
// row, and of the notification URLs only the host is shown.
type Subscription struct {
	ID                 string `json:"Id"`
	Resource           string `json:"Resource"`   // users/…/mailFolders('Inbox')/messages
	ChangeType         string `json:"ChangeType"` // created,updated
	ExpirationDateTime string `json:"ExpirationDateTime"`
	// ExpiresInMinutes is whole minutes until expiry, rounded down; negative once expired.
	ExpiresInMinutes int  `json:"ExpiresInMinutes"`
	Expired          bool `json:"Expired"`
	// InRenewalWindow: expired, or expiring within window_minutes.
	InRenewalWindow           bool   `json:"InRenewalWindow"`
	MaxMinutes                int    `json:"MaxMinutes"` // Graph's longest lifetime for the resource
	NotificationHost          string `json:"NotificationHost"`
	LifecycleNotificationHost string `json:"LifecycleNotificationHost"`
	ApplicationID             string `json:"ApplicationId"`
}

// DefaultRenewalWindow is the subscriptions check's default window_minutes: renew a
// day ahead, so a storm of 503s has hours of retries before anything lapses.
const DefaultRenewalWindow = 24 * 60

// renewalMargin keeps a renewal this far below Graph's maximum, so a clock a few
// minutes ahead of Graph's does not turn a renewal into a 400.
const renewalMargin = 5

func (e *Executor) subscriptionsBuilder(s *session) *subscriptions.SubscriptionsRequestBuilder {
	return subscriptions.NewSubscriptionsRequestBuilderInternal(map[string]string{}, s.adapter)
}

// listSubscriptions pages through GET /subscriptions.
func (e *Executor) listSubscriptions(ctx context.Context, s *session) ([]models.Subscriptionable, error) {
	var all []models.Subscriptionable
	b := e.subscriptionsBuilder(s)
	for range maxPages {
		var resp models.SubscriptionCollectionResponseable
		_, err := e.call(ctx, "GET /subscriptions", true, func(ctx context.Context) error {
			var err error
			resp, err = b.Get(ctx, nil)
			return err
		})
		if err != nil {
			return nil, err
		}
		if resp == nil {
			break
		}
		all = append(all, resp.GetValue()...)
		next := deref(resp.GetOdataNextLink())
		if next == "" {
			break
		}
		if _, err := e.checkLink(next); err != nil {
			return nil, err
		}
		b = b.WithUrl(next)
	}
	return all, nil
}

// subscriptions lists the app's subscriptions and their expiry.
//
// Params: window_minutes (default DefaultRenewalWindow).
func (e *Executor) subscriptions(ctx context.Context, s *session, p map[string]any) ([]Subscription, error) {
	window, err := executors.IntParam(p, "window_minutes", DefaultRenewalWindow, 0, 60*24*60)
	if err != nil {
		return nil, err
	}
	subs, err := e.listSubscriptions(ctx, s)
	if err != nil {
		return nil, err
	}
	now := e.now()
	rows := make([]Subscription, 0, len(subs))
	for _, sub := range subs {
		rows = append(rows, e.subscriptionRow(sub, now, window))
	}
	slices.SortFunc(rows, func(a, b Subscription) int { return a.ExpiresInMinutes - b.ExpiresInMinutes })
	return rows, nil
}

func (e *Executor) subscriptionRow(sub models.Subscriptionable, now time.Time, window int) Subscription {
	r := Subscription{
		ID: deref(sub.GetId()), Resource: deref(sub.GetResource()), ChangeType: deref(sub.GetChangeType()),
		NotificationHost:          urlHost(deref(sub.GetNotificationUrl())),
		LifecycleNotificationHost: urlHost(deref(sub.GetLifecycleNotificationUrl())),
		ApplicationID:             deref(sub.GetApplicationId()),
	}
	r.MaxMinutes = MaxLifetimeMinutes(r.Resource)
	if exp := sub.GetExpirationDateTime(); exp != nil {
		r.ExpirationDateTime = rfc3339(*exp)
		r.ExpiresInMinutes = minutesUntil(*exp, now)
		r.Expired = !exp.After(now)
		r.InRenewalWindow = r.Expired || exp.Sub(now) <= time.Duration(window)*time.Minute
	}
	return r
}

// minutesUntil is whole minutes from now to t, rounded down (−1 for 30 s ago).
func minutesUntil(t, now time.Time) int {
	return int(math.Floor(t.Sub(now).Minutes()))
}

// urlHost is the host of a URL, or "" — enough to tell which receiver a
// subscription notifies without showing a path that may carry a token.
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// MaxLifetimeMinutes is the longest expirationDateTime Graph accepts for a
// subscription to resource, from the subscription resource's documentation ("Maximum
// length of subscription per resource type"); Outlook's 10070 is the figure Graph's
// own error quotes ("Subscription expiration can only be 10070 minutes in the
// future"). Unknown resources get the shortest common lifetime, 4230.
func MaxLifetimeMinutes(resource string) int {
	r := strings.ToLower(strings.Trim(resource, "/"))
	parts := strings.Split(r, "/")
	switch {
	case strings.HasPrefix(r, "communications/presences"), parts[0] == "chats", parts[0] == "teams":
		return 60
	case strings.HasPrefix(r, "security/alerts"):
		return 43200
	case strings.HasPrefix(r, "communications/callrecords"):
		return 4230
	case (parts[0] == "users" || parts[0] == "me") && len(parts) > 1 && isOutlook(r):
		return 10070
	case (parts[0] == "users" || parts[0] == "groups") && len(parts) <= 2:
		return 41760 // users, users/{id}, groups, groups/{id}
	case parts[0] == "drives", parts[0] == "sites":
		return 42300
	}
	return 4230
}

func isOutlook(r string) bool {
	for _, seg := range []string{"/messages", "/mailfolders", "/events", "/calendar", "/contacts", "/contactfolders"} {
		if strings.Contains(r, seg) {
			return true
		}
	}
	return false
}

// getSubscription reads one subscription; a 404 comes back as a *RequestError
// wrapping incident.ErrNotFound. That 404 is the one evidence this package takes
// for "Graph deleted it": a subscription missing from GET /subscriptions may be
// another app's, or beyond a page (Get subscription,
// https://learn.microsoft.com/en-us/graph/api/subscription-get).
func (e *Executor) getSubscription(ctx context.Context, s *session, id string) (models.Subscriptionable, error) {
	var sub models.Subscriptionable
	_, err := e.call(ctx, "GET /subscriptions/{id}", true, func(ctx context.Context) error {
		var err error
		sub, err = e.subscriptionsBuilder(s).BySubscriptionId(id).Get(ctx, nil)
		return err
	})
	if err == nil && sub == nil {
		err = fmt.Errorf("GET /subscriptions/%s: empty answer", id)
	}
	return sub, err
}

// SubscriptionLookup is the row of the subscription-lookup check: one subscription
// read by id.
type SubscriptionLookup struct {
	SubscriptionID string `json:"SubscriptionId"`
	// Status is live, expired (Graph still has it, past its expiry) or deleted
	// (GET /subscriptions/{id} answered 404: Graph no longer has it).
	Status             string `json:"Status"`
	HTTPStatus         int    `json:"HTTPStatus"`
	Resource           string `json:"Resource"`
	ExpirationDateTime string `json:"ExpirationDateTime"`
	ExpiresInMinutes   int    `json:"ExpiresInMinutes"`
	NotificationHost   string `json:"NotificationHost"`
	RequestID          string `json:"RequestId"`
	ClientRequestID    string `json:"ClientRequestId"`
	Date               string `json:"Date"`
}

// lookup reads one subscription by id (GET /subscriptions/{id}). A 404 is an
// answer, the row with Status deleted; any other failure is the check's error, so
// nothing is called deleted on a 503.
//
// Params: subscription_id (required).
func (e *Executor) lookup(ctx context.Context, s *session, p map[string]any) (SubscriptionLookup, error) {
	id, ok, err := idParam(p, "subscription_id")
	if err != nil {
		return SubscriptionLookup{}, err
	}
	if !ok {
		return SubscriptionLookup{}, invalid("parameter %q is required", "subscription_id")
	}
	row := SubscriptionLookup{SubscriptionID: id}
	sub, err := e.getSubscription(ctx, s, id)
	var re *RequestError
	switch {
	case errors.As(err, &re) && re.Status == http.StatusNotFound:
		row.Status, row.HTTPStatus = "deleted", re.Status
		row.RequestID, row.ClientRequestID, row.Date = re.RequestID, re.ClientRequestID, rfc3339(re.Date)
		return row, nil
	case err != nil:
		return SubscriptionLookup{}, err
	}
	now := e.now()
	row.Status, row.HTTPStatus, row.Resource = "live", http.StatusOK, deref(sub.GetResource())
	row.NotificationHost = urlHost(deref(sub.GetNotificationUrl()))
	if exp := sub.GetExpirationDateTime(); exp != nil {
		row.ExpirationDateTime, row.ExpiresInMinutes = rfc3339(*exp), minutesUntil(*exp, now)
		if !exp.After(now) {
			row.Status = "expired"
		}
	}
	return row, nil
}

// patchExpiry sets a subscription's expirationDateTime (PATCH /subscriptions/{id}):
// the renewal. The same absolute time goes out on every attempt, so a retry is
// harmless.
func (e *Executor) patchExpiry(ctx context.Context, s *session, id string, exp time.Time) (models.Subscriptionable, callInfo, error) {
	var sub models.Subscriptionable
	info, err := e.call(ctx, "PATCH /subscriptions/{id}", true, func(ctx context.Context) error {
		body := models.NewSubscription()
		body.SetExpirationDateTime(&exp)
		var err error
		sub, err = e.subscriptionsBuilder(s).BySubscriptionId(id).Patch(ctx, body, nil)
		return err
	})
	return sub, info, err
}

// RenewalProbe is the row of the renewal-probe check.
type RenewalProbe struct {
	SubscriptionID     string `json:"SubscriptionId"`
	Resource           string `json:"Resource"`
	ExpirationDateTime string `json:"ExpirationDateTime"`
	ExpiresInMinutes   int    `json:"ExpiresInMinutes"`
	// Status is ok (Graph accepted the renewal), failed (it did not, after the retry
	// policy: see HTTPStatus, Code and the ids), or none (no subscription to probe).
	Status          string `json:"Status"`
	HTTPStatus      int    `json:"HTTPStatus"`
	Code            string `json:"Code"`
	Message         string `json:"Message"`
	Attempts        int    `json:"Attempts"`
	LatencyMs       int64  `json:"LatencyMs"`
	RequestID       string `json:"RequestId"`
	ClientRequestID string `json:"ClientRequestId"`
	Date            string `json:"Date"`
}

// renewalProbe exercises the renewal path without changing anything: it PATCHes a
// subscription's expirationDateTime to the value it already has. Graph handles that
// exactly like a renewal — same endpoint, same backend, reauthorisation included —
// so a 503 shows up here as it would in the app, but the expiry does not move:
// probing neither extends a subscription the app means to let lapse nor shortens one.
//
// Params: subscription_id (default: the live subscription that expires first).
func (e *Executor) renewalProbe(ctx context.Context, s *session, p map[string]any) (RenewalProbe, error) {
	id, ok, err := idParam(p, "subscription_id")
	if err != nil {
		return RenewalProbe{}, err
	}
	now := e.now()
	var sub models.Subscriptionable
	if ok {
		if sub, err = e.getSubscription(ctx, s, id); err != nil {
			return RenewalProbe{}, err
		}
	} else {
		subs, err := e.listSubscriptions(ctx, s)
		if err != nil {
			return RenewalProbe{}, err
		}
		for _, c := range subs {
			exp := c.GetExpirationDateTime()
			if exp == nil || !exp.After(now) {
				continue
			}
			if sub == nil || exp.Before(*sub.GetExpirationDateTime()) {
				sub = c
			}
		}
		if sub == nil {
			return RenewalProbe{Status: "none", Message: "the app has no live subscription to probe"}, nil
		}
	}
	row := RenewalProbe{SubscriptionID: deref(sub.GetId()), Resource: deref(sub.GetResource())}
	exp := sub.GetExpirationDateTime()
	if exp == nil {
		return RenewalProbe{}, fmt.Errorf("subscription %s has no expirationDateTime", row.SubscriptionID)
	}
	row.ExpirationDateTime, row.ExpiresInMinutes = rfc3339(*exp), minutesUntil(*exp, now)

	_, info, err := e.patchExpiry(ctx, s, row.SubscriptionID, *exp)
	row.Attempts, row.LatencyMs = info.Attempts, info.Latency.Milliseconds()
	var re *RequestError
	switch {
	case err == nil:
		row.Status, row.HTTPStatus = "ok", info.Status
		row.RequestID, row.ClientRequestID, row.Date = info.RequestID, info.ClientRequestID, rfc3339(info.Date)
	case errors.As(err, &re):
		row.Status, row.HTTPStatus, row.Code, row.Message = "failed", re.Status, re.Code, re.Message
		row.Attempts, row.RequestID, row.ClientRequestID, row.Date = re.Attempts, re.RequestID, re.ClientRequestID, rfc3339(re.Date)
	default:
		return RenewalProbe{}, err
	}
	return row, nil
}

// Renewal is the row of the renew-subscription relief.
type Renewal struct {
	SubscriptionID             string `json:"SubscriptionId"`
	Resource                   string `json:"Resource"`
	PreviousExpirationDateTime string `json:"PreviousExpirationDateTime"`
	ExpirationDateTime         string `json:"ExpirationDateTime"` // as Graph confirmed it
	ExpiresInMinutes           int    `json:"ExpiresInMinutes"`
	RequestedMinutes           int    `json:"RequestedMinutes"`
	// Clamped: the requested lifetime exceeded Graph's maximum for the resource
	// (less a safety margin) and was shortened.
	Clamped         bool   `json:"Clamped"`
	MaxMinutes      int    `json:"MaxMinutes"`
	Attempts        int    `json:"Attempts"`
	LatencyMs       int64  `json:"LatencyMs"`
	RequestID       string `json:"RequestId"`
	ClientRequestID string `json:"ClientRequestId"`
}

// renew extends a subscription: PATCH expirationDateTime = now + minutes, within
// Graph's maximum for its resource.
//
// Params: subscription_id (required), minutes (default: the resource's maximum less
// a 5-minute margin).
func (e *Executor) renew(ctx context.Context, s *session, p map[string]any) (Renewal, error) {
	id, ok, err := idParam(p, "subscription_id")
	if err != nil {
		return Renewal{}, err
	}
	if !ok {
		return Renewal{}, invalid("parameter %q is required", "subscription_id")
	}
	minutes, err := executors.IntParam(p, "minutes", 0, 0, 60*24*60)
	if err != nil {
		return Renewal{}, err
	}
	sub, err := e.getSubscription(ctx, s, id)
	if err != nil {
		var re *RequestError
		if errors.As(err, &re) && re.Status == 404 {
			return Renewal{}, fmt.Errorf("subscription %s no longer exists (GET /subscriptions/%s answered 404: Graph deleted it): recreate it: %w", id, id, err)
		}
		return Renewal{}, err
	}
	r := Renewal{SubscriptionID: id, Resource: deref(sub.GetResource())}
	if prev := sub.GetExpirationDateTime(); prev != nil {
		r.PreviousExpirationDateTime = rfc3339(*prev)
	}
	r.MaxMinutes = MaxLifetimeMinutes(r.Resource)
	r.RequestedMinutes, r.Clamped = lifetime(minutes, r.MaxMinutes)
	now := e.now().UTC().Truncate(time.Second)
	exp := now.Add(time.Duration(r.RequestedMinutes) * time.Minute)
	updated, info, err := e.patchExpiry(ctx, s, id, exp)
	if err != nil {
		return Renewal{}, err
	}
	confirmed := exp
	if updated != nil && updated.GetExpirationDateTime() != nil {
		confirmed = *updated.GetExpirationDateTime()
	}
	r.ExpirationDateTime, r.ExpiresInMinutes = rfc3339(confirmed), minutesUntil(confirmed, now)
	r.Attempts, r.LatencyMs, r.RequestID, r.ClientRequestID = info.Attempts, info.Latency.Milliseconds(), info.RequestID, info.ClientRequestID
	return r, nil
}

// lifetime picks the minutes to ask for: requested (0 = as long as allowed), never
// more than max less renewalMargin. clamped reports a shortened request.
func lifetime(requested, maxMinutes int) (minutes int, clamped bool) {
	limit := max(maxMinutes-renewalMargin, 1)
	if maxMinutes <= 2*renewalMargin {
		limit = maxMinutes - 1
	}
	switch {
	case requested <= 0:
		return limit, false
	case requested > limit:
		return limit, true
	}
	return requested, false
}

// Recreation is the row of the recreate-subscription relief.
type Recreation struct {
	OldSubscriptionID  string `json:"OldSubscriptionId"`
	SubscriptionID     string `json:"SubscriptionId"`
	Resource           string `json:"Resource"`
	ChangeType         string `json:"ChangeType"`
	NotificationHost   string `json:"NotificationHost"`
	ExpirationDateTime string `json:"ExpirationDateTime"`
	ExpiresInMinutes   int    `json:"ExpiresInMinutes"`
	Attempts           int    `json:"Attempts"`
	RequestID          string `json:"RequestId"`
	ClientRequestID    string `json:"ClientRequestId"`
	// Adopted: a POST answered 504 or lost its connection, and the subscription it
	// created was found by resource and notification URL instead of posting again.
	Adopted bool `json:"Adopted"`
	// Replaced: the old subscription was still live (renewals failing before its
	// expiry); the new one was created first, then the old one deleted (OldDeleted).
	Replaced   bool `json:"Replaced"`
	OldDeleted bool `json:"OldDeleted"`
	// Reconcile is the delta query over the lapse, when the resource is a mail folder
	// and reconcile was not turned off.
	Reconciled bool            `json:"Reconciled"`
	Reconcile  *Reconciliation `json:"Reconcile,omitempty"`
	Note       string          `json:"Note,omitempty"`
}

// recreate replaces a lapsed subscription with a new one for the same resource,
// change types and notification URL, with a fresh clientState, then reconciles the
// lapse with a delta query so the messages whose notifications were lost are found.
//
// The POST is never repeated blindly. Before it, a live subscription of the app to
// the same resource and notification URL makes the relief refuse (it would double
// every notification). After a 504 or a lost connection — Graph may have created
// it — the subscriptions are listed again and one that was not there before is
// adopted; only when none appeared is the POST tried again.
//
// Params:
//   - subscription_id: the lapsed subscription; when Graph still has it (not yet
//     expired) the relief refuses — renew it instead — unless replace_live, and
//     when it is gone the rest must come from params;
//   - replace_live (default false): renewals keep failing before expiry, so create
//     the new subscription while the old one still lives, then delete the old one;
//     nothing lapsed, so nothing is reconciled;
//   - resource, change_type, notification_url, lifecycle_notification_url: the
//     subscription to create (default: the old one's, if Graph still has it);
//   - client_state (required, ≤ 128 characters): the new shared secret the
//     receiver checks; it is sent to Graph and never written to any output;
//   - minutes: lifetime (default the resource's maximum less a margin);
//   - since: start of the lapse, RFC 3339 (default the old subscription's expiry);
//   - reconcile (default true).
func (e *Executor) recreate(ctx context.Context, s *session, p map[string]any) (Recreation, error) {
	oldID, hasOld, err := idParam(p, "subscription_id")
	if err != nil {
		return Recreation{}, err
	}
	resource, _, err := stringParam(p, "resource")
	if err != nil {
		return Recreation{}, err
	}
	changeType, _, err := stringParam(p, "change_type")
	if err != nil {
		return Recreation{}, err
	}
	notifyURL, _, err := stringParam(p, "notification_url")
	if err != nil {
		return Recreation{}, err
	}
	lifecycleURL, _, err := stringParam(p, "lifecycle_notification_url")
	if err != nil {
		return Recreation{}, err
	}
	clientState, _, err := stringParam(p, "client_state")
	if err != nil {
		return Recreation{}, err
	}
	if clientState == "" || len(clientState) > 128 {
		return Recreation{}, invalid("parameter %q is required, at most 128 characters (the new subscription's shared secret)", "client_state")
	}
	minutes, err := executors.IntParam(p, "minutes", 0, 0, 60*24*60)
	if err != nil {
		return Recreation{}, err
	}
	since, hasSince, err := timeParam(p, "since")
	if err != nil {
		return Recreation{}, err
	}
	reconcile, err := executors.BoolParam(p, "reconcile", true)
	if err != nil {
		return Recreation{}, err
	}
	replaceLive, err := executors.BoolParam(p, "replace_live", false)
	if err != nil {
		return Recreation{}, err
	}

	now := e.now()
	row := Recreation{OldSubscriptionID: oldID}
	oldLive := false
	if hasOld {
		old, err := e.getSubscription(ctx, s, oldID)
		var re *RequestError
		switch {
		case err == nil:
			if exp := old.GetExpirationDateTime(); exp != nil && exp.After(now) {
				if !replaceLive {
					return Recreation{}, fmt.Errorf("subscription %s is still live (expires %s): renew it instead of creating a duplicate: %w",
						oldID, rfc3339(*exp), incident.ErrConflict)
				}
				oldLive = true
			}
			resource = cmpOr(resource, deref(old.GetResource()))
			changeType = cmpOr(changeType, deref(old.GetChangeType()))
			notifyURL = cmpOr(notifyURL, deref(old.GetNotificationUrl()))
			lifecycleURL = cmpOr(lifecycleURL, deref(old.GetLifecycleNotificationUrl()))
			if exp := old.GetExpirationDateTime(); exp != nil && !hasSince {
				since, hasSince = *exp, true
			}
		case errors.As(err, &re) && re.Status == http.StatusNotFound:
			// GET answered 404: Graph deleted it, as it does after a lapse.
		default:
			return Recreation{}, err
		}
	}
	if resource == "" || changeType == "" || notifyURL == "" {
		return Recreation{}, invalid("resource, change_type and notification_url are required (Graph deletes an expired subscription, so they cannot be read back)")
	}
	if err := checkNotificationURL("notification_url", notifyURL); err != nil {
		return Recreation{}, err
	}
	if lifecycleURL != "" {
		if err := checkNotificationURL("lifecycle_notification_url", lifecycleURL); err != nil {
			return Recreation{}, err
		}
	}
	for _, ct := range strings.Split(changeType, ",") {
		if !slices.Contains([]string{"created", "updated", "deleted"}, strings.TrimSpace(ct)) {
			return Recreation{}, invalid("parameter %q: %q is not created, updated and/or deleted", "change_type", changeType)
		}
	}
	mb, hasMailbox := mailResource(resource)
	if reconcile && hasMailbox && !hasSince && !oldLive {
		return Recreation{}, invalid("parameter %q is required to reconcile: when did the lapse start (the old subscription's expiry)?", "since")
	}

	// Look before creating: the app (or an earlier attempt of this relief) may
	// already have a live subscription here.
	before, err := e.matching(ctx, s, resource, notifyURL, oldID)
	if err != nil {
		return Recreation{}, fmt.Errorf("looking for an existing subscription to %s before creating one: %w", resource, err)
	}
	if len(before) > 0 {
		return Recreation{}, fmt.Errorf("subscription %s to %s → %s already exists (expires %s): adopt it, or delete it before creating another: %w",
			deref(before[0].GetId()), resource, urlHost(notifyURL), rfc3339(*before[0].GetExpirationDateTime()), incident.ErrConflict)
	}

	mins, _ := lifetime(minutes, MaxLifetimeMinutes(resource))
	exp := now.UTC().Truncate(time.Second).Add(time.Duration(mins) * time.Minute)
	created, info, adopted, err := e.createOnce(ctx, s, func() models.Subscriptionable {
		body := models.NewSubscription()
		body.SetResource(&resource)
		body.SetChangeType(&changeType)
		body.SetNotificationUrl(&notifyURL)
		if lifecycleURL != "" {
			body.SetLifecycleNotificationUrl(&lifecycleURL)
		}
		body.SetClientState(&clientState)
		body.SetExpirationDateTime(&exp)
		return body
	}, oldID)
	if err != nil {
		return Recreation{}, err
	}
	// Notifications flow again from here: the reconcile window ends now.
	until := e.now()
	row.SubscriptionID, row.Resource, row.ChangeType = deref(created.GetId()), resource, changeType
	row.NotificationHost = urlHost(notifyURL)
	row.Adopted = adopted
	confirmed := exp
	if c := created.GetExpirationDateTime(); c != nil {
		confirmed = *c
	}
	row.ExpirationDateTime, row.ExpiresInMinutes = rfc3339(confirmed), minutesUntil(confirmed, now.Truncate(time.Second))
	row.Attempts, row.RequestID, row.ClientRequestID = info.Attempts, info.RequestID, info.ClientRequestID
	if adopted {
		row.Note = "POST /subscriptions answered without a result (504 or connection lost); the subscription it created was found by resource and notification URL and adopted, not posted again"
	}

	if oldLive {
		// The new subscription exists: the old one only doubles notifications now.
		// A failed delete is reported, not fatal: it lapses at its expiry anyway.
		row.Replaced = true
		_, derr := e.call(ctx, "DELETE /subscriptions/{id}", true, func(ctx context.Context) error {
			return e.subscriptionsBuilder(s).BySubscriptionId(oldID).Delete(ctx, nil)
		})
		var re *RequestError
		switch {
		case derr == nil, errors.As(derr, &re) && re.Status == http.StatusNotFound:
			row.OldDeleted = true
		default:
			row.Note = joinNote(row.Note, fmt.Sprintf("deleting the old subscription failed (%v): until it expires, notifications arrive twice", derr))
		}
		row.Note = joinNote(row.Note, "the old subscription was still live: no lapse, nothing to reconcile")
		return row, nil
	}

	switch {
	case !reconcile:
		row.Note = joinNote(row.Note, "reconcile turned off")
	case !hasMailbox:
		row.Note = joinNote(row.Note, "the resource is not a mailbox's messages: nothing to reconcile")
	default:
		rec, err := e.reconcile(ctx, s, mb.user, mb.folder, since, until, "")
		if err != nil {
			return Recreation{}, fmt.Errorf("subscription %s created, but reconciling the lapse failed: %w", row.SubscriptionID, err)
		}
		row.Reconciled, row.Reconcile = true, &rec
	}
	return row, nil
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// matching lists the app's live subscriptions to resource that notify notifyURL,
// other than except.
func (e *Executor) matching(ctx context.Context, s *session, resource, notifyURL, except string) ([]models.Subscriptionable, error) {
	subs, err := e.listSubscriptions(ctx, s)
	if err != nil {
		return nil, err
	}
	now := e.now()
	var out []models.Subscriptionable
	for _, sub := range subs {
		exp := sub.GetExpirationDateTime()
		if deref(sub.GetId()) == except || exp == nil || !exp.After(now) ||
			!SameResource(deref(sub.GetResource()), resource) || deref(sub.GetNotificationUrl()) != notifyURL {
			continue
		}
		out = append(out, sub)
	}
	return out, nil
}

// SameResource compares subscription resources as Graph treats them: case and a
// leading slash do not matter.
func SameResource(a, b string) bool {
	return strings.EqualFold(strings.Trim(a, "/"), strings.Trim(b, "/"))
}

// createOnce POSTs a subscription so that at most one comes of it. 429 and 503 are
// retried inside call (Graph did not act). A 504 or a lost connection may have
// created it: the app's subscriptions to the same resource and notification URL
// are listed, and a new one (not there before, not except) is adopted. Only when
// none appeared is the POST sent again, after a backoff, up to the retry policy's
// attempts. When the listing fails too, nothing is retried: the error says to look.
func (e *Executor) createOnce(ctx context.Context, s *session, body func() models.Subscriptionable, except string) (models.Subscriptionable, callInfo, bool, error) {
	for try := 1; ; try++ {
		var created models.Subscriptionable
		b := body()
		info, err := e.call(ctx, "POST /subscriptions", false, func(ctx context.Context) error {
			var err error
			created, err = e.subscriptionsBuilder(s).Post(ctx, b, nil)
			return err
		})
		if err == nil {
			if created == nil {
				return nil, info, false, errors.New("POST /subscriptions: empty answer")
			}
			return created, info, false, nil
		}
		var re *RequestError
		if !errors.As(err, &re) || !re.MaybeProcessed() {
			return nil, info, false, err
		}
		e.log.Warn("subscription create may have been processed; looking for it before trying again", "status", re.Status,
			"code", re.Code, "request_id", re.RequestID, "client_request_id", re.ClientRequestID)
		lctx := ctx
		if ctx.Err() != nil {
			// The step deadline ended the POST; the look gets a moment of its own, as
			// leaving a possible duplicate unchecked costs more than a few seconds.
			var cancel context.CancelFunc
			lctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer cancel()
		}
		found, lerr := e.matching(lctx, s, deref(b.GetResource()), deref(b.GetNotificationUrl()), except)
		if lerr != nil {
			return nil, info, false, fmt.Errorf("%w; and listing the subscriptions to see whether Graph created it failed (%v): check GET /subscriptions before creating again", err, lerr)
		}
		if len(found) > 0 {
			// The one this POST created: its expiry is the one it asked for.
			pick := found[0]
			for _, f := range found {
				if f.GetExpirationDateTime() != nil && b.GetExpirationDateTime() != nil && f.GetExpirationDateTime().Equal(*b.GetExpirationDateTime()) {
					pick = f
				}
			}
			return pick, callInfo{Attempts: re.Attempts, Status: re.Status, RequestID: re.RequestID, ClientRequestID: re.ClientRequestID}, true, nil
		}
		if try >= e.retry.MaxAttempts || ctx.Err() != nil {
			return nil, info, false, fmt.Errorf("%w; Graph lists no subscription it created", err)
		}
		wait := e.retry.wait(try, e.rand)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait+e.retry.MinAttemptTime {
			return nil, info, false, fmt.Errorf("%w; Graph lists no subscription it created, and the step deadline leaves no time to create it again", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, info, false, fmt.Errorf("%w; Graph lists no subscription it created", err)
		case <-t.C:
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkNotificationURL: Graph only delivers to https.
func checkNotificationURL(key, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return invalid("parameter %q: not an https URL", key)
	}
	return nil
}
