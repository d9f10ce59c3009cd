package playbooks_test

// Tests at the edges of the engine's safety promises: a step's deadline, a rolling
// relief's stop at the first failing host, the order `needs` imposes, and the seed
// runbook's queue thresholds at their exact boundaries. Each was written against a
// planted bug (issue 16) and fails on it.

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

// funcExec is a function-type executor on fixed hosts.
type funcExec struct {
	hosts []string
	run   func(ctx context.Context, host string, a executors.Action) (executors.Output, error)
}

func (f funcExec) Kind() string    { return "func" }
func (f funcExec) Hosts() []string { return f.hosts }
func (f funcExec) Run(ctx context.Context, host string, a executors.Action) (executors.Output, error) {
	return f.run(ctx, host, a)
}

func parse(t *testing.T, src string) *playbooks.Playbook {
	t.Helper()
	pb, err := playbooks.Parse(t.Name()+".yaml", []byte(src), map[string]string{"exchange": "exchange"})
	require.NoError(t, err)
	return pb
}

const timeoutPlaybook = `
id: timeout-demo
title: Step deadline
steps:
  slow:
    target: exchange
    cmdlet: Get-Queue
    timeout: 1s
rules:
  - id: slow-ok
    when: ok("slow")
    severity: info
    finding: "the step succeeded"
  - id: slow-status-ok
    when: status.slow == "ok"
    severity: info
    finding: "the step's status is ok"
  - id: slow-row
    each: steps.slow
    when: "true"
    severity: critical
    finding: "row {{ it.Identity }}"
`

// A step's deadline holds whatever its executor does: an answer that arrives after
// the deadline is a timeout even without an error, and a timeout is never a
// success — not to ok(), not to status, and its late rows are not evidence.
func TestStepTimeoutIsNotSuccess(t *testing.T) {
	late := executors.Output{Stdout: []byte(`[{"Identity":"EX01\\7","MessageCount":5000}]`)}
	tests := []struct {
		name   string
		run    func(ctx context.Context, a executors.Action) (executors.Output, error)
		status incident.StepStatus
		rules  []string
	}{
		{name: "answers in time", status: incident.StepOK, rules: []string{"slow-ok", "slow-status-ok", "slow-row"},
			run: func(context.Context, executors.Action) (executors.Output, error) { return late, nil }},
		{name: "ignores its deadline and answers late with no error", status: incident.StepTimeout, rules: []string{"step-failed"},
			run: func(_ context.Context, a executors.Action) (executors.Output, error) {
				time.Sleep(2 * a.Timeout) // the bubble's clock: no real wait
				return late, nil
			}},
		{name: "honours its deadline", status: incident.StepTimeout, rules: []string{"step-failed"},
			run: func(ctx context.Context, _ executors.Action) (executors.Output, error) {
				<-ctx.Done()
				return late, ctx.Err()
			}},
		{name: "reports a timeout of its own", status: incident.StepTimeout, rules: []string{"step-failed"},
			run: func(context.Context, executors.Action) (executors.Output, error) {
				return late, fmt.Errorf("ex01: WS-Man operation: %w", executors.ErrTimeout)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				exec := funcExec{hosts: []string{"ex01.contoso.com"}, run: func(ctx context.Context, _ string, a executors.Action) (executors.Output, error) {
					return tc.run(ctx, a)
				}}
				run := playbooks.NewRun("r-timeout", parse(t, timeoutPlaybook), map[string]any{}, time.Now(), nil)
				require.NoError(t, playbooks.NewEngine(oneTarget{exec}, playbooks.Options{}).Diagnose(context.Background(), run))

				steps := run.Steps()
				require.Len(t, steps, 1)
				assert.Equal(t, tc.status, steps[0].Status)
				if tc.status != incident.StepOK {
					assert.Empty(t, steps[0].Rows, "a timed-out step's late rows are not evidence")
					assert.NotEmpty(t, steps[0].Error)
					assert.LessOrEqual(t, steps[0].Duration, 2*time.Second)
				}
				assert.ElementsMatch(t, tc.rules, rules(run.Findings()))
			})
		})
	}
}

const rollingPlaybook = `
id: rolling-demo
title: Rolling relief
steps:
  queues:
    target: exchange
    cmdlet: Get-Queue
rules:
  - id: always
    when: ok("queues")
    severity: warning
    finding: "transport needs a restart"
    propose: restart
reliefs:
  restart:
    target: exchange
    cmdlet: Restart-Service
    args: {Name: MSExchangeTransport}
    guard:
      cmdlet: Get-Service
      args: {Name: MSExchangeTransport}
      when: it.Status == "Running"
      refuse: "MSExchangeTransport is {{ it.Status }}"
    readback: {cmdlet: Get-Service, args: {Name: MSExchangeTransport}}
    risk: Mail flow pauses on the server.
    approval: {role: approver, expires: 30m}
    timeout: 1m
`

