package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/lifecycle"
	"github.com/ndrbot/ndrbot/store"
)

// Button action ids.
const (
	ActionApprove      = "approve"
	ActionReject       = "reject"
	ActionRunDiagnosis = "run-diagnosis"
	// ActionChoosePlaybook picks one of the playbooks that fit a pasted bounce.
	ActionChoosePlaybook = "choose-playbook"
)

// Click handles one button press. The button's value is never trusted alone: the
// approval it names is looked up in the store, and the click must come from the
// run's channel, from an approver, before the approval expired or was decided.
// Every refusal is audited and runs nothing.
func (s *Service) Click(ctx context.Context, c Click) Reply {
	s.log.Info("click", "action", c.Action, "user", c.User.ID, "channel", c.ChannelID, "value", Echo(c.Value))
	switch c.Action {
	case ActionApprove:
		return s.vote(ctx, c, incident.Approve)
	case ActionReject:
		return s.vote(ctx, c, incident.Reject)
	case ActionRunDiagnosis:
		return s.alertDiagnosis(ctx, c)
	case ActionChoosePlaybook:
		return s.choosePlaybook(ctx, c)
	}
	s.refused(ctx, c.User, "", "click", map[string]any{"action": c.Action, "value": c.Value, "why": "unknown action"})
	return Reply{Text: "That button is not one of ndrbot's; nothing was run."}
}

func (s *Service) vote(ctx context.Context, c Click, d incident.Decision) Reply {
	a, err := s.opts.Store.GetApproval(ctx, c.Value)
	if errors.Is(err, incident.ErrNotFound) {
		s.refused(ctx, c.User, "", "click", map[string]any{"action": c.Action, "value": c.Value, "why": "no such approval"})
		return Reply{Text: "This button does not match any approval request; nothing was run."}
	}
	if err != nil {
		return s.internal("reading the approval", err)
	}
	run, err := s.opts.Store.GetRun(ctx, a.RunID)
	if err != nil {
		return s.internal("reading the run", err)
	}
	if run.Chat.Channel != c.ChannelID {
		s.refused(ctx, c.User, a.RunID, "click", map[string]any{"approval": a.ID, "channel": c.ChannelID, "why": "not the run's channel"})
		return Reply{Text: "This approval belongs to another channel; nothing was run."}
	}
	// The role the clicker holds, read live, is recorded with the vote: the
	// store refuses a vote, and the claim an approval, that lacks the role
	// the relief asks for.
	role, err := s.auth.decidesAs(ctx, c.User.ID)
	if err != nil {
		return s.internal("authorising", err)
	}
	if role == "" {
		s.refused(ctx, c.User, a.RunID, "click", map[string]any{"approval": a.ID, "why": "not an approver"})
		return Reply{Text: "Only approvers (access.approvers) may decide reliefs; your click was recorded and nothing was run."}
	}
	live, err := s.runs.Load(ctx, run)
	if err != nil {
		return s.internal("loading the run", err)
	}
	release := true // unless the relief goes on in the background
	defer func() {
		if release {
			s.runs.Release(live)
		}
	}()
	// A relief may ask for more than an approver (setting a component state
	// another team set needs an admin): the policy its card showed, or the one
	// its approval was requested with, whichever is stricter.
	need := a.Role
	if p, found := live.Proposal(a.ReliefID); found {
		need = store.StricterRole(need, p.Approval.Role)
	}
	if !store.RoleSatisfies(role, need) {
		s.refused(ctx, c.User, a.RunID, "click", map[string]any{"approval": a.ID, "why": "not " + need, "role": need})
		return Reply{Text: fmt.Sprintf("%s needs the %s role (access.%ss); your click was recorded and nothing was run.", a.ReliefID, need, need)}
	}
	out, err := s.runs.Vote(ctx, live, a.ReliefID, c.User, role, d)
	var ve *store.VoteError
	var re *store.RoleError
	switch {
	case errors.As(err, &ve):
		s.cardAfterRefusal(ctx, live, ve)
		return Reply{Text: refusalText(ve)}
	case errors.As(err, &re):
		return Reply{Text: re.Error() + "; nothing was run."}
	case err != nil:
		return s.writeRefused(ctx, run, a.ReliefID, "recording your vote", err)
	}
	switch out.Kind {
	case store.OutcomeWaiting:
		s.cardVotes(ctx, live, out.Approval, ApprovalPending)
		return Reply{Text: fmt.Sprintf("Recorded your approval of %s (%d of %d).", a.ReliefID, out.Votes, out.Required)}
	case store.OutcomeRejected:
		s.cardVotes(ctx, live, out.Approval, ApprovalRejected)
		return Reply{Text: fmt.Sprintf("Rejected %s; nothing was run.", a.ReliefID)}
	}
	s.cardVotes(ctx, live, out.Approval, ApprovalApproved)
	if _, err := s.runs.Claim(ctx, live, a.ReliefID); err != nil {
		var ce *store.ClaimError
		if errors.As(err, &ce) {
			return Reply{Text: fmt.Sprintf("%s is already running (%s); nothing more was run.", a.ReliefID, ce.Existing.Owner)}
		}
		if errors.Is(err, store.ErrVoid) {
			return Reply{Text: "What would run changed since the approval was asked; the approval is void and must be asked again."}
		}
		var re *store.RoleError
		if errors.As(err, &re) {
			// Approved by votes that lack the relief's role (an older ndrbot's,
			// or written past this check): the card says so, nothing runs.
			s.cardNotRun(ctx, live, a, re.Error())
			return Reply{Text: re.Error() + "; nothing was run."}
		}
		var ge *store.GuardError
		if errors.As(err, &ge) {
			// Another run got there first (or its cooldown holds): the card says
			// so for everyone in the thread, not only for the one who clicked.
			s.cardNotRun(ctx, live, a, ge.Error())
			return Reply{Text: ge.Error() + "; nothing was run."}
		}
		s.cardNotRun(ctx, live, a, "not run: the audit trail could not record its start")
		return s.writeRefused(ctx, run, a.ReliefID, "recording the relief's start", err)
	}
	release = false
	s.goBackground(func(ctx context.Context) { s.relieve(ctx, live, a.ReliefID) })
	return Reply{Text: fmt.Sprintf("Approved: running %s on %s.", a.ReliefID, strings.Join(a.Hosts, ", "))}
}

