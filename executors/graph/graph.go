// Package graph is the Microsoft Graph executor: Microsoft 365 service health, the
// application's change-notification subscriptions, Exchange Online message trace,
// and the reliefs for a Graph 503 on subscription renewal (renew, recreate and
// reconcile the missed window with a delta query).
//
// It signs in as an app registration with client credentials (a client secret or a
// certificate, from env or file) through azidentity, and talks to Graph through
// msgraph-sdk-go on an adapter it builds itself: the cloud key (global, usgov,
// usgovdod, china) or graph_url / authority_url decide the Graph base URL, the only
// host bearer tokens are sent to, and the authority host.
//
// Transient failures — 429, 503, 504 and connection resets — are retried under a
// RetryPolicy bounded by attempts and by the action's deadline (see retry.go). A
// failure that remains is a *RequestError carrying Graph's request-id,
// client-request-id and date.
//
// Every check writes JSON (an object or a list of objects) with PascalCase fields to
// Output.Stdout, the shape the other executors produce. The checks read only ids,
// times and states: no message subjects or bodies, no notification URLs beyond their
// host, never a subscription's clientState.
//
// The SDK is used package by package (models, admin, subscriptions, users) on an
// adapter built from kiota-http-go and msgraph-sdk-go-core, never through
// msgraph-sdk-go's root package: its GraphServiceClient imports every request
// builder of the API (about 190 MB of generated source in v1.89.0, against about
// 50 MB for the packages used here), which every build of the bot would then compile.
package graph

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abs "github.com/microsoft/kiota-abstractions-go"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	khttp "github.com/microsoft/kiota-http-go"
	jsonser "github.com/microsoft/kiota-serialization-json-go"
	textser "github.com/microsoft/kiota-serialization-text-go"
	core "github.com/microsoftgraph/msgraph-sdk-go-core"
	coreauth "github.com/microsoftgraph/msgraph-sdk-go-core/authentication"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
)

// Kind is the executor kind for config and audit.
const Kind = "graph"

// Check names understood by Run (Action.Check).
const (
	CheckServiceHealth        = "service-health"
	CheckSubscriptions        = "subscriptions"
	CheckRenewalProbe         = "renewal-probe"
	CheckMessageTrace         = "message-trace"
	CheckRenewSubscription    = "renew-subscription"
	CheckRecreateSubscription = "recreate-subscription"
	CheckDeltaReconcile       = "delta-reconcile"
)

// DefaultTimeout bounds an action when neither the action nor the target's timeout
// key says otherwise.
const DefaultTimeout = 60 * time.Second

// sdkVersion is sent in the SdkVersion header, as msgraph-sdk-go's own adapter does.
const sdkVersion = "1.89.0"

// Dialer opens the TCP connections of both the Graph and the token requests; tests
// map national-cloud host names to a local fake with one.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Option configures an Executor.
type Option func(*options)

type options struct {
	logger *slog.Logger
	retry  RetryPolicy
	dial   Dialer
	now    func() time.Time
	rand   func() float64
}

// WithLogger sets the logger; the default discards. Nothing secret is ever logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRetryPolicy replaces DefaultRetryPolicy.
func WithRetryPolicy(p RetryPolicy) Option { return func(o *options) { o.retry = p } }

// WithDialer routes every connection (Graph and authority) through d. The TLS
// handshake still verifies the host name the URL names.
func WithDialer(d Dialer) Option { return func(o *options) { o.dial = d } }

// WithClock sets the clock used for expiry arithmetic and renewal times.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// withRand replaces the jitter source (tests).
func withRand(r func() float64) Option { return func(o *options) { o.rand = r } }

// Executor runs Graph checks for one graph target. It is safe for concurrent use.
type Executor struct {
	name     string
	host     string // the one host: the tenant
	tenant   string
	clientID string
	ep       Endpoints
	cred     credentialSource
	retry    RetryPolicy
	timeout  time.Duration
	log      *slog.Logger
	now      func() time.Time
	rand     func() float64

	transport *http.Transport // shared by the credential and the adapter
	authHTTP  *http.Client    // the credential's pipeline transport

	mu      sync.Mutex
	current *session // rebuilt when the credential material changes
}

var _ executors.Executor = (*Executor)(nil)

