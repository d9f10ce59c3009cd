package playbooks_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

var labTargets = map[string]string{"exchange": "exchange", "psrp": "exchange", "jea": "jea", "eop": "probe", "net": "probe", "graph": "graph", "exo": "exo"}

// labTargetsFor maps every playbook target onto one lab organisation.
func labTargetsFor(l *lab.Lab) lab.Targets { return l.Targets(labTargets) }

type recorder struct {
	mu     sync.Mutex
	events []incident.Event
}

func (r *recorder) Observe(_ context.Context, ev incident.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) kinds(k incident.EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if ev.Kind == k {
			n++
		}
	}
	return n
}

func builtin(t testing.TB, id string) *playbooks.Playbook {
	t.Helper()
	cat, err := playbooks.Load("", labTargets)
	require.NoError(t, err)
	pb, err := cat.Resolve(id)
	require.NoError(t, err)
	return pb
}

func rules(fs []incident.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule)
	}
	return out
}

func escalationIDs(es []incident.Escalation) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Rule)
	}
	return out
}

func reliefIDs(ps []incident.Proposal) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Relief)
	}
	return out
}

type labRun struct {
	run *playbooks.Run
	eng *playbooks.Engine
	lab *lab.Lab
	obs *recorder
}

func diagnose(t *testing.T, scenario string, params map[string]any) labRun {
	t.Helper()
	l, err := lab.New(scenario, lab.Options{})
	require.NoError(t, err)
	if params == nil {
		params = map[string]any{}
	}
	return diagnoseRun(t, l, labTargetsFor(l), builtin(t, "5.5.4"), params, 3000)
}

// diagnoseRun diagnoses one run of pb on targets, waits scaled down by scale.
func diagnoseRun(t *testing.T, l *lab.Lab, targets playbooks.Targets, pb *playbooks.Playbook, params map[string]any, scale float64) labRun {
	t.Helper()
	eng := playbooks.NewEngine(targets, playbooks.Options{WaitScale: scale})
	obs := &recorder{}
	run := playbooks.NewRun("r-"+pb.ID, pb, params, time.Now(), obs)
	require.NoError(t, eng.Diagnose(context.Background(), run))
	return labRun{run: run, eng: eng, lab: l, obs: obs}
}

// branch554 is one branch of the seed runbook's 5.5.4 tree.
type branch554 struct {
	scenario    string
	params      map[string]any
	findings    []string
	proposals   []string
	hosts       []string
	escalations []string
}

// branches554 are every branch of the seed runbook's 5.5.4 tree, as lab scenarios.
func branches554() []branch554 {
	return []branch554{
		{scenario: "healthy", findings: []string{"not-failing", "queues-healthy", "port25-open", "m365-clear"}},
		{scenario: "overloaded-queue",
			findings:  []string{"still-failing", "still-failing", "queue-overloaded", "queue-elevated", "port25-open", "m365-clear"},
			proposals: []string{"restart-transport"}, hosts: []string{"ex01.lab.contoso.com"}},
		{scenario: "throttled-sender",
			findings: []string{"still-failing", "still-failing", "queues-healthy", "port25-open", "m365-clear", "throttled-sender"},
			// Set-ThrottlingPolicy is organisation-wide: once, where the evidence came from.
			proposals: []string{"adjust-throttling"}, hosts: []string{"ex01.lab.contoso.com"}},
		{scenario: "throttled-sender", params: map[string]any{"sender": "bob@contoso.com"},
			findings:    []string{"still-failing", "still-failing", "queues-healthy", "port25-open", "m365-clear"},
			escalations: []string{"eop-side"}},
		// EX02's transport service stopped: its queues cannot be read (a failed
		// step), and starting it is the fix — on EX02 only.
		{scenario: "connector-unhealthy",
			findings:  []string{"step-failed", "still-failing", "transport-down", "listener-not-ready", "port25-open", "m365-clear"},
			proposals: []string{"restart-transport"}, hosts: []string{"ex02.lab.contoso.com"}},
		// Port 25 fails from both servers (JEA) and from the bot: the network team.
		{scenario: "network-down",
			findings:    []string{"still-failing", "still-failing", "queues-healthy", "port25-blocked", "port25-blocked", "network-down", "m365-clear"},
			escalations: []string{"network"}},
		// Microsoft's own mail-flow incident: wait for Microsoft, no support case.
		{scenario: "eop-side",
			findings:    []string{"still-failing", "still-failing", "queues-healthy", "port25-open", "m365-incident"},
			escalations: []string{"microsoft-incident"}},
		{scenario: "relief-fails",
			findings:  []string{"still-failing", "still-failing", "queue-overloaded", "queue-elevated", "port25-open", "m365-clear"},
			proposals: []string{"restart-transport"}, hosts: []string{"ex01.lab.contoso.com"}},
		// States where a restart is tempting but wrong.
		{scenario: "component-maintenance",
			findings:  []string{"not-failing", "queues-healthy", "component-inactive", "listener-not-ready", "port25-open", "m365-clear"},
			proposals: []string{"set-component-active"}, hosts: []string{"ex01.lab.contoso.com"}},
		{scenario: "shadow-redundancy-big",
			findings: []string{"not-failing", "queues-healthy", "shadow-large", "shadow-large", "port25-open", "m365-clear"}},
		{scenario: "tls-cert-expired",
			findings:    []string{"not-failing", "queues-healthy", "queue-tls", "queue-tls", "port25-open", "m365-clear"},
			escalations: []string{"tls-certificate"}},
		{scenario: "retry-transient",
			findings: []string{"not-failing", "queues-healthy", "queue-retry-external", "port25-open", "m365-clear"}},
	}
}

