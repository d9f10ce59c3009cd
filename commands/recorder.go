package commands

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/lifecycle"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/store"
)

// Recorder writes a run's progress to the durable store as the engine reports it:
// step results, findings, proposals with their approval requests, relief outcomes
// and escalations. The store audits each write in the same transaction. A failed
// write is logged and remembered (Err): a run whose record is incomplete must not
// look complete.
type Recorder struct {
	store     store.Store
	run       *playbooks.Run
	requester incident.Actor
	fourEyes  bool
	terminal  bool
	after     func()
	now       func() time.Time
	log       *slog.Logger

	mu         sync.Mutex
	err        error
	verifyN    int
	approvals  map[string]store.Approval  // relief → approval request
	executions map[string]store.Execution // relief → claimed execution
}

// RecorderOptions tune a Recorder.
type RecorderOptions struct {
	// FourEyes is the configured floor (access.four_eyes): a playbook may ask
	// for four eyes where it is off, never waive it where it is on.
	FourEyes bool
	// Terminal waives four-eyes: the person at the terminal is both requester
	// and approver by nature. The terminal sets it unless access.cli_four_eyes
	// is refuse; then its runs keep the floor above, and a lone approval of a
	// four-eyes relief at the terminal is refused.
	Terminal bool
	// AfterRelief is called once a relief's outcome or verification is recorded.
	AfterRelief func()
	Now         func() time.Time
	Log         *slog.Logger
}

// NewRecorder records run for requester.
func NewRecorder(st store.Store, run *playbooks.Run, requester incident.Actor, opts RecorderOptions) *Recorder {
	r := &Recorder{store: st, run: run, requester: requester, fourEyes: opts.FourEyes, terminal: opts.Terminal, after: opts.AfterRelief, now: opts.Now, log: opts.Log,
		approvals: map[string]store.Approval{}, executions: map[string]store.Execution{}}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r
}

func (r *Recorder) afterRelief() {
	if r.after != nil {
		r.after()
	}
}

// Err is the first store write that failed, if any.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *Recorder) fail(what string, err error) {
	if err == nil {
		return
	}
	r.log.Error("recording run", "run", r.run.ID, "what", what, "err", err)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = fmt.Errorf("recording %s of run %s: %w", what, r.run.ID, err)
	}
}

// Approval returns the approval request recorded for a relief.
func (r *Recorder) Approval(relief string) (store.Approval, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.approvals[relief]
	return a, ok
}

// Observe implements playbooks.Observer.
func (r *Recorder) Observe(ctx context.Context, ev incident.Event) {
	switch ev.Kind {
	case incident.EventStepFinished:
		phase := playbooks.PhaseDiagnose
		if ev.Step.Verifying {
			r.mu.Lock()
			phase = fmt.Sprintf("verify-%d", r.verifyN)
			r.mu.Unlock()
		}
		r.fail("step "+ev.Step.Step, r.store.PutStep(ctx, r.run.ID, phase, *ev.Step))
	case incident.EventFinding:
		r.fail("finding", r.store.AddFindings(ctx, r.run.ID, *ev.Finding))
	case incident.EventProposal:
		r.proposal(ctx, *ev.Proposal)
	case incident.EventVerifyStarted:
		r.mu.Lock()
		r.verifyN++
		r.mu.Unlock()
		r.fail("run state", lifecycle.New(r.store).Verifying(ctx, r.run.ID))
	case incident.EventReliefFinished:
		r.mu.Lock()
		x, ok := r.executions[ev.Relief.Relief]
		r.mu.Unlock()
		if ok {
			_, err := r.store.FinishRelief(ctx, x.ID, store.ReliefOutcome{OK: ev.Relief.OK, Output: ev.Relief.Output, Error: ev.Relief.Error})
			r.fail("relief outcome", err)
			r.afterRelief()
		}
	case incident.EventReliefVerified:
		_, err := r.store.Append(ctx, audit.Record{Actor: incident.BotActor, RunID: r.run.ID, Kind: audit.KindVerification, Payload: ev.Relief})
		r.fail("verification", err)
		r.afterRelief()
	case incident.EventEscalation:
		_, err := r.store.Append(ctx, audit.Record{Actor: incident.BotActor, RunID: r.run.ID, Kind: audit.KindEscalation, Payload: ev.Escalation})
		r.fail("escalation", err)
	}
}

