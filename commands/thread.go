package commands

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/lifecycle"
	"github.com/ndrbot/ndrbot/playbooks"
)

// threadObserver keeps a run's thread current: the root message's checklist as
// steps progress, the findings, one approval card per proposal, and the
// escalation summary (also to the escalation channel).
type threadObserver struct {
	svc *Service
	run *lifecycle.Run

	mu        sync.Mutex
	cards     map[string]*ApprovalView // relief → card
	timeline  []TimelineEntry
	escalated map[string]bool
}

// follow builds a run's thread observer. A run read back from the store (a click
// on another replica, after a restart) starts its timeline from what it did
// already, so a later escalation summary tells the whole story.
func (s *Service) follow(r *lifecycle.Run) playbooks.Observer {
	t := &threadObserver{svc: s, run: r}
	for _, st := range r.Steps() {
		t.timeline = append(t.timeline, TimelineEntry{At: st.Started.Add(st.Duration),
			Text: fmt.Sprintf("%s: %s in %s", st.Step, st.Status, st.Duration.Round(time.Millisecond))})
	}
	for _, x := range r.Reliefs() {
		t.timeline = append(t.timeline, TimelineEntry{At: x.Started, Text: fmt.Sprintf("%s started on %v", x.Relief, x.Hosts)})
	}
	sort.SliceStable(t.timeline, func(i, j int) bool { return t.timeline[i].At.Before(t.timeline[j].At) })
	return t
}

// threadOf is the thread observer follow built for a run.
func threadOf(r *lifecycle.Run) *threadObserver { return r.Follower.(*threadObserver) }

func (t *threadObserver) publish(ctx context.Context, m Message) {
	m.RunID = t.run.ID
	if m.Channel == "" {
		m.Channel = t.run.Channel
	}
	if err := t.svc.opts.Thread.Publish(ctx, m); err != nil {
		t.svc.log.Error("publishing to the thread", "run", m.RunID, "key", m.Key, "err", err)
	}
}

func (t *threadObserver) note(at time.Time, format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.timeline = append(t.timeline, TimelineEntry{At: at, Text: fmt.Sprintf(format, args...)})
}

func (t *threadObserver) rootView(ctx context.Context) *RunView {
	run := t.run
	v := &RunView{RunID: run.ID, Playbook: run.Playbook.ID, Title: run.Playbook.Title, Requester: t.run.Requester,
		Started: run.Started, Steps: run.Steps()}
	params := lifecycle.DisplayParams(run.Params)
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v.Params = append(v.Params, Param{Name: k, Value: params[k]})
	}
	done := map[string]bool{}
	for _, s := range v.Steps {
		done[s.Step] = true
	}
	for _, s := range run.Playbook.Steps {
		if !done[s.ID] {
			v.PlannedIDs = append(v.PlannedIDs, s.ID)
		}
	}
	if r, err := t.svc.opts.Store.GetRun(ctx, run.ID); err == nil {
		v.State = string(r.State)
	}
	return v
}

func (t *threadObserver) publishRoot(ctx context.Context) {
	t.publish(ctx, Message{Key: KeyRoot, Root: t.rootView(ctx)})
}

// Observe implements playbooks.Observer.
func (t *threadObserver) Observe(ctx context.Context, ev incident.Event) {
	switch ev.Kind {
	case incident.EventStepStarted, incident.EventStepFinished:
		if ev.Kind == incident.EventStepFinished {
			t.note(ev.Time, "%s: %s in %s", ev.Step.Step, ev.Step.Status, ev.Step.Duration.Round(time.Millisecond))
		}
		// The adapter coalesces edits of one message (at most one a second).
		t.publishRoot(ctx)
	case incident.EventReliefStarted:
		t.note(ev.Time, "%s started on %v", ev.Relief.Relief, ev.Relief.Hosts)
		t.updateCard(ctx, ev.Relief.Relief, func(c *ApprovalView) { c.State = ApprovalRunning })
	case incident.EventReliefFinished:
		r := *ev.Relief
		state := ApprovalSucceeded
		if !r.OK {
			state = ApprovalFailed
		}
		t.note(ev.Time, "%s %s", r.Relief, state)
		t.updateCard(ctx, r.Relief, func(c *ApprovalView) { c.State, c.Result = state, &r })
	case incident.EventReliefVerified:
		r := *ev.Relief
		t.note(ev.Time, "%s verified: %v", r.Relief, *r.Verified)
		t.updateCard(ctx, r.Relief, func(c *ApprovalView) { c.Result = &r })
		t.publish(ctx, Message{Key: KeyFindings, Findings: &FindingsView{RunID: t.run.ID, Findings: t.run.Findings()}})
	case incident.EventEscalation:
		t.note(ev.Time, "escalated: %s", ev.Escalation.Reason)
		t.mu.Lock()
		summarised := t.cards != nil
		t.mu.Unlock()
		if summarised {
			t.publishEscalation(ctx, *ev.Escalation)
		}
	}
}

