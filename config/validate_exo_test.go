package config

import (
	"bytes"
	"strings"
	"testing"
)

func TestEXOTargetsValid(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "testdata/exo-valid.yaml", "NDRBOT_TARGETS_EXO_GOV_ALLOW_MODULE_ENDPOINT=false")
	if err := cfg.Validate(); err != nil {
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
	if err := cfg.Print(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sectionOf(buf.String(), "exo:"), "allow_module_endpoint: true") {
		t.Errorf("printed exo target lacks allow_module_endpoint:\n%s", buf.String())
	}
}