// A rolling relief runs on its hosts one at a time and stops at the first host
// where it fails or is refused: the later hosts are not touched at all.
func TestReliefStopsAtFirstFailingHost(t *testing.T) {
	hosts := []string{"ex01.contoso.com", "ex02.contoso.com", "ex03.contoso.com"}
	tests := []struct {
		name    string
		fail    string // host whose Restart-Service fails
		late    string // host whose Restart-Service answers after its deadline, without error
		stopped string // host whose transport service is stopped: its guard refuses
		unread  string // host whose guard cannot be read
		calls   []string
		err     string
	}{
		{name: "all hosts succeed", calls: []string{
			"ex01 guard", "ex01 restart", "ex01 readback", "ex02 guard", "ex02 restart", "ex02 readback", "ex03 guard", "ex03 restart", "ex03 readback"}},
		{name: "fails on the first host", fail: "ex01.contoso.com", calls: []string{"ex01 guard", "ex01 restart"}, err: "ex01.contoso.com"},
		{name: "fails on the second host", fail: "ex02.contoso.com",
			calls: []string{"ex01 guard", "ex01 restart", "ex01 readback", "ex02 guard", "ex02 restart"}, err: "ex02.contoso.com"},
		{name: "answers late on the first host", late: "ex01.contoso.com", calls: []string{"ex01 guard", "ex01 restart"}, err: "timed out"},
		{name: "guard refuses on the second host", stopped: "ex02.contoso.com",
			calls: []string{"ex01 guard", "ex01 restart", "ex01 readback", "ex02 guard"}, err: "MSExchangeTransport is Stopped"},
		{name: "guard cannot be read on the first host", unread: "ex01.contoso.com",
			calls: []string{"ex01 guard"}, err: "its guard could not be read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var calls []string
				exec := funcExec{hosts: hosts, run: func(_ context.Context, host string, a executors.Action) (executors.Output, error) {
					out := executors.Output{Host: host, Stdout: []byte(`[]`)}
					if !strings.HasPrefix(a.Step, "restart") {
						return out, nil // the diagnosis
					}
					short := strings.TrimSuffix(host, ".contoso.com")
					mu.Lock()
					what := strings.TrimPrefix(a.Step, "restart.") // restart, guard or readback
					calls = append(calls, short+" "+what)
					mu.Unlock()
					switch {
					case a.Step == "restart" && host == tc.fail:
						return out, fmt.Errorf("%s: Restart-Service: service did not stop", host)
					case a.Step == "restart" && host == tc.late:
						time.Sleep(2 * a.Timeout)
						return out, nil
					case a.Step == "restart.guard" && host == tc.unread:
						return out, fmt.Errorf("%s: Get-Service: %w", host, executors.ErrTimeout)
					case a.Step == "restart.guard" && host == tc.stopped:
						out.Stdout = []byte(`[{"Name":"MSExchangeTransport","Status":"Stopped"}]`)
					case a.Step == "restart.guard" || a.Step == "restart.readback":
						out.Stdout = []byte(`[{"Name":"MSExchangeTransport","Status":"Running"}]`)
					}
					return out, nil
				}}
				eng := playbooks.NewEngine(oneTarget{exec}, playbooks.Options{})
				run := playbooks.NewRun("r-rolling", parse(t, rollingPlaybook), map[string]any{}, time.Now(), nil)
				require.NoError(t, eng.Diagnose(context.Background(), run))
				p, ok := run.Proposal("restart")
				require.True(t, ok)
				require.Equal(t, hosts, p.Hosts)

				res, err := eng.Relieve(context.Background(), run, "restart")
				require.NoError(t, err)
				assert.Equal(t, tc.calls, calls)
				if tc.err == "" {
					assert.True(t, res.OK, res.Error)
					return
				}
				assert.False(t, res.OK)
				assert.Contains(t, res.Error, tc.err)
			})
		})
	}
}

const needsPlaybook = `
id: needs-demo
title: needs
steps:
  a: {target: exchange, cmdlet: Get-Queue}
  b: {target: exchange, cmdlet: Get-Queue, needs: [a]}
  c: {target: exchange, cmdlet: Get-Queue, needs: [b, x]}
  x: {target: exchange, cmdlet: Get-Queue}
rules:
  - id: c-saw-b
    when: ok("c") && len(steps.b) == 1
    severity: info
    finding: "c ran after b"
`

