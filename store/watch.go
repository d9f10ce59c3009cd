package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
)

// Audit kinds the watch methods write, in the same transaction as the change.
const (
	// KindWatchAlert: the watch recorded an NDR spike alert (ClaimWatchAlert).
	KindWatchAlert audit.Kind = "watch-alert"
	// KindWatchDiagnosis: a responder started the diagnosis of an alert (ClaimAlertDiagnosis).
	KindWatchDiagnosis audit.Kind = "watch-diagnosis"
	// KindWatchSubscription: the watch's change-notification subscription changed
	// (PutWatchSubscription: created, renewed, lapsed, renewal failing).
	KindWatchSubscription audit.Kind = "watch-subscription"
)

// WatchStore is the durable state of the NDR watch (package watch): which mailbox
// messages it processed, the NDR events they carried, the mailbox's delta cursor,
// the alerts it posted, and its change-notification subscription. A watch is named
// by a key such as "postmaster@contoso.com/inbox"; several replicas watching the
// same mailbox share it and still count every message once and alert once.
type WatchStore interface {
	// RecordWatchMessages marks messages processed and stores their NDR events, in
	// one transaction. A message whose id the watch recorded already is skipped with
	// its events: a message seen twice (a delta replay, a message marked read, a
	// second replica) is counted once. It returns the messages newly recorded.
	RecordWatchMessages(ctx context.Context, watch string, msgs []WatchMessage) ([]WatchMessage, error)
	// WatchCursor returns the watch's delta cursor, "" when it has none yet.
	WatchCursor(ctx context.Context, watch string) (string, error)
	// SetWatchCursor stores the delta cursor. Call it only after
	// RecordWatchMessages stored every message the cursor moves past, so a restart
	// resumes at the cursor and misses nothing.
	SetWatchCursor(ctx context.Context, watch, cursor string) error
	// NDRCounts counts, per status code, the NDR messages received in
	// [since, until) and the distinct remote domains they name, busiest code first.
	NDRCounts(ctx context.Context, watch string, since, until time.Time) ([]NDRCount, error)
	// NDRTopDomains returns the domains with the most NDR messages of code received
	// in [since, until), at most limit, busiest first.
	NDRTopDomains(ctx context.Context, watch, code string, since, until time.Time, limit int) ([]DomainCount, error)
	// PruneWatch forgets messages and events received before before (retention);
	// it returns the messages removed.
	PruneWatch(ctx context.Context, watch string, before time.Time) (int, error)

	// ClaimWatchAlert records an alert for (watch, code) unless the last one was
	// recorded less than cooldown before a.At: one alert per storm, across
	// goroutines and replicas. It returns the alert recorded now (created true) or
	// the one holding the cooldown (created false). A created alert is audited.
	ClaimWatchAlert(ctx context.Context, a NewWatchAlert, cooldown time.Duration) (WatchAlert, bool, error)
	// MarkWatchAlertPosted records that the alert's chat post is stored.
	MarkWatchAlertPosted(ctx context.Context, id string) error
	// WatchAlerts returns the watch's alerts recorded at or after since, oldest first.
	WatchAlerts(ctx context.Context, watch string, since time.Time) ([]WatchAlert, error)
	// GetWatchAlert returns one alert or ErrNotFound.
	GetWatchAlert(ctx context.Context, id string) (WatchAlert, error)
	// FindWatchAlert returns the most recent alert posted to channel whose Run
	// diagnosis button carries value, or ErrNotFound: how a click is checked
	// against what the bot really posted.
	FindWatchAlert(ctx context.Context, channel, button string) (WatchAlert, error)
	// ClaimAlertDiagnosis records that by started the alert's diagnosis: the first
	// claim wins (claimed true) and is audited; later ones get the alert as stored,
	// naming who started it and when.
	ClaimAlertDiagnosis(ctx context.Context, id string, by incident.Actor) (WatchAlert, bool, error)

	// WatchSubscription returns the watch's change-notification subscription, or
	// ErrNotFound when it has none.
	WatchSubscription(ctx context.Context, watch string) (WatchSubscription, error)
	// PutWatchSubscription stores (replaces) the watch's subscription record and
	// audits the change when its id, expiry or state changed.
	PutWatchSubscription(ctx context.Context, s WatchSubscription) error
}

// WatchMessage is one mailbox message the watch processed.
type WatchMessage struct {
	ID       string    `json:"id"`
	Received time.Time `json:"received"`
	// Events are the NDR's failed recipients; none for a message that is not an NDR.
	Events []NDREvent `json:"events,omitempty"`
}

// NDREvent is one failed (or delayed) recipient of an NDR.
type NDREvent struct {
	// Code is the status code: enhanced (5.5.4) when the NDR has one, else the
	// 3-digit SMTP reply code (421).
	Code string `json:"code"`
	// Domain is the remote domain: the recipient's, else the remote server's.
	Domain    string `json:"domain,omitempty"`
	Recipient string `json:"recipient,omitempty"`
}

// NDRCount is how many NDR messages carried one code in a window.
type NDRCount struct {
	Code     string    `json:"code"`
	Messages int       `json:"messages"`
	Domains  int       `json:"domains"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
}

// DomainCount is how many NDR messages named one domain.
type DomainCount struct {
	Domain   string `json:"domain"`
	Messages int    `json:"messages"`
}

// NewWatchAlert is what ClaimWatchAlert records.
type NewWatchAlert struct {
	Watch   string
	Code    string
	Channel string
	// Button is the Run diagnosis button's value ("5.5.4", "4.3.2 domain=fabrikam.com");
	// empty when no playbook matches the code.
	Button   string
	Messages int
	Domains  int
	// View is the alert message as the chat adapter renders it (JSON).
	View json.RawMessage
	At   time.Time
}

// WatchAlert is a recorded NDR spike alert.
type WatchAlert struct {
	ID       string          `json:"id"`
	Watch    string          `json:"watch"`
	Code     string          `json:"code"`
	Channel  string          `json:"channel"`
	Button   string          `json:"button,omitempty"`
	Messages int             `json:"messages"`
	Domains  int             `json:"domains"`
	View     json.RawMessage `json:"view"`
	At       time.Time       `json:"at"`
	PostedAt time.Time       `json:"posted_at"` // zero until MarkWatchAlertPosted
	// DiagnosisBy started the alert's diagnosis (zero while nobody did), at DiagnosisAt.
	DiagnosisBy incident.Actor `json:"diagnosis_by"`
	DiagnosisAt time.Time      `json:"diagnosis_at"`
}

// WatchSubscription is the watch's Graph change-notification subscription.
type WatchSubscription struct {
	Watch          string    `json:"watch"`
	SubscriptionID string    `json:"subscription_id"`
	Resource       string    `json:"resource"`
	ExpiresAt      time.Time `json:"expires_at"`
	// State is active, failing (renewals keep failing) or lapsed (expired or gone).
	State string `json:"state"`
	// Failures counts consecutive failed renewals; LastError is the last one.
	Failures  int       `json:"failures"`
	LastError string    `json:"last_error,omitempty"`
	RenewedAt time.Time `json:"renewed_at"`
	// AlertedAt is when the "renewal keeps failing" alert was posted (zero: not yet).
	AlertedAt time.Time `json:"alerted_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Subscription states.
const (
	SubscriptionActive  = "active"
	SubscriptionFailing = "failing"
	SubscriptionLapsed  = "lapsed"
)
