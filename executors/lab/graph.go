package lab

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/executors/graph"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// The Microsoft 365 side of the organisation, as the graph executor's checks see it:
// service health, the app's change-notification subscriptions, the renewal path,
// and a mailbox whose messages a recreated subscription reconciles. Answers use the
// graph executor's own row types, so the field names cannot drift; times are
// relative to the lab's clock and fixed when the lab is built (anchor).

// Tenant is the Microsoft 365 tenant a graph target of the lab stands for: its one
// host, as the real executor's is the configured tenant_id.
const Tenant = "contoso.onmicrosoft.com"

// labAppID is the app registration the lab's subscriptions belong to.
const labAppID = "00000000-1111-2222-3333-444444444444"

// renewal says how Graph answers PATCH /subscriptions/{id} (and POST /subscriptions).
type renewal int

const (
	// renewalOK: accepted at the first attempt.
	renewalOK renewal = iota
	// renewalFailing: 503 ServiceUnavailable without Retry-After, through every
	// attempt of the retry policy, for good.
	renewalFailing
	// renewalRecovering: 503 while Microsoft's incident lasts. The service recovers
	// while an approved renewal retries: that relief succeeds at its third attempt
	// and the incident is marked restored.
	renewalRecovering
)

type m365 struct {
	issues  []*issue
	subs    []*subscription
	renewal renewal
	// mail holds the mailboxes' messages by "user/folder", lower case.
	mail map[string][]*message
	seq  int // request and subscription counter, for stable ids
}

// issue is a service health issue; startAgo is fixed into StartDateTime by anchor.
type issue struct {
	graph.ServiceHealthIssue
	startAgo time.Duration
}

type subscription struct {
	id, resource, changeType, notifyHost string
	expiresIn                            time.Duration // until anchored
	expires                              time.Time
}

type message struct {
	id          string
	receivedAgo time.Duration
	received    time.Time
}

// anchor turns the scenario's relative times into times on the lab's clock.
func (m *m365) anchor(now time.Time) {
	now = now.UTC().Truncate(time.Second)
	for _, i := range m.issues {
		i.StartDateTime = utc(now.Add(-i.startAgo))
		i.LastModified = utc(now.Add(-i.startAgo / 4))
	}
	for _, s := range m.subs {
		s.expires = now.Add(s.expiresIn)
	}
	for _, box := range m.mail {
		for _, msg := range box {
			msg.received = now.Add(-msg.receivedAgo)
		}
	}
}

const (
	postmasterInbox = "users/postmaster@contoso.com/mailFolders('Inbox')/messages"
	journalInbox    = "users/journal@contoso.com/mailFolders('Inbox')/messages"
	postmasterSub   = "5d1c6f2e-8a4b-4f0e-9c3d-2b7a1e6f4c90"
	journalSub      = "9b2e4d7a-1c3f-4e8b-a6d5-0f1e2d3c4b5a"
	notifyHost      = "ndr-hooks.contoso.com"
)

// answerGraph answers a graph check for the tenant.
func (o *org) answerGraph(check string, p map[string]any) (any, error) {
	m := o.m365
	now := o.now().UTC()
	switch check {
	case graph.CheckServiceHealth:
		return m.serviceHealth(p), nil
	case graph.CheckSubscriptions:
		window := intArg(p["window_minutes"], graph.DefaultRenewalWindow)
		rows := []graph.Subscription{}
		for _, s := range m.subs {
			rows = append(rows, s.row(now, window))
		}
		slices.SortFunc(rows, func(a, b graph.Subscription) int { return a.ExpiresInMinutes - b.ExpiresInMinutes })
		return rows, nil
	case graph.CheckRenewalProbe:
		return m.probe(now, p)
	case graph.CheckRenewSubscription:
		return m.renew(now, p)
	case graph.CheckRecreateSubscription:
		return m.recreate(now, p)
	case graph.CheckDeltaReconcile:
		mailbox, _ := p["mailbox"].(string)
		folder, _ := p["folder"].(string)
		all, _ := p["all_folders"].(bool)
		if mailbox == "" {
			return nil, invalidf("parameter %q is required (user id or principal name)", "mailbox")
		}
		since, err := timeArg(p, "since")
		if err != nil || since.IsZero() {
			return nil, invalidf("parameter %q is required without delta_link", "since")
		}
		if !all {
			folder = either(folder, "inbox")
		}
		return m.reconcile(mailbox, folder, since, now), nil
	case graph.CheckSubscriptionLookup:
		id, _ := p["subscription_id"].(string)
		if id == "" {
			return nil, invalidf("parameter %q is required", "subscription_id")
		}
		return m.lookup(id, now), nil
	}
	return nil, fmt.Errorf("the lab has no simulation for the graph check %q", check)
}

