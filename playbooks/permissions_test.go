package playbooks_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/playbooks"
)

// commonParams are PowerShell's common parameters: every role entry keeps them.
var commonParams = []string{"Confirm", "WhatIf", "ErrorAction", "WarningAction", "Verbose", "Debug"}

// The grants an admin installs hold everything the built-in playbooks call: each
// Exchange cmdlet and parameter in deploy/rbac/cmdlets.psd1 (the read-only ones
// in Read, the changes in Relief or Admin), each JEA command in the role
// capability of deploy/jea. A playbook calling something not granted would fail
// on the first real incident.
func TestDeployGrantsWhatThePlaybooksCall(t *testing.T) {
	grants := readPSD1(t, filepath.Join("..", "deploy", "rbac", "cmdlets.psd1"))
	psrc, err := os.ReadFile(filepath.Join("..", "deploy", "jea", "NdrBot.psrc"))
	require.NoError(t, err)
	cat, err := playbooks.Load("", labTargets)
	require.NoError(t, err)
	for _, pb := range cat.All() {
		for _, perm := range pb.Permissions() {
			for _, target := range perm.Targets {
				switch labTargets[target] {
				case "jea":
					// Module-qualified or not: 'Microsoft.PowerShell.Management\Restart-Service'.
					visible := regexp.MustCompile(`'(?:[\w.]+\\)?` + regexp.QuoteMeta(perm.Cmdlet) + `'`)
					assert.True(t, visible.Match(psrc), "%s: %s is not visible on the JEA endpoint (deploy/jea/NdrBot.psrc)", pb.ID, perm.Cmdlet)
				case "exchange":
					tiers := []string{"Read"}
					if perm.Changes {
						tiers = []string{"Relief", "Admin"}
					}
					var params []string
					found := false
					for _, tier := range tiers {
						if p, ok := grants[tier][perm.Cmdlet]; ok {
							params, found = p, true
						}
					}
					if !assert.True(t, found, "%s: %s is in no %v role of deploy/rbac/cmdlets.psd1", pb.ID, perm.Cmdlet, tiers) {
						continue
					}
					for _, name := range perm.Params {
						if !slices.Contains(commonParams, name) {
							assert.Contains(t, params, name, "%s: %s -%s is not granted", pb.ID, perm.Cmdlet, name)
						}
					}
				}
			}
		}
	}
}

var (
	psd1Tier   = regexp.MustCompile(`^\s*(\w+)\s*=\s*@\{\s*$`)
	psd1Cmdlet = regexp.MustCompile(`^\s*'([\w-]+)'\s*=\s*@\(([^)]*)\)`)
	psd1Name   = regexp.MustCompile(`'(\w+)'`)
)

// readPSD1 reads cmdlets.psd1's tier → cmdlet → parameters, one cmdlet a line.
func readPSD1(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string]map[string][]string{}
	tier := ""
	for _, line := range strings.Split(string(data), "\n") {
		if m := psd1Tier.FindStringSubmatch(line); m != nil {
			tier = m[1]
			out[tier] = map[string][]string{}
			continue
		}
		if m := psd1Cmdlet.FindStringSubmatch(line); m != nil && tier != "" {
			var params []string
			for _, p := range psd1Name.FindAllStringSubmatch(m[2], -1) {
				params = append(params, p[1])
			}
			out[tier][m[1]] = params
		}
	}
	require.NotEmpty(t, out["Read"], "no Read tier in %s", path)
	return out
}
