// Package psrp runs cmdlet steps on Exchange's remote PowerShell endpoint
// (/PowerShell, configuration Microsoft.Exchange) and on JEA endpoints, speaking
// the PowerShell Remoting Protocol ([MS-PSRP]) over WS-Management with
// github.com/masterzen/winrm as the SOAP/HTTP stack.
//
// A step is one command with typed parameters, sent as a CREATE_PIPELINE whose
// command has IsScript=false: the server binds the parameters as values and
// never parses text, which is also the only thing no-language endpoints (Exchange,
// JEA) accept. Each endpoint keeps one runspace pool (a WS-Man shell), opened on
// first use and shared by every Run, at most max_concurrency pipelines at a time,
// closed after idle_timeout or by Close.
package psrp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/psrp/internal/wire"
	"github.com/ndrbot/ndrbot/executors/wsman"
	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// Defaults for target keys left empty.
const (
	DefaultMaxConcurrency   = 4
	DefaultIdleTimeout      = 5 * time.Minute
	DefaultOperationTimeout = 20 * time.Second
	DefaultMaxOutputBytes   = 1 << 20
	// DefaultCleanupTimeout bounds each Signal and Delete sent after a step ends,
	// including one that timed out: the server keeps what we do not release
	// (WinRM's per-user shell quota).
	DefaultCleanupTimeout = 10 * time.Second
)

const (
	// maxEnvelope is the MaxEnvelopeSize we ask for (WinRM's classic 150 KiB).
	maxEnvelope = 153600
	// maxFragment is the largest fragment we send: base64 of it plus the envelope
	// must stay under maxEnvelope.
	maxFragment = 100_000
	// ExchangeResourceURI is Exchange's remote PowerShell configuration.
	ExchangeResourceURI = "http://schemas.microsoft.com/powershell/Microsoft.Exchange"
)

// Executor runs cmdlet steps on the endpoints of one exchange or jea target.
type Executor struct {
	name, kind string
	hosts      []string
	byHost     map[string]*conn
	maxOut     int
	cleanup    time.Duration
	idle       time.Duration
	configName string
	factory    SenderFactory
	// closers release what the senders share (the Kerberos transport's sessions).
	closers []func()
	log     *slog.Logger
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)

	mu        sync.Mutex // guards closed and the start of runs and the janitor
	closed    bool
	closing   chan struct{}
	runs      sync.WaitGroup // Runs in flight
	bg        sync.WaitGroup // the janitor
	janitorOn bool
}

var _ executors.Executor = (*Executor)(nil)

// Option adjusts an Executor.
type Option func(*Executor)

// WithLogger sets where the executor reports what it could not clean up.
func WithLogger(l *slog.Logger) Option {
	return func(e *Executor) {
		if l != nil {
			e.log = l
		}
	}
}

// WithCleanupTimeout bounds each Signal and Delete after a step (DefaultCleanupTimeout).
func WithCleanupTimeout(d time.Duration) Option {
	return func(e *Executor) {
		if d > 0 {
			e.cleanup = d
		}
	}
}

// WithIdleTimeout closes an endpoint's pool after d without steps, overriding
// the target's idle_timeout (DefaultIdleTimeout when neither is set).
func WithIdleTimeout(d time.Duration) Option {
	return func(e *Executor) {
		if d > 0 {
			e.idle = d
		}
	}
}

// WithConfigurationName overrides the target's configuration_name (resource URI
// http://schemas.microsoft.com/powershell/<name>).
func WithConfigurationName(name string) Option {
	return func(e *Executor) { e.configName = name }
}

// WithSenderFactory replaces the built-in senders (basic, NTLM): the Kerberos
// transport of executors/wsman/kerberos plugs in here, e.g.
//
//	psrp.WithSenderFactory(func(ep psrp.Endpoint) (psrp.Sender, error) {
//		return psrp.SenderFunc(func(ctx context.Context, m *soap.SoapMessage) (string, error) {
//			b, err := krb.Post(ctx, ep.URL, []byte(m.String()))
//			return string(b), err
//		}), nil
//	})
func WithSenderFactory(f SenderFactory) Option {
	return func(e *Executor) { e.factory = f }
}

// WithDialer routes every connection through dial (a jump host, a SOCKS proxy;
// tests: real-looking names on loopback).
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(e *Executor) { e.dial = dial }
}