func (m *m365) serviceHealth(p map[string]any) []graph.ServiceHealthIssue {
	service, _ := p["service"].(string)
	service = either(service, "Exchange Online")
	withResolved, _ := p["include_resolved"].(bool)
	rows := []graph.ServiceHealthIssue{}
	for _, i := range m.issues {
		if strings.EqualFold(i.Service, service) && (withResolved || !i.IsResolved) {
			rows = append(rows, i.ServiceHealthIssue)
		}
	}
	return rows
}

func (s *subscription) row(now time.Time, window int) graph.Subscription {
	r := graph.Subscription{ID: s.id, Resource: s.resource, ChangeType: s.changeType, ExpirationDateTime: utc(s.expires),
		ExpiresInMinutes: minutesUntil(s.expires, now), Expired: !s.expires.After(now),
		MaxMinutes: graph.MaxLifetimeMinutes(s.resource), NotificationHost: s.notifyHost, ApplicationID: labAppID}
	r.InRenewalWindow = r.Expired || s.expires.Sub(now) <= time.Duration(window)*time.Minute
	return r
}

func (m *m365) find(id string) *subscription {
	for _, s := range m.subs {
		if s.id == id {
			return s
		}
	}
	return nil
}

// live finds a subscription Graph would still renew: present and not expired. Graph
// answers 404 for an expired one, as for one it already deleted.
func (m *m365) live(id string, now time.Time) (*subscription, error) {
	s := m.find(id)
	if s == nil || !s.expires.After(now) {
		return nil, fmt.Errorf("graph GET /subscriptions/{id}: 404 Not Found (ResourceNotFound: The object was not found.) after 1 attempt; request-id %s: %w",
			m.requestID(), incident.ErrNotFound)
	}
	return s, nil
}

// lookup is GET /subscriptions/{id}: Graph answers 404 once it deleted a
// subscription; until then an expired one is still there.
func (m *m365) lookup(id string, now time.Time) graph.SubscriptionLookup {
	row := graph.SubscriptionLookup{SubscriptionID: id, RequestID: m.requestID(), ClientRequestID: m.clientRequestID(), Date: utc(now)}
	s := m.find(id)
	if s == nil {
		row.Status, row.HTTPStatus = "deleted", 404
		return row
	}
	row.Status, row.HTTPStatus, row.Resource, row.NotificationHost = "live", 200, s.resource, s.notifyHost
	row.ExpirationDateTime, row.ExpiresInMinutes = utc(s.expires), minutesUntil(s.expires, now)
	if !s.expires.After(now) {
		row.Status = "expired"
	}
	return row
}

// The 503 of the seed incident, as the executor reports it once its retries are spent.
const (
	code503    = "ExtensionError"
	message503 = "Operation: Update; Exception: [Status Code: ServiceUnavailable; Reason: ]"
	attempts   = 5 // graph.DefaultRetryPolicy's MaxAttempts
)

func (m *m365) requestID() string {
	m.seq++
	return fmt.Sprintf("%08x-5e1d-4c53-9a1b-%012x", 0x7c1e0000+m.seq, 0x3f00+m.seq)
}

func (m *m365) clientRequestID() string {
	return fmt.Sprintf("%08x-2b7a-4e0f-8d6c-%012x", 0x1a2b0000+m.seq, 0x9c00+m.seq)
}

// failing reports whether a renewal or creation fails now.
func (m *m365) failing() bool { return m.renewal != renewalOK }

// probe is the renewal probe: a renewal to the expiry the subscription already has.
func (m *m365) probe(now time.Time, p map[string]any) (graph.RenewalProbe, error) {
	var s *subscription
	if id, _ := p["subscription_id"].(string); id != "" {
		var err error
		if s, err = m.live(id, now); err != nil {
			return graph.RenewalProbe{}, err
		}
	} else {
		for _, c := range m.subs {
			if c.expires.After(now) && (s == nil || c.expires.Before(s.expires)) {
				s = c
			}
		}
		if s == nil {
			return graph.RenewalProbe{Status: "none", Message: "the app has no live subscription to probe"}, nil
		}
	}
	row := graph.RenewalProbe{SubscriptionID: s.id, Resource: s.resource, ExpirationDateTime: utc(s.expires),
		ExpiresInMinutes: minutesUntil(s.expires, now), RequestID: m.requestID(), ClientRequestID: m.clientRequestID(), Date: utc(now)}
	if m.failing() {
		row.Status, row.HTTPStatus, row.Code, row.Message, row.Attempts, row.LatencyMs = "failed", 503, code503, message503, attempts, 22840
		return row, nil
	}
	row.Status, row.HTTPStatus, row.Attempts, row.LatencyMs = "ok", 200, 1, 212
	return row, nil
}

