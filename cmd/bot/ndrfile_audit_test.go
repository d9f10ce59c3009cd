package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

// The run's audited command says it came from a bounce — the file's SHA-256
// and what was read — and no event holds the bounce's text.
func TestDiagnoseNDRFileAudit(t *testing.T) {
	path := ndrSample(t, "exchange2019-5.5.4.eml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	t.Chdir(t.TempDir())
	r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, "", false, "diagnose", "--ndr-file", path, "--lab", "overloaded-queue", "--lab-store", "lab.db")
	require.Equal(t, exitFindings, r.code, r.err)

	st, err := sqlite.Open(context.Background(), "lab.db", store.Options{})
	require.NoError(t, err)
	defer st.Close()
	sum := sha256.Sum256(data)
	commands := 0
	for e, err := range st.Events(context.Background(), audit.Filter{}) {
		require.NoError(t, err)
		assert.NotContains(t, string(e.Payload), "Delivery has failed", "no bounce text in %s", e.Kind)
		assert.NotContains(t, string(e.Payload), "Weekly report", "no subject in %s", e.Kind)
		if e.Kind != audit.KindCommand {
			continue
		}
		commands++
		var p struct {
			Args    []string       `json:"args"`
			NDRFile map[string]any `json:"ndr_file"`
		}
		require.NoError(t, json.Unmarshal(e.Payload, &p))
		assert.Equal(t, []string{"ndr-5.5.4"}, p.Args, "what the admin asked, not what the bounce said")
		assert.Equal(t, hex.EncodeToString(sum[:]), p.NDRFile["sha256"])
		assert.Equal(t, path, p.NDRFile["file"])
		assert.Equal(t, "5.5.4", p.NDRFile["status"])
		assert.Equal(t, "550", p.NDRFile["reply"])
		assert.Equal(t, "ndr-5.5.4", p.NDRFile["playbook"])
		assert.Equal(t, true, p.NDRFile["fits"])
	}
	assert.Equal(t, 1, commands)
}
