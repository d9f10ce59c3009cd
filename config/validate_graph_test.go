package config_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/ndrbot/ndrbot/config"
)

func TestGraphTargetsValid(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "testdata/graph-valid.yaml", "NDRBOT_TARGETS_M365_CLOUD=china")
	if err := cfg.Validate(kinds()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	m365, gov, proxied := cfg.Targets["m365"], cfg.Targets["gov"], cfg.Targets["proxied"]
	if m365.Cloud != CloudChina || cfg.Origin("targets.m365.cloud") != "env NDRBOT_TARGETS_M365_CLOUD" {
		t.Errorf("m365.cloud = %q from %q, want china from the environment", m365.Cloud, cfg.Origin("targets.m365.cloud"))
	}
	if gov.Cloud != CloudUSGov || proxied.Cloud != CloudGlobal {
		t.Errorf("cloud: gov %q, proxied %q (want usgov, and global by default)", gov.Cloud, proxied.Cloud)
	}
	// Relative paths resolve against the config file's directory.
	for key, path := range map[string]string{
		"m365.client_secret_file":       m365.ClientSecretFile,
		"gov.certificate_file":          gov.CertificateFile,
		"gov.certificate_password_file": gov.CertificatePasswordFile,
	} {
		if !filepath.IsAbs(path) {
			t.Errorf("%s = %q, want an absolute path", key, path)
		}
	}
	if s, err := ResolveSecret(m365.ClientSecret, m365.ClientSecretFile); err != nil || s != "s3cret-from-file" {
		t.Errorf("client secret = %q, %v", s, err)
	}
	// A graph target has no endpoints and needs none.
	if err := m365.RequireEndpoints("m365"); err != nil {
		t.Errorf("RequireEndpoints: %v", err)
	}
	if got := cfg.TargetKinds()["gov"]; got != KindGraph {
		t.Errorf("kind = %q", got)
	}

	// The client secret can come from the environment alone.
	cfg = mustLoad(t, "testdata/invalid/graph-no-credential.yaml", "NDRBOT_TARGETS_M365_CLIENT_SECRET=from-env")
	if err := cfg.Validate(kinds()); err != nil {
		t.Errorf("secret from env: %v", err)
	}
	if got := cfg.Targets["m365"].ClientSecret.Reveal(); got != "from-env" {
		t.Errorf("client_secret = %q", got)
	}
	// Printing shows the keys but never the secret.
	var buf bytes.Buffer
	if err := cfg.Print(&buf, kinds()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tenant_id: contoso.onmicrosoft.com", "cloud: global", "client_secret: '[redacted]'"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("printed config lacks %q:\n%s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "from-env") {
		t.Errorf("printed config leaks the secret:\n%s", buf.String())
	}
	// Graph keys stay out of the printout of other kinds.
	if strings.Contains(buf.String(), "exchange:\n") && strings.Contains(sectionOf(buf.String(), "exchange:"), "tenant_id") {
		t.Errorf("winrm target printed with graph keys:\n%s", buf.String())
	}
}

// sectionOf returns the lines of a printed YAML mapping that start at header, up to
// the next line with the same indentation.
func sectionOf(doc, header string) string {
	lines := strings.Split(doc, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != header {
			continue
		}
		indent := len(l) - len(strings.TrimLeft(l, " "))
		var out []string
		for _, m := range lines[i+1:] {
			if strings.TrimSpace(m) != "" && len(m)-len(strings.TrimLeft(m, " ")) <= indent {
				break
			}
			out = append(out, m)
		}
		return strings.Join(out, "\n")
	}
	return ""
}
