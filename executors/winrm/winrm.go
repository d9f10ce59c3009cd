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
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	ntlmssp "github.com/Azure/go-ntlmssp"
	wsman "github.com/masterzen/winrm" // aliased: this package is winrm too

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
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

// headerSlack is how much longer than the WS-Man OperationTimeout we wait for a
// reply's headers: a Receive legitimately long-polls for the whole
// OperationTimeout before the server answers with a w:TimedOut fault.
const headerSlack = 15 * time.Second

// Executor runs actions on the endpoints of one winrm target.
type Executor struct {
	name     string
	hosts    []string // config order
	byHost   map[string]*endpoint
	user     string
	password config.Secret // a Secret, so printing an Executor cannot leak it
	pwFile   string        // read on every run, so a rotated file is picked up
	preamble string
	params   wsman.Parameters // our own copy: DefaultParameters is shared
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
	wep   *wsman.Endpoint
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
	if t.Username == "" {
		return errors.New("username: required")
	}
	if t.Password == "" && t.PasswordFile == "" {
		return errors.New("password or password_file: required")
	}
	e.user, e.password, e.pwFile, e.preamble = t.Username, t.Password, t.PasswordFile, t.Preamble
	if _, err := e.secret(); err != nil { // fail at start, not at the first incident
		return err
	}

	conc := t.MaxConcurrency
	switch {
	case conc < 0:
		return fmt.Errorf("max_concurrency: %d is negative", conc)
	case conc == 0:
		conc = DefaultMaxConcurrency
	}
	opTimeout := t.OperationTimeout
	switch {
	case opTimeout < 0:
		return fmt.Errorf("operation_timeout: %s is negative", opTimeout)
	case opTimeout == 0:
		opTimeout = DefaultOperationTimeout
	case opTimeout < time.Second:
		return fmt.Errorf("operation_timeout: %s is below WinRM's minimum of 1s", opTimeout)
	}
	e.maxOut = t.MaxOutputBytes
	switch {
	case e.maxOut < 0:
		return fmt.Errorf("max_output_bytes: %d is negative", e.maxOut)
	case e.maxOut == 0:
		e.maxOut = DefaultMaxOutputBytes
	}
	e.params = *wsman.DefaultParameters
	e.params.Timeout = fmt.Sprintf("PT%.3fS", opTimeout.Seconds())

	tlsConf, err := tlsConfig(t)
	if err != nil {
		return err
	}
	for i, raw := range t.Endpoints {
		ep, err := e.endpoint(raw, auth, t.AllowUnencrypted, tlsConf, conc, opTimeout)
		if err != nil {
			return fmt.Errorf("endpoints[%d] %s: %w", i, redact(raw), err)
		}
		if _, dup := e.byHost[ep.host]; dup {
			return fmt.Errorf("endpoints[%d] %s: host %s is listed twice", i, redact(raw), ep.host)
		}
		e.byHost[ep.host] = ep
		e.hosts = append(e.hosts, ep.host)
	}
	return nil
}

// secret returns the password, reading password_file anew each time.
func (e *Executor) secret() (config.Secret, error) {
	pw, err := config.ResolveSecret(e.password, e.pwFile)
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err) // names the path, never the content
	}
	return config.Secret(pw), nil
}

// tlsConfig is the client TLS configuration shared by the target's https endpoints.
func tlsConfig(t config.Target) (*tls.Config, error) { return t.ClientTLS(false) }

// endpoint parses one endpoint URL and picks how to talk to it:
//   - https: TLS, with basic or NTLM authentication;
//   - http with ntlm: NTLM message encryption, which WinRM requires on 5985 unless
//     the server was set to AllowUnencrypted;
//   - http with basic: clear text, so only with allow_unencrypted.
func (e *Executor) endpoint(raw, auth string, allowUnencrypted bool, tlsConf *tls.Config, conc int, opTimeout time.Duration) (*endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the URL, password and all
		}
		return nil, fmt.Errorf("not a URL: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return nil, errors.New("want a URL like https://ex01:5986/wsman (scheme http or https)")
	}
	if u.User != nil {
		return nil, errors.New("credentials do not belong in the URL; use username and password_file")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("query and fragment are not allowed")
	}
	host := u.Hostname()
	if host == "" {
		return nil, errors.New("no host")
	}
	https := scheme == "https"
	port := 5985
	if https {
		port = 5986
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("bad port %q", p)
		}
	}
	path := u.Path
	if path == "" || path == "/" {
		path = "/wsman"
	}
	ep := &endpoint{
		host:  host,
		url:   scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + path,
		slots: make(chan struct{}, conc),
		wep: &wsman.Endpoint{
			Host:    host,
			Port:    port,
			HTTPS:   https,
			Timeout: opTimeout + headerSlack,
		},
	}
	if strings.Contains(host, ":") {
		ep.wep.Host = "[" + host + "]" // the library formats host:port itself
	}

	switch {
	case https || auth == "basic" && allowUnencrypted:
		client := e.httpClient(auth, https, tlsConf, conc, opTimeout)
		ep.sender = func(user string, pw config.Secret) sender {
			return &httpSender{url: ep.url, user: user, password: pw, client: client}
		}
	case auth == "ntlm":
		if path != "/wsman" {
			return nil, errors.New("path: NTLM message encryption (http with auth ntlm) only supports /wsman")
		}
		ep.sender = func(string, config.Secret) sender { return encryptedSender{ep: ep.wep} }
	default:
		return nil, errors.New("auth basic over http would send the password and every command in clear text; " +
			"use https (port 5986), auth ntlm (encrypted on 5985), or set allow_unencrypted: true")
	}
	return ep, nil
}

// redact names an endpoint in an error without a password someone put in its URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return strconv.Quote(u.Redacted())
}

// String and GoString keep fmt from printing the unexported password field.
func (e *Executor) String() string { return fmt.Sprintf("winrm executor %q %v", e.name, e.hosts) }

// GoString implements fmt.GoStringer for %#v; see String.
func (e *Executor) GoString() string { return e.String() }

// httpClient is the HTTP client of an https endpoint or of basic over http,
// shared by the endpoint's runs so connections are reused.
func (e *Executor) httpClient(auth string, https bool, tlsConf *tls.Config, conc int, opTimeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           e.dial,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: opTimeout + headerSlack,
		MaxIdleConnsPerHost:   conc,
		IdleConnTimeout:       90 * time.Second,
	}
	if https {
		tr.TLSClientConfig = tlsConf.Clone()
	}
	var rt http.RoundTripper = tr
	if auth == "ntlm" {
		// The negotiator turns the request's basic credentials into an NTLM
		// handshake when the server asks for Negotiate or NTLM.
		rt = ntlmssp.Negotiator{RoundTripper: tr}
	}
	return &http.Client{Transport: rt}
}
