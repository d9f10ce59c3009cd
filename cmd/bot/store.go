package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
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

// storeBackend says where the configured store is. config.Load has resolved an
// unset store.path (systemd's state directory, else the XDG data directory);
// when it could not, the bot refuses rather than fall back to the working
// directory, where a database moves with cd.
func storeBackend(cfg config.Config) (backends.Config, error) {
	dsn, err := config.ResolveSecret(cfg.Store.DSN, cfg.Store.DSNFile)
	if err != nil {
		return backends.Config{}, &exitError{code: exitUsage, err: fmt.Errorf("store.dsn: %w", err)}
	}
	bc := backends.Config{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: dsn}
	if isPostgres(cfg.Store.Driver) {
		return bc, nil
	}
	if bc.Path == "" {
		return bc, usageErr("store.path: no place for the SQLite database: none of $STATE_DIRECTORY, $XDG_DATA_HOME and $HOME is set; set store.path (or %s)",
			config.EnvName("store.path"))
	}
	if abs, err := filepath.Abs(bc.Path); err == nil {
		bc.Path = abs // messages name the file whatever the working directory
	}
	return bc, nil
}

func isPostgres(driver string) bool { return driver == "postgres" || driver == "postgresql" }

// openStore opens the configured store with the audit key and a redactor that
// knows every secret of the configuration, so none reaches the audit trail.
// SQLite creates a missing database, in a directory made 0700.
func (g *globals) openStore(ctx context.Context, cfg config.Config) (store.Store, []byte, error) {
	return g.openBackend(ctx, cfg, nil)
}

// openBackend opens the store cfg names; scratch, when set: that throw-away
// store in memory instead (sqlite.StartScratch), with cfg's audit key and
// secrets.
func (g *globals) openBackend(ctx context.Context, cfg config.Config, scratch *backends.Scratch) (store.Store, []byte, error) {
	bc := backends.Config{Driver: "sqlite", Scratch: scratch}
	if scratch == nil {
		var err error
		if bc, err = storeBackend(cfg); err != nil {
			return nil, nil, err
		}
	}
	key, err := config.ResolveSecret(cfg.Store.AuditKey, cfg.Store.AuditKeyFile)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: fmt.Errorf("store.audit_key: %w", err)}
	}
	secrets, err := secretValues(cfg)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: err}
	}
	st, err := backends.Open(ctx, bc, store.Options{AuditKey: []byte(key), Redactor: audit.NewRedactor(secrets...)})
	if err != nil {
		return nil, nil, fmt.Errorf("store (%s): %w", cmp.Or(cfg.Store.Driver, "sqlite"), err)
	}
	return st, []byte(key), nil
}

// openRunStore opens the store a diagnosis or `ndrbot serve` records its runs in:
// the configured one, or, for a lab run (--lab, --lab-file), a store of the lab's
// own, so a simulated restart puts no real run under a cooldown and nothing of the
// lab lands in the real audit trail. That store is held in memory and gone when
// the returned close runs (sqlite.StartScratch), or is the file --lab-store
// names, kept across runs for a trainer or a test.
//
// --lab-store configured uses the configured store after all: for a
// configuration that is itself a lab's, e.g. lab replicas sharing a PostgreSQL.
//
// A throw-away lab store also turns off cfg's checkpoints: they would anchor a
// trail that is deleted at exit, and, written beside the real trail's, read as a
// rewrite to `audit verify --checkpoints`. A store named by --lab-store is the
// operator's to anchor as configured.
//
// scratch is the throw-away store's database if the caller began it already
// (backends.StartScratch), and stays the caller's to discard; nil begins one.
func (g *globals) openRunStore(ctx context.Context, cfg *config.Config, lf labFlags, scratch *backends.Scratch) (runStore, error) {
	if !lf.set() || lf.store == labStoreConfigured {
		st, key, err := g.openStore(ctx, *cfg)
		if err != nil {
			return runStore{}, err
		}
		return runStore{st, key, func() { st.Close() }}, nil
	}
	labCfg := *cfg
	labCfg.Store.Driver, labCfg.Store.DSN, labCfg.Store.DSNFile = "sqlite", "", ""
	if lf.store != "" {
		labCfg.Store.Path = lf.store
		st, key, err := g.openStore(ctx, labCfg)
		if err != nil {
			return runStore{}, err
		}
		return runStore{st, key, func() { st.Close() }}, nil
	}
	if scratch == nil {
		scratch = backends.StartScratch(ctx)
		defer scratch.Discard()
	}
	st, key, err := g.openBackend(ctx, labCfg, scratch)
	if err != nil {
		return runStore{}, err
	}
	cfg.Store.Checkpoints.File, cfg.Store.Checkpoints.Channel = "", ""
	return runStore{st, key, func() { st.Close() }}, nil
}

