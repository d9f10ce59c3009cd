package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors/lab"
)

var update = flag.Bool("update", false, "rewrite testdata/terminal/*.txt from the terminal's output")

// terminalCase is one `ndrbot diagnose` whose stdout is kept as a golden file.
type terminalCase struct {
	golden string
	args   []string
}

// terminalCases: every lab scenario of every playbook, diagnosed without approval;
// then the approved reliefs whose verification shows the wait, the re-checked
// steps and what was found after.
func terminalCases() []terminalCase {
	params := map[string][]string{"smtp-421": {"domain=fabrikam.com"}}
	var cs []terminalCase
	for _, pb := range []string{"ndr-5.5.4", "smtp-421", "graph-503"} {
		for _, sc := range lab.ScenariosFor(pb) {
			cs = append(cs, terminalCase{pb + "/" + sc, append(append([]string{"diagnose", pb}, params[pb]...), "--lab", sc)})
		}
	}
	approved := []struct {
		pb, sc  string
		reliefs []string
	}{
		{"ndr-5.5.4", "overloaded-queue", []string{"restart-transport"}},
		{"ndr-5.5.4", "relief-fails", []string{"restart-transport"}},
		{"smtp-421", "concurrency-too-high", []string{"lower-per-domain-connections", "retry-queue"}},
		{"smtp-421", "destination-overloaded", []string{"suspend-queue"}},
		{"graph-503", "renewal-failing", []string{"renew-subscription"}},
	}
	for _, a := range approved {
		args := append(append([]string{"diagnose", a.pb}, params[a.pb]...), "--lab", a.sc)
		for _, r := range a.reliefs {
			args = append(args, "--approve", r)
		}
		cs = append(cs, terminalCase{a.pb + "/" + a.sc + "+approve-" + strings.Join(a.reliefs, "+"), args})
	}
	return cs
}

var runID = regexp.MustCompile(`\br-\d{8}-[0-9a-f]{6,}\b`)

// normalise makes a run's output the same from run to run: run ids and times
// vary (measured durations are fixed by elapsedText).
func normalise(s string) string {
	s = runID.ReplaceAllString(s, "r-<id>")
	return timestamp.ReplaceAllString(s, "<time>")
}

// The terminal's output for every lab scenario, compared with its golden file.
// After a deliberate change of the output or of a playbook's texts, refresh them:
//
//	go test ./cmd/bot/ -run TestTerminalGolden -update
func TestTerminalGolden(t *testing.T) {
	defer func(f func(time.Duration) string) { elapsedText = f }(elapsedText)
	elapsedText = func(time.Duration) string { return "<t>" }
	dir := filepath.Join("testdata", "terminal")
	abs, err := filepath.Abs(dir)
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, tc := range terminalCases() {
		t.Run(tc.golden, func(t *testing.T) {
			t.Chdir(t.TempDir()) // no ndrbot.yaml, and a store of its own (no cooldowns)
			r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, "", false, tc.args...)
			require.Contains(t, []int{exitHealthy, exitFindings, exitEscalation}, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
			assert.NotContains(t, r.out, "\r", "no live line when stdout is not a terminal")
			got := "$ bot " + strings.Join(tc.args, " ") + "\n" + normalise(r.out)
			path := filepath.Join(abs, tc.golden+".txt")
			seen[path] = true
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "no golden file: go test ./cmd/bot/ -run TestTerminalGolden -update")
			assert.Equal(t, string(want), got, "refresh after a deliberate change: go test ./cmd/bot/ -run TestTerminalGolden -update")
		})
	}
	// A golden file of a scenario that is gone is stale (judged only when every
	// case ran, not under -run of one).
	if len(seen) < len(terminalCases()) {
		return
	}
	files, _ := filepath.Glob(filepath.Join(abs, "*", "*.txt"))
	for _, f := range files {
		if !seen[f] {
			if *update {
				require.NoError(t, os.Remove(f))
			} else {
				t.Errorf("%s has no case (a scenario was removed?): go test ./cmd/bot/ -run TestTerminalGolden -update", f)
			}
		}
	}
}

