package main

import (
	"fmt"
	"sync"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/graph"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/executors/probe"
	"github.com/ndrbot/ndrbot/executors/winrm"
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
			e, err = graph.New(name, tc)
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
