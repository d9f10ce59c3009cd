package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/store"
)

// testAnchors: what ties the trail to something its database writer cannot
// rewrite — the key's epoch, checkpoints, the head record.
func testAnchors(t *testing.T, open Opener) {
	key := []byte("anchor-test-hmac-key-32-bytes!!!")
	appendN := func(t *testing.T, s store.Store, n int) {
		t.Helper()
		for i := range n {
			_, err := s.Append(ctxT(t), audit.Record{Actor: alice, Kind: audit.KindCommand, RunID: "r-1",
				Payload: map[string]any{"text": fmt.Sprintf("/ndr status %d", i)}})
			require.NoError(t, err)
		}
	}
	checkpoint := func(t *testing.T, s store.Store) audit.Checkpoint {
		t.Helper()
		h, err := s.AuditHead(ctxT(t))
		require.NoError(t, err)
		cp, err := audit.NewCheckpoint(h, time.Now(), key)
		require.NoError(t, err)
		return cp
	}

	t.Run("the first keyed write records the key's epoch", func(t *testing.T) {
		inst := open(t, store.Options{})
		appendN(t, inst.Store, 3)
		keyed, err := inst.Reopen(t, store.Options{AuditKey: key})
		require.NoError(t, err)
		defer keyed.Close()
		appendN(t, keyed, 2)

		epochs := events(t, keyed, audit.KindKeyEpoch, "", "")
		require.Len(t, epochs, 1)
		assert.EqualValues(t, 4, epochs[0].Seq)
		var ep audit.KeyEpoch
		require.NoError(t, json.Unmarshal(epochs[0].Payload, &ep))
		assert.Equal(t, audit.KeyEpoch{KeyID: audit.KeyID(key), Since: 4}, ep)
		h, err := keyed.AuditHead(ctxT(t))
		require.NoError(t, err)
		assert.Equal(t, audit.Head{Seq: 6, Hash: h.Hash, KeyID: audit.KeyID(key), KeySince: 4}, h)

		rep := verify(t, keyed, key)
		assert.True(t, rep.OK, rep.String())
		assert.EqualValues(t, 3, rep.Unkeyed)
		assert.Equal(t, audit.ReasonNeedKey, verify(t, keyed, nil).Reason)
	})

	t.Run("a store without the key refuses to write to a keyed trail", func(t *testing.T) {
		inst := open(t, store.Options{AuditKey: key})
		appendN(t, inst.Store, 2)
		unkeyed, err := inst.Reopen(t, store.Options{})
		require.NoError(t, err)
		defer unkeyed.Close()
		_, err = unkeyed.Append(ctxT(t), audit.Record{Actor: bob, Kind: audit.KindCommand, Payload: map[string]any{}})
		require.ErrorIs(t, err, store.ErrAuditKeyMissing)
		assert.Contains(t, err.Error(), "key id "+audit.KeyID(key))
		h, err := inst.Store.AuditHead(ctxT(t))
		require.NoError(t, err)
		assert.EqualValues(t, 3, h.Seq, "nothing was written")
		assert.True(t, verify(t, inst.Store, key).OK)
	})

	t.Run("downgrade: the trail rewritten without its keys", func(t *testing.T) {
		inst := open(t, store.Options{AuditKey: key})
		appendN(t, inst.Store, 5)
		// Someone with the database but not the key re-seals everything with
		// SHA-256, drops the epoch event and clears the head's key.
		var all []audit.Event
		for e, err := range inst.Store.Events(ctxT(t), audit.Filter{}) {
			require.NoError(t, err)
			if e.Kind != audit.KindKeyEpoch {
				all = append(all, e)
			}
		}
		inst.Exec(t, `DELETE FROM audit_events`)
		prev := audit.Genesis
		for i := range all {
			all[i].Seq = int64(i + 1)
			require.NoError(t, audit.Seal(&all[i], prev, nil))
			insertEvent(t, inst, all[i])
			prev = all[i].Hash
		}
		inst.Exec(t, `UPDATE audit_head SET seq = ?, hash = ?, key_id = '', key_since = 0`, int64(len(all)), prev)

		rep := verify(t, inst.Store, key)
		assert.Equal(t, audit.ReasonDowngrade, rep.Reason, rep.String())
		assert.True(t, verify(t, inst.Store, nil).OK, "without the key the rewrite looks intact: why the key must be given")
	})

	t.Run("tail truncated with the head rewritten: only a checkpoint tells", func(t *testing.T) {
		inst := open(t, store.Options{AuditKey: key})
		appendN(t, inst.Store, 4)
		early := checkpoint(t, inst.Store)
		appendN(t, inst.Store, 4)
		late := checkpoint(t, inst.Store)
		kept := storedEvent(t, inst.Store, 3)
		inst.Exec(t, `DELETE FROM audit_events WHERE seq > 3`)
		inst.Exec(t, `UPDATE audit_head SET seq = 3, hash = ?`, kept.Hash)

		assert.True(t, verify(t, inst.Store, key).OK, "the database alone agrees with itself")
		rep, err := audit.Verify(ctxT(t), inst.Store, key, early, late)
		require.NoError(t, err)
		assert.Equal(t, audit.ReasonTruncated, rep.Reason, rep.String())
		assert.EqualValues(t, 4, rep.FirstBad)
		assert.Contains(t, rep.Detail, "events 4..9 were deleted")
	})

	t.Run("head rewritten by a holder of the key: the checkpoint tells", func(t *testing.T) {
		inst := open(t, store.Options{AuditKey: key})
		appendN(t, inst.Store, 5)
		cp := checkpoint(t, inst.Store)
		last := storedEvent(t, inst.Store, cp.Seq)
		last.Payload = json.RawMessage(`{"text":"/ndr help"}`)
		require.NoError(t, audit.Seal(&last, last.PrevHash, key))
		inst.Exec(t, `UPDATE audit_events SET payload = ?, hash = ? WHERE seq = ?`, string(last.Payload), last.Hash, last.Seq)
		inst.Exec(t, `UPDATE audit_head SET hash = ?`, last.Hash)

		assert.True(t, verify(t, inst.Store, key).OK)
		rep, err := audit.Verify(ctxT(t), inst.Store, key, cp)
		require.NoError(t, err)
		assert.Equal(t, audit.ReasonRewritten, rep.Reason, rep.String())
		assert.Equal(t, cp.Seq, rep.FirstBad)
	})

	t.Run("two replicas interleaving appends keep one chain", func(t *testing.T) {
		inst := open(t, store.Options{AuditKey: key})
		other, err := inst.Reopen(t, store.Options{AuditKey: key})
		require.NoError(t, err)
		defer other.Close()
		// Each append finds the head moved by the other replica since its own
		// last write (the one-statement append must notice and fall back), and
		// a transaction that appends as part of a change moves it too.
		for i := range 6 {
			appendN(t, inst.Store, 1)
			appendN(t, other, 2)
			if i%2 == 0 {
				newRun(t, inst.Store, "bot-1")
			}
		}
		rep := verify(t, inst.Store, key)
		require.True(t, rep.OK, rep.String())
		assert.EqualValues(t, 1+6*3+3, rep.Events, "epoch, 18 commands, 3 runs")
	})

	t.Run("head row deleted: a verdict, and nothing more is written", func(t *testing.T) {
		inst := open(t, store.Options{AuditKey: key})
		appendN(t, inst.Store, 3)
		inst.Exec(t, `DELETE FROM audit_head`)

		rep := verify(t, inst.Store, key)
		assert.Equal(t, audit.ReasonHeadMissing, rep.Reason, rep.String())
		_, err := inst.Store.Append(ctxT(t), audit.Record{Actor: bob, Kind: audit.KindCommand, Payload: map[string]any{}})
		require.ErrorIs(t, err, audit.ErrNoHead)
	})
}

