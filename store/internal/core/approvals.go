package core

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

const approvalCols = `id, run_id, proposal_id, relief_id, hosts, digest, required, four_eyes, requester_id, requester_name,
	expires_us, status, decided_by_id, decided_by_name, decided_us, reason, created_us, cooldown_us, role`

func scanApproval(r Row) (store.Approval, error) {
	var a store.Approval
	var hosts, status string
	var expires, decided, created, cooldown int64
	var dID, dName, reason sql.NullString
	err := r.Scan(&a.ID, &a.RunID, &a.ProposalID, &a.ReliefID, &hosts, &a.Digest, &a.Required, &a.FourEyes,
		&a.Requester.ID, &a.Requester.Name, &expires, &status, &dID, &dName, &decided, &reason, &created, &cooldown, &a.Role)
	if err != nil {
		return a, err
	}
	a.Status = incident.ApprovalStatus(status)
	a.DecidedBy = incident.Actor{ID: dID.String, Name: dName.String}
	a.ExpiresAt, a.DecidedAt, a.CreatedAt = fromUS(expires), fromUS(decided), fromUS(created)
	a.Reason = reason.String
	a.Cooldown = time.Duration(cooldown) * time.Microsecond
	return a, json.Unmarshal([]byte(hosts), &a.Hosts)
}

func (s *Store) loadVotes(ctx context.Context, q Q, a *store.Approval) error {
	votes, err := queryAll(ctx, q, `SELECT voter_id, voter_name, decision, at_us, role FROM votes WHERE approval_id = ? ORDER BY at_us, voter_id`,
		[]any{a.ID}, func(r Row) (store.Vote, error) {
			var v store.Vote
			var d string
			var at int64
			err := r.Scan(&v.Voter.ID, &v.Voter.Name, &d, &at, &v.Role)
			v.Decision, v.At = incident.Decision(d), fromUS(at)
			return v, err
		})
	a.Votes = votes
	return err
}

func (s *Store) getApproval(ctx context.Context, q Q, id string, lock bool) (store.Approval, error) {
	sqlText := `SELECT ` + approvalCols + ` FROM approvals WHERE id = ?`
	if lock {
		sqlText += s.d.ForUpdate
	}
	a, err := scanApproval(q.QueryRow(ctx, sqlText, id))
	if s.d.IsNoRows(err) {
		return a, notFound("approval", id)
	}
	if err != nil {
		return a, err
	}
	return a, s.loadVotes(ctx, q, &a)
}

