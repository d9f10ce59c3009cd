package exo

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/exo/exofake"
	"github.com/ndrbot/ndrbot/executors/internal/entra/entrafake"
)

// Each national cloud reaches its own Exchange Online host and authority, and
// asks for a token for its own resource; a certificate (the preferred
// credential) signs the token request.
func TestNationalClouds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cloud, exoHost, loginHost string
	}{
		{config.CloudGlobal, "outlook.office365.com", "login.microsoftonline.com"},
		{config.CloudUSGov, "outlook.office365.us", "login.microsoftonline.us"},
		{config.CloudUSGovDoD, "outlook-dod.office365.us", "login.microsoftonline.us"},
		{config.CloudChina, "outlook.office365.cn", "login.chinacloudapi.cn"},
	}
	for _, tt := range tests {
		t.Run(tt.cloud, func(t *testing.T) {
			t.Parallel()
			fake := exofake.New(t)
			app := entrafake.NewAppCert(t)
			fake.ClientCert = app.Cert
			fake.SetObjects("Get-AcceptedDomain", fixture(t, "accepted-domains.json")[:1]...)
			tg := config.Target{Kind: config.KindEXO, TenantID: fake.Tenant, ClientID: fake.ClientID,
				CertificateFile: app.File, CAFile: fake.CAFile(), Cloud: tt.cloud}
			e, err := New("exo", tg, WithDialer(fake.DialContext), WithRetryPolicy(fastRetry))
			require.NoError(t, err)
			assert.Equal(t, "https://"+tt.exoHost, e.Endpoints().BaseURL)
			assert.Equal(t, tt.cloud == config.CloudGlobal, e.Endpoints().InstanceDiscovery)
			out, err := e.Run(t.Context(), fake.Tenant, executors.Action{Cmdlet: "Get-AcceptedDomain", Timeout: 10 * time.Second})
			require.NoError(t, err)
			assert.Len(t, rowsOf(t, out), 1)
			tok := fake.TokenRequests()
			require.NotEmpty(t, tok)
			for _, r := range tok {
				assert.Equal(t, tt.loginHost, r.Host)
				assert.Equal(t, "https://"+tt.exoHost+"/.default", r.Scope())
			}
			for _, r := range fake.EXORequests() {
				assert.Equal(t, tt.exoHost, r.Host)
			}
			if tt.cloud != config.CloudGlobal {
				for _, r := range fake.Requests() {
					assert.NotEqual(t, "/common/discovery/instance", r.Path, "no instance discovery outside the global cloud")
				}
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	fake := exofake.New(t)
	tests := []struct {
		name string
		edit func(*config.Target)
		want string
	}{
		{"kind", func(t *config.Target) { t.Kind = config.KindGraph }, `kind is "graph"`},
		{"endpoints", func(t *config.Target) { t.Endpoints = []string{"https://outlook.office365.com"} }, "endpoints: not used"},
		{"no tenant", func(t *config.Target) { t.TenantID = "" }, "tenant_id and client_id are required"},
		{"unknown cloud", func(t *config.Target) { t.Cloud = "germany" }, `"germany" is not one of`},
		{"http authority", func(t *config.Target) { t.AuthorityURL = "http://127.0.0.1:1" }, "must be https"},
		{"authority with a path", func(t *config.Target) { t.AuthorityURL = "https://login.microsoftonline.us/contoso" }, "authority host only"},
		{"no credential", func(t *config.Target) { t.ClientSecret = "" }, "no credential"},
		{"two credentials", func(t *config.Target) { t.CertificateFile = "x.pem" }, "exactly one credential"},
		{"negative timeout", func(t *config.Target) { t.Timeout = -time.Second }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := target(fake)
			tt.edit(&tg)
			_, err := New("exo", tg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), `exo target "exo"`)
			assert.NotContains(t, err.Error(), testSecret)
			// Half a configuration is a mistake to fix, not a target left unset.
			assert.NotErrorIs(t, err, executors.ErrNotConfigured)
		})
	}
}

// A target with no app registration at all — the default exo target — is not
// set up yet: New (and the kind's constructor, which the wiring calls) says so
// with executors.ErrNotConfigured and the keys to set, so its steps are skipped
// with that note rather than failed.
func TestNewUnsetIsNotConfigured(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		t    config.Target
	}{
		{"the default exo target", config.Default(config.Kinds{Config()}).Targets["exo"]},
		{"no kind given", config.Target{}},
		{"module endpoint on, still no app", config.Target{Kind: config.KindEXO, AllowModuleEndpoint: true, Cloud: config.CloudUSGov}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for via, build := range map[string]func() error{
				"New":            func() error { _, err := New("exo", tt.t); return err },
				"Describe().New": func() error { _, err := Describe().New("exo", tt.t, executors.Env{}); return err },
			} {
				err := build()
				require.ErrorIs(t, err, executors.ErrNotConfigured, via)
				for _, w := range []string{`exo target "exo" not configured`, "targets.exo.tenant_id", "targets.exo.client_id",
					"NDRBOT_TARGETS_EXO_CLIENT_SECRET", "targets.exo.certificate_file"} {
					assert.Contains(t, err.Error(), w, via)
				}
			}
		})
	}
}
