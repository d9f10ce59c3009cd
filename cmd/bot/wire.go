package main

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/graph"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/executors/probe"
	"github.com/ndrbot/ndrbot/executors/winrm"
	"github.com/ndrbot/ndrbot/incident"
)

// targets builds each configured target's executor on first use and keeps it, so
// its per-endpoint concurrency caps hold across steps and runs.
type targets struct {
	cfg config.Config
	lab *lab.Lab // every target is simulated when set

	mu    sync.Mutex
	built map[string]executors.Executor
}

func newTargets(cfg config.Config, l *lab.Lab) *targets {
	return &targets{cfg: cfg, lab: l, built: map[string]executors.Executor{}}
}

func (t *targets) Executor(name string) (executors.Executor, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.built[name]; ok {
		return e, nil
	}
	tc, ok := t.cfg.Targets[name]
	if !ok {
		return nil, fmt.Errorf("target %q is not configured (targets.%s)", name, name)
	}
	var e executors.Executor
	var err error
	switch {
	case t.lab != nil:
		e = t.lab.Target(name, tc.Kind, tc.Endpoints)
	case tc.Kind == "winrm":
		e, err = winrm.New(name, tc)
	case tc.Kind == "probe":
		e, err = probe.New(name, tc)
	case tc.Kind == "graph":
		if err = tc.RequireApp(name); err != nil {
			err = executors.NotConfigured(err)
		} else {
			var g *graph.Executor
			if g, err = graph.New(name, tc); err == nil {
				e = appClientState{Executor: g, name: name, target: tc}
			}
		}
	default:
		err = fmt.Errorf("targets.%s.kind: %q has no executor in this build", name, tc.Kind)
	}
	if err != nil {
		return nil, err
	}
	t.built[name] = e
	return e, nil
}

// require checks, before anything runs, that every target a playbook uses can be
// built and has endpoints — a half-configured target is a usage error, not a
// failed step. A graph target with no app registration yet is the exception when
// other targets serve the playbook: ndr-5.5.4 still diagnoses on-premises Exchange,
// and its service-health step is skipped with a note that says what to configure. A
// playbook with nothing but such targets (graph-503) cannot run at all.
func (t *targets) require(names []string) error {
	if t.lab != nil {
		return nil
	}
	var unset []error
	for _, name := range names {
		tc, ok := t.cfg.Targets[name]
		if !ok {
			return fmt.Errorf("target %q is not configured (targets.%s)", name, name)
		}
		if err := tc.RequireApp(name); err != nil {
			unset = append(unset, err)
			continue
		}
		// A probe target without endpoints is the bot's own vantage point (DNS,
		// DNSBL and MX probes take their subject from the parameters).
		if tc.Kind != "probe" {
			if err := tc.RequireEndpoints(name); err != nil {
				return err
			}
		}
		if _, err := t.Executor(name); err != nil {
			return err
		}
	}
	if len(unset) > 0 && len(unset) == len(names) {
		return unset[0]
	}
	return nil
}

// appClientState is a graph executor that hands its target's client_state to the
// recreate-subscription relief. The secret goes in here, below the engine, and not
// through the playbook: a playbook's arguments are shown on the approval card and
// kept with the run.
type appClientState struct {
	*graph.Executor
	name   string
	target config.Target
}

var _ executors.Executor = appClientState{}

func (a appClientState) Run(ctx context.Context, host string, act executors.Action) (executors.Output, error) {
	if act.Check == graph.CheckRecreateSubscription {
		key := "targets." + a.name + ".client_state"
		state, err := config.ResolveSecret(a.target.ClientState, a.target.ClientStateFile)
		if err != nil {
			return executors.Output{Host: host}, fmt.Errorf("graph %s: %s: %w", a.name, key, err)
		}
		if state == "" {
			return executors.Output{Host: host}, fmt.Errorf("graph %s: step %q: the new subscription needs the clientState the app's notification receiver checks: set %s or %s_file: %w",
				a.name, act.Step, config.EnvName(key), key, incident.ErrInvalidInput)
		}
		p := make(map[string]any, len(act.Params)+1)
		maps.Copy(p, act.Params)
		p["client_state"] = state
		act.Params = p
	}
	return a.Executor.Run(ctx, host, act)
}
