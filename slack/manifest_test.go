package slack

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// The manifest grants every scope Check requires, and the settings the adapter needs.
func TestManifest(t *testing.T) {
	raw, err := os.ReadFile("manifest.yaml")
	require.NoError(t, err)
	var m struct {
		Features struct {
			SlashCommands []struct {
				Command   string `yaml:"command"`
				UsageHint string `yaml:"usage_hint"`
			} `yaml:"slash_commands"`
		} `yaml:"features"`
		OAuth struct {
			Scopes struct {
				Bot []string `yaml:"bot"`
			} `yaml:"scopes"`
		} `yaml:"oauth_config"`
		Settings struct {
			Interactivity struct {
				Enabled bool `yaml:"is_enabled"`
			} `yaml:"interactivity"`
			SocketMode bool `yaml:"socket_mode_enabled"`
		} `yaml:"settings"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &m))
	for s := range strings.SplitSeq(requiredScopes, ",") {
		assert.Contains(t, m.OAuth.Scopes.Bot, s)
	}
	want := []string{"commands", "chat:write", "chat:write.public", "files:write", "usergroups:read", "channels:read", "groups:read", "users:read"}
	assert.ElementsMatch(t, want, m.OAuth.Scopes.Bot, "exactly these scopes")
	require.Len(t, m.Features.SlashCommands, 1)
	assert.Equal(t, "/ndr", m.Features.SlashCommands[0].Command)
	assert.Contains(t, m.Features.SlashCommands[0].UsageHint, "diagnose")
	assert.True(t, m.Settings.Interactivity.Enabled)
	assert.True(t, m.Settings.SocketMode)
}
