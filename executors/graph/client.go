package graph

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	abs "github.com/microsoft/kiota-abstractions-go"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	khttp "github.com/microsoft/kiota-http-go"
	jsonser "github.com/microsoft/kiota-serialization-json-go"
	textser "github.com/microsoft/kiota-serialization-text-go"
	core "github.com/microsoftgraph/msgraph-sdk-go-core"
	coreauth "github.com/microsoftgraph/msgraph-sdk-go-core/authentication"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/internal/entra"
)

// Client is the signed-in connection to Microsoft Graph of one graph target: the
// app registration's credential (client secret, or certificate with its PEM key
// decrypted when certificate_password is set, or PKCS#12), the cloud's endpoints,
// the TLS settings (system roots, which honour SSL_CERT_FILE / SSL_CERT_DIR, plus
// ca_file) and a kiota request adapter whose bearer tokens go to the Graph host only.
//
// The credential is read anew on each use and the adapter rebuilt when it changed,
// so a rotated secret or certificate file is picked up without a restart.
//
// A Client sends each request once: retries are its caller's (the Executor retries
// under its RetryPolicy, the NDR watch at its next poll). It is safe for concurrent
// use.
type Client struct {
	name     string
	tenant   string
	clientID string
	ep       Endpoints
	cred     entra.Source

	transport *http.Transport // shared by the credential and the adapter
	authHTTP  *http.Client    // the credential's pipeline transport

	current entra.Current[*session] // rebuilt when the credential material changes
}

// session is a credential and the adapter that uses it.
type session struct {
	adapter abs.RequestAdapter
}

// NewClient builds the client of graph target t named name. It checks the
// configuration and reads the credential, without contacting Microsoft. Of the
// options only WithDialer concerns a Client; the others configure an Executor.
func NewClient(name string, t config.Target, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return newClient(name, t, o)
}

func newClient(name string, t config.Target, o options) (*Client, error) {
	fail := func(format string, args ...any) (*Client, error) {
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
	c := &Client{name: name, tenant: t.TenantID, clientID: t.ClientID, ep: ep}
	c.cred, err = entra.NewSource(t)
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
	c.transport = http.DefaultTransport.(*http.Transport).Clone()
	c.transport.TLSClientConfig = tlsConf
	c.transport.ForceAttemptHTTP2 = true
	c.transport.ResponseHeaderTimeout = 2 * time.Minute
	if o.dial != nil {
		c.transport.DialContext = o.dial
	}
	c.authHTTP = &http.Client{Transport: c.transport}
	if _, err := c.session(); err != nil { // fail at start, not at the first incident
		return fail("%w", err)
	}
	return c, nil
}

// Endpoints reports where the target talks to: the Graph base URL and host, the
// token scope and the authority.
func (c *Client) Endpoints() Endpoints { return c.ep }

// String and GoString keep fmt from printing credential material.
func (c *Client) String() string {
	return fmt.Sprintf("graph client %q (tenant %s, %s)", c.name, c.tenant, c.ep.GraphURL)
}

// GoString implements fmt.GoStringer for %#v; see String.
func (c *Client) GoString() string { return c.String() }

// Adapter returns the request adapter for the current credential (its base URL is
// Endpoints().GraphURL), rebuilt when the secret or certificate file changed since
// the last call. An error is a credential that cannot be read or used.
func (c *Client) Adapter() (abs.RequestAdapter, error) {
	s, err := c.session()
	if err != nil {
		return nil, err
	}
	return s.adapter, nil
}

// Send sends ri once through the current adapter and returns the answer's body. A
// Graph error answer is an *odataerrors.ODataError when its body parsed and an
// *abs.ApiError when it did not; a token failure is azidentity's error.
func (c *Client) Send(ctx context.Context, ri *abs.RequestInformation) ([]byte, error) {
	s, err := c.session()
	if err != nil {
		return nil, err
	}
	return sendBytes(ctx, s.adapter, ri)
}

// sendBytes sends ri and reads the answer's body as bytes, mapping error answers
// to Graph's OData error.
func sendBytes(ctx context.Context, adapter abs.RequestAdapter, ri *abs.RequestInformation) ([]byte, error) {
	res, err := adapter.SendPrimitive(ctx, ri, "[]byte", errorMapping)
	if err != nil {
		return nil, err
	}
	body, _ := res.([]byte)
	return body, nil
}

// CheckLink parses a link Graph returned (an @odata.nextLink or deltaLink) and
// refuses one that leads anywhere but the Graph host, with the Graph URL's scheme:
// the bearer token is never sent elsewhere.
func (c *Client) CheckLink(link string) (*url.URL, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, fmt.Errorf("link is not a URL: %w", err)
	}
	base, _ := url.Parse(c.ep.GraphURL)
	if !strings.EqualFold(u.Hostname(), c.ep.GraphHost) || u.Scheme != base.Scheme {
		return nil, fmt.Errorf("link leads to %s://%s, not to Graph at %s", u.Scheme, u.Host, c.ep.GraphHost)
	}
	return u, nil
}

// session returns the adapter for the current credential, rebuilding it when the
// secret or certificate file changed since the last call (a rotated client secret
// is picked up by the next request, without a restart).
func (c *Client) session() (*session, error) {
	return c.current.Get(c.cred, c.newSession)
}

// newSession builds the credential for m and the adapter that uses it.
func (c *Client) newSession(m entra.Material) (*session, error) {
	cred, err := c.credential(m)
	if err != nil {
		return nil, err
	}
	auth, err := coreauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{c.ep.Scope}, []string{c.ep.GraphHost})
	if err != nil {
		return nil, fmt.Errorf("authentication provider: %w", err)
	}
	adapter, err := khttp.NewNetHttpRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(
		auth, parseNodeFactory(), serializationWriterFactory(), c.graphHTTPClient())
	if err != nil {
		return nil, fmt.Errorf("request adapter: %w", err)
	}
	adapter.SetBaseUrl(c.ep.GraphURL)
	return &session{adapter: adapter}, nil
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
// No retry handler (the Executor's call owns retries) and no compression handler:
// request bodies are tiny, and a compressed body replayed by a retry is
// kiota-http-go#183. @odata.nextLink and deltaLink are followed by the callers,
// after CheckLink.
func (c *Client) graphHTTPClient() *http.Client {
	mw := []khttp.Middleware{
		core.NewGraphTelemetryHandler(&core.GraphClientOptions{GraphServiceLibraryVersion: sdkVersion}),
		khttp.NewParametersNameDecodingHandler(),
		khttp.NewUserAgentHandler(),
		khttp.NewRedirectHandler(),
		recorder{},
	}
	return &http.Client{
		Transport:     khttp.NewCustomTransportWithParentTransport(c.transport, mw...),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// credential builds the azidentity credential for the loaded material.
func (c *Client) credential(m entra.Material) (azcore.TokenCredential, error) {
	return entra.App{Tenant: c.tenant, ClientID: c.clientID, Authority: c.ep.AuthorityURL,
		InstanceDiscovery: c.ep.InstanceDiscovery, Transport: c.authHTTP}.Credential(m)
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

// tlsConfig verifies Graph and the authority against the system roots — which Go
// reads from SSL_CERT_FILE / SSL_CERT_DIR when set — plus ca_file's CAs for a
// TLS-inspecting proxy.
func tlsConfig(t config.Target) (*tls.Config, error) { return t.ClientTLS(true) }
