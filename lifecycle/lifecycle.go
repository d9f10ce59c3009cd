// Package lifecycle owns a run from its start to its end: it records the
// command, diagnoses, takes votes, claims and runs an approved relief, verifies,
// settles, resumes a run a dead process left, and loads a run on another
// replica or after a restart. It is the only writer of a run's state; which
// moves are legal is incident's transition table, enforced by the store. The
// chat (commands) and the terminal (cmd/bot) adapt it: they parse, authorise and
// present, and never start, move or recover a run themselves.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/store"
)

// Store is the part of the store a run's life is written through and read back
// from.
type Store interface {
	audit.Source
	Append(ctx context.Context, r audit.Record) (audit.Event, error)
	CreateRun(ctx context.Context, r store.NewRun) (store.Run, error)
	GetRun(ctx context.Context, id string) (store.Run, error)
	SetRunState(ctx context.Context, id string, from, to incident.RunState, also ...audit.Record) (store.Run, error)
	PutStep(ctx context.Context, runID, phase string, r incident.StepResult) error
	Steps(ctx context.Context, runID string) ([]store.StepRecord, error)
	AddFindings(ctx context.Context, runID string, fs ...incident.Finding) error
	Findings(ctx context.Context, runID string) ([]incident.Finding, error)
	PutProposal(ctx context.Context, runID string, p incident.Proposal) error
	Proposals(ctx context.Context, runID string) ([]incident.Proposal, error)
	RequestApproval(ctx context.Context, a store.NewApproval) (store.Approval, error)
	Approvals(ctx context.Context, runID string) ([]store.Approval, error)
	Vote(ctx context.Context, approvalID string, voter incident.Actor, role string, d incident.Decision, digestNow string, now time.Time) (store.Outcome, error)
	ClaimRelief(ctx context.Context, approvalID, owner, digestNow string) (store.Execution, error)
	FinishRelief(ctx context.Context, executionID string, r store.ReliefOutcome) (store.Execution, error)
	Executions(ctx context.Context, runID string) ([]store.Execution, error)
	Recover(ctx context.Context, owner string, now time.Time) (store.Recovery, error)
}

// Outcome is what a run has produced so far, as far as its state depends on it.
type Outcome interface {
	Proposals() []incident.Proposal
	Escalations() []incident.Escalation
}

// ErrParams marks parameters a playbook refuses: the adapter shows its usage.
var ErrParams = errors.New("invalid parameters")

// Options are a Runs' dependencies.
type Options struct {
	Store Store
	// Engine runs steps and reliefs; nil for a Runs that only moves states.
	Engine *playbooks.Engine
	// Catalog returns the current playbooks (they may be reloaded): a run
	// restored from the store continues under its playbook's current version,
	// and the approval digest tells a change.
	Catalog func() *playbooks.Catalog
	// Owner names this process for leases and relief claims.
	Owner string
	// FourEyes is the configured floor (access.four_eyes).
	FourEyes bool
	// ResumeChat: Recover resumes the diagnoses of chat runs a dead process
	// left (ndrbot serve); without it they are closed (the terminal).
	ResumeChat bool
	// Observe returns what, besides the record in the store, follows a run's
	// progress: the chat thread, the terminal. Nil: nothing.
	Observe func(*Run) playbooks.Observer
	// AfterRelief is called when a relief's outcome or verification has been
	// recorded (the audit checkpointer's nudge); nil for none.
	AfterRelief func()
	Now         func() time.Time
	Log         *slog.Logger
}

// Runs holds the runs this process is working on and moves them through their
// life. A run stays in memory only while work on it is in flight (between Start,
// Load or Resume and Release); a run nobody holds is read back from the store
// when it is needed again, here or on another replica, so memory does not grow
// with the number of runs.
type Runs struct {
	opts Options

	mu   sync.Mutex
	held map[string]*Run
}

// New returns Runs writing through opts.Store.
func New(opts Options) *Runs {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Runs{opts: opts, held: map[string]*Run{}}
}

// Held is how many runs are in memory (a gauge, and the memory test's check).
func (rs *Runs) Held() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.held)
}

// Release says the caller is done with r; the last holder's release drops it
// from memory.
func (rs *Runs) Release(r *Run) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r.refs--
	if r.refs <= 0 && rs.held[r.ID] == r {
		delete(rs.held, r.ID)
	}
}

// hold adds r to memory, or returns the run already held under its id.
func (rs *Runs) hold(r *Run) *Run {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if have, ok := rs.held[r.ID]; ok {
		have.refs++
		return have
	}
	r.refs = 1
	rs.held[r.ID] = r
	return r
}

func (rs *Runs) lookup(id string) (*Run, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.held[id]
	if ok {
		r.refs++
	}
	return r, ok
}

// AfterDiagnosis moves a diagnosed run on: escalated when the playbook escalated,
// awaiting approval when it proposed reliefs, finished otherwise.
func (rs *Runs) AfterDiagnosis(ctx context.Context, id string, o Outcome) (incident.RunState, error) {
	to := incident.RunAwaitingApproval
	switch {
	case len(o.Escalations()) > 0:
		to = incident.RunEscalated
	case len(o.Proposals()) == 0:
		to = incident.RunFinished
	}
	return to, rs.move(ctx, id, incident.RunDiagnosing, to)
}

// Relieving records that a claimed relief is running.
func (rs *Runs) Relieving(ctx context.Context, id string) error {
	return rs.move(ctx, id, "", incident.RunRelieving)
}

// Verifying records that a relief ran and its verification started.
func (rs *Runs) Verifying(ctx context.Context, id string) error {
	return rs.move(ctx, id, "", incident.RunVerifying)
}

// Settle closes a run whose work is done: escalated when anything escalated,
// finished otherwise.
func (rs *Runs) Settle(ctx context.Context, id string, o Outcome) (incident.RunState, error) {
	to := incident.RunFinished
	if len(o.Escalations()) > 0 {
		to = incident.RunEscalated
	}
	return to, rs.move(ctx, id, "", to)
}

// Interrupt closes a run a dead process left mid-way, saying why in the trail.
func (rs *Runs) Interrupt(ctx context.Context, id, note string) error {
	return rs.move(ctx, id, "", incident.RunInterrupted, audit.Record{Actor: incident.BotActor, RunID: id,
		Kind: audit.KindRecovery, Payload: map[string]string{"note": note}})
}

func (rs *Runs) move(ctx context.Context, id string, from, to incident.RunState, also ...audit.Record) error {
	if _, err := rs.opts.Store.SetRunState(ctx, id, from, to, also...); err != nil {
		return fmt.Errorf("run %s → %s: %w", id, to, err)
	}
	if to.Terminal() {
		rs.opts.Log.Info("run ended", "run", id, "state", to)
	} else {
		rs.opts.Log.Info("run state", "run", id, "state", to)
	}
	return nil
}
