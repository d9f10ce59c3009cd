package commands_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

var kinds = map[string]string{"exchange": "exchange", "jea": "jea", "eop": "probe", "net": "probe", "graph": "graph", "exo": "exo"}

// thread records what the service published, by key, keeping every version.
type thread struct {
	mu   sync.Mutex
	msgs map[string][]commands.Message
}

func (t *thread) Publish(_ context.Context, m commands.Message) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.msgs == nil {
		t.msgs = map[string][]commands.Message{}
	}
	k := m.Channel + "/" + m.Key
	t.msgs[k] = append(t.msgs[k], m)
	return nil
}

func (t *thread) last(key string) (commands.Message, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ms := t.msgs[key]
	if len(ms) == 0 {
		return commands.Message{}, false
	}
	return ms[len(ms)-1], true
}

type fixture struct {
	svc    *commands.Service
	st     store.Store
	lab    *lab.Lab
	thread *thread
	now    time.Time
}

const (
	requester = "U0REQ"
	approver  = "U0APP"
	approver2 = "U0APP2"
	stranger  = "U0NOPE"
	admin     = "U0ADM"
	channel   = "C0INC"
)

func newFixture(t *testing.T, scenario string, now func() time.Time) *fixture {
	t.Helper()
	return newFixtureWith(t, scenario, now, nil)
}

// newFixtureWith lets a test adjust the service's options (its groups, its
// access lists) before the service is built.
func newFixtureWith(t *testing.T, scenario string, now func() time.Time, adjust func(*commands.Options)) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ndrbot.db"), store.Options{Now: now})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	l, err := lab.New(scenario, lab.Options{})
	require.NoError(t, err)
	cat, err := playbooks.Load("", kinds)
	require.NoError(t, err)
	th := &thread{}
	opts := commands.Options{
		Catalog: func() *playbooks.Catalog { return cat },
		Engine:  playbooks.NewEngine(l.Targets(kinds), playbooks.Options{WaitScale: 3000, History: store.ReliefHistory{Store: st}}),
		Store:   st, Thread: th, Owner: "test-replica",
		Access: commands.Access{Responders: []string{requester}, Approvers: []string{approver, approver2, requester},
			Admins: []string{admin}, Channels: []string{"inc-*"}, FourEyes: true},
		EscalationChannel: "C0ESC", Now: now,
	}
	if adjust != nil {
		adjust(&opts)
	}
	svc := commands.New(opts)
	t.Cleanup(svc.Close)
	return &fixture{svc: svc, st: st, lab: l, thread: th}
}

func (f *fixture) diagnose(t *testing.T, text string) string {
	t.Helper()
	r := f.svc.Command(context.Background(), commands.Request{Text: text, User: incident.Actor{ID: requester, Name: "req"}, ChannelID: channel, ChannelName: "inc-mail"})
	require.Contains(t, r.Text, "Started", r.Text)
	f.svc.Wait()
	runs, err := f.st.ListRuns(context.Background(), store.RunFilter{Limit: 1})
	require.NoError(t, err)
	return runs[0].ID
}

func (f *fixture) card(t *testing.T, relief string) commands.ApprovalView {
	t.Helper()
	m, ok := f.thread.last(channel + "/" + commands.ApprovalKey(relief))
	require.True(t, ok, "no approval card for %s", relief)
	return *m.Approval
}

func (f *fixture) click(action, value, user, ch string) commands.Reply {
	return f.svc.Click(context.Background(), commands.Click{Action: action, Value: value, User: incident.Actor{ID: user}, ChannelID: ch})
}

func (f *fixture) reliefCalls(relief string) int {
	n := 0
	for _, c := range f.lab.Calls() {
		if c.Step == relief {
			n++
		}
	}
	return n
}

