package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/store"
)

// `runs list` over a store with one finished and one escalated run (made by two
// lab diagnoses): every filter, both formats, the refusals, and a database file
// left exactly as it was.
func TestRunsList(t *testing.T) {
	t.Chdir(t.TempDir())
	env := []string{"NDRBOT_LAB_TIME_SCALE=3000"}
	// Recorded in the configured store, which runs list reads.
	first := bot(t, env, "", false, "diagnose", "4.4.0", "--lab", "healthy", "--lab-store", storeFile)
	require.Equal(t, exitHealthy, first.code, first.err)
	escalated := bot(t, env, "", false, "diagnose", "5.5.4", "--lab", "network-down", "--lab-store", storeFile)
	require.Equal(t, exitEscalation, escalated.code, escalated.err)
	finishedID := runIDRE.FindStringSubmatch(first.out)[1]
	escalatedID := runIDRE.FindStringSubmatch(escalated.out)[1]
	before, err := os.ReadFile(storeFile)
	require.NoError(t, err)

	tests := []struct {
		name    string
		args    []string
		code    int
		ids     []string // the table's rows, in order
		errWant string
	}{
		{"all, newest first", nil, 0, []string{escalatedID, finishedID}, ""},
		{"one state", []string{"--state", "escalated"}, 0, []string{escalatedID}, ""},
		{"states comma-separated", []string{"--state", "finished,escalated"}, 0, []string{escalatedID, finishedID}, ""},
		{"states repeated", []string{"--state", "finished", "--state", "interrupted"}, 0, []string{finishedID}, ""},
		{"since a duration", []string{"--since", "1h"}, 0, []string{escalatedID, finishedID}, ""},
		{"since in days", []string{"--since", "7d"}, 0, []string{escalatedID, finishedID}, ""},
		{"since a time after both", []string{"--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, 0, nil, "no runs match"},
		{"limit", []string{"--limit", "1"}, 0, []string{escalatedID}, "--limit for more"},
		{"unknown state", []string{"--state", "finshed"}, exitUsage, nil,
			`--state "finshed": not a run state; the states are diagnosing, awaiting-approval, relieving, verifying, finished, escalated, interrupted, recovered`},
		{"bad since", []string{"--since", "forever"}, exitUsage, nil, `--since "forever": want a duration (30m, 24h, 7d) or an RFC 3339 time`},
		{"negative since", []string{"--since=-1h"}, exitUsage, nil, "cannot be negative"},
		{"limit below 1", []string{"--limit", "0"}, exitUsage, nil, "--limit 0"},
		{"an argument", []string{"r-20261123-1517f9c3a2"}, exitUsage, nil, "unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bot(t, nil, "", false, append([]string{"runs", "list"}, tc.args...)...)
			require.Equal(t, tc.code, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
			assert.Contains(t, r.err, tc.errWant)
			if tc.code != 0 {
				assert.Empty(t, r.out)
				return
			}
			rows := tableRows(t, r.out)
			var ids []string
			for _, row := range rows {
				ids = append(ids, row["ID"])
			}
			assert.Equal(t, tc.ids, ids)
			for _, row := range rows {
				assert.Equal(t, "cli:tester", row["REQUESTER"])
				assert.Equal(t, "cli", row["ORIGIN"])
				assert.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`, row["CREATED (UTC)"])
				want := "finished"
				if row["ID"] == escalatedID {
					want = "escalated"
				}
				assert.Equal(t, want, row["STATE"])
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		r := bot(t, nil, "", false, "runs", "list", "--json", "--state", "escalated")
		require.Equal(t, 0, r.code, r.err)
		var runs []store.Run
		require.NoError(t, json.Unmarshal([]byte(r.out), &runs), r.out)
		require.Len(t, runs, 1)
		assert.Equal(t, escalatedID, runs[0].ID)
		assert.Equal(t, "ndr-5.5.4", runs[0].Playbook)
		assert.Equal(t, "escalated", string(runs[0].State))

		none := bot(t, nil, "", false, "runs", "list", "--json", "--state", "recovered")
		require.Equal(t, 0, none.code, none.err)
		assert.JSONEq(t, "[]", none.out, "no runs is an empty array, not null")
	})

	typo := bot(t, nil, "", false, "runs", "lsit")
	assert.Equal(t, exitUsage, typo.code, "a mistyped subcommand is not the help and exit 0")

	after, err := os.ReadFile(storeFile)
	require.NoError(t, err)
	assert.Equal(t, before, after, "listing changed nothing in the database")
}

// tableRows reads the aligned table: each cell is taken at its header's column.
func tableRows(t *testing.T, out string) []map[string]string {
	t.Helper()
	if out == "" {
		return nil
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	headers := []string{"ID", "PLAYBOOK", "STATE", "REQUESTER", "ORIGIN", "CREATED (UTC)"}
	var cols []int
	for _, h := range headers {
		i := strings.Index(lines[0], h)
		require.GreaterOrEqual(t, i, 0, "header %q in %q", h, lines[0])
		cols = append(cols, i)
	}
	var rows []map[string]string
	for _, line := range lines[1:] {
		row := map[string]string{}
		for i, h := range headers {
			end := len(line)
			if i+1 < len(cols) {
				end = cols[i+1]
			}
			require.Greater(t, end, cols[i], "row %q shorter than its header", line)
			if i > 0 {
				assert.Equal(t, byte(' '), line[cols[i]-1], "column %s starts at its header in %q", h, line)
			}
			row[h] = strings.TrimSpace(line[cols[i]:end])
		}
		rows = append(rows, row)
	}
	return rows
}

// Listing in a directory without a database is an error and creates nothing,
// default path or configured.
func TestRunsListWithoutADatabase(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		file string // where the message says it looked
	}{
		{"default path", nil, storeFile}, // testEnv's $XDG_DATA_HOME is the working directory
		{"store.path", []string{"NDRBOT_STORE_PATH=state/bot.db"}, filepath.Join("state", "bot.db")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			r := bot(t, tc.env, "", false, "runs", "list")
			assert.Equal(t, 1, r.code, r.out)
			assert.Contains(t, r.err, "no database at "+filepath.Join(dir, tc.file))
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "nothing created")
		})
	}
}

func TestRunsParseSince(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"30m", now.Add(-30 * time.Minute), false},
		{"24h", now.Add(-24 * time.Hour), false},
		{"7d", now.Add(-7 * 24 * time.Hour), false},
		{"1d12h", now.Add(-36 * time.Hour), false},
		{"0d", now, false},
		{"2026-11-23T08:00:00Z", time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC), false},
		{"2026-11-23T09:00:00+01:00", time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC), false},
		{"forever", time.Time{}, true},
		{"d", time.Time{}, true},
		{"-1d", time.Time{}, true},
		{"-2h", time.Time{}, true},
		{"1d-2h", time.Time{}, true},
		{"7 days", time.Time{}, true},
		{"2026-11-23", time.Time{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSince(tc.in, now)
			if tc.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.True(t, tc.want.Equal(got), "got %s, want %s", got, tc.want)
		})
	}
}
