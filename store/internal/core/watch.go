package core

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

// ---- the NDR watch: messages, events, cursor ------------------------------

// RecordWatchMessages stores messages and their NDR events once per message id.
func (s *Store) RecordWatchMessages(ctx context.Context, watch string, msgs []store.WatchMessage) ([]store.WatchMessage, error) {
	if watch == "" {
		return nil, invalid("watch messages without a watch")
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	// One insert per id, in id order: two replicas recording overlapping batches
	// lock the same rows in the same order and cannot deadlock.
	byID := make(map[string]store.WatchMessage, len(msgs))
	order := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if m.ID == "" {
			return nil, invalid("watch message without id")
		}
		for _, e := range m.Events {
			if e.Code == "" {
				return nil, invalid("NDR event of message %q without a status code", m.ID)
			}
		}
		if _, dup := byID[m.ID]; dup {
			continue
		}
		byID[m.ID] = m
		order = append(order, m.ID)
	}
	sorted := slices.Clone(order)
	slices.Sort(sorted)
	isNew := map[string]bool{}
	err := s.db.Write(ctx, func(tx Q) error {
		clear(isNew)
		now := us(s.now())
		for _, id := range sorted {
			m := byID[id]
			recv := us(audit.TimeUS(m.Received))
			n, err := tx.Exec(ctx, `INSERT INTO watch_messages (watch, message_id, received_us, processed_us, events) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (watch, message_id) DO NOTHING`, watch, id, recv, now, len(m.Events))
			if err != nil {
				return err
			}
			if n == 0 {
				continue // seen before: its events are stored already
			}
			isNew[id] = true
			for _, e := range m.Events {
				if _, err := tx.Exec(ctx, `INSERT INTO ndr_events (watch, message_id, code, domain, recipient, received_us) VALUES (?, ?, ?, ?, ?, ?)`,
					watch, id, e.Code, strings.ToLower(e.Domain), strings.ToLower(e.Recipient), recv); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []store.WatchMessage
	for _, id := range order {
		if isNew[id] {
			out = append(out, byID[id])
		}
	}
	return out, nil
}

// WatchCursor returns the stored delta cursor ("" when none).
func (s *Store) WatchCursor(ctx context.Context, watch string) (string, error) {
	var c string
	err := s.db.QueryRow(ctx, `SELECT delta_cursor FROM watch_cursors WHERE watch = ?`, watch).Scan(&c)
	if s.d.IsNoRows(err) {
		return "", nil
	}
	return c, err
}

// SetWatchCursor stores the delta cursor.
func (s *Store) SetWatchCursor(ctx context.Context, watch, cursor string) error {
	if watch == "" {
		return invalid("cursor without a watch")
	}
	return s.db.Write(ctx, func(tx Q) error {
		_, err := tx.Exec(ctx, `INSERT INTO watch_cursors (watch, delta_cursor, updated_us) VALUES (?, ?, ?)
			ON CONFLICT (watch) DO UPDATE SET delta_cursor = excluded.delta_cursor, updated_us = excluded.updated_us`,
			watch, cursor, us(s.now()))
		return err
	})
}

// NDRCounts counts NDR messages and distinct domains per code in [since, until).
func (s *Store) NDRCounts(ctx context.Context, watch string, since, until time.Time) ([]store.NDRCount, error) {
	return queryAll(ctx, s.db, `SELECT code, COUNT(DISTINCT message_id), COUNT(DISTINCT NULLIF(domain, '')), MIN(received_us), MAX(received_us)
		FROM ndr_events WHERE watch = ? AND received_us >= ? AND received_us < ?
		GROUP BY code ORDER BY COUNT(DISTINCT message_id) DESC, code`,
		[]any{watch, us(audit.TimeUS(since)), us(audit.TimeUS(until))}, func(r Row) (store.NDRCount, error) {
			var c store.NDRCount
			var first, last int64
			err := r.Scan(&c.Code, &c.Messages, &c.Domains, &first, &last)
			c.First, c.Last = fromUS(first), fromUS(last)
			return c, err
		})
}

// NDRTopDomains returns the busiest domains of code in [since, until).
func (s *Store) NDRTopDomains(ctx context.Context, watch, code string, since, until time.Time, limit int) ([]store.DomainCount, error) {
	if limit <= 0 {
		limit = 10
	}
	return queryAll(ctx, s.db, fmt.Sprintf(`SELECT domain, COUNT(DISTINCT message_id) FROM ndr_events
		WHERE watch = ? AND code = ? AND received_us >= ? AND received_us < ? AND domain <> ''
		GROUP BY domain ORDER BY COUNT(DISTINCT message_id) DESC, domain LIMIT %d`, limit),
		[]any{watch, code, us(audit.TimeUS(since)), us(audit.TimeUS(until))}, func(r Row) (store.DomainCount, error) {
			var d store.DomainCount
			err := r.Scan(&d.Domain, &d.Messages)
			return d, err
		})
}

// PruneWatch forgets messages and events received before before.
func (s *Store) PruneWatch(ctx context.Context, watch string, before time.Time) (int, error) {
	var n int64
	err := s.db.Write(ctx, func(tx Q) error {
		b := us(audit.TimeUS(before))
		if _, err := tx.Exec(ctx, `DELETE FROM ndr_events WHERE watch = ? AND received_us < ?`, watch, b); err != nil {
			return err
		}
		var err error
		n, err = tx.Exec(ctx, `DELETE FROM watch_messages WHERE watch = ? AND received_us < ?`, watch, b)
		return err
	})
	return int(n), err
}

// ---- alerts ------------------------------------------------------------------

const watchAlertCols = `id, watch, code, channel, button, messages, domains, view_json, at_us, posted_us, diagnosis_by_id, diagnosis_by_name, diagnosis_us`

func scanWatchAlert(r Row) (store.WatchAlert, error) {
	var a store.WatchAlert
	var view string
	var at, posted, diag int64
	var byID, byName sql.NullString
	err := r.Scan(&a.ID, &a.Watch, &a.Code, &a.Channel, &a.Button, &a.Messages, &a.Domains, &view, &at, &posted, &byID, &byName, &diag)
	a.View = json.RawMessage(view)
	a.At, a.PostedAt, a.DiagnosisAt = fromUS(at), fromUS(posted), fromUS(diag)
	a.DiagnosisBy = incident.Actor{ID: byID.String, Name: byName.String}
	return a, err
}

// ClaimWatchAlert records an alert unless the last one of (watch, code) holds the cooldown.
func (s *Store) ClaimWatchAlert(ctx context.Context, na store.NewWatchAlert, cooldown time.Duration) (store.WatchAlert, bool, error) {
	switch {
	case na.Watch == "" || na.Code == "":
		return store.WatchAlert{}, false, invalid("watch alert without watch or code")
	case na.Channel == "":
		return store.WatchAlert{}, false, invalid("watch alert without channel")
	}
	view := na.View
	if len(view) == 0 {
		view = json.RawMessage("{}")
	}
	v, err := s.redactJSON(view)
	if err != nil {
		return store.WatchAlert{}, false, invalid("watch alert view: %v", err)
	}
	at := na.At
	if at.IsZero() {
		at = s.now()
	}
	at = audit.TimeUS(at)
	var out store.WatchAlert
	created := false
	err = s.db.Write(ctx, func(tx Q) error {
		created = false
		if _, err := tx.Exec(ctx, `INSERT INTO watch_alert_heads (watch, code, alert_id, at_us) VALUES (?, ?, '', 0)
			ON CONFLICT (watch, code) DO NOTHING`, na.Watch, na.Code); err != nil {
			return err
		}
		var lastID string
		var lastUS int64
		if err := tx.QueryRow(ctx, `SELECT alert_id, at_us FROM watch_alert_heads WHERE watch = ? AND code = ?`+s.d.ForUpdate,
			na.Watch, na.Code).Scan(&lastID, &lastUS); err != nil {
			return err
		}
		if lastID != "" && at.Sub(fromUS(lastUS)) < cooldown {
			var err error
			out, err = scanWatchAlert(tx.QueryRow(ctx, `SELECT `+watchAlertCols+` FROM watch_alerts WHERE id = ?`, lastID))
			return err
		}
		id, err := s.newID("wa", func(id string) (int64, error) {
			return tx.Exec(ctx, `INSERT INTO watch_alerts (id, watch, code, channel, button, messages, domains, view_json, at_us, posted_us, diagnosis_us)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0) ON CONFLICT (id) DO NOTHING`,
				id, na.Watch, na.Code, na.Channel, na.Button, na.Messages, na.Domains, v, us(at))
		})
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE watch_alert_heads SET alert_id = ?, at_us = ? WHERE watch = ? AND code = ?`,
			id, us(at), na.Watch, na.Code); err != nil {
			return err
		}
		out = store.WatchAlert{ID: id, Watch: na.Watch, Code: na.Code, Channel: na.Channel, Button: na.Button,
			Messages: na.Messages, Domains: na.Domains, View: json.RawMessage(v), At: at}
		created = true
		_, err = s.appendTx(ctx, tx, audit.Record{Actor: incident.BotActor, Kind: store.KindWatchAlert, Time: at,
			Payload: map[string]any{"alert": id, "watch": na.Watch, "code": na.Code, "channel": na.Channel,
				"messages": na.Messages, "domains": na.Domains, "button": na.Button, "cooldown": cooldown.String()}})
		return err
	})
	return out, created, err
}

// MarkWatchAlertPosted records that the alert's post is stored.
func (s *Store) MarkWatchAlertPosted(ctx context.Context, id string) error {
	return s.db.Write(ctx, func(tx Q) error {
		n, err := tx.Exec(ctx, `UPDATE watch_alerts SET posted_us = ? WHERE id = ? AND posted_us = 0`, us(s.now()), id)
		if err != nil || n == 1 {
			return err
		}
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM watch_alerts WHERE id = ?`, id).Scan(&one); s.d.IsNoRows(err) {
			return notFound("watch alert", id)
		} else if err != nil {
			return err
		}
		return nil // posted already
	})
}

// WatchAlerts returns the watch's alerts since since, oldest first.
func (s *Store) WatchAlerts(ctx context.Context, watch string, since time.Time) ([]store.WatchAlert, error) {
	return queryAll(ctx, s.db, `SELECT `+watchAlertCols+` FROM watch_alerts WHERE watch = ? AND at_us >= ? ORDER BY at_us, id`,
		[]any{watch, us(audit.TimeUS(since))}, scanWatchAlert)
}

// GetWatchAlert returns one alert.
func (s *Store) GetWatchAlert(ctx context.Context, id string) (store.WatchAlert, error) {
	a, err := scanWatchAlert(s.db.QueryRow(ctx, `SELECT `+watchAlertCols+` FROM watch_alerts WHERE id = ?`, id))
	if s.d.IsNoRows(err) {
		return a, notFound("watch alert", id)
	}
	return a, err
}

// FindWatchAlert returns the latest alert in channel with that button value.
func (s *Store) FindWatchAlert(ctx context.Context, channel, button string) (store.WatchAlert, error) {
	if button == "" {
		return store.WatchAlert{}, notFound("watch alert button", button)
	}
	a, err := scanWatchAlert(s.db.QueryRow(ctx, `SELECT `+watchAlertCols+` FROM watch_alerts WHERE channel = ? AND button = ?
		ORDER BY at_us DESC, id DESC LIMIT 1`, channel, button))
	if s.d.IsNoRows(err) {
		return a, notFound("watch alert button", button)
	}
	return a, err
}

// ClaimAlertDiagnosis records the first responder who started the alert's diagnosis.
func (s *Store) ClaimAlertDiagnosis(ctx context.Context, id string, by incident.Actor) (store.WatchAlert, bool, error) {
	if by.ID == "" {
		return store.WatchAlert{}, false, invalid("diagnosis claim without an actor")
	}
	var out store.WatchAlert
	claimed := false
	err := s.db.Write(ctx, func(tx Q) error {
		claimed = false
		var err error
		out, err = scanWatchAlert(tx.QueryRow(ctx, `SELECT `+watchAlertCols+` FROM watch_alerts WHERE id = ?`+s.d.ForUpdate, id))
		if s.d.IsNoRows(err) {
			return notFound("watch alert", id)
		}
		if err != nil || out.DiagnosisBy.ID != "" {
			return err
		}
		now := s.now()
		if _, err := tx.Exec(ctx, `UPDATE watch_alerts SET diagnosis_by_id = ?, diagnosis_by_name = ?, diagnosis_us = ? WHERE id = ?`,
			by.ID, by.Name, us(now), id); err != nil {
			return err
		}
		out.DiagnosisBy, out.DiagnosisAt, claimed = by, now, true
		_, err = s.appendTx(ctx, tx, audit.Record{Actor: by, Kind: store.KindWatchDiagnosis, Time: now,
			Payload: map[string]any{"alert": id, "code": out.Code, "channel": out.Channel, "button": out.Button}})
		return err
	})
	return out, claimed, err
}

// ---- subscription ------------------------------------------------------------

const watchSubCols = `watch, subscription_id, resource, expires_us, state, failures, last_error, renewed_us, alerted_us, updated_us`

func scanWatchSub(r Row) (store.WatchSubscription, error) {
	var w store.WatchSubscription
	var exp, renewed, alerted, updated int64
	var lastErr sql.NullString
	err := r.Scan(&w.Watch, &w.SubscriptionID, &w.Resource, &exp, &w.State, &w.Failures, &lastErr, &renewed, &alerted, &updated)
	w.ExpiresAt, w.RenewedAt, w.AlertedAt, w.UpdatedAt = fromUS(exp), fromUS(renewed), fromUS(alerted), fromUS(updated)
	w.LastError = lastErr.String
	return w, err
}

// WatchSubscription returns the watch's subscription record.
func (s *Store) WatchSubscription(ctx context.Context, watch string) (store.WatchSubscription, error) {
	w, err := scanWatchSub(s.db.QueryRow(ctx, `SELECT `+watchSubCols+` FROM watch_subscriptions WHERE watch = ?`, watch))
	if s.d.IsNoRows(err) {
		return w, notFound("watch subscription", watch)
	}
	return w, err
}

// PutWatchSubscription upserts the subscription record, auditing changes of id,
// expiry or state.
func (s *Store) PutWatchSubscription(ctx context.Context, w store.WatchSubscription) error {
	switch w.State {
	case store.SubscriptionActive, store.SubscriptionFailing, store.SubscriptionLapsed:
	default:
		return invalid("unknown subscription state %q", w.State)
	}
	if w.Watch == "" {
		return invalid("subscription without a watch")
	}
	w.LastError = s.opt.Redactor.String(w.LastError)
	return s.db.Write(ctx, func(tx Q) error {
		old, err := scanWatchSub(tx.QueryRow(ctx, `SELECT `+watchSubCols+` FROM watch_subscriptions WHERE watch = ?`+s.d.ForUpdate, w.Watch))
		existed := err == nil
		if err != nil && !s.d.IsNoRows(err) {
			return err
		}
		now := s.now()
		if _, err := tx.Exec(ctx, `INSERT INTO watch_subscriptions (`+watchSubCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (watch) DO UPDATE SET subscription_id = excluded.subscription_id, resource = excluded.resource,
			expires_us = excluded.expires_us, state = excluded.state, failures = excluded.failures, last_error = excluded.last_error,
			renewed_us = excluded.renewed_us, alerted_us = excluded.alerted_us, updated_us = excluded.updated_us`,
			w.Watch, w.SubscriptionID, w.Resource, us(audit.TimeUS(w.ExpiresAt)), w.State, w.Failures, nullable(w.LastError),
			us(audit.TimeUS(w.RenewedAt)), us(audit.TimeUS(w.AlertedAt)), us(now)); err != nil {
			return err
		}
		if existed && old.SubscriptionID == w.SubscriptionID && old.State == w.State &&
			fromUS(us(audit.TimeUS(w.ExpiresAt))).Equal(old.ExpiresAt) {
			return nil
		}
		_, err = s.appendTx(ctx, tx, audit.Record{Actor: incident.BotActor, Kind: store.KindWatchSubscription, Time: now,
			Payload: map[string]any{"watch": w.Watch, "subscription": w.SubscriptionID, "resource": w.Resource,
				"expires": w.ExpiresAt.UTC().Format(time.RFC3339), "state": w.State, "failures": w.Failures, "error": w.LastError}})
		return err
	})
}
