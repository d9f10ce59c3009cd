package core

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

const postCols = `id, run_id, channel, post_key, kind, ref, payload, state, attempts, last_error, external_ref, created_us, next_us`

func scanPost(r Row) (store.Post, error) {
	var p store.Post
	var runID, ref, lastErr, ext sql.NullString
	var kind, payload, state string
	var created, next int64
	err := r.Scan(&p.ID, &runID, &p.Channel, &p.Key, &kind, &ref, &payload, &state, &p.Attempts, &lastErr, &ext, &created, &next)
	p.RunID, p.Ref, p.LastError, p.ExternalRef = runID.String, ref.String, lastErr.String, ext.String
	p.Kind, p.Payload, p.State = store.PostKind(kind), json.RawMessage(payload), store.PostState(state)
	p.CreatedAt, p.NextAt = fromUS(created), fromUS(next)
	return p, err
}

// EnqueuePost stores a chat post before it is sent; an existing key wins.
func (s *Store) EnqueuePost(ctx context.Context, p store.Post) (store.Post, error) {
	switch {
	case p.Channel == "":
		return p, invalid("post without channel")
	case p.Key == "":
		return p, invalid("post without idempotency key")
	case p.Kind == "":
		p.Kind = store.PostNew
	case p.Kind != store.PostNew && p.Kind != store.PostUpdate:
		return p, invalid("unknown post kind %q", p.Kind)
	}
	if p.Kind == store.PostUpdate && p.Ref == "" {
		return p, invalid("update post %q names no post to update (Ref)", p.Key)
	}
	if len(p.Payload) == 0 {
		p.Payload = json.RawMessage("{}")
	}
	if !json.Valid(p.Payload) {
		return p, invalid("post %q: payload is not JSON", p.Key)
	}
	now := s.now()
	var out store.Post
	err := s.db.Write(ctx, func(tx Q) error {
		_, err := tx.Exec(ctx, `INSERT INTO outbox (run_id, channel, post_key, kind, ref, payload, state, attempts, created_us, next_us, lease_owner, lease_until_us)
			VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, 0, '', 0) ON CONFLICT (post_key) DO NOTHING`,
			nullable(p.RunID), p.Channel, p.Key, string(p.Kind), nullable(p.Ref), string(p.Payload), string(store.PostPending), us(now))
		if err != nil {
			return err
		}
		out, err = scanPost(tx.QueryRow(ctx, `SELECT `+postCols+` FROM outbox WHERE post_key = ?`, p.Key))
		return err
	})
	return out, err
}

// postsPerChannel bounds one channel's share of a NextPosts batch. Slack takes
// about one post per second per channel, so a few are enough to keep a channel
// busy until the next fetch.
const postsPerChannel = 4