// lifetime is the renewal's lifetime in minutes: Graph's maximum for the resource
// less the executor's 5-minute margin, or the requested minutes below it.
func lifetime(requested, maxMinutes int) (int, bool) {
	limit := maxMinutes - 5
	switch {
	case requested <= 0:
		return limit, false
	case requested > limit:
		return limit, true
	}
	return requested, false
}

// unavailable is the executor's error once the retry policy is spent on 503s.
func (m *m365) unavailable(op string, now time.Time) error {
	return fmt.Errorf("graph %s: 503 Service Unavailable (%s: %s) after %d attempts; request-id %s, client-request-id %s, date %s: %w",
		op, code503, message503, attempts, m.requestID(), m.clientRequestID(), utc(now), incident.ErrUnavailable)
}

func (m *m365) renew(now time.Time, p map[string]any) (graph.Renewal, error) {
	id, _ := p["subscription_id"].(string)
	if id == "" {
		return graph.Renewal{}, invalidf("parameter %q is required", "subscription_id")
	}
	s, err := m.live(id, now)
	if err != nil {
		return graph.Renewal{}, fmt.Errorf("subscription %s no longer exists (Graph deletes expired subscriptions): recreate it: %w", id, err)
	}
	tries := 1
	switch m.renewal {
	case renewalFailing:
		return graph.Renewal{}, m.unavailable("PATCH /subscriptions/{id}", now)
	case renewalRecovering:
		m.recover(now)
		tries = 3
	}
	r := graph.Renewal{SubscriptionID: s.id, Resource: s.resource, PreviousExpirationDateTime: utc(s.expires),
		MaxMinutes: graph.MaxLifetimeMinutes(s.resource), Attempts: tries, LatencyMs: int64(180 + 6000*(tries-1)),
		RequestID: m.requestID(), ClientRequestID: m.clientRequestID()}
	r.RequestedMinutes, r.Clamped = lifetime(intArg(p["minutes"], 0), r.MaxMinutes)
	now = now.Truncate(time.Second)
	s.expires = now.Add(time.Duration(r.RequestedMinutes) * time.Minute)
	r.ExpirationDateTime, r.ExpiresInMinutes = utc(s.expires), r.RequestedMinutes
	return r, nil
}

// recover ends Microsoft's incident: the service is restored while a renewal retries.
func (m *m365) recover(now time.Time) {
	m.renewal = renewalOK
	for _, i := range m.issues {
		if !i.IsResolved {
			i.IsResolved, i.Status, i.EndDateTime, i.LastModified = true, "serviceRestored", utc(now), utc(now)
		}
	}
}

var (
	folderResourceRE = lazyre.New(`(?i)^/?users/([^/]+)/mailfolders(?:\('([^']+)'\)|/([^/]+))/messages/?$`)
	allMailRE        = lazyre.New(`(?i)^/?users/([^/]+)/messages/?$`)
)

// mailbox is where a mail subscription's resource points, as the executor reads
// it: users/{id}/messages is every folder of the mailbox (folder "").
func mailbox(resource string) (user, folder string, ok bool) {
	if m := folderResourceRE().FindStringSubmatch(resource); m != nil {
		return m[1], either(m[2], m[3]), true
	}
	if m := allMailRE().FindStringSubmatch(resource); m != nil {
		return m[1], "", true
	}
	return "", "", false
}

