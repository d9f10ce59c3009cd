package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// `man DIR` writes one page per command help lists, each naming the command
// and every flag it takes, dated by SOURCE_DATE_EPOCH so two builds agree.
func TestManPages(t *testing.T) {
	t.Chdir(t.TempDir())
	env := []string{"SOURCE_DATE_EPOCH=1795000000"} // 2026-11-18
	r := bot(t, env, "", false, "man", "pages")
	require.Equal(t, 0, r.code, r.err)

	// The tree as it executes: cobra adds help and completion then.
	root := newRoot(stdio{})
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	pages := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			assert.NoFileExists(t, filepath.Join("pages", strings.ReplaceAll(c.CommandPath(), " ", "-")+".1"), "no page for a hidden command")
			return
		}
		pages++
		file := filepath.Join("pages", strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
		raw, err := os.ReadFile(file)
		if !assert.NoError(t, err, "a page for %q", c.CommandPath()) {
			return
		}
		page := strings.ReplaceAll(string(raw), `\-`, "-") // roff escapes hyphens
		assert.Contains(t, page, `.TH "`+strings.ToUpper(strings.ReplaceAll(c.CommandPath(), " ", "-"))+`" "1" "Nov 2026" "ndrbot `, file)
		assert.Contains(t, page, c.Short, file)
		assert.NotContains(t, page, "Auto generated", file)
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden {
				assert.Contains(t, page, `\fB--`+f.Name+`\fP`, "%s documents --%s", file, f.Name)
			}
		})
		c.InheritedFlags().VisitAll(func(f *pflag.Flag) {
			assert.Contains(t, page, `\fB--`+f.Name+`\fP`, "%s documents the inherited --%s", file, f.Name)
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	entries, err := os.ReadDir("pages")
	require.NoError(t, err)
	assert.Len(t, entries, pages, "a page for each command and nothing else")
	assert.Contains(t, r.out, "wrote ")
	assert.FileExists(t, filepath.Join("pages", root.Name()+"-runs-list.1"))
	assert.FileExists(t, filepath.Join("pages", root.Name()+"-completion-powershell.1"))

	again := bot(t, env, "", false, "man", "again")
	require.Equal(t, 0, again.code, again.err)
	for _, e := range entries {
		a, err := os.ReadFile(filepath.Join("pages", e.Name()))
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join("again", e.Name()))
		require.NoError(t, err)
		assert.Equal(t, string(a), string(b), "%s is the same in two runs", e.Name())
	}

	bad := bot(t, []string{"SOURCE_DATE_EPOCH=yesterday"}, "", false, "man", "bad")
	assert.Equal(t, exitUsage, bad.code)
	assert.Contains(t, bad.err, "SOURCE_DATE_EPOCH")
}

// A page's text reads back in roff as it was written: no escape, request or
// typographic hyphen slips in, and an indented paragraph stays as typed.
func TestRoffText(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"hyphens", "--lab-file -", `\-\-lab\-file \-` + "\n"},
		{"backslash", `EX01\Submission`, `EX01\eSubmission` + "\n"},
		{"request-like lines", "one\n.TH not a request\n'also not", "one\n\\&.TH not a request\n\\&'also not\n"},
		{"paragraphs", "first\nline\n\nsecond", "first\nline\n.PP\nsecond\n"},
		{"indented example", "Run:\n\n  ndrbot diagnose 5.5.4\n  ndrbot runs list", "Run:\n.PP\n.EX\n  ndrbot diagnose 5.5.4\n  ndrbot runs list\n.EE\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			roffParagraphs(&b, tt.text)
			assert.Equal(t, tt.want, b.String())
		})
	}
	assert.Equal(t, `"say \(dqhi\(dq \- now"`, roffArg(`say "hi" - now`))

	// Flags as cobra/doc listed them, by name: a string default quoted, a
	// flag that takes no value with its default in brackets.
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.StringP("lab-file", "f", `C:\orgs\lab.yaml`, "an organisation file")
	fs.Bool("json", false, ".json for machines")
	var b bytes.Buffer
	roffFlags(&b, fs)
	assert.Equal(t, ".TP\n\\fB\\-\\-json\\fP[=false]\n\\&.json for machines\n"+
		".TP\n\\fB\\-f\\fP, \\fB\\-\\-lab\\-file\\fP=\"C:\\e\\eorgs\\e\\elab.yaml\"\nan organisation file\n", b.String())
}
