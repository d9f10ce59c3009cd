package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every command that loads the configuration warns about a secret file others
// may read, naming the file and the key; the value itself never appears.
func TestWarnsAboutReadableSecretFile(t *testing.T) {
	t.Chdir(t.TempDir())
	path := filepath.Join(t.TempDir(), "audit-key")
	require.NoError(t, os.WriteFile(path, []byte("k3y-v4lue-n0t-t0-print\n"), 0o600))
	require.NoError(t, os.Chmod(path, 0o644))

	r := bot(t, []string{"NDRBOT_STORE_AUDIT_KEY_FILE=" + path}, "", false, "config", "check")
	assert.Equal(t, 0, r.code, r.err)
	assert.Contains(t, r.err, "warning: secret file "+path+" (store.audit_key_file) is readable by group or others (mode 0644); chmod 600 it")
	assert.NotContains(t, r.out+r.err, "k3y-v4lue-n0t-t0-print")

	require.NoError(t, os.Chmod(path, 0o600))
	r = bot(t, []string{"NDRBOT_STORE_AUDIT_KEY_FILE=" + path}, "", false, "config", "check")
	assert.NotContains(t, r.err, "warning:")
}