func (m *m365) recreate(now time.Time, p map[string]any) (graph.Recreation, error) {
	oldID, _ := p["subscription_id"].(string)
	resource, _ := p["resource"].(string)
	changeType, _ := p["change_type"].(string)
	notifyURL, _ := p["notification_url"].(string)
	since, err := timeArg(p, "since")
	if err != nil {
		return graph.Recreation{}, err
	}
	reconcile := true
	if b, ok := p["reconcile"].(bool); ok {
		reconcile = b
	}
	replaceLive, _ := p["replace_live"].(bool)
	row := graph.Recreation{OldSubscriptionID: oldID}
	host := ""
	if u, err := url.Parse(notifyURL); err == nil {
		host = u.Hostname()
	}
	var live *subscription // the old one, replaced before it lapses
	if old := m.find(oldID); old != nil && oldID != "" {
		if old.expires.After(now) {
			if !replaceLive {
				return graph.Recreation{}, fmt.Errorf("subscription %s is still live (expires %s): renew it instead of creating a duplicate: %w",
					oldID, utc(old.expires), incident.ErrConflict)
			}
			live = old
		}
		resource, changeType, host = either(resource, old.resource), either(changeType, old.changeType), either(host, old.notifyHost)
		if since.IsZero() {
			since = old.expires
		}
		if live == nil {
			// Graph deletes the expired subscription.
			m.subs = slices.DeleteFunc(m.subs, func(s *subscription) bool { return s == old })
		}
	}
	if resource == "" || changeType == "" || host == "" {
		return graph.Recreation{}, invalidf("resource, change_type and notification_url are required (Graph deletes an expired subscription, so they cannot be read back)")
	}
	user, folder, isMail := mailbox(resource)
	if reconcile && isMail && since.IsZero() {
		return graph.Recreation{}, invalidf("parameter %q is required to reconcile: when did the lapse start (the old subscription's expiry)?", "since")
	}
	// Look before creating, as the executor does: a live one to the same resource
	// and receiver would double every notification.
	for _, s := range m.subs {
		if s != live && s.expires.After(now) && graph.SameResource(s.resource, resource) && s.notifyHost == host {
			return graph.Recreation{}, fmt.Errorf("subscription %s to %s → %s already exists (expires %s): adopt it, or delete it before creating another: %w",
				s.id, resource, host, utc(s.expires), incident.ErrConflict)
		}
	}
	if m.renewal == renewalFailing {
		return graph.Recreation{}, m.unavailable("POST /subscriptions", now)
	}
	if m.renewal == renewalRecovering {
		m.recover(now)
	}
	now = now.Truncate(time.Second)
	minutes, _ := lifetime(intArg(p["minutes"], 0), graph.MaxLifetimeMinutes(resource))
	m.seq++
	s := &subscription{id: fmt.Sprintf("%08x-0d1e-4a5b-8c7d-%012x", 0x6e3f0000+m.seq, m.seq), resource: resource,
		changeType: changeType, notifyHost: host, expires: now.Add(time.Duration(minutes) * time.Minute)}
	m.subs = append(m.subs, s)
	row.SubscriptionID, row.Resource, row.ChangeType, row.NotificationHost = s.id, resource, changeType, host
	row.ExpirationDateTime, row.ExpiresInMinutes = utc(s.expires), minutes
	row.Attempts, row.RequestID, row.ClientRequestID = 1, m.requestID(), m.clientRequestID()
	if live != nil {
		m.subs = slices.DeleteFunc(m.subs, func(s *subscription) bool { return s == live })
		row.Replaced, row.OldDeleted = true, true
		row.Note = "the old subscription was still live: no lapse, nothing to reconcile"
		return row, nil
	}
	switch {
	case !reconcile:
		row.Note = "reconcile turned off"
	case !isMail:
		row.Note = "the resource is not a mailbox's messages: nothing to reconcile"
	default:
		rec := m.reconcile(user, folder, since, now)
		row.Reconciled, row.Reconcile = true, &rec
	}
	return row, nil
}

// reconcile lists the messages a folder received in [since, until), as the delta
// query over a lapse does; folder "" is every folder of the mailbox, as the
// executor lists them for a users/{id}/messages subscription.
func (m *m365) reconcile(user, folder string, since, until time.Time) graph.Reconciliation {
	rec := graph.Reconciliation{Mailbox: user, Folder: folder, Scope: "folder", Since: utc(since), Until: utc(until), Missed: []graph.MissedMessage{}}
	boxes := []string{strings.ToLower(user + "/" + folder)}
	if folder == "" {
		rec.Scope = "mailbox"
		rec.Note = "the subscription's resource users/{id}/messages covers every folder of the mailbox: every folder was listed"
		boxes = boxes[:0]
		for key := range m.mail {
			if strings.HasPrefix(key, strings.ToLower(user)+"/") {
				boxes = append(boxes, key)
			}
		}
	}
	for _, box := range boxes {
		for _, msg := range m.mail[box] {
			if !msg.received.Before(since) && msg.received.Before(until) {
				rec.Missed = append(rec.Missed, graph.MissedMessage{ID: msg.id, ReceivedDateTime: utc(msg.received)})
			}
		}
	}
	slices.SortStableFunc(rec.Missed, func(a, b graph.MissedMessage) int { return strings.Compare(a.ReceivedDateTime, b.ReceivedDateTime) })
	rec.MissedCount = len(rec.Missed)
	rec.Pages = rec.MissedCount/100 + 1
	if folder == "" {
		return rec // a list, not a sync: no deltaLink
	}
	m.seq++
	rec.DeltaLink = fmt.Sprintf("https://graph.microsoft.com/v1.0/users/%s/mailFolders/%s/messages/delta()?$deltatoken=lab-%d",
		url.PathEscape(user), url.PathEscape(folder), m.seq)
	return rec
}

func minutesUntil(t, now time.Time) int { return int(math.Floor(t.Sub(now).Minutes())) }

func either(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func intArg(v any, def int) int {
	if n := number(v); n != nil {
		return int(*n)
	}
	return def
}

// timeArg reads an RFC 3339 parameter as the engine hands it over (a string).
func timeArg(p map[string]any, key string) (time.Time, error) {
	s, _ := p[key].(string)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, invalidf("parameter %q: %q is not an RFC 3339 time (2026-05-15T00:05:19Z)", key, s)
	}
	return t.UTC(), nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, incident.ErrInvalidInput)...)
}
