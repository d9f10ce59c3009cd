package core

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"iter"
	"strings"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

// Store implements store.Store over a DB.
type Store struct {
	db    DB
	d     Dialect
	opt   store.Options
	keyID string // audit.KeyID(opt.AuditKey)

	headMu    sync.Mutex
	head      audit.Head // the head as this process last moved it (appendOne, appendTx)
	headKnown bool
}

var _ store.Store = (*Store)(nil)

// New returns a Store over a migrated db.
func New(db DB, d Dialect, opt store.Options) *Store {
	opt = opt.WithDefaults()
	return &Store{db: db, d: d, opt: opt, keyID: audit.KeyID(opt.AuditKey)}
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// DB exposes the database (for the backends' tests and benchmarks).
func (s *Store) DB() DB { return s.db }

func (s *Store) now() time.Time { return audit.TimeUS(s.opt.Now()) }

func us(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromUS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", incident.ErrInvalidInput, fmt.Sprintf(format, args...))
}

func notFound(what, id string) error {
	return fmt.Errorf("%w: %s %q", incident.ErrNotFound, what, id)
}

// redactJSON redacts and canonicalises a JSON blob before it is stored.
func (s *Store) redactJSON(v any) (string, error) {
	raw, err := audit.MarshalPayload(v)
	if err != nil {
		return "", err
	}
	out, err := s.opt.Redactor.JSON(raw)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// newID inserts a row under a freshly generated id, retrying on the rare
// collision. insert must use ON CONFLICT (id) DO NOTHING and report rows inserted.
func (s *Store) newID(prefix string, insert func(id string) (int64, error)) (string, error) {
	for range 8 {
		id := store.NewID(prefix, s.opt.Now())
		n, err := insert(id)
		if err != nil {
			return "", err
		}
		if n == 1 {
			return id, nil
		}
	}
	return "", fmt.Errorf("could not allocate a unique %s- id", prefix)
}

// ---- audit ----------------------------------------------------------------

// Append redacts, seals and appends one audit event.
func (s *Store) Append(ctx context.Context, r audit.Record) (audit.Event, error) {
	if s.d.AppendStatement != "" {
		if e, done, err := s.appendOne(ctx, r); done || err != nil {
			return e, err
		}
	}
	var ev []audit.Event
	err := s.db.Write(ctx, func(tx Q) error {
		var err error
		ev, err = s.appendTx(ctx, tx, r)
		return err
	})
	if err != nil {
		return audit.Event{}, err
	}
	return ev[0], nil
}

// appendOne appends r in one statement that also moves the head, on the
// condition that the head is still the one this process last wrote: one round
// trip where the transaction takes five. When another writer moved the head
// (another replica, or a transaction of this one), nothing is written and
// done is false: the caller appends the usual way, which reads the head.
//
// The head is not held locked while the statement runs: a transaction of this
// process holding the head's row notes its head before it commits
// (appendAfterKnownHead), and would wait for the lock. Two appends racing here
// both try the same head; one of them falls back.
func (s *Store) appendOne(ctx context.Context, r audit.Record) (e audit.Event, done bool, err error) {
	s.headMu.Lock()
	head, known := s.head, s.headKnown
	s.headMu.Unlock()
	if !known || head.KeyID != s.keyID {
		return e, false, nil // the head must be read (and maybe the key's epoch written)
	}
	if e, err = s.prepare(r); err != nil {
		return e, false, err
	}
	e.Seq = head.Seq + 1
	if err := audit.Seal(&e, head.Hash, s.opt.AuditKey); err != nil {
		return e, false, err
	}
	n, err := s.db.Exec(ctx, s.d.AppendStatement, e.Seq, e.Hash, head.Seq, head.Hash, head.KeyID,
		e.Time.UnixMicro(), e.Actor.ID, e.Actor.Name, e.RunID, string(e.Kind), string(e.Payload), string(e.Alg), e.PrevHash, e.Hash)
	if err != nil {
		s.forgetHead()
		return e, false, fmt.Errorf("append audit event: %w", err)
	}
	if n != 1 {
		s.forgetHead()
		return e, false, nil
	}
	s.noteHead(audit.Head{Seq: e.Seq, Hash: e.Hash, KeyID: head.KeyID, KeySince: head.KeySince})
	return e, true, nil
}

// AppendBatch appends several events in one transaction (bulk imports,
// benchmarks); they get consecutive sequence numbers.
func (s *Store) AppendBatch(ctx context.Context, recs []audit.Record) ([]audit.Event, error) {
	var ev []audit.Event
	err := s.db.Write(ctx, func(tx Q) error {
		var err error
		ev, err = s.appendTx(ctx, tx, recs...)
		return err
	})
	return ev, err
}

// prepare turns a record into an event to seal: payload redacted, time set.
func (s *Store) prepare(r audit.Record) (audit.Event, error) {
	if r.Kind == "" {
		return audit.Event{}, invalid("audit record without kind")
	}
	raw, err := audit.MarshalPayload(r.Payload)
	if err != nil {
		return audit.Event{}, fmt.Errorf("audit %s payload: %w", r.Kind, err)
	}
	p, err := s.opt.Redactor.JSON(raw)
	if err != nil {
		return audit.Event{}, fmt.Errorf("audit %s payload: %w", r.Kind, err)
	}
	t := r.Time
	if t.IsZero() {
		t = s.opt.Now()
	}
	return audit.Event{Time: t, Actor: r.Actor, RunID: r.RunID, Kind: r.Kind, Payload: p}, nil
}

// appendTx appends records inside tx. It locks the audit head row, so it must be
// the last lock a transaction takes (callers append after their row updates).
func (s *Store) appendTx(ctx context.Context, tx Q, recs ...audit.Record) ([]audit.Event, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	events := make([]audit.Event, len(recs))
	for i, r := range recs {
		var err error
		if events[i], err = s.prepare(r); err != nil {
			return nil, err
		}
	}
	if done, err := s.appendAfterKnownHead(ctx, tx, events); done || err != nil {
		return events, err
	}
	var (
		last     int64
		prev     string
		headKey  string
		keySince int64
	)
	if err := tx.QueryRow(ctx, `UPDATE audit_head SET seq = seq + ? WHERE id = 1 RETURNING seq, hash, key_id, key_since`, int64(len(recs))).
		Scan(&last, &prev, &headKey, &keySince); err != nil {
		if s.d.IsNoRows(err) {
			return nil, fmt.Errorf("audit: %w: refusing to write (run ndrbot audit verify)", audit.ErrNoHead)
		}
		return nil, fmt.Errorf("audit head: %w", err)
	}
	keyID := s.keyID
	switch {
	case headKey != "" && keyID == "":
		return nil, fmt.Errorf("%w: the audit trail is sealed with key id %s since event %d and no audit key is configured (store.audit_key_file): refusing to write unkeyed events",
			store.ErrAuditKeyMissing, headKey, keySince)
	case keyID != "" && headKey != keyID:
		// First write with this key: the epoch event goes first, so every event
		// after it is keyed and a trail later stripped of its keys is told apart.
		keySince = last - int64(len(recs)) + 1
		if err := tx.QueryRow(ctx, `UPDATE audit_head SET seq = seq + 1, key_id = ?, key_since = ? WHERE id = 1 RETURNING seq`, keyID, keySince).Scan(&last); err != nil {
			return nil, fmt.Errorf("audit head: %w", err)
		}
		payload, err := json.Marshal(audit.KeyEpoch{KeyID: keyID, Since: keySince})
		if err != nil {
			return nil, err
		}
		epoch := audit.Event{Time: s.now(), Actor: incident.BotActor, Kind: audit.KindKeyEpoch, Payload: payload}
		events = append([]audit.Event{epoch}, events...)
	}
	prev, err := s.sealAfter(events, last-int64(len(events)), prev)
	if err != nil {
		return nil, err
	}
	if err := insertEvents(ctx, tx, events); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `UPDATE audit_head SET hash = ? WHERE id = 1`, prev); err != nil {
		return nil, fmt.Errorf("audit head: %w", err)
	}
	s.noteHead(audit.Head{Seq: last, Hash: prev, KeyID: keyID, KeySince: keySince})
	return events[len(events)-len(recs):], nil // the key epoch, if any, is the store's own
}

// appendAfterKnownHead appends events inside tx after the head this process
// last wrote, moving the head in the same statement on the condition that it
// is still that one: two statements where appendTx's own way takes three,
// the head's read among them. When the head is not known, or moved (another
// process, a replica, or a transaction of this one rolled back), nothing is
// written and done is false. The events are sealed in place either way:
// appendTx seals them again after the head it reads.
func (s *Store) appendAfterKnownHead(ctx context.Context, tx Q, events []audit.Event) (done bool, err error) {
	s.headMu.Lock()
	head, known := s.head, s.headKnown
	s.headMu.Unlock()
	if !known || head.KeyID != s.keyID {
		return false, nil // the head must be read (and maybe the key's epoch written)
	}
	prev, err := s.sealAfter(events, head.Seq, head.Hash)
	if err != nil {
		return false, err
	}
	seq := head.Seq + int64(len(events))
	n, err := tx.Exec(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1 AND seq = ? AND hash = ? AND key_id = ?`,
		seq, prev, head.Seq, head.Hash, head.KeyID)
	if err != nil {
		return false, fmt.Errorf("audit head: %w", err)
	}
	if n != 1 {
		s.forgetHead()
		return false, nil
	}
	if err := insertEvents(ctx, tx, events); err != nil {
		return false, err
	}
	s.noteHead(audit.Head{Seq: seq, Hash: prev, KeyID: head.KeyID, KeySince: head.KeySince})
	return true, nil
}

// sealAfter seals events as the ones after event seq, whose hash is prev:
// consecutive sequence numbers, each chained to the one before. It returns the
// last one's hash.
func (s *Store) sealAfter(events []audit.Event, seq int64, prev string) (string, error) {
	for i := range events {
		e := &events[i]
		e.Seq = seq + int64(i) + 1
		if err := audit.Seal(e, prev, s.opt.AuditKey); err != nil {
			return "", err
		}
		prev = e.Hash
	}
	return prev, nil
}

func insertEvents(ctx context.Context, tx Q, events []audit.Event) error {
	for _, e := range events {
		if _, err := tx.Exec(ctx, `INSERT INTO audit_events (seq, ts_us, actor_id, actor_name, run_id, kind, payload, alg, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Seq, e.Time.UnixMicro(), e.Actor.ID, e.Actor.Name, e.RunID, string(e.Kind), string(e.Payload), string(e.Alg), e.PrevHash, e.Hash); err != nil {
			return fmt.Errorf("append audit event: %w", err)
		}
	}
	return nil
}

// noteHead remembers the head a transaction of this process moved to. It is
// noted before that transaction commits: one that rolls back leaves a head
// the database never had, which the next append's condition finds moved.
func (s *Store) noteHead(h audit.Head) {
	s.headMu.Lock()
	defer s.headMu.Unlock()
	s.head, s.headKnown = h, true
}

func (s *Store) forgetHead() {
	s.headMu.Lock()
	defer s.headMu.Unlock()
	s.headKnown = false
}

// Events streams audit events in seq order.
func (s *Store) Events(ctx context.Context, f audit.Filter) iter.Seq2[audit.Event, error] {
	return func(yield func(audit.Event, error) bool) {
		var where []string
		var args []any
		if f.RunID != "" {
			where, args = append(where, "run_id = ?"), append(args, f.RunID)
		}
		if !f.Since.IsZero() {
			where, args = append(where, "ts_us >= ?"), append(args, f.Since.UnixMicro())
		}
		if f.AfterSeq > 0 {
			where, args = append(where, "seq > ?"), append(args, f.AfterSeq)
		}
		if len(f.Kinds) > 0 {
			ph := make([]string, len(f.Kinds))
			for i, k := range f.Kinds {
				ph[i] = "?"
				args = append(args, string(k))
			}
			where = append(where, "kind IN ("+strings.Join(ph, ",")+")")
		}
		q := `SELECT seq, ts_us, actor_id, actor_name, run_id, kind, payload, alg, prev_hash, hash FROM audit_events`
		if len(where) > 0 {
			q += " WHERE " + strings.Join(where, " AND ")
		}
		q += " ORDER BY seq"
		if f.Limit > 0 {
			q += fmt.Sprintf(" LIMIT %d", f.Limit)
		}
		rows, err := s.db.Query(ctx, q, args...)
		if err != nil {
			yield(audit.Event{}, err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			var e audit.Event
			var ts int64
			var kind, payload, alg string
			if err := rows.Scan(&e.Seq, &ts, &e.Actor.ID, &e.Actor.Name, &e.RunID, &kind, &payload, &alg, &e.PrevHash, &e.Hash); err != nil {
				yield(e, err)
				return
			}
			e.Time, e.Kind, e.Payload, e.Alg = time.UnixMicro(ts).UTC(), audit.Kind(kind), json.RawMessage(payload), audit.Alg(alg)
			if !yield(e, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(audit.Event{}, err)
		}
	}
}

// AuditHead returns the last seq and hash written and the key the trail is
// sealed with; audit.ErrNoHead when the head record is gone.
func (s *Store) AuditHead(ctx context.Context) (audit.Head, error) {
	var h audit.Head
	err := s.db.QueryRow(ctx, `SELECT seq, hash, key_id, key_since FROM audit_head WHERE id = 1`).Scan(&h.Seq, &h.Hash, &h.KeyID, &h.KeySince)
	if s.d.IsNoRows(err) {
		return h, audit.ErrNoHead
	}
	return h, err
}

// ---- runs -----------------------------------------------------------------

const runCols = `id, playbook, playbook_version, params, requester_id, requester_name, origin, chat_channel, chat_thread_ts, state, owner, created_us, updated_us`

func scanRun(r Row) (store.Run, error) {
	var run store.Run
	var params, state string
	var ch, ts sql.NullString
	var created, updated int64
	err := r.Scan(&run.ID, &run.Playbook, &run.PlaybookVersion, &params, &run.Requester.ID, &run.Requester.Name,
		&run.Origin, &ch, &ts, &state, &run.Owner, &created, &updated)
	run.Params, run.State = json.RawMessage(params), incident.RunState(state)
	run.Chat = store.ChatRef{Channel: ch.String, ThreadTS: ts.String}
	run.CreatedAt, run.UpdatedAt = fromUS(created), fromUS(updated)
	return run, err
}

// CreateRun stores a new run in state diagnosing.
func (s *Store) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, error) {
	if nr.Playbook == "" {
		return store.Run{}, invalid("run without playbook")
	}
	if nr.Requester.ID == "" {
		return store.Run{}, invalid("run without requester")
	}
	params := nr.Params
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	p, err := s.redactJSON(params)
	if err != nil {
		return store.Run{}, invalid("run params: %v", err)
	}
	now := s.now()
	run := store.Run{Playbook: nr.Playbook, PlaybookVersion: nr.PlaybookVersion, Params: json.RawMessage(p),
		Requester: nr.Requester, Origin: nr.Origin, Chat: nr.Chat, State: incident.RunDiagnosing, Owner: nr.Owner,
		CreatedAt: now, UpdatedAt: now}
	err = s.db.Write(ctx, func(tx Q) error {
		id, err := s.newID("r", func(id string) (int64, error) {
			return tx.Exec(ctx, `INSERT INTO runs (`+runCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (id) DO NOTHING`,
				id, run.Playbook, run.PlaybookVersion, p, run.Requester.ID, run.Requester.Name, run.Origin,
				nullable(run.Chat.Channel), nullable(run.Chat.ThreadTS), string(run.State), run.Owner, us(now), us(now))
		})
		if err != nil {
			return err
		}
		run.ID = id
		_, err = s.appendTx(ctx, tx, audit.Record{Actor: nr.Requester, RunID: id, Kind: audit.KindRun, Time: now,
			Payload: map[string]any{"playbook": run.Playbook, "version": run.PlaybookVersion, "params": run.Params,
				"origin": run.Origin, "chat": run.Chat, "owner": run.Owner}})
		return err
	})
	return run, err
}

// GetRun returns one run.
func (s *Store) GetRun(ctx context.Context, id string) (store.Run, error) {
	run, err := scanRun(s.db.QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE id = ?`, id))
	if s.d.IsNoRows(err) {
		return store.Run{}, notFound("run", id)
	}
	return run, err
}

// ListRuns returns the most recent runs first.
func (s *Store) ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	var (
		where []string
		args  []any
	)
	if len(f.States) > 0 {
		ph := make([]string, len(f.States))
		for i, st := range f.States {
			ph[i] = "?"
			args = append(args, string(st))
		}
		where = append(where, `state IN (`+strings.Join(ph, ",")+`)`)
	}
	if !f.Since.IsZero() {
		where = append(where, `created_us >= ?`)
		args = append(args, us(f.Since))
	}
	q := `SELECT ` + runCols + ` FROM runs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += fmt.Sprintf(` ORDER BY created_us DESC, id DESC LIMIT %d`, f.Limit)
	return queryAll(ctx, s.db, q, args, scanRun)
}

func queryAll[T any](ctx context.Context, q Q, sqlText string, args []any, scan func(Row) (T, error)) ([]T, error) {
	rows, err := q.Query(ctx, sqlText, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// SetRunState moves a run to state to (from, when not empty, must match).
func (s *Store) SetRunState(ctx context.Context, id string, from, to incident.RunState, also ...audit.Record) (store.Run, error) {
	if !to.Valid() {
		return store.Run{}, invalid("unknown run state %q", to)
	}
	var run store.Run
	err := s.db.Write(ctx, func(tx Q) error {
		var err error
		run, err = scanRun(tx.QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE id = ?`+s.d.ForUpdate, id))
		if s.d.IsNoRows(err) {
			return notFound("run", id)
		}
		if err != nil {
			return err
		}
		if from != "" && run.State != from {
			return fmt.Errorf("%w: run %s is %s, not %s", incident.ErrConflict, id, run.State, from)
		}
		if !run.State.CanBecome(to) {
			return fmt.Errorf("%w: run %s is %s and cannot become %s", incident.ErrConflict, id, run.State, to)
		}
		was := run.State
		now := s.now()
		if was != to {
			if _, err := tx.Exec(ctx, `UPDATE runs SET state = ?, updated_us = ? WHERE id = ?`, string(to), us(now), id); err != nil {
				return err
			}
			run.State, run.UpdatedAt = to, now
		}
		recs := make([]audit.Record, 0, 1+len(also))
		if was != to {
			recs = append(recs, audit.Record{Actor: incident.BotActor, RunID: id, Kind: audit.KindState, Time: now,
				Payload: map[string]any{"from": was, "to": to}})
		}
		for _, r := range also {
			if r.RunID == "" {
				r.RunID = id
			}
			recs = append(recs, r)
		}
		_, err = s.appendTx(ctx, tx, recs...)
		return err
	})
	return run, err
}

