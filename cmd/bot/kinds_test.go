package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A misspelt check fails lint with its file and line and the checks the
// target's kind has: lint reads what each kind says about itself.
func TestPlaybooksLintRejectsAnUnknownCheck(t *testing.T) {
	file, err := filepath.Abs(filepath.Join("..", "..", "playbooks", "testdata", "lint", "unknown-check.yaml"))
	require.NoError(t, err)
	t.Chdir(t.TempDir())
	r := bot(t, nil, "", false, "playbooks", "lint", file)
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.err, file+`:7: steps.network.check: unknown check "smtpp" for probe targets (checks: dkim, dmarc, dns, dnsbl, mx, smtp, smtp-mx, spf, tcp)`)
}
