package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/store"
)

// Run is a run this process is working on: the engine's run with who asked for
// it and where, and the record that writes its progress to the store.
type Run struct {
	*playbooks.Run
	Requester incident.Actor
	Origin    string
	// Channel is the chat channel of its thread; empty for a terminal's run.
	Channel string
	// Follower is what Options.Observe built for the run (its chat thread, the
	// terminal), for the adapter to reach again.
	Follower playbooks.Observer

	rec  *recorder
	refs int // holders; guarded by Runs.mu
}

// Approval returns the approval request recorded for a relief of the run.
func (r *Run) Approval(relief string) (store.Approval, bool) { return r.rec.approval(relief) }

// Err is the first write of the run's record that failed, if any: a run whose
// record is incomplete must not look complete.
func (r *Run) Err() error { return r.rec.Err() }

// Start is one request for a diagnosis.
type Start struct {
	Playbook *playbooks.Playbook
	// Args are the parameters as typed (key → text); the playbook validates them.
	Args      map[string]string
	Requester incident.Actor
	// Origin is "chat" or "cli".
	Origin  string
	Channel string
	// Command is the request as the audit trail records it.
	Command map[string]any
	// Terminal waives four-eyes: the person at a terminal is requester and
	// approver by nature (see access.cli_four_eyes).
	Terminal bool
}