// RequestApproval opens a pending approval and audits the request.
func (s *Store) RequestApproval(ctx context.Context, na store.NewApproval) (store.Approval, error) {
	switch {
	case na.RunID == "" || na.ReliefID == "":
		return store.Approval{}, invalid("approval needs a run and a relief")
	case na.Digest == "":
		return store.Approval{}, invalid("approval without digest")
	case na.Requester.ID == "":
		return store.Approval{}, invalid("approval without requester")
	case na.ExpiresAt.IsZero():
		return store.Approval{}, invalid("approval without expiry")
	}
	if na.Role == "" {
		na.Role = store.RoleApprover
	}
	if !store.ValidRole(na.Role) {
		return store.Approval{}, invalid("approval role %q is not a role (%s or %s)", na.Role, store.RoleApprover, store.RoleAdmin)
	}
	if na.Required < 1 {
		na.Required = 1
	}
	if na.ProposalID == "" {
		na.ProposalID = na.ReliefID
	}
	if na.Hosts == nil {
		na.Hosts = []string{}
	}
	hosts, _ := json.Marshal(na.Hosts)
	now := s.now()
	a := store.Approval{RunID: na.RunID, ProposalID: na.ProposalID, ReliefID: na.ReliefID, Hosts: na.Hosts,
		Digest: na.Digest, Required: na.Required, FourEyes: na.FourEyes, Requester: na.Requester,
		ExpiresAt: audit.TimeUS(na.ExpiresAt), Status: incident.ApprovalPending, CreatedAt: now, Cooldown: na.Cooldown.Truncate(time.Microsecond),
		Role: na.Role}
	err := s.db.Write(ctx, func(tx Q) error {
		id, err := s.newID("a", func(id string) (int64, error) {
			n, err := tx.Exec(ctx, `INSERT INTO approvals (`+approvalCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, 0, NULL, ?, ?, ?)
				ON CONFLICT (id) DO NOTHING`,
				id, a.RunID, a.ProposalID, a.ReliefID, string(hosts), a.Digest, a.Required, a.FourEyes,
				a.Requester.ID, a.Requester.Name, us(a.ExpiresAt), string(a.Status), us(now), a.Cooldown.Microseconds(), a.Role)
			if isFK(err) {
				return 0, notFound("run", a.RunID)
			}
			return n, err
		})
		if err != nil {
			return err
		}
		a.ID = id
		_, err = s.appendTx(ctx, tx, audit.Record{Actor: na.Requester, RunID: a.RunID, Kind: audit.KindApprovalRequest, Time: now,
			Payload: map[string]any{"approval_id": id, "proposal_id": a.ProposalID, "relief": a.ReliefID, "hosts": a.Hosts,
				"digest": a.Digest, "required": a.Required, "four_eyes": a.FourEyes, "role": a.Role,
				"expires_at": a.ExpiresAt.Format(audit.TimeLayout)}})
		return err
	})
	return a, err
}

// GetApproval returns one approval with its votes.
func (s *Store) GetApproval(ctx context.Context, id string) (store.Approval, error) {
	return s.getApproval(ctx, s.db, id, false)
}

// Approvals returns a run's approvals, oldest first.
func (s *Store) Approvals(ctx context.Context, runID string) ([]store.Approval, error) {
	as, err := queryAll(ctx, s.db, `SELECT `+approvalCols+` FROM approvals WHERE run_id = ? ORDER BY created_us, id`, []any{runID}, scanApproval)
	if err != nil {
		return nil, err
	}
	for i := range as {
		if err := s.loadVotes(ctx, s.db, &as[i]); err != nil {
			return nil, err
		}
	}
	return as, nil
}

// decide marks a pending approval decided (in tx) and updates a.
func (s *Store) decide(ctx context.Context, tx Q, a *store.Approval, st incident.ApprovalStatus, by incident.Actor, at time.Time, reason string) error {
	n, err := tx.Exec(ctx, `UPDATE approvals SET status = ?, decided_by_id = ?, decided_by_name = ?, decided_us = ?, reason = ?
		WHERE id = ? AND status = ?`, string(st), by.ID, by.Name, us(at), nullable(reason), a.ID, string(a.Status))
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("%w: approval %s changed concurrently", incident.ErrConflict, a.ID)
	}
	a.Status, a.DecidedBy, a.DecidedAt, a.Reason = st, by, at, reason
	return nil
}

func (s *Store) expire(ctx context.Context, tx Q, a *store.Approval, now time.Time) error {
	if err := s.decide(ctx, tx, a, incident.ApprovalExpired, incident.BotActor, now, "expired before a decision"); err != nil {
		return err
	}
	_, err := s.appendTx(ctx, tx, audit.Record{Actor: incident.BotActor, RunID: a.RunID, Kind: audit.KindExpired, Time: now,
		Payload: map[string]any{"approval_id": a.ID, "relief": a.ReliefID, "expires_at": a.ExpiresAt.Format(audit.TimeLayout),
			"votes": a.Qualified(a.Role), "required": a.Required}})
	return err
}

func (s *Store) void(ctx context.Context, tx Q, a *store.Approval, by incident.Actor, digestNow string, now time.Time) error {
	reason := fmt.Sprintf("what would run changed (digest %s, approved %s)", shortHash(digestNow), shortHash(a.Digest))
	if err := s.decide(ctx, tx, a, incident.ApprovalVoid, incident.BotActor, now, reason); err != nil {
		return err
	}
	_, err := s.appendTx(ctx, tx, audit.Record{Actor: by, RunID: a.RunID, Kind: audit.KindVoid, Time: now,
		Payload: map[string]any{"approval_id": a.ID, "relief": a.ReliefID, "reason": reason,
			"digest_approved": a.Digest, "digest_now": digestNow}})
	return err
}

func shortHash(h string) string {
	if h == "" {
		return "(none)"
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Vote records one approver's decision atomically.
func (s *Store) Vote(ctx context.Context, approvalID string, voter incident.Actor, role string, d incident.Decision, digestNow string, now time.Time) (store.Outcome, error) {
	if d != incident.Approve && d != incident.Reject {
		return store.Outcome{}, invalid("unknown decision %q", d)
	}
	if voter.ID == "" {
		return store.Outcome{}, invalid("vote without voter")
	}
	if !store.ValidRole(role) {
		return store.Outcome{}, invalid("vote of %s under role %q: the caller must say which role it verified (%s or %s)",
			voter, role, store.RoleApprover, store.RoleAdmin)
	}
	now = audit.TimeUS(now)
	var (
		out     store.Outcome
		refusal error
	)
	err := s.db.Write(ctx, func(tx Q) error {
		refusal = nil
		a, err := s.getApproval(ctx, tx, approvalID, true)
		if err != nil {
			return err
		}
		out = store.Outcome{Required: a.Required, Votes: a.Qualified(a.Role), Approval: a}
		refuse := func(r store.Refusal) error {
			out.Approval = a
			refusal = &store.VoteError{Refusal: r, Approval: a}
			return nil
		}
		switch {
		case a.Status.Decided():
			return refuse(store.RefusedDecided)
		case !now.Before(a.ExpiresAt):
			if err := s.expire(ctx, tx, &a, now); err != nil {
				return err
			}
			return refuse(store.RefusedExpired)
		case d == incident.Approve && digestNow != a.Digest:
			if err := s.void(ctx, tx, &a, voter, digestNow, now); err != nil {
				return err
			}
			return refuse(store.RefusedVoid)
		}
		for _, v := range a.Votes {
			if v.Voter.ID == voter.ID {
				return refuse(store.RefusedAlreadyVoted)
			}
		}
		if d == incident.Approve && a.FourEyes && voter.ID == a.Requester.ID {
			_, err := s.appendTx(ctx, tx, audit.Record{Actor: voter, RunID: a.RunID, Kind: audit.KindVoteRefused, Time: now,
				Payload: map[string]any{"approval_id": a.ID, "relief": a.ReliefID, "reason": string(store.RefusedFourEyes)}})
			if err != nil {
				return err
			}
			return refuse(store.RefusedFourEyes)
		}
		if !store.RoleSatisfies(role, a.Role) {
			// The click checks the role first; this is the path that skipped it.
			re := &store.RoleError{Approval: a, Role: a.Role, Vote: &store.Vote{Voter: voter, Decision: d, At: now, Role: role}}
			_, err := s.appendTx(ctx, tx, audit.Record{Actor: voter, RunID: a.RunID, Kind: audit.KindVoteRefused, Time: now,
				Payload: map[string]any{"approval_id": a.ID, "relief": a.ReliefID, "reason": re.Error(),
					"role": role, "required_role": a.Role}})
			if err != nil {
				return err
			}
			out.Approval, refusal = a, re
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO votes (approval_id, voter_id, voter_name, decision, at_us, role) VALUES (?, ?, ?, ?, ?, ?)`,
			a.ID, voter.ID, voter.Name, string(d), us(now), role); err != nil {
			if s.d.IsUnique(err) {
				return fmt.Errorf("%w: %s already voted on approval %s", incident.ErrConflict, voter, a.ID)
			}
			return err
		}
		a.Votes = append(a.Votes, store.Vote{Voter: voter, Decision: d, At: now, Role: role})
		var recs []audit.Record
		if d == incident.Reject {
			if err := s.decide(ctx, tx, &a, incident.ApprovalRejected, voter, now, ""); err != nil {
				return err
			}
			out.Kind = store.OutcomeRejected
			recs = append(recs, audit.Record{Actor: voter, RunID: a.RunID, Kind: audit.KindRejection, Time: now,
				Payload: map[string]any{"approval_id": a.ID, "relief": a.ReliefID, "digest": a.Digest}})
		} else {
			// The quorum counts the votes that hold the approval's role: a vote an
			// older ndrbot recorded for an admin relief (as approver) does not.
			n := a.Qualified(a.Role)
			out.Votes = n
			recs = append(recs, audit.Record{Actor: voter, RunID: a.RunID, Kind: audit.KindApproval, Time: now,
				Payload: map[string]any{"approval_id": a.ID, "relief": a.ReliefID, "votes": n, "required": a.Required, "digest": a.Digest,
					"role": role}})
			out.Kind = store.OutcomeWaiting
			if n >= a.Required {
				if err := s.decide(ctx, tx, &a, incident.ApprovalApproved, voter, now, ""); err != nil {
					return err
				}
				out.Kind = store.OutcomeApproved
				var names []string
				for _, v := range a.Approvers() {
					names = append(names, v.String())
				}
				recs = append(recs, audit.Record{Actor: voter, RunID: a.RunID, Kind: audit.KindApproved, Time: now,
					Payload: map[string]any{"approval_id": a.ID, "relief": a.ReliefID, "approvers": names,
						"digest": a.Digest, "hosts": a.Hosts}})
			}
		}
		out.Approval = a
		_, err = s.appendTx(ctx, tx, recs...)
		return err
	})
	if err != nil {
		return store.Outcome{}, err
	}
	if refusal != nil {
		return out, refusal
	}
	return out, nil
}

// ExpireApprovals marks pending approvals past their expiry expired.
func (s *Store) ExpireApprovals(ctx context.Context, now time.Time) ([]store.Approval, error) {
	now = audit.TimeUS(now)
	var out []store.Approval
	err := s.db.Write(ctx, func(tx Q) error {
		out = out[:0]
		ids, err := queryAll(ctx, tx, `SELECT id FROM approvals WHERE status = ? AND expires_us <= ? ORDER BY expires_us, id`,
			[]any{string(incident.ApprovalPending), us(now)}, func(r Row) (string, error) {
				var id string
				return id, r.Scan(&id)
			})
		if err != nil {
			return err
		}
		for _, id := range ids {
			a, err := s.getApproval(ctx, tx, id, true)
			if err != nil {
				return err
			}
			if a.Status != incident.ApprovalPending {
				continue
			}
			if err := s.expire(ctx, tx, &a, now); err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}
