package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

// integrityChecker is a store that can check its own file in full (SQLite's
// integrity_check); PostgreSQL checks its pages itself.
type integrityChecker interface {
	Check(ctx context.Context) error
}

func newStoreCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "store", Short: "Check the run and audit database"}
	c.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Run the database's full integrity check",
		Long: `Opening the store already runs SQLite's quick_check and refuses a damaged file;
this runs the full integrity_check (every index against its table), which reads the
whole file. Exit 0 when the database is sound, 1 when it is damaged.`,
		Example: "  ndrbot store check\n  ndrbot store check --config /etc/ndrbot/ndrbot.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := g.withStore(cmd.Context(), func(st store.Store, _ []byte) error {
				ic, ok := st.(integrityChecker)
				if !ok {
					fmt.Fprintln(g.io.out, "store OK: connected (PostgreSQL checks its own pages)")
					return nil
				}
				if err := ic.Check(cmd.Context()); err != nil {
					return err
				}
				fmt.Fprintln(g.io.out, "store OK: integrity_check found no problem")
				return nil
			})
			if errors.Is(err, sqlite.ErrCorrupt) {
				return &exitError{code: 1, err: err}
			}
			return err
		},
	})
	return c
}