// needs orders steps: a step starts only once every step it needs has finished,
// and steps that need nothing start at once. The bubble's Wait (every goroutine
// blocked) shows which steps have started, with no sleep.
func TestNeedsOrdersSteps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var events []string
		gates := map[string]chan struct{}{"a": make(chan struct{}), "x": make(chan struct{})}
		exec := funcExec{hosts: []string{"ex01.contoso.com"}, run: func(ctx context.Context, host string, act executors.Action) (executors.Output, error) {
			mu.Lock()
			events = append(events, "start "+act.Step)
			mu.Unlock()
			if g, ok := gates[act.Step]; ok {
				select {
				case <-g:
				case <-ctx.Done():
					return executors.Output{}, ctx.Err()
				}
			}
			mu.Lock()
			events = append(events, "end "+act.Step)
			mu.Unlock()
			return executors.Output{Host: host, Stdout: []byte(`[{"Step":"` + act.Step + `"}]`)}, nil
		}}
		seen := func() []string {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(events)
		}
		run := playbooks.NewRun("r-needs", parse(t, needsPlaybook), map[string]any{}, time.Now(), nil)
		done := make(chan error, 1)
		go func() {
			done <- playbooks.NewEngine(oneTarget{exec}, playbooks.Options{}).Diagnose(context.Background(), run)
		}()

		synctest.Wait() // a and x started and wait at their gates; nothing else may start
		assert.ElementsMatch(t, []string{"start a", "start x"}, seen())

		close(gates["a"])
		synctest.Wait() // b has run; c still waits for x
		assert.ElementsMatch(t, []string{"start a", "start x", "end a", "start b", "end b"}, seen())
		ev := seen()
		assert.Less(t, slices.Index(ev, "end a"), slices.Index(ev, "start b"))

		close(gates["x"])
		require.NoError(t, <-done)
		ev = seen()
		assert.Len(t, ev, 8)
		assert.Less(t, slices.Index(ev, "end b"), slices.Index(ev, "start c"))
		assert.Less(t, slices.Index(ev, "end x"), slices.Index(ev, "start c"))
		assert.Equal(t, []string{"c-saw-b"}, rules(run.Findings()))
	})
}

// The seed runbook's thresholds at their exact edges, through the built-in 5.5.4
// playbook and the lab: a queue above 1000 proposes restarting transport, exactly
// 1000 does not; 500 is elevated (a warning) and stops the throttling branch; 499
// lets it run. Asserted through what the runbook promises (the relief proposed, the
// severity of what is said about the queue, whether the sender's mailbox is read),
// not through rule names, so a reworked rule set must keep the same edges.
func TestNDR554QueueThresholds(t *testing.T) {
	const queue = `EX01\7`
	tests := []struct {
		count        int
		restart      bool                // restart-transport proposed on EX01
		queueSays    []incident.Severity // what the findings say about EX01\7
		mailboxRuns  bool                // the throttling branch: the sender's mailbox is read
		adjustPolicy bool                // adjust-throttling proposed
	}{
		{count: 499, mailboxRuns: true, adjustPolicy: true},
		{count: 500, queueSays: []incident.Severity{incident.SeverityWarning}},
		{count: 1000, queueSays: []incident.Severity{incident.SeverityWarning}},
		{count: 1001, restart: true, queueSays: []incident.Severity{incident.SeverityCritical}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.count), func(t *testing.T) {
			l, err := lab.LoadOrg(filepath.Join("testdata", "orgs", fmt.Sprintf("queue-%d.yaml", tc.count)))
			require.NoError(t, err)
			r := diagnoseRun(t, l, labTargetsFor(l), builtin(t, "5.5.4"), map[string]any{}, 3000)

			var says []incident.Severity
			for _, f := range r.run.Findings() {
				if strings.Contains(f.Text, queue) {
					says = append(says, f.Severity)
				}
			}
			assert.Equal(t, tc.queueSays, says, "findings about %s at %d messages", queue, tc.count)

			p, proposed := r.run.Proposal("restart-transport")
			assert.Equal(t, tc.restart, proposed, "restart-transport proposed at %d messages", tc.count)
			if proposed {
				assert.Equal(t, []string{"ex01.lab.contoso.com"}, p.Hosts)
			}
			_, adjust := r.run.Proposal("adjust-throttling")
			assert.Equal(t, tc.adjustPolicy, adjust, "adjust-throttling proposed at %d messages", tc.count)

			i := slices.IndexFunc(r.run.Steps(), func(s incident.StepResult) bool { return s.Step == "mailbox" })
			require.GreaterOrEqual(t, i, 0)
			want := incident.StepSkipped
			if tc.mailboxRuns {
				want = incident.StepOK
			}
			assert.Equal(t, want, r.run.Steps()[i].Status, "the throttling branch at %d messages", tc.count)
		})
	}
}