// A relief whose policy asks for an admin (setting HubTransport Active over a
// requester another team set) refuses an approver's click and runs for an admin's.
func TestAdminReliefRefusesAnApprover(t *testing.T) {
	f := newFixture(t, "component-maintenance", time.Now)
	f.diagnose(t, "diagnose 5.5.4")
	card := f.card(t, "set-component-active")
	require.Equal(t, "admin", card.Proposal.Approval.Role)

	assert.Contains(t, f.click("approve", card.ApprovalID, approver, channel).Text,
		"set-component-active needs the admin role (access.admins)")
	assert.Zero(t, f.reliefCalls("set-component-active"))
	assert.Equal(t, commands.ApprovalPending, f.card(t, "set-component-active").State)

	assert.Contains(t, f.click("approve", card.ApprovalID, admin, channel).Text, "Approved: running set-component-active")
	f.svc.Wait()
	assert.Equal(t, 1, f.reliefCalls("set-component-active"))

	// The store holds the role with the approval, and the role the click
	// verified with the vote: it checks both again at the claim.
	a, err := f.st.GetApproval(context.Background(), card.ApprovalID)
	require.NoError(t, err)
	assert.Equal(t, store.RoleAdmin, a.Role)
	require.Len(t, a.Votes, 1)
	assert.Equal(t, store.RoleAdmin, a.Votes[0].Role)
}

// A vote records the role its voter holds: an admin approving an approver's
// relief votes as admin, an approver as approver.
func TestVotesRecordTheClickersRole(t *testing.T) {
	f := newFixture(t, "overloaded-queue", time.Now)
	f.diagnose(t, "diagnose 5.5.4")
	card := f.card(t, "restart-transport")
	assert.Contains(t, f.click("approve", card.ApprovalID, admin, channel).Text, "Approved: running restart-transport")
	f.svc.Wait()
	a, err := f.st.GetApproval(context.Background(), card.ApprovalID)
	require.NoError(t, err)
	assert.Equal(t, store.RoleApprover, a.Role)
	require.Len(t, a.Votes, 1)
	assert.Equal(t, store.RoleAdmin, a.Votes[0].Role)

	g := newFixture(t, "overloaded-queue", time.Now)
	g.diagnose(t, "diagnose 5.5.4")
	card = g.card(t, "restart-transport")
	assert.Contains(t, g.click("approve", card.ApprovalID, approver, channel).Text, "Approved: running restart-transport")
	g.svc.Wait()
	a, err = g.st.GetApproval(context.Background(), card.ApprovalID)
	require.NoError(t, err)
	require.Len(t, a.Votes, 1)
	assert.Equal(t, store.RoleApprover, a.Votes[0].Role)
}

func TestIncidentThroughTheService(t *testing.T) {
	f := newFixture(t, "relief-fails", time.Now)
	f.diagnose(t, "diagnose 5.5.4")

	root, ok := f.thread.last(channel + "/" + commands.KeyRoot)
	require.True(t, ok)
	cat, err := playbooks.Load("", kinds)
	require.NoError(t, err)
	pb, err := cat.Resolve("5.5.4")
	require.NoError(t, err)
	assert.Len(t, root.Root.Steps, len(pb.Steps), "one checklist line per step of the playbook")
	findings, ok := f.thread.last(channel + "/" + commands.KeyFindings)
	require.True(t, ok)
	assert.NotEmpty(t, findings.Findings.Findings)
	card := f.card(t, "restart-transport")
	assert.Equal(t, commands.ApprovalPending, card.State)
	assert.Equal(t, []string{"ex01.lab.contoso.com"}, card.Proposal.Hosts)

	// Refusals run nothing.
	assert.Contains(t, f.click("approve", card.ApprovalID, requester, channel).Text, "Four-eyes")
	assert.Contains(t, f.click("approve", card.ApprovalID, stranger, channel).Text, "Only approvers")
	assert.Contains(t, f.click("approve", "a-forged", approver, channel).Text, "does not match any approval")
	assert.Contains(t, f.click("approve", card.ApprovalID, approver, "C0OTHER").Text, "another channel")
	assert.Zero(t, f.reliefCalls("restart-transport"))

	// The approver's click runs the relief once; a double click runs nothing more.
	assert.Contains(t, f.click("approve", card.ApprovalID, approver, channel).Text, "Approved: running restart-transport")
	assert.Contains(t, f.click("approve", card.ApprovalID, approver2, channel).Text, "Already approved by U0APP")
	f.svc.Wait()
	assert.Equal(t, 1, f.reliefCalls("restart-transport"))

	card = f.card(t, "restart-transport")
	require.NotNil(t, card.Result)
	require.NotNil(t, card.Result.Verified)
	assert.False(t, *card.Result.Verified)
	assert.Equal(t, "U0APP", card.Votes[0].By.ID)

	// The relief did not help: the escalation summary goes to the thread and the
	// escalation channel, naming who approved what.
	esc, ok := f.thread.last(channel + "/" + commands.KeyEscalation + ":persists-after-relief")
	require.True(t, ok)
	assert.Equal(t, "U0APP", esc.Escalation.Actions[0].ApprovedBy[0].ID)
	copyMsg, ok := f.thread.last("C0ESC/" + commands.KeyEscalation + ":persists-after-relief:channel")
	require.True(t, ok)
	assert.True(t, copyMsg.TopLevel)

	// Every refusal is in the audit trail.
	refused := 0
	for ev, err := range f.st.Events(context.Background(), audit.Filter{}) {
		require.NoError(t, err)
		if ev.Kind == "refused" || ev.Kind == audit.KindVoteRefused {
			refused++
		}
	}
	assert.GreaterOrEqual(t, refused, 4)
}

