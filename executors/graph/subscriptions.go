package graph

import (
	"context"
	"errors"
	"fmt"
	"math"
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

// getSubscription reads one subscription; a 404 (expired subscriptions are deleted
// by Graph) comes back as a *RequestError wrapping incident.ErrNotFound.
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
			return Renewal{}, fmt.Errorf("subscription %s no longer exists (Graph deletes expired subscriptions): recreate it: %w", id, err)
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
// Params:
//   - subscription_id: the lapsed subscription; when Graph still has it (not yet
//     expired) the relief refuses — renew it instead — and when it is gone the rest
//     must come from params;
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

	now := e.now()
	row := Recreation{OldSubscriptionID: oldID}
	if hasOld {
		old, err := e.getSubscription(ctx, s, oldID)
		var re *RequestError
		switch {
		case err == nil:
			if exp := old.GetExpirationDateTime(); exp != nil && exp.After(now) {
				return Recreation{}, fmt.Errorf("subscription %s is still live (expires %s): renew it instead of creating a duplicate: %w",
					oldID, rfc3339(*exp), incident.ErrConflict)
			}
			resource = cmpOr(resource, deref(old.GetResource()))
			changeType = cmpOr(changeType, deref(old.GetChangeType()))
			notifyURL = cmpOr(notifyURL, deref(old.GetNotificationUrl()))
			lifecycleURL = cmpOr(lifecycleURL, deref(old.GetLifecycleNotificationUrl()))
			if exp := old.GetExpirationDateTime(); exp != nil && !hasSince {
				since, hasSince = *exp, true
			}
		case errors.As(err, &re) && re.Status == 404:
			// Expired and deleted by Graph, as expected after a lapse.
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
	if reconcile && hasMailbox && !hasSince {
		return Recreation{}, invalid("parameter %q is required to reconcile: when did the lapse start (the old subscription's expiry)?", "since")
	}

	mins, _ := lifetime(minutes, MaxLifetimeMinutes(resource))
	exp := now.UTC().Truncate(time.Second).Add(time.Duration(mins) * time.Minute)
	var created models.Subscriptionable
	// Not repeated after a connection reset: Graph may have created it already, and
	// a second one would double every notification. 429/503/504 are retried.
	info, err := e.call(ctx, "POST /subscriptions", false, func(ctx context.Context) error {
		body := models.NewSubscription()
		body.SetResource(&resource)
		body.SetChangeType(&changeType)
		body.SetNotificationUrl(&notifyURL)
		if lifecycleURL != "" {
			body.SetLifecycleNotificationUrl(&lifecycleURL)
		}
		body.SetClientState(&clientState)
		body.SetExpirationDateTime(&exp)
		var err error
		created, err = e.subscriptionsBuilder(s).Post(ctx, body, nil)
		return err
	})
	if err != nil {
		return Recreation{}, err
	}
	// Notifications flow again from here: the reconcile window ends now.
	until := e.now()
	row.SubscriptionID, row.Resource, row.ChangeType = deref(created.GetId()), resource, changeType
	row.NotificationHost = urlHost(notifyURL)
	confirmed := exp
	if c := created.GetExpirationDateTime(); c != nil {
		confirmed = *c
	}
	row.ExpirationDateTime, row.ExpiresInMinutes = rfc3339(confirmed), minutesUntil(confirmed, now.Truncate(time.Second))
	row.Attempts, row.RequestID, row.ClientRequestID = info.Attempts, info.RequestID, info.ClientRequestID

	switch {
	case !reconcile:
		row.Note = "reconcile turned off"
	case !hasMailbox:
		row.Note = "the resource is not a mailbox folder's messages: nothing to reconcile by delta query"
	default:
		rec, err := e.reconcile(ctx, s, mb.user, mb.folder, since, until, "")
		if err != nil {
			return Recreation{}, fmt.Errorf("subscription %s created, but reconciling the lapse failed: %w", row.SubscriptionID, err)
		}
		rec.Note = mb.note
		row.Reconciled, row.Reconcile = true, &rec
	}
	return row, nil
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
