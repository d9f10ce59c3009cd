package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

type runsListFlags struct {
	states []string
	since  string
	limit  int
	json   bool
}

// newRunsCmd is `runs`; name is the root command's, for the examples.
func newRunsCmd(g *globals, name string) *cobra.Command {
	c := &cobra.Command{Use: "runs", Short: "Look at the runs in the store", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	f := &runsListFlags{}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the runs, newest first",
		Long: `Lists the runs in the store, newest first: id, playbook, state, who asked for it,
from where (cli, slack, watch, …) and when it was created, in UTC.

--state keeps the runs in any of the states given (repeat it or separate them
with commas). --since keeps the runs created at or after a time: a duration back
from now (30m, 24h, 7d, 1d12h; a day is 24 hours) or an RFC 3339 time.

The store is opened read-only where the backend allows it (SQLite), and a
database that is not there is an error (exit 1), not an empty list: nothing is
created.`,
		Example: fmt.Sprintf(`  %[1]s runs list
  %[1]s runs list --state escalated,interrupted --since 7d
  %[1]s runs list --since 2026-11-23T00:00:00Z --limit 200 --json`, name),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := f.filter(time.Now())
			if err != nil {
				return err
			}
			return g.listRuns(cmd.Context(), filter, f.json)
		},
	}
	list.Flags().StringSliceVar(&f.states, "state", nil, "only runs in this state (repeatable, or comma-separated): "+strings.Join(stateNames(), ", "))
	list.Flags().StringVar(&f.since, "since", "", "only runs created at or after this: a duration back from now (30m, 24h, 7d) or an RFC 3339 time")
	list.Flags().IntVar(&f.limit, "limit", 50, "at most this many runs")
	list.Flags().BoolVar(&f.json, "json", false, "print the runs as a JSON array")
	_ = list.RegisterFlagCompletionFunc("state", completeStates) // completion.go
	c.AddCommand(list)
	return c
}

// filter checks the flags (each problem is a usage error) and turns them into
// the store's filter; now anchors a relative --since.
func (f *runsListFlags) filter(now time.Time) (store.RunFilter, error) {
	rf := store.RunFilter{Limit: f.limit}
	if f.limit < 1 {
		return rf, usageErr("--limit %d: give at least 1", f.limit)
	}
	for _, s := range f.states {
		st := incident.RunState(strings.TrimSpace(s))
		if !st.Valid() {
			return rf, usageErr("--state %q: not a run state; the states are %s", s, strings.Join(stateNames(), ", "))
		}
		rf.States = append(rf.States, st)
	}
	if f.since != "" {
		t, err := parseSince(f.since, now)
		if err != nil {
			return rf, usageErr("--since %q: %v", f.since, err)
		}
		rf.Since = t
	}
	return rf, nil
}

func stateNames() []string {
	var out []string
	for _, s := range incident.RunStates() {
		out = append(out, string(s))
	}
	return out
}

// parseSince reads --since: an RFC 3339 time, or a duration back from now in
// Go's syntax with whole days allowed in front (7d, 1d12h), since "how far back"
// is most often counted in days.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var back time.Duration
	rest := s
	if days, after, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*366 {
			return time.Time{}, errors.New("want a duration (30m, 24h, 7d) or an RFC 3339 time (2026-11-23T08:00:00Z)")
		}
		back, rest = time.Duration(n)*24*time.Hour, after
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return time.Time{}, errors.New("want a duration (30m, 24h, 7d) or an RFC 3339 time (2026-11-23T08:00:00Z)")
		}
		if d < 0 {
			return time.Time{}, errors.New("a duration back from now cannot be negative")
		}
		back += d
	}
	return now.Add(-back), nil
}

// runLister is what `runs list` needs of the store.
type runLister interface {
	ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error)
	Close() error
}

func (g *globals) listRuns(ctx context.Context, f store.RunFilter, asJSON bool) error {
	cfg, _, err := g.loadConfig()
	if err != nil {
		return err
	}
	st, err := g.openStoreReadOnly(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	runs, err := st.ListRuns(ctx, f)
	if err != nil {
		return fmt.Errorf("list runs: %w", err)
	}
	if asJSON {
		if runs == nil {
			runs = []store.Run{} // [] rather than null for jq and friends
		}
		enc := json.NewEncoder(g.io.out)
		enc.SetIndent("", "  ")
		return enc.Encode(runs)
	}
	if len(runs) == 0 {
		fmt.Fprintln(g.io.err, "no runs match")
		return nil
	}
	tw := tabwriter.NewWriter(g.io.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPLAYBOOK\tSTATE\tREQUESTER\tORIGIN\tCREATED (UTC)")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Playbook, r.State, r.Requester, r.Origin,
			r.CreatedAt.UTC().Format("2006-01-02 15:04:05"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(runs) == f.Limit {
		fmt.Fprintf(g.io.err, "(the newest %d; --limit for more)\n", f.Limit)
	}
	return nil
}

// openStoreReadOnly opens the configured store for reading: SQLite read-only and
// only when the file is there (an empty directory is exit 1 and creates nothing,
// as `audit verify`); PostgreSQL as openStore does.
func (g *globals) openStoreReadOnly(ctx context.Context, cfg config.Config) (runLister, error) {
	st, _, err := g.openReadOnly(ctx, cfg, "no runs to list")
	if err != nil {
		return nil, err
	}
	return st, nil
}