// publishAfterDiagnosis posts the findings, the approval cards and the
// escalations the diagnosis raised.
func (t *threadObserver) publishAfterDiagnosis(ctx context.Context) {
	run := t.run
	t.publish(ctx, Message{Key: KeyFindings, Findings: &FindingsView{RunID: run.ID, Findings: run.Findings()}})
	t.mu.Lock()
	t.cards = map[string]*ApprovalView{}
	t.mu.Unlock()
	for _, p := range run.Proposals() {
		card := &ApprovalView{RunID: run.ID, Proposal: p, Requester: t.run.Requester, State: ApprovalPending}
		if a, ok := t.run.Approval(p.Relief); ok {
			card.ApprovalID, card.ExpiresAt = a.ID, a.ExpiresAt
		} else {
			card.State = ApprovalVoid // blocked: no approval can be given
		}
		t.mu.Lock()
		t.cards[p.Relief] = card
		t.mu.Unlock()
		t.publish(ctx, Message{Key: ApprovalKey(p.Relief), Approval: card})
	}
	for _, e := range run.Escalations() {
		t.publishEscalation(ctx, e)
	}
}

// updateCard changes one approval card and edits it in place.
func (t *threadObserver) updateCard(ctx context.Context, relief string, change func(*ApprovalView)) {
	t.mu.Lock()
	if t.cards == nil {
		t.cards = map[string]*ApprovalView{}
	}
	card, ok := t.cards[relief]
	if !ok {
		p, _ := t.run.Proposal(relief)
		card = &ApprovalView{RunID: t.run.ID, Proposal: p, Requester: t.run.Requester}
		if a, ok := t.run.Approval(relief); ok {
			card.ApprovalID, card.ExpiresAt = a.ID, a.ExpiresAt
		}
		t.cards[relief] = card
	}
	change(card)
	cp := *card
	t.mu.Unlock()
	t.publish(ctx, Message{Key: ApprovalKey(relief), Approval: &cp})
}

// publishEscalation posts the summary to the thread and, with a link to the
// thread, to the escalation channel.
func (t *threadObserver) publishEscalation(ctx context.Context, e incident.Escalation) {
	t.mu.Lock()
	if t.escalated == nil {
		t.escalated = map[string]bool{}
	}
	if t.escalated[e.Rule] {
		t.mu.Unlock()
		return
	}
	t.escalated[e.Rule] = true
	timeline := append([]TimelineEntry(nil), t.timeline...)
	t.mu.Unlock()

	run := t.run
	v := &EscalationView{RunID: run.ID, Playbook: run.Playbook.ID, Title: run.Playbook.Title,
		Symptom: run.Playbook.Title + " — " + run.Playbook.Summary, Requester: t.run.Requester,
		Escalation: e, Findings: run.Findings(), Timeline: timeline}
	for _, r := range run.Reliefs() {
		a := ActionView{Relief: r.Relief, Hosts: r.Hosts, Result: r}
		if ap, ok := t.run.Approval(r.Relief); ok {
			if fresh, err := t.svc.opts.Store.GetApproval(ctx, ap.ID); err == nil {
				a.ApprovedBy = fresh.Approvers()
			}
		}
		v.Actions = append(v.Actions, a)
	}
	key := KeyEscalation + ":" + e.Rule
	t.publish(ctx, Message{Key: key, Escalation: v})
	if ch := t.svc.opts.EscalationChannel; ch != "" {
		cp := *v
		t.publish(ctx, Message{Key: key + ":channel", Channel: ch, TopLevel: true, Escalation: &cp})
	}
}

var _ playbooks.Observer = (*threadObserver)(nil)
