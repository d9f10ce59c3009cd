// Package exo is the Exchange Online executor (target kind exo): Exchange Online
// cmdlets without PowerShell, over HTTPS, signed in as an app registration
// (app-only; a certificate preferred, a client secret allowed) through azidentity.
//
// A cmdlet step takes one of two routes, chosen per cmdlet and named on every
// row (the ExoRoute field), in Output.Stderr and in every failure:
//
//   - the Exchange Online Admin API — Microsoft's documented REST surface, in
//     preview, permission Exchange.ManageAsAppV2 — for the cmdlets and
//     parameters its six endpoints take (route.go);
//   - the InvokeCommand endpoint the Exchange Online PowerShell V3 module calls
//     for every other cmdlet. Microsoft does not document it for direct use and
//     may change it: a target uses it only with allow_module_endpoint: true, and
//     a step that needs it is refused otherwise, saying so.
//
// Either way the app's service principal needs an Exchange Online RBAC role that
// holds the cmdlet; a 403 says so. Pages (@odata.nextLink, the same body POSTed
// again) are followed up to a bound of pages and rows, past which the output is
// marked truncated instead of growing without end. 429 and 5xx answers are
// retried under the shared policy (executors/internal/entra), honouring
// Retry-After and bounded by the step's deadline. Rows take the shapes the
// PowerShell remoting executors write (rows.go), so a rule reads the same values
// from an exchange and an exo target.
package exo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/internal/entra"
	"github.com/ndrbot/ndrbot/incident"
)

// Kind is the executor kind for config and audit.
const Kind = config.KindEXO

// Defaults of the bounds an Executor applies.
const (
	DefaultTimeout  = 60 * time.Second
	DefaultMaxPages = 20
	DefaultMaxRows  = 5000
	// DefaultMaxBody bounds one page's answer.
	DefaultMaxBody = 8 << 20
	// DefaultPageSize is asked of InvokeCommand (Prefer: odata.maxpagesize); the
	// Admin API pages at 1,000 by itself.
	DefaultPageSize = 1000
)

// Dialer opens the TCP connections of both the Exchange Online and the token
// requests; tests map the clouds' host names to a local fake with one.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Option configures an Executor.
type Option func(*options)

type options struct {
	logger   *slog.Logger
	retry    entra.RetryPolicy
	dial     Dialer
	rand     func() float64
	maxPages int
	maxRows  int
	maxBody  int
	pageSize int
	retried  func(status int)
}

// WithLogger sets the logger; the default discards. Nothing secret is logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRetried is told of every request sent again after a transient answer.
func WithRetried(f func(status int)) Option { return func(o *options) { o.retried = f } }

// WithRetryPolicy replaces entra.DefaultRetryPolicy.
func WithRetryPolicy(p entra.RetryPolicy) Option { return func(o *options) { o.retry = p } }

// WithDialer routes every connection through d; TLS still verifies the host name
// the URL names.
func WithDialer(d Dialer) Option { return func(o *options) { o.dial = d } }

// WithLimits bounds a step: pages followed, rows kept, bytes of one page. Zero
// keeps a default.
func WithLimits(pages, rows, pageBytes int) Option {
	return func(o *options) {
		if pages > 0 {
			o.maxPages = pages
		}
		if rows > 0 {
			o.maxRows = rows
		}
		if pageBytes > 0 {
			o.maxBody = pageBytes
		}
	}
}

// WithPageSize sets the page size asked of InvokeCommand.
func WithPageSize(n int) Option { return func(o *options) { o.pageSize = n } }

// withRand replaces the jitter source (tests).
func withRand(r func() float64) Option { return func(o *options) { o.rand = r } }

// Executor runs cmdlet steps for one exo target. It is safe for concurrent use.
type Executor struct {
	name        string
	tenant      string
	tenantPath  string
	clientID    string
	ep          Endpoints
	allowModule bool
	source      entra.Source
	http        *http.Client
	authHTTP    *http.Client
	retry       entra.RetryPolicy
	retried     func(status int)
	timeout     time.Duration
	log         *slog.Logger
	rand        func() float64
	maxPages    int
	maxRows     int
	maxBody     int
	pageSize    int

	current entra.Current[*session]
}

// session is the credential of one reading of the credential material.
type session struct {
	cred azcore.TokenCredential
}

