package graph

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
	"github.com/ndrbot/ndrbot/incident"
)

func TestExecutorContract(t *testing.T) {
	t.Parallel()
	var _ executors.Executor = (*Executor)(nil)
	h := newHarness(t, nil, nil)
	assert.Equal(t, "graph", h.exec.Kind())
	assert.Equal(t, []string{graphfake.DefaultTenant}, h.exec.Hosts(), "one host: the tenant")

	_, err := h.exec.Run(context.Background(), "ex01.contoso.com", executors.Action{Check: CheckSubscriptions})
	assert.ErrorIs(t, err, incident.ErrInvalidInput)
	out, err := h.run(t, "get-queue", nil, time.Second)
	assert.ErrorIs(t, err, executors.ErrUnsupported)
	assert.Equal(t, err.Error(), out.Stderr)
	assert.Empty(t, h.fake.Requests())
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	fake := graphfake.New(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	tests := []struct {
		name string
		edit func(*config.Target)
		want string
	}{
		{"endpoints", func(t *config.Target) { t.Endpoints = []string{"https://graph.microsoft.com"} }, "endpoints: not used"},
		{"no tenant", func(t *config.Target) { t.TenantID = "" }, "tenant_id and client_id are required"},
		{"unknown cloud", func(t *config.Target) { t.Cloud = "germany" }, `"germany" is not one of`},
		{"http authority", func(t *config.Target) { t.AuthorityURL = "http://127.0.0.1:1" }, "must be https"},
		{"two credentials", func(t *config.Target) { t.CertificateFile = "testdata/app.pem" }, "exactly one credential"},
		{"no credential", func(t *config.Target) { t.ClientSecret = "" }, "no credential"},
		{"empty secret file", func(t *config.Target) { t.ClientSecret, t.ClientSecretFile = "", empty }, "is empty"},
		{"kind", func(t *config.Target) { t.Kind = "winrm" }, `kind is "winrm"`},
		{"ca and insecure", func(t *config.Target) { t.InsecureSkipVerify = true }, "set one, not both"},
		{"encrypted key without password", func(t *config.Target) { t.ClientSecret, t.CertificateFile = "", "testdata/app-encrypted.pem" }, "set certificate_password"},
		{"wrong password", func(t *config.Target) {
			t.ClientSecret, t.CertificateFile, t.CertificatePassword = "", "testdata/app-encrypted.pem", "not-the-PASSWORD"
		}, "wrong certificate_password"},
		{"not a certificate", func(t *config.Target) { t.ClientSecret, t.CertificateFile = "", empty }, "certificate_file"},
	}
	for _, tt := range tests {
		tg := target(fake)
		tt.edit(&tg)
		_, err := New("m365", tg)
		require.Error(t, err, tt.name)
		assert.Contains(t, err.Error(), tt.want, tt.name)
		assert.NotContains(t, err.Error(), "not-the-PASSWORD", tt.name)
		assert.NotContains(t, err.Error(), "fake-client-secret", tt.name)
	}
	assert.Empty(t, fake.Requests(), "New contacts nobody")
}

func TestCertificateCredential(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/app.pem")
	require.NoError(t, err)
	block, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	for _, tt := range []struct {
		name, file, password string
	}{
		{"plain key", "testdata/app.pem", ""},
		{"encrypted key (PBES2)", "testdata/app-encrypted.pem", "pem-pass-phrase"},
		{"PKCS#12 with a password", "testdata/app.p12", "p12-pass-phrase"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, []graphfake.Option{graphfake.WithClientCert(cert)}, func(tg *config.Target) {
				tg.ClientSecret, tg.CertificateFile, tg.CertificatePassword = "", tt.file, config.Secret(tt.password)
			})
			_, err := h.run(t, CheckSubscriptions, nil, 10*time.Second)
			require.NoError(t, err)
			tok := h.fake.TokenRequests()
			require.Len(t, tok, 1)
			form, err := url.ParseQuery(string(tok[0].Body))
			require.NoError(t, err)
			assert.Empty(t, form.Get("client_secret"))
			assert.NotEmpty(t, form.Get("client_assertion"), "signed and verified by the fake")
		})
	}
}

// A rotated client_secret_file is picked up by the next step, without a restart.
func TestSecretRotation(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "client-secret")
	require.NoError(t, os.WriteFile(file, []byte("first-SECRET\n"), 0o600))
	h := newHarness(t, []graphfake.Option{graphfake.WithClientSecret("first-SECRET")}, func(tg *config.Target) {
		tg.ClientSecret, tg.ClientSecretFile = "", file
	})
	_, err := h.run(t, CheckSubscriptions, nil, 10*time.Second)
	require.NoError(t, err)

	h.fake.SetClientSecret("second-SECRET")
	require.NoError(t, os.WriteFile(file, []byte("second-SECRET\n"), 0o600))
	_, err = h.run(t, CheckSubscriptions, nil, 10*time.Second)
	require.NoError(t, err)
	tok := h.fake.TokenRequests()
	require.Len(t, tok, 2)
	assert.Contains(t, string(tok[1].Body), "client_secret=second-SECRET")
}

// No secret — client secret, bearer token, certificate password, clientState — in
// an error, the output, the logs or a printed executor.
func TestNoSecretsInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	wrong := "Wr0ng~SECRET-also-never-printed"
	t.Run("refused credential", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, func(tg *config.Target) { tg.ClientSecret = config.Secret(wrong) })
		out, err := h.run(t, CheckSubscriptions, nil, 10*time.Second)
		require.Error(t, err)
		assert.ErrorIs(t, err, executors.ErrAuth)
		assert.Contains(t, err.Error(), "AADSTS7000215", "the authority's reason is shown")
		assert.NotContains(t, err.Error(), "\n", "one line")
		everything := err.Error() + out.Stderr + string(out.Stdout) + h.logs.String() + fmt.Sprintf("%v %+v %#v %s", h.exec, h.exec, h.exec, h.exec)
		assert.NotContains(t, everything, wrong)
		assert.NotContains(t, everything, testSecret)
	})
	t.Run("storm, retries logged", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, nil)
		h.fake.PutSubscription(graphfake.Subscription{ID: "s1", Resource: "users/a@contoso.com/messages", ChangeType: "created",
			NotificationURL: "https://hooks.contoso.com/n?code=url-SECRET", ClientState: "state-SECRET", Expiration: time.Now().Add(time.Hour)})
		h.fake.AddFault(graphfake.Fault{Method: "PATCH", Path: "/subscriptions", Times: -1})
		out, err := h.run(t, CheckRenewSubscription, map[string]any{"subscription_id": "s1"}, 3*time.Second)
		require.Error(t, err)
		_, err2 := h.run(t, CheckRecreateSubscription, map[string]any{"subscription_id": "s1", "client_state": "new-state-SECRET"}, 3*time.Second)
		require.Error(t, err2)
		everything := err.Error() + err2.Error() + out.Stderr + string(out.Stdout) + h.logs.String() + fmt.Sprintf("%v %+v %#v", h.exec, h.exec, h.exec)
		require.Contains(t, h.logs.String(), "graph request retried", "debug logs were written")
		for _, secret := range []string{testSecret, "state-SECRET", "url-SECRET"} {
			assert.NotContains(t, everything, secret)
		}
		for _, r := range h.fake.GraphRequests("", "/") {
			token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			require.NotEmpty(t, token)
			assert.NotContains(t, everything, token, "bearer token leaked")
		}
	})
}
