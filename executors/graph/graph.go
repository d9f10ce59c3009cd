// Package graph is the Microsoft Graph executor: Microsoft 365 service health, the
// application's change-notification subscriptions, Exchange Online message trace,
// and the reliefs for a Graph 503 on subscription renewal (renew, recreate and
// reconcile the missed window with a delta query).
//
// It signs in as an app registration with client credentials (a client secret or a
// certificate, from env or file) through azidentity, and talks to Graph through
// msgraph-sdk-go on an adapter it builds itself: the cloud key (global, usgov,
// usgovdod, china) or graph_url / authority_url decide the Graph base URL, the only
// host bearer tokens are sent to, and the authority host. That connection is a
// Client (client.go), which other packages — the NDR watch's mailbox source — use
// through NewClient, so they sign in and reach Graph exactly as the checks do.
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
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/internal/entra"
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
	CheckSubscriptionLookup   = "subscription-lookup"
)

// DefaultTimeout bounds an action when neither the action nor the target's timeout
// key says otherwise.
const DefaultTimeout = 60 * time.Second

// sdkVersion is sent in the SdkVersion header, as msgraph-sdk-go's own adapter does.
const sdkVersion = "1.89.0"

// Dialer opens the TCP connections of both the Graph and the token requests; tests
// map national-cloud host names to a local fake with one.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Option configures an Executor or a Client (NewClient reads only WithDialer).
type Option func(*options)

type options struct {
	logger  *slog.Logger
	retry   RetryPolicy
	dial    Dialer
	now     func() time.Time
	rand    func() float64
	retried func(status int)
}

// WithLogger sets the logger; the default discards. Nothing secret is ever logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRetried is told of every request sent again after a transient answer.
func WithRetried(f func(status int)) Option { return func(o *options) { o.retried = f } }

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
	name   string
	host   string // the one host: the tenant
	tenant string
	ep     Endpoints
	client *Client
	// clientState is what recreate-subscription gives the new subscription.
	clientState     config.Secret
	clientStateFile string
	retry           RetryPolicy
	retried         func(status int)
	timeout         time.Duration
	log             *slog.Logger
	now             func() time.Time
	rand            func() float64
}

var _ executors.Executor = (*Executor)(nil)

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
	if err := o.retry.valid(); err != nil {
		return fail("%w", err)
	}
	if t.Timeout < 0 {
		return fail("timeout %s is negative", t.Timeout)
	}
	c, err := newClient(name, t, o)
	if err != nil {
		return nil, err
	}
	e := &Executor{
		name: name, host: t.TenantID, tenant: t.TenantID, ep: c.ep, client: c,
		clientState: t.ClientState, clientStateFile: t.ClientStateFile,
		retry: o.retry, retried: o.retried, timeout: DefaultTimeout, log: o.logger, now: o.now, rand: o.rand,
	}
	if t.Timeout > 0 {
		e.timeout = t.Timeout
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("component", "graph", "target", name)
	return e, nil
}

// Kind implements executors.Executor.
func (e *Executor) Kind() string { return Kind }

// Hosts implements executors.Executor. Graph is one service per tenant, not a set of
// servers: a step runs once, and its rows are labelled with the tenant (tenant_id as
// configured, a GUID or a domain), so a finding says which tenant it is about.
func (e *Executor) Hosts() []string { return []string{e.host} }

// Endpoints reports where the target talks to (for `ndrbot config check`).
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

	s, err := e.client.session()
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
		var p map[string]any
		if p, err = e.withClientState(a); err == nil {
			result, err = e.recreate(cctx, s, p)
		}
	case CheckDeltaReconcile:
		result, err = e.deltaReconcile(cctx, s, a.Params)
	case CheckSubscriptionLookup:
		result, err = e.lookup(cctx, s, a.Params)
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

// tokenFailure summarises an azidentity failure in one line — the authority's
// error code and description (AADSTS…, with its trace and correlation ids) — and
// returns nil for other errors (entra.TokenFailure).
func (e *Executor) tokenFailure(op string, err error) error {
	return entra.TokenFailure("graph "+op, e.ep.AuthorityURL, e.tenant, err)
}

// withClientState adds the target's client_state to a recreate's parameters. The
// secret comes from the configuration here, below the engine, and never through
// the playbook: a playbook's arguments are shown on the approval card and kept
// with the run.
func (e *Executor) withClientState(a executors.Action) (map[string]any, error) {
	if v, ok := a.Params["client_state"]; ok && v != "" {
		return a.Params, nil // a direct caller of the executor chose it
	}
	key := "targets." + e.name + ".client_state"
	state, err := config.ResolveSecret(e.clientState, e.clientStateFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if state == "" {
		return nil, fmt.Errorf("parameter %q is required: the new subscription needs the clientState the app's notification receiver checks: set %s or %s_file: %w",
			"client_state", config.EnvName(key), key, incident.ErrInvalidInput)
	}
	p := make(map[string]any, len(a.Params)+1)
	maps.Copy(p, a.Params)
	p["client_state"] = state
	return p, nil
}
