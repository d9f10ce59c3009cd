// Package entra is what the executors that call Microsoft cloud REST APIs as an
// app registration share: reading the app's credential (a client secret, or a
// certificate whose PEM key may be encrypted) anew on each use, building the
// azidentity credential for a national cloud's authority, summarising a refused
// token request in one line, the retry rules for Microsoft's REST answers
// (Retry-After, connection resets, capped exponential backoff bounded by a
// deadline) and the engine's error kind of a call that failed for good.
// executors/graph and executors/exo sign in, retry and classify through it, so
// both read the same configuration keys and name a failure the same way; the
// fakes their tests run against share entrafake.
package entra

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
)

// Microsoft Entra authority hosts of the national clouds
// (https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud).
// GCC (moderate) tenants sign in at the global authority; GCC High and DoD share
// the US Government one.
const (
	AuthorityGlobal = "https://login.microsoftonline.com/"
	AuthorityUSGov  = "https://login.microsoftonline.us/"
	AuthorityChina  = "https://login.chinacloudapi.cn/"
)

// Authority returns the authority host of a target's cloud key ("" is global).
func Authority(cloudKey string) (string, bool) {
	switch cloudKey {
	case "", config.CloudGlobal:
		return AuthorityGlobal, true
	case config.CloudUSGov, config.CloudUSGovDoD:
		return AuthorityUSGov, true
	case config.CloudChina:
		return AuthorityChina, true
	}
	return "", false
}

// Source reads a target's credential material anew on each use, so a rotated
// secret or certificate file is picked up without a restart.
type Source struct {
	secret     config.Secret
	secretFile string
	certFile   string
	password   config.Secret
	pwFile     string
}

// Material is one reading of the credential; its fingerprint identifies it
// without keeping a second copy of the secret around.
type Material struct {
	secret       string
	cert         []byte
	certPassword string
	fingerprint  [32]byte
}

// NewSource checks that t names exactly one credential: client_secret (env or
// client_secret_file) or certificate_file.
func NewSource(t config.Target) (Source, error) {
	hasSecret := t.ClientSecret != "" || t.ClientSecretFile != ""
	switch {
	case hasSecret && t.CertificateFile != "":
		return Source{}, errors.New("client_secret and certificate_file: configure exactly one credential")
	case !hasSecret && t.CertificateFile == "":
		return Source{}, errors.New("no credential: set client_secret (env or client_secret_file) or certificate_file")
	}
	return Source{secret: t.ClientSecret, secretFile: t.ClientSecretFile, certFile: t.CertificateFile,
		password: t.CertificatePassword, pwFile: t.CertificatePasswordFile}, nil
}

// Load reads the credential. Errors name the key and the file, never the content.
func (c Source) Load() (Material, error) {
	var m Material
	h := sha256.New()
	if c.certFile == "" {
		s, err := config.ResolveSecret(c.secret, c.secretFile)
		if err != nil {
			return m, fmt.Errorf("client_secret: %w", err)
		}
		m.secret = s
		h.Write([]byte("secret\x00" + s))
	} else {
		b, err := os.ReadFile(c.certFile)
		if err != nil {
			return m, fmt.Errorf("certificate_file: %w", err)
		}
		m.cert = b
		if c.password != "" || c.pwFile != "" {
			if m.certPassword, err = config.ResolveSecret(c.password, c.pwFile); err != nil {
				return m, fmt.Errorf("certificate_password: %w", err)
			}
		}
		h.Write([]byte("cert\x00"))
		h.Write(b)
		h.Write([]byte("\x00" + m.certPassword))
	}
	copy(m.fingerprint[:], h.Sum(nil))
	return m, nil
}

// Current holds what was built from the latest reading of a Source — a
// credential, or a request adapter around one — and builds it again only when
// the material changed, so a rotated secret or certificate file is picked up by
// the next use without a restart. Its zero value is empty; it is safe for
// concurrent use.
type Current[T any] struct {
	mu          sync.Mutex
	built       bool
	fingerprint [32]byte
	v           T
}

