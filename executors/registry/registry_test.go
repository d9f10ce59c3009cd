package registry_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/psobj"
	"github.com/ndrbot/ndrbot/executors/registry"
)

// Every registered kind carries its share of the configuration (defaults, keys,
// validation) under its own name, so config.Load and Validate know each kind
// the registry knows; a kind without one, or with another kind's, is refused.
func TestKindsCarryTheirConfig(t *testing.T) {
	specs, err := registry.Kinds().Config()
	require.NoError(t, err)
	assert.Equal(t, registry.Kinds().Names(), slices.Sorted(slices.Values(specs.Names())))

	tests := []struct {
		name  string
		kinds executors.Kinds
		err   string
	}{
		{"no spec", executors.Kinds{{Name: "relay"}}, `kind "relay" (executors.Kind.Config names "")`},
		{"another kind's spec", executors.Kinds{{Name: "relay", Config: config.KindSpec{Name: "probe"}}}, `kind "relay" (executors.Kind.Config names "probe")`},
		{"among good ones", append(registry.Kinds(), executors.Kind{Name: "relay"}), `kind "relay"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.kinds.Config()
			require.ErrorIs(t, err, executors.ErrNoConfig)
			assert.Contains(t, err.Error(), tt.err)
		})
	}
}

// Every description is whole: a name, a constructor, checks and commands with
// names, parameters with names, fields without repeats, and every check and
// command named once per kind.
func TestDescriptionsAreWhole(t *testing.T) {
	for _, k := range registry.Kinds() {
		t.Run(k.Name, func(t *testing.T) {
			require.NotEmpty(t, k.Name)
			assert.NotNil(t, k.New, "constructor")
			assert.True(t, k.Scripts || k.Cmdlets || len(k.Checks) > 0, "runs nothing")
			var checks []string
			for _, c := range k.Checks {
				assert.NotEmpty(t, c.Name)
				assert.NotContains(t, checks, c.Name, "check named twice")
				checks = append(checks, c.Name)
				assert.NotEmpty(t, c.Fields, c.Name)
				assert.Len(t, slices.Compact(slices.Sorted(slices.Values(c.Fields))), len(c.Fields), "%s: a field twice", c.Name)
				params := executors.ParamNames(c.Params)
				for _, g := range c.OneOf {
					assert.Subset(t, params, g, "%s: one-of names undescribed parameters", c.Name)
				}
			}
			var cmds []string
			for _, c := range k.Commands {
				assert.NotContains(t, cmds, strings.ToLower(c.Name), "command named twice")
				cmds = append(cmds, strings.ToLower(c.Name))
				assert.NotEmpty(t, c.Source, c.Name)
				assert.Len(t, slices.Compact(slices.Sorted(slices.Values(c.Fields))), len(c.Fields), "%s: a field twice", c.Name)
				assert.False(t, c.AllFields && len(c.Fields) == 0, "%s: all of no fields", c.Name)
				params := executors.ParamNames(c.Params)
				for _, g := range c.OneOf {
					assert.Subset(t, params, g, "%s: one-of names undescribed parameters", c.Name)
				}
			}
		})
	}
}

// psobj writes the Unlimited flag under the name the contract gives it.
func TestUnlimitedSuffix(t *testing.T) {
	assert.Equal(t, executors.UnlimitedSuffix, psobj.UnlimitedSuffix)
}
