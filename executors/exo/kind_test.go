package exo

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/exo/exofake"
)

// Every cmdlet the Admin API routes is described, with every parameter its
// endpoint takes, and every description cites its source and lists the route
// field; the constructor builds an executor from a configured target.
func TestDescribe(t *testing.T) {
	t.Parallel()
	k := Describe()
	assert.Equal(t, config.KindEXO, k.Name)
	assert.True(t, k.Cmdlets)
	assert.False(t, k.Scripts)
	assert.Empty(t, k.Checks)
	for name, ep := range adminRoutes {
		c, ok := k.Command(name)
		require.True(t, ok, "%s routed but not described", name)
		assert.Contains(t, c.Source, "Admin API endpoint "+ep.Endpoint)
		for _, p := range ep.Params {
			_, found, _ := c.Param(p)
			assert.True(t, found, "%s: -%s", name, p)
		}
	}
	for _, c := range k.Commands {
		assert.Contains(t, c.Fields, RouteField, c.Name)
		assert.True(t, strings.HasPrefix(c.Source, "Microsoft Learn"), c.Name)
	}
	fake := exofake.New(t)
	e, err := k.New("exo", target(fake), executors.Env{Dial: fake.DialContext})
	require.NoError(t, err)
	assert.Equal(t, "exo", e.Kind())
}