// Get reads src and returns what build made of it, calling build only when the
// material differs from the last reading's. Errors are src's and build's.
func (c *Current[T]) Get(src Source, build func(Material) (T, error)) (T, error) {
	var zero T
	m, err := src.Load()
	if err != nil {
		return zero, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.built && c.fingerprint == m.fingerprint {
		return c.v, nil
	}
	v, err := build(m)
	if err != nil {
		return zero, err
	}
	c.v, c.fingerprint, c.built = v, m.fingerprint, true
	return v, nil
}

// App is who signs in and where.
type App struct {
	Tenant   string
	ClientID string
	// Authority is the authority host (https://login.microsoftonline.us/); the
	// library appends the tenant.
	Authority string
	// InstanceDiscovery is true only for the global authority: anywhere else (a
	// national cloud, a proxy, a test) the library must not call the public
	// cloud's discovery endpoint.
	InstanceDiscovery bool
	// Transport carries the token requests (TLS settings, dialer).
	Transport policy.Transporter
}

// Credential builds the azidentity client-credentials credential for m.
func (a App) Credential(m Material) (azcore.TokenCredential, error) {
	co := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: a.Authority},
		Transport: a.Transport,
		Retry:     policy.RetryOptions{MaxRetries: 2},
	}
	if m.secret != "" {
		cred, err := azidentity.NewClientSecretCredential(a.Tenant, a.ClientID, m.secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: !a.InstanceDiscovery,
		})
		if err != nil {
			return nil, fmt.Errorf("client secret credential: %w", err)
		}
		return cred, nil
	}
	certs, key, err := ParseCertificate(m.cert, m.certPassword)
	if err != nil {
		return nil, fmt.Errorf("certificate_file: %w", err)
	}
	cred, err := azidentity.NewClientCertificateCredential(a.Tenant, a.ClientID, certs, key, &azidentity.ClientCertificateCredentialOptions{
		ClientOptions: co, DisableInstanceDiscovery: !a.InstanceDiscovery,
	})
	if err != nil {
		return nil, fmt.Errorf("certificate credential: %w", err)
	}
	return cred, nil
}

// ParseCertificate reads certificate_file: PEM, its key decrypted here when
// encrypted (see certs.go), or else PKCS#12, which azidentity opens with the
// password. The parser's messages name the problem (wrong password, no key), not
// the key.
func ParseCertificate(data []byte, password string) ([]*x509.Certificate, crypto.PrivateKey, error) {
	if block, _ := pem.Decode(data); block == nil {
		return azidentity.ParseCertificates(data, []byte(password))
	}
	pemData, err := decryptPEMKeys(data, password)
	if err != nil {
		return nil, nil, err
	}
	return azidentity.ParseCertificates(pemData, nil)
}

// AuthError is a token the authority refused or could not issue.
type AuthError struct {
	msg   string
	cause error
}

func (e *AuthError) Error() string { return e.msg }

// Unwrap exposes executors.ErrAuth and the library's error.
func (e *AuthError) Unwrap() []error { return []error{executors.ErrAuth, e.cause} }

// TokenFailure summarises an azidentity failure in one line — the authority's
// error code and description (AADSTS…, with its trace and correlation ids) — as
// an *AuthError whose message starts with prefix; nil for other errors. The
// request's form (which holds the secret or the signed assertion) is never read.
func TokenFailure(prefix, authorityURL, tenant string, err error) error {
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) {
		return nil
	}
	authority := strings.TrimSuffix(authorityURL, "/")
	if u, perr := url.Parse(authorityURL); perr == nil {
		authority = u.Host
	}
	msg := fmt.Sprintf("%s: no token from %s for tenant %s", prefix, authority, tenant)
	if afe.RawResponse != nil {
		msg += fmt.Sprintf(": %d", afe.RawResponse.StatusCode)
		if body, rerr := runtime.Payload(afe.RawResponse); rerr == nil {
			var tokErr struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if json.Unmarshal(body, &tokErr) == nil && tokErr.Error != "" {
				desc, _, _ := strings.Cut(tokErr.Description, "\r\n")
				msg += " " + tokErr.Error + ": " + Truncate(desc, 300)
			}
		}
	} else {
		// No answer from the authority (TLS, DNS, the OpenID document): the cause is
		// further down the library's multi-line message.
		msg += ": " + Truncate(strings.Join(strings.Fields(afe.Error()), " "), 400)
	}
	return &AuthError{msg: msg, cause: err}
}

// Truncate cuts s to n bytes, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
