package playbooks_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/playbooks"
)

// gatedExec is two servers whose service state the test controls: after a
// Restart-Service the host comes back Running only when back is true.
type gatedExec struct {
	mu       sync.Mutex
	back     map[string]bool
	status   map[string]string
	restarts []string
}

func (r *gatedExec) Kind() string    { return "jea" }
func (r *gatedExec) Hosts() []string { return []string{"ex01.contoso.com", "ex02.contoso.com"} }
func (r *gatedExec) Run(_ context.Context, host string, a executors.Action) (executors.Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch a.Cmdlet {
	case "Get-Service":
		return executors.Output{Host: host, Stdout: fmt.Appendf(nil, `[{"Status":%q}]`, r.status[host])}, nil
	case "Restart-Service":
		r.restarts = append(r.restarts, host)
		if !r.back[host] {
			r.status[host] = "Stopped"
		}
		return executors.Output{Host: host, Stdout: []byte(`[]`)}, nil
	}
	return executors.Output{}, fmt.Errorf("%s: %w", a.Cmdlet, executors.ErrUnsupported)
}

const gatedPlaybook = `
id: rolling
title: rolling restart
steps:
  transport:
    target: jea
    cmdlet: Get-Service
    args: {Name: MSExchangeTransport}
rules:
  - id: restart
    each: steps.transport
    when: "true"
    severity: info
    finding: "{{ it.Host }}"
    propose: restart
reliefs:
  restart:
    target: jea
    cmdlet: Restart-Service
    args: {Name: MSExchangeTransport}
    block:
      when: count(steps.transport, .Status == "Running") < 2
      reason: "only {{ count(steps.transport, .Status == \"Running\") }} healthy server(s): restarting {{ join(hosts, \", \") }} would stop mail"
    gate:
      steps: [transport]
      ok: any(steps.transport, .Host == host && .Status == "Running")
      every: 30s
      within: 10m
    risk: Mail pauses.
    approval: {role: approver, expires: 30m}
`

func gatedRun(t *testing.T, exec *gatedExec) (*playbooks.Engine, *playbooks.Run) {
	t.Helper()
	pb, err := playbooks.Parse("rolling.yaml", []byte(gatedPlaybook), map[string]string{"jea": "jea"})
	require.NoError(t, err)
	eng := playbooks.NewEngine(oneTarget{exec}, playbooks.Options{WaitScale: 1e6})
	run := playbooks.NewRun("r-roll", pb, map[string]any{}, time.Now(), nil)
	require.NoError(t, eng.Diagnose(context.Background(), run))
	return eng, run
}

// The next server is restarted only once the previous one is healthy again; when
// it does not come back, the relief stops and the later servers are untouched.
func TestRollingReliefWaitsForEachHost(t *testing.T) {
	t.Run("each comes back: both restarted, in order", func(t *testing.T) {
		exec := &gatedExec{back: map[string]bool{"ex01.contoso.com": true, "ex02.contoso.com": true},
			status: map[string]string{"ex01.contoso.com": "Running", "ex02.contoso.com": "Running"}}
		eng, run := gatedRun(t, exec)
		res, err := eng.Relieve(context.Background(), run, "restart")
		require.NoError(t, err)
		assert.True(t, res.OK, res.Error)
		assert.Equal(t, []string{"ex01.contoso.com", "ex02.contoso.com"}, exec.restarts)
	})
	t.Run("the first does not come back: the second is left alone", func(t *testing.T) {
		exec := &gatedExec{back: map[string]bool{"ex02.contoso.com": true},
			status: map[string]string{"ex01.contoso.com": "Running", "ex02.contoso.com": "Running"}}
		eng, run := gatedRun(t, exec)
		res, err := eng.Relieve(context.Background(), run, "restart")
		require.NoError(t, err)
		assert.False(t, res.OK)
		assert.Contains(t, res.Error, "restart halted: ex01.contoso.com was not healthy again within 10m0s")
		assert.Contains(t, res.Error, "the servers after it were left untouched")
		assert.Equal(t, []string{"ex01.contoso.com"}, exec.restarts, "ex02 never restarted")
	})
}

// A relief whose block holds is not offered: the proposal says why, and nothing runs.
func TestBlockedReliefIsNotOffered(t *testing.T) {
	exec := &gatedExec{status: map[string]string{"ex01.contoso.com": "Running", "ex02.contoso.com": "Stopped"}}
	eng, run := gatedRun(t, exec)
	p, ok := run.Proposal("restart")
	require.True(t, ok)
	assert.Equal(t, "only 1 healthy server(s): restarting ex01.contoso.com, ex02.contoso.com would stop mail", p.Blocked)
	_, err := eng.Relieve(context.Background(), run, "restart")
	require.Error(t, err)
	assert.True(t, playbooks.IsRefusal(err))
	assert.Empty(t, exec.restarts)
}
