package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// `ndrbot store check` passes a sound database and names a damaged one (exit 1);
// a diagnosis refuses to start on the damaged file rather than record into it.
func TestStoreCheck(t *testing.T) {
	t.Chdir(t.TempDir())
	var env []string
	// The lab runs record into the configured store, the one store check checks.
	first := bot(t, env, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--lab-store", storeFile)
	require.Equal(t, exitFindings, first.code, first.err)

	ok := bot(t, env, "", false, "store", "check")
	assert.Equal(t, 0, ok.code, ok.err)
	assert.Contains(t, ok.out, "store OK")

	data, err := os.ReadFile(storeFile)
	require.NoError(t, err)
	require.Greater(t, len(data), 40*4096, "one diagnosis fills more pages than this test damages")
	for i := 20 * 4096; i < 36*4096; i++ {
		data[i] = 0xA5
	}
	require.NoError(t, os.WriteFile(storeFile, data, 0o600))

	bad := bot(t, env, "", false, "store", "check")
	assert.Equal(t, 1, bad.code, bad.out)
	assert.Contains(t, bad.err, "database file is damaged")

	again := bot(t, env, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--lab-store", storeFile)
	assert.NotEqual(t, exitFindings, again.code)
	assert.Contains(t, again.err, "database file is damaged")
	assert.NotContains(t, again.out, "[1/15]", "no step ran")
}
