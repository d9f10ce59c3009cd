package playbooks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"
	"golang.org/x/sync/errgroup"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks/params"
)

// Targets resolves a playbook's target group to the executor that runs it.
type Targets interface {
	Executor(target string) (executors.Executor, error)
}

// ReliefHistory remembers when a relief last ran on a host, for cooldowns. The
// durable store implements it; the engine keeps one in memory otherwise.
type ReliefHistory interface {
	LastRelief(ctx context.Context, relief, host string) (time.Time, bool, error)
	RecordRelief(ctx context.Context, relief string, hosts []string, at time.Time) error
}

// Observer receives the engine's progress: the chat thread, the audit trail and the
// terminal subscribe through it. Observe must not block for long.
type Observer interface {
	Observe(ctx context.Context, ev incident.Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(ctx context.Context, ev incident.Event)

// Observe calls f.
func (f ObserverFunc) Observe(ctx context.Context, ev incident.Event) { f(ctx, ev) }

// Options tune an Engine; the zero value is production behaviour.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// WaitScale divides the playbook's waits (the lab uses 300: 5m → 1s).
	WaitScale float64
	// History backs cooldowns; an in-memory history when nil.
	History ReliefHistory
	Logger  *slog.Logger
	// Observer sees every run's events besides the run's own observer (the
	// process's metrics); nil for none.
	Observer Observer
}

// Engine runs playbooks. It is safe for concurrent runs.
type Engine struct {
	targets Targets
	now     func() time.Time
	scale   float64
	history ReliefHistory
	log     *slog.Logger
	watcher Observer // Options.Observer
}

// NewEngine returns an engine that runs steps through targets.
func NewEngine(targets Targets, opts Options) *Engine {
	e := &Engine{targets: targets, now: opts.Now, scale: opts.WaitScale, history: opts.History, log: opts.Logger, watcher: opts.Observer}
	if e.now == nil {
		e.now = time.Now
	}
	if e.scale < 1 {
		e.scale = 1
	}
	if e.history == nil {
		e.history = newMemHistory()
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	return e
}

// Phases of a run, visible to expressions as `phase`.
const (
	PhaseDiagnose = "diagnose"
	PhaseVerify   = "verify"
)

// Diagnose runs the playbook's diagnostic steps concurrently as `needs` allows,
// then evaluates rules and escalations. A failed step is a finding, not an error:
// Diagnose returns an error when ctx is cancelled, or, for a playbook whose
// check an Index deferred, the Problems of its rules, reliefs or escalations
// (its steps, read-only, will have run; no rule is evaluated).
func (e *Engine) Diagnose(ctx context.Context, run *Run) error {
	run.mu.Lock()
	run.since = run.Started.Add(-run.window())
	run.mu.Unlock()

	err := e.runSteps(ctx, run, run.Playbook.Steps, PhaseDiagnose)
	if err != nil {
		return err
	}
	if err := run.Playbook.await(ctx); err != nil {
		return fmt.Errorf("playbook %s: %w", run.Playbook.ID, err)
	}
	e.evaluate(ctx, run, PhaseDiagnose)
	return ctx.Err()
}

// runSteps runs steps honouring needs; rules whose steps are all finished are
// evaluated as soon as possible so the first finding does not wait for the slowest
// step.
//
// A step starts the moment the results of its needs are in the run: their
// events (durable writes, chat) and the rules they complete follow in their
// own goroutines meanwhile, so none of that lengthens a chain of needs. A
// step that reads findings (found() and the like) waits for those too.
func (e *Engine) runSteps(ctx context.Context, run *Run, steps []*Step, phase string) error {
	finished := make(map[string]chan struct{}, len(steps)) // the result is in the run
	settled := make(map[string]chan struct{}, len(steps))  // its events are out, its rules evaluated
	for _, s := range steps {
		finished[s.ID] = make(chan struct{})
		settled[s.ID] = make(chan struct{})
	}
	var g errgroup.Group
	for _, s := range steps {
		g.Go(func() error {
			defer close(settled[s.ID])
			finish := sync.OnceFunc(func() { close(finished[s.ID]) })
			defer finish()
			after := finished
			if s.readsFindings {
				after = settled
			}
			for _, n := range s.Needs {
				if ch, ok := after[n]; ok {
					select {
					case <-ch:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			res := e.runStep(ctx, run, s, phase)
			run.setStep(res)
			finish()
			e.emit(ctx, run, incident.Event{Kind: incident.EventStepFinished, Step: &res})
			if res.Status == incident.StepSkipped && res.Error != "" {
				// Skipped because its target is not set up: say so, without alarm.
				f := incident.Finding{Rule: "step-skipped", Severity: incident.SeverityInfo, Step: s.ID,
					Text: fmt.Sprintf("Step %q (%s) skipped: %s", s.ID, s.Title, res.Error)}
				if run.addFinding(f) {
					e.emit(ctx, run, incident.Event{Kind: incident.EventFinding, Finding: &f})
				}
			}
			if res.Status == incident.StepFailed || res.Status == incident.StepTimeout {
				f := incident.Finding{Rule: "step-failed", Severity: incident.SeverityWarning, Step: s.ID,
					Text: fmt.Sprintf("Step %q (%s) did not complete: %s", s.ID, s.Title, res.Error)}
				if run.addFinding(f) {
					e.emit(ctx, run, incident.Event{Kind: incident.EventFinding, Finding: &f})
				}
			}
			if phase == PhaseDiagnose {
				e.evaluateReady(ctx, run)
			}
			return nil
		})
	}
	return g.Wait()
}

func (e *Engine) emit(ctx context.Context, run *Run, ev incident.Event) {
	ev.RunID = run.ID
	if ev.Time.IsZero() {
		ev.Time = e.now()
	}
	if run.Observer != nil {
		run.Observer.Observe(ctx, ev)
	}
	if e.watcher != nil {
		e.watcher.Observe(ctx, ev)
	}
}

// scriptDigest names what a step ran, for the audit trail: its script, check or
// cmdlet as written in the playbook.
func scriptDigest(script, check string, cmdlet *Cmdlet) string {
	if cmdlet != nil {
		script = cmdlet.Text()
	}
	sum := sha256.Sum256([]byte(script + "\x00" + check))
	return hex.EncodeToString(sum[:])[:16]
}

// action is what one step, preview or relief runs: fixed text from the playbook,
// plus, for a cmdlet, arguments computed for each host.
type action struct {
	executors.Action
	cmdlet *Cmdlet
	env    map[string]any // what cmdlet argument expressions read
}

func newAction(id string, script, check string, cmdlet *Cmdlet, data map[string]any, timeout time.Duration, env map[string]any) action {
	a := action{Action: executors.Action{Step: id, Script: script, Check: check, Params: data, Timeout: timeout}, cmdlet: cmdlet, env: env}
	if cmdlet != nil {
		a.Cmdlet, a.Select = cmdlet.Name, cmdlet.Select
	}
	return a
}

// forHost computes the cmdlet's arguments for one host: values, never text. A
// cmdlet with foreach runs once per item of its list (none when it is empty).
func (a action) forHost(host string) ([]executors.Action, error) {
	if a.cmdlet == nil {
		return []executors.Action{a.Action}, nil
	}
	env := make(map[string]any, len(a.env)+2)
	maps.Copy(env, a.env)
	env["host"] = host
	items := []any{nil}
	if a.cmdlet.foreach != nil {
		v, err := runExpr(a.cmdlet.foreach, env)
		if err != nil {
			return nil, fmt.Errorf("%s: %s foreach: %w", a.Step, a.cmdlet.Name, err)
		}
		if items, err = asList(v); err != nil {
			return nil, fmt.Errorf("%s: %s foreach: %w", a.Step, a.cmdlet.Name, err)
		}
	}
	out := make([]executors.Action, 0, len(items))
	for _, item := range items {
		env["item"] = item
		one := a.Action
		one.Args = make([]executors.Arg, 0, len(a.cmdlet.Args))
		for _, arg := range a.cmdlet.Args {
			v := arg.Value
			if arg.prog != nil {
				var err error
				if v, err = runExpr(arg.prog, env); err != nil {
					return nil, fmt.Errorf("%s: %s -%s: %w", a.Step, a.cmdlet.Name, arg.Name, err)
				}
				if v == nil {
					// No value, no parameter: "raise only the limit that is low"
					// leaves the other one out rather than setting it.
					continue
				}
				v = cmdletValue(v)
			}
			one.Args = append(one.Args, executors.Arg{Name: arg.Name, Value: v})
		}
		out = append(out, one)
	}
	return out, nil
}

func asList(v any) ([]any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []any:
		return x, nil
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, nil
	case []map[string]any:
		out := make([]any, len(x))
		for i, m := range x {
			out[i] = m
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%T is not a list", v)
	}
}

// cmdletValue narrows an expression's result to the types executors hand to
// PowerShell: whole numbers as int64, times as UTC, lists element by element.
func cmdletValue(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case time.Time:
		return x.UTC()
	case time.Duration:
		return x.String()
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cmdletValue(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	default:
		return v
	}
}

// runStep runs one step on its target's hosts and never fails: problems become the
// result's status and error.
func (e *Engine) runStep(ctx context.Context, run *Run, s *Step, phase string) incident.StepResult {
	res := incident.StepResult{Step: s.ID, Title: s.Title, Target: s.Target, Status: incident.StepOK,
		Digest: scriptDigest(s.PowerShell, s.Check, s.Cmdlet), Started: e.now(), Verifying: phase == PhaseVerify}
	finish := func(status incident.StepStatus, err string) incident.StepResult {
		res.Status, res.Error = status, err
		res.Duration = e.now().Sub(res.Started)
		return res
	}

	env := run.env(phase, nil, nil)
	args, err := evalArgs(s.With, env)
	if err != nil {
		return finish(incident.StepFailed, err.Error())
	}
	if s.when != nil {
		env["args"] = args
		ok, err := runBool(s.when, env)
		if err != nil {
			return finish(incident.StepFailed, "when: "+err.Error())
		}
		if !ok {
			return finish(incident.StepSkipped, "")
		}
	}
	exec, err := e.targets.Executor(s.Target)
	if errors.Is(err, executors.ErrNotConfigured) {
		return finish(incident.StepSkipped, err.Error())
	}
	if err != nil {
		return finish(incident.StepFailed, err.Error())
	}
	res.Executor = exec.Kind()
	hosts := exec.Hosts()
	if len(hosts) == 0 {
		return finish(incident.StepFailed, fmt.Sprintf("target %q has no endpoints", s.Target))
	}
	e.emit(ctx, run, incident.Event{Kind: incident.EventStepStarted, Step: &incident.StepResult{
		Step: s.ID, Title: s.Title, Target: s.Target, Executor: exec.Kind(), Status: incident.StepRunning, Started: res.Started, Verifying: res.Verifying}})

	env["args"] = args
	act := newAction(s.ID, s.PowerShell, s.Check, s.Cmdlet, scriptData(run.Params, args), s.Timeout, env)
	outs := e.onHosts(ctx, exec, hosts, s.RunOn == "one", act)

	var errs []string
	timedOut := false
	for _, o := range outs {
		res.Hosts = append(res.Hosts, o.host)
		if o.err != nil {
			errs = append(errs, o.err.Error())
			timedOut = timedOut || errors.Is(o.err, executors.ErrTimeout) || errors.Is(o.err, context.DeadlineExceeded)
			if o.out.ExitCode != 0 {
				res.ExitCode = o.out.ExitCode
			}
			continue
		}
		rows, err := Rows(o.host, o.out.Stdout)
		if err == nil && s.Cmdlet != nil && s.Cmdlet.where != nil {
			rows, err = keepRows(s.Cmdlet.where, env, rows)
		}
		if err == nil && s.Cmdlet != nil && len(s.Cmdlet.Derive) > 0 {
			err = deriveColumns(s.Cmdlet.Derive, env, rows)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", o.host, err))
			continue
		}
		res.Rows = append(res.Rows, rows...)
	}
	switch {
	case len(errs) == 0:
		return finish(incident.StepOK, "")
	case timedOut:
		return finish(incident.StepTimeout, strings.Join(errs, "; "))
	default:
		return finish(incident.StepFailed, strings.Join(errs, "; "))
	}
}

type hostOutput struct {
	host string
	out  executors.Output
	err  error
}

// onHosts runs an action on every host concurrently, or, with firstOnly, on the
// hosts in order until one succeeds.
func (e *Engine) onHosts(ctx context.Context, exec executors.Executor, hosts []string, firstOnly bool, act action) []hostOutput {
	run := func(host string) hostOutput {
		actions, err := act.forHost(host)
		if err != nil {
			return hostOutput{host: host, err: err}
		}
		// The actions of one host run in turn, within the step's one timeout, and
		// stop at the first failure; their rows are joined.
		actx, cancel := context.WithTimeout(ctx, act.Timeout)
		defer cancel()
		res := hostOutput{host: host, out: executors.Output{Host: host, Stdout: []byte("[]")}}
		for _, a := range actions {
			out, err := exec.Run(actx, host, a)
			if err == nil && actx.Err() != nil {
				err = fmt.Errorf("%s: %s: %w after %s", host, a.Step, executors.ErrTimeout, a.Timeout)
			}
			if len(actions) == 1 {
				return hostOutput{host: host, out: out, err: err}
			}
			res.out.Duration += out.Duration
			res.out.Stderr += out.Stderr
			res.out.ExitCode = out.ExitCode
			if err != nil {
				res.err = err
				return res
			}
			if res.out.Stdout, err = joinRows(res.out.Stdout, out.Stdout); err != nil {
				res.err = fmt.Errorf("%s: %s: %w", host, a.Step, err)
				return res
			}
		}
		return res
	}
	if firstOnly {
		var last hostOutput
		for _, h := range hosts {
			last = run(h)
			if last.err == nil || ctx.Err() != nil {
				break
			}
		}
		return []hostOutput{last}
	}
	outs := make([]hostOutput, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { outs[i] = run(h) })
	}
	wg.Wait()
	return outs
}

// keepRows filters rows by a step's where, each row bound to it.
func keepRows(where *vm.Program, env map[string]any, rows []map[string]any) ([]map[string]any, error) {
	row := maps.Clone(env)
	kept := rows[:0]
	for _, r := range rows {
		row["it"] = r
		ok, err := runBool(where, row)
		if err != nil {
			return nil, fmt.Errorf("where: %w", err)
		}
		if ok {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// deriveColumns adds a step's computed columns to each row, in order: a later
// column may read an earlier one (it.Kind in it.Toward).
func deriveColumns(derive []Arg, env map[string]any, rows []map[string]any) error {
	denv := maps.Clone(env)
	for _, r := range rows {
		denv["it"] = r
		for _, d := range derive {
			v, err := runExpr(d.prog, denv)
			if err != nil {
				return fmt.Errorf("derive.%s: %w", d.Name, err)
			}
			r[d.Name] = v
		}
	}
	return nil
}

// joinRows appends the rows of one JSON output to another's.
func joinRows(all, more []byte) ([]byte, error) {
	var a, b []json.RawMessage
	if err := json.Unmarshal(all, &a); err != nil {
		return nil, err
	}
	data := bytes.TrimSpace(more)
	switch {
	case len(data) == 0:
	case data[0] == '[':
		if err := json.Unmarshal(data, &b); err != nil {
			return nil, fmt.Errorf("output is not JSON: %w", err)
		}
	default:
		b = []json.RawMessage{json.RawMessage(data)}
	}
	return json.Marshal(append(a, b...))
}

func evalArgs(args []Arg, env map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(args))
	for _, a := range args {
		v, err := runExpr(a.prog, env)
		if err != nil {
			return nil, fmt.Errorf("with.%s: %w", a.Name, err)
		}
		out[a.Name] = v
	}
	return out, nil
}

// scriptData is the blob a script receives as $P: validated params overlaid with
// computed arguments, each in a JSON-friendly form.
func scriptData(params, args map[string]any) map[string]any {
	out := make(map[string]any, len(params)+len(args))
	for k, v := range params {
		out[k] = jsonValue(v)
	}
	for k, v := range args {
		out[k] = jsonValue(v)
	}
	return out
}

func jsonValue(v any) any {
	if t, ok := v.(time.Time); ok {
		return t.UTC().Format(time.RFC3339)
	}
	return params.ScriptValue(v)
}

// wait sleeps a playbook wait, scaled for the lab, or until ctx ends.
func (e *Engine) wait(ctx context.Context, d time.Duration) error {
	d = time.Duration(float64(d) / e.scale)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// memHistory is the in-process relief history used when no store is wired.
type memHistory struct {
	mu   sync.Mutex
	last map[[2]string]time.Time
}

func newMemHistory() *memHistory { return &memHistory{last: map[[2]string]time.Time{}} }

func (h *memHistory) LastRelief(_ context.Context, relief, host string) (time.Time, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.last[[2]string{relief, host}]
	return t, ok, nil
}

func (h *memHistory) RecordRelief(_ context.Context, relief string, hosts []string, at time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, host := range hosts {
		h.last[[2]string{relief, host}] = at
	}
	return nil
}

// Hosts lists a target's hosts as configured now.
func (e *Engine) Hosts(target string) ([]string, error) {
	exec, err := e.targets.Executor(target)
	if err != nil {
		return nil, err
	}
	return exec.Hosts(), nil
}
