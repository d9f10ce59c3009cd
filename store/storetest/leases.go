package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

// testLeases: a named lease has one holder at a time, across goroutines and
// replicas (a second store on the same database); it stays with a holder that
// renews it, passes to another once it expired or was released, and carries the
// signals other processes leave for its holder, each delivered once.
func testLeases(t *testing.T, open Opener) {
	const ttl = 30 * time.Second

	t.Run("one holder at a time under concurrency", func(t *testing.T) {
		inst := open(t, store.Options{})
		other, err := inst.Reopen(t, store.Options{})
		require.NoError(t, err)
		defer other.Close()
		stores := []store.Store{inst.Store, other}
		// Each round starts as the last round's lease expires: every round is a
		// contested hand-over, not only the first acquisition.
		for round := range 4 {
			now := t0.Add(time.Duration(round) * ttl)
			var mu sync.Mutex
			var held, holders []string
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range 16 {
				wg.Go(func() {
					owner := fmt.Sprintf("replica-%d/%d", i%2, i)
					<-start
					l, err := stores[i%2].TryLease(ctxT(t), "ndr-watch", owner, ttl, now)
					mu.Lock()
					defer mu.Unlock()
					if !assert.NoError(t, err) {
						return
					}
					if l.Held {
						held = append(held, owner)
						assert.Equal(t, owner, l.Holder)
					}
					holders = append(holders, l.Holder)
				})
			}
			close(start)
			wg.Wait()
			require.Len(t, held, 1, "round %d: exactly one of 16 contenders holds the lease", round)
			for _, h := range holders {
				assert.Equal(t, held[0], h, "round %d: every contender is told the one holder", round)
			}
		}
	})

	t.Run("kept by a holder that renews, handed over when it expires", func(t *testing.T) {
		s, ctx := open(t, store.Options{}).Store, ctxT(t)
		a, err := s.TryLease(ctx, "sweeper", "a", ttl, t0)
		require.NoError(t, err)
		assert.Equal(t, store.Lease{Name: "sweeper", Holder: "a", Since: t0, Expires: t0.Add(ttl), Held: true}, a)

		b, err := s.TryLease(ctx, "sweeper", "b", ttl, t0.Add(10*time.Second))
		require.NoError(t, err)
		assert.Equal(t, store.Lease{Name: "sweeper", Holder: "a", Since: t0, Expires: t0.Add(ttl)}, b, "a live lease stays with its holder")

		a, err = s.TryLease(ctx, "sweeper", "a", ttl, t0.Add(20*time.Second))
		require.NoError(t, err)
		assert.True(t, a.Held)
		assert.Equal(t, t0, a.Since, "a renewal keeps the tenure's start")
		assert.Equal(t, t0.Add(50*time.Second), a.Expires)

		b, err = s.TryLease(ctx, "sweeper", "b", ttl, t0.Add(49*time.Second))
		require.NoError(t, err)
		assert.False(t, b.Held, "renewed by its holder: still live")

		b, err = s.TryLease(ctx, "sweeper", "b", ttl, t0.Add(50*time.Second))
		require.NoError(t, err)
		assert.Equal(t, store.Lease{Name: "sweeper", Holder: "b", Since: t0.Add(50 * time.Second), Expires: t0.Add(80 * time.Second),
			Held: true, Previous: "a"}, b, "expired at now: taken over, naming the previous holder")

		a, err = s.TryLease(ctx, "sweeper", "a", ttl, t0.Add(51*time.Second))
		require.NoError(t, err)
		assert.False(t, a.Held, "the old holder cannot renew a lease it lost")
		assert.Equal(t, "b", a.Holder)

		// A holder whose own lease lapsed with nobody taking it starts a new tenure.
		b, err = s.TryLease(ctx, "sweeper", "b", ttl, t0.Add(2*time.Minute))
		require.NoError(t, err)
		assert.True(t, b.Held)
		assert.Equal(t, t0.Add(2*time.Minute), b.Since)
		assert.Empty(t, b.Previous)
	})

	t.Run("released by its holder only", func(t *testing.T) {
		s, ctx := open(t, store.Options{}).Store, ctxT(t)
		_, err := s.TryLease(ctx, "checkpoints", "a", ttl, t0)
		require.NoError(t, err)
		require.NoError(t, s.ReleaseLease(ctx, "checkpoints", "b"), "releasing a lease one does not hold does nothing")
		b, err := s.TryLease(ctx, "checkpoints", "b", ttl, t0.Add(time.Second))
		require.NoError(t, err)
		assert.False(t, b.Held)

		require.NoError(t, s.ReleaseLease(ctx, "checkpoints", "a"))
		b, err = s.TryLease(ctx, "checkpoints", "b", ttl, t0.Add(time.Second))
		require.NoError(t, err)
		assert.True(t, b.Held, "released: taken at once, long before it would have expired")
		assert.Empty(t, b.Previous, "nobody held it when b took it")
		require.NoError(t, s.ReleaseLease(ctx, "checkpoints", "nobody"))
		require.NoError(t, s.ReleaseLease(ctx, "never-held", "a"))
	})

	t.Run("names are independent", func(t *testing.T) {
		s, ctx := open(t, store.Options{}).Store, ctxT(t)
		a, err := s.TryLease(ctx, "ndr-watch", "a", ttl, t0)
		require.NoError(t, err)
		b, err := s.TryLease(ctx, "approval-sweeper", "b", ttl, t0)
		require.NoError(t, err)
		assert.True(t, a.Held)
		assert.True(t, b.Held)
	})

	t.Run("signals reach the holder once", func(t *testing.T) {
		s, ctx := open(t, store.Options{}).Store, ctxT(t)
		// Left while nobody holds the lease: for whoever takes it.
		require.NoError(t, s.SignalLease(ctx, "ndr-watch", "poke"))
		a, err := s.TryLease(ctx, "ndr-watch", "a", ttl, t0)
		require.NoError(t, err)
		assert.Equal(t, []string{"poke"}, a.Signals)
		a, err = s.TryLease(ctx, "ndr-watch", "a", ttl, t0.Add(time.Second))
		require.NoError(t, err)
		assert.Empty(t, a.Signals, "delivered once")

		require.NoError(t, s.SignalLease(ctx, "ndr-watch", "poke", "lifecycle reauthorizationRequired 7f105c7d"))
		require.NoError(t, s.SignalLease(ctx, "ndr-watch", "poke"))
		b, err := s.TryLease(ctx, "ndr-watch", "b", ttl, t0.Add(2*time.Second))
		require.NoError(t, err)
		assert.False(t, b.Held)
		assert.Empty(t, b.Signals, "a process that does not hold the lease neither sees nor takes its signals")
		a, err = s.TryLease(ctx, "ndr-watch", "a", ttl, t0.Add(3*time.Second))
		require.NoError(t, err)
		assert.Equal(t, []string{"poke", "lifecycle reauthorizationRequired 7f105c7d"}, a.Signals, "a set, in the order first left")

		// Released with signals waiting: they wait for the next holder.
		require.NoError(t, s.SignalLease(ctx, "ndr-watch", "poke"))
		require.NoError(t, s.ReleaseLease(ctx, "ndr-watch", "a"))
		b, err = s.TryLease(ctx, "ndr-watch", "b", ttl, t0.Add(4*time.Second))
		require.NoError(t, err)
		assert.Equal(t, []string{"poke"}, b.Signals)

		var many []string
		for i := range store.MaxLeaseSignals + 8 {
			many = append(many, fmt.Sprintf("s%d", i))
		}
		require.NoError(t, s.SignalLease(ctx, "ndr-watch", many...))
		b, err = s.TryLease(ctx, "ndr-watch", "b", ttl, t0.Add(5*time.Second))
		require.NoError(t, err)
		assert.Equal(t, many[:store.MaxLeaseSignals], b.Signals, "bounded: the first MaxLeaseSignals wait, the rest are dropped")
	})

	t.Run("signals left concurrently are all delivered", func(t *testing.T) {
		inst := open(t, store.Options{})
		other, err := inst.Reopen(t, store.Options{})
		require.NoError(t, err)
		defer other.Close()
		stores := []store.Store{inst.Store, other}
		ctx := ctxT(t)
		var mu sync.Mutex
		var got []string
		renew := func(at time.Time) {
			l, err := inst.Store.TryLease(ctx, "ndr-watch", "holder", ttl, at)
			if assert.NoError(t, err) && assert.True(t, l.Held) {
				mu.Lock()
				got = append(got, l.Signals...)
				mu.Unlock()
			}
		}
		renew(t0)
		var sent []string
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 20 {
			sig := fmt.Sprintf("nudge-%02d", i)
			sent = append(sent, sig)
			wg.Go(func() {
				<-start
				assert.NoError(t, stores[i%2].SignalLease(ctx, "ndr-watch", sig))
			})
		}
		wg.Go(func() { // the holder renews meanwhile, taking what has arrived
			<-start
			for i := range 10 {
				renew(t0.Add(time.Duration(i+1) * time.Millisecond))
			}
		})
		close(start)
		wg.Wait()
		renew(t0.Add(time.Second))
		slices.Sort(got)
		assert.Equal(t, sent, got, "every signal delivered exactly once: none lost to a concurrent write, none twice")
	})

	t.Run("refused input", func(t *testing.T) {
		s, ctx := open(t, store.Options{}).Store, ctxT(t)
		for _, c := range []struct {
			name string
			err  error
		}{
			{"no name", func() error { _, err := s.TryLease(ctx, "", "a", ttl, t0); return err }()},
			{"no owner", func() error { _, err := s.TryLease(ctx, "x", "", ttl, t0); return err }()},
			{"no ttl", func() error { _, err := s.TryLease(ctx, "x", "a", 0, t0); return err }()},
			{"release without owner", s.ReleaseLease(ctx, "x", "")},
			{"empty signal", s.SignalLease(ctx, "x", "")},
			{"signal of two lines", s.SignalLease(ctx, "x", "poke\nrenew")},
			{"long signal", s.SignalLease(ctx, "x", strings.Repeat("x", store.MaxLeaseSignal+1))},
			{"signal without lease name", s.SignalLease(ctx, "", "poke")},
		} {
			assert.ErrorIs(t, c.err, incident.ErrInvalidInput, c.name)
		}
	})
}
