// Package lab is a simulated Exchange organisation: two transport servers, their
// queues, throttling policies, message tracking and the EOP endpoint, in named
// scenarios whose state reacts to reliefs. It answers the same scripts the real
// servers get, recognised by the cmdlets they call, with output shaped like the
// playbooks' own ConvertTo-Json projections of Exchange 2019 cmdlet output.
package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/executors"
)

// Options tune a lab.
type Options struct {
	// Latency is added to every simulated call (benchmarks use 200ms).
	Latency time.Duration
}

// Lab is one simulated organisation in one scenario. It is safe for concurrent use.
type Lab struct {
	scenario string
	latency  time.Duration

	mu    sync.Mutex
	org   *org
	calls []Call
}

// Call records one action the lab received, for tests and demos.
type Call struct {
	Target string
	Host   string
	Step   string
	Cmdlet string
	Params map[string]any
}

// Scenarios lists the scenario names with a one-line description each.
func Scenarios() map[string]string {
	out := map[string]string{}
	for name, s := range scenarios() {
		out[name] = s.about
	}
	return out
}

// ScenarioNames lists the scenario names, sorted.
func ScenarioNames() []string {
	var names []string
	for name := range scenarios() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// New builds a lab in a named scenario.
func New(scenario string, opts Options) (*Lab, error) {
	s, ok := scenarios()[scenario]
	if !ok {
		return nil, fmt.Errorf("lab: unknown scenario %q (known: %s)", scenario, strings.Join(ScenarioNames(), ", "))
	}
	return &Lab{scenario: scenario, latency: opts.Latency, org: s.build()}, nil
}

// Scenario names the lab's scenario.
func (l *Lab) Scenario() string { return l.scenario }

// Calls returns what the lab received so far.
func (l *Lab) Calls() []Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// Target returns an executor for one configured target group: winrm-like targets
// map to the lab's Exchange servers, probe targets to their configured endpoints
// (or the EOP default).
func (l *Lab) Target(name, kind string, endpoints []string) executors.Executor {
	t := &target{lab: l, name: name, kind: kind}
	switch kind {
	case "probe":
		t.hosts = endpoints
		if len(t.hosts) == 0 {
			t.hosts = []string{"outlook.office365.com:25"}
		}
	default:
		for _, s := range l.org.servers {
			t.hosts = append(t.hosts, s.host)
		}
	}
	return t
}

type target struct {
	lab   *Lab
	name  string
	kind  string
	hosts []string
}

var _ executors.Executor = (*target)(nil)

func (t *target) Kind() string    { return "lab" }
func (t *target) Hosts() []string { return slices.Clone(t.hosts) }

func (t *target) Run(ctx context.Context, host string, a executors.Action) (executors.Output, error) {
	start := time.Now()
	if t.lab.latency > 0 {
		timer := time.NewTimer(t.lab.latency)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return executors.Output{Host: host}, fmt.Errorf("lab %s: %s: %w", host, a.Step, executors.ErrTimeout)
		}
	}
	if !slices.Contains(t.hosts, host) {
		return executors.Output{Host: host}, fmt.Errorf("lab %s: %w: not a host of target %q", host, executors.ErrUnreachable, t.name)
	}
	cmdlet := a.Check
	if cmdlet == "" {
		cmdlet = recognise(a.Script)
	}
	t.lab.mu.Lock()
	t.lab.calls = append(t.lab.calls, Call{Target: t.name, Host: host, Step: a.Step, Cmdlet: cmdlet, Params: a.Params})
	out, err := t.lab.org.answer(host, cmdlet, a.Params)
	t.lab.mu.Unlock()

	o := executors.Output{Host: host, Duration: time.Since(start)}
	if err != nil {
		o.ExitCode, o.Stderr = 1, err.Error()
		return o, fmt.Errorf("lab %s: %s: %w: %v", host, a.Step, executors.ErrExit, err)
	}
	o.Stdout, err = json.Marshal(out)
	return o, err
}

// recognise names the simulated operation behind a script by the cmdlets it calls,
// most specific first (a preview calls Get-Service, a health check calls both
// Get-Service and Get-ServerComponentState).
func recognise(script string) string {
	for _, c := range []string{"Set-ThrottlingPolicy", "Restart-Service", "Get-ServerComponentState",
		"Get-MessageTrackingLog", "Get-Mailbox -Identity", "Get-ThrottlingPolicy", "Get-Service", "Get-Queue"} {
		if strings.Contains(script, c) {
			return c
		}
	}
	return "unknown"
}