// DisplayParams renders typed parameters as a user would type them.
func DisplayParams(params map[string]any) map[string]string {
	out := make(map[string]string, len(params))
	for k, v := range params {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// paramsError is the playbook's own message, matching ErrParams.
type paramsError struct{ err error }

func (e paramsError) Error() string   { return e.err.Error() }
func (e paramsError) Unwrap() []error { return []error{ErrParams, e.err} }

// Start validates the parameters, records the run and its command, and returns
// the run held for the caller (Release it), ready for Diagnose. Invalid
// parameters wrap ErrParams and record nothing.
func (rs *Runs) Start(ctx context.Context, s Start) (*Run, error) {
	pb := s.Playbook
	params, err := pb.Params.Resolve(s.Args)
	if err != nil {
		return nil, paramsError{err}
	}
	paramsJSON, err := json.Marshal(DisplayParams(params))
	if err != nil {
		return nil, err
	}
	stored, err := rs.opts.Store.CreateRun(ctx, store.NewRun{Playbook: pb.ID, PlaybookVersion: pb.Version, Params: paramsJSON,
		Requester: s.Requester, Origin: s.Origin, Chat: store.ChatRef{Channel: s.Channel}, Owner: rs.opts.Owner})
	if err != nil {
		return nil, fmt.Errorf("store: recording the run: %w", err)
	}
	if _, err := rs.opts.Store.Append(ctx, audit.Record{Actor: s.Requester, RunID: stored.ID, Kind: audit.KindCommand,
		Payload: s.Command}); err != nil {
		return nil, fmt.Errorf("audit: recording the command of run %s: %w", stored.ID, err)
	}
	run := playbooks.NewRun(stored.ID, pb, params, rs.opts.Now(), nil)
	rs.opts.Log.Info("run started", "run", stored.ID, "playbook", pb.ID, "version", pb.Version, "requester", s.Requester.ID,
		"origin", s.Origin, "channel", s.Channel)
	return rs.hold(rs.wire(run, s.Requester, s.Origin, s.Channel, s.Terminal, nil)), nil
}

// wire attaches the run's record and observers.
func (rs *Runs) wire(run *playbooks.Run, requester incident.Actor, origin, channel string, terminal bool, approvals []store.Approval) *Run {
	r := &Run{Run: run, Requester: requester, Origin: origin, Channel: channel}
	r.rec = newRecorder(rs, run, requester, terminal)
	for _, a := range approvals {
		r.rec.approvals[a.ReliefID] = a
	}
	var obs playbooks.Observer = r.rec
	if rs.opts.Observe != nil {
		if o := rs.opts.Observe(r); o != nil {
			r.Follower = o
			obs = fanout{r.rec, o}
		}
	}
	run.Observer = obs
	return r
}

// fanout sends engine events to several observers in order: the record first,
// so what a thread or terminal shows is already stored.
type fanout []playbooks.Observer

func (f fanout) Observe(ctx context.Context, ev incident.Event) {
	for _, o := range f {
		o.Observe(ctx, ev)
	}
}

// Diagnose runs the read-only diagnosis and moves the run on: escalated,
// awaiting approval or finished. It returns an error only when ctx ends first
// (the run stays diagnosing, for recovery) or the state cannot be written.
func (rs *Runs) Diagnose(ctx context.Context, r *Run) (incident.RunState, error) {
	if err := rs.opts.Engine.Diagnose(ctx, r.Run); err != nil {
		return incident.RunDiagnosing, fmt.Errorf("run %s: diagnosis stopped: %w", r.ID, err)
	}
	return rs.AfterDiagnosis(ctx, r.ID, r.Run)
}

// Resume prepares the read-only diagnosis of a run a dead process left half
// done (store.Recovery.Resume) to be run again under this process; the trail
// says so. Held for the caller, ready for Diagnose.
func (rs *Runs) Resume(ctx context.Context, stored store.Run) (*Run, error) {
	pb, params, err := rs.playbookOf(stored)
	if err != nil {
		return nil, err
	}
	if _, err := rs.opts.Store.Append(ctx, audit.Record{Actor: incident.BotActor, RunID: stored.ID, Kind: audit.KindRecovery,
		Payload: map[string]string{"note": "diagnosis resumed by " + rs.opts.Owner}}); err != nil {
		return nil, err
	}
	run := playbooks.NewRun(stored.ID, pb, params, rs.opts.Now(), nil)
	return rs.hold(rs.wire(run, stored.Requester, stored.Origin, stored.Chat.Channel, false, nil)), nil
}

// Recovered is what this process took over from processes that died (and
// from its own earlier life).
type Recovered struct {
	// Unknown are reliefs that were running: their outcome is unknown and they
	// are never run again; a human checks the hosts.
	Unknown []store.Execution
	// Resumed are diagnoses to run again here, held for the caller: Diagnose,
	// then Release.
	Resumed []*Run
	// Closed are runs nobody can continue, now interrupted, with why.
	Closed []Closed
}

// Closed is a run recovery closed as interrupted.
type Closed struct {
	Run  store.Run
	Note string
}

// Recover takes over interrupted work: reliefs that were running become
// outcome-unknown; a diagnosis started in chat is resumed when this process
// serves chat (Options.ResumeChat) — its thread is still watched — and every
// other run left mid-way is closed as interrupted: a terminal's run has nobody
// watching it any more, and a run stopped mid-relief needs a human.
func (rs *Runs) Recover(ctx context.Context) (Recovered, error) {
	var out Recovered
	rec, err := rs.opts.Store.Recover(ctx, rs.opts.Owner, rs.opts.Now())
	if err != nil {
		return out, fmt.Errorf("store: recovering interrupted work: %w", err)
	}
	out.Unknown = rec.Unknown
	for _, r := range rec.Resume {
		if rs.opts.ResumeChat && r.State == incident.RunDiagnosing && r.Origin == "chat" {
			run, err := rs.Resume(ctx, r)
			if err == nil {
				out.Resumed = append(out.Resumed, run)
				continue
			}
			rs.opts.Log.Error("resuming a diagnosis; closing it", "run", r.ID, "err", err)
		}
		note := "interrupted in " + string(r.State) + "; verify by hand"
		switch r.State {
		case incident.RunDiagnosing:
			note = "diagnosis interrupted; closed by " + rs.opts.Owner + " — run it again"
		case incident.RunAwaitingApproval:
			note = "the terminal that was to approve its reliefs stopped; nothing ran — run it again"
		}
		if err := rs.Interrupt(ctx, r.ID, note); err != nil {
			return out, fmt.Errorf("store: closing interrupted run %s: %w", r.ID, err)
		}
		out.Closed = append(out.Closed, Closed{Run: r, Note: note})
	}
	return out, nil
}

// playbookOf finds the playbook a stored run used, and its parameters. A
// reloaded playbook with another version still resolves; the approval digest
// then tells the difference.
func (rs *Runs) playbookOf(r store.Run) (*playbooks.Playbook, map[string]any, error) {
	pb, err := rs.opts.Catalog().Resolve(r.Playbook)
	if err != nil || pb.ID != r.Playbook {
		return nil, nil, fmt.Errorf("%w: playbook %s of run %s is no longer loaded", incident.ErrNotFound, r.Playbook, r.ID)
	}
	var raw map[string]string
	if err := json.Unmarshal(r.Params, &raw); err != nil {
		return nil, nil, fmt.Errorf("run %s params: %w", r.ID, err)
	}
	params, err := pb.Params.Resolve(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("run %s params: %w", r.ID, err)
	}
	return pb, params, nil
}

// Digest is the digest of what a relief of r would run now: the current
// playbook's version and the proposal's hosts that its target still has. It
// differs from the approved one when a reload or a host change came between.
func (rs *Runs) Digest(r *Run, relief string) string {
	p, _ := r.Proposal(relief)
	version := "gone"
	if pb, err := rs.opts.Catalog().Resolve(r.Playbook.ID); err == nil {
		version = pb.Version
	}
	if rs.opts.Engine != nil {
		if hosts, err := rs.opts.Engine.Hosts(p.Target); err == nil {
			p.Hosts = slices.DeleteFunc(slices.Clone(p.Hosts), func(h string) bool { return !slices.Contains(hosts, h) })
		}
	}
	return incident.ProposalDigest(version, p)
}

// Vote records one approver's decision on a relief of r. role is the role the
// caller verified the voter holds; the store records it with the vote and
// refuses one that does not satisfy the approval's.
func (rs *Runs) Vote(ctx context.Context, r *Run, relief string, voter incident.Actor, role string, d incident.Decision) (store.Outcome, error) {
	a, ok := r.Approval(relief)
	if !ok {
		return store.Outcome{}, fmt.Errorf("%w: no approval was requested for %s in run %s", incident.ErrNotFound, relief, r.ID)
	}
	out, err := rs.opts.Store.Vote(ctx, a.ID, voter, role, d, rs.Digest(r, relief), rs.opts.Now())
	if err != nil {
		rs.opts.Log.Info("vote refused", "run", r.ID, "relief", relief, "approval", a.ID, "voter", voter.ID, "role", role,
			"decision", d, "why", err)
		return out, err
	}
	rs.opts.Log.Info("vote", "run", r.ID, "relief", relief, "approval", a.ID, "voter", voter.ID, "role", role,
		"decision", d, "outcome", out.Kind, "votes", out.Votes, "required", out.Required)
	return out, nil
}

// Claim takes the one execution of an approved relief (across goroutines,
// processes and replicas) before it runs, and moves the run to relieving.
func (rs *Runs) Claim(ctx context.Context, r *Run, relief string) (store.Execution, error) {
	a, ok := r.Approval(relief)
	if !ok {
		return store.Execution{}, fmt.Errorf("%w: no approval was requested for %s in run %s", incident.ErrNotFound, relief, r.ID)
	}
	x, err := rs.opts.Store.ClaimRelief(ctx, a.ID, rs.opts.Owner, rs.Digest(r, relief))
	if err != nil {
		rs.opts.Log.Info("relief not started", "run", r.ID, "relief", relief, "approval", a.ID, "why", err)
		return x, err
	}
	rs.opts.Log.Info("relief started", "run", r.ID, "relief", relief, "execution", x.ID, "hosts", x.Hosts, "owner", x.Owner)
	r.rec.claimed(relief, x)
	r.rec.fail("run state", rs.Relieving(ctx, r.ID))
	return x, nil
}

// Relieve runs a claimed relief through the engine (verification included) and
// settles the run.
func (rs *Runs) Relieve(ctx context.Context, r *Run, relief string) (incident.ReliefResult, error) {
	res, err := rs.opts.Engine.Relieve(ctx, r.Run, relief)
	if err != nil {
		err = fmt.Errorf("run %s: relief %s: %w", r.ID, relief, err)
	}
	if _, serr := rs.Settle(ctx, r.ID, r.Run); serr != nil {
		r.rec.fail("final state", serr)
		if err == nil {
			err = serr
		}
	}
	return res, err
}

// Approve is a terminal's whole approval: one vote under role, the claim when
// the vote completes the approval, then the relief — at most once.
func (rs *Runs) Approve(ctx context.Context, r *Run, relief string, voter incident.Actor, role string) (store.Outcome, error) {
	out, err := rs.Vote(ctx, r, relief, voter, role, incident.Approve)
	if err != nil || out.Kind != store.OutcomeApproved {
		return out, err
	}
	if _, err := rs.Claim(ctx, r, relief); err != nil {
		return out, err
	}
	_, err = rs.opts.Engine.Relieve(ctx, r.Run, relief)
	return out, err
}

// Finish settles a run whose work is done (escalated when anything escalated,
// finished otherwise) and reports whether its whole record was written.
func (rs *Runs) Finish(ctx context.Context, r *Run) error {
	_, err := rs.Settle(ctx, r.ID, r.Run)
	r.rec.fail("final state", err)
	return r.Err()
}
