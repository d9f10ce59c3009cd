package bounce

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// realCandidates mirror the built-in playbooks (playbooks/builtin/*.yaml): their
// ids, matches and parameters, as the caller's adapter would build them.
// TestRealCandidatesMirrorBuiltinPlaybooks holds them to the files.
func realCandidates() []Candidate {
	return []Candidate{
		{ID: "ndr-5.5.4",
			Matches: []string{"5.5.4", "4.4.0", "550 5.5.4", "451 4.4.0", "service unavailable", "service temporarily unavailable",
				"5.2.0", "554 5.2.0", "SubmissionQuotaExceeded"},
			Params: []Param{{Name: "sender", Type: "email"}, {Name: "probe_address", Type: "email"}, {Name: "window", Type: "duration"}}},
		{ID: "smtp-421",
			Matches: []string{"4.3.2", "421 4.3.2", "too many connections", "concurrent connections", "421 4.7.0 too many connections"},
			Params:  []Param{{Name: "domain", Type: "domain", Required: true}, {Name: "ip", Type: "ip"}, {Name: "sending_domain", Type: "domain"}, {Name: "connections", Type: "int"}}},
		{ID: "graph-503",
			Matches: []string{"graph-503", "graph 503", "503", "serviceunavailable", "503 serviceunavailable", "extensionerror", "subscription renewal"},
			Params: []Param{{Name: "subscription", Type: "identity"}, {Name: "resource", Type: "string"}, {Name: "notification_url", Type: "string"},
				{Name: "lifecycle_notification_url", Type: "string"}, {Name: "change_type", Type: "string"}, {Name: "expired_at", Type: "string"},
				{Name: "renewal_window", Type: "duration"}, {Name: "recreate_before", Type: "duration"}}},
		{ID: "smtp-auth-432",
			Matches: []string{"432 4.3.2", "sender thread limit", "sender thread limit exceeded", "STOREDRV.ClientSubmit"},
			Params:  []Param{{Name: "sender", Type: "email", Required: true}, {Name: "window", Type: "duration"}}},
		{ID: "ndr-5.7.23",
			Matches: []string{"5.7.23", "550 5.7.23", "5.7.509", "550 5.7.509"},
			Params:  []Param{{Name: "sending_domain", Type: "domain", Required: true}, {Name: "selectors", Type: "string"}}},
		{ID: "hybrid-tls",
			Matches: []string{"454 4.7.5", "4.7.5", "550 5.7.64", "5.7.64", "tenantattribution", "450 4.4.317", "4.4.317"},
			Params:  []Param{{Name: "window", Type: "duration"}, {Name: "expiry_warning", Type: "duration"}}},
	}
}

// plannedCandidates add the incident families issue 15 asks for, as a playbook
// author might declare them. They are hypothetical — none exists yet — and
// show how the choice behaves once they do.
func plannedCandidates() []Candidate {
	return append(realCandidates(),
		Candidate{ID: "ndr-5.7.708",
			Matches: []string{"5.7.708", "5.7.750", "550 5.7.708", "550 5.7.750", "traffic not accepted from this ip", "unregistered domain"},
			Params:  []Param{{Name: "sender", Type: "email"}, {Name: "sending_domain", Type: "domain"}}},
		Candidate{ID: "ndr-5.1.8",
			Matches: []string{"5.1.8", "5.7.705", "550 5.1.8", "bad outbound sender", "tenant has exceeded threshold"},
			Params:  []Param{{Name: "sender", Type: "email", Required: true}}},
		Candidate{ID: "queue-expired",
			Matches: []string{"4.4.7", "5.4.7", "queue.expired", "message expired"},
			Params:  []Param{{Name: "domain", Type: "domain", Required: true}, {Name: "remote_host", Type: "hostname"}}},
	)
}

// TestRealCandidatesMirrorBuiltinPlaybooks fails when a built-in playbook's id,
// matches or parameters change: update realCandidates (and the expectations of
// TestParseSamples that follow from them) to what the playbook now says.
func TestRealCandidatesMirrorBuiltinPlaybooks(t *testing.T) {
	type spec struct {
		Type     string `yaml:"type"`
		Required bool   `yaml:"required"`
		Default  string `yaml:"default"`
	}
	type playbook struct {
		ID      string          `yaml:"id"`
		Matches []string        `yaml:"matches"`
		Params  map[string]spec `yaml:"params"`
	}
	files, err := filepath.Glob(filepath.Join("..", "playbooks", "builtin", "*.yaml"))
	require.NoError(t, err)
	byID := map[string]playbook{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		var pb playbook
		require.NoError(t, yaml.Unmarshal(data, &pb), f)
		byID[pb.ID] = pb
	}
	for _, c := range realCandidates() {
		pb, ok := byID[c.ID]
		if !assert.True(t, ok, "no built-in playbook %s", c.ID) {
			continue
		}
		assert.Equal(t, pb.Matches, c.Matches, "%s: matches", c.ID)
		var want []Param
		for name, s := range pb.Params {
			want = append(want, Param{Name: name, Type: s.Type, Required: s.Required && s.Default == ""})
		}
		got := slices.Clone(c.Params)
		byName := func(a, b Param) int {
			if a.Name < b.Name {
				return -1
			}
			if a.Name > b.Name {
				return 1
			}
			return 0
		}
		slices.SortFunc(want, byName)
		slices.SortFunc(got, byName)
		assert.Equal(t, want, got, "%s: params", c.ID)
	}
}