// session is a credential and the adapter that uses it.
type session struct {
	fingerprint [32]byte
	adapter     abs.RequestAdapter
}

// New builds the executor for graph target t named name. It checks the configuration
// and reads the credential, without contacting Microsoft.
func New(name string, t config.Target, opts ...Option) (*Executor, error) {
	o := options{retry: DefaultRetryPolicy(), now: time.Now, rand: defaultRand}
	for _, opt := range opts {
		opt(&o)
	}
	fail := func(format string, args ...any) (*Executor, error) {
		return nil, fmt.Errorf("graph target %q: "+format, append([]any{name}, args...)...)
	}
	if t.Kind != "" && t.Kind != Kind {
		return fail("kind is %q, not graph", t.Kind)
	}
	if len(t.Endpoints) > 0 {
		return fail("endpoints: not used by graph targets; set cloud or graph_url")
	}
	if t.TenantID == "" || t.ClientID == "" {
		return fail("tenant_id and client_id are required")
	}
	ep, err := ResolveEndpoints(t)
	if err != nil {
		return fail("%w", err)
	}
	if err := o.retry.valid(); err != nil {
		return fail("%w", err)
	}
	if t.Timeout < 0 {
		return fail("timeout %s is negative", t.Timeout)
	}
	e := &Executor{
		name: name, host: t.TenantID, tenant: t.TenantID, clientID: t.ClientID, ep: ep,
		retry: o.retry, timeout: DefaultTimeout, log: o.logger, now: o.now, rand: o.rand,
	}
	if t.Timeout > 0 {
		e.timeout = t.Timeout
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("component", "graph", "target", name)

	e.cred, err = newCredentialSource(t)
	if err != nil {
		return fail("%w", err)
	}
	tlsConf, err := tlsConfig(t)
	if err != nil {
		return fail("%w", err)
	}
	// A clone of the default transport keeps proxies from the environment, HTTP/2 and
	// the default timeouts. RootCAs stays nil (the system roots, which honour
	// SSL_CERT_FILE and SSL_CERT_DIR) unless ca_file adds a CA to them.
	e.transport = http.DefaultTransport.(*http.Transport).Clone()
	e.transport.TLSClientConfig = tlsConf
	e.transport.ForceAttemptHTTP2 = true
	e.transport.ResponseHeaderTimeout = 2 * time.Minute
	if o.dial != nil {
		e.transport.DialContext = o.dial
	}
	e.authHTTP = &http.Client{Transport: e.transport}
	if _, err := e.session(); err != nil { // fail at start, not at the first incident
		return fail("%w", err)
	}
	return e, nil
}

// Kind implements executors.Executor.
func (e *Executor) Kind() string { return Kind }

// Hosts implements executors.Executor. Graph is one service per tenant, not a set of
// servers: a step runs once, and its rows are labelled with the tenant (tenant_id as
// configured, a GUID or a domain), so a finding says which tenant it is about.
func (e *Executor) Hosts() []string { return []string{e.host} }

// Endpoints reports where the target talks to (for `bot config check`).
func (e *Executor) Endpoints() Endpoints { return e.ep }

// String and GoString keep fmt from printing credential material.
func (e *Executor) String() string {
	return fmt.Sprintf("graph executor %q (tenant %s, %s)", e.name, e.tenant, e.ep.GraphURL)
}

// GoString implements fmt.GoStringer for %#v; see String.
func (e *Executor) GoString() string { return e.String() }

// Run implements executors.Executor. host must be the target's one host (Hosts).
func (e *Executor) Run(ctx context.Context, host string, a executors.Action) (executors.Output, error) {
	start := time.Now()
	out := executors.Output{Host: host}
	fail := func(err error) (executors.Output, error) {
		out.Duration = time.Since(start)
		err = fmt.Errorf("graph %s: step %q: check %q: %w", e.name, a.Step, a.Check, err)
		out.Stderr = err.Error()
		return out, err
	}
	if !strings.EqualFold(host, e.host) {
		return fail(fmt.Errorf("host %q is not this target's tenant %q: %w", host, e.host, incident.ErrInvalidInput))
	}
	timeout := e.timeout
	if a.Timeout > 0 {
		timeout = a.Timeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	s, err := e.session()
	if err != nil {
		return fail(err)
	}
	var result any
	switch a.Check {
	case CheckServiceHealth:
		result, err = e.serviceHealth(cctx, s, a.Params)
	case CheckSubscriptions:
		result, err = e.subscriptions(cctx, s, a.Params)
	case CheckRenewalProbe:
		result, err = e.renewalProbe(cctx, s, a.Params)
	case CheckMessageTrace:
		result, err = e.messageTrace(cctx, s, a.Params)
	case CheckRenewSubscription:
		result, err = e.renew(cctx, s, a.Params)
	case CheckRecreateSubscription:
		result, err = e.recreate(cctx, s, a.Params)
	case CheckDeltaReconcile:
		result, err = e.deltaReconcile(cctx, s, a.Params)
	default:
		return fail(executors.ErrUnsupported)
	}
	if err != nil {
		return fail(err)
	}
	b, err := json.Marshal(result)
	if err != nil {
		return fail(fmt.Errorf("encode result: %w", err))
	}
	out.Stdout = b
	out.Duration = time.Since(start)
	e.log.Debug("graph check done", "step", a.Step, "check", a.Check, "duration", out.Duration)
	return out, nil
}

// session returns the adapter for the current credential, rebuilding it when the
// secret or certificate file changed since the last call (a rotated client secret
// is picked up by the next step, without a restart).
func (e *Executor) session() (*session, error) {
	m, err := e.cred.load()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.current != nil && e.current.fingerprint == m.fingerprint {
		return e.current, nil
	}
	cred, err := e.credential(m)
	if err != nil {
		return nil, err
	}
	auth, err := coreauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{e.ep.Scope}, []string{e.ep.GraphHost})
	if err != nil {
		return nil, fmt.Errorf("authentication provider: %w", err)
	}
	adapter, err := khttp.NewNetHttpRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(
		auth, parseNodeFactory(), serializationWriterFactory(), e.graphHTTPClient())
	if err != nil {
		return nil, fmt.Errorf("request adapter: %w", err)
	}
	adapter.SetBaseUrl(e.ep.GraphURL)
	e.current = &session{fingerprint: m.fingerprint, adapter: adapter}
	return e.current, nil
}

// graphHTTPClient is the adapter's client: a fixed middleware chain over the shared
// transport. Order, outermost first:
//
//	telemetry (SdkVersion, a fresh client-request-id per attempt)
//	→ parameter-name decoding (%24filter → $filter)
//	→ user agent
//	→ redirect (drops Authorization when the host changes)
//	→ recorder (the ids of each attempt, for RequestError)
//
// No retry handler (call owns retries) and no compression handler: request bodies
// are tiny, and a compressed body replayed by a retry is kiota-http-go#183.
func (e *Executor) graphHTTPClient() *http.Client {
	mw := []khttp.Middleware{
		core.NewGraphTelemetryHandler(&core.GraphClientOptions{GraphServiceLibraryVersion: sdkVersion}),
		khttp.NewParametersNameDecodingHandler(),
		khttp.NewUserAgentHandler(),
		khttp.NewRedirectHandler(),
		recorder{},
	}
	return &http.Client{
		Transport:     khttp.NewCustomTransportWithParentTransport(e.transport, mw...),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// credential builds the azidentity credential for the loaded material.
func (e *Executor) credential(m material) (azcore.TokenCredential, error) {
	co := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.ep.AuthorityURL},
		Transport: e.authHTTP,
		Retry:     policy.RetryOptions{MaxRetries: 2},
	}
	if m.secret != "" {
		c, err := azidentity.NewClientSecretCredential(e.tenant, e.clientID, m.secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: !e.ep.InstanceDiscovery,
		})
		if err != nil {
			return nil, fmt.Errorf("client secret credential: %w", err)
		}
		return c, nil
	}
	pemData, err := decryptPEMKeys(m.cert, m.certPassword)
	if err != nil {
		return nil, fmt.Errorf("certificate_file: %w", err)
	}
	certs, key, err := azidentity.ParseCertificates(pemData, nil)
	if err != nil {
		// The parser's message names the problem (wrong password, no key), not the key.
		return nil, fmt.Errorf("certificate_file: %w", err)
	}
	c, err := azidentity.NewClientCertificateCredential(e.tenant, e.clientID, certs, key, &azidentity.ClientCertificateCredentialOptions{
		ClientOptions: co, DisableInstanceDiscovery: !e.ep.InstanceDiscovery,
	})
	if err != nil {
		return nil, fmt.Errorf("certificate credential: %w", err)
	}
	return c, nil
}