// New builds the executor of target name. It checks the configuration without
// contacting any server.
func New(name string, t config.Target, opts ...Option) (*Executor, error) {
	e := &Executor{
		name:    name,
		byHost:  map[string]*conn{},
		cleanup: DefaultCleanupTimeout,
		log:     slog.New(slog.DiscardHandler),
		dial:    (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		closing: make(chan struct{}),
	}
	for _, o := range opts {
		o(e)
	}
	if err := e.configure(t); err != nil {
		return nil, fmt.Errorf("%s target %q: %w", cmp(t.Kind, "psrp"), name, err)
	}
	return e, nil
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Kind implements executors.Executor: "exchange" or "jea".
func (e *Executor) Kind() string { return e.kind }

// Hosts implements executors.Executor.
func (e *Executor) Hosts() []string { return slices.Clone(e.hosts) }

// String keeps fmt from printing credentials.
func (e *Executor) String() string { return fmt.Sprintf("%s executor %q %v", e.kind, e.name, e.hosts) }

// GoString implements fmt.GoStringer; see String.
func (e *Executor) GoString() string { return e.String() }

var configNameRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func (e *Executor) configure(t config.Target) error {
	var defaults wsman.URLDefaults
	e.configName = cmp(e.configName, t.ConfigurationName)
	switch t.Kind {
	case "exchange":
		e.configName, defaults = cmp(e.configName, "Microsoft.Exchange"), wsman.Exchange
	case "jea":
		defaults = wsman.JEA
	default:
		return fmt.Errorf("kind is %q, not exchange or jea", t.Kind)
	}
	if !configNameRE().MatchString(e.configName) {
		return fmt.Errorf("configuration_name: %q is not a session configuration name", e.configName)
	}
	resourceURI := "http://schemas.microsoft.com/powershell/" + e.configName
	switch {
	case t.IdleTimeout < 0:
		return fmt.Errorf("idle_timeout: %s is negative", t.IdleTimeout)
	case e.idle == 0 && t.IdleTimeout > 0:
		e.idle = t.IdleTimeout
	case e.idle == 0:
		e.idle = DefaultIdleTimeout
	}
	e.kind = t.Kind
	if len(t.Endpoints) == 0 {
		return errors.New("endpoints: none configured")
	}
	auth := strings.ToLower(cmp(t.Auth, "ntlm"))
	if e.factory == nil && auth == "kerberos" {
		f, err := e.kerberos(t)
		if err != nil {
			return fmt.Errorf("auth kerberos: %w", err)
		}
		e.factory = f
	}
	if e.factory == nil {
		switch auth {
		case "ntlm", "basic":
		default:
			return fmt.Errorf("auth: %q is not supported (ntlm, basic or kerberos)", t.Auth)
		}
		if err := wsman.CheckCredentials(t); err != nil {
			return err
		}
	}
	password := wsman.Password(t)
	if t.Password != "" || t.PasswordFile != "" {
		if _, err := password(); err != nil { // fail at start, not at the first incident
			return err
		}
	}
	lim, err := wsman.Limits{
		MaxConcurrency:   DefaultMaxConcurrency,
		OperationTimeout: DefaultOperationTimeout,
		MaxOutputBytes:   DefaultMaxOutputBytes,
	}.Resolve(t)
	if err != nil {
		return err
	}
	e.maxOut = lim.MaxOutputBytes
	tlsConf, err := t.ClientTLS(false)
	if err != nil {
		return err
	}
	for i, raw := range t.Endpoints {
		c, err := e.endpoint(raw, defaults, auth, t, tlsConf, lim, password)
		if err != nil {
			return fmt.Errorf("endpoints[%d] %s: %w", i, wsman.Redact(raw), err)
		}
		c.resourceURI = resourceURI
		if _, dup := e.byHost[c.host]; dup {
			return fmt.Errorf("endpoints[%d] %s: host %s is listed twice", i, wsman.Redact(raw), c.host)
		}
		e.byHost[c.host] = c
		e.hosts = append(e.hosts, c.host)
	}
	return nil
}

func (e *Executor) endpoint(raw string, defaults wsman.URLDefaults, auth string, t config.Target, tlsConf *tls.Config, lim wsman.Limits,
	password func() (config.Secret, error)) (*conn, error) {
	u, err := wsman.ParseURL(raw, defaults)
	if err != nil {
		return nil, err
	}
	c := &conn{
		e:         e,
		host:      u.Host,
		url:       u.URL,
		opTimeout: wsman.Timeout(lim.OperationTimeout),
		slots:     make(chan struct{}, lim.MaxConcurrency),
		lock:      make(chan struct{}, 1),
	}
	ep := Endpoint{Host: u.Host, URL: c.url, Username: t.Username, Password: password, WSMan: u.Endpoint(lim.OperationTimeout)}
	switch {
	case e.factory != nil:
		c.sender, err = e.factory(ep)
		if err != nil {
			return nil, err
		}
	case u.HTTPS || auth == "basic" && t.AllowUnencrypted:
		// One pool's pipelines poll concurrently: one connection each, plus the
		// pool's own requests.
		client := wsman.HTTPClient(e.dial, auth == "ntlm", u.HTTPS, tlsConf, lim.MaxConcurrency+1, lim.OperationTimeout)
		c.sender = &wsman.HTTPSender{URL: c.url, User: t.Username, Password: password, Client: client}
	case auth == "ntlm":
		if u.Path != "/wsman" {
			return nil, errors.New("NTLM message encryption (http with auth ntlm) only reaches /wsman; use https, or Kerberos for Exchange's /PowerShell")
		}
		c.sender = encryptedSender{ep: ep}
	default:
		return nil, errors.New("auth basic over http would send the password and every command in clear text; " +
			"use https, auth ntlm (encrypted), or set allow_unencrypted: true")
	}
	return c, nil
}

// conn is one endpoint: its sender, its concurrency slots and its pool.
type conn struct {
	e           *Executor
	host, url   string
	resourceURI string
	opTimeout   string
	sender      Sender
	slots       chan struct{} // max_concurrency pipelines at a time
	lock        chan struct{} // guards pool, active, lastUsed; a channel so waiting honours ctx
	pool        *pool
	active      int
	lastUsed    time.Time
}

// pool is one open runspace pool (WS-Man shell).
type pool struct {
	shellID string
	rpid    wire.GUID
	objects atomic.Uint64 // fragment object ids we sent
	broken  atomic.Bool
}

func mustGUID() string {
	g, err := wire.NewGUID()
	if err != nil {
		panic("psrp: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return g.String()
}
