// Package entrafake is test support for the fakes of the Microsoft cloud
// services that executors/graph and executors/exo call as an app registration
// (graphfake, exofake): one fake of the Microsoft identity platform authority
// they both sign in at, a TLS site that answers under the clouds' real host
// names, and the helpers their tests share.
//
// Shapes follow Microsoft Learn: "OAuth 2.0 client credentials flow"
// (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-credentials-grant:
// the form, the token answer, the error answer with error_codes, trace_id and
// correlation_id) and "Certificate credentials"
// (https://learn.microsoft.com/entra/identity-platform/certificate-credentials:
// a client_assertion JWT signed by the certificate's key, aud the token
// endpoint, iss and sub the client id). The AADSTS codes are the ones Entra
// returns for each refusal; their descriptions are shortened.
package entrafake

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Default identity of the fake tenant and app.
const (
	DefaultTenant       = "contoso.onmicrosoft.com"
	DefaultClientID     = "00000000-1111-2222-3333-444444444444"
	DefaultClientSecret = "fake-client-secret"
)

// Authority is a fake Microsoft identity platform authority for one tenant and
// one app: the client credentials grant of /{tenant}/oauth2/v2.0/token (a client
// secret, or a client assertion signed by the app's certificate), the OpenID
// configuration and instance discovery. It serves on the fake that embeds it
// (Handle), and that fake accepts only the bearer tokens it issued (Authorized).
type Authority struct {
	Tenant   string
	ClientID string
	// ClientSecret is the secret the token endpoint accepts; SetClientSecret
	// changes it while requests may be in flight (a rotation).
	ClientSecret string
	// ClientCert, when set, is the certificate whose key must sign client
	// assertions, and no secret is accepted.
	ClientCert *x509.Certificate

	tokenPrefix string

	mu     sync.Mutex
	tokens map[string]bool
	issued int
}

// NewAuthority is an authority for DefaultTenant and DefaultClientID that
// accepts DefaultClientSecret. Its access tokens start with tokenPrefix, so a
// test can look for one that leaked.
func NewAuthority(tokenPrefix string) *Authority {
	return &Authority{Tenant: DefaultTenant, ClientID: DefaultClientID, ClientSecret: DefaultClientSecret,
		tokenPrefix: tokenPrefix, tokens: map[string]bool{}}
}

// SetClientSecret changes the secret the token endpoint accepts.
func (a *Authority) SetClientSecret(secret string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ClientSecret = secret
}

func (a *Authority) secret() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ClientSecret
}

// Authorized reports an Authorization header that carries a bearer token this
// authority issued.
func (a *Authority) Authorized(header string) bool {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	a.mu.Lock()
	defer a.mu.Unlock()
	return ok && a.tokens[tok]
}

// IsTokenPath reports the path of a token endpoint.
func IsTokenPath(path string) bool { return strings.HasSuffix(path, "/oauth2/v2.0/token") }

// ResourceScope is the "…/.default" scope of a token request form (MSAL adds
// openid, profile and offline_access), or "".
func ResourceScope(form url.Values) string {
	for _, sc := range strings.Fields(form.Get("scope")) {
		if strings.HasSuffix(sc, "/.default") {
			return sc
		}
	}
	return ""
}

// Scope is the resource scope of a token request's body.
func Scope(body []byte) string {
	form, _ := url.ParseQuery(string(body))
	return ResourceScope(form)
}

// Handle answers r when its path is one of the authority's routes and reports
// whether it was; body is r's body, which the caller has read (to record it).
func (a *Authority) Handle(w http.ResponseWriter, r *http.Request, body []byte) bool {
	switch {
	case IsTokenPath(r.URL.Path) && r.Method == http.MethodPost:
		a.token(w, r, body)
	case strings.HasSuffix(r.URL.Path, "/v2.0/.well-known/openid-configuration"):
		a.openID(w, r)
	case r.URL.Path == "/common/discovery/instance":
		a.instanceDiscovery(w, r)
	default:
		return false
	}
	return true
}

func tenantOf(path string) string {
	t, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return t
}

func (a *Authority) openID(w http.ResponseWriter, r *http.Request) {
	base := "https://" + r.Host + "/" + tenantOf(r.URL.Path)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"issuer":                                base + "/v2.0",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
	})
}

// instanceDiscovery answers for the authority the client names (its
// authorization_endpoint), else for the host asked and this tenant.
func (a *Authority) instanceDiscovery(w http.ResponseWriter, r *http.Request) {
	ae, _ := url.Parse(r.URL.Query().Get("authorization_endpoint"))
	host, tenant := r.Host, a.Tenant
	if ae != nil && ae.Host != "" {
		host, tenant = ae.Host, tenantOf(ae.Path)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": "https://" + host + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata":                  []map[string]any{{"preferred_network": host, "preferred_cache": host, "aliases": []string{host}}},
	})
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]any{
		"error": code, "error_description": desc + "\r\nTrace ID: 0000\r\nCorrelation ID: 0000\r\nTimestamp: 2026-05-15 00:05:19Z",
		"error_codes": []int{0}, "trace_id": "0000", "correlation_id": "0000",
	})
}

func (a *Authority) token(w http.ResponseWriter, r *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: malformed body")
		return
	}
	tenant := tenantOf(r.URL.Path)
	switch {
	case !strings.EqualFold(tenant, a.Tenant):
		tokenError(w, http.StatusBadRequest, "invalid_request", "AADSTS90002: Tenant '"+tenant+"' not found.")
		return
	case form.Get("grant_type") != "client_credentials":
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: grant type not supported")
		return
	case form.Get("client_id") != a.ClientID:
		tokenError(w, http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application with identifier '"+form.Get("client_id")+"' was not found in the directory.")
		return
	case ResourceScope(form) == "":
		tokenError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid.")
		return
	}
	if a.ClientCert != nil {
		if err := a.verifyAssertion(form, "https://"+r.Host+r.URL.Path); err != nil {
			tokenError(w, http.StatusUnauthorized, "invalid_client", "AADSTS700027: Client assertion failed signature validation: "+err.Error())
			return
		}
	} else if secret := a.secret(); form.Get("client_secret") != secret || secret == "" {
		tokenError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+a.ClientID+"'.")
		return
	}
	a.mu.Lock()
	a.issued++
	tok := fmt.Sprintf("%s-%d-%s", a.tokenPrefix, a.issued, randomHex(8))
	a.tokens[tok] = true
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok,
	})
}

// verifyAssertion checks a client_assertion JWT (PS256 or RS256) against the
// configured certificate's key, and its audience, issuer and subject.
func (a *Authority) verifyAssertion(form url.Values, tokenURL string) error {
	if form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		return fmt.Errorf("no client assertion")
	}
	parts := strings.Split(form.Get("client_assertion"), ".")
	if len(parts) != 3 {
		return fmt.Errorf("assertion is not a JWT")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Aud string `json:"aud"`
		Iss string `json:"iss"`
		Sub string `json:"sub"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return err
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return err
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	pub, ok := a.ClientCert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("configured certificate is not RSA")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch hdr.Alg {
	case "PS256":
		err = rsa.VerifyPSS(pub, crypto.SHA256, sum[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	case "RS256":
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
	default:
		err = fmt.Errorf("alg %q", hdr.Alg)
	}
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	if claims.Iss != a.ClientID || claims.Sub != a.ClientID || !strings.EqualFold(claims.Aud, tokenURL) {
		return fmt.Errorf("claims iss=%q sub=%q aud=%q", claims.Iss, claims.Sub, claims.Aud)
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeJSON writes an authority answer: JSON with the content type Entra sends.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
