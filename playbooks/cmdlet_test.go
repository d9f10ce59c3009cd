package playbooks_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

// cmdletExec is a two-server target that records the actions it gets and answers
// every Get-Queue with one queue per host; the protocol itself is tested with the
// PSRP and WS-Man fakes in executors/.
type cmdletExec struct {
	mu   sync.Mutex
	got  map[string][]executors.Action // by host
	kind string
}

func (c *cmdletExec) Kind() string    { return c.kind }
func (c *cmdletExec) Hosts() []string { return []string{"ex01.contoso.com", "ex02.contoso.com"} }
func (c *cmdletExec) Run(_ context.Context, host string, a executors.Action) (executors.Output, error) {
	c.mu.Lock()
	c.got[host] = append(c.got[host], a)
	c.mu.Unlock()
	switch a.Cmdlet {
	case "Get-Queue":
		return executors.Output{Host: host, Stdout: fmt.Appendf(nil, `[{"Identity":"%s\\7","MessageCount":1523}]`, host)}, nil
	case "Get-ThrottlingPolicy":
		return executors.Output{Host: host, Stdout: []byte(`[{"Name":"Tight","RecipientRateLimit":100}]`)}, nil
	case "Set-ThrottlingPolicy", "Retry-Queue":
		return executors.Output{Host: host, Stdout: []byte(`[]`)}, nil
	}
	return executors.Output{}, fmt.Errorf("%s: %w", a.Cmdlet, executors.ErrUnsupported)
}

type oneTarget struct{ exec executors.Executor }

func (o oneTarget) Executor(string) (executors.Executor, error) { return o.exec, nil }

const cmdletPlaybook = `
id: cmdlet-demo
title: Cmdlet steps
params:
  sender: {type: string}
  window: {type: duration, default: 15m}
steps:
  queues:
    target: exchange
    cmdlet: Get-Queue
    args:
      Server: "{{ host }}"
      Sender: "{{ params.sender }}"
      Start: "{{ since }}"
      ResultSize: Unlimited
      Limit: 5000
      IncludeBehindFirewall: true
      Domains: [contoso.com, fabrikam.com]
    select: [Identity, MessageCount]
rules:
  - id: big
    each: steps.queues
    when: it.MessageCount > 1000
    severity: critical
    finding: "{{ it.Identity }} holds {{ it.MessageCount }}"
    propose: raise
  - id: retry
    each: steps.queues
    when: it.MessageCount > 1000
    severity: info
    finding: "retry {{ it.Identity }}"
    propose: retry
reliefs:
  retry:
    target: exchange
    with: {queues: 'map(steps.queues, let q = #; {Host: q.Host, Identity: q.Identity})'}
    cmdlet: Retry-Queue
    foreach: filter(args.queues, .Host == host)
    args: {Identity: "{{ item.Identity }}", Confirm: false}
    risk: None.
    approval: {role: approver, expires: 30m}
  raise:
    target: exchange
    with: {policy: '"Tight"'}
    cmdlet: Set-ThrottlingPolicy
    args: {Identity: "{{ args.policy }}", RecipientRateLimit: 900, Confirm: false}
    preview: {cmdlet: Get-ThrottlingPolicy, args: {Identity: "{{ args.policy }}"}, select: [Name, RecipientRateLimit]}
    risk: More mail per sender.
    approval: {role: approver, expires: 30m}
`

