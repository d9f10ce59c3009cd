// Package probe is the network executor: pure-Go probes that replace `telnet host 25`
// and nslookup in the runbooks — an SMTP dialogue (banner, EHLO, optional STARTTLS,
// QUIT), a plain TCP connect, MX / A / SPF lookups, DNSBL reputation, an SMTP probe
// of a domain's best MX, and the mail-authentication records of a domain as a
// receiver reads them (spf with its lookup count, dmarc, dkim selectors: mailauth.go).
//
// Every probe reports what it observed as a JSON object (or a list of objects) in
// Output.Stdout with PascalCase field names, the shape PowerShell's ConvertTo-Json
// produces, so playbook rules read probe and WinRM results the same way. A probe that
// ran and saw a failure (connection refused, 421, timeout, NXDOMAIN) is a successful
// Run whose Status field says so; Run returns an error only for a malformed action
// (unknown check, missing or invalid parameter) or when the caller cancelled it.
//
// Manners. The 421 seed ("too many connections") is the reason this package is
// careful: the bot diagnosing a connection-limit incident must not itself add to the
// remote server's connection count. Per destination (host:port) an Executor
//   - opens at most one connection at a time;
//   - rate-limits new connections (default one per 10 s, burst 1);
//   - lets concurrent runs asking for the same probe share one connection;
//   - when the rate limit would be exceeded, answers with the most recent result if it
//     is fresh (default < 30 s, marked Cached) and otherwise reports Status "throttled"
//     without connecting.
package probe

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
)

// Kind is the executor kind for config and audit.
const Kind = "probe"

// Check names understood by Run (Action.Check).
const (
	CheckSMTP   = "smtp"
	CheckTCP    = "tcp"
	CheckMX     = "mx"
	CheckDNS    = "dns"
	CheckDNSBL  = "dnsbl"
	CheckSMTPMX = "smtp-mx"
	CheckSPF    = "spf"
	CheckDMARC  = "dmarc"
	CheckDKIM   = "dkim"
)

// Defaults; each can be changed with an Option or the target's config.
const (
	DefaultTimeout    = 10 * time.Second // per check, unless Action.Timeout or Target.Timeout
	DefaultDNSTimeout = 3 * time.Second  // per DNS query attempt (and so per DNSBL zone)
	DefaultRateEvery  = 10 * time.Second // one new connection per destination per …
	DefaultRateBurst  = 1
	DefaultCacheTTL   = 30 * time.Second
	DefaultSMTPPort   = 25
	DefaultResolvConf = "/etc/resolv.conf"
	fallbackHeloName  = "ndrbot.invalid"
	maxMXHosts        = 5
)

// DefaultDNSBLZones are queried by the dnsbl check when the action names no zones.
var defaultDNSBLZones = []string{"zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org"}

// DefaultDNSBLZones returns the zones the dnsbl check queries by default.
func DefaultDNSBLZones() []string { return append([]string(nil), defaultDNSBLZones...) }

// Dialer opens network connections; *net.Dialer satisfies it. Tests and proxies
// inject their own with WithDialer.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Clock tells the time used for rate limits and result freshness (not for network
// deadlines, which follow the context).
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Option configures an Executor.
type Option func(*options)

type options struct {
	dialer     Dialer
	dnsServer  string
	resolvConf string
	dnsTimeout time.Duration
	clock      Clock
	rateEvery  time.Duration
	rateBurst  int
	cacheTTL   time.Duration
	tlsConfig  *tls.Config
	smtpPort   int
	zones      []string
	logger     *slog.Logger
}

// WithDialer replaces the net.Dialer used for SMTP and TCP probes.
func WithDialer(d Dialer) Option { return func(o *options) { o.dialer = d } }

// WithDNSServer sets the recursive resolver ("host:port", port 53 if omitted) used for
// every lookup, including resolving the host names the SMTP/TCP probes dial. The
// default is the first nameserver of /etc/resolv.conf.
func WithDNSServer(addr string) Option { return func(o *options) { o.dnsServer = addr } }

// WithResolvConf reads the default DNS server from another resolv.conf file.
func WithResolvConf(path string) Option { return func(o *options) { o.resolvConf = path } }

// WithDNSTimeout bounds each DNS query attempt (a query is tried at most twice).
func WithDNSTimeout(d time.Duration) Option { return func(o *options) { o.dnsTimeout = d } }