func (r *Recorder) proposal(ctx context.Context, p incident.Proposal) {
	if err := r.store.PutProposal(ctx, r.run.ID, p); err != nil {
		r.fail("proposal", err)
		return
	}
	if p.Blocked != "" {
		return
	}
	a, err := r.store.RequestApproval(ctx, store.NewApproval{
		RunID: r.run.ID, ProposalID: p.ID, ReliefID: p.Relief, Hosts: p.Hosts,
		Digest:   incident.ProposalDigest(r.run.Playbook.Version, p),
		Required: p.Approval.Approvers, FourEyes: !r.terminal && (r.fourEyes || p.Approval.FourEyes),
		Requester: r.requester, ExpiresAt: r.now().Add(p.Approval.Expires), Cooldown: p.Cooldown,
		Role: p.Approval.Role, // enforced again at the claim
	})
	if err != nil {
		r.fail("approval request", err)
		return
	}
	r.mu.Lock()
	r.approvals[p.Relief] = a
	r.mu.Unlock()
}

// Finish moves the run to its final state: escalated when anything escalated,
// finished otherwise.
func (r *Recorder) Finish(ctx context.Context) error {
	_, err := lifecycle.New(r.store).Settle(ctx, r.run.ID, r.run)
	r.fail("final state", err)
	return r.Err()
}

// Vote records one approver's decision on a relief of the run. role is the
// role the caller verified voter holds (RoleApprover or RoleAdmin); the store
// records it with the vote. digest is what would run now
// (incident.ProposalDigest over the current playbook and hosts): if it differs
// from the approved one, the approval becomes void.
func (r *Recorder) Vote(ctx context.Context, relief string, voter incident.Actor, role string, d incident.Decision, digest string) (store.Outcome, error) {
	a, ok := r.Approval(relief)
	if !ok {
		return store.Outcome{}, fmt.Errorf("%w: no approval was requested for %s in run %s", incident.ErrNotFound, relief, r.run.ID)
	}
	return r.store.Vote(ctx, a.ID, voter, role, d, digest, r.now())
}

// Claim takes the one execution of an approved relief (across goroutines,
// processes and replicas) before it runs; the relief's outcome is recorded on it.
func (r *Recorder) Claim(ctx context.Context, relief, owner, digest string) (store.Execution, error) {
	a, ok := r.Approval(relief)
	if !ok {
		return store.Execution{}, fmt.Errorf("%w: no approval was requested for %s in run %s", incident.ErrNotFound, relief, r.run.ID)
	}
	x, err := r.store.ClaimRelief(ctx, a.ID, owner, digest)
	if err != nil {
		return x, err
	}
	r.mu.Lock()
	r.executions[relief] = x
	r.mu.Unlock()
	r.fail("run state", lifecycle.New(r.store).Relieving(ctx, r.run.ID))
	return x, nil
}

// Approve is a terminal's whole approval: one vote under role, the claim when
// the vote completes the approval, then the relief through the engine — at
// most once.
func (r *Recorder) Approve(ctx context.Context, eng *playbooks.Engine, relief, owner string, voter incident.Actor, role string) (store.Outcome, error) {
	p, _ := r.run.Proposal(relief)
	digest := incident.ProposalDigest(r.run.Playbook.Version, p)
	out, err := r.Vote(ctx, relief, voter, role, incident.Approve, digest)
	if err != nil || out.Kind != store.OutcomeApproved {
		return out, err
	}
	if _, err := r.Claim(ctx, relief, owner, digest); err != nil {
		return out, err
	}
	_, err = eng.Relieve(ctx, r.run, relief)
	return out, err
}

// useApprovals adopts approval requests recorded earlier (a run restored in
// another process).
func (r *Recorder) useApprovals(as []store.Approval) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range as {
		r.approvals[a.ReliefID] = a
	}
}