var _ executors.Executor = (*Executor)(nil)

// New builds the executor of exo target t named name. It checks the
// configuration and reads the credential, without contacting Microsoft. A
// target with no app registration at all (the default exo target) is not set
// up yet: the error wraps executors.ErrNotConfigured and names the keys to set,
// so the engine skips its steps with that note, as it does a graph target's.
func New(name string, t config.Target, opts ...Option) (*Executor, error) {
	o := options{retry: entra.DefaultRetryPolicy(), rand: rand.Float64, maxPages: DefaultMaxPages,
		maxRows: DefaultMaxRows, maxBody: DefaultMaxBody, pageSize: DefaultPageSize}
	for _, opt := range opts {
		opt(&o)
	}
	fail := func(format string, args ...any) (*Executor, error) {
		return nil, fmt.Errorf("exo target %q: "+format, append([]any{name}, args...)...)
	}
	if t.Kind == "" || t.Kind == Kind {
		kinded := t
		kinded.Kind = Kind
		if err := kinded.RequireApp(name); err != nil {
			return nil, executors.NotConfigured(err)
		}
	}
	switch {
	case t.Kind != "" && t.Kind != Kind:
		return fail("kind is %q, not exo", t.Kind)
	case len(t.Endpoints) > 0:
		return fail("endpoints: not used by exo targets; cloud says where Exchange Online is")
	case t.TenantID == "" || t.ClientID == "":
		return fail("tenant_id and client_id are required")
	case t.Timeout < 0:
		return fail("timeout %s is negative", t.Timeout)
	}
	if err := o.retry.Valid(); err != nil {
		return fail("%w", err)
	}
	ep, err := ResolveEndpoints(t)
	if err != nil {
		return fail("%w", err)
	}
	src, err := entra.NewSource(t)
	if err != nil {
		return fail("%w", err)
	}
	tlsConf, err := t.ClientTLS(true)
	if err != nil {
		return fail("%w", err)
	}
	// A clone of the default transport keeps proxies from the environment, HTTP/2
	// and the default timeouts; ca_file adds a CA to the system roots.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.ForceAttemptHTTP2 = true
	tr.ResponseHeaderTimeout = 2 * time.Minute
	if o.dial != nil {
		tr.DialContext = o.dial
	}
	e := &Executor{
		name: name, tenant: t.TenantID, tenantPath: url.PathEscape(t.TenantID), clientID: t.ClientID, ep: ep,
		allowModule: t.AllowModuleEndpoint, source: src,
		// No redirects: a bearer token is never replayed to another place.
		http: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		authHTTP: &http.Client{Transport: tr},
		retry:    o.retry, retried: o.retried, timeout: DefaultTimeout, log: o.logger, rand: o.rand,
		maxPages: o.maxPages, maxRows: o.maxRows, maxBody: o.maxBody, pageSize: o.pageSize,
	}
	if t.Timeout > 0 {
		e.timeout = t.Timeout
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("component", "exo", "target", name)
	if _, err := e.session(); err != nil { // fail at start, not at the first incident
		return fail("%w", err)
	}
	return e, nil
}

// Kind implements executors.Executor.
func (e *Executor) Kind() string { return Kind }

// Hosts implements executors.Executor: one host, the tenant as configured, so a
// finding says which tenant it is about.
func (e *Executor) Hosts() []string { return []string{e.tenant} }

// Endpoints reports where the target talks to.
func (e *Executor) Endpoints() Endpoints { return e.ep }

// String and GoString keep fmt from printing credential material.
func (e *Executor) String() string {
	return fmt.Sprintf("exo executor %q (tenant %s, %s)", e.name, e.tenant, e.ep.BaseURL)
}

// GoString implements fmt.GoStringer for %#v; see String.
func (e *Executor) GoString() string { return e.String() }

// session returns the credential for the current material, rebuilt when the
// secret or certificate file changed since the last call.
func (e *Executor) session() (*session, error) {
	return e.current.Get(e.source, func(m entra.Material) (*session, error) {
		cred, err := entra.App{Tenant: e.tenant, ClientID: e.clientID, Authority: e.ep.AuthorityURL,
			InstanceDiscovery: e.ep.InstanceDiscovery, Transport: e.authHTTP}.Credential(m)
		if err != nil {
			return nil, err
		}
		return &session{cred: cred}, nil
	})
}

// Run implements executors.Executor: one cmdlet step on the tenant.
func (e *Executor) Run(ctx context.Context, host string, a executors.Action) (executors.Output, error) {
	start := time.Now()
	out := executors.Output{Host: host}
	fail := func(err error) (executors.Output, error) {
		out.Duration = time.Since(start)
		out.Stderr = strings.TrimSpace(out.Stderr + "\n" + err.Error())
		return out, err
	}
	if !strings.EqualFold(host, e.tenant) {
		return fail(fmt.Errorf("exo %s: host %q is not this target's tenant %q: %w", e.name, host, e.tenant, incident.ErrInvalidInput))
	}
	p, err := e.planFor(a)
	if err != nil {
		return fail(fmt.Errorf("exo %s: step %q: %w", e.name, a.Step, err))
	}
	timeout := e.timeout
	if a.Timeout > 0 {
		timeout = a.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := e.session()
	if err != nil {
		return fail(fmt.Errorf("exo %s: %w", e.name, err))
	}
	out.Stderr = fmt.Sprintf("route: %s — %s, POST %s", p.Route, p.Route.describe(), e.opPath(p.URL))

	body, err := json.Marshal(map[string]any{"CmdletInput": map[string]any{"CmdletName": p.Cmdlet, "Parameters": p.Params}})
	if err != nil {
		return fail(fmt.Errorf("exo %s: encode parameters: %w", p.Cmdlet, err))
	}
	rows := []map[string]any{}
	link, pages := p.URL, 0
	for link != "" {
		if pages == e.maxPages || len(rows) >= e.maxRows {
			out.Truncated = true
			out.Stderr += fmt.Sprintf("\noutput truncated: more pages were available after %d page(s) and %d row(s) (limits %d pages, %d rows)",
				pages, len(rows), e.maxPages, e.maxRows)
			break
		}
		if pages > 0 {
			// A continuation is POSTed with the same body and bearer token, so it
			// must lead back to the same Exchange Online origin and route.
			if err := e.checkLink(link, p); err != nil {
				return fail(&RequestError{Cmdlet: p.Cmdlet, Route: p.Route, Op: "POST " + e.opPath(p.URL),
					Code: "BadNextLink", Message: err.Error(), Attempts: 1})
			}
		}
		raw, _, err := e.post(ctx, s, p, link, body)
		if err != nil {
			return fail(err)
		}
		pg, err := decodePage(raw)
		if err != nil {
			return fail(fmt.Errorf("exo %s via %s (page %d): %w", p.Cmdlet, p.Route, pages+1, err))
		}
		pages++
		for _, it := range pg.Items {
			if len(rows) == e.maxRows {
				out.Truncated = true
				break
			}
			rows = append(rows, row(it, p.Select, p.Route))
		}
		link = pg.NextLink
		if out.Truncated {
			out.Stderr += fmt.Sprintf("\noutput truncated: kept the first %d rows (limit %d)", len(rows), e.maxRows)
			break
		}
	}
	b, err := json.Marshal(rows)
	if err != nil {
		return fail(fmt.Errorf("exo %s: encode rows: %w", p.Cmdlet, err))
	}
	out.Stdout = b
	out.Duration = time.Since(start)
	e.log.Debug("exo cmdlet done", "step", a.Step, "cmdlet", p.Cmdlet, "route", p.Route, "pages", pages,
		"rows", len(rows), "truncated", out.Truncated, "duration", out.Duration)
	return out, nil
}

// checkLink accepts an @odata.nextLink only on the target's own origin and below
// the route's own path.
func (e *Executor) checkLink(link string, p plan) error {
	u, err := url.Parse(link)
	if err != nil {
		return fmt.Errorf("@odata.nextLink is not a URL")
	}
	base, _ := url.Parse(e.ep.BaseURL)
	first, _ := url.Parse(p.URL)
	if u.Scheme != base.Scheme || !strings.EqualFold(u.Host, base.Host) || u.User != nil {
		return fmt.Errorf("@odata.nextLink leads to %s://%s, not to %s: not followed", u.Scheme, u.Host, base.Host)
	}
	if !strings.EqualFold(u.Path, first.Path) {
		return fmt.Errorf("@odata.nextLink leads to %s, not to %s: not followed", u.Path, first.Path)
	}
	return nil
}