func (s *Service) relieve(ctx context.Context, live *lifecycle.Run, relief string) {
	defer s.runs.Release(live)
	if _, err := s.runs.Relieve(ctx, live, relief); err != nil {
		s.log.Error("relief", "run", live.ID, "relief", relief, "err", err)
	}
	threadOf(live).publishRoot(ctx)
}

func refusalText(ve *store.VoteError) string {
	a := ve.Approval
	switch ve.Refusal {
	case store.RefusedDecided:
		return fmt.Sprintf("Already %s by %s at %s; nothing more was run.", a.Status, a.DecidedBy, a.DecidedAt.UTC().Format("15:04:05 UTC"))
	case store.RefusedExpired:
		return fmt.Sprintf("This approval expired at %s; run the diagnosis again to ask anew. Nothing was run.", a.ExpiresAt.UTC().Format("15:04 UTC"))
	case store.RefusedVoid:
		return "What would run changed since the approval was asked (" + a.Reason + "); the approval is void. Nothing was run."
	case store.RefusedAlreadyVoted:
		return "You already voted on this relief; it needs another approver."
	case store.RefusedFourEyes:
		return "Four-eyes: you asked for this run, so someone else must approve its reliefs. Nothing was run."
	}
	return ve.Error()
}

func (s *Service) cardAfterRefusal(ctx context.Context, live *lifecycle.Run, ve *store.VoteError) {
	switch ve.Refusal {
	case store.RefusedExpired:
		s.cardVotes(ctx, live, ve.Approval, ApprovalExpired)
	case store.RefusedVoid:
		s.cardVotes(ctx, live, ve.Approval, ApprovalVoid)
	}
}

func (s *Service) cardVotes(ctx context.Context, live *lifecycle.Run, a store.Approval, state string) {
	threadOf(live).updateCard(ctx, a.ReliefID, func(c *ApprovalView) {
		c.State = state
		c.Votes = c.Votes[:0]
		for _, v := range a.Votes {
			c.Votes = append(c.Votes, Vote{By: v.Voter, Decision: string(v.Decision), At: v.At})
		}
	})
}

// cardNotRun shows on the relief's card, for everyone in the thread, why the
// approved relief did not run.
func (s *Service) cardNotRun(ctx context.Context, live *lifecycle.Run, a store.Approval, why string) {
	threadOf(live).updateCard(ctx, a.ReliefID, func(c *ApprovalView) {
		c.State = ApprovalFailed
		c.Result = &incident.ReliefResult{Relief: a.ReliefID, Hosts: a.Hosts, Error: why, Started: s.opts.Now()}
	})
}

// writeRefused answers a decision the store could not record (disk full, a
// read-only database, a trail sealed with a key this process lacks): nothing
// ran, and since the thread's posts go through the store as well, the thread is
// told directly through the Alarm, so the channel learns it and not only the
// clicker. The log has the whole error under the id the message names.
func (s *Service) writeRefused(ctx context.Context, run store.Run, relief, what string, err error) Reply {
	id := s.logError(what, err, "run", run.ID, "relief", relief)
	text := fmt.Sprintf("%s was not run: the bot could not write to its store while %s (%s; error %s). "+
		"Nothing changed on the servers. Fix the store, then run the diagnosis again.", relief, what, storeTrouble(err), id)
	if s.opts.Alarm != nil && run.Chat.ThreadTS != "" {
		if aerr := s.opts.Alarm.Alarm(ctx, run.Chat.Channel, run.Chat.ThreadTS, ":rotating_light: "+text); aerr != nil {
			s.log.Error("alarm to the thread", "run", run.ID, "error_id", id, "err", aerr)
		}
	}
	return Reply{Text: text}
}

// storeTrouble names, in an admin's words, why a store write failed.
func storeTrouble(err error) string {
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, store.ErrAuditKeyMissing):
		return "the audit trail is sealed with a key this bot was not given"
	case strings.Contains(msg, "disk is full"), strings.Contains(msg, "disk full"), strings.Contains(msg, "no space left"):
		return "database or disk is full"
	case strings.Contains(msg, "read-only"), strings.Contains(msg, "readonly"):
		return "the database is read-only"
	}
	return "the audit trail could not be written"
}