// A click handled by a process that did not run the diagnosis (a restart or
// another replica) restores the run from the store and still runs the relief once.
func TestClickOnAnotherReplica(t *testing.T) {
	f := newFixture(t, "overloaded-queue", time.Now)
	f.diagnose(t, "diagnose 5.5.4")
	card := f.card(t, "restart-transport")

	cat, err := playbooks.Load("", kinds)
	require.NoError(t, err)
	th := &thread{}
	other := commands.New(commands.Options{
		Catalog: func() *playbooks.Catalog { return cat },
		Engine:  playbooks.NewEngine(f.lab.Targets(kinds), playbooks.Options{WaitScale: 3000, History: store.ReliefHistory{Store: f.st}}),
		Store:   f.st, Thread: th, Owner: "replica-2",
		Access: commands.Access{Responders: []string{requester}, Approvers: []string{approver}, FourEyes: true},
	})
	defer other.Close()
	r := other.Click(context.Background(), commands.Click{Action: "approve", Value: card.ApprovalID, User: incident.Actor{ID: approver}, ChannelID: channel})
	assert.Contains(t, r.Text, "Approved: running restart-transport")
	other.Wait()
	assert.Equal(t, 1, f.reliefCalls("restart-transport"))
	m, ok := th.last(channel + "/" + commands.ApprovalKey("restart-transport"))
	require.True(t, ok)
	require.NotNil(t, m.Approval.Result)
	assert.True(t, *m.Approval.Result.Verified)
}

func TestExpiredApprovalRunsNothing(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFixture(t, "overloaded-queue", clock)
	f.diagnose(t, "diagnose 5.5.4")
	card := f.card(t, "restart-transport")
	mu.Lock()
	now = now.Add(31 * time.Minute)
	mu.Unlock()
	assert.Contains(t, f.click("approve", card.ApprovalID, approver, channel).Text, "expired")
	f.svc.Wait()
	assert.Zero(t, f.reliefCalls("restart-transport"))
	assert.Equal(t, commands.ApprovalExpired, f.card(t, "restart-transport").State)
}

func TestCommandRefusals(t *testing.T) {
	f := newFixture(t, "healthy", time.Now)
	tests := []struct {
		name, text, user, channelName, want string
	}{
		{"not a responder", "diagnose 5.5.4", stranger, "inc-mail", "needs the responder role"},
		{"channel not allowed", "diagnose 5.5.4", requester, "random", "does not take commands in this channel"},
		{"unknown code", "diagnose 5.9.9", requester, "inc-mail", `no playbook for "5.9.9"`},
		{"injection", `diagnose 5.5.4 sender="x'; Remove-Mailbox ceo"`, requester, "inc-mail", "is not an email address"},
		{"unterminated quote", `diagnose 5.5.4 sender="alice`, requester, "inc-mail", "Usage"},
		{"unknown verb", "reboot everything", requester, "inc-mail", `Unknown command "reboot"`},
		{"help", "help", stranger, "inc-mail", "/ndr diagnose CODE|PLAYBOOK"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.svc.Command(context.Background(), commands.Request{Text: tc.text, User: incident.Actor{ID: tc.user}, ChannelID: "C1", ChannelName: tc.channelName})
			assert.Contains(t, r.Text, tc.want)
		})
	}
	f.svc.Wait()
	runs, err := f.st.ListRuns(context.Background(), store.RunFilter{})
	require.NoError(t, err)
	assert.Empty(t, runs, "a refused command starts nothing")
	assert.Empty(t, f.lab.Calls())
}

