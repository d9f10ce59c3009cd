package entrafake

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const login = "login.microsoftonline.us"

// site serves a on a Site under the US Government login host.
func site(t *testing.T, a *Authority) (*Site, *http.Client) {
	t.Helper()
	s := StartSite(t, "entrafake", []string{login}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !a.Handle(w, r, body) {
			http.NotFound(w, r)
		}
	}))
	return s, s.CloudClient()
}

// assertion is a client assertion as MSAL writes it, signed with key.
func assertion(t *testing.T, key *rsa.PrivateKey, alg, aud, clientID string) string {
	t.Helper()
	seg := func(v any) string {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now().Unix()
	signed := seg(map[string]any{"alg": alg, "typ": "JWT"}) + "." +
		seg(map[string]any{"aud": aud, "iss": clientID, "sub": clientID, "jti": "1", "nbf": now, "exp": now + 600})
	sum := sha256.Sum256([]byte(signed))
	var sig []byte
	var err error
	if alg == "PS256" {
		sig, err = rsa.SignPSS(rand.Reader, key, crypto.SHA256, sum[:], nil)
	} else {
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	}
	require.NoError(t, err)
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	app, other := NewAppCert(t), NewAppCert(t)
	key, cert, otherKey := app.Key, app.Cert, other.Key
	tokenURL := "https://" + login + "/" + DefaultTenant + "/oauth2/v2.0/token"
	secret := func(s string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {s},
			"scope": {"https://outlook.office365.us/.default openid"}}
	}
	signed := func(k *rsa.PrivateKey, alg, aud, clientID string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "scope": {"https://graph.microsoft.us/.default"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion(t, k, alg, aud, clientID)}}
	}
	edit := func(v url.Values, key, value string) url.Values { v.Set(key, value); return v }
	tests := []struct {
		name   string
		cert   bool
		url    string
		form   url.Values
		status int
		code   string // error, or "" for a token
		desc   string
	}{
		{name: "right secret", form: secret(DefaultClientSecret), status: 200},
		{name: "wrong secret", form: secret("wrong"), status: 401, code: "invalid_client", desc: "AADSTS7000215"},
		{name: "no secret", form: secret(""), status: 401, code: "invalid_client", desc: "AADSTS7000215"},
		{name: "another tenant", url: "https://" + login + "/fabrikam.onmicrosoft.com/oauth2/v2.0/token", form: secret(DefaultClientSecret),
			status: 400, code: "invalid_request", desc: "AADSTS90002"},
		{name: "another app", form: edit(secret(DefaultClientSecret), "client_id", "99999999-0000-0000-0000-000000000000"),
			status: 400, code: "unauthorized_client", desc: "AADSTS700016"},
		{name: "another grant", form: edit(secret(DefaultClientSecret), "grant_type", "password"),
			status: 400, code: "unsupported_grant_type", desc: "AADSTS70003"},
		{name: "no resource scope", form: edit(secret(DefaultClientSecret), "scope", "openid profile"),
			status: 400, code: "invalid_scope", desc: "AADSTS1002012"},
		{name: "assertion RS256", cert: true, form: signed(key, "RS256", tokenURL, DefaultClientID), status: 200},
		{name: "assertion PS256", cert: true, form: signed(key, "PS256", tokenURL, DefaultClientID), status: 200},
		{name: "assertion by another key", cert: true, form: signed(otherKey, "RS256", tokenURL, DefaultClientID),
			status: 401, code: "invalid_client", desc: "AADSTS700027: Client assertion failed signature validation: signature"},
		{name: "assertion for another audience", cert: true, form: signed(key, "RS256", "https://login.microsoftonline.com/"+DefaultTenant+"/oauth2/v2.0/token", DefaultClientID),
			status: 401, code: "invalid_client", desc: "claims"},
		{name: "assertion of another app", cert: true, form: edit(signed(key, "RS256", tokenURL, "99999999-0000-0000-0000-000000000000"), "client_id", DefaultClientID),
			status: 401, code: "invalid_client", desc: "claims"},
		{name: "a secret where a certificate is set", cert: true, form: secret(DefaultClientSecret),
			status: 401, code: "invalid_client", desc: "no client assertion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := NewAuthority("fake-test-token")
			if tt.cert {
				a.ClientCert = cert
			}
			_, c := site(t, a)
			u := tokenURL
			if tt.url != "" {
				u = tt.url
			}
			resp, err := c.PostForm(u, tt.form)
			require.NoError(t, err)
			defer resp.Body.Close()
			var body map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			assert.Equal(t, tt.status, resp.StatusCode, "%v", body)
			if tt.code == "" {
				tok, _ := body["access_token"].(string)
				assert.True(t, strings.HasPrefix(tok, "fake-test-token-"), tok)
				assert.Equal(t, "Bearer", body["token_type"])
				assert.True(t, a.Authorized("Bearer "+tok), "the token it issued is accepted")
				assert.False(t, a.Authorized(tok), "only as a bearer token")
				return
			}
			assert.Equal(t, tt.code, body["error"])
			assert.Contains(t, body["error_description"], tt.desc)
			assert.NotEmpty(t, body["correlation_id"])
		})
	}
}

// A rotated secret is the only one accepted from then on; no token is accepted
// that the authority did not issue.
func TestRotationAndForeignTokens(t *testing.T) {
	t.Parallel()
	a := NewAuthority("fake-test-token")
	_, c := site(t, a)
	post := func(secret string) int {
		resp, err := c.PostForm("https://"+login+"/"+DefaultTenant+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"},
			"client_id": {DefaultClientID}, "client_secret": {secret}, "scope": {"https://graph.microsoft.us/.default"}})
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	a.SetClientSecret("second")
	assert.Equal(t, http.StatusUnauthorized, post(DefaultClientSecret))
	assert.Equal(t, http.StatusOK, post("second"))
	assert.False(t, a.Authorized("Bearer fake-test-token-1-0000000000000000"))
	assert.False(t, a.Authorized(""))
}

// The OpenID configuration and instance discovery name the host and tenant the
// client asked for, so azidentity keeps to the fake.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	a := NewAuthority("fake-test-token")
	_, c := site(t, a)
	get := func(u string) map[string]any {
		resp, err := c.Get(u)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		return m
	}
	oidc := get("https://" + login + "/" + DefaultTenant + "/v2.0/.well-known/openid-configuration")
	assert.Equal(t, "https://"+login+"/"+DefaultTenant+"/oauth2/v2.0/token", oidc["token_endpoint"])
	disc := get("https://" + login + "/common/discovery/instance?api-version=1.1&authorization_endpoint=" +
		url.QueryEscape("https://"+login+"/"+DefaultTenant+"/oauth2/v2.0/authorize"))
	assert.Equal(t, "https://"+login+"/"+DefaultTenant+"/v2.0/.well-known/openid-configuration", disc["tenant_discovery_endpoint"])
	resp, err := c.Get("https://" + login + "/" + DefaultTenant + "/somewhere-else")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "not the authority's route: Handle leaves it")
}
