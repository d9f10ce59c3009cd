package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

// roleApproval asks for an approval of set-component-active on ex01 that needs
// required votes of role, in a run of its own.
func roleApproval(t *testing.T, s store.Store, role string, required int) store.Approval {
	t.Helper()
	r := newRun(t, s, "bot-1")
	a, err := s.RequestApproval(ctxT(t), store.NewApproval{RunID: r.ID, ReliefID: "set-component-active",
		Hosts: []string{"ex01.contoso.com"}, Digest: digest, Required: required, Requester: alice,
		ExpiresAt: time.Now().Add(time.Hour), Role: role})
	require.NoError(t, err)
	return a
}

// testRoles: a relief's approval.role is recorded with its approval, each vote
// records the role its voter was authorised under, the quorum counts only votes
// that hold the approval's role, and the claim refuses — audited — an approval
// whose approving votes lack it, however they got there.
func testRoles(t *testing.T, open Opener) {
	admin := incident.Actor{ID: "U0ADMIN", Name: "adele"}

	t.Run("roles are recorded", func(t *testing.T) {
		s, ctx := open(t, store.Options{}).Store, ctxT(t)
		plain := roleApproval(t, s, "", 1)
		assert.Equal(t, store.RoleApprover, plain.Role, "an approval without a role needs an approver")
		a := roleApproval(t, s, store.RoleAdmin, 1)
		assert.Equal(t, store.RoleAdmin, a.Role)
		out, err := s.Vote(ctx, a.ID, admin, store.RoleAdmin, incident.Approve, digest, time.Now())
		require.NoError(t, err)
		assert.Equal(t, store.OutcomeApproved, out.Kind)
		got, err := s.GetApproval(ctx, a.ID)
		require.NoError(t, err)
		assert.Equal(t, store.RoleAdmin, got.Role)
		require.Len(t, got.Votes, 1)
		assert.Equal(t, store.RoleAdmin, got.Votes[0].Role)
		req := events(t, s, audit.KindApprovalRequest, "approval_id", a.ID)
		require.Len(t, req, 1)
		assert.Contains(t, string(req[0].Payload), `"role":"admin"`)

		_, err = s.RequestApproval(ctx, store.NewApproval{RunID: a.RunID, ReliefID: "x", Digest: digest, Requester: alice,
			ExpiresAt: time.Now().Add(time.Hour), Role: "owner"})
		assert.ErrorIs(t, err, incident.ErrInvalidInput, "not a role")
		_, err = s.Vote(ctx, plain.ID, bob, "", incident.Approve, digest, time.Now())
		assert.ErrorIs(t, err, incident.ErrInvalidInput, "a vote says which role its voter holds")
	})

	t.Run("an approver's vote on an admin relief is refused", func(t *testing.T) {
		s, ctx := open(t, store.Options{}).Store, ctxT(t)
		a := roleApproval(t, s, store.RoleAdmin, 1)
		out, err := s.Vote(ctx, a.ID, bob, store.RoleApprover, incident.Approve, digest, time.Now())
		var re *store.RoleError
		require.ErrorAs(t, err, &re)
		assert.ErrorIs(t, err, incident.ErrNotAllowed)
		assert.ErrorIs(t, err, store.ErrRole)
		assert.Equal(t, incident.ApprovalPending, out.Approval.Status)
		assert.Contains(t, err.Error(), "set-component-active needs the admin role")
		assert.Contains(t, err.Error(), "bob (U0BOB) is authorised as approver")
		assert.Len(t, events(t, s, audit.KindVoteRefused, "approval_id", a.ID), 1, "the refusal is audited")
		got, err := s.GetApproval(ctx, a.ID)
		require.NoError(t, err)
		assert.Empty(t, got.Votes, "nothing was recorded")

		// An admin satisfies an approver's approval.
		plain := roleApproval(t, s, store.RoleApprover, 1)
		out, err = s.Vote(ctx, plain.ID, admin, store.RoleAdmin, incident.Approve, digest, time.Now())
		require.NoError(t, err)
		assert.Equal(t, store.OutcomeApproved, out.Kind)
	})

	t.Run("an admin relief approved by approver votes cannot be claimed", func(t *testing.T) {
		inst := open(t, store.Options{})
		s, ctx := inst.Store, ctxT(t)
		a := roleApproval(t, s, store.RoleAdmin, 1)
		_, err := s.Vote(ctx, a.ID, bob, store.RoleAdmin, incident.Approve, digest, time.Now())
		require.NoError(t, err)
		// The vote as a path that skipped the click's check (or an older ndrbot)
		// would have written it.
		inst.Exec(t, `UPDATE votes SET role = 'approver' WHERE approval_id = ?`, a.ID)

		_, err = s.ClaimRelief(ctx, a.ID, "bot-1", digest)
		var re *store.RoleError
		require.ErrorAs(t, err, &re)
		assert.ErrorIs(t, err, incident.ErrNotAllowed)
		assert.ErrorIs(t, err, store.ErrRole)
		assert.Equal(t, store.RoleAdmin, re.Role)
		for _, want := range []string{"set-component-active not run", a.ID, "the admin role", "bob (U0BOB) as approver"} {
			assert.Contains(t, err.Error(), want)
		}
		xs, err := s.Executions(ctx, a.RunID)
		require.NoError(t, err)
		assert.Empty(t, xs, "nothing ran")
		refused := events(t, s, audit.KindClaimRefused, "approval_id", a.ID)
		require.Len(t, refused, 1, "the refusal is audited")
		var p map[string]any
		require.NoError(t, json.Unmarshal(refused[0].Payload, &p))
		assert.Equal(t, "admin", p["required_role"])
		assert.Contains(t, p["reason"], "bob (U0BOB) as approver")
		assert.Empty(t, events(t, s, audit.KindRelief, "approval_id", a.ID))

		// With an admin's vote it runs.
		b := roleApproval(t, s, store.RoleAdmin, 1)
		_, err = s.Vote(ctx, b.ID, admin, store.RoleAdmin, incident.Approve, digest, time.Now())
		require.NoError(t, err)
		x, err := s.ClaimRelief(ctx, b.ID, "bot-1", digest)
		require.NoError(t, err)
		assert.Equal(t, incident.ExecRunning, x.State)
		assert.True(t, verify(t, s, nil).OK)
	})

	t.Run("the quorum counts only votes that hold the role", func(t *testing.T) {
		inst := open(t, store.Options{})
		s, ctx := inst.Store, ctxT(t)
		a := roleApproval(t, s, store.RoleAdmin, 2)
		_, err := s.Vote(ctx, a.ID, carol, store.RoleAdmin, incident.Approve, digest, time.Now())
		require.NoError(t, err)
		inst.Exec(t, `UPDATE votes SET role = 'approver' WHERE approval_id = ? AND voter_id = ?`, a.ID, carol.ID)
		out, err := s.Vote(ctx, a.ID, admin, store.RoleAdmin, incident.Approve, digest, time.Now())
		require.NoError(t, err)
		assert.Equal(t, store.OutcomeWaiting, out.Kind, "carol's approver vote does not count for an admin relief")
		assert.Equal(t, 1, out.Votes)
		_, err = s.ClaimRelief(ctx, a.ID, "bot-1", digest)
		assert.ErrorIs(t, err, incident.ErrNotAllowed, "still pending")
	})

	t.Run("an approval requested by an older ndrbot takes its proposal's role", func(t *testing.T) {
		inst := open(t, store.Options{})
		s, ctx := inst.Store, ctxT(t)
		r := newRun(t, s, "bot-1")
		require.NoError(t, s.PutProposal(ctx, r.ID, incident.Proposal{ID: "set-component-active", Relief: "set-component-active",
			Hosts: []string{"ex01.contoso.com"}, Approval: incident.ApprovalPolicy{Role: "admin", Approvers: 1}}))
		a, err := s.RequestApproval(ctx, store.NewApproval{RunID: r.ID, ProposalID: "set-component-active", ReliefID: "set-component-active",
			Hosts: []string{"ex01.contoso.com"}, Digest: digest, Required: 1, Requester: alice, ExpiresAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		require.Equal(t, store.RoleApprover, a.Role, "a binary before schema v4 stored no role: the column's default")
		_, err = s.Vote(ctx, a.ID, bob, store.RoleApprover, incident.Approve, digest, time.Now())
		require.NoError(t, err)

		_, err = s.ClaimRelief(ctx, a.ID, "bot-1", digest)
		var re *store.RoleError
		require.ErrorAs(t, err, &re, "the proposal asked for an admin")
		assert.Equal(t, store.RoleAdmin, re.Role)
		assert.Len(t, events(t, s, audit.KindClaimRefused, "approval_id", a.ID), 1)
	})
}
