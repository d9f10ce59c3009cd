package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/graph"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/executors/probe"
	"github.com/ndrbot/ndrbot/executors/psrp"
	"github.com/ndrbot/ndrbot/executors/winrm"
)

// targets builds each configured target's executor on first use and keeps it, so
// its per-endpoint concurrency caps hold across steps and runs.
type targets struct {
	cfg  config.Config
	lab  *lab.Lab // every target is simulated when set
	log  *slog.Logger
	dial func(ctx context.Context, network, addr string) (net.Conn, error) // nil: the system's

	mu    sync.Mutex
	built map[string]executors.Executor
}

func newTargets(cfg config.Config, l *lab.Lab, log *slog.Logger, io stdio) *targets {
	return &targets{cfg: cfg, lab: l, log: log, dial: io.dial, built: map[string]executors.Executor{}}
}

// Close closes every executor that holds connections (PSRP runspace pools), so
// none is left open on a server when the bot stops.
func (t *targets) Close(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for name, e := range t.built {
		if c, ok := e.(interface{ Close(context.Context) error }); ok {
			if err := c.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("target %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
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
	case tc.Kind == config.KindWinRM:
		var opts []winrm.Option
		if t.dial != nil {
			opts = append(opts, winrm.WithDialer(t.dial))
		}
		e, err = winrm.New(name, tc, opts...)
	case tc.Kind == config.KindJEA && len(tc.Endpoints) == 0:
		// Optional: without it the service steps are skipped with this note and a
		// restart cannot be proposed, but the Exchange diagnosis still runs.
		err = executors.NotConfigured(fmt.Errorf("JEA endpoint %q not set up: service state and restarts need it (deploy/jea, then set %s)",
			name, config.EnvName("targets."+name+".endpoints")))
	case tc.Kind == config.KindExchange || tc.Kind == config.KindJEA:
		opts := []psrp.Option{psrp.WithLogger(t.log)}
		if t.dial != nil {
			opts = append(opts, psrp.WithDialer(t.dial))
		}
		e, err = psrp.New(name, tc, opts...)
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
		if tc.Kind == config.KindJEA && len(tc.Endpoints) == 0 {
			unset = append(unset, fmt.Errorf("JEA target %q has no endpoints", name))
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

// closeTargets closes the executors when a command ends, with a deadline of its
// own: the command's context may already be cancelled (Ctrl-C, SIGTERM), and the
// runspace pools must still be closed on the servers.
func closeTargets(t *targets, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := t.Close(ctx); err != nil {
		log.Warn("remote sessions not closed; they stay open on the servers until their idle timeout", "err", err)
	}
}