func TestStatusAuditAndPlaybooks(t *testing.T) {
	f := newFixture(t, "healthy", time.Now)
	id := f.diagnose(t, "diagnose 5.5.4")
	ask := func(text, user string) string {
		return f.svc.Command(context.Background(), commands.Request{Text: text, User: incident.Actor{ID: user}, ChannelID: channel, ChannelName: "inc-mail"}).Text
	}
	assert.Contains(t, ask("status", stranger), id)
	assert.Contains(t, ask("status "+id, stranger), "ndr-5.5.4: finished")
	assert.Contains(t, ask("status r-nope", stranger), `No run "r-nope"`)
	assert.Contains(t, ask("audit "+id, requester), "command")
	assert.Contains(t, ask("audit "+id, stranger), "needs the responder role")
	assert.Contains(t, ask("playbooks", stranger), "ndr-5.5.4 — NDR 5.5.4 Service Unavailable")
	assert.Contains(t, ask("playbooks", stranger), "smtp-421")
}

// onlyHosts narrows a target's hosts: the target list was edited after the approval
// was asked.
type onlyHosts struct {
	lab.Targets
	target string
	hosts  []string
}

func (o onlyHosts) Executor(name string) (executors.Executor, error) {
	e, err := o.Targets.Executor(name)
	if err != nil || name != o.target {
		return e, err
	}
	return narrowed{Executor: e, hosts: o.hosts}, nil
}

type narrowed struct {
	executors.Executor
	hosts []string
}

func (n narrowed) Hosts() []string { return n.hosts }

// An approval is bound to what will run: when the target list changes before the
// click (or the playbook is reloaded), the approval is void and nothing runs.
func TestApprovalVoidWhenTargetsChange(t *testing.T) {
	f := newFixture(t, "overloaded-queue", time.Now)
	f.diagnose(t, "diagnose 5.5.4")
	card := f.card(t, "restart-transport")

	cat, err := playbooks.Load("", kinds)
	require.NoError(t, err)
	edited := onlyHosts{Targets: f.lab.Targets(kinds), target: "jea", hosts: []string{"ex02.lab.contoso.com"}} // the restart runs on the JEA target
	other := commands.New(commands.Options{
		Catalog: func() *playbooks.Catalog { return cat },
		Engine:  playbooks.NewEngine(edited, playbooks.Options{WaitScale: 3000, History: store.ReliefHistory{Store: f.st}}),
		Store:   f.st, Thread: &thread{}, Owner: "replica-2",
		Access: commands.Access{Responders: []string{requester}, Approvers: []string{approver}, FourEyes: true},
	})
	defer other.Close()
	r := other.Click(context.Background(), commands.Click{Action: "approve", Value: card.ApprovalID, User: incident.Actor{ID: approver}, ChannelID: channel})
	assert.Contains(t, r.Text, "approval is void")
	other.Wait()
	assert.Zero(t, f.reliefCalls("restart-transport"))
	a, err := f.st.GetApproval(context.Background(), card.ApprovalID)
	require.NoError(t, err)
	assert.Equal(t, incident.ApprovalVoid, a.Status)
}

// A run leaves the service's memory when its work is done: after the diagnosis,
// after a refused click, after the relief; the next click reads it back from
// the store, and the escalation summary after a relief on a run read back still
// tells the diagnosis's timeline.
func TestFinishedRunsLeaveMemory(t *testing.T) {
	f := newFixture(t, "relief-fails", time.Now)
	f.diagnose(t, "diagnose 5.5.4")
	assert.Zero(t, f.svc.Held(), "a diagnosed run waits for its approval in the store")
	card := f.card(t, "restart-transport")
	assert.Contains(t, f.click("approve", card.ApprovalID, stranger, channel).Text, "Only approvers")
	assert.Zero(t, f.svc.Held())
	assert.Contains(t, f.click("approve", card.ApprovalID, approver, channel).Text, "Approved: running restart-transport")
	f.svc.Wait()
	assert.Zero(t, f.svc.Held(), "a relieved run")
	assert.Equal(t, 1, f.reliefCalls("restart-transport"))
	esc, ok := f.thread.last(channel + "/" + commands.KeyEscalation + ":persists-after-relief")
	require.True(t, ok, "escalation summary")
	require.NotEmpty(t, esc.Escalation.Timeline)
	assert.Regexp(t, `^[a-z0-9-]+: [a-z]+ in `, esc.Escalation.Timeline[0].Text, "the timeline starts with the diagnosis's steps")
}
