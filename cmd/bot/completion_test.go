package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/executors/registry"
	"github.com/ndrbot/ndrbot/playbooks"
)

// complete asks the tree what <TAB> offers after args, the way every shell's
// script does (the hidden __complete command), and returns the words (without
// their descriptions) and the directive.
func complete(t *testing.T, args ...string) ([]string, cobra.ShellCompDirective) {
	t.Helper()
	r := bot(t, nil, "", false, append([]string{cobra.ShellCompRequestCmd}, args...)...)
	require.Equal(t, 0, r.code, r.err)
	lines := strings.Split(strings.TrimRight(r.out, "\n"), "\n")
	last := lines[len(lines)-1]
	require.True(t, strings.HasPrefix(last, ":"), "the directive closes the answer: %q", r.out)
	d, err := strconv.Atoi(last[1:])
	require.NoError(t, err)
	var words []string
	for _, l := range lines[:len(lines)-1] {
		w, _, _ := strings.Cut(l, "\t")
		words = append(words, w)
	}
	return words, cobra.ShellCompDirective(d)
}

func TestCompletions(t *testing.T) {
	t.Chdir(t.TempDir()) // the built-in playbooks, no ndrbot.yaml
	cat, err := playbooks.Index("", nil, registry.Kinds()...)
	require.NoError(t, err)
	reliefs := func(code string) []string {
		pb, err := cat.Resolve(code)
		require.NoError(t, err)
		var ids []string
		for _, r := range pb.Reliefs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	without := func(list []string, drop string) []string {
		return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return s == drop })
	}
	noFile := cobra.ShellCompDirectiveNoFileComp
	yaml := []string{"yaml", "yml"}

	tests := []struct {
		name     string
		args     []string
		want     []string // exactly these, in this order (nil: see contains)
		contains []string
		absent   []string
		dir      cobra.ShellCompDirective
	}{
		{name: "playbook ids and NDR codes", args: []string{"diagnose", ""},
			contains: []string{"ndr-5.5.4", "smtp-421", "5.5.4", "4.4.0", "4.3.2"}, absent: []string{"service unavailable"}, dir: noFile},
		{name: "codes by prefix", args: []string{"diagnose", "5.5"}, want: []string{"5.5.4"}, dir: noFile},
		{name: "ids by prefix, any case", args: []string{"diagnose", "NDR-5.5"}, want: []string{"ndr-5.5.4"}, dir: noFile},
		{name: "the playbook's parameters", args: []string{"diagnose", "5.5.4", ""},
			want: []string{"sender=", "probe_address=", "window="}, dir: noFile | cobra.ShellCompDirectiveNoSpace},
		{name: "parameters not yet given", args: []string{"diagnose", "5.5.4", "sender=alice@contoso.com", ""},
			want: []string{"probe_address=", "window="}, dir: noFile | cobra.ShellCompDirectiveNoSpace},
		{name: "reliefs of ndr-5.5.4", args: []string{"diagnose", "5.5.4", "--approve", ""},
			want: reliefs("5.5.4"), contains: []string{"restart-transport"}, dir: noFile},
		{name: "reliefs of the playbook named, by id", args: []string{"diagnose", "smtp-421", "--approve", ""},
			want: reliefs("smtp-421"), absent: []string{"restart-transport"}, dir: noFile},
		{name: "reliefs not yet approved", args: []string{"diagnose", "5.5.4", "--approve", "restart-transport", "--approve", ""},
			want: without(reliefs("5.5.4"), "restart-transport"), dir: noFile},
		{name: "reliefs by prefix", args: []string{"diagnose", "5.5.4", "--approve", "restart"}, want: []string{"restart-transport"}, dir: noFile},
		{name: "no playbook, no reliefs", args: []string{"diagnose", "--approve", ""}, want: nil, dir: noFile},
		{name: "unknown playbook, no reliefs", args: []string{"diagnose", "9.9.9", "--approve", ""}, want: nil, dir: noFile},
		{name: "lab scenarios", args: []string{"diagnose", "5.5.4", "--lab", ""}, want: lab.ScenarioNames(), contains: []string{"overloaded-queue", "healthy"}, dir: noFile},
		{name: "lab scenarios by prefix", args: []string{"diagnose", "--lab", "overl"}, want: []string{"overloaded-queue"}, dir: noFile},
		{name: "serve's lab too", args: []string{"serve", "--lab", "heal"}, want: []string{"healthy"}, dir: noFile},
		{name: "lab files", args: []string{"diagnose", "--lab-file", ""}, want: yaml, dir: cobra.ShellCompDirectiveFilterFileExt},
		{name: "config files", args: []string{"runs", "list", "--config", ""}, want: yaml, dir: cobra.ShellCompDirectiveFilterFileExt},
		{name: "states", args: []string{"runs", "list", "--state", ""},
			want: []string{"diagnosing", "awaiting-approval", "relieving", "verifying", "finished", "escalated", "interrupted", "recovered"}, dir: noFile},
		{name: "states by prefix", args: []string{"runs", "list", "--state", "esc"}, want: []string{"escalated"}, dir: noFile},
		{name: "states after a comma", args: []string{"runs", "list", "--state", "escalated,in"}, want: []string{"escalated,interrupted"}, dir: noFile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			words, dir := complete(t, tc.args...)
			assert.Equal(t, tc.dir, dir, "directive")
			if tc.want != nil || tc.contains == nil {
				assert.Equal(t, tc.want, words)
			}
			for _, w := range tc.contains {
				assert.Contains(t, words, w)
			}
			for _, w := range tc.absent {
				assert.NotContains(t, words, w)
			}
		})
	}
}