func parseNodeFactory() absser.ParseNodeFactory {
	r := absser.NewParseNodeFactoryRegistry()
	r.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonParseNodeFactory()
	r.ContentTypeAssociatedFactories["text/plain"] = textser.NewTextParseNodeFactory()
	return r
}

func serializationWriterFactory() absser.SerializationWriterFactory {
	r := absser.NewSerializationWriterFactoryRegistry()
	r.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonSerializationWriterFactory()
	r.ContentTypeAssociatedFactories["text/plain"] = textser.NewTextSerializationWriterFactory()
	return r
}

// credentialSource reads the credential material anew on each use.
type credentialSource struct {
	secret     config.Secret
	secretFile string
	certFile   string
	password   config.Secret
	pwFile     string
}

// material is one reading of the credential; fingerprint identifies it without
// keeping a second copy of the secret around.
type material struct {
	secret       string
	cert         []byte
	certPassword string
	fingerprint  [32]byte
}

func newCredentialSource(t config.Target) (credentialSource, error) {
	hasSecret := t.ClientSecret != "" || t.ClientSecretFile != ""
	switch {
	case hasSecret && t.CertificateFile != "":
		return credentialSource{}, errors.New("client_secret and certificate_file: configure exactly one credential")
	case !hasSecret && t.CertificateFile == "":
		return credentialSource{}, errors.New("no credential: set client_secret (env or client_secret_file) or certificate_file")
	}
	return credentialSource{secret: t.ClientSecret, secretFile: t.ClientSecretFile, certFile: t.CertificateFile,
		password: t.CertificatePassword, pwFile: t.CertificatePasswordFile}, nil
}

