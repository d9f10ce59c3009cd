package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/store"
)

func TestNewID(t *testing.T) {
	at := time.Date(2026, 11, 23, 23, 59, 59, 0, time.UTC)
	id := store.NewID("r", at)
	assert.Regexp(t, `^r-20261123-1517f[0-9a-f]{5}$`, id)
	seen := map[string]bool{}
	for range 1000 {
		seen[store.NewID("r", at)] = true
	}
	assert.Greater(t, len(seen), 990, "random part varies")
	assert.Less(t, store.NewID("r", at.Add(-time.Hour)), store.NewID("r", at), "sorts by time")
}

func TestVoteErrorKinds(t *testing.T) {
	a := store.Approval{ID: "a-1", Status: incident.ApprovalApproved, DecidedBy: incident.Actor{ID: "U1", Name: "bob"},
		DecidedAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), Reason: "digest changed"}
	cases := []struct {
		r    store.Refusal
		is   []error
		not  []error
		text string
	}{
		{store.RefusedDecided, []error{incident.ErrConflict}, []error{incident.ErrNotAllowed}, "approval a-1 already approved by bob (U1) at 2026-11-23T10:00:00Z"},
		{store.RefusedExpired, []error{incident.ErrConflict, store.ErrExpired}, nil, "expired"},
		{store.RefusedVoid, []error{incident.ErrConflict, store.ErrVoid}, nil, "void: digest changed"},
		{store.RefusedAlreadyVoted, []error{incident.ErrConflict, store.ErrAlreadyVoted}, nil, "already voted"},
		{store.RefusedFourEyes, []error{incident.ErrNotAllowed, store.ErrFourEyes}, []error{incident.ErrConflict}, "four-eyes"},
		{store.RefusedNotApproved, []error{incident.ErrNotAllowed}, []error{incident.ErrConflict}, "not approved"},
	}
	for _, tc := range cases {
		err := fmt.Errorf("wrapped: %w", &store.VoteError{Refusal: tc.r, Approval: a})
		for _, want := range tc.is {
			assert.ErrorIs(t, err, want, tc.r)
		}
		for _, not := range tc.not {
			assert.NotErrorIs(t, err, not, tc.r)
		}
		assert.Contains(t, err.Error(), tc.text)
	}
	ce := &store.ClaimError{Existing: store.Execution{ID: "x-1", ApprovalID: "a-1", ReliefID: "restart-transport", Owner: "bot-2", State: incident.ExecRunning}}
	assert.True(t, errors.Is(ce, incident.ErrConflict))
	assert.Contains(t, ce.Error(), "already claimed by bot-2")
}

func TestSchemaTooNewMessage(t *testing.T) {
	err := &store.SchemaTooNewError{DB: 7, Known: 3}
	assert.EqualError(t, err, "database schema v7 is newer than this ndrbot (knows v3); upgrade ndrbot")
}

func TestActor(t *testing.T) {
	assert.Equal(t, "cli:alice", incident.CLIActor("alice").String())
	assert.Equal(t, "bob (U0BOB)", incident.Actor{ID: "U0BOB", Name: "bob"}.String())
	assert.Equal(t, "U0BOB", incident.Actor{ID: "U0BOB"}.String())
	assert.True(t, incident.RunInterrupted.Terminal())
	assert.False(t, incident.RunVerifying.Terminal())
}

// The engine's cooldown history is backed by the store.
var _ playbooks.ReliefHistory = store.ReliefHistory{}
