package lifecycle

import (
	"context"
	"fmt"
	"sync"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/store"
)

// recorder writes a run's progress to the store as the engine reports it: step
// results, findings, proposals with their approval requests, relief outcomes,
// verifications and escalations. The store audits each write in the same
// transaction. A failed write is logged and remembered (Err).
type recorder struct {
	rs        *Runs
	run       *playbooks.Run
	requester incident.Actor
	terminal  bool

	mu         sync.Mutex
	err        error
	verifyN    int
	approvals  map[string]store.Approval  // relief → approval request
	executions map[string]store.Execution // relief → claimed execution
}

func newRecorder(rs *Runs, run *playbooks.Run, requester incident.Actor, terminal bool) *recorder {
	return &recorder{rs: rs, run: run, requester: requester, terminal: terminal,
		approvals: map[string]store.Approval{}, executions: map[string]store.Execution{}}
}

func (r *recorder) store() Store { return r.rs.opts.Store }

func (r *recorder) afterRelief() {
	if r.rs.opts.AfterRelief != nil {
		r.rs.opts.AfterRelief()
	}
}

// Err is the first store write that failed, if any.
func (r *recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *recorder) fail(what string, err error) {
	if err == nil {
		return
	}
	r.rs.opts.Log.Error("recording run", "run", r.run.ID, "what", what, "err", err)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = fmt.Errorf("recording %s of run %s: %w", what, r.run.ID, err)
	}
}

func (r *recorder) approval(relief string) (store.Approval, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.approvals[relief]
	return a, ok
}

func (r *recorder) claimed(relief string, x store.Execution) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.executions[relief] = x
}

// Observe implements playbooks.Observer.
func (r *recorder) Observe(ctx context.Context, ev incident.Event) {
	st := r.store()
	switch ev.Kind {
	case incident.EventStepFinished:
		phase := playbooks.PhaseDiagnose
		if ev.Step.Verifying {
			r.mu.Lock()
			phase = fmt.Sprintf("verify-%d", r.verifyN)
			r.mu.Unlock()
		}
		r.fail("step "+ev.Step.Step, st.PutStep(ctx, r.run.ID, phase, *ev.Step))
	case incident.EventFinding:
		r.fail("finding", st.AddFindings(ctx, r.run.ID, *ev.Finding))
	case incident.EventProposal:
		r.proposal(ctx, *ev.Proposal)
	case incident.EventVerifyStarted:
		r.mu.Lock()
		r.verifyN++
		r.mu.Unlock()
		r.fail("run state", r.rs.Verifying(ctx, r.run.ID))
	case incident.EventReliefFinished:
		r.mu.Lock()
		x, ok := r.executions[ev.Relief.Relief]
		r.mu.Unlock()
		if ok {
			_, err := st.FinishRelief(ctx, x.ID, store.ReliefOutcome{OK: ev.Relief.OK, Output: ev.Relief.Output, Error: ev.Relief.Error})
			r.fail("relief outcome", err)
			r.afterRelief()
		}
		r.rs.opts.Log.Info("relief finished", "run", r.run.ID, "relief", ev.Relief.Relief, "ok", ev.Relief.OK,
			"error", ev.Relief.Error, "duration", ev.Relief.Duration)
	case incident.EventReliefVerified:
		r.rs.opts.Log.Info("relief verified", "run", r.run.ID, "relief", ev.Relief.Relief, "helped", ev.Relief.Verified != nil && *ev.Relief.Verified)
		_, err := st.Append(ctx, audit.Record{Actor: incident.BotActor, RunID: r.run.ID, Kind: audit.KindVerification, Payload: ev.Relief})
		r.fail("verification", err)
		r.afterRelief()
	case incident.EventEscalation:
		r.rs.opts.Log.Info("escalated", "run", r.run.ID, "rule", ev.Escalation.Rule, "reason", ev.Escalation.Reason)
		_, err := st.Append(ctx, audit.Record{Actor: incident.BotActor, RunID: r.run.ID, Kind: audit.KindEscalation, Payload: ev.Escalation})
		r.fail("escalation", err)
	}
}

func (r *recorder) proposal(ctx context.Context, p incident.Proposal) {
	if err := r.store().PutProposal(ctx, r.run.ID, p); err != nil {
		r.fail("proposal", err)
		return
	}
	if p.Blocked != "" {
		return
	}
	a, err := r.store().RequestApproval(ctx, store.NewApproval{
		RunID: r.run.ID, ProposalID: p.ID, ReliefID: p.Relief, Hosts: p.Hosts,
		Digest: incident.ProposalDigest(r.run.Playbook.Version, p),
		// A playbook may ask for four eyes where access.four_eyes is off, never
		// waive it where it is on; the terminal waives it unless told not to.
		Required: p.Approval.Approvers, FourEyes: !r.terminal && (r.rs.opts.FourEyes || p.Approval.FourEyes),
		Requester: r.requester, ExpiresAt: r.rs.opts.Now().Add(p.Approval.Expires), Cooldown: p.Cooldown,
		Role: p.Approval.Role, // enforced again at the claim
	})
	if err != nil {
		r.fail("approval request", err)
		return
	}
	r.mu.Lock()
	r.approvals[p.Relief] = a
	r.mu.Unlock()
	r.rs.opts.Log.Info("approval requested", "run", r.run.ID, "relief", p.Relief, "approval", a.ID, "hosts", p.Hosts,
		"role", a.Role, "approvers", a.Required, "four_eyes", a.FourEyes, "expires", a.ExpiresAt)
}
