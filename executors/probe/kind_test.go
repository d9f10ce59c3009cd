package probe

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
)

// Every described check is one Run knows, and Run knows no other: each is
// called without its parameters (and without endpoints), so it stops at its
// input check before any network use.
func TestDescribeMatchesRun(t *testing.T) {
	t.Parallel()
	k := Describe()
	assert.Equal(t, Kind, k.Name)
	e, err := New("net", config.Target{Kind: Kind})
	require.NoError(t, err)
	for _, c := range k.Checks {
		_, err := e.Run(context.Background(), VantagePoint, executors.Action{Step: "s", Check: c.Name})
		require.Error(t, err, c.Name)
		assert.ErrorIs(t, err, incident.ErrInvalidInput, c.Name)
		assert.NotErrorIs(t, err, executors.ErrUnsupported, c.Name)
		assert.Contains(t, c.Fields, "Status", c.Name)
	}
	_, err = e.Run(context.Background(), VantagePoint, executors.Action{Step: "s", Check: "smtpp"})
	assert.ErrorIs(t, err, executors.ErrUnsupported)
}

// A check's fields are the JSON names of its rows, embedded results flattened.
func TestDescribeFields(t *testing.T) {
	t.Parallel()
	k := Describe()
	mx, ok := k.Check(CheckSMTPMX)
	require.True(t, ok)
	assert.Subset(t, mx.Fields, []string{"Domain", "Exchange", "Preference", "Code", "Enhanced", "Text", "Status", "Error"})
	assert.NotContains(t, mx.Fields, "SMTPResult")
	lookup, _ := k.Check(CheckMX)
	assert.Subset(t, lookup.Fields, []string{"Exchange", "Preference", "Status", "Error"}, "MX records or the lookup's failure")
}
