package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

// statsSource is implemented by the backends (core.Store.Stats), for metrics.
type statsSource interface {
	Stats(ctx context.Context) (store.Stats, error)
}

func testStats(t *testing.T, open Opener) {
	s, ctx := open(t, store.Options{}).Store, ctxT(t)
	src, ok := s.(statsSource)
	require.True(t, ok, "%T has no Stats", s)
	empty, err := src.Stats(ctx)
	require.NoError(t, err)
	assert.Zero(t, empty.OutboxPending)
	assert.True(t, empty.OldestPending.IsZero())

	r := newRun(t, s, "bot-1")
	_, err = s.SetRunState(ctx, r.ID, "", incident.RunEscalated)
	require.NoError(t, err)
	newRun(t, s, "bot-1")
	a := approved(t, s, "restart-transport", 0, "ex01.contoso.com")
	_, err = s.ClaimRelief(ctx, a.ID, "bot-1", digest)
	require.NoError(t, err)
	before := time.Now().Add(-time.Second)
	for _, key := range []string{"one", "two"} {
		_, err = s.EnqueuePost(ctx, store.Post{RunID: r.ID, Channel: "C0INC", Key: key, Payload: json.RawMessage(`{}`)})
		require.NoError(t, err)
	}

	st, err := src.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Runs[store.RunKey{Playbook: "ndr-5.5.4", State: string(incident.RunEscalated)}])
	assert.Equal(t, 2, st.Runs[store.RunKey{Playbook: "ndr-5.5.4", State: string(incident.RunDiagnosing)}], "the second run and the approval's run")
	assert.Equal(t, 1, st.Approvals[string(incident.ApprovalApproved)])
	assert.Equal(t, 1, st.Executions[store.ExecutionKey{Relief: "restart-transport", State: string(incident.ExecRunning)}])
	assert.Equal(t, 2, st.OutboxPending)
	assert.WithinDuration(t, time.Now(), st.OldestPending, time.Since(before)+time.Second)
}