// SetRunChat records where the run's thread lives.
func (s *Store) SetRunChat(ctx context.Context, id string, chat store.ChatRef) error {
	return s.db.Write(ctx, func(tx Q) error {
		n, err := tx.Exec(ctx, `UPDATE runs SET chat_channel = ?, chat_thread_ts = ?, updated_us = ? WHERE id = ?`,
			nullable(chat.Channel), nullable(chat.ThreadTS), us(s.now()), id)
		if err == nil && n == 0 {
			return notFound("run", id)
		}
		return err
	})
}

// ---- steps, findings, proposals --------------------------------------------

func finalStep(st incident.StepStatus) bool {
	switch st {
	case incident.StepOK, incident.StepFailed, incident.StepTimeout, incident.StepSkipped:
		return true
	}
	return false
}

// PutStep upserts a step result and audits it once it is final.
func (s *Store) PutStep(ctx context.Context, runID, phase string, r incident.StepResult) error {
	if r.Step == "" {
		return invalid("step result without step id")
	}
	if phase == "" {
		phase = "diagnose"
	}
	res, err := s.redactJSON(r)
	if err != nil {
		return err
	}
	return s.db.Write(ctx, func(tx Q) error {
		now := s.now()
		// A replay, the same status and result again, changes no row and is
		// not audited again.
		n, err := tx.Exec(ctx, `INSERT INTO steps (run_id, step, phase, status, result, created_us, updated_us) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, step, phase) DO UPDATE SET status = excluded.status, result = excluded.result, updated_us = excluded.updated_us
			WHERE steps.status <> excluded.status OR steps.result <> excluded.result`,
			runID, r.Step, phase, string(r.Status), res, us(now), us(now))
		if err != nil {
			if isFK(err) {
				return notFound("run", runID)
			}
			return err
		}
		if n == 0 || !finalStep(r.Status) {
			return nil
		}
		_, err = s.appendTx(ctx, tx, audit.Record{Actor: incident.BotActor, RunID: runID, Kind: audit.KindStep, Time: now,
			Payload: map[string]any{"step": r.Step, "phase": phase, "title": r.Title, "target": r.Target,
				"executor": r.Executor, "hosts": r.Hosts, "status": r.Status, "exit_code": r.ExitCode,
				"script_digest": r.Digest, "duration": r.Duration.String(), "duration_ms": r.Duration.Milliseconds(),
				"error": r.Error, "rows": len(r.Rows), "verifying": r.Verifying}})
		return err
	})
}

