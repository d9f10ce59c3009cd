package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

// stepClock is a store clock a test moves by hand.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// testRunFilter holds ListRuns to its filter: states, a creation time at or
// after Since (the boundary included), both at once, and the limit applied after
// them — what `ndrbot runs list --state --since --limit` passes through.
func testRunFilter(t *testing.T, open Opener) {
	clock := &stepClock{now: t0}
	s, ctx := open(t, store.Options{Now: clock.Now}).Store, ctxT(t)

	// Four runs an hour apart; the second and the fourth escalated.
	var ids []string
	for i := range 4 {
		clock.set(t0.Add(time.Duration(i) * time.Hour))
		r := newRun(t, s, "bot-1")
		if i%2 == 1 {
			_, err := s.SetRunState(ctx, r.ID, incident.RunDiagnosing, incident.RunEscalated)
			require.NoError(t, err)
		}
		ids = append(ids, r.ID)
	}
	esc := []incident.RunState{incident.RunEscalated}
	tests := []struct {
		name string
		f    store.RunFilter
		want []string // newest first
	}{
		{"no filter", store.RunFilter{}, []string{ids[3], ids[2], ids[1], ids[0]}},
		{"since is inclusive", store.RunFilter{Since: t0.Add(time.Hour)}, []string{ids[3], ids[2], ids[1]}},
		{"since between runs", store.RunFilter{Since: t0.Add(90 * time.Minute)}, []string{ids[3], ids[2]}},
		{"since after the last", store.RunFilter{Since: t0.Add(4 * time.Hour)}, nil},
		{"since in another zone", store.RunFilter{Since: t0.Add(3 * time.Hour).In(time.FixedZone("CET", 3600))}, []string{ids[3]}},
		{"state", store.RunFilter{States: esc}, []string{ids[3], ids[1]}},
		{"state and since", store.RunFilter{States: esc, Since: t0.Add(2 * time.Hour)}, []string{ids[3]}},
		{"states and since", store.RunFilter{States: []incident.RunState{incident.RunEscalated, incident.RunDiagnosing}, Since: t0.Add(time.Hour)},
			[]string{ids[3], ids[2], ids[1]}},
		{"limit after the filter", store.RunFilter{Since: t0.Add(time.Hour), Limit: 2}, []string{ids[3], ids[2]}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list, err := s.ListRuns(ctx, tc.f)
			require.NoError(t, err)
			var got []string
			for _, r := range list {
				got = append(got, r.ID)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}