func TestDurationText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0ms", 400 * time.Microsecond: "0ms", 12 * time.Millisecond: "12ms", 1500 * time.Millisecond: "1.5s",
		2 * time.Second: "2s", 42 * time.Second: "42s", 15 * time.Minute: "15m", 90 * time.Minute: "1h30m",
		24 * time.Hour: "24h", time.Hour + 5*time.Second: "1h0m5s", 4*time.Minute + 10*time.Second: "4m10s",
	} {
		assert.Equal(t, want, durationText(d), "%v", time.Duration(d))
	}
}

// The report's durations carry their unit, and in one convention: a key that
// holds a duration ends in _ms and holds whole milliseconds.
func TestDiagnoseJSONDurationsInMilliseconds(t *testing.T) {
	t.Chdir(t.TempDir())
	r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, "", false,
		"diagnose", "5.5.4", "--lab", "overloaded-queue", "--approve", "restart-transport", "--json")
	require.Equal(t, exitFindings, r.code, r.err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.out), &doc), r.out)
	assert.Equal(t, map[string]any{"window": "15m"}, doc["params"])

	var keys []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, v := range x {
				if path == ".steps[].rows[]" {
					continue // a step's rows are what the server answered, as it named them
				}
				if strings.Contains(k, "duration") || strings.Contains(k, "expires") || strings.HasSuffix(k, "_ms") || strings.HasSuffix(k, "_ns") {
					keys = append(keys, path+"."+k)
					assert.True(t, strings.HasSuffix(k, "_ms"), "%s.%s carries no unit", path, k)
					n, ok := v.(float64)
					assert.True(t, ok && n == float64(int64(n)) && n >= 0, "%s.%s = %v: whole milliseconds", path, k, v)
				}
				walk(path+"."+k, v)
			}
		case []any:
			for _, v := range x {
				walk(path+"[]", v)
			}
		}
	}
	walk("", doc)
	for _, k := range []string{".duration_ms", ".steps[].duration_ms", ".reliefs[].duration_ms", ".proposals[].approval.expires_ms"} {
		assert.Contains(t, keys, k)
	}
	rep := doc["proposals"].([]any)[0].(map[string]any)
	assert.Equal(t, float64(30*time.Minute/time.Millisecond), rep["approval"].(map[string]any)["expires_ms"])
}

// On a terminal, the wait before a verification counts down on one line, and
// the diagnosis shows its progress there; both are gone before the next line.
func TestDiagnoseLiveProgressAndCountdown(t *testing.T) {
	t.Chdir(t.TempDir())
	// 5m at scale 300 is a one-second wait: time for a few frames.
	r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=300"}, "", true,
		"diagnose", "5.5.4", "--lab", "overloaded-queue", "--approve", "restart-transport")
	require.Equal(t, exitFindings, r.code, r.err)
	assert.Contains(t, r.out, "running steps: 20 of 20 done")
	assert.Contains(t, r.out, "⧗ verifying restart-transport: waiting 5m for it to take effect, then re-checking failures, deferrals, queues, component, transport, mailflow\n")
	assert.Regexp(t, `\r\x1b\[K  ⧗ [1-4]m\d+s left, then re-checking failures, deferrals, queues, component, transport, mailflow`, r.out)
	assert.Empty(t, r.err, "on a terminal, progress is the live line, not stderr")
	// What stays on screen: every live line is cleared before the report goes on.
	var screen []string
	for _, line := range strings.Split(r.out, "\n") {
		if i := strings.LastIndex(line, "\r\x1b[K"); i >= 0 {
			line = line[i+len("\r\x1b[K"):]
		}
		screen = append(screen, line)
	}
	assert.NotContains(t, strings.Join(screen, "\n"), "left, then re-checking")
	assert.NotContains(t, strings.Join(screen, "\n"), "running steps:")
}