func isFK(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "FOREIGN KEY") || strings.Contains(err.Error(), "foreign key"))
}

// Steps returns a run's step results.
func (s *Store) Steps(ctx context.Context, runID string) ([]store.StepRecord, error) {
	return queryAll(ctx, s.db, `SELECT run_id, phase, result, updated_us FROM steps WHERE run_id = ? ORDER BY created_us, phase, step`,
		[]any{runID}, func(r Row) (store.StepRecord, error) {
			var sr store.StepRecord
			var res string
			var upd int64
			if err := r.Scan(&sr.RunID, &sr.Phase, &res, &upd); err != nil {
				return sr, err
			}
			sr.UpdatedAt = fromUS(upd)
			return sr, json.Unmarshal([]byte(res), &sr.Result)
		})
}

// AddFindings appends findings to a run and audits each.
func (s *Store) AddFindings(ctx context.Context, runID string, fs ...incident.Finding) error {
	if len(fs) == 0 {
		return nil
	}
	return s.db.Write(ctx, func(tx Q) error {
		now := s.now()
		recs := make([]audit.Record, 0, len(fs))
		for _, f := range fs {
			js, err := s.redactJSON(f)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO findings (run_id, finding, created_us) VALUES (?, ?, ?)`, runID, js, us(now)); err != nil {
				if isFK(err) {
					return notFound("run", runID)
				}
				return err
			}
			recs = append(recs, audit.Record{Actor: incident.BotActor, RunID: runID, Kind: audit.KindFinding, Time: now, Payload: json.RawMessage(js)})
		}
		_, err := s.appendTx(ctx, tx, recs...)
		return err
	})
}

// Findings returns a run's findings in order.
func (s *Store) Findings(ctx context.Context, runID string) ([]incident.Finding, error) {
	return queryAll(ctx, s.db, `SELECT finding FROM findings WHERE run_id = ? ORDER BY id`, []any{runID},
		func(r Row) (incident.Finding, error) {
			var f incident.Finding
			var js string
			if err := r.Scan(&js); err != nil {
				return f, err
			}
			return f, json.Unmarshal([]byte(js), &f)
		})
}

// PutProposal stores or replaces a proposal and audits it.
func (s *Store) PutProposal(ctx context.Context, runID string, p incident.Proposal) error {
	if p.ID == "" {
		return invalid("proposal without id")
	}
	js, err := s.redactJSON(p)
	if err != nil {
		return err
	}
	return s.db.Write(ctx, func(tx Q) error {
		var old string
		err := tx.QueryRow(ctx, `SELECT proposal FROM proposals WHERE run_id = ? AND proposal_id = ?`, runID, p.ID).Scan(&old)
		if err != nil && !s.d.IsNoRows(err) {
			return err
		}
		if err == nil && old == js {
			return nil
		}
		now := s.now()
		if _, err := tx.Exec(ctx, `INSERT INTO proposals (run_id, proposal_id, proposal, created_us, updated_us) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (run_id, proposal_id) DO UPDATE SET proposal = excluded.proposal, updated_us = excluded.updated_us`,
			runID, p.ID, js, us(now), us(now)); err != nil {
			if isFK(err) {
				return notFound("run", runID)
			}
			return err
		}
		_, err = s.appendTx(ctx, tx, audit.Record{Actor: incident.BotActor, RunID: runID, Kind: audit.KindProposal, Time: now,
			Payload: map[string]any{"id": p.ID, "relief": p.Relief, "title": p.Title, "target": p.Target, "hosts": p.Hosts,
				"command": p.Command, "args": p.Args, "risk": p.Risk, "approval": p.Approval, "blocked": p.Blocked,
				"because": len(p.Because)}})
		return err
	})
}

// Proposals returns a run's proposals.
func (s *Store) Proposals(ctx context.Context, runID string) ([]incident.Proposal, error) {
	return queryAll(ctx, s.db, `SELECT proposal FROM proposals WHERE run_id = ? ORDER BY created_us, proposal_id`, []any{runID},
		func(r Row) (incident.Proposal, error) {
			var p incident.Proposal
			var js string
			if err := r.Scan(&js); err != nil {
				return p, err
			}
			return p, json.Unmarshal([]byte(js), &p)
		})
}
