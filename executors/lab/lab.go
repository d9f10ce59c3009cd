// Package lab is a simulated Exchange organisation: two transport servers, their
// queues, transport limits, send connectors, throttling policies, message tracking,
// the EOP endpoint and the outside world the network probes see (destination MX
// hosts, DNS, DNSBL listings), and its Microsoft 365 tenant (service health, the
// app's change-notification subscriptions, a mailbox; for exo targets its
// Exchange Online side — accepted domains, outbound spam policy, blocked
// senders, connectors, message trace: exo.go), in named scenarios whose
// state reacts to reliefs. It answers the same scripts the real servers get,
// recognised by the cmdlets they call, with output shaped like the playbooks' own
// ConvertTo-Json projections of Exchange 2019 cmdlet output, and probe and graph
// checks with the probe and graph executors' own result types.
//
// Cmdlet steps (Action.Cmdlet) are answered from the same model with objects
// shaped as Exchange 2019's arrive over remote PowerShell (cmdlets.go, gets.go,
// reliefs.go), rendered by executors/psobj. Organisation files (ORGFILE.md,
// orgs/*.yaml) describe an organisation and how the world answers reliefs;
// LoadOrg, ParseOrg and NewOrg build a lab from one.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/exo"
	"github.com/ndrbot/ndrbot/executors/probe"
	"github.com/ndrbot/ndrbot/executors/psobj"
)

// Options tune a lab.
type Options struct {
	// Latency is added to every simulated call (benchmarks use 200ms).
	Latency time.Duration
	// Playbook, when set, is the id of the playbook about to run: New refuses a
	// scenario that simulates another playbook's incident.
	Playbook string
	// Now is the organisation's clock for the times it reports (the last failure in
	// message tracking, a queue's retry times); time.Now when nil.
	Now func() time.Time
	// Bases is where an organisation file's extends: looks for its base before
	// the built-in files (LoadOrg sets the file's directory).
	Bases fs.FS
}

// Lab is one simulated organisation in one scenario. It is safe for concurrent use.
type Lab struct {
	scenario string
	latency  time.Duration
	// about and playbook describe an organisation file's scenario.
	about, playbook string

	mu    sync.Mutex
	org   *org
	calls []Call
}

// Call records one action the lab received, for tests and demos.
type Call struct {
	Target string
	Host   string
	Step   string
	// Cmdlet is the command of a cmdlet step, or the operation the lab
	// recognised in a script or check.
	Cmdlet string
	// Args are a cmdlet step's arguments, as the playbook gave them.
	Args   []executors.Arg
	Params map[string]any
}

// Scenarios lists the built-in scenarios — the organisation files in orgs/,
// base excepted — with a one-line description each.
func Scenarios() map[string]string {
	out := map[string]string{}
	for name, s := range scenarios() {
		out[name] = s.about
	}
	return out
}