// Every branch of the seed runbook's 5.5.4 tree, through the lab.
func TestNDR554Branches(t *testing.T) {
	for _, tc := range branches554() {
		t.Run(fmt.Sprintf("%s%v", tc.scenario, tc.params), func(t *testing.T) {
			checkBranch554(t, tc, diagnose(t, tc.scenario, tc.params))
		})
	}
}

func checkBranch554(t *testing.T, tc branch554, r labRun) {
	t.Helper()
	assert.Equal(t, tc.findings, rules(r.run.Findings()))
	assert.Equal(t, tc.proposals, reliefIDs(r.run.Proposals()))
	assert.Equal(t, tc.escalations, escalationIDs(r.run.Escalations()))
	if tc.hosts != nil {
		assert.Equal(t, tc.hosts, r.run.Proposals()[0].Hosts)
	}
	for _, c := range r.lab.Calls() {
		assert.NotContains(t, []string{"Restart-Service", "Set-ThrottlingPolicy"}, c.Cmdlet, "a diagnosis must not change anything")
	}
}

func TestReliefVerificationAndEscalation(t *testing.T) {
	tests := []struct {
		scenario    string
		relief      string
		verified    bool
		escalations []string
	}{
		{scenario: "overloaded-queue", relief: "restart-transport", verified: true},
		{scenario: "connector-unhealthy", relief: "restart-transport", verified: true},
		{scenario: "throttled-sender", relief: "adjust-throttling", verified: true},
		{scenario: "relief-fails", relief: "restart-transport", verified: false, escalations: []string{"persists-after-relief"}},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			r := diagnose(t, tc.scenario, nil)
			res, err := r.eng.Relieve(context.Background(), r.run, tc.relief)
			require.NoError(t, err)
			require.True(t, res.OK, res.Error)
			require.NotNil(t, res.Verified)
			assert.Equal(t, tc.verified, *res.Verified)
			assert.Equal(t, tc.escalations, escalationIDs(r.run.Escalations()))
			assert.Equal(t, 1, r.obs.kinds(incident.EventReliefVerified))

			// The relief ran once per proposed host, never twice.
			changes := 0
			for _, c := range r.lab.Calls() {
				if c.Step == tc.relief {
					changes++
				}
			}
			assert.Equal(t, len(r.run.Proposals()[0].Hosts), changes)
			_, err = r.eng.Relieve(context.Background(), r.run, tc.relief)
			assert.ErrorIs(t, err, incident.ErrConflict)
		})
	}
}

func TestAdjustThrottlingGetsPolicyAsData(t *testing.T) {
	r := diagnose(t, "throttled-sender", nil)
	p, ok := r.run.Proposal("adjust-throttling")
	require.True(t, ok)
	assert.Equal(t, "LowVolumeSenders", p.Args["policy"])
	assert.Contains(t, p.Preview, `"RecipientRateLimit":100`)
	assert.Equal(t, 2, p.Approval.Approvers)
}

func TestCooldownBlocksSecondRestart(t *testing.T) {
	l, err := lab.New("relief-fails", lab.Options{})
	require.NoError(t, err)
	// Scaled like the waits, the 30-minute cooldown lasts 0.6 s: the second
	// diagnosis comes well inside it.
	eng := playbooks.NewEngine(labTargetsFor(l), playbooks.Options{WaitScale: 3000})
	pb := builtin(t, "5.5.4")
	first := playbooks.NewRun("r-1", pb, map[string]any{}, time.Now(), nil)
	require.NoError(t, eng.Diagnose(context.Background(), first))
	_, err = eng.Relieve(context.Background(), first, "restart-transport")
	require.NoError(t, err)

	second := playbooks.NewRun("r-2", pb, map[string]any{}, time.Now(), nil)
	require.NoError(t, eng.Diagnose(context.Background(), second))
	p, ok := second.Proposal("restart-transport")
	require.True(t, ok)
	assert.Contains(t, p.Blocked, "cooldown")
	_, err = eng.Relieve(context.Background(), second, "restart-transport")
	assert.ErrorIs(t, err, incident.ErrNotAllowed)
}

func TestSameResultsSameFindings(t *testing.T) {
	// One clock for every run and lab: the texts carry times, and five runs can
	// straddle a second.
	at := time.Now()
	run := func() []string {
		l, err := lab.New("overloaded-queue", lab.Options{Now: func() time.Time { return at }})
		require.NoError(t, err)
		eng := playbooks.NewEngine(labTargetsFor(l), playbooks.Options{WaitScale: 3000})
		r := playbooks.NewRun("r-test", builtin(t, "5.5.4"), map[string]any{}, at, nil)
		require.NoError(t, eng.Diagnose(context.Background(), r))
		return texts(r.Findings())
	}
	a := run()
	for range 5 {
		assert.Equal(t, a, run())
	}
}

func texts(fs []incident.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Text)
	}
	return out
}
