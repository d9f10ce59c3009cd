package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/playbooks/cases"
)

func newPlaybooksCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "playbooks", Short: "List, lint and test playbooks, and list the permissions they need", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	c.AddCommand(&cobra.Command{
		Use:     "list",
		Short:   "List the playbooks (built-in and from playbooks.dir)",
		Example: "  ndrbot playbooks list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, cat, err := g.configAndCatalog()
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
		Short: "Check playbooks: unknown targets, steps, reliefs, checks or cmdlet parameters, rules that don't compile or read fields no row has, missing approval policies, cycles",
		Long: `Without an argument, lints the built-in playbooks and playbooks.dir together.
With DIR or FILE, lints those files on their own. Targets are checked against the
configuration, and what each step runs against its target's kind as the kind
describes itself: its checks and their arguments, its cmdlets' parameters and
properties, and the fields of the rows each step returns, which rules read.
Every problem is printed as file:line: message; exit 2 when any.`,
		Example: "  ndrbot playbooks lint\n  ndrbot playbooks lint ./my-playbooks\n  ndrbot playbooks lint ./my-playbooks/ndr-5.5.4.yaml",
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
			n, err := playbooks.LintDir(args[0], cfg.TargetKinds(), g.kinds()...)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			fmt.Fprintf(g.io.out, "%d playbook files OK\n", n)
			return nil
		},
	})
	c.AddCommand(newPermissionsCmd(g), newCasesCmd(g))
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
		Example: "  ndrbot playbooks permissions\n  ndrbot playbooks permissions ndr-5.5.4 --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			_, cat, err := g.configAndCatalog()
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

func newCasesCmd(g *globals) *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test [DIR|FILE]",
		Short: "Run playbook cases against the lab: an organisation file, parameters, and the findings, proposals and escalations expected",
		Long: `Runs each case (a YAML file: playbook, org, params, expect, and optionally reliefs
to approve and what must hold after their verification) against a fresh lab built
from its organisation file, with the playbook's waits scaled down. Without DIR it
runs the built-in playbooks' own cases. Playbooks come from the built-ins and
playbooks.dir, as for diagnose. The case format is in playbooks/cases/README.md.
Exit 0 when every case passes, 1 when one fails, 2 on a bad case file.`,
		Example: "  ndrbot playbooks test\n  ndrbot playbooks test ./cases\n  ndrbot playbooks test ./cases/ndr-5.5.4/overloaded-queue.yaml -v",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, cat, err := g.configAndCatalog()
			if err != nil {
				return err
			}
			var all []cases.Case
			if len(args) == 0 {
				all, err = cases.Builtin()
			} else {
				all, err = cases.Load(args[0])
			}
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			if len(all) == 0 {
				return usageErr("no cases (*.yaml) in %s", args[0])
			}
			opts := cases.Options{Kinds: cfg.TargetKinds()}
			passed := 0
			for _, c := range all {
				res := cases.Run(cmd.Context(), c, cat, opts)
				mark := "PASS"
				if res.Passed {
					passed++
				} else {
					mark = "FAIL"
				}
				fmt.Fprintf(g.io.out, "%s %s (%s)\n", mark, c.Name, shortDuration(res.Duration))
				for _, f := range res.Failures {
					fmt.Fprintf(g.io.out, "     %s\n", f)
				}
				if verbose && res.Run != nil {
					for _, f := range res.Run.Findings() {
						fmt.Fprintf(g.io.out, "     found %s: %s\n", f.Rule, f.Text)
					}
					for _, p := range res.Run.Proposals() {
						fmt.Fprintf(g.io.out, "     proposed %s on %s\n", p.Relief, strings.Join(p.Hosts, ", "))
					}
					for _, e := range res.Run.Escalations() {
						fmt.Fprintf(g.io.out, "     escalated %s\n", e.Rule)
					}
				}
			}
			fmt.Fprintf(g.io.out, "cases: %d of %d passed\n", passed, len(all))
			if passed < len(all) {
				return &exitError{code: exitFindings, err: fmt.Errorf("%d case(s) failed", len(all)-passed)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also list what each case's run found, proposed and escalated")
	return cmd
}

// shortDuration prints 1.2s, 35ms, 12µs.
func shortDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}
