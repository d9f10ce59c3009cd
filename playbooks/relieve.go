package playbooks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/executors"

	"github.com/ndrbot/ndrbot/incident"
)

// Relieve runs an approved relief of a diagnosed run: on its hosts one at a time
// (a rolling restart never takes every server down at once), stopping at the first
// failure; then, after the playbook's wait, it re-runs the verification steps and
// re-evaluates the rules and escalations. Whether the relief was approved is the
// caller's business; Relieve refuses only what can never run: an unknown or
// blocked proposal, or one that already ran in this run.
func (e *Engine) Relieve(ctx context.Context, run *Run, reliefID string) (incident.ReliefResult, error) {
	if err := run.Playbook.await(ctx); err != nil {
		return incident.ReliefResult{}, fmt.Errorf("playbook %s: %w", run.Playbook.ID, err)
	}
	p, ok := run.Proposal(reliefID)
	if !ok {
		return incident.ReliefResult{}, fmt.Errorf("%w: relief %q was not proposed in run %s", incident.ErrNotFound, reliefID, run.ID)
	}
	if p.Blocked != "" {
		return incident.ReliefResult{}, fmt.Errorf("%w: %s", incident.ErrNotAllowed, p.Blocked)
	}
	run.mu.Lock()
	already := run.reliefOK[reliefID] || run.reliefBad[reliefID]
	if !already {
		// Claim it before running so a concurrent call cannot run it too.
		run.reliefBad[reliefID] = true
	}
	run.mu.Unlock()
	if already {
		return incident.ReliefResult{}, fmt.Errorf("%w: relief %q already ran in run %s", incident.ErrConflict, reliefID, run.ID)
	}

	relief := run.Playbook.Relief(reliefID)
	res := incident.ReliefResult{Relief: reliefID, Hosts: p.Hosts, Started: e.now()}
	e.emit(ctx, run, incident.Event{Kind: incident.EventReliefStarted, Relief: &res})

	exec, err := e.targets.Executor(relief.Target)
	var outputs []string
	if err == nil {
		env := run.env(PhaseDiagnose, nil, p.Args)
		data := scriptData(run.Params, p.Args)
		a := newAction(reliefID, relief.PowerShell, relief.Check, relief.Cmdlet, data, relief.Timeout, env)
		for i, h := range p.Hosts {
			if i > 0 && relief.Gate != nil {
				// Rolling: the next host only once the previous one is healthy again.
				if err = e.awaitGate(ctx, run, relief, p.Hosts[i-1]); err != nil {
					break
				}
			}
			if err = e.checkGuard(ctx, exec, h, relief, data, env); err != nil {
				break
			}
			o := e.onHosts(ctx, exec, []string{h}, false, a)[0]
			if o.err != nil {
				err = o.err
				break
			}
			if relief.Readback != nil {
				rb := newAction(reliefID+".readback", "", "", relief.Readback, data, relief.Timeout, env)
				if o = e.onHosts(ctx, exec, []string{h}, false, rb)[0]; o.err != nil {
					// The change was made; only its read-back failed.
					outputs = append(outputs, fmt.Sprintf("%s: changed; read-back failed: %v", h, o.err))
					continue
				}
			}
			outputs = append(outputs, strings.TrimSpace(string(o.out.Stdout)))
		}
	}
	res.Duration = e.now().Sub(res.Started)
	res.Output = strings.Join(outputs, "\n")
	res.OK = err == nil
	if err != nil {
		res.Error = err.Error()
	}
	if rerr := e.history.RecordRelief(ctx, reliefID, p.Hosts, res.Started); rerr != nil {
		e.log.Warn("relief history not recorded", "run", run.ID, "relief", reliefID, "err", rerr)
	}
	run.mu.Lock()
	if res.OK {
		delete(run.reliefBad, reliefID)
		run.reliefOK[reliefID] = true
	}
	run.since = res.Started.Add(res.Duration)
	run.reliefs = append(run.reliefs, res)
	run.mu.Unlock()
	e.emit(ctx, run, incident.Event{Kind: incident.EventReliefFinished, Relief: &res})
	if !res.OK {
		e.escalate(ctx, run, PhaseVerify)
		return res, nil
	}

	if relief.Verify != nil {
		ev := res
		e.emit(ctx, run, incident.Event{Kind: incident.EventVerifyStarted, Relief: &ev})
		if err := e.wait(ctx, relief.Verify.After); err != nil {
			return res, err
		}
		var steps []*Step
		for _, id := range relief.Verify.Steps {
			steps = append(steps, run.Playbook.Step(id))
		}
		if err := e.runSteps(ctx, run, steps, PhaseVerify); err != nil {
			return res, err
		}
		e.applyRules(ctx, run, PhaseVerify)
		verified := true
		if relief.Verify.ok != nil {
			v, err := runBool(relief.Verify.ok, run.env(PhaseVerify, nil, nil))
			verified = err == nil && v
		}
		res.Verified = &verified
		run.mu.Lock()
		run.reliefs[len(run.reliefs)-1] = res
		run.mu.Unlock()
		e.emit(ctx, run, incident.Event{Kind: incident.EventReliefVerified, Relief: &res})
	}
	e.escalate(ctx, run, PhaseVerify)
	return res, nil
}

