package playbooks

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Index (bot diagnose) parses every playbook but compiles only the one chosen:
// a playbook that does not compile stops nobody who runs another, and is
// reported, with its line, to whoever chooses it. Load (bot serve, lint) still
// refuses it up front.
func TestIndexCompilesOnlyWhatIsChosen(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("testdata/lint/bad-expr.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad-expr.yaml"), data, 0o600))

	_, err = Load(dir, nil)
	require.Error(t, err, "Load compiles everything")

	cat, err := Index(dir, nil)
	require.NoError(t, err)
	for _, pb := range cat.All() {
		for _, r := range pb.Rules {
			assert.Nil(t, r.when, "%s: nothing compiled before it is chosen", pb.ID)
		}
	}
	pb, err := cat.Resolve("5.5.4")
	require.NoError(t, err)
	require.NotEmpty(t, pb.Rules)
	for _, r := range pb.Rules {
		assert.NotNil(t, r.when, "rule %s of the chosen playbook is compiled", r.ID)
	}
	again, err := cat.Resolve("ndr-5.5.4")
	require.NoError(t, err)
	assert.Same(t, pb, again)

	for range 2 { // the same answer every time it is chosen
		_, err = cat.Resolve("bad-expr")
		var ps Problems
		require.True(t, errors.As(err, &ps), "%v", err)
		assert.Equal(t, 8, ps[0].Line)
		assert.Contains(t, ps[0].Msg, "rules.broken.when: expression")
	}

	// A file that is not a playbook at all is still refused when indexing.
	bad, err := os.ReadFile("testdata/lint/bad-yaml.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad-yaml.yaml"), bad, 0o600))
	_, err = Index(dir, nil)
	assert.Error(t, err)
}