func (c credentialSource) load() (material, error) {
	var m material
	h := sha256.New()
	if c.certFile == "" {
		s, err := config.ResolveSecret(c.secret, c.secretFile)
		if err != nil {
			return m, fmt.Errorf("client_secret: %w", err) // names the file, never the content
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

// tlsConfig verifies Graph and the authority against the system roots — which Go
// reads from SSL_CERT_FILE / SSL_CERT_DIR when set — plus ca_file's CAs for a
// TLS-inspecting proxy.
func tlsConfig(t config.Target) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" && t.InsecureSkipVerify {
		return nil, errors.New("ca_file and insecure_skip_verify: set one, not both")
	}
	conf.InsecureSkipVerify = t.InsecureSkipVerify //nolint:gosec // only when configured explicitly
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", t.CAFile)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// authError is a token the authority refused or could not issue.
type authError struct {
	msg   string
	cause error
}

func (e *authError) Error() string   { return e.msg }
func (e *authError) Unwrap() []error { return []error{executors.ErrAuth, e.cause} }

// tokenFailure summarises an azidentity failure in one line — the authority's
// error code and description (AADSTS…, with its trace and correlation ids) — and
// returns nil for other errors.
func (e *Executor) tokenFailure(op string, err error) error {
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) {
		return nil
	}
	authority := strings.TrimSuffix(e.ep.AuthorityURL, "/")
	if u, perr := url.Parse(e.ep.AuthorityURL); perr == nil {
		authority = u.Host
	}
	msg := fmt.Sprintf("graph %s: no token from %s for tenant %s", op, authority, e.tenant)
	if afe.RawResponse != nil {
		msg += fmt.Sprintf(": %d", afe.RawResponse.StatusCode)
		if body, rerr := runtime.Payload(afe.RawResponse); rerr == nil {
			var tokErr struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if json.Unmarshal(body, &tokErr) == nil && tokErr.Error != "" {
				desc, _, _ := strings.Cut(tokErr.Description, "\r\n")
				msg += " " + tokErr.Error + ": " + truncate(desc, 300)
			}
		}
	} else {
		// No answer from the authority (TLS, DNS, the OpenID document): the cause is
		// further down the library's multi-line message.
		msg += ": " + truncate(strings.Join(strings.Fields(afe.Error()), " "), 400)
	}
	return &authError{msg: msg, cause: err}
}
