package playbooks_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/executors/psrp"
	"github.com/ndrbot/ndrbot/executors/psrp/psrpfake"
	"github.com/ndrbot/ndrbot/playbooks"
)

// overPSRP is a lab organisation behind the real psrp executor, the way the bot
// reaches a real estate: Exchange's /PowerShell (kind exchange) and the JEA
// endpoint (kind jea) are PSRP fakes over TLS that hand each command — name and
// typed parameters — to the lab; probes and Graph are the lab's own.
type overPSRP struct {
	lab           *lab.Lab
	exchange, jea *psrp.Executor
	fakes         map[string]*psrpfake.Server
}

func (o overPSRP) Executor(name string) (executors.Executor, error) {
	switch name {
	case "exchange":
		return o.exchange, nil
	case "jea":
		return o.jea, nil
	}
	return labTargetsFor(o.lab).Executor(name)
}

func newOverPSRP(t *testing.T, l *lab.Lab) overPSRP {
	t.Helper()
	o := overPSRP{lab: l, fakes: map[string]*psrpfake.Server{}}
	build := func(kind string, endpoints ...string) *psrp.Executor {
		fake := psrpfake.New(psrpfake.Lab(l.Target(kind, kind, nil)))
		o.fakes[kind] = fake
		e, err := psrp.New(kind, config.Target{Kind: kind, Endpoints: endpoints, Auth: "basic", ConfigurationName: map[string]string{"jea": "ndrbot"}[kind],
			Username: psrpfake.User, Password: psrpfake.Password, InsecureSkipVerify: true,
			OperationTimeout: 5 * time.Second, MaxConcurrency: 2}, psrp.WithDialer(fake.DialContext))
		require.NoError(t, err)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			assert.NoError(t, e.Close(ctx))
			assert.Zero(t, fake.OpenPools(), "%s: every runspace pool is closed", kind)
			fake.Close()
		})
		return e
	}
	o.exchange = build("exchange", "https://"+ex01+"/PowerShell", "https://"+ex02+"/PowerShell")
	o.jea = build("jea", "https://"+ex01+":5986/wsman", "https://"+ex02+":5986/wsman")
	return o
}

// Every branch of the 5.5.4 tree again, with every Exchange step a cmdlet sent
// over PSRP: the same findings, proposals and escalations as through the lab.
func TestNDR554BranchesOverPSRP(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, tc := range branches554() {
		t.Run(fmt.Sprintf("%s%v", tc.scenario, tc.params), func(t *testing.T) {
			l, err := lab.New(tc.scenario, lab.Options{})
			require.NoError(t, err)
			o := newOverPSRP(t, l)
			params := tc.params
			if params == nil {
				params = map[string]any{}
			}
			checkBranch554(t, tc, diagnoseRun(t, l, o, builtin(t, "5.5.4"), params, 3000))
			for kind, fake := range o.fakes {
				for _, h := range []string{ex01, ex02} {
					st := fake.Stats(h)
					assert.LessOrEqual(t, st.PipelinesMax, 2, "%s %s: at most max_concurrency pipelines", kind, h)
					assert.LessOrEqual(t, st.PoolsOpened, 1, "%s %s: one runspace pool, reused by every step", kind, h)
				}
			}
		})
	}
}

// The reliefs over PSRP: the restart goes to the JEA endpoint of the one server
// with the evidence, once; verification re-reads Exchange; an escalation follows
// when the failures persist.
func TestNDR554ReliefsOverPSRP(t *testing.T) {
	tests := []struct {
		scenario    string
		relief      string
		verified    bool
		escalations []string
		on          string // the fake the change goes to
		cmdlet      string
	}{
		{scenario: "overloaded-queue", relief: "restart-transport", verified: true, on: "jea", cmdlet: "Restart-Service"},
		{scenario: "relief-fails", relief: "restart-transport", verified: false, escalations: []string{"persists-after-relief"}, on: "jea", cmdlet: "Restart-Service"},
		{scenario: "throttled-sender", relief: "adjust-throttling", verified: true, on: "exchange", cmdlet: "Set-ThrottlingPolicy"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			l, err := lab.New(tc.scenario, lab.Options{})
			require.NoError(t, err)
			o := newOverPSRP(t, l)
			r := diagnoseRun(t, l, o, builtin(t, "5.5.4"), map[string]any{}, 3000)
			res, err := r.eng.Relieve(context.Background(), r.run, tc.relief)
			require.NoError(t, err)
			require.True(t, res.OK, res.Error)
			require.NotNil(t, res.Verified)
			assert.Equal(t, tc.verified, *res.Verified)
			assert.Equal(t, tc.escalations, escalationIDs(r.run.Escalations()))
			changes := 0
			for _, c := range l.Calls() {
				if c.Cmdlet == tc.cmdlet {
					changes++
					assert.Equal(t, tc.on, c.Target)
					assert.Equal(t, ex01, c.Host)
				}
			}
			assert.Equal(t, 1, changes, "%s ran once, on the server with the evidence", tc.cmdlet)
		})
	}
}

// A sender with a quote reaches Get-Mailbox as one typed string parameter,
// byte for byte — never as script text. (Stranger text never gets this far: the
// sender parameter is an email address, checked before anything runs.)
func TestNDR554SenderArrivesAsOneParameter(t *testing.T) {
	const sender = "o'brien@contoso.com"
	l, err := lab.New("throttled-sender", lab.Options{})
	require.NoError(t, err)
	o := newOverPSRP(t, l)
	pb := builtin(t, "5.5.4")
	params, err := pb.Params.Resolve(map[string]string{"sender": sender})
	require.NoError(t, err)
	diagnoseRun(t, l, o, pb, params, 3000)

	var mailbox []lab.Call
	for _, c := range l.Calls() {
		if c.Cmdlet == "Get-Mailbox" {
			mailbox = append(mailbox, c)
		}
	}
	// Unknown to the lab, so each server is asked in turn (run_on: one).
	require.NotEmpty(t, mailbox, "the throttling branch reads the sender's mailbox")
	for _, c := range mailbox {
		assert.Equal(t, []executors.Arg{{Name: "Identity", Value: sender}}, c.Args)
	}
}

// Pool hygiene under load: 50 diagnoses at once against two servers share one
// runspace pool per endpoint, never run more than max_concurrency pipelines on
// one, and leave no pool and no goroutine behind once the executors close.
func TestFiftyDiagnosesShareOnePoolPerEndpoint(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) }) // runs last, after the executors close
	l, err := lab.New("overloaded-queue", lab.Options{})
	require.NoError(t, err)
	o := newOverPSRP(t, l)
	pb := builtin(t, "5.5.4")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			eng := playbooks.NewEngine(o, playbooks.Options{WaitScale: 3000})
			run := playbooks.NewRun(fmt.Sprintf("r-%d", i), pb, map[string]any{}, time.Now(), nil)
			assert.NoError(t, eng.Diagnose(context.Background(), run))
			assert.Contains(t, rules(run.Findings()), "queue-overloaded", "run %d", i)
		})
	}
	wg.Wait()
	for kind, fake := range o.fakes {
		for _, h := range []string{ex01, ex02} {
			st := fake.Stats(h)
			assert.Equal(t, 1, st.PoolsOpened, "%s %s: one runspace pool for all 50 diagnoses", kind, h)
			assert.LessOrEqual(t, st.PipelinesMax, 2, "%s %s: at most max_concurrency pipelines at once", kind, h)
			assert.GreaterOrEqual(t, st.Pipelines, 50, "%s %s: every diagnosis ran its steps there", kind, h)
		}
	}
}
