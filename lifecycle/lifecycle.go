// Package lifecycle moves runs through their states — the only writer of a
// run's state. Which moves are legal is incident's transition table, enforced by
// the store; which state a run reaches after its diagnosis, its reliefs or an
// interruption is decided here, once, for the chat and the terminal alike.
package lifecycle

import (
	"context"
	"fmt"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

// States is the part of the store a run's state is written through.
type States interface {
	SetRunState(ctx context.Context, id string, from, to incident.RunState, also ...audit.Record) (store.Run, error)
}

// Outcome is what a run has produced so far, as far as its state depends on it.
type Outcome interface {
	Proposals() []incident.Proposal
	Escalations() []incident.Escalation
}

// Runs writes run states.
type Runs struct{ st States }

// New writes through st.
func New(st States) Runs { return Runs{st: st} }

// AfterDiagnosis moves a diagnosed run on: escalated when the playbook escalated,
// awaiting approval when it proposed reliefs, finished otherwise.
func (r Runs) AfterDiagnosis(ctx context.Context, id string, o Outcome) (incident.RunState, error) {
	to := incident.RunAwaitingApproval
	switch {
	case len(o.Escalations()) > 0:
		to = incident.RunEscalated
	case len(o.Proposals()) == 0:
		to = incident.RunFinished
	}
	return to, r.move(ctx, id, incident.RunDiagnosing, to)
}

// Relieving records that a claimed relief is running.
func (r Runs) Relieving(ctx context.Context, id string) error {
	return r.move(ctx, id, "", incident.RunRelieving)
}

// Verifying records that a relief ran and its verification started.
func (r Runs) Verifying(ctx context.Context, id string) error {
	return r.move(ctx, id, "", incident.RunVerifying)
}

// Settle closes a run whose work is done: escalated when anything escalated,
// finished otherwise.
func (r Runs) Settle(ctx context.Context, id string, o Outcome) (incident.RunState, error) {
	to := incident.RunFinished
	if len(o.Escalations()) > 0 {
		to = incident.RunEscalated
	}
	return to, r.move(ctx, id, "", to)
}

// Interrupt closes a run a dead process left mid-way, saying why in the trail.
func (r Runs) Interrupt(ctx context.Context, id, note string) error {
	return r.move(ctx, id, "", incident.RunInterrupted, audit.Record{Actor: incident.BotActor, RunID: id,
		Kind: audit.KindRecovery, Payload: map[string]string{"note": note}})
}

func (r Runs) move(ctx context.Context, id string, from, to incident.RunState, also ...audit.Record) error {
	if _, err := r.st.SetRunState(ctx, id, from, to, also...); err != nil {
		return fmt.Errorf("run %s → %s: %w", id, to, err)
	}
	return nil
}
