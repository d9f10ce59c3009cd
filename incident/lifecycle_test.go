package incident

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// RunStates is the whole state machine: each listed state is valid and has a
// row, and no row is missing from the list.
func TestRunStatesListsEveryState(t *testing.T) {
	states := RunStates()
	assert.Len(t, states, len(transitions))
	for _, s := range states {
		assert.True(t, s.Valid(), s)
		_, listed := transitions[s]
		assert.True(t, listed, "%s has a row", s)
	}
	assert.False(t, RunState("finshed").Valid())
}

func TestRunStateMachine(t *testing.T) {
	all := []RunState{RunDiagnosing, RunAwaitingApproval, RunRelieving, RunVerifying, RunFinished, RunEscalated, RunInterrupted, RunRecovered}
	for _, s := range all {
		assert.True(t, s.CanBecome(s), "%s stays %s", s, s)
		_, listed := transitions[s]
		assert.True(t, listed, "%s has a row", s)
	}
	cases := []struct {
		from, to RunState
		ok       bool
	}{
		{RunDiagnosing, RunAwaitingApproval, true},
		{RunAwaitingApproval, RunRelieving, true},
		{RunRelieving, RunVerifying, true},
		{RunVerifying, RunEscalated, true},
		{RunEscalated, RunRelieving, true}, // a relief approved after the escalation
		{RunInterrupted, RunRecovered, true},
		{RunFinished, RunDiagnosing, false},
		{RunEscalated, RunFinished, false},
		{RunAwaitingApproval, RunVerifying, false}, // nothing ran to verify
		{RunInterrupted, RunRelieving, false},      // its outcome is unknown: never re-run
		{RunRecovered, RunFinished, false},
		{RunDiagnosing, RunRecovered, false},
	}
	for _, c := range cases {
		assert.Equal(t, c.ok, c.from.CanBecome(c.to), "%s → %s", c.from, c.to)
	}
}
