package graph

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
)

// Every described check is one Run knows, and Run knows no other.
func TestDescribeMatchesRun(t *testing.T) {
	h := newHarness(t, nil, nil)
	k := Describe()
	assert.Equal(t, Kind, k.Name)
	for _, c := range k.Checks {
		_, err := h.run(t, c.Name, nil, 5*time.Second)
		assert.NotErrorIs(t, err, executors.ErrUnsupported, c.Name)
		assert.NotEmpty(t, c.Fields, c.Name)
	}
	_, err := h.run(t, "service-healt", nil, 5*time.Second)
	assert.ErrorIs(t, err, executors.ErrUnsupported)
}

// A graph target without an app registration builds as not configured.
func TestDescribeNewNotConfigured(t *testing.T) {
	_, err := Describe().New("graph", config.Target{Kind: config.KindGraph, Cloud: config.CloudGlobal}, executors.Env{})
	require.Error(t, err)
	assert.ErrorIs(t, err, executors.ErrNotConfigured)
	assert.ErrorIs(t, err, config.ErrNotConfigured)
}
