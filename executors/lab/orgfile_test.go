package lab

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// Every built-in organisation file parses, and each built-in Go scenario has
// an organisation file of the same name and playbook.
func TestBuiltinOrgsParse(t *testing.T) {
	names := OrgNames()
	for _, scenario := range ScenarioNames() {
		assert.Contains(t, names, scenario, "scenario %s has no orgs/%s.yaml", scenario, scenario)
	}
	for _, n := range append(names, "component-maintenance", "shadow-redundancy-big", "tls-cert-expired", "retry-transient") {
		t.Run(n, func(t *testing.T) {
			l, err := NewOrg(n, Options{})
			require.NoError(t, err)
			assert.Equal(t, n, l.Scenario())
			assert.NotEmpty(t, l.About())
			if _, ok := scenarios()[n]; ok {
				assert.Equal(t, ScenarioPlaybook(n), l.Playbook())
			}
		})
	}
}

// Each built-in organisation file passes alone the checks a file given with
// --lab-file passes (load skips them for the built-ins), and its extends reads
// the same without them.
func TestBuiltinOrgsAlone(t *testing.T) {
	entries, err := fs.ReadDir(builtinOrgs, "orgs")
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		name := "orgs/" + e.Name()
		t.Run(e.Name(), func(t *testing.T) {
			data, err := fs.ReadFile(builtinOrgs, name)
			require.NoError(t, err)
			var doc yaml.Node
			require.NoError(t, yaml.Unmarshal(data, &doc))
			root := doc.Content[0]
			ld := &loader{files: map[*yaml.Node]string{}}
			ld.mark(root, name)
			extends, err := ld.checkAlone(root, name)
			require.NoError(t, err)
			assert.Equal(t, extends, scalarAt(root, "extends"))
		})
	}
}

func TestOrgFileErrors(t *testing.T) {
	cases := []struct {
		name, file, want string
	}{
		{"unknown top-level key", "servers: {EX01: {}}\nmailboxs: {}\n", "t.yaml:2: unknown key \"mailboxs\""},
		{"unknown queue property", "servers:\n  EX01:\n    queues:\n      'EX01\\7': {MesageCount: 3}\n", "t.yaml:4: unknown key \"MesageCount\""},
		{"a bad value", "servers:\n  EX01:\n    transport:\n      MaxOutboundConnections: lots\n", "t.yaml:4: \"lots\" is neither a number ≥ 0 nor Unlimited"},
		{"a wrong type", "servers:\n  EX01:\n    queues:\n      'EX01\\7': {MessageCount: many}\n", "t.yaml:4: cannot unmarshal"},
		{"an unknown enum value", "servers:\n  EX01:\n    queues:\n      'EX01\\7': {Status: Stuck}\n", "t.yaml:4: Status \"Stuck\" is not one of"},
		{"an unknown requester", "servers:\n  EX01:\n    components:\n      HubTransport: {Admin: Inactive}\n", "t.yaml:4: requester \"Admin\""},
		{"a queue of another server", "servers:\n  EX01:\n    queues:\n      'EX02\\7': {}\n", "t.yaml:4: queue \"EX02\\\\7\" of server EX01"},
		{"a policy that is not there", "servers: {EX01: {}}\nmailboxes:\n  a@contoso.com: {ThrottlingPolicy: Nope}\n", "t.yaml:3: mailbox a@contoso.com: ThrottlingPolicy \"Nope\""},
		{"a bad time", "servers:\n  EX01:\n    queues:\n      'EX01\\7': {NextRetryTime: soon}\n", "t.yaml:4: \"soon\" is not a time"},
		{"a behaviour after a read", "servers: {EX01: {}}\nbehaviours:\n  - after: Get-Queue\n", "behaviours[0]: after \"Get-Queue\""},
		{"a behaviour on a missing queue", "servers: {EX01: {}}\nbehaviours:\n  - after: Retry-Queue\n    then:\n      queues: {'EX01\\9': {MessageCount: 0}}\n", "t.yaml:5: behaviour queue \"EX01\\\\9\""},
		{"a missing base", "extends: nowhere\nservers: {EX01: {}}\n", "extends \"nowhere\""},
		{"no servers", "about: empty\n", "has no servers"},
		{"a YAML syntax error", "servers: {EX01: {}\n", "t.yaml:"},
		{"an error in an extending file", "extends: base\nservers:\n  EX01:\n    transprt: {}\n", "t.yaml:4: unknown key \"transprt\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseOrg("t.yaml", []byte(tc.file), Options{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// A file extends its base key by key; null removes an entry; extends finds the
// base next to the file first.
func TestOrgFileExtends(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mine.yaml"), []byte(`extends: base
about: mine
servers:
  EX01:
    queues:
      'EX01\7': {MessageCount: 1200}
      'EX01\Poison': null
  EX02: null
send_connectors:
  Internet: {SourceTransportServers: [EX01]}
  Outbound to Office 365 - 5e6f7a8b: null
`), 0o600))
	l, err := LoadOrg(filepath.Join(dir, "mine.yaml"))
	require.NoError(t, err)
	assert.Len(t, l.org.servers, 1)
	q := l.org.servers[0].queues
	require.Len(t, q, 3)
	assert.Equal(t, `EX01\7`, q[2].Identity)
	assert.Equal(t, 1200, q[2].MessageCount)
	assert.Equal(t, "SmartHostConnectorDelivery", q[2].DeliveryType, "the base's other properties stay")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "base.yaml"), []byte("servers: {EX09: {}}\n"), 0o600))
	l, err = LoadOrg(filepath.Join(dir, "mine.yaml"))
	require.NoError(t, err)
	assert.Equal(t, []string{"EX09", "EX01"}, []string{l.org.servers[0].name, l.org.servers[1].name}, "the local base wins")

	_, err = NewOrg("overloaded-queue", Options{Playbook: "smtp-421"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "simulates a ndr-5.5.4 incident, not smtp-421")
}
