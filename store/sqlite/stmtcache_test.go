package sqlite

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/internal/core"
)

// The writer's statements are prepared after the transaction that first runs
// them (its connection is the only one), reused after, bounded, and a text of
// several statements is never prepared.
func TestStatementCache(t *testing.T) {
	ctx := context.Background()
	s, err := OpenScratch(ctx, store.Options{})
	require.NoError(t, err)
	defer s.Close()
	d := s.Store.DB().(*sqlDB)
	prepared := func() int { d.ws.mu.Lock(); defer d.ws.mu.Unlock(); return len(d.ws.m) }
	before := prepared()

	insert := `INSERT INTO schema_version (version, applied_us) VALUES (?, 0)`
	write := func(q string, args ...any) {
		t.Helper()
		require.NoError(t, d.Write(ctx, func(tx core.Q) error { _, err := tx.Exec(ctx, q, args...); return err }))
	}
	write(insert, 1000)
	assert.Equal(t, before+1, prepared(), "prepared once its transaction ended")
	st := d.ws.m[insert]
	write(insert, 1001)
	assert.Same(t, st, d.ws.m[insert], "reused, not prepared again")

	write(`DELETE FROM schema_version WHERE version = 1000; DELETE FROM schema_version WHERE version = 1001`)
	assert.Equal(t, before+1, prepared(), "several statements in one text are run as given")

	for i := range maxPrepared + 10 {
		write(fmt.Sprintf(`DELETE FROM schema_version WHERE version = %d`, 2000+i))
	}
	assert.Equal(t, maxPrepared, prepared())
	var n int
	require.NoError(t, d.QueryRow(ctx, `SELECT count(*) FROM schema_version WHERE version >= 1000`).Scan(&n))
	assert.Zero(t, n, "every statement ran, prepared or not")
}
