package playbooks_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/playbooks"
)

func TestBuiltinsLintClean(t *testing.T) {
	cat, err := playbooks.Load("", labTargets)
	require.NoError(t, err)
	assert.NotEmpty(t, cat.All())
}

// Each broken playbook is rejected with the file and line of the problem.
func TestLintErrorsHaveLines(t *testing.T) {
	tests := []struct {
		file string
		line int
		msg  string
	}{
		{"unknown-target.yaml", 7, `unknown target "dmz-probe"`},
		{"unknown-refs.yaml", 8, `unknown step "queue"`},
		{"unknown-refs.yaml", 8, `propose: unknown relief "restart-transprot"`},
		{"unknown-refs.yaml", 15, `unknown relief "restart-transport"`},
		{"bad-expr.yaml", 8, `rules.broken.when: expression`},
		{"no-approval.yaml", 8, `an approval policy is required`},
		{"bad-role.yaml", 13, `approval.role: "approvers" is not a role (approver or admin)`},
		{"cycle.yaml", 4, `needs form a cycle: a → c → b → a`},
		{"misspelt.yaml", 6, `unknown key "powershel"`},
		{"bad-yaml.yaml", 2, `yaml:`},
		{"undeclared-need.yaml", 7, `reads step "queues", which is not in its needs`},
		{"cmdlet-errors.yaml", 13, `text with {{ }} inside is not allowed`},
		{"cmdlet-errors.yaml", 16, `is not a cmdlet name`},
		{"cmdlet-errors.yaml", 17, `set one of cmdlet, powershell and check`},
		{"cmdlet-errors.yaml", 21, `a cmdlet needs an exchange, jea or winrm target`},
		{"cmdlet-errors.yaml", 24, `powershell scripts run only on winrm targets`},
		{"cmdlet-errors.yaml", 30, `unknown name params.sendr`},
		{"cmdlet-errors.yaml", 31, `args, select, where, derive and foreach go with cmdlet`},
		{"cmdlet-errors.yaml", 45, `a relief's arguments read params, args (its with) and host, not steps`},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "lint", tc.file)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			_, err = playbooks.Parse(path, data, labTargets)
			var ps playbooks.Problems
			require.True(t, errors.As(err, &ps), "want lint problems, got %v", err)
			for _, p := range ps {
				if p.Line == tc.line && strings.Contains(p.Msg, tc.msg) {
					assert.Equal(t, path, p.File)
					return
				}
			}
			t.Errorf("no problem at line %d containing %q in:\n%v", tc.line, tc.msg, err)
		})
	}
}

func TestLintDirReportsEveryFile(t *testing.T) {
	dir := filepath.Join("testdata", "lint")
	fixtures, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	require.Len(t, fixtures, 10)
	n, err := playbooks.LintDir(dir, labTargets)
	require.Error(t, err)
	assert.Equal(t, len(fixtures), n)
	var ps playbooks.Problems
	require.ErrorAs(t, err, &ps)
	files := map[string]bool{}
	for _, p := range ps {
		files[filepath.Base(p.File)] = true
	}
	assert.Len(t, files, len(fixtures), "every fixture has a problem")
}

func TestResolveCodes(t *testing.T) {
	cat, err := playbooks.Load("", labTargets)
	require.NoError(t, err)
	for _, code := range []string{"5.5.4", "4.4.0", "ndr-5.5.4", "550 5.5.4", "Service Unavailable"} {
		pb, err := cat.Resolve(code)
		require.NoError(t, err, code)
		assert.Equal(t, "ndr-5.5.4", pb.ID)
	}
	_, err = cat.Resolve("5.1.1")
	assert.ErrorContains(t, err, `no playbook for "5.1.1"`)
}

func TestDirOverridesBuiltin(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("builtin", "ndr-5.5.4.yaml"))
	require.NoError(t, err)
	custom := append([]byte{}, src...)
	custom = append(custom, []byte("\n# site copy\n")...)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ndr.yaml"), custom, 0o600))
	cat, err := playbooks.Load(dir, labTargets)
	require.NoError(t, err)
	pb, err := cat.Resolve("5.5.4")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "ndr.yaml"), pb.Source)
}