// WithClock replaces the clock used for rate limits and the result cache.
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithRateLimit allows burst new connections per destination, refilled one per every.
func WithRateLimit(every time.Duration, burst int) Option {
	return func(o *options) { o.rateEvery, o.rateBurst = every, burst }
}

// WithCacheTTL sets how long a probe result may be reused instead of connecting
// again when the rate limit would be exceeded. Zero disables reuse.
func WithCacheTTL(d time.Duration) Option { return func(o *options) { o.cacheTTL = d } }

// WithTLSConfig sets the TLS configuration for STARTTLS. ServerName is filled in per
// host when empty. The default verifies certificates against the system roots.
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.tlsConfig = c } }

// WithSMTPPort sets the port the smtp-mx check dials on MX hosts (default 25).
func WithSMTPPort(port int) Option { return func(o *options) { o.smtpPort = port } }

// WithDNSBLZones replaces the default DNSBL zones.
func WithDNSBLZones(zones ...string) Option {
	return func(o *options) { o.zones = append([]string(nil), zones...) }
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Executor runs network probes for one probe target. It is safe for concurrent use;
// its rate limiter and result cache are per Executor.
type Executor struct {
	name      string
	endpoints []string
	byKey     map[string]endpoint // lower-case endpoint as configured → parsed
	helo      string
	timeout   time.Duration
	dialer    Dialer
	dns       *resolver
	tlsConfig *tls.Config
	smtpPort  int
	zones     []string
	guard     *guard
	log       *slog.Logger
}

var _ executors.Executor = (*Executor)(nil)

// New builds the probe executor for target t named name.
func New(name string, t config.Target, opts ...Option) (*Executor, error) {
	o := options{
		resolvConf: DefaultResolvConf,
		dnsTimeout: DefaultDNSTimeout,
		clock:      systemClock{},
		rateEvery:  DefaultRateEvery,
		rateBurst:  DefaultRateBurst,
		cacheTTL:   DefaultCacheTTL,
		smtpPort:   DefaultSMTPPort,
		zones:      defaultDNSBLZones,
	}
	for _, opt := range opts {
		opt(&o)
	}
	fail := func(format string, args ...any) (*Executor, error) {
		return nil, fmt.Errorf("probe target %q: "+format, append([]any{name}, args...)...)
	}

	e := &Executor{
		name:      name,
		endpoints: append([]string(nil), t.Endpoints...),
		byKey:     make(map[string]endpoint, len(t.Endpoints)),
		timeout:   DefaultTimeout,
		dialer:    o.dialer,
		tlsConfig: o.tlsConfig,
		smtpPort:  o.smtpPort,
		log:       o.logger,
	}
	for _, raw := range t.Endpoints {
		ep, err := parseEndpoint(raw, DefaultSMTPPort)
		if err != nil {
			return fail("endpoint %q: %w", raw, err)
		}
		e.byKey[strings.ToLower(raw)] = ep
	}
	if t.Timeout < 0 {
		return fail("timeout %s is negative", t.Timeout)
	}
	if t.Timeout > 0 {
		e.timeout = t.Timeout
	}

	e.helo = t.HeloName
	if e.helo == "" {
		e.helo = fallbackHeloName
		if h, err := os.Hostname(); err == nil && validHostname(h) {
			e.helo = h
		}
	}
	if !validHostname(e.helo) {
		return fail("helo_name %q is not a host name", e.helo)
	}

	if e.dialer == nil {
		e.dialer = &net.Dialer{}
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("component", "probe", "target", name)
	if e.tlsConfig == nil {
		e.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if e.smtpPort < 1 || e.smtpPort > 65535 {
		return fail("smtp port %d out of range", e.smtpPort)
	}
	if o.rateEvery <= 0 || o.rateBurst < 1 {
		return fail("rate limit must allow at least one connection per positive interval (got %d per %s)", o.rateBurst, o.rateEvery)
	}
	if o.cacheTTL < 0 || o.dnsTimeout <= 0 {
		return fail("cache TTL must be >= 0 and DNS timeout > 0")
	}
	if o.clock == nil {
		return fail("nil clock")
	}
	zones, err := validateNames(o.zones)
	if err != nil {
		return fail("dnsbl zones: %w", err)
	}
	e.zones = zones

	server := o.dnsServer
	if server == "" {
		server = systemNameserver(o.resolvConf)
	}
	server, err = normalizeDNSServer(server)
	if err != nil {
		return fail("dns server: %w", err)
	}
	e.dns = newResolver(server, o.dnsTimeout)
	e.guard = newGuard(o.clock, o.rateEvery, o.rateBurst, o.cacheTTL)
	return e, nil
}

// Kind implements executors.Executor.
func (e *Executor) Kind() string { return Kind }

// VantagePoint is the one host a probe target without endpoints reports: the bot's
// own place on the network. The engine runs a step once per host of its target, and
// the DNS checks (mx, dns, dnsbl) and smtp-mx take their subject from the action's
// params, not from the host — so a DNS-only target such as `net` needs exactly one
// host to run them once, and its rows are labelled with this name. The smtp and tcp
// checks dial the host and refuse it.
const VantagePoint = "ndrbot"

// Hosts implements executors.Executor: the target's endpoints in config order, or
// VantagePoint alone when the target has none.
func (e *Executor) Hosts() []string {
	if len(e.endpoints) == 0 {
		return []string{VantagePoint}
	}
	return append([]string(nil), e.endpoints...)
}

// NoEndpointsError is the error of an smtp or tcp check on a probe target that has
// no endpoints (its only host is VantagePoint).
func NoEndpointsError(target string) error {
	return fmt.Errorf("targets.%s has no endpoints to probe; smtp-mx takes the domain from params: %w", target, incident.ErrInvalidInput)
}

// DNSServer reports the resolver address in use (for `ndrbot config check`).
func (e *Executor) DNSServer() string { return e.dns.server }

// Run implements executors.Executor. host must be one of the configured endpoints for
// the smtp and tcp checks (they dial it); the DNS checks and smtp-mx take their
// subject from a.Params and use host only as the row label the engine adds.
func (e *Executor) Run(ctx context.Context, host string, a executors.Action) (executors.Output, error) {
	start := time.Now()
	out := executors.Output{Host: host}
	fail := func(err error) (executors.Output, error) {
		out.Duration = time.Since(start)
		return out, fmt.Errorf("probe %s: step %q: check %q: %w", e.name, a.Step, a.Check, err)
	}

	timeout := e.timeout
	if a.Timeout > 0 {
		timeout = a.Timeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var (
		result any
		err    error
	)
	switch a.Check {
	case CheckSMTP, CheckTCP:
		if len(e.endpoints) == 0 {
			return fail(NoEndpointsError(e.name))
		}
		ep, ok := e.byKey[strings.ToLower(host)]
		if !ok {
			return fail(fmt.Errorf("host %q is not an endpoint of this target: %w", host, incident.ErrInvalidInput))
		}
		if a.Check == CheckTCP {
			result, err = e.tcp(cctx, ep)
			break
		}
		var starttls bool
		if starttls, err = executors.BoolParam(a.Params, "starttls", false); err == nil {
			result, err = e.smtp(cctx, ep, starttls)
		}
	case CheckMX:
		result, err = e.mxCheck(cctx, a.Params)
	case CheckDNS:
		result, err = e.dnsCheck(cctx, a.Params)
	case CheckDNSBL:
		result, err = e.dnsblCheck(cctx, a.Params)
	case CheckSMTPMX:
		result, err = e.smtpMXCheck(cctx, a.Params)
	case CheckSPF:
		result, err = e.spfCheck(cctx, a.Params)
	case CheckDMARC:
		result, err = e.dmarcCheck(cctx, a.Params)
	case CheckDKIM:
		result, err = e.dkimCheck(cctx, a.Params)
	default:
		return fail(executors.ErrUnsupported)
	}
	if err != nil {
		return fail(err)
	}
	// The caller gave up: nothing usable was observed (our own deadline is a result).
	if errors.Is(ctx.Err(), context.Canceled) {
		return fail(ctx.Err())
	}
	b, err := json.Marshal(result)
	if err != nil {
		return fail(fmt.Errorf("encode result: %w", err))
	}
	out.Stdout = b
	out.Duration = time.Since(start)
	e.log.Debug("probe done", "step", a.Step, "check", a.Check, "host", host, "duration", out.Duration)
	return out, nil
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