// Cobra's completion command writes a script for each shell that calls back
// into the binary through __complete under the root's own name.
func TestCompletionScripts(t *testing.T) {
	name := newRoot(stdio{}).Name()
	tests := []struct{ shell, registers string }{
		{"bash", "complete -o default -F __start_" + name + " " + name},
		{"zsh", "#compdef " + name},
		{"fish", "complete -c " + name + " "},
		{"powershell", "Register-ArgumentCompleter -CommandName '" + name + "'"},
	}
	for _, tc := range tests {
		t.Run(tc.shell, func(t *testing.T) {
			r := bot(t, nil, "", false, "completion", tc.shell)
			require.Equal(t, 0, r.code, r.err)
			assert.Contains(t, r.out, tc.registers, "the script completes the root's name")
			assert.Contains(t, r.out, cobra.ShellCompRequestCmd, "the script asks the binary")
		})
	}
	r := bot(t, nil, "", false, "completion", "tcsh")
	assert.Equal(t, exitUsage, r.code, r.out)
	assert.Contains(t, r.err, `unknown command "tcsh"`)
}

// The bash script, sourced in a real bash, completes through a real process:
// this test binary started as the bot (TestMain) under the root's name.
func TestCompletionInBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	name := newRoot(stdio{}).Name()
	self, err := os.Executable()
	require.NoError(t, err)
	bin := t.TempDir()
	wrapper := fmt.Sprintf("#!/bin/sh\nNDRBOT_TEST_AS_BOT=1 exec %q \"$@\"\n", self)
	require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte(wrapper), 0o755))
	script := bot(t, nil, "", false, "completion", "bash")
	require.Equal(t, 0, script.code, script.err)
	scriptFile := filepath.Join(bin, "completion.bash")
	require.NoError(t, os.WriteFile(scriptFile, []byte(script.out), 0o644))
	t.Chdir(t.TempDir())
	cat, err := playbooks.Index("", nil, registry.Kinds()...)
	require.NoError(t, err)
	pb, err := cat.Resolve("smtp-421")
	require.NoError(t, err)
	var reliefs []string
	for _, r := range pb.Reliefs {
		reliefs = append(reliefs, r.ID)
	}
	require.Greater(t, len(reliefs), 1)

	tests := []struct {
		line string
		want []string
	}{
		{name + " diagnose 5.5", []string{"5.5.4"}},
		{name + " diagnose 5.5.4 --approve restart", []string{"restart-transport"}},
		{name + " diagnose 5.5.4 --lab overl", []string{"overloaded-queue"}},
		{name + " runs list --state esc", []string{"escalated"}},
		{name + " diagnose smtp-421 --approve ", reliefs},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			// COMP_* as bash sets them when <TAB> is pressed at the end of the line.
			// Cobra's script needs bash-completion's _get_comp_words_by_ref; where
			// that package is not installed, a stand-in with its contract for a
			// line without quotes: set cur, prev, words and cword from COMP_*.
			prog := fmt.Sprintf(`[ -r /usr/share/bash-completion/bash_completion ] && source /usr/share/bash-completion/bash_completion
declare -F _get_comp_words_by_ref >/dev/null || _get_comp_words_by_ref() {
  words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
}
compopt() { echo "compopt $*" >&2; } # the builtin works only inside a real <TAB>
source %q
COMP_LINE=%q; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"; [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]}-1))
__start_%s
printf '%%s\n' "${COMPREPLY[@]}"`, scriptFile, tc.line, name)
			cmd := exec.Command(bash, "--norc", "-c", prog)
			cmd.Env = append(withoutTestVars(os.Environ()), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			require.NoError(t, err, stderr.String())
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				got = append(got, strings.TrimSpace(l))
			}
			assert.Equal(t, tc.want, got, stderr.String())
		})
	}
}
