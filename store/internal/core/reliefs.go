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

const execCols = `id, approval_id, run_id, relief_id, hosts, digest, owner, state, output, error, started_us, finished_us`

// maxAuditOutput bounds the relief output copied into an audit event.
const maxAuditOutput = 4096

func scanExec(r Row) (store.Execution, error) {
	var x store.Execution
	var hosts, state string
	var output, errText sql.NullString
	var started, finished int64
	err := r.Scan(&x.ID, &x.ApprovalID, &x.RunID, &x.ReliefID, &hosts, &x.Digest, &x.Owner, &state, &output, &errText, &started, &finished)
	if err != nil {
		return x, err
	}
	x.State, x.Output, x.Error = incident.ExecState(state), output.String, errText.String
	x.StartedAt, x.FinishedAt = fromUS(started), fromUS(finished)
	return x, json.Unmarshal([]byte(hosts), &x.Hosts)
}

func (s *Store) execByApproval(ctx context.Context, q Q, approvalID string) (store.Execution, bool, error) {
	x, err := scanExec(q.QueryRow(ctx, `SELECT `+execCols+` FROM executions WHERE approval_id = ?`, approvalID))
	if s.d.IsNoRows(err) {
		return x, false, nil
	}
	return x, err == nil, err
}

// ClaimRelief atomically starts the execution of an approved relief.
func (s *Store) ClaimRelief(ctx context.Context, approvalID, owner, digestNow string) (store.Execution, error) {
	if owner == "" {
		return store.Execution{}, invalid("claim without owner")
	}
	var (
		x       store.Execution
		refusal error
	)
	err := s.db.Write(ctx, func(tx Q) error {
		refusal = nil
		a, err := s.getApproval(ctx, tx, approvalID, true) // serializes claims of this approval
		if err != nil {
			return err
		}
		if prev, ok, err := s.execByApproval(ctx, tx, approvalID); err != nil {
			return err
		} else if ok {
			refusal = &store.ClaimError{Existing: prev}
			return nil
		}
		switch a.Status {
		case incident.ApprovalApproved:
		case incident.ApprovalVoid:
			refusal = &store.VoteError{Refusal: store.RefusedVoid, Approval: a}
			return nil
		default:
			refusal = &store.VoteError{Refusal: store.RefusedNotApproved, Approval: a}
			return nil
		}
		now := s.now()
		if digestNow != a.Digest {
			if err := s.void(ctx, tx, &a, incident.BotActor, digestNow, now); err != nil {
				return err
			}
			refusal = &store.VoteError{Refusal: store.RefusedVoid, Approval: a}
			return nil
		}
		if re, err := s.roleCheck(ctx, tx, a); err != nil {
			return err
		} else if re != nil {
			refusal = re
			var votes []map[string]any
			for _, v := range a.Votes {
				if v.Decision == incident.Approve {
					votes = append(votes, map[string]any{"voter": v.Voter.String(), "role": v.Role})
				}
			}
			_, err := s.appendTx(ctx, tx, audit.Record{Actor: incident.BotActor, RunID: a.RunID, Kind: audit.KindClaimRefused, Time: now,
				Payload: map[string]any{"approval_id": a.ID, "relief": a.ReliefID, "owner": owner, "required_role": re.Role,
					"required": a.Required, "votes": votes, "reason": re.Error()}})
			return err
		}
		if g, err := s.guard(ctx, tx, a, now); err != nil {
			return err
		} else if g != nil {
			refusal = g
			_, err := s.appendTx(ctx, tx, audit.Record{Actor: incident.BotActor, RunID: a.RunID, Kind: audit.KindClaimRefused, Time: now,
				Payload: map[string]any{"approval_id": a.ID, "relief": a.ReliefID, "host": g.Host, "owner": owner,
					"other_execution": g.Other.ID, "other_run": g.Other.RunID, "reason": g.Error()}})
			return err
		}
		hosts, _ := json.Marshal(a.Hosts)
		x = store.Execution{ApprovalID: a.ID, RunID: a.RunID, ReliefID: a.ReliefID, Hosts: a.Hosts, Digest: a.Digest,
			Owner: owner, State: incident.ExecRunning, StartedAt: now}
		x.ID, err = s.newID("x", func(id string) (int64, error) {
			return tx.Exec(ctx, `INSERT INTO executions (`+execCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, 0)
				ON CONFLICT (id) DO NOTHING`,
				id, x.ApprovalID, x.RunID, x.ReliefID, string(hosts), x.Digest, x.Owner, string(x.State), us(now))
		})
		if err != nil {
			if s.d.IsUnique(err) { // approval_id is unique: the backstop under the row lock
				return fmt.Errorf("%w: relief of approval %s already claimed", incident.ErrConflict, approvalID)
			}
			return err
		}
		for _, h := range a.Hosts {
			if _, err := tx.Exec(ctx, `INSERT INTO execution_hosts (execution_id, relief_id, host, started_us) VALUES (?, ?, ?, ?)
				ON CONFLICT (execution_id, host) DO NOTHING`, x.ID, x.ReliefID, h, us(now)); err != nil {
				return err
			}
		}
		_, err = s.appendTx(ctx, tx, audit.Record{Actor: incident.BotActor, RunID: x.RunID, Kind: audit.KindRelief, Time: now,
			Payload: map[string]any{"execution_id": x.ID, "approval_id": x.ApprovalID, "relief": x.ReliefID, "hosts": x.Hosts,
				"digest": x.Digest, "owner": owner, "state": x.State, "approvers": approverNames(a)}})
		return err
	})
	if err != nil {
		return store.Execution{}, err
	}
	if refusal != nil {
		return store.Execution{}, refusal
	}
	return x, nil
}

// roleCheck refuses, inside the claim's transaction, an approval whose
// approving votes of the required role do not make the quorum. The role
// required is the stricter of the approval's and its stored proposal's
// approval.role: an approval an older ndrbot requested reads as approver (the
// schema's default) although its relief asked for an admin.
func (s *Store) roleCheck(ctx context.Context, tx Q, a store.Approval) (*store.RoleError, error) {
	need := store.StricterRole(a.Role, "")
	var raw string
	err := tx.QueryRow(ctx, `SELECT proposal FROM proposals WHERE run_id = ? AND proposal_id = ?`, a.RunID, a.ProposalID).Scan(&raw)
	switch {
	case err == nil:
		var p struct {
			Approval struct {
				Role string `json:"role"`
			} `json:"approval"`
		}
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return nil, fmt.Errorf("reading proposal %s of run %s: %w", a.ProposalID, a.RunID, err)
		}
		need = store.StricterRole(need, p.Approval.Role)
	case !s.d.IsNoRows(err):
		return nil, err
	}
	if a.Qualified(need) >= a.Required {
		return nil, nil
	}
	return &store.RoleError{Approval: a, Role: need}, nil
}

// guard checks, inside the claim's transaction, what no single run can see: a
// relief running on one of the hosts, or this relief's cooldown there, from any
// run, channel or replica. Claims are serialised first — SQLite's write
// transaction holds the database; PostgreSQL locks the audit head row every
// claim appends to — so two claims on one host cannot both pass.
func (s *Store) guard(ctx context.Context, tx Q, a store.Approval, now time.Time) (*store.GuardError, error) {
	if s.d.ForUpdate != "" {
		var seq int64
		if err := tx.QueryRow(ctx, `SELECT seq FROM audit_head WHERE id = 1`+s.d.ForUpdate).Scan(&seq); err != nil {
			return nil, fmt.Errorf("serialising the claim: %w", err)
		}
	}
	for _, h := range a.Hosts {
		other, err := scanExec(tx.QueryRow(ctx, `SELECT `+prefixed("e.", execCols)+` FROM execution_hosts h JOIN executions e ON e.id = h.execution_id
			WHERE h.host = ? AND e.state = ? ORDER BY e.started_us DESC LIMIT 1`, h, string(incident.ExecRunning)))
		switch {
		case err == nil:
			return &store.GuardError{Relief: a.ReliefID, Host: h, Other: other}, nil
		case !s.d.IsNoRows(err):
			return nil, err
		}
		if a.Cooldown <= 0 {
			continue
		}
		last, err := scanExec(tx.QueryRow(ctx, `SELECT `+prefixed("e.", execCols)+` FROM execution_hosts h JOIN executions e ON e.id = h.execution_id
			WHERE h.relief_id = ? AND h.host = ? ORDER BY h.started_us DESC LIMIT 1`, a.ReliefID, h))
		switch {
		case s.d.IsNoRows(err):
			continue
		case err != nil:
			return nil, err
		}
		if until := last.StartedAt.Add(a.Cooldown); now.Before(until) {
			return &store.GuardError{Relief: a.ReliefID, Host: h, Other: last, Until: until}, nil
		}
	}
	return nil, nil
}

// prefixed qualifies each column of a column list with a table alias.
func prefixed(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = alias + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

func approverNames(a store.Approval) []string {
	names := []string{}
	for _, v := range a.Approvers() {
		names = append(names, v.String())
	}
	return names
}

// FinishRelief records the outcome of a running execution.
func (s *Store) FinishRelief(ctx context.Context, executionID string, r store.ReliefOutcome) (store.Execution, error) {
	var x store.Execution
	state := incident.ExecFailed
	if r.OK {
		state = incident.ExecOK
	}
	output := s.opt.Redactor.String(r.Output)
	errText := s.opt.Redactor.String(r.Error)
	err := s.db.Write(ctx, func(tx Q) error {
		var err error
		x, err = scanExec(tx.QueryRow(ctx, `SELECT `+execCols+` FROM executions WHERE id = ?`+s.d.ForUpdate, executionID))
		if s.d.IsNoRows(err) {
			return notFound("execution", executionID)
		}
		if err != nil {
			return err
		}
		if x.State != incident.ExecRunning {
			return fmt.Errorf("%w: execution %s is %s, not running", incident.ErrConflict, executionID, x.State)
		}
		now := s.now()
		if _, err := tx.Exec(ctx, `UPDATE executions SET state = ?, output = ?, error = ?, finished_us = ? WHERE id = ?`,
			string(state), nullable(output), nullable(errText), us(now), executionID); err != nil {
			return err
		}
		x.State, x.Output, x.Error, x.FinishedAt = state, output, errText, now
		auditOut := output
		if len(auditOut) > maxAuditOutput {
			auditOut = auditOut[:maxAuditOutput] + "…(truncated)"
		}
		_, err = s.appendTx(ctx, tx, audit.Record{Actor: incident.BotActor, RunID: x.RunID, Kind: audit.KindRelief, Time: now,
			Payload: map[string]any{"execution_id": x.ID, "approval_id": x.ApprovalID, "relief": x.ReliefID, "hosts": x.Hosts,
				"state": state, "error": errText, "output": auditOut, "duration": now.Sub(x.StartedAt).String()}})
		return err
	})
	return x, err
}

// GetExecution returns one execution.
func (s *Store) GetExecution(ctx context.Context, id string) (store.Execution, error) {
	x, err := scanExec(s.db.QueryRow(ctx, `SELECT `+execCols+` FROM executions WHERE id = ?`, id))
	if s.d.IsNoRows(err) {
		return x, notFound("execution", id)
	}
	return x, err
}

// Executions returns a run's executions, oldest first.
func (s *Store) Executions(ctx context.Context, runID string) ([]store.Execution, error) {
	return queryAll(ctx, s.db, `SELECT `+execCols+` FROM executions WHERE run_id = ? ORDER BY started_us, id`, []any{runID}, scanExec)
}

// LastRelief returns when reliefID last started on host.
func (s *Store) LastRelief(ctx context.Context, reliefID, host string) (time.Time, bool, error) {
	var last sql.NullInt64
	err := s.db.QueryRow(ctx, `SELECT MAX(started_us) FROM execution_hosts WHERE relief_id = ? AND host = ?`, reliefID, host).Scan(&last)
	if err != nil || !last.Valid {
		return time.Time{}, false, err
	}
	return fromUS(last.Int64), true, nil
}

// Heartbeat extends owner's lease.
func (s *Store) Heartbeat(ctx context.Context, owner string, until time.Time) error {
	if owner == "" {
		return invalid("heartbeat without owner")
	}
	return s.db.Write(ctx, func(tx Q) error {
		_, err := tx.Exec(ctx, `INSERT INTO leases (owner, until_us) VALUES (?, ?)
			ON CONFLICT (owner) DO UPDATE SET until_us = excluded.until_us`, owner, us(until))
		return err
	})
}

// Recover takes over interrupted work of owner and of owners without a live lease.
func (s *Store) Recover(ctx context.Context, owner string, now time.Time) (store.Recovery, error) {
	if owner == "" {
		return store.Recovery{}, invalid("recover without owner")
	}
	now = audit.TimeUS(now)
	var rec store.Recovery
	err := s.db.Write(ctx, func(tx Q) error {
		rec = store.Recovery{}
		live, err := queryAll(ctx, tx, `SELECT owner FROM leases WHERE until_us > ? AND owner <> ?`, []any{us(now), owner},
			func(r Row) (string, error) {
				var o string
				return o, r.Scan(&o)
			})
		if err != nil {
			return err
		}
		mine := func(o string) bool { return !slices.Contains(live, o) }

		running, err := queryAll(ctx, tx, `SELECT `+execCols+` FROM executions WHERE state = ? ORDER BY started_us, id`+s.d.ForUpdate,
			[]any{string(incident.ExecRunning)}, scanExec)
		if err != nil {
			return err
		}
		var recs []audit.Record
		interrupted := map[string]bool{}
		const unknownNote = "the process running this relief ended before it reported; the outcome is unknown and it will not be re-run: check the target and decide"
		for _, x := range running {
			if !mine(x.Owner) {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE executions SET state = ?, error = ?, finished_us = ? WHERE id = ? AND state = ?`,
				string(incident.ExecUnknown), unknownNote, us(now), x.ID, string(incident.ExecRunning)); err != nil {
				return err
			}
			was := x.Owner
			x.State, x.Error, x.FinishedAt = incident.ExecUnknown, unknownNote, now
			rec.Unknown = append(rec.Unknown, x)
			interrupted[x.RunID] = true
			recs = append(recs, audit.Record{Actor: incident.BotActor, RunID: x.RunID, Kind: audit.KindRecovery, Time: now,
				Payload: map[string]any{"what": "relief", "id": x.ID, "relief": x.ReliefID, "hosts": x.Hosts,
					"from": incident.ExecRunning, "to": incident.ExecUnknown, "owner_was": was, "owner": owner, "note": unknownNote}})
		}

		runs, err := queryAll(ctx, tx, `SELECT `+runCols+` FROM runs WHERE state IN (?, ?, ?, ?) ORDER BY created_us, id`+s.d.ForUpdate,
			[]any{string(incident.RunDiagnosing), string(incident.RunAwaitingApproval), string(incident.RunRelieving), string(incident.RunVerifying)}, scanRun)
		if err != nil {
			return err
		}
		for _, r := range runs {
			if interrupted[r.ID] {
				continue
			}
			// A chat run awaiting approval lives on without its process (a click
			// continues it); a terminal's has nobody left to approve it.
			if (r.State == incident.RunAwaitingApproval && r.Origin != "cli") || !mine(r.Owner) {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE runs SET owner = ?, updated_us = ? WHERE id = ?`, owner, us(now), r.ID); err != nil {
				return err
			}
			was := r.Owner
			r.Owner, r.UpdatedAt = owner, now
			rec.Resume = append(rec.Resume, r)
			recs = append(recs, audit.Record{Actor: incident.BotActor, RunID: r.ID, Kind: audit.KindRecovery, Time: now,
				Payload: map[string]any{"what": "run", "id": r.ID, "from": r.State, "to": r.State, "owner_was": was, "owner": owner,
					"note": "resumed after a restart: read-only steps are re-run"}})
		}
		for _, id := range sortedKeys(interrupted) {
			r, err := scanRun(tx.QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE id = ?`, id))
			if err != nil {
				return err
			}
			from := r.State
			if !from.Terminal() {
				if _, err := tx.Exec(ctx, `UPDATE runs SET state = ?, owner = ?, updated_us = ? WHERE id = ?`,
					string(incident.RunInterrupted), owner, us(now), id); err != nil {
					return err
				}
				r.State, r.Owner, r.UpdatedAt = incident.RunInterrupted, owner, now
			}
			rec.Interrupted = append(rec.Interrupted, r)
			recs = append(recs, audit.Record{Actor: incident.BotActor, RunID: id, Kind: audit.KindRecovery, Time: now,
				Payload: map[string]any{"what": "run", "id": id, "from": from, "to": r.State, "owner": owner,
					"note": "a relief's outcome is unknown: a human must check and decide"}})
		}
		_, err = s.appendTx(ctx, tx, recs...)
		return err
	})
	return rec, err
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
