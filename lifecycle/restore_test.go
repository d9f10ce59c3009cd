package lifecycle_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/lifecycle"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

// The target kinds of the embedded playbooks, as the lab simulates them.
var kinds = map[string]string{"exchange": "exchange", "jea": "jea", "eop": "probe", "net": "probe", "graph": "graph", "exo": "exo"}

var requester = incident.Actor{ID: "U0REQ", Name: "req"}

// clock is the one time every process and the estate read: what they report
// depends on it (a window's start, a component state's timestamp), and two
// runs of an incident are compared whole.
var clock = func() time.Time { return time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC) }

// outcome is what a run produced, without what differs between two runs of the
// same incident anyway: ids, times and durations.
type produced struct {
	Findings    []incident.Finding
	Proposals   []incident.Proposal
	Reliefs     []incident.ReliefResult
	Escalations []incident.Escalation
}

func outcomeOf(r *lifecycle.Run) produced {
	o := produced{Findings: r.Findings(), Proposals: r.Proposals(), Reliefs: r.Reliefs(), Escalations: r.Escalations()}
	for i := range o.Proposals {
		if len(o.Proposals[i].Args) == 0 {
			o.Proposals[i].Args = nil // an empty map is stored as none
		}
	}
	for i := range o.Reliefs {
		o.Reliefs[i].Started, o.Reliefs[i].Duration = time.Time{}, 0
		// The store keeps a relief's output redacted, as the audit trail does
		// (a delta link's token): that is what any other process sees.
		o.Reliefs[i].Output = (*audit.Redactor)(nil).String(o.Reliefs[i].Output)
	}
	return o
}

// process is one ndrbot process: its own memory (a Runs of its own) over a
// shared store and a shared estate.
type process struct {
	runs *lifecycle.Runs
}

func newProcess(st store.Store, l *lab.Lab, cat *playbooks.Catalog, name string) process {
	eng := playbooks.NewEngine(l.Targets(kinds), playbooks.Options{WaitScale: 3000, History: store.ReliefHistory{Store: st}, Now: clock})
	return process{runs: lifecycle.New(lifecycle.Options{Store: st, Engine: eng, Catalog: func() *playbooks.Catalog { return cat },
		Owner: name, FourEyes: true, Now: clock})}
}

// approveAndRelieve gives a relief the votes it needs (admins other than the
// requester), claims it and runs it.
func (p process) approveAndRelieve(t *testing.T, r *lifecycle.Run, relief string) {
	t.Helper()
	ctx := context.Background()
	prop, ok := r.Proposal(relief)
	require.True(t, ok, relief)
	for i := range max(prop.Approval.Approvers, 1) {
		out, err := p.runs.Vote(ctx, r, relief, incident.Actor{ID: fmt.Sprintf("U0ADM%d", i)}, store.RoleAdmin, incident.Approve)
		require.NoError(t, err, relief)
		if out.Kind == store.OutcomeApproved {
			break
		}
	}
	_, err := p.runs.Claim(ctx, r, relief)
	require.NoError(t, err, relief)
	_, err = p.runs.Relieve(ctx, r, relief)
	require.NoError(t, err, relief)
}

// reliefs are the reliefs a run may run, in proposal order.
func reliefs(r *lifecycle.Run) []string {
	var ids []string
	for _, p := range r.Proposals() {
		if p.Blocked == "" {
			ids = append(ids, p.Relief)
		}
	}
	return ids
}

type incidentCase struct{ scenario, playbook string }

func incidentCases(t *testing.T, cat *playbooks.Catalog) []incidentCase {
	var cases []incidentCase
	for _, sc := range lab.ScenarioNames() {
		if pb := lab.ScenarioPlaybook(sc); pb != "" {
			cases = append(cases, incidentCase{sc, pb})
			continue
		}
		for _, pb := range cat.All() {
			cases = append(cases, incidentCase{sc, pb.ID})
		}
	}
	require.NotEmpty(t, cases)
	return cases
}

