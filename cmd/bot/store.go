package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/spf13/pflag"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/backends"
)

// openStore opens the configured store with the audit key and a redactor that
// knows every secret of the configuration, so none reaches the audit trail.
func (g *globals) openStore(ctx context.Context, cfg config.Config) (store.Store, []byte, error) {
	dsn, err := config.ResolveSecret(cfg.Store.DSN, cfg.Store.DSNFile)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: fmt.Errorf("store.dsn: %w", err)}
	}
	key, err := config.ResolveSecret(cfg.Store.AuditKey, cfg.Store.AuditKeyFile)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: fmt.Errorf("store.audit_key: %w", err)}
	}
	secrets, err := secretValues(cfg)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: err}
	}
	st, err := backends.Open(ctx, backends.Config{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: dsn},
		store.Options{AuditKey: []byte(key), Redactor: audit.NewRedactor(secrets...)})
	if err != nil {
		return nil, nil, fmt.Errorf("store (%s): %w", cfg.Store.Driver, err)
	}
	return st, []byte(key), nil
}

// withStore loads the configuration, opens the store for fn and closes it after.
func (g *globals) withStore(ctx context.Context, fn func(st store.Store, auditKey []byte) error) error {
	cfg, _, err := g.loadConfig()
	if err != nil {
		return err
	}
	st, key, err := g.openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st, key)
}

// simulation builds the lab for --lab (nil without it) and the wait scale that
// goes with it. playbook, when set, must be the scenario's playbook.
func simulation(cfg config.Config, lf labFlags, playbook string) (*lab.Lab, float64, error) {
	opts := lab.Options{Latency: cfg.Lab.Latency, Playbook: playbook}
	var (
		l   *lab.Lab
		err error
	)
	switch {
	case lf.scenario != "" && lf.file != "":
		return nil, 0, usageErr("--lab and --lab-file: give one (a built-in scenario, or an organisation file)")
	case lf.scenario != "":
		l, err = lab.New(lf.scenario, opts)
	case lf.file != "":
		var data []byte
		if data, err = os.ReadFile(lf.file); err != nil {
			err = fmt.Errorf("--lab-file: %w", err)
		} else {
			opts.Bases = os.DirFS(filepath.Dir(lf.file))
			l, err = lab.ParseOrg(lf.file, data, opts)
		}
	default:
		return nil, 1, nil
	}
	if err != nil {
		return nil, 0, usageErr("%v", err)
	}
	return l, cfg.Lab.TimeScale, nil
}

// labFlags choose a simulated organisation instead of real servers: a built-in
// scenario (--lab) or an organisation file (--lab-file).
type labFlags struct {
	scenario, file string
}

func (lf *labFlags) register(fs *pflag.FlagSet, what string) {
	fs.StringVar(&lf.scenario, "lab", "", what+": a built-in lab scenario (bot diagnose --help lists them)")
	fs.StringVar(&lf.file, "lab-file", "", what+": an organisation file (executors/lab/ORGFILE.md)")
}

// set reports whether a lab was asked for.
func (lf labFlags) set() bool { return lf.scenario != "" || lf.file != "" }

// name is the scenario or the file, for headers and the audit trail.
func (lf labFlags) name() string { return cmp.Or(lf.scenario, lf.file) }

// flag repeats the choice as a command-line flag.
func (lf labFlags) flag() string {
	if lf.file != "" {
		return "--lab-file " + lf.file
	}
	return "--lab " + lf.scenario
}

// secretValues collects every secret of the configuration — set directly or read
// from its *_file — for redaction.
func secretValues(cfg config.Config) ([]string, error) {
	var out []string
	for _, r := range cfg.Secrets() {
		if r.KeyFile {
			continue // binary key material: nothing a log line could echo
		}
		val, err := config.ResolveSecret(r.Value, r.File)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Key, err)
		}
		if val != "" {
			out = append(out, val)
		}
	}
	return out, nil
}

// processOwner names this process, run by actor, for leases and claims.
func processOwner(actor incident.Actor) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s:%d", actor.ID, host, os.Getpid())
}
