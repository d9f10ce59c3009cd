package lifecycle_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/lifecycle"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

type outcome struct {
	proposals   []incident.Proposal
	escalations []incident.Escalation
}

func (o outcome) Proposals() []incident.Proposal     { return o.proposals }
func (o outcome) Escalations() []incident.Escalation { return o.escalations }

var (
	proposed  = []incident.Proposal{{Relief: "restart-transport"}}
	escalated = []incident.Escalation{{Rule: "persists"}}
)

func newRun(t *testing.T, st store.Store) string {
	t.Helper()
	r, err := st.CreateRun(context.Background(), store.NewRun{Playbook: "ndr-5.5.4", PlaybookVersion: "v", Params: json.RawMessage(`{}`),
		Requester: incident.Actor{ID: "U1", Name: "u"}, Origin: "cli", Owner: "test"})
	require.NoError(t, err)
	return r.ID
}

func state(t *testing.T, st store.Store, id string) incident.RunState {
	t.Helper()
	r, err := st.GetRun(context.Background(), id)
	require.NoError(t, err)
	return r.State
}

// One run's life through lifecycle, against a real store: each decision about
// the next state is made here, and the store's state machine refuses the rest.
func TestRunsLife(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ndrbot.db"), store.Options{})
	require.NoError(t, err)
	defer st.Close()
	runs := lifecycle.New(lifecycle.Options{Store: st})

	for _, c := range []struct {
		name string
		o    outcome
		want incident.RunState
	}{
		{"nothing found", outcome{}, incident.RunFinished},
		{"a relief proposed", outcome{proposals: proposed}, incident.RunAwaitingApproval},
		{"escalated, even with a relief proposed", outcome{proposals: proposed, escalations: escalated}, incident.RunEscalated},
	} {
		id := newRun(t, st)
		got, err := runs.AfterDiagnosis(ctx, id, c.o)
		require.NoError(t, err, c.name)
		assert.Equal(t, c.want, got, c.name)
		assert.Equal(t, c.want, state(t, st, id), c.name)
	}

	// A relief approved after the escalation, verified, then settled.
	id := newRun(t, st)
	_, err = runs.AfterDiagnosis(ctx, id, outcome{proposals: proposed, escalations: escalated})
	require.NoError(t, err)
	require.NoError(t, runs.Relieving(ctx, id))
	require.NoError(t, runs.Verifying(ctx, id))
	got, err := runs.Settle(ctx, id, outcome{escalations: escalated})
	require.NoError(t, err)
	assert.Equal(t, incident.RunEscalated, got)

	// A diagnosis is only moved on from diagnosing: a second report is refused.
	_, err = runs.AfterDiagnosis(ctx, id, outcome{})
	assert.ErrorIs(t, err, incident.ErrConflict)

	// Interrupted: the note is in the trail, and nothing moves it but recovery.
	id = newRun(t, st)
	require.NoError(t, runs.Interrupt(ctx, id, "diagnosis interrupted; run it again"))
	assert.Equal(t, incident.RunInterrupted, state(t, st, id))
	assert.ErrorIs(t, runs.Relieving(ctx, id), incident.ErrConflict, "a relief whose run was interrupted is never re-run")
	var notes []string
	for e, err := range st.Events(ctx, audit.Filter{RunID: id, Kinds: []audit.Kind{audit.KindRecovery}}) {
		require.NoError(t, err)
		notes = append(notes, string(e.Payload))
	}
	assert.Equal(t, []string{`{"note":"diagnosis interrupted; run it again"}`}, notes)
}
