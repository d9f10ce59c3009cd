package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"sync/atomic"
	"syscall"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/playbooks"
)

// reloader re-reads the configuration and the playbooks on SIGHUP (or on
// io.reload in tests). What it cannot apply while running is said, not half
// applied.
type reloader struct {
	g       *globals
	running config.Config
	catalog *atomic.Pointer[playbooks.Catalog]
	svc     *commands.Service
	log     *slog.Logger
}

// run reloads on each signal until ctx ends. A reload is validated whole
// first — the configuration, then every playbook — and a bad one changes
// nothing: the running configuration stays and the log says why. Runs in
// flight keep the playbook they started with; an approval asked under a
// playbook the reload changed is void at its next vote (the digest), as
// designed.
func (r *reloader) run(ctx context.Context, signals <-chan os.Signal) error {
	if signals == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		defer signal.Stop(ch)
		signals = ch
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-signals:
			r.reload()
		}
	}
}

func (r *reloader) reload() {
	cfg, _, err := r.g.loadConfig()
	if err != nil {
		r.log.Error("reload refused: keeping the running configuration", "err", err)
		return
	}
	cat, err := r.g.catalog(cfg)
	if err != nil {
		r.log.Error("reload refused: keeping the running playbooks", "err", err)
		return
	}
	var changed []string
	old := r.catalog.Load()
	for _, pb := range cat.All() {
		if was, err := old.Resolve(pb.ID); err != nil || was.ID != pb.ID || was.Version != pb.Version {
			changed = append(changed, pb.ID+"@"+pb.Version)
		}
	}
	for _, pb := range old.All() {
		if now, err := cat.Resolve(pb.ID); err != nil || now.ID != pb.ID {
			changed = append(changed, pb.ID+" (removed)")
		}
	}
	r.catalog.Store(cat)
	r.svc.SetAccess(accessOf(cfg))
	slices.Sort(changed)
	r.log.Info("reloaded playbooks and access lists", "playbooks_changed", changed)
	// Everything else is wired into connections and stores at start.
	for key, same := range map[string]bool{
		"slack":            reflect.DeepEqual(cfg.Slack.Mode, r.running.Slack.Mode) && cfg.Slack.Listen == r.running.Slack.Listen,
		"store":            reflect.DeepEqual(cfg.Store, r.running.Store),
		"targets":          reflect.DeepEqual(cfg.Targets, r.running.Targets),
		"watch":            reflect.DeepEqual(cfg.Watch, r.running.Watch),
		"access.four_eyes": cfg.Access.FourEyes == r.running.Access.FourEyes,
	} {
		if !same {
			r.log.Warn("reload: a changed setting needs a restart to apply", "key", key)
		}
	}
}

// accessOf is the chat's access lists from the configuration.
func accessOf(cfg config.Config) commands.Access {
	return commands.Access{Responders: cfg.Access.Responders, Approvers: cfg.Access.Approvers, Admins: cfg.Access.Admins,
		Channels: cfg.Slack.Channels, FourEyes: cfg.Access.FourEyes}
}