// Every lab incident, continued by a second process from each point the first
// left it at — before its diagnosis, after it, after each relief — ends with
// the same findings, proposals, reliefs and escalations as one process doing
// everything; and a third process loading the finished run from the store sees
// the same again. Each process has only the store in common with the others.
func TestRestoreEquivalence(t *testing.T) {
	cat, err := playbooks.Load("", kinds)
	require.NoError(t, err)
	ctx := context.Background()
	for _, c := range incidentCases(t, cat) {
		pb, err := cat.Resolve(c.playbook)
		require.NoError(t, err)
		args := map[string]string{}
		for name, spec := range pb.Params {
			if spec.Required {
				args[name] = sample(string(spec.Type))
			}
		}
		estate := func() (*lab.Lab, store.Store) {
			l, err := lab.New(c.scenario, lab.Options{Now: clock})
			require.NoError(t, err)
			// The store's own clock ticks, so what it orders by time (relief
			// executions) keeps the order things happened in.
			var mu sync.Mutex
			tick := clock()
			storeClock := func() time.Time {
				mu.Lock()
				defer mu.Unlock()
				tick = tick.Add(time.Millisecond)
				return tick
			}
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ndrbot.db"), store.Options{Now: storeClock})
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return l, st
		}
		start := func(p process) *lifecycle.Run {
			r, err := p.runs.Start(ctx, lifecycle.Start{Playbook: pb, Args: args, Requester: requester, Origin: "chat", Channel: "C0INC"})
			require.NoError(t, err)
			return r
		}

		// One process does everything.
		l, st := estate()
		one := newProcess(st, l, cat, "one")
		r := start(one)
		_, err = one.runs.Diagnose(ctx, r)
		require.NoError(t, err)
		plan := reliefs(r)
		for _, relief := range plan {
			one.approveAndRelieve(t, r, relief)
		}
		want := outcomeOf(r)
		one.runs.Release(r)

		// A first process stops after `done` steps of the plan (0: started,
		// 1: diagnosed, 1+k: k reliefs run); a second continues from the store.
		for done := 0; done <= 1+len(plan); done++ {
			name := fmt.Sprintf("%s/%s/after-%d", c.scenario, c.playbook, done)
			t.Run(name, func(t *testing.T) {
				l, st := estate()
				first := newProcess(st, l, cat, "first")
				r := start(first)
				if done >= 1 {
					_, err := first.runs.Diagnose(ctx, r)
					require.NoError(t, err)
				}
				for _, relief := range plan[:max(done-1, 0)] {
					first.approveAndRelieve(t, r, relief)
				}
				first.runs.Release(r)
				require.Zero(t, first.runs.Held(), "a run nobody holds stays in memory")

				second := newProcess(st, l, cat, "second")
				stored, err := st.GetRun(ctx, r.ID)
				require.NoError(t, err)
				var again *lifecycle.Run
				if done == 0 {
					again, err = second.runs.Resume(ctx, stored)
					require.NoError(t, err)
					_, err = second.runs.Diagnose(ctx, again)
					require.NoError(t, err)
				} else {
					again, err = second.runs.Load(ctx, stored)
					require.NoError(t, err)
				}
				for _, relief := range plan[max(done-1, 0):] {
					second.approveAndRelieve(t, again, relief)
				}
				assert.Equal(t, want, outcomeOf(again), "continued by a second process")
				second.runs.Release(again)

				third := newProcess(st, l, cat, "third")
				stored, err = st.GetRun(ctx, r.ID)
				require.NoError(t, err)
				loaded, err := third.runs.Load(ctx, stored)
				require.NoError(t, err)
				assert.Equal(t, want, outcomeOf(loaded), "read back by a third")
				third.runs.Release(loaded)
			})
		}
	}
}

// sample is a valid value of a parameter type.
func sample(typ string) string {
	switch strings.ToLower(typ) {
	case "email":
		return "alice@contoso.com"
	case "duration":
		return "15m"
	case "int":
		return "1"
	case "host", "domain":
		return "contoso.com"
	}
	return "x"
}

