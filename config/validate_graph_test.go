package config

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// One fixture per failure of a graph target: each must produce exactly one problem,
// on the named key, and never echo a secret.
func TestValidateGraphFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture string
		env     []string
		key     string
		msg     string
		origin  string
	}{
		{fixture: "graph-endpoint", key: "targets.m365.endpoints", msg: "not used by kind graph: cloud (global|usgov|usgovdod|china) or graph_url"},
		{fixture: "graph-tenant-missing", key: "targets.m365.tenant_id", msg: "required: the directory (tenant) ID"},
		{fixture: "graph-tenant-common", key: "targets.m365.tenant_id", msg: `"common" is a multi-tenant alias`},
		{fixture: "graph-tenant-invalid", key: "targets.m365.tenant_id", msg: `"contoso tenant" is neither a GUID nor a domain name`},
		{fixture: "graph-client-id", key: "targets.m365.client_id", msg: `"ndrbot-app" is not a GUID`},
		{fixture: "graph-no-credential", key: "targets.m365.client_secret", msg: "a credential is required: set NDRBOT_TARGETS_M365_CLIENT_SECRET, targets.m365.client_secret_file or targets.m365.certificate_file"},
		{fixture: "graph-two-credentials", key: "targets.m365.certificate_file", msg: "configure exactly one credential"},
		{fixture: "graph-secret-in-file", key: "targets.m365.client_secret", msg: "never the YAML itself: remove it and set NDRBOT_TARGETS_M365_CLIENT_SECRET or targets.m365.client_secret_file", origin: "graph-secret-in-file.yaml:6"},
		{fixture: "graph-secret-and-file", env: []string{"NDRBOT_TARGETS_M365_CLIENT_SECRET=from-env"}, key: "targets.m365.client_secret", msg: "set together with targets.m365.client_secret_file", origin: "env NDRBOT_TARGETS_M365_CLIENT_SECRET"},
		{fixture: "graph-secret-file-missing", key: "targets.m365.client_secret_file", msg: "no such file"},
		{fixture: "graph-cert-no-key", key: "targets.m365.certificate_file", msg: "holds a certificate but no private key"},
		{fixture: "graph-cert-not-pem", key: "targets.m365.certificate_file", msg: "holds no PEM certificate or key"},
		{fixture: "graph-cert-ec", key: "targets.m365.certificate_file", msg: "non-RSA certificate"},
		{fixture: "graph-cert-legacy", key: "targets.m365.certificate_file", msg: "legacy PEM key encryption"},
		{fixture: "graph-cert-encrypted", key: "targets.m365.certificate_password", msg: "is encrypted: set NDRBOT_TARGETS_M365_CERTIFICATE_PASSWORD or targets.m365.certificate_password_file"},
		{fixture: "graph-cert-password-alone", key: "targets.m365.certificate_password", msg: "only applies to certificate_file"},
		{fixture: "graph-cloud", key: "targets.m365.cloud", msg: `"germany" must be one of global, usgov, usgovdod, china`, origin: "graph-cloud.yaml:7"},
		{fixture: "graph-url-http", key: "targets.m365.graph_url", msg: "must be https (plain http only to localhost)"},
		{fixture: "graph-authority-http", key: "targets.m365.authority_url", msg: "must be https: the identity library only talks to an https authority"},
		{fixture: "graph-authority-path", key: "targets.m365.authority_url", msg: "give the authority host only"},
		{fixture: "graph-key-on-winrm", key: "targets.exchange.tenant_id", msg: "not used by kind winrm (only by graph)"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, filepath.Join("testdata", "invalid", tt.fixture+".yaml"), tt.env...)
			err := cfg.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if len(ve.Problems) != 1 {
				t.Fatalf("want exactly one problem, got %d:\n%v", len(ve.Problems), err)
			}
			p := ve.Problems[0]
			if p.Key != tt.key {
				t.Errorf("key = %q, want %q (%v)", p.Key, tt.key, err)
			}
			if !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", p.Msg, tt.msg)
			}
			if !strings.HasSuffix(p.Origin, tt.origin) {
				t.Errorf("origin = %q, want …%q", p.Origin, tt.origin)
			}
			for _, secret := range []string{"hunter2", "from-env", "s3cret-from-file", "pem-pass-phrase", "PRIVATE KEY"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks %q: %v", secret, err)
				}
			}
		})
	}
}

func TestGraphTargetsValid(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "testdata/graph-valid.yaml", "NDRBOT_TARGETS_M365_CLOUD=china")
	if err := cfg.Validate(); err != nil {
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
	if err := cfg.Validate(); err != nil {
		t.Errorf("secret from env: %v", err)
	}
	if got := cfg.Targets["m365"].ClientSecret.Reveal(); got != "from-env" {
		t.Errorf("client_secret = %q", got)
	}
	// Printing shows the keys but never the secret.
	var buf bytes.Buffer
	if err := cfg.Print(&buf); err != nil {
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

func TestCheckGraphURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw       string
		authority bool
		ok        bool
	}{
		{"https://graph.microsoft.us", false, true},
		{"https://graph.microsoft.us/v1.0", false, true},
		{"http://localhost:8080", false, true},
		{"http://127.0.0.1:8080/v1.0", false, true},
		{"http://[::1]:8080", false, true},
		{"http://graph.microsoft.us", false, false},
		{"https://user:pw@graph.microsoft.us", false, false},
		{"https://graph.microsoft.us/?x=1", false, false},
		{"graph.microsoft.us", false, false},
		{"https://login.microsoftonline.us", true, true},
		{"https://login.microsoftonline.us/", true, true},
		{"https://127.0.0.1:8443", true, true},
		{"http://127.0.0.1:8443", true, false},
		{"https://login.microsoftonline.us/tenant", true, false},
	}
	for _, tt := range tests {
		msg := checkGraphURL(tt.raw, tt.authority)
		if (msg == "") != tt.ok {
			t.Errorf("checkGraphURL(%q, authority=%v) = %q, want ok=%v", tt.raw, tt.authority, msg, tt.ok)
		}
	}
	if msg := checkGraphURL("https://u:hunter2@graph.microsoft.us", false); strings.Contains(msg, "hunter2") {
		t.Errorf("message leaks the password: %s", msg)
	}
}