// awaitGate re-reads a rolling relief's gate steps until its condition holds for
// host (the one just changed), or gives up after Within: the relief then stops
// and the later hosts are left as they are.
func (e *Engine) awaitGate(ctx context.Context, run *Run, relief *Relief, host string) error {
	g := relief.Gate
	var steps []*Step
	for _, id := range g.Steps {
		steps = append(steps, run.Playbook.Step(id))
	}
	deadline := e.now().Add(time.Duration(float64(g.Within) / e.scale))
	for {
		if err := e.wait(ctx, g.Every); err != nil {
			return err
		}
		if err := e.runSteps(ctx, run, steps, PhaseVerify); err != nil {
			return err
		}
		env := run.env(PhaseVerify, nil, nil)
		env["host"] = host
		ok, err := runBool(g.ok, env)
		if err != nil {
			return fmt.Errorf("%s: gate before the next server: %w", relief.ID, err)
		}
		if ok {
			return nil
		}
		if !e.now().Before(deadline) {
			return fmt.Errorf("%s halted: %s was not healthy again within %s (gate: %s); the servers after it were left untouched",
				relief.ID, host, g.Within, g.OK)
		}
	}
}

// checkGuard reads a relief's guard on host right before the relief runs there
// and refuses, changing nothing, unless its condition holds for every row.
func (e *Engine) checkGuard(ctx context.Context, exec executors.Executor, host string, relief *Relief, data map[string]any, env map[string]any) error {
	g := relief.Guard
	if g == nil {
		return nil
	}
	o := e.onHosts(ctx, exec, []string{host}, false, newAction(relief.ID+".guard", "", "", g.Cmdlet, data, relief.Timeout, env))[0]
	if o.err != nil {
		return fmt.Errorf("%s: %s not run: its guard could not be read: %w", host, relief.ID, o.err)
	}
	rows, err := Rows(host, o.out.Stdout)
	if err != nil {
		return fmt.Errorf("%s: %s not run: its guard could not be read: %w", host, relief.ID, err)
	}
	genv := maps.Clone(env)
	genv["host"] = host
	for _, row := range rows {
		genv["it"] = row
		ok, err := runBool(g.when, genv)
		if err != nil {
			return fmt.Errorf("%s: %s not run: guard: %w", host, relief.ID, err)
		}
		if !ok {
			return fmt.Errorf("%s: %s refused, nothing changed: %s", host, relief.ID, g.refuse.render(genv))
		}
	}
	return nil
}

// IsRefusal reports whether a Relieve error means the request was refused rather
// than the relief failing.
func IsRefusal(err error) bool {
	return errors.Is(err, incident.ErrNotFound) || errors.Is(err, incident.ErrNotAllowed) || errors.Is(err, incident.ErrConflict)
}