// NextPosts leases due posts to owner, in order per channel.
func (s *Store) NextPosts(ctx context.Context, owner string, limit int, now time.Time) ([]store.Post, error) {
	if owner == "" {
		return nil, invalid("NextPosts without owner")
	}
	if limit <= 0 {
		limit = 100
	}
	n := us(audit.TimeUS(now))
	var posts []store.Post
	err := s.db.Write(ctx, func(tx Q) error {
		if s.d.LockOutbox != "" {
			if _, err := tx.Exec(ctx, s.d.LockOutbox); err != nil {
				return err
			}
		}
		var err error
		// At most postsPerChannel of a channel per batch: a channel with
		// thousands queued must not fill the batch and starve the others.
		posts, err = queryAll(ctx, tx, `SELECT `+postCols+` FROM (
			SELECT o.*, ROW_NUMBER() OVER (PARTITION BY o.channel ORDER BY o.id) AS nth FROM outbox o
			WHERE o.state = 'pending' AND o.next_us <= ? AND (o.lease_owner = '' OR o.lease_owner = ? OR o.lease_until_us <= ?)
			  AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.channel = o.channel AND p.state = 'pending' AND p.id < o.id
			      AND (p.next_us > ? OR (p.lease_owner <> '' AND p.lease_owner <> ? AND p.lease_until_us > ?)))
			) due WHERE nth <= ? ORDER BY id LIMIT ?`, []any{n, owner, n, n, owner, n, postsPerChannel, limit}, scanPost)
		if err != nil || len(posts) == 0 {
			return err
		}
		ph := make([]string, len(posts))
		args := []any{owner, n + s.opt.PostLease.Microseconds()}
		for i, p := range posts {
			ph[i] = "?"
			args = append(args, p.ID)
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox SET lease_owner = ?, lease_until_us = ? WHERE id IN (`+strings.Join(ph, ",")+`)`, args...); err != nil {
			return err
		}
		for i := range posts {
			if posts[i].Ref == "" {
				continue
			}
			var ext sql.NullString
			err := tx.QueryRow(ctx, `SELECT external_ref FROM outbox WHERE post_key = ?`, posts[i].Ref).Scan(&ext)
			if err != nil && !s.d.IsNoRows(err) {
				return err
			}
			posts[i].RefExternal = ext.String
		}
		return nil
	})
	return posts, err
}

// MarkDelivered records a delivery and audits the chat post.
func (s *Store) MarkDelivered(ctx context.Context, id int64, externalRef string) error {
	return s.db.Write(ctx, func(tx Q) error {
		p, err := scanPost(tx.QueryRow(ctx, `SELECT `+postCols+` FROM outbox WHERE id = ?`+s.d.ForUpdate, id))
		if s.d.IsNoRows(err) {
			return notFound("post", fmt.Sprint(id))
		}
		if err != nil {
			return err
		}
		if p.State == store.PostDelivered {
			return nil // a repeated acknowledgement
		}
		now := s.now()
		if _, err := tx.Exec(ctx, `UPDATE outbox SET state = 'delivered', external_ref = ?, attempts = attempts + 1, lease_owner = '', lease_until_us = 0, delivered_us = ?
			WHERE id = ?`, nullable(externalRef), us(now), id); err != nil {
			return err
		}
		sum := sha256.Sum256(p.Payload)
		_, err = s.appendTx(ctx, tx, audit.Record{Actor: incident.BotActor, RunID: p.RunID, Kind: audit.KindChatPost, Time: now,
			Payload: map[string]any{"post_id": p.ID, "channel": p.Channel, "key": p.Key, "kind": p.Kind, "ref": p.Ref,
				"external_ref": externalRef, "attempts": p.Attempts + 1, "payload_sha256": hex.EncodeToString(sum[:]),
				"state": store.PostDelivered}})
		return err
	})
}

// MarkFailed records a failed attempt; a zero retryAt gives the post up.
func (s *Store) MarkFailed(ctx context.Context, id int64, retryAt time.Time, errText string) error {
	errText = s.opt.Redactor.String(errText)
	return s.db.Write(ctx, func(tx Q) error {
		p, err := scanPost(tx.QueryRow(ctx, `SELECT `+postCols+` FROM outbox WHERE id = ?`+s.d.ForUpdate, id))
		if s.d.IsNoRows(err) {
			return notFound("post", fmt.Sprint(id))
		}
		if err != nil {
			return err
		}
		if p.State != store.PostPending {
			return fmt.Errorf("%w: post %d is %s", incident.ErrConflict, id, p.State)
		}
		state := store.PostPending
		if retryAt.IsZero() {
			state = store.PostDead
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox SET state = ?, attempts = attempts + 1, last_error = ?, next_us = ?, lease_owner = '', lease_until_us = 0
			WHERE id = ?`, string(state), nullable(errText), us(audit.TimeUS(retryAt)), id); err != nil {
			return err
		}
		if state != store.PostDead {
			return nil
		}
		_, err = s.appendTx(ctx, tx, audit.Record{Actor: incident.BotActor, RunID: p.RunID, Kind: audit.KindChatPost,
			Payload: map[string]any{"post_id": p.ID, "channel": p.Channel, "key": p.Key, "kind": p.Kind,
				"attempts": p.Attempts + 1, "state": store.PostDead, "error": errText}})
		return err
	})
}

// Posts returns a run's posts in enqueue order.
func (s *Store) Posts(ctx context.Context, runID string) ([]store.Post, error) {
	return queryAll(ctx, s.db, `SELECT `+postCols+` FROM outbox WHERE run_id = ? ORDER BY id`, []any{runID}, scanPost)
}
