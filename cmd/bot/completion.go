package main

import (
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

// addCLIComforts adds to the built tree the commands and completions of issue 14
// item 8: `runs`, the hidden `man`, and what <TAB> offers. It runs after every
// command is built, so it attaches to commands made elsewhere without editing
// them.
func addCLIComforts(g *globals, root *cobra.Command) {
	root.AddCommand(newRunsCmd(g, root.Name()), newManCmd(g))
	// Cobra's completion command, made now rather than at Execute so that an
	// unknown shell (completion tcsh) is a usage error, not its help and exit 0.
	// It takes its output writer when made: set it first (run sets it again).
	root.SetOut(g.io.out)
	root.SetErr(g.io.err)
	root.InitDefaultCompletionCmd()
	if c := subcommand(root, "completion"); c != nil && c.Run == nil && c.RunE == nil {
		c.Args = cobra.NoArgs
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	g.registerCompletions(root)
}

func (g *globals) registerCompletions(root *cobra.Command) {
	_ = root.RegisterFlagCompletionFunc("config", yamlFiles)
	if d := subcommand(root, "diagnose"); d != nil {
		if d.ValidArgsFunction == nil {
			d.ValidArgsFunction = g.completeDiagnoseArgs
		}
		if d.Flags().Lookup("approve") != nil {
			_ = d.RegisterFlagCompletionFunc("approve", g.completeReliefs)
		}
	}
	// Every command with a lab (diagnose, serve) takes the same scenarios.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("lab") != nil {
			_ = c.RegisterFlagCompletionFunc("lab", completeScenarios)
		}
		if c.Flags().Lookup("lab-file") != nil {
			_ = c.RegisterFlagCompletionFunc("lab-file", yamlFiles)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func subcommand(root *cobra.Command, name string) *cobra.Command {
	for _, c := range root.Commands() {
		if c.Name() == name {
			return c
		}
	}
	return nil
}

// completionCatalog is the playbooks diagnose would choose from (built-in and
// playbooks.dir), loaded without a word on stderr: the shell shows it.
func (g *globals) completionCatalog() (*playbooks.Catalog, bool) {
	quiet := *g
	quiet.io.err = io.Discard
	_, cat, err := quiet.configAndIndex()
	return cat, err == nil
}

// completeDiagnoseArgs offers, first, the playbook ids and the NDR codes they
// match; then the chosen playbook's parameters as key= (and an enum's values).
func (g *globals) completeDiagnoseArgs(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	cat, ok := g.completionCatalog()
	if !ok {
		return nil, cobra.ShellCompDirectiveError
	}
	if len(args) == 0 {
		var out []cobra.Completion
		seen := map[string]bool{}
		add := func(word, desc string) {
			if !seen[word] && hasPrefixFold(word, toComplete) {
				seen[word] = true
				out = append(out, cobra.CompletionWithDesc(word, desc))
			}
		}
		for _, pb := range cat.All() {
			add(pb.ID, pb.Title)
		}
		for _, pb := range cat.All() {
			for _, m := range pb.Matches {
				if !strings.ContainsAny(m, " \t") { // phrases are for chat, not a shell word
					add(m, pb.ID)
				}
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	pb, err := cat.Resolve(args[0])
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	if key, value, ok := strings.Cut(toComplete, "="); ok {
		var out []cobra.Completion
		for _, v := range pb.Params[key].Values {
			if strings.HasPrefix(v, value) {
				out = append(out, key+"="+v)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	given := map[string]bool{}
	for _, a := range args[1:] {
		k, _, _ := strings.Cut(a, "=")
		given[k] = true
	}
	var out []cobra.Completion
	for _, name := range pb.ParamOrder {
		if !given[name] && strings.HasPrefix(name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(name+"=", pb.Params[name].Help))
		}
	}
	// No space after key=: the value comes next.
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// completeReliefs offers the reliefs of the playbook the first argument names,
// less those already approved on the line.
func (g *globals) completeReliefs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cat, ok := g.completionCatalog()
	if !ok {
		return nil, cobra.ShellCompDirectiveError
	}
	pb, err := cat.Resolve(args[0])
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	approved, _ := cmd.Flags().GetStringSlice("approve")
	var out []cobra.Completion
	for _, r := range pb.Reliefs {
		if !slices.Contains(approved, r.ID) && strings.HasPrefix(r.ID, toComplete) {
			out = append(out, cobra.CompletionWithDesc(r.ID, r.Title))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func completeScenarios(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	for _, name := range lab.ScenarioNames() {
		if strings.HasPrefix(name, toComplete) {
			out = append(out, name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeStates offers the run states; in a comma-separated list, the ones
// not yet in it after the last comma.
func completeStates(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	done, last := "", toComplete
	if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
		done, last = toComplete[:i+1], toComplete[i+1:]
	}
	listed := strings.Split(done, ",")
	var out []cobra.Completion
	for _, s := range incident.RunStates() {
		if !slices.Contains(listed, string(s)) && strings.HasPrefix(string(s), last) {
			out = append(out, done+string(s))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// yamlFiles lets the shell complete *.yaml and *.yml files (and directories).
func yamlFiles(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