// runStore is an open run store and what closes it (openRunStore).
type runStore struct {
	st    store.Store
	key   []byte
	close func()
}

// throwAway reports whether lf's runs go to a throw-away store (openRunStore).
func (lf labFlags) throwAway() bool { return lf.set() && lf.store == "" }

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

// openReadOnly opens the configured store for a command that only reads it
// (`audit verify`, `runs list`), and says which database it is. SQLite is
// opened read-only (mode=ro) and only when the file is there: a missing one is
// exit 1 with "no database at PATH: …" + missing, and nothing is created, not
// even its directory. PostgreSQL is opened as openStore does.
func (g *globals) openReadOnly(ctx context.Context, cfg config.Config, missing string) (store.Store, string, error) {
	bc, err := storeBackend(cfg)
	if err != nil {
		return nil, "", err
	}
	where := bc.Path
	if isPostgres(bc.Driver) {
		where = "PostgreSQL (store.dsn)"
	}
	st, err := backends.OpenReadOnly(ctx, bc, store.Options{})
	from := ""
	if o := cfg.Origin("store.path"); o != "" && o != "default" {
		from = ": " + o
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, where, &exitError{code: 1, err: fmt.Errorf("no database at %s (store.path%s): %s", where, from, missing)}
	case errors.Is(err, backends.ErrEmpty):
		// Not "OK: 0 events": a database emptied by someone reads the same.
		return nil, where, &exitError{code: 1, err: fmt.Errorf("the database at %s (store.path%s) is empty: created, never written (or emptied): %s", where, from, missing)}
	}
	if err != nil {
		return nil, where, fmt.Errorf("store (%s): %w", cmp.Or(cfg.Store.Driver, "sqlite"), err)
	}
	return st, where, nil
}

// simulation builds the lab for --lab (nil without it) and the wait scale that
// goes with it. playbook, when set, must be the scenario's playbook.
func simulation(cfg config.Config, lf labFlags, playbook string) (*lab.Lab, float64, error) {
	if lf.store != "" && !lf.set() {
		return nil, 0, usageErr("--lab-store is for a lab run: add --lab SCENARIO or --lab-file FILE (without them the configured store is used)")
	}
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

// labBuild is a lab being built in the background for the playbook a command
// chose by its matches, while that playbook is checked: neither
// needs the other until the lab is used. A nil *labBuild builds nothing.
type labBuild struct {
	playbook string
	done     chan struct{}
	lab      *lab.Lab
	scale    float64
	err      error
}

// startSimulation starts simulation(cfg, lf, playbook) in the background.
func startSimulation(cfg config.Config, lf labFlags, playbook string) *labBuild {
	b := &labBuild{playbook: playbook, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.lab, b.scale, b.err = simulation(cfg, lf, playbook)
	}()
	return b
}

// wait waits for the build, if one was started; every command that starts one
// waits for it before it returns.
func (b *labBuild) wait() {
	if b != nil {
		<-b.done
	}
}

// result is the lab for playbook: the one built in the background when it was
// built for playbook, else simulation(cfg, lf, playbook).
func (b *labBuild) result(cfg config.Config, lf labFlags, playbook string) (*lab.Lab, float64, error) {
	b.wait()
	if b == nil || b.playbook != playbook {
		return simulation(cfg, lf, playbook)
	}
	return b.lab, b.scale, b.err
}

// labStoreConfigured is the --lab-store value that sends lab runs to the
// configured store.
const labStoreConfigured = "configured"

// labFlags choose a simulated organisation instead of real servers: a built-in
// scenario (--lab) or an organisation file (--lab-file), and the store its runs
// go to (--lab-store; empty: a throw-away one, see openRunStore).
type labFlags struct {
	scenario, file, store string
}

func (lf *labFlags) register(fs *pflag.FlagSet, what string) {
	fs.StringVar(&lf.scenario, "lab", "", what+": a built-in lab scenario (ndrbot diagnose --help lists them)")
	fs.StringVar(&lf.file, "lab-file", "", what+": an organisation file (executors/lab/ORGFILE.md)")
	fs.StringVar(&lf.store, "lab-store", "", "with --lab or --lab-file: keep the lab's runs, cooldowns and audit trail in this SQLite file "+
		"across runs, or in the configured store with \""+labStoreConfigured+"\" (default: a throw-away store, removed at exit)")
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