// ScenarioNames lists the scenario names, sorted: the file names alone, since
// every command's help shows them and parsing every organisation file cost a
// diagnosis a quarter of its start-up.
func ScenarioNames() []string {
	entries, _ := fs.ReadDir(builtinOrgs, "orgs")
	var names []string
	for _, e := range entries {
		if name := strings.TrimSuffix(e.Name(), ".yaml"); name != "base" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// ScenariosFor lists, sorted, the scenarios a playbook can run against: its own and
// those shared by every playbook (healthy).
func ScenariosFor(playbook string) []string {
	var names []string
	for name, s := range scenarios() {
		if s.playbook == "" || s.playbook == playbook {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// ScenarioPlaybook names the playbook a scenario simulates an incident for; "" when
// every playbook can run against it.
func ScenarioPlaybook(scenario string) string { return scenarios()[scenario].playbook }

// New builds a lab from a built-in scenario's organisation file.
func New(scenario string, opts Options) (*Lab, error) {
	if !slices.Contains(ScenarioNames(), scenario) {
		return nil, fmt.Errorf("lab: unknown scenario %q (known: %s)", scenario, strings.Join(ScenarioNames(), ", "))
	}
	unchecked := opts
	unchecked.Playbook = ""               // the mismatch is told below, with the scenarios that fit
	l, err := NewOrg(scenario, unchecked) // only the scenario asked for is parsed
	if err != nil {
		return nil, err
	}
	if opts.Playbook != "" && l.Playbook() != "" && l.Playbook() != opts.Playbook {
		return nil, fmt.Errorf("lab: scenario %q simulates a %s incident, not %s (scenarios for %s: %s)",
			scenario, l.Playbook(), opts.Playbook, opts.Playbook, strings.Join(ScenariosFor(opts.Playbook), ", "))
	}
	return l, nil
}

// Scenario names the lab's scenario (an organisation file's base name).
func (l *Lab) Scenario() string { return l.scenario }

// About describes an organisation file's scenario (its about:).
func (l *Lab) About() string { return l.about }

// Playbook is the playbook an organisation file simulates an incident for.
func (l *Lab) Playbook() string { return l.playbook }

// keptCalls is how many calls the lab remembers: what a test inspects, not
// everything a long `serve --lab` ever received.
const keptCalls = 10000

// recordLocked remembers one call, forgetting the oldest beyond keptCalls.
func (l *Lab) recordLocked(c Call) {
	if len(l.calls) >= keptCalls {
		n := copy(l.calls, l.calls[len(l.calls)-keptCalls/2:])
		clear(l.calls[n:])
		l.calls = l.calls[:n]
	}
	l.calls = append(l.calls, c)
}

// Calls returns what the lab received so far (the latest calls, at least
// half of keptCalls of them once that many came).
func (l *Lab) Calls() []Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// eopTarget is the target whose endpoint-less form stands for the EOP endpoint.
const eopTarget = "eop"

// Target returns an executor for one configured target group: winrm-like targets
// map to the lab's Exchange servers, probe targets to their configured endpoints,
// graph and exo targets to the lab's Microsoft 365 tenant (Tenant).
// A probe target without endpoints is, as with the real probe executor, the bot's
// own vantage point (probe.VantagePoint) — except eop, which stands for the EOP
// endpoint its default configuration names.
func (l *Lab) Target(name, kind string, endpoints []string) *Target {
	t := &Target{lab: l, name: name, kind: kind}
	switch kind {
	case "probe":
		t.hosts = slices.Clone(endpoints)
		switch {
		case len(t.hosts) > 0:
		case name == eopTarget:
			t.hosts = []string{"outlook.office365.com:25"}
		default:
			t.hosts = []string{probe.VantagePoint}
		}
	case "graph", "exo":
		// One host, the tenant, as the graph and exo executors' Hosts is their tenant_id.
		t.hosts = []string{Tenant}
	default:
		for _, s := range l.org.servers {
			t.hosts = append(t.hosts, s.host)
		}
	}
	return t
}

// Target is one simulated target group: an executor for steps, and Invoke for the
// protocol fakes that put the organisation behind a PSRP or WS-Man server.
type Target struct {
	lab   *Lab
	name  string
	kind  string
	hosts []string
}

var _ executors.Executor = (*Target)(nil)

func (t *Target) Kind() string    { return "lab" }
func (t *Target) Hosts() []string { return slices.Clone(t.hosts) }

func (t *Target) Run(ctx context.Context, host string, a executors.Action) (executors.Output, error) {
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
	if t.kind == "exo" {
		return t.runEXO(host, a, start)
	}
	if a.Check == "" {
		return t.runCmdlet(host, a, start)
	}
	cmdlet := a.Check
	if host == probe.VantagePoint && (cmdlet == probe.CheckSMTP || cmdlet == probe.CheckTCP) {
		return executors.Output{Host: host}, fmt.Errorf("lab %s: step %q: check %q: %w", t.name, a.Step, cmdlet, probe.NoEndpointsError(t.name))
	}
	t.lab.mu.Lock()
	t.lab.recordLocked(Call{Target: t.name, Host: host, Step: a.Step, Cmdlet: cmdlet, Params: a.Params})
	out, err := t.lab.org.answer(host, cmdlet, a.Params)
	t.lab.mu.Unlock()

	o := executors.Output{Host: host, Duration: time.Since(start)}
	if err != nil {
		o.ExitCode, o.Stderr = 1, err.Error()
		return o, fmt.Errorf("lab %s: %s: %w: %w", host, a.Step, executors.ErrExit, err)
	}
	o.Stdout, err = json.Marshal(out)
	return o, err
}

// Invoke answers one cmdlet with the PowerShell objects themselves, as a server
// would serialize them: what the protocol fakes (PSRP, WS-Man) put on the wire
// when a test backs them with the lab. The call is recorded like Run's.
func (t *Target) Invoke(host string, a executors.Action) (items []any, warnings []string, err error) {
	if !slices.Contains(t.hosts, host) {
		return nil, nil, fmt.Errorf("lab %s: %w: not a host of target %q", host, executors.ErrUnreachable, t.name)
	}
	t.lab.mu.Lock()
	defer t.lab.mu.Unlock()
	t.lab.recordLocked(Call{Target: t.name, Host: host, Step: a.Step, Cmdlet: a.Cmdlet, Args: slices.Clone(a.Args), Params: a.Params})
	if t.kind == "exo" {
		items, _, warnings, err = t.lab.org.runEXO(t.name, a)
		return items, warnings, err
	}
	return t.lab.org.runCmdlet(host, t.kind, a)
}

// runEXO answers a step of an exo target as the exo executor would: cmdlet
// steps only, each row carrying the route it took (exo.RouteField), the route
// named in Stderr, and a refusal when the route is not allowed.
func (t *Target) runEXO(host string, a executors.Action, start time.Time) (executors.Output, error) {
	t.lab.mu.Lock()
	t.lab.recordLocked(Call{Target: t.name, Host: host, Step: a.Step, Cmdlet: a.Cmdlet, Args: slices.Clone(a.Args), Params: a.Params})
	var (
		items    []any
		route    exo.Route
		warnings []string
		err      error
	)
	if a.Cmdlet == "" {
		err = fmt.Errorf("exo %s: step %q: %w: exo targets take cmdlet steps (cmdlet: with args:), not scripts or checks", t.name, a.Step, executors.ErrUnsupported)
	} else {
		items, route, warnings, err = t.lab.org.runEXO(t.name, a)
	}
	t.lab.mu.Unlock()

	o := executors.Output{Host: host, Duration: time.Since(start)}
	if route != "" {
		o.Stderr = "route: " + string(route) + " (lab)"
	}
	if len(warnings) > 0 {
		o.Stderr = strings.TrimSpace(o.Stderr + "\n" + strings.Join(warnings, "\n"))
	}
	if err != nil {
		var ce *CmdletError
		if errors.As(err, &ce) {
			o.ExitCode = 1
			o.Stderr = strings.TrimSpace(o.Stderr + "\n" + strings.TrimPrefix(ce.Record(), " : "))
			return o, fmt.Errorf("lab %s: %s: %w: %w", host, a.Step, executors.ErrExit, err)
		}
		o.Stderr = strings.TrimSpace(o.Stderr + "\n" + err.Error())
		return o, err
	}
	rows := make([]map[string]any, 0, len(items))
	for _, it := range items {
		r := psobj.Row(it, a.Select)
		r[exo.RouteField] = string(route)
		rows = append(rows, r)
	}
	o.Stdout, err = json.Marshal(rows)
	return o, err
}

// runCmdlet answers a cmdlet step from the organisation model. Exchange's
// runspace and the JEA endpoint are no-language: script text sent there fails
// as it would on a server.
func (t *Target) runCmdlet(host string, a executors.Action, start time.Time) (executors.Output, error) {
	t.lab.mu.Lock()
	t.lab.recordLocked(Call{Target: t.name, Host: host, Step: a.Step, Cmdlet: a.Cmdlet, Args: slices.Clone(a.Args), Params: a.Params})
	var (
		items    []any
		warnings []string
		err      error
	)
	switch {
	case a.Cmdlet == "" && (t.kind == "exchange" || t.kind == "jea"):
		err = noLanguage()
	case a.Cmdlet == "":
		err = errors.New("the lab simulates cmdlet steps and checks, not scripts: write the step as cmdlet, args and select")
	default:
		items, warnings, err = t.lab.org.runCmdlet(host, t.kind, a)
	}
	t.lab.mu.Unlock()

	o := executors.Output{Host: host, Duration: time.Since(start), Stderr: strings.Join(warnings, "\n")}
	if err != nil {
		o.ExitCode = 1
		var ce *CmdletError
		if errors.As(err, &ce) {
			o.Stderr = strings.TrimPrefix(ce.Record(), " : ")
		} else {
			o.Stderr = err.Error()
		}
		return o, fmt.Errorf("lab %s: %s: %w: %w", host, a.Step, executors.ErrExit, err)
	}
	o.Stdout, err = psobj.JSON(items, a.Select)
	return o, err
}

// Targets simulates every target group with the lab, for tests and demos that
// wire an engine without configuration.
type Targets struct {
	lab   *Lab
	kinds map[string]string
}

// Targets maps target names (to their kind: winrm, probe, …) onto the lab.
func (l *Lab) Targets(kinds map[string]string) Targets { return Targets{lab: l, kinds: kinds} }

// Executor returns the lab's executor for a target group.
func (t Targets) Executor(name string) (executors.Executor, error) {
	kind, ok := t.kinds[name]
	if !ok {
		return nil, fmt.Errorf("lab: no target %q", name)
	}
	return t.lab.Target(name, kind, nil), nil
}
