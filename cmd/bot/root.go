package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/spf13/cobra"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/registry"
	"github.com/ndrbot/ndrbot/playbooks"
)

// globals are the flags every command shares, and what it builds once.
type globals struct {
	io         stdio
	configFile string
	// kinds are the registered target kinds: the configuration, the
	// playbooks' check and the targets each read them, and describing them
	// is not free.
	kinds func() executors.Kinds
}

func newRoot(io stdio) *cobra.Command {
	g := &globals{io: io, kinds: sync.OnceValue(registry.Kinds)}
	root := &cobra.Command{
		Use:   "ndrbot",
		Short: "ndrbot — mail incident response: diagnose NDR storms, propose reliefs, escalate",
		Long: `ndrbot runs incident playbooks (ndr-5.5.4, …) against your Exchange servers over
WinRM, network probes and the built-in lab, posts what it found and proposes reliefs
that run only after approval.

Configuration comes from --config, ./ndrbot.yaml or $XDG_CONFIG_HOME/ndrbot/ndrbot.yaml,
and every key from the environment as NDRBOT_<SECTION>_<KEY>.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.configFile, "config", "", "configuration file (YAML)")
	root.AddCommand(newDiagnoseCmd(g), newServeCmd(g), newPlaybooksCmd(g), newConfigCmd(g), newAuditCmd(g), newStoreCmd(g), newVersionCmd(g))
	setVersionFlag(root) // version.go
	// completion.go: runs, man and what <TAB> offers.
	addCLIComforts(g, root)
	return root
}

// loadConfig loads and validates the configuration; problems are usage errors.
func (g *globals) loadConfig() (config.Config, string, error) {
	// Every place the configuration and the store are looked for comes from the
	// (injectable) environment, so a test's runs never reach the real home.
	wd, _ := os.Getwd() // unknown: only ./ndrbot.yaml is not looked for
	kinds, err := g.configKinds()
	if err != nil {
		return config.Config{}, "", err
	}
	opts := config.EnvLoadOptions(g.configFile, g.io.environ(), wd)
	opts.Kinds = kinds
	cfg, src, err := config.Load(opts)
	if err != nil {
		return cfg, "", &exitError{code: exitUsage, err: err}
	}
	for _, w := range src.Warnings {
		fmt.Fprintln(g.io.err, "warning: "+w)
	}
	if err := cfg.Validate(kinds); err != nil {
		return cfg, "", &exitError{code: exitUsage, err: fmt.Errorf("invalid configuration (%s):\n%w", src, err)}
	}
	for _, w := range cfg.LooseSecretFiles() {
		fmt.Fprintln(g.io.err, "warning: "+w)
	}
	return cfg, src.String(), nil
}

// configKinds is every registered kind's share of the configuration (its
// targets' defaults, keys and validation), for Load, Validate and Print.
func (g *globals) configKinds() (config.Kinds, error) {
	kinds, err := g.kinds().Config()
	if err != nil {
		// A kind registered without its spec is a build mistake (registry's tests
		// catch it): refuse rather than run with targets nobody checked.
		return nil, fmt.Errorf("target kinds: %w", err)
	}
	return kinds, nil
}

// configAndCatalog loads the configuration and the playbooks it names, as most
// commands need both.
func (g *globals) configAndCatalog() (config.Config, *playbooks.Catalog, error) {
	cfg, _, err := g.loadConfig()
	if err != nil {
		return cfg, nil, err
	}
	cat, err := g.catalog(cfg)
	return cfg, cat, err
}

// configAndIndex is configAndCatalog for a command that runs one playbook: the
// others are parsed but not compiled (see playbooks.Index).
func (g *globals) configAndIndex() (config.Config, *playbooks.Catalog, error) {
	early := playbooks.Prefetch("")
	cfg, _, err := g.loadConfig()
	if err != nil {
		return cfg, nil, err
	}
	cat, err := g.index(early, cfg)
	return cfg, cat, err
}

// index is the playbooks' Index for cfg, on what early read.
func (g *globals) index(early *playbooks.Prefetched, cfg config.Config) (*playbooks.Catalog, error) {
	cat, err := early.Index(cfg.Playbooks.Dir, cfg.TargetKinds(), g.kinds()...)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("playbooks:\n%w", err)}
	}
	return cat, nil
}

func (g *globals) catalog(cfg config.Config) (*playbooks.Catalog, error) {
	cat, err := playbooks.Load(cfg.Playbooks.Dir, cfg.TargetKinds(), g.kinds()...)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("playbooks:\n%w", err)}
	}
	return cat, nil
}

func (g *globals) logger(cfg config.Config) *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(g.io.err, opts))
	}
	return slog.New(slog.NewTextHandler(g.io.err, opts))
}

// atLeast passes on records of level min and above: the terminal's own output
// is the record of a run there, so its log shows only what goes wrong.
type atLeast struct {
	slog.Handler
	min slog.Level
}

func (h atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h atLeast) WithAttrs(as []slog.Attr) slog.Handler {
	return atLeast{h.Handler.WithAttrs(as), h.min}
}
func (h atLeast) WithGroup(name string) slog.Handler {
	return atLeast{h.Handler.WithGroup(name), h.min}
}

func newConfigCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Inspect the configuration"}
	c.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and print it with secrets redacted",
		Long: `Loads the configuration exactly as the bot would (defaults, then the file, then
NDRBOT_* environment variables), reports every problem at once with its key, and
prints the effective configuration with every secret redacted. Exit 2 on problems.`,
		Example: "  ndrbot config check\n  ndrbot --config /etc/ndrbot/ndrbot.yaml config check\n  NDRBOT_LOG_LEVEL=debug ndrbot config check",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, src, err := g.loadConfig()
			if err != nil {
				return err
			}
			if _, err := g.catalog(cfg); err != nil {
				return err
			}
			kinds, err := g.configKinds()
			if err != nil {
				return err
			}
			fmt.Fprintf(g.io.out, "# configuration OK (source: %s)\n", src)
			return cfg.Print(g.io.out, kinds)
		},
	})
	return c
}
