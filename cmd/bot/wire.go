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
	"github.com/ndrbot/ndrbot/executors/lab"
)

// targets builds each configured target's executor on first use and keeps it, so
// its per-endpoint concurrency caps hold across steps and runs. Each kind builds
// its own (executors.Kind.New, from executors/registry).
type targets struct {
	cfg   config.Config
	kinds executors.Kinds
	lab   *lab.Lab // every target is simulated when set
	log   *slog.Logger
	dial  func(ctx context.Context, network, addr string) (net.Conn, error) // nil: the system's
	// retried counts the REST executors' retries (serve's metrics); nil: none.
	retried func(kind string, status int)

	mu    sync.Mutex
	built map[string]executors.Executor
}

func newTargets(cfg config.Config, kinds executors.Kinds, l *lab.Lab, log *slog.Logger, io stdio) *targets {
	return &targets{cfg: cfg, kinds: kinds, lab: l, log: log, dial: io.dial, built: map[string]executors.Executor{}}
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
	if t.lab != nil {
		e = t.lab.Target(name, tc.Kind, tc.Endpoints)
	} else if k, ok := t.kinds.Lookup(tc.Kind); ok && k.New != nil {
		e, err = k.New(name, tc, executors.Env{Log: t.log, Dial: t.dial, Retried: t.retried})
	} else {
		err = fmt.Errorf("targets.%s.kind: %q has no executor in this build", name, tc.Kind)
	}
	if err != nil {
		return nil, err
	}
	t.built[name] = e
	return e, nil
}

// require checks, before anything runs, that every target a playbook uses can be
// built — a half-configured target is a usage error, not a failed step. A target
// its kind calls not set up yet (executors.ErrNotConfigured: a graph target with
// no app registration, a jea target with no endpoints) is the exception when
// other targets serve the playbook: ndr-5.5.4 still diagnoses on-premises
// Exchange, and its service-health step is skipped with a note that says what to
// configure. A playbook with nothing but such targets (graph-503) cannot run at all.
func (t *targets) require(names []string) error {
	if t.lab != nil {
		return nil
	}
	var unset []error
	for _, name := range names {
		if _, ok := t.cfg.Targets[name]; !ok {
			return fmt.Errorf("target %q is not configured (targets.%s)", name, name)
		}
		if _, err := t.Executor(name); errors.Is(err, executors.ErrNotConfigured) {
			unset = append(unset, err)
		} else if err != nil {
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
