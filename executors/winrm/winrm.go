// Package winrm runs playbook PowerShell on Exchange servers over WS-Management
// (WinRM), using github.com/masterzen/winrm for the shell protocol.
//
// A script never contains user text. Run prepends a fixed prelude that decodes the
// action's parameters from a base64 JSON literal into $P, so a playbook writes
//
//	Get-Mailbox -Identity $P.sender | Select-Object ThrottlingPolicy | ConvertTo-Json
//
// and the sender travels as data. The script runs as
// `powershell.exe -EncodedCommand …` with $ErrorActionPreference = 'Stop'.
package winrm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	mwinrm "github.com/masterzen/winrm" // aliased: this package is winrm too

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/wsman"
)

// Defaults for the target keys left empty in the configuration.
const (
	DefaultMaxConcurrency   = 4
	DefaultOperationTimeout = 60 * time.Second
	DefaultMaxOutputBytes   = 1 << 20
	// DefaultCleanupTimeout bounds the Signal and Delete that close a shell after a
	// run, including one that timed out or was cancelled.
	DefaultCleanupTimeout = 10 * time.Second
)

// Executor runs actions on the endpoints of one winrm target.
type Executor struct {
	name   string
	hosts  []string // config order
	byHost map[string]*endpoint
	user   string
	// password reads password or password_file anew on every run, so a
	// rotated file is picked up.
	password func() (config.Secret, error)
	preamble string
	params   mwinrm.Parameters // our own copy: DefaultParameters is shared
	maxOut   int
	cleanup  time.Duration
	log      *slog.Logger
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
}

var _ executors.Executor = (*Executor)(nil)

// endpoint is one WinRM server of the target.
type endpoint struct {
	host  string // as configured; the value Run is called with
	url   string
	slots chan struct{} // max_concurrency shells at a time
	wep   *mwinrm.Endpoint
	// sender makes the sender of one run, with that run's password.
	sender func(user string, password config.Secret) sender
}

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

// WithCleanupTimeout bounds closing a shell after a run (DefaultCleanupTimeout).
func WithCleanupTimeout(d time.Duration) Option {
	return func(e *Executor) {
		if d > 0 {
			e.cleanup = d
		}
	}
}

// WithDialer routes every connection through dial (a jump host, a SOCKS proxy);
// tests use it to give the fake server real-looking host names.
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(e *Executor) { e.dial = dial }
}

// New builds the executor of target name from its configuration. It checks the
// configuration without contacting any server.
func New(name string, t config.Target, opts ...Option) (*Executor, error) {
	e := &Executor{
		name:    name,
		byHost:  map[string]*endpoint{},
		cleanup: DefaultCleanupTimeout,
		log:     slog.New(slog.DiscardHandler),
		dial:    (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	for _, o := range opts {
		o(e)
	}
	if err := e.configure(t); err != nil {
		return nil, fmt.Errorf("winrm target %q: %w", name, err)
	}
	return e, nil
}

// Kind implements executors.Executor.
func (e *Executor) Kind() string { return "winrm" }

// Hosts implements executors.Executor: the endpoints' host names as configured.
func (e *Executor) Hosts() []string { return slices.Clone(e.hosts) }

func (e *Executor) configure(t config.Target) error {
	if t.Kind != "" && t.Kind != "winrm" {
		return fmt.Errorf("kind is %q, not winrm", t.Kind)
	}
	if len(t.Endpoints) == 0 {
		return errors.New("endpoints: none configured")
	}
	auth := strings.ToLower(t.Auth)
	switch auth {
	case "":
		auth = "ntlm"
	case "ntlm", "basic":
	default:
		return fmt.Errorf("auth: %q is not supported (ntlm or basic)", t.Auth)
	}
	if err := wsman.CheckCredentials(t); err != nil {
		return err
	}
	e.user, e.password, e.preamble = t.Username, wsman.Password(t), t.Preamble
	if _, err := e.password(); err != nil { // fail at start, not at the first incident
		return err
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
	e.params = *mwinrm.DefaultParameters
	e.params.Timeout = wsman.Timeout(lim.OperationTimeout)

	tlsConf, err := t.ClientTLS(false)
	if err != nil {
		return err
	}
	for i, raw := range t.Endpoints {
		ep, err := e.endpoint(raw, auth, t.AllowUnencrypted, tlsConf, lim)
		if err != nil {
			return fmt.Errorf("endpoints[%d] %s: %w", i, wsman.Redact(raw), err)
		}
		if _, dup := e.byHost[ep.host]; dup {
			return fmt.Errorf("endpoints[%d] %s: host %s is listed twice", i, wsman.Redact(raw), ep.host)
		}
		e.byHost[ep.host] = ep
		e.hosts = append(e.hosts, ep.host)
	}
	return nil
}

// endpoint parses one endpoint URL and picks how to talk to it:
//   - https: TLS, with basic or NTLM authentication;
//   - http with ntlm: NTLM message encryption, which WinRM requires on 5985 unless
//     the server was set to AllowUnencrypted;
//   - http with basic: clear text, so only with allow_unencrypted.
func (e *Executor) endpoint(raw, auth string, allowUnencrypted bool, tlsConf *tls.Config, lim wsman.Limits) (*endpoint, error) {
	u, err := wsman.ParseURL(raw, wsman.WinRM)
	if err != nil {
		return nil, err
	}
	ep := &endpoint{
		host:  u.Host,
		url:   u.URL,
		slots: make(chan struct{}, lim.MaxConcurrency),
		wep:   u.Endpoint(lim.OperationTimeout),
	}

	switch {
	case u.HTTPS || auth == "basic" && allowUnencrypted:
		client := wsman.HTTPClient(e.dial, auth == "ntlm", u.HTTPS, tlsConf, lim.MaxConcurrency, lim.OperationTimeout)
		ep.sender = func(user string, pw config.Secret) sender {
			password := func() (config.Secret, error) { return pw, nil }
			return httpSender{&wsman.HTTPSender{URL: ep.url, User: user, Password: password, Client: client}}
		}
	case auth == "ntlm":
		if u.Path != "/wsman" {
			return nil, errors.New("path: NTLM message encryption (http with auth ntlm) only supports /wsman")
		}
		ep.sender = func(string, config.Secret) sender { return encryptedSender{ep: ep.wep} }
	default:
		return nil, errors.New("auth basic over http would send the password and every command in clear text; " +
			"use https (port 5986), auth ntlm (encrypted on 5985), or set allow_unencrypted: true")
	}
	return ep, nil
}

// String and GoString keep fmt from printing the unexported password field.
func (e *Executor) String() string { return fmt.Sprintf("winrm executor %q %v", e.name, e.hosts) }

// GoString implements fmt.GoStringer for %#v; see String.
func (e *Executor) GoString() string { return e.String() }
