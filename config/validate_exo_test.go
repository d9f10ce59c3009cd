package config_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/ndrbot/ndrbot/config"
)

func TestEXOTargetsValid(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "testdata/exo-valid.yaml", "NDRBOT_TARGETS_EXO_GOV_ALLOW_MODULE_ENDPOINT=false")
	if err := cfg.Validate(kinds()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	exo, gov := cfg.Targets["exo"], cfg.Targets["exo-gov"]
	if exo.Kind != KindEXO || !exo.AllowModuleEndpoint || exo.Cloud != CloudGlobal || exo.Timeout.String() != "2m0s" {
		t.Errorf("exo = kind %q, allow_module_endpoint %v, cloud %q, timeout %s", exo.Kind, exo.AllowModuleEndpoint, exo.Cloud, exo.Timeout)
	}
	if gov.AllowModuleEndpoint || gov.Cloud != CloudUSGov {
		t.Errorf("exo-gov = allow_module_endpoint %v, cloud %q; want off (the default) and usgov", gov.AllowModuleEndpoint, gov.Cloud)
	}
	// An exo target has no endpoints and needs none.
	if err := exo.RequireEndpoints("exo"); err != nil {
		t.Errorf("RequireEndpoints: %v", err)
	}
	// The module endpoint can be turned on from the environment alone.
	cfg = mustLoad(t, "testdata/exo-valid.yaml", "NDRBOT_TARGETS_EXO_GOV_ALLOW_MODULE_ENDPOINT=true")
	if !cfg.Targets["exo-gov"].AllowModuleEndpoint {
		t.Error("NDRBOT_TARGETS_EXO_GOV_ALLOW_MODULE_ENDPOINT=true not applied")
	}
	var buf bytes.Buffer
	if err := cfg.Print(&buf, kinds()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sectionOf(buf.String(), "exo:"), "allow_module_endpoint: true") {
		t.Errorf("printed exo target lacks allow_module_endpoint:\n%s", buf.String())
	}
}

// The default exo target has no app registration, as the default graph target:
// the defaults validate (the built-in playbooks lint against them), the
// InvokeCommand route is off, and RequireApp names what to set.
func TestDefaultEXOTargetIsNotConfiguredYet(t *testing.T) {
	t.Parallel()
	cfg := Default(kinds())
	exo, err := cfg.Target("exo")
	if err != nil {
		t.Fatal(err)
	}
	if exo.Kind != KindEXO || exo.Cloud != CloudGlobal || len(exo.Endpoints) != 0 || exo.AllowModuleEndpoint || !exo.AppUnset() {
		t.Fatalf("exo = %+v", exo)
	}
	if err := cfg.Validate(kinds()); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	err = exo.RequireApp("exo")
	if !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("RequireApp = %v, want ErrNotConfigured", err)
	}
	for _, w := range []string{`exo target "exo" not configured`, "targets.exo.tenant_id", "targets.exo.client_id",
		"NDRBOT_TARGETS_EXO_CLIENT_SECRET", "targets.exo.client_secret_file", "targets.exo.certificate_file", `"Exchange Online" section`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("RequireApp = %q, want it to name %q", err, w)
		}
	}
	// Turning the module endpoint on registers no app: still not configured.
	exo.AllowModuleEndpoint = true
	if !errors.Is(exo.RequireApp("exo"), ErrNotConfigured) {
		t.Error("allow_module_endpoint alone counts as an app registration")
	}
}

// Once any identity key of the exo target is set it is being configured, and
// Validate names what is still missing (never the secret); a configured target
// passes RequireApp.
func TestEXOTargetHalfConfigured(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  string
		want []string // keys Validate must name
	}{
		{"NDRBOT_TARGETS_EXO_TENANT_ID=contoso.onmicrosoft.com", []string{"targets.exo.client_id", "targets.exo.client_secret"}},
		{"NDRBOT_TARGETS_EXO_CLIENT_ID=00000000-1111-2222-3333-444444444444", []string{"targets.exo.tenant_id", "targets.exo.client_secret"}},
		{"NDRBOT_TARGETS_EXO_CLIENT_SECRET=s3cret-from-env", []string{"targets.exo.tenant_id", "targets.exo.client_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, filepath.Join("testdata", "empty.yaml"), tt.env)
			if cfg.Targets["exo"].AppUnset() {
				t.Fatal("still counted as unset")
			}
			var ve *ValidationError
			if err := cfg.Validate(kinds()); !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want the missing exo keys named", err)
			}
			var keys []string
			for _, p := range ve.Problems {
				keys = append(keys, p.Key)
			}
			if !slices.Equal(keys, tt.want) {
				t.Errorf("problems on %v, want %v", keys, tt.want)
			}
			if strings.Contains(ve.Error(), "-from-env") {
				t.Errorf("Validate leaks the secret: %v", ve)
			}
		})
	}
	cfg := mustLoad(t, filepath.Join("testdata", "empty.yaml"),
		"NDRBOT_TARGETS_EXO_TENANT_ID=contoso.onmicrosoft.com",
		"NDRBOT_TARGETS_EXO_CLIENT_ID=00000000-1111-2222-3333-444444444444",
		"NDRBOT_TARGETS_EXO_CLIENT_SECRET=s3cret-from-env")
	if err := cfg.Validate(kinds()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := cfg.Targets["exo"].RequireApp("exo"); err != nil {
		t.Errorf("RequireApp = %v", err)
	}
}
