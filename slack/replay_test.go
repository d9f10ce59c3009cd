package slack

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The in-process cache is bounded: when full it forgets expired entries, and
// refuses (fails closed) rather than forget live ones.
func TestReplayCacheBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newReplayCache(3)
	c.now = func() time.Time { return now }
	ctx := context.Background()
	sight := func(sig string, exp time.Time) (bool, error) { return c.FirstSighting(ctx, sig, exp) }

	for i := range 3 {
		first, err := sight(fmt.Sprint("v0=", i), now.Add(time.Duration(i+1)*time.Minute))
		require.NoError(t, err)
		assert.True(t, first)
	}
	first, err := sight("v0=0", now.Add(6*time.Minute))
	require.NoError(t, err)
	assert.False(t, first, "a live entry is a replay")

	_, err = sight("v0=new", now.Add(6*time.Minute))
	require.ErrorIs(t, err, errReplayCacheFull, "full of live entries: refused, nothing forgotten")
	first, err = sight("v0=2", now.Add(6*time.Minute))
	require.NoError(t, err)
	assert.False(t, first, "still remembered after the refusal")

	now = now.Add(90 * time.Second) // v0=0 has expired
	first, err = sight("v0=new", now.Add(6*time.Minute))
	require.NoError(t, err)
	assert.True(t, first, "the expired entry made room")
	assert.Len(t, c.seen, 3)
	first, err = sight("v0=0", now.Add(6*time.Minute))
	require.ErrorIs(t, err, errReplayCacheFull)
	assert.False(t, first)
}