// testUnwritableAudit: a relief whose start cannot be audited does not start.
func testUnwritableAudit(t *testing.T, open Opener) {
	inst := open(t, store.Options{})
	if inst.FillDisk == nil {
		t.Skip("this backend cannot simulate a full disk")
	}
	s, ctx := inst.Store, ctxT(t)
	a := approved(t, s, "restart-transport", 30*time.Minute, "ex01.contoso.com")
	before, err := s.AuditHead(ctx)
	require.NoError(t, err)
	inst.FillDisk(t, audit.KindRelief)

	_, err = s.ClaimRelief(ctx, a.ID, "bot-1", digest)
	require.Error(t, err)
	assert.Regexp(t, `(?i)disk is full|no space left`, err.Error())
	xs, err := s.Executions(ctx, a.RunID)
	require.NoError(t, err)
	assert.Empty(t, xs, "no execution was claimed")
	after, err := s.AuditHead(ctx)
	require.NoError(t, err)
	assert.Equal(t, before, after, "nothing was written")
	// And nothing blocks the host afterwards: the claim left no trace.
	ge := &store.GuardError{}
	other := approved(t, s, "restart-transport", 30*time.Minute, "ex01.contoso.com")
	_, err = s.ClaimRelief(ctx, other.ID, "bot-1", digest)
	assert.False(t, errors.As(err, &ge), "no guard refusal from a claim that never happened: %v", err)
}
