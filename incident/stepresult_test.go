package incident_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
)

// A step result, a finding and an escalation marshal in the audit trail's
// canonical form, every field set or none: the store then redacts their JSON
// without decoding it again.
func TestStepResultMarshalsCanonical(t *testing.T) {
	full := incident.StepResult{Duration: 1500 * time.Millisecond, Error: "x", Executor: "psrp", ExitCode: 1,
		Hosts: []string{"ex01"}, Rows: []map[string]any{{"Identity": `EX01\Submission`, "MessageCount": 5000, "Host": "ex01"}},
		Digest: "sha256:ab", Started: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), Status: incident.StepOK,
		Step: "queues", Target: "exchange", Title: "Queues", Verifying: true}
	for _, r := range []incident.StepResult{full, {}} {
		raw, err := json.Marshal(r)
		require.NoError(t, err)
		canonical, err := audit.CanonicalJSON(raw)
		require.NoError(t, err)
		assert.Equal(t, string(canonical), string(raw))
	}
	// Every field is set above, so a field added out of order fails here.
	var fields map[string]any
	raw, err := json.Marshal(full)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &fields))
	assert.Len(t, fields, 13, "a new field: set it in full above")
	assert.Equal(t, 13, reflect.TypeOf(full).NumField(), "every field is set in full above")

	for _, tt := range []struct {
		full, empty any
		fields      int
	}{
		{incident.Finding{Evidence: "e", Host: "ex01", Phase: "verify", Rule: "r", Severity: incident.SeverityWarning, Step: "s", Text: "t"}, incident.Finding{}, 7},
		{incident.Escalation{Next: "n", Owner: "o", Reason: "r", Rule: "x"}, incident.Escalation{}, 4},
	} {
		for _, v := range []any{tt.full, tt.empty} {
			raw, err := json.Marshal(v)
			require.NoError(t, err)
			canonical, err := audit.CanonicalJSON(raw)
			require.NoError(t, err)
			assert.Equal(t, string(canonical), string(raw), "%T", v)
		}
		var fields map[string]any
		raw, err := json.Marshal(tt.full)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(raw, &fields))
		assert.Len(t, fields, tt.fields, "%T: a new field: set it above", tt.full)
		assert.Equal(t, tt.fields, reflect.TypeOf(tt.full).NumField(), "%T: every field is set above", tt.full)
	}
}
