package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

// approved asks for and grants an approval of relief on hosts in a run of its own.
func approved(t *testing.T, s store.Store, relief string, cooldown time.Duration, hosts ...string) store.Approval {
	t.Helper()
	r := newRun(t, s, "bot-1")
	a, err := s.RequestApproval(ctxT(t), store.NewApproval{RunID: r.ID, ReliefID: relief, Hosts: hosts, Digest: digest,
		Required: 1, Requester: alice, ExpiresAt: time.Now().Add(time.Hour), Cooldown: cooldown})
	require.NoError(t, err)
	_, err = s.Vote(ctxT(t), a.ID, bob, store.RoleApprover, incident.Approve, digest, time.Now())
	require.NoError(t, err)
	return a
}

// testClaimGuards: two diagnoses of one outage in two channels, approved by two
// people, must not restart one server twice under its cooldown, nor run two
// reliefs on one server at once — whichever run, channel or replica claims.
func testClaimGuards(t *testing.T, open Opener) {
	t.Run("cooldown and one relief per host across runs", func(t *testing.T) {
		s, ctx := open(t, store.Options{}).Store, ctxT(t)
		first := approved(t, s, "restart-transport", 30*time.Minute, "ex01.contoso.com")
		second := approved(t, s, "restart-transport", 30*time.Minute, "ex01.contoso.com", "ex02.contoso.com")
		require.NotEqual(t, first.RunID, second.RunID)
		assert.Equal(t, 30*time.Minute, first.Cooldown, "the cooldown is stored with the approval")

		x, err := s.ClaimRelief(ctx, first.ID, "bot-1", digest)
		require.NoError(t, err)

		_, err = s.ClaimRelief(ctx, second.ID, "bot-2", digest)
		var ge *store.GuardError
		require.ErrorAs(t, err, &ge, "running on ex01")
		assert.ErrorIs(t, err, incident.ErrNotAllowed)
		assert.Equal(t, "ex01.contoso.com", ge.Host)
		assert.Equal(t, x.ID, ge.Other.ID)
		assert.True(t, ge.Until.IsZero())
		assert.Contains(t, err.Error(), "restart-transport is running on ex01.contoso.com")

		_, err = s.FinishRelief(ctx, x.ID, store.ReliefOutcome{OK: true})
		require.NoError(t, err)
		_, err = s.ClaimRelief(ctx, second.ID, "bot-2", digest)
		require.ErrorAs(t, err, &ge, "finished, but in its cooldown")
		assert.WithinDuration(t, x.StartedAt.Add(30*time.Minute), ge.Until, time.Millisecond)
		assert.Contains(t, err.Error(), "its cooldown lasts until")

		xs, err := s.Executions(ctx, second.RunID)
		require.NoError(t, err)
		assert.Empty(t, xs, "nothing ran for the second run")
		refused := events(t, s, audit.KindClaimRefused, "approval_id", second.ID)
		assert.Len(t, refused, 2, "each refusal is audited")

		// Another relief on the same host: no cooldown of its own to wait for, but
		// not while a relief runs there.
		retry := approved(t, s, "retry-queue", 0, "ex01.contoso.com")
		rx, err := s.ClaimRelief(ctx, retry.ID, "bot-1", digest)
		require.NoError(t, err)
		other := approved(t, s, "set-component-active", 0, "ex01.contoso.com")
		_, err = s.ClaimRelief(ctx, other.ID, "bot-1", digest)
		require.ErrorAs(t, err, &ge)
		assert.Equal(t, rx.ID, ge.Other.ID)
		_, err = s.FinishRelief(ctx, rx.ID, store.ReliefOutcome{OK: false, Error: "failed"})
		require.NoError(t, err)
		_, err = s.ClaimRelief(ctx, other.ID, "bot-1", digest)
		assert.NoError(t, err, "nothing runs on ex01 any more")
		assert.True(t, verify(t, s, nil).OK)
	})

	t.Run("concurrent claims of two runs on one host: one wins", func(t *testing.T) {
		s, ctx := open(t, store.Options{}).Store, ctxT(t)
		approvals := []store.Approval{
			approved(t, s, "restart-transport", 30*time.Minute, "ex02.contoso.com"),
			approved(t, s, "restart-transport", 30*time.Minute, "ex02.contoso.com"),
		}
		var won, guarded atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 20 {
			wg.Go(func() {
				<-start
				_, err := s.ClaimRelief(ctx, approvals[i%2].ID, fmt.Sprintf("replica-%d", i), digest)
				var ge *store.GuardError
				var ce *store.ClaimError
				switch {
				case err == nil:
					won.Add(1)
				case errors.As(err, &ge):
					guarded.Add(1)
				case errors.As(err, &ce):
				default:
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		assert.EqualValues(t, 1, won.Load(), "one execution on ex02")
		assert.Positive(t, guarded.Load(), "the other run's claims met the guard")
	})
}
