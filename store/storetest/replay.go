package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/internal/core"
)

// testReplay: a signed Slack request is accepted once inside its validity
// window, by whichever replica sees it first.
func testReplay(t *testing.T, open Opener) {
	var clock atomic.Int64
	clock.Store(t0.UnixMicro())
	now := func() time.Time { return time.UnixMicro(clock.Load()) }
	advance := func(d time.Duration) { clock.Add(d.Microseconds()) }
	opt := store.Options{Now: now}

	t.Run("once until expiry, on every replica", func(t *testing.T) {
		inst := open(t, opt)
		s, ctx := inst.Store, ctxT(t)
		s2, err := inst.Reopen(t, opt)
		require.NoError(t, err)
		defer s2.Close()
		exp := now().Add(6 * time.Minute)

		first, err := s.FirstSighting(ctx, "v0=aaaa", exp)
		require.NoError(t, err)
		assert.True(t, first, "first sighting")
		first, err = s.FirstSighting(ctx, "v0=aaaa", exp)
		require.NoError(t, err)
		assert.False(t, first, "the same signature again")
		first, err = s2.FirstSighting(ctx, "v0=aaaa", exp)
		require.NoError(t, err)
		assert.False(t, first, "the same signature on another replica")
		first, err = s2.FirstSighting(ctx, "v0=bbbb", exp)
		require.NoError(t, err)
		assert.True(t, first, "another signature")

		advance(5 * time.Minute)
		first, err = s.FirstSighting(ctx, "v0=aaaa", exp)
		require.NoError(t, err)
		assert.False(t, first, "still inside the window")

		advance(time.Minute) // now == exp: the entry has lapsed
		first, err = s2.FirstSighting(ctx, "v0=aaaa", now().Add(6*time.Minute))
		require.NoError(t, err)
		assert.True(t, first, "after expiry the signature is new again")
		first, err = s.FirstSighting(ctx, "v0=aaaa", now().Add(6*time.Minute))
		require.NoError(t, err)
		assert.False(t, first, "and recorded again, with its new expiry")
	})

	t.Run("bad input", func(t *testing.T) {
		s, ctx := open(t, opt).Store, ctxT(t)
		_, err := s.FirstSighting(ctx, "", now().Add(time.Minute))
		assert.ErrorIs(t, err, incident.ErrInvalidInput)
		_, err = s.FirstSighting(ctx, "v0=cccc", time.Time{})
		assert.ErrorIs(t, err, incident.ErrInvalidInput)
	})

	t.Run("racing replicas: exactly one first sighting", func(t *testing.T) {
		inst := open(t, opt)
		s, ctx := inst.Store, ctxT(t)
		s2, err := inst.Reopen(t, opt)
		require.NoError(t, err)
		defer s2.Close()
		exp := now().Add(6 * time.Minute)
		for round := range 25 {
			sig := fmt.Sprintf("v0=race%02d", round)
			var firsts atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, st := range []store.Store{s, s2, s, s2} {
				wg.Go(func() {
					<-start
					first, err := st.FirstSighting(ctx, sig, exp)
					if !assert.NoError(t, err, "goroutine %d", i) {
						return
					}
					if first {
						firsts.Add(1)
					}
				})
			}
			close(start)
			wg.Wait()
			assert.EqualValues(t, 1, firsts.Load(), "round %d", round)
		}
	})

	t.Run("expired entries are swept", func(t *testing.T) {
		inst := open(t, opt)
		s, ctx := inst.Store, ctxT(t)
		db, ok := s.(interface{ DB() core.DB })
		require.True(t, ok, "the backend exposes its database")
		count := func(expiredOnly bool) int {
			var n int
			q := `SELECT COUNT(*) FROM slack_requests WHERE expires_us > ?`
			if expiredOnly {
				q = `SELECT COUNT(*) FROM slack_requests WHERE expires_us <= ?`
			}
			require.NoError(t, db.DB().QueryRow(ctx, q, now().UnixMicro()).Scan(&n))
			return n
		}
		for i := range 200 {
			_, err := s.FirstSighting(ctx, fmt.Sprintf("v0=old%03d", i), now().Add(6*time.Minute))
			require.NoError(t, err)
		}
		advance(10 * time.Minute)
		require.Positive(t, count(true), "some old entries outlive their first sweep turns")
		for i := range 64 {
			first, err := s.FirstSighting(ctx, fmt.Sprintf("v0=new%03d", i), now().Add(6*time.Minute))
			require.NoError(t, err)
			require.True(t, first)
		}
		assert.Zero(t, count(true), "expired entries are deleted by later sightings")
		assert.Equal(t, 64, count(false), "live entries stay")
	})
}
