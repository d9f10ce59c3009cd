package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
)

// Secret files that group or others may read are named, with the key that
// points at them; private ones, unset ones and plain paths (a CA file) are not.
func TestLooseSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("s3cr3t\n"), 0o600))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	loose := write("bot-token", 0o644)
	private := write("app-token", 0o600)
	keytab := write("ndrbot.keytab", 0o640)
	ca := write("ca.pem", 0o644)

	cfg := config.Default(kinds())
	cfg.Slack.BotTokenFile = loose
	cfg.Slack.AppTokenFile = private
	ex := cfg.Targets["exchange"]
	ex.KeytabFile = keytab
	ex.CAFile = ca
	cfg.Targets["exchange"] = ex

	got := cfg.LooseSecretFiles()
	require.Len(t, got, 2, "%q", got)
	assert.Contains(t, got[0]+got[1], loose+" (slack.bot_token_file) is readable by group or others (mode 0644)")
	assert.Contains(t, got[0]+got[1], keytab+" (targets.exchange.keytab_file) is readable by group or others (mode 0640)")

	require.NoError(t, os.Chmod(loose, 0o600))
	require.NoError(t, os.Chmod(keytab, 0o400))
	assert.Empty(t, cfg.LooseSecretFiles())
}
