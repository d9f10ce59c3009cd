package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/store"
)

func newAuditCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "audit", Short: "Verify, export and show the tamper-evident audit trail"}
	var checkpointFiles []string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Walk the hash chain and name the first edited, deleted, inserted or reordered event",
		Long: `Recomputes every event's hash (HMAC-SHA256 when store.audit_key is set) and its
link to the previous event. Exit 0 when the chain is intact, 1 when it is not — the
message names the first bad sequence number and why.

With --checkpoints (the file store.checkpoints.file wrote, syslog, or an export of
the store.checkpoints.channel), the chain is also held against those signed
statements of its head, kept where the database's writer cannot reach: a deleted
tail or a rewritten head is found even when the head row was rewritten or deleted
with it. Checkpoints need the audit key.

The database is opened read-only and named in the answer; when there is none
(store.path, or its default in the XDG data directory) the exit is 1 and
nothing is created.`,
		Example: "  ndrbot audit verify\n  NDRBOT_STORE_AUDIT_KEY_FILE=/run/secrets/audit-key ndrbot audit verify --checkpoints /var/log/ndrbot/checkpoints.log",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cps []audit.Checkpoint
			for _, path := range checkpointFiles {
				got, err := readCheckpointFile(path)
				if err != nil {
					return usageErr("--checkpoints: %v", err)
				}
				cps = append(cps, got...)
			}
			cfg, _, err := g.loadConfig()
			if err != nil {
				return err
			}
			// Read-only: verifying must not create the database it is asked about
			// (an empty directory used to answer "OK: 0 events" and leave an empty
			// file), nor change one it checks.
			st, where, err := g.openReadOnly(cmd.Context(), cfg, "no audit trail to verify")
			if err != nil {
				return err
			}
			defer st.Close()
			key, err := config.ResolveSecret(cfg.Store.AuditKey, cfg.Store.AuditKeyFile)
			if err != nil {
				return &exitError{code: exitUsage, err: fmt.Errorf("store.audit_key: %w", err)}
			}
			if len(cps) > 0 && key == "" {
				return usageErr("--checkpoints: they are signed with the audit key: set store.audit_key_file")
			}
			rep, err := audit.Verify(cmd.Context(), st, []byte(key), cps...)
			if err != nil {
				return fmt.Errorf("verifying %s: %w", where, err)
			}
			fmt.Fprintf(g.io.out, "%s\ndatabase: %s\n", rep.String(), where)
			if len(checkpointFiles) > 0 && len(cps) == 0 {
				fmt.Fprintln(g.io.err, "warning: the checkpoint files hold no checkpoint")
			}
			if !rep.OK {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	verify.Flags().StringArrayVar(&checkpointFiles, "checkpoints", nil, "a file holding checkpoint lines (repeatable)")
	c.AddCommand(verify)

	var run, since, format string
	export := &cobra.Command{
		Use:   "export",
		Short: "Export audit events for a SIEM (jsonl or csv)",
		Example: "  ndrbot audit export > audit.jsonl\n  ndrbot audit export --run r-20261123-1517f9c3a2 --format csv\n" +
			"  ndrbot audit export --since 2026-11-23T00:00:00Z",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := audit.Filter{RunID: run}
			if since != "" {
				t, err := time.Parse(time.RFC3339, since)
				if err != nil {
					return usageErr("--since %q: use RFC 3339, e.g. 2026-11-23T08:00:00Z", since)
				}
				f.Since = t
			}
			if format != "jsonl" && format != "csv" {
				return usageErr("--format %q: jsonl or csv", format)
			}
			return g.withStore(cmd.Context(), func(st store.Store, _ []byte) error {
				_, err := audit.Export(cmd.Context(), g.io.out, st, f, format)
				return err
			})
		},
	}
	export.Flags().StringVar(&run, "run", "", "only this run's events")
	export.Flags().StringVar(&since, "since", "", "only events at or after this time (RFC 3339)")
	export.Flags().StringVar(&format, "format", "jsonl", "jsonl or csv")
	c.AddCommand(export)

	c.AddCommand(&cobra.Command{
		Use:     "show RUN",
		Short:   "Print one run's timeline in order",
		Example: "  ndrbot audit show r-20261123-1517f9c3a2",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withStore(cmd.Context(), func(st store.Store, _ []byte) error {
				if _, err := st.GetRun(cmd.Context(), args[0]); err != nil {
					return usageErr("%v", err)
				}
				_, err := audit.WriteTimeline(g.io.out, st.Events(cmd.Context(), audit.Filter{RunID: args[0]}), time.Local)
				return err
			})
		},
	})
	return c
}

func readCheckpointFile(path string) ([]audit.Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cps, err := audit.ReadCheckpoints(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cps, nil
}
