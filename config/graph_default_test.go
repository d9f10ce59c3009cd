package config_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/ndrbot/ndrbot/config"
)

// The default graph target has no app registration: the configuration is valid
// (the built-in playbooks lint against it), and RequireApp says what to set.
func TestDefaultGraphTargetIsNotConfiguredYet(t *testing.T) {
	t.Parallel()
	cfg := Default(kinds())
	g, err := cfg.Target("graph")
	if err != nil {
		t.Fatal(err)
	}
	if g.Kind != KindGraph || g.Cloud != CloudGlobal || len(g.Endpoints) != 0 || !g.AppUnset() {
		t.Fatalf("graph = %+v", g)
	}
	if err := cfg.Validate(kinds()); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	if err := g.RequireEndpoints("graph"); err != nil {
		t.Errorf("RequireEndpoints = %v; a graph target has no endpoints", err)
	}
	err = g.RequireApp("graph")
	if !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("RequireApp = %v, want ErrNotConfigured", err)
	}
	for _, w := range []string{`graph target "graph" not configured`, "targets.graph.tenant_id", "targets.graph.client_id",
		"NDRBOT_TARGETS_GRAPH_CLIENT_SECRET", "targets.graph.client_secret_file", "targets.graph.certificate_file"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("RequireApp = %q, want it to name %q", err, w)
		}
	}
	for _, kind := range []string{KindWinRM, KindProbe, KindLab} {
		if err := (Target{Kind: kind}).RequireApp("x"); err != nil {
			t.Errorf("RequireApp on a %s target = %v", kind, err)
		}
	}
}

// Once any identity key is set the target is being configured, and Validate names
// what is missing; a configured target passes RequireApp.
func TestGraphTargetHalfConfigured(t *testing.T) {
	t.Parallel()
	for _, env := range []string{
		"NDRBOT_TARGETS_GRAPH_TENANT_ID=contoso.onmicrosoft.com",
		"NDRBOT_TARGETS_GRAPH_CLIENT_SECRET=s3cret-from-env",
		"NDRBOT_TARGETS_GRAPH_CLIENT_STATE=state-from-env",
	} {
		cfg := mustLoad(t, filepath.Join("testdata", "empty.yaml"), env)
		g := cfg.Targets["graph"]
		if g.AppUnset() {
			t.Errorf("%s: still counted as unset", env)
		}
		err := cfg.Validate(kinds())
		if err == nil || !strings.Contains(err.Error(), "targets.graph.") {
			t.Errorf("%s: Validate = %v, want the missing graph keys named", env, err)
		}
		if err != nil && strings.Contains(err.Error(), "-from-env") {
			t.Errorf("%s: Validate leaks the secret: %v", env, err)
		}
	}
	cfg := mustLoad(t, filepath.Join("testdata", "empty.yaml"),
		"NDRBOT_TARGETS_GRAPH_TENANT_ID=contoso.onmicrosoft.com",
		"NDRBOT_TARGETS_GRAPH_CLIENT_ID=00000000-1111-2222-3333-444444444444",
		"NDRBOT_TARGETS_GRAPH_CLIENT_SECRET=s3cret-from-env",
		"NDRBOT_TARGETS_GRAPH_CLIENT_STATE=state-from-env")
	if err := cfg.Validate(kinds()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	g := cfg.Targets["graph"]
	if err := g.RequireApp("graph"); err != nil {
		t.Errorf("RequireApp = %v", err)
	}
	if g.ClientState.Reveal() != "state-from-env" {
		t.Errorf("client_state = %q", g.ClientState)
	}
}

func TestGraphClientStateAndUnsetTargetFixtures(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ fixture, key, msg string }{
		{"graph-client-state-in-file", "targets.m365.client_state", "NDRBOT_TARGETS_M365_CLIENT_STATE or targets.m365.client_state_file"},
		{"graph-unset-bad-url", "targets.graph.graph_url", "must be https"},
	} {
		cfg := mustLoad(t, filepath.Join("testdata", "invalid", tt.fixture+".yaml"))
		var ve *ValidationError
		if err := cfg.Validate(kinds()); !errors.As(err, &ve) {
			t.Fatalf("%s: Validate = %v", tt.fixture, err)
		}
		if len(ve.Problems) != 1 || ve.Problems[0].Key != tt.key || !strings.Contains(ve.Problems[0].Msg, tt.msg) {
			t.Errorf("%s: problems = %v, want one on %s containing %q", tt.fixture, ve.Problems, tt.key, tt.msg)
		}
		if strings.Contains(ve.Error(), "hunter2") {
			t.Errorf("%s: leaks the secret: %v", tt.fixture, ve)
		}
	}
}
