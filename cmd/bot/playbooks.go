package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ndrbot/ndrbot/playbooks"
)

func newPlaybooksCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "playbooks", Short: "List, lint and test playbooks, and list the permissions they need", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	c.AddCommand(&cobra.Command{
		Use:     "list",
		Short:   "List the playbooks (built-in and from playbooks.dir)",
		Example: "  bot playbooks list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := g.loadConfig()
			if err != nil {
				return err
			}
			cat, err := g.catalog(cfg)
			if err != nil {
				return err
			}
			for _, pb := range cat.All() {
				fmt.Fprintf(g.io.out, "%-12s %s\n             matches: %s\n             source: %s (version %s)\n",
					pb.ID, pb.Title, strings.Join(pb.Matches, ", "), pb.Source, pb.Version)
			}
			return nil
		},
	})
	c.AddCommand(&cobra.Command{
		Use:   "lint [DIR|FILE]",
		Short: "Check playbooks: unknown targets, steps or reliefs, rules that don't compile, missing approval policies, cycles",
		Long: `Without an argument, lints the built-in playbooks and playbooks.dir together.
With DIR or FILE, lints those files on their own. Targets are checked against the
configuration. Every problem is printed as file:line: message; exit 2 when any.`,
		Example: "  bot playbooks lint\n  bot playbooks lint ./my-playbooks\n  bot playbooks lint ./my-playbooks/ndr-5.5.4.yaml",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := g.loadConfig()
			if err != nil {
				return err
			}
			if len(args) == 0 {
				cat, err := g.catalog(cfg)
				if err != nil {
					return err
				}
				fmt.Fprintf(g.io.out, "%d playbooks OK\n", len(cat.All()))
				return nil
			}
			n, err := playbooks.LintDir(args[0], cfg.TargetKinds())
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			fmt.Fprintf(g.io.out, "%d playbook files OK\n", n)
			return nil
		},
	})
	c.AddCommand(newPermissionsCmd(g))
	return c
}

func newPermissionsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "permissions [PLAYBOOK…]",
		Short: "List, per playbook, each cmdlet and parameter it calls: what to grant the bot's account",
		Long: `For each playbook (all by default), lists every cmdlet its steps, previews and
reliefs call, with the parameters passed and the targets they run on. Read-only
cmdlets come first; the relief cmdlets change something and need the separate
relief role (deploy/rbac) or JEA role capability (deploy/jea). Use it to audit
the grant: nothing the bot runs is missing from this list.`,
		Example: "  bot playbooks permissions\n  bot playbooks permissions ndr-5.5.4 --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := g.loadConfig()
			if err != nil {
				return err
			}
			cat, err := g.catalog(cfg)
			if err != nil {
				return err
			}
			pbs := cat.All()
			if len(args) > 0 {
				pbs = nil
				for _, id := range args {
					pb, err := cat.Resolve(id)
					if err != nil {
						return &exitError{code: exitUsage, err: err}
					}
					pbs = append(pbs, pb)
				}
			}
			return printPermissions(g.io.out, pbs, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printPermissions(w io.Writer, pbs []*playbooks.Playbook, asJSON bool) error {
	if asJSON {
		type entry struct {
			Playbook    string                 `json:"playbook"`
			Permissions []playbooks.Permission `json:"permissions"`
		}
		var out []entry
		for _, pb := range pbs {
			out = append(out, entry{Playbook: pb.ID, Permissions: pb.Permissions()})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for _, pb := range pbs {
		fmt.Fprintf(w, "%s (%s)\n", pb.ID, pb.Source)
		perms := pb.Permissions()
		if len(perms) == 0 {
			fmt.Fprintln(w, "  no cmdlets (scripts and checks only)")
		}
		for _, p := range perms {
			kind := "reads  "
			if p.Changes {
				kind = "changes"
			}
			params := "(no parameters)"
			if len(p.Params) > 0 {
				params = "-" + strings.Join(p.Params, " -")
			}
			fmt.Fprintf(w, "  %s %-28s %s\n          on %s; used by %s\n", kind, p.Cmdlet, params,
				strings.Join(p.Targets, ", "), strings.Join(p.UsedBy, ", "))
		}
	}
	return nil
}
