// Package watch is the NDR watch: it reads a mailbox where non-delivery reports
// arrive (a postmaster, journal or shared mailbox) by delta query, parses each NDR
// for its status code and remote domain, counts them per code over a sliding
// window, and when a code crosses the threshold posts one alert per storm —
// "NDR 5.5.4 spike: 37 in 5 min across 12 domains" — with a Run diagnosis button
// that starts the matching playbook.
//
// Everything it must not forget is in the store (store.WatchStore), not in memory:
// each message id it processed (so a message seen twice counts once), the NDR
// events with their time, code and domain (so window counts survive a restart),
// the delta cursor (stored after the messages it moves past, so a restart neither
// misses nor double-counts), and the alerts (one per cooldown, across replicas).
//
// The mailbox is a Source; watch/graphmail reads one through Microsoft Graph.
package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/internal/backoff"
	"github.com/ndrbot/ndrbot/store"
)

// Source is a mailbox folder read by delta query.
type Source interface {
	// Delta returns the messages added or changed since cursor ("" starts a new
	// sync) and the cursor that continues after them. Deleted messages are left out;
	// a message may come again (marked read, moved back): the watch counts it once.
	// With an error, msgs and nextCursor may still carry what was read before it
	// and where to continue; the watch keeps that progress.
	Delta(ctx context.Context, cursor string) (msgs []Message, nextCursor string, err error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, cursor string) ([]Message, string, error)

// Delta calls f.
func (f SourceFunc) Delta(ctx context.Context, cursor string) ([]Message, string, error) {
	return f(ctx, cursor)
}

// Playbooks says which playbook diagnoses a status code and what its Run diagnosis
// button carries; CatalogPlaybooks answers from the loaded playbooks.
type Playbooks interface {
	ForCode(code string, top []store.DomainCount) Match
}

// Match is the playbook for a code.
type Match struct {
	Playbook string // id, "" when no playbook matches
	Title    string
	// Button is the Run diagnosis button's value ("" when the playbook needs a
	// parameter the NDRs cannot supply); Hint then says what to type.
	Button string
	Hint   string
}

// Options configure a Watcher.
type Options struct {
	// Key names the watch in the store: mailbox and folder ("postmaster@contoso.com/inbox").
	Key string
	// Mailbox is shown in alerts.
	Mailbox string
	Source  Source
	Store   store.WatchStore
	// Thread publishes alerts (the chat adapter's outbox-backed thread).
	Thread commands.Thread
	// Channel receives the alerts.
	Channel   string
	Playbooks Playbooks
	// Threshold NDRs of one code within Window make a spike; after an alert,
	// Cooldown must pass before that code alerts again.
	Threshold int
	Window    time.Duration
	Cooldown  time.Duration
	// Interval between delta polls (notifications mode polls on each notification
	// and every Interval as a safety net).
	Interval time.Duration
	// Retention is how long processed message ids and NDR events are kept (default
	// 7 days, and at least twice the window and the cooldown).
	Retention time.Duration
	// MaxBackoff bounds the wait after failed polls (default 10 min).
	MaxBackoff time.Duration
	// Polled, when set, is told the outcome of every delta round (the
	// metrics: NDRs counted, lag, failures).
	Polled func(Result, error)
	Now    func() time.Time
	Log    *slog.Logger
}

// Defaults of the watch: config's watch section has the same.
const (
	DefaultThreshold = 20
	DefaultWindow    = 5 * time.Minute
	DefaultCooldown  = 30 * time.Minute
	DefaultInterval  = 60 * time.Second
	DefaultRetention = 7 * 24 * time.Hour
)

// clockSkew lets an NDR stamped slightly ahead of the bot's clock count now.
const clockSkew = time.Minute

// Watcher is one watched mailbox folder. Run polls until cancelled; Poll does one
// round (tests, notifications).
type Watcher struct {
	o   Options
	log *slog.Logger
	// poke wakes Run for an immediate poll (a change notification arrived).
	poke chan struct{}

	mu      sync.Mutex // one poll at a time
	samples map[string]string
	started bool
}

// Result is what one poll did.
type Result struct {
	Seen int // messages the delta round returned
	New  int // of which not processed before
	NDRs int // of the new ones, NDRs
	// Codes counts the failures of the new NDRs by enhanced status code.
	Codes map[string]int
	// Lag is how long the oldest new message waited between its arrival in
	// the mailbox and this round (zero when nothing was new).
	Lag    time.Duration
	Alerts []store.WatchAlert
}

// New checks the options and returns a Watcher.
func New(o Options) (*Watcher, error) {
	switch {
	case o.Key == "":
		return nil, errors.New("watch: no key")
	case o.Source == nil || o.Store == nil || o.Thread == nil:
		return nil, errors.New("watch: source, store and thread are required")
	case o.Channel == "":
		return nil, errors.New("watch: no alert channel")
	}
	if o.Threshold <= 0 {
		o.Threshold = DefaultThreshold
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Cooldown < 0 {
		o.Cooldown = 0
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	o.Retention = max(o.Retention, 2*o.Window, 2*o.Cooldown)
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Mailbox == "" {
		o.Mailbox = o.Key
	}
	return &Watcher{o: o, log: o.Log.With("component", "watch", "watch", o.Key), poke: make(chan struct{}, 1), samples: map[string]string{}}, nil
}

// Key is the watch's name in the store.
func (w *Watcher) Key() string { return w.o.Key }

// Poke asks Run for a poll now (a change notification arrived); it never blocks.
func (w *Watcher) Poke() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

// Run polls every Interval (and on Poke) until ctx ends. A failed poll is retried
// with exponential backoff up to MaxBackoff; it never stops the watch.
func (w *Watcher) Run(ctx context.Context) error {
	w.log.Info("watching", "mailbox", w.o.Mailbox, "interval", w.o.Interval, "threshold", w.o.Threshold,
		"window", w.o.Window, "cooldown", w.o.Cooldown, "channel", w.o.Channel)
	failures := 0
	lastPrune := time.Time{}
	for {
		res, err := w.Poll(ctx)
		if w.o.Polled != nil && ctx.Err() == nil {
			w.o.Polled(res, err)
		}
		wait := w.o.Interval
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			failures++
			// Interval·2^(failures-1), at most MaxBackoff, ±20 %.
			wait = backoff.Policy{Base: w.o.Interval, Max: w.o.MaxBackoff, Jitter: backoff.Spread20}.Wait(failures, nil)
			w.log.Warn("poll failed; retrying", "err", err, "failures", failures, "retry_in", wait.Round(time.Second))
		default:
			if failures > 0 {
				w.log.Info("poll recovered", "after_failures", failures)
			}
			failures = 0
			if res.New > 0 {
				w.log.Debug("polled", "seen", res.Seen, "new", res.New, "ndrs", res.NDRs, "alerts", len(res.Alerts))
			}
		}
		if now := w.o.Now(); now.Sub(lastPrune) > time.Hour {
			if n, err := w.o.Store.PruneWatch(ctx, w.o.Key, now.Add(-w.o.Retention)); err != nil {
				w.log.Warn("pruning processed messages", "err", err)
			} else {
				lastPrune = now
				if n > 0 {
					w.log.Debug("pruned processed messages", "messages", n)
				}
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-w.poke:
			t.Stop()
		case <-t.C:
		}
	}
}

// Poll runs one delta round: fetch what changed since the stored cursor, record the
// messages (each id once) with their NDR events, then store the new cursor, then
// look for spikes. A failure before the cursor is stored leaves it where it was:
// the next round fetches the same messages again and records only those it lacks.
func (w *Watcher) Poll(ctx context.Context) (Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var res Result
	if !w.started {
		// A previous process may have recorded an alert and stopped before its post
		// was stored: post it now (the outbox key makes a second post impossible).
		if err := w.repost(ctx); err != nil {
			return res, err
		}
		w.started = true
	}
	cursor, err := w.o.Store.WatchCursor(ctx, w.o.Key)
	if err != nil {
		return res, fmt.Errorf("watch %s: reading the cursor: %w", w.o.Key, err)
	}
	msgs, next, derr := w.o.Source.Delta(ctx, cursor)
	if derr != nil && len(msgs) == 0 {
		return res, fmt.Errorf("watch %s: delta: %w", w.o.Key, derr)
	}
	// A round that failed part way still hands back what it read and where to go
	// on: keep that progress, then report the failure.
	res.Seen = len(msgs)
	now := w.o.Now()
	recs := make([]store.WatchMessage, 0, len(msgs))
	for _, m := range msgs {
		if m.ID == "" {
			continue
		}
		rec := store.WatchMessage{ID: m.ID, Received: m.ReceivedDateTime}
		if rec.Received.IsZero() {
			rec.Received = now
		}
		if n, ok := ParseNDR(m); ok {
			for _, f := range n.Failures {
				rec.Events = append(rec.Events, store.NDREvent{Code: f.Code(), Domain: f.Domain, Recipient: f.Recipient})
				w.samples[f.Code()] = f.Diagnostic
			}
		}
		recs = append(recs, rec)
	}
	fresh, err := w.o.Store.RecordWatchMessages(ctx, w.o.Key, recs)
	if err != nil {
		return res, fmt.Errorf("watch %s: recording messages: %w", w.o.Key, err)
	}
	res.New = len(fresh)
	for _, m := range fresh {
		res.Lag = max(res.Lag, now.Sub(m.Received))
		if len(m.Events) > 0 {
			res.NDRs++
		}
		for _, e := range m.Events {
			if res.Codes == nil {
				res.Codes = map[string]int{}
			}
			res.Codes[e.Code]++
		}
	}
	// Only now that every message it covers is stored does the cursor move.
	if next != "" && next != cursor {
		if err := w.o.Store.SetWatchCursor(ctx, w.o.Key, next); err != nil {
			return res, fmt.Errorf("watch %s: storing the cursor: %w", w.o.Key, err)
		}
	}
	if res.NDRs > 0 {
		res.Alerts, err = w.evaluate(ctx, now)
	}
	if derr != nil {
		return res, errors.Join(fmt.Errorf("watch %s: delta (kept %d messages read before the failure): %w", w.o.Key, len(msgs), derr), err)
	}
	return res, err
}

// evaluate alerts on every code at or above the threshold in the window ending now.
func (w *Watcher) evaluate(ctx context.Context, now time.Time) ([]store.WatchAlert, error) {
	since, until := now.Add(-w.o.Window), now.Add(clockSkew)
	counts, err := w.o.Store.NDRCounts(ctx, w.o.Key, since, until)
	if err != nil {
		return nil, fmt.Errorf("watch %s: counting: %w", w.o.Key, err)
	}
	var alerts []store.WatchAlert
	var errs []error
	for _, c := range counts {
		if c.Messages < w.o.Threshold {
			continue
		}
		a, created, err := w.alert(ctx, c, since, until, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if created {
			alerts = append(alerts, a)
		}
	}
	return alerts, errors.Join(errs...)
}

// alert claims the alert for a spike (once per cooldown, across replicas) and
// posts it.
func (w *Watcher) alert(ctx context.Context, c store.NDRCount, since, until, now time.Time) (store.WatchAlert, bool, error) {
	top, err := w.o.Store.NDRTopDomains(ctx, w.o.Key, c.Code, since, until, 5)
	if err != nil {
		return store.WatchAlert{}, false, err
	}
	var match Match
	if w.o.Playbooks != nil {
		match = w.o.Playbooks.ForCode(c.Code, top)
	}
	v := commands.AlertView{Code: c.Code, Messages: c.Messages, Domains: c.Domains, Window: w.o.Window, Threshold: w.o.Threshold,
		Mailbox: w.o.Mailbox, First: c.First, Last: c.Last, Sample: w.samples[c.Code],
		Playbook: match.Playbook, PlaybookTitle: match.Title, Button: match.Button, Hint: match.Hint, At: now}
	for _, d := range top {
		v.TopDomains = append(v.TopDomains, commands.DomainCount{Domain: d.Domain, Messages: d.Messages})
	}
	view, err := json.Marshal(v)
	if err != nil {
		return store.WatchAlert{}, false, err
	}
	a, created, err := w.o.Store.ClaimWatchAlert(ctx, store.NewWatchAlert{Watch: w.o.Key, Code: c.Code, Channel: w.o.Channel,
		Button: match.Button, Messages: c.Messages, Domains: c.Domains, View: view, At: now}, w.o.Cooldown)
	if err != nil || !created {
		return a, false, err
	}
	w.log.Warn("NDR spike", "alert", a.ID, "code", c.Code, "ndrs", c.Messages, "domains", c.Domains, "window", w.o.Window,
		"playbook", match.Playbook)
	return a, true, w.post(ctx, a)
}

// post publishes an alert and records that its post is stored.
func (w *Watcher) post(ctx context.Context, a store.WatchAlert) error {
	var v commands.AlertView
	if err := json.Unmarshal(a.View, &v); err != nil {
		return fmt.Errorf("alert %s: %w", a.ID, err)
	}
	v.AlertID = a.ID
	v.DiagnosisBy, v.DiagnosisAt = a.DiagnosisBy, a.DiagnosisAt
	if err := w.o.Thread.Publish(ctx, commands.Message{Channel: a.Channel, TopLevel: true, Key: commands.WatchAlertKey(a.ID), Alert: &v}); err != nil {
		return fmt.Errorf("posting alert %s: %w", a.ID, err)
	}
	return w.o.Store.MarkWatchAlertPosted(ctx, a.ID)
}

// repost posts the alerts of the last cooldown whose post was never stored.
func (w *Watcher) repost(ctx context.Context) error {
	alerts, err := w.o.Store.WatchAlerts(ctx, w.o.Key, w.o.Now().Add(-max(w.o.Cooldown, w.o.Window)))
	if err != nil {
		return fmt.Errorf("watch %s: reading alerts: %w", w.o.Key, err)
	}
	for _, a := range alerts {
		if a.PostedAt.IsZero() {
			w.log.Info("posting an alert a previous process recorded", "alert", a.ID, "code", a.Code)
			if err := w.post(ctx, a); err != nil {
				return err
			}
		}
	}
	return nil
}