// A process takes over what a dead one left: a chat diagnosis is resumed when
// it serves chat, a terminal's is closed (nobody watches it), and a relief
// that was running is reported with an unknown outcome and never run again.
func TestRecoverTakesOver(t *testing.T) {
	ctx := context.Background()
	cat, err := playbooks.Load("", kinds)
	require.NoError(t, err)
	pb, err := cat.Resolve("ndr-5.5.4")
	require.NoError(t, err)
	l, err := lab.New("overloaded-queue", lab.Options{Now: clock})
	require.NoError(t, err)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ndrbot.db"), store.Options{})
	require.NoError(t, err)
	defer st.Close()

	dead := newProcess(st, l, cat, "dead")
	chat, err := dead.runs.Start(ctx, lifecycle.Start{Playbook: pb, Requester: requester, Origin: "chat", Channel: "C0INC"})
	require.NoError(t, err)
	cli, err := dead.runs.Start(ctx, lifecycle.Start{Playbook: pb, Requester: requester, Origin: "cli"})
	require.NoError(t, err)
	waiting, err := dead.runs.Start(ctx, lifecycle.Start{Playbook: pb, Requester: requester, Origin: "cli"})
	require.NoError(t, err)
	state, err := dead.runs.Diagnose(ctx, waiting)
	require.NoError(t, err)
	require.Equal(t, incident.RunAwaitingApproval, state, "… and the terminal stops at its prompt")
	relieving, err := dead.runs.Start(ctx, lifecycle.Start{Playbook: pb, Requester: requester, Origin: "chat", Channel: "C0INC"})
	require.NoError(t, err)
	_, err = dead.runs.Diagnose(ctx, relieving)
	require.NoError(t, err)
	_, err = dead.runs.Vote(ctx, relieving, "restart-transport", incident.Actor{ID: "U0ADM"}, store.RoleAdmin, incident.Approve)
	require.NoError(t, err)
	_, err = dead.runs.Claim(ctx, relieving, "restart-transport")
	require.NoError(t, err) // … and the process dies before the relief ran

	heirRuns := lifecycle.New(lifecycle.Options{Store: st, Catalog: func() *playbooks.Catalog { return cat },
		Owner: "heir", ResumeChat: true, Now: clock})
	rec, err := heirRuns.Recover(ctx)
	require.NoError(t, err)
	require.Len(t, rec.Unknown, 1)
	assert.Equal(t, "restart-transport", rec.Unknown[0].ReliefID)
	require.Len(t, rec.Resumed, 1)
	assert.Equal(t, chat.ID, rec.Resumed[0].ID)
	require.Len(t, rec.Closed, 2, "the terminal's runs: one mid-diagnosis, one awaiting an approval nobody can give")
	assert.Equal(t, cli.ID, rec.Closed[0].Run.ID)
	assert.Contains(t, rec.Closed[0].Note, "run it again")
	assert.Equal(t, waiting.ID, rec.Closed[1].Run.ID)
	assert.Contains(t, rec.Closed[1].Note, "nothing ran")
	for id, want := range map[string]incident.RunState{chat.ID: incident.RunDiagnosing, cli.ID: incident.RunInterrupted,
		waiting.ID: incident.RunInterrupted, relieving.ID: incident.RunInterrupted} {
		r, err := st.GetRun(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, want, r.State, id)
	}
	heirRuns.Release(rec.Resumed[0])
	assert.Zero(t, heirRuns.Held())

	// A terminal resumes nothing: a chat diagnosis left behind is closed (the
	// heir is alive: what it resumed stays its own).
	require.NoError(t, st.Heartbeat(ctx, "heir", time.Now().Add(time.Hour)))
	left, err := dead.runs.Start(ctx, lifecycle.Start{Playbook: pb, Requester: requester, Origin: "chat", Channel: "C0INC"})
	require.NoError(t, err)
	terminal := lifecycle.New(lifecycle.Options{Store: st, Catalog: func() *playbooks.Catalog { return cat }, Owner: "terminal", Now: clock})
	rec, err = terminal.Recover(ctx)
	require.NoError(t, err)
	assert.Empty(t, rec.Resumed)
	require.Len(t, rec.Closed, 1)
	assert.Equal(t, left.ID, rec.Closed[0].Run.ID)
}