func TestCmdletStepsCarryTypedArgumentsPerHost(t *testing.T) {
	pb, err := playbooks.Parse("cmdlet-demo.yaml", []byte(cmdletPlaybook), map[string]string{"exchange": "exchange"})
	require.NoError(t, err)
	exec := &cmdletExec{got: map[string][]executors.Action{}, kind: "exchange"}
	eng := playbooks.NewEngine(oneTarget{exec}, playbooks.Options{})
	started := time.Date(2026, 12, 3, 7, 15, 0, 0, time.UTC)
	hostile := `x'; Remove-Mailbox ceo; "$(whoami)`
	run := playbooks.NewRun("r1", pb, map[string]any{"sender": hostile, "window": 15 * time.Minute}, started, nil)
	require.NoError(t, eng.Diagnose(context.Background(), run))

	for _, host := range exec.Hosts() {
		require.Len(t, exec.got[host], 2, host) // the step, then the relief's preview
		a := exec.got[host][0]
		assert.Equal(t, "Get-Queue", a.Cmdlet)
		assert.Empty(t, a.Script)
		assert.Equal(t, []string{"Identity", "MessageCount"}, a.Select)
		assert.Equal(t, []executors.Arg{
			{Name: "Server", Value: host},
			{Name: "Sender", Value: hostile},
			{Name: "Start", Value: started.Add(-15 * time.Minute)},
			{Name: "ResultSize", Value: "Unlimited"},
			{Name: "Limit", Value: int64(5000)},
			{Name: "IncludeBehindFirewall", Value: true},
			{Name: "Domains", Value: []any{"contoso.com", "fabrikam.com"}},
		}, a.Args, host)
		assert.Equal(t, "Get-ThrottlingPolicy", exec.got[host][1].Cmdlet)
		assert.Equal(t, []executors.Arg{{Name: "Identity", Value: "Tight"}}, exec.got[host][1].Args)
	}

	props := run.Proposals()
	require.Len(t, props, 2)
	p, ok := run.Proposal("raise")
	require.True(t, ok)
	assert.Equal(t, `Set-ThrottlingPolicy -Identity {{ args.policy }} -RecipientRateLimit 900 -Confirm:$false`, p.Command)
	assert.Contains(t, p.Preview, `"RecipientRateLimit":100`)

	res, err := eng.Relieve(context.Background(), run, "raise")
	require.NoError(t, err)
	require.True(t, res.OK, res.Error)
	var sets []executors.Arg
	for _, host := range p.Hosts {
		last := exec.got[host][len(exec.got[host])-1]
		if last.Cmdlet == "Set-ThrottlingPolicy" {
			sets = last.Args
		}
	}
	assert.Equal(t, []executors.Arg{{Name: "Identity", Value: "Tight"}, {Name: "RecipientRateLimit", Value: int64(900)}, {Name: "Confirm", Value: false}}, sets)

	// foreach: Retry-Queue once per queue of each host, with that queue's identity.
	res, err = eng.Relieve(context.Background(), run, "retry")
	require.NoError(t, err)
	require.True(t, res.OK, res.Error)
	for _, host := range exec.Hosts() {
		last := exec.got[host][len(exec.got[host])-1]
		assert.Equal(t, "Retry-Queue", last.Cmdlet)
		assert.Equal(t, []executors.Arg{{Name: "Identity", Value: host + `\7`}, {Name: "Confirm", Value: false}}, last.Args)
	}
	assert.Equal(t, "foreach item in {{ filter(args.queues, .Host == host) }}: Retry-Queue -Identity {{ item.Identity }} -Confirm:$false", must(run.Proposal("retry")).Command)

	// The audit digest of a cmdlet step names the cmdlet as written.
	steps := run.Steps()
	i := slices.IndexFunc(steps, func(s incident.StepResult) bool { return s.Step == "queues" })
	require.GreaterOrEqual(t, i, 0)
	assert.NotEmpty(t, steps[i].Digest)
}

func must[T any](v T, ok bool) T {
	if !ok {
		panic("not found")
	}
	return v
}

// where filters rows on the bot's side, with the step's own env (params, host…).
func TestCmdletWhereKeepsMatchingRows(t *testing.T) {
	pb, err := playbooks.Parse("where.yaml", []byte(`
id: where-demo
title: where
params:
  domain: {type: domain}
steps:
  queues:
    target: exchange
    cmdlet: Get-Queue
    args: {Server: "{{ host }}"}
    where: 'hasPrefix(it.Identity, "ex02") && params.domain == "fabrikam.com"'
rules:
  - id: seen
    each: steps.queues
    when: "true"
    severity: info
    finding: "{{ it.Identity }}"
`), map[string]string{"exchange": "exchange"})
	require.NoError(t, err)
	exec := &cmdletExec{got: map[string][]executors.Action{}, kind: "exchange"}
	run := playbooks.NewRun("r2", pb, map[string]any{"domain": "fabrikam.com"}, time.Now(), nil)
	require.NoError(t, playbooks.NewEngine(oneTarget{exec}, playbooks.Options{}).Diagnose(context.Background(), run))
	var texts []string
	for _, f := range run.Findings() {
		texts = append(texts, f.Text)
	}
	assert.Equal(t, []string{`ex02.contoso.com\7`}, texts)
}

// derive adds computed columns after where, in order, for every rule to read.
func TestCmdletDeriveAddsColumns(t *testing.T) {
	pb, err := playbooks.Parse("derive.yaml", []byte(`
id: derive-demo
title: derive
steps:
  queues:
    target: exchange
    cmdlet: Get-Queue
    args: {Server: "{{ host }}"}
    derive:
      Big: it.MessageCount > 1000
      Label: '(it.Big ? "big " : "small ") + it.Identity'
rules:
  - id: seen
    each: filter(steps.queues, .Big)
    when: "true"
    severity: info
    finding: "{{ it.Label }}"
`), map[string]string{"exchange": "exchange"})
	require.NoError(t, err)
	exec := &cmdletExec{got: map[string][]executors.Action{}, kind: "exchange"}
	run := playbooks.NewRun("r3", pb, map[string]any{}, time.Now(), nil)
	require.NoError(t, playbooks.NewEngine(oneTarget{exec}, playbooks.Options{}).Diagnose(context.Background(), run))
	var texts []string
	for _, f := range run.Findings() {
		texts = append(texts, f.Text)
	}
	assert.Equal(t, []string{`big ex01.contoso.com\7`, `big ex02.contoso.com\7`}, texts)
}
