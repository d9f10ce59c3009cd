package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/slack/slackfake"
)

// `ndrbot serve` posts a signed checkpoint to the audit channel at start, after a
// relief and at shutdown; the channel's history, exported, verifies the trail.
func TestServeCheckpointsToAuditChannel(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	const auditChannel = "C0AUDIT"
	keyFile := filepath.Join(dir, "audit.key")
	require.NoError(t, os.WriteFile(keyFile, []byte("serve-checkpoint-test-key-32byte"), 0o600))
	extra := []string{"NDRBOT_STORE_AUDIT_KEY_FILE=" + keyFile, "NDRBOT_STORE_CHECKPOINTS_CHANNEL=" + auditChannel}

	fake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	defer fake.Close()
	// A kept lab store is anchored as configured, and audit verify reads it below.
	s := startServeEnv(t, fake, 1, extra, "--lab", "overloaded-queue", "--lab-store", storeFile)
	s.waitFor(t, "the start-up checkpoint", func() bool { return len(fake.Messages(auditChannel)) == 1 })

	s.diagnose(t)
	card, approval := s.card(t)
	s.approve(t, card, approval)
	// The periodic interval is 15 minutes: a second checkpoint this soon is the
	// one the relief asked for.
	s.waitFor(t, "a checkpoint after the relief", func() bool { return len(fake.Messages(auditChannel)) >= 2 })
	require.Equal(t, 0, s.stop(t), s.out.String())

	var export strings.Builder
	for _, m := range fake.Messages(auditChannel) {
		assert.True(t, strings.HasPrefix(m.Text, "ndrbot-audit-checkpoint v1 seq="), m.Text)
		export.WriteString(m.Text + "\n")
	}
	assert.GreaterOrEqual(t, strings.Count(export.String(), "\n"), 3, "start, relief, shutdown:\n%s", export.String())
	cpFile := filepath.Join(dir, "exported.txt")
	require.NoError(t, os.WriteFile(cpFile, []byte(export.String()), 0o600))
	v := bot(t, extra, "", false, "audit", "verify", "--checkpoints", cpFile)
	require.Equal(t, 0, v.code, v.out+v.err)
	assert.Contains(t, v.out, "checkpoint(s)")
}
