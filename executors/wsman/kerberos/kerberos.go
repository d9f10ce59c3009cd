// Package kerberos sends WS-Management SOAP envelopes to a Windows endpoint
// authenticated with Kerberos — what Exchange's out-of-box /PowerShell virtual
// directory requires.
//
//   - https: every request carries a fresh AP-REQ in "Authorization: Negotiate" (or
//     "Kerberos"); the AP-REP in the reply, when present, is verified (mutual
//     authentication). TLS protects the body.
//   - http: [MS-WSMV] 3.1.4.1.30 message encryption. A session (one TCP connection)
//     is authenticated once with an empty POST; after that every envelope travels as
//     multipart/encrypted, sealed with RFC 4121 Wrap tokens, and every reply must
//     come back the same way — a clear-text reply is refused, not trusted.
//
// The HTTP security context of Windows is bound to the connection, so each session
// owns exactly one connection; concurrent Posts use separate sessions.
package kerberos

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	krbconfig "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
)

// Defaults.
const (
	DefaultKrb5Conf = "/etc/krb5.conf"
	// DefaultRequestTimeout bounds one Post when the caller's context allows
	// longer. A WS-Man Receive long-polls for its OperationTimeout (60 s by
	// default), so this must be comfortably above it.
	DefaultRequestTimeout = 2 * time.Minute
	// DefaultKDCTimeout bounds getting a ticket (AS and TGS exchanges).
	DefaultKDCTimeout = 30 * time.Second
)

// maxReply bounds one reply we read. WinRM envelopes are at most MaxEnvelopeSize
// (150 KiB by default); anything far larger is not WinRM.
const maxReply = 8 << 20

// Config names the Kerberos identity and the service.
type Config struct {
	Username string // without realm: "svc-ndrbot"
	Realm    string // "CORP.EXAMPLE.COM"; upper case, as AD spells it
	// Password or KeytabFile, exactly one (unless Client is set).
	Password   config.Secret
	KeytabFile string
	// Krb5Conf is the krb5.conf path (DefaultKrb5Conf when empty): KDCs and
	// domain-to-realm mapping.
	Krb5Conf string
	// SPN overrides the service principal, default "HTTP/<host of the endpoint URL>".
	// Set it when the URL names an alias (CNAME, load balancer): the KDC knows the
	// SPN registered on the server's account, not the alias.
	SPN string
	// Client, when set, is used instead of Username/Password/KeytabFile/Krb5Conf
	// (a caller's own credential cache, or tests).
	Client *client.Client
}

// Option adjusts a Transport.
type Option func(*Transport)

// WithTLSConfig sets the TLS configuration for https endpoints (CA pool,
// ServerName). It is cloned.
func WithTLSConfig(c *tls.Config) Option {
	return func(t *Transport) {
		if c != nil {
			t.tls = c.Clone()
		}
	}
}

// WithDialer routes connections through dial (proxies, tests).
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(t *Transport) {
		if dial != nil {
			t.dial = dial
		}
	}
}

// WithRequestTimeout bounds each Post (DefaultRequestTimeout).
func WithRequestTimeout(d time.Duration) Option {
	return func(t *Transport) {
		if d > 0 {
			t.reqTimeout = d
		}
	}
}

// WithKDCTimeout bounds getting a service ticket (DefaultKDCTimeout).
func WithKDCTimeout(d time.Duration) Option {
	return func(t *Transport) {
		if d > 0 {
			t.kdcTimeout = d
		}
	}
}

// Transport posts SOAP envelopes with Kerberos. It is safe for concurrent use.
type Transport struct {
	cl         *client.Client
	spn        string
	tls        *tls.Config
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	reqTimeout time.Duration
	kdcTimeout time.Duration
	// kdc serialises ticket requests: gokrb5 would otherwise log in once per
	// concurrent Post. A channel, so a waiter can give up when its context ends.
	kdc chan struct{}

	mu      sync.Mutex
	idle    map[string][]*session // endpoint URL → sessions not in use
	schemes map[string]string     // endpoint URL → "Kerberos" or "Negotiate"
	closed  bool
}

// New checks the configuration and loads krb5.conf and the keytab. It contacts
// no KDC and no server.
func New(cfg Config, opts ...Option) (*Transport, error) {
	t := &Transport{
		spn:        cfg.SPN,
		dial:       (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		reqTimeout: DefaultRequestTimeout,
		kdcTimeout: DefaultKDCTimeout,
		kdc:        make(chan struct{}, 1),
		idle:       map[string][]*session{},
		schemes:    map[string]string{},
	}
	for _, o := range opts {
		o(t)
	}
	if t.spn != "" && !strings.Contains(t.spn, "/") {
		return nil, fmt.Errorf("kerberos: SPN %q must look like HTTP/host.example.com", t.spn)
	}
	if cfg.Client != nil {
		t.cl = cfg.Client
		return t, nil
	}
	if cfg.Username == "" || cfg.Realm == "" {
		return nil, errors.New("kerberos: username and realm are required")
	}
	if strings.ContainsAny(cfg.Username, "@\\") {
		return nil, fmt.Errorf("kerberos: username %q must not carry a realm or domain; put the realm in realm", cfg.Username)
	}
	if (cfg.Password == "") == (cfg.KeytabFile == "") {
		return nil, errors.New("kerberos: set exactly one of password and keytab file")
	}
	path := cfg.Krb5Conf
	if path == "" {
		path = DefaultKrb5Conf
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("kerberos: krb5.conf %s: %w (set krb5_conf, or create it with a [realms] entry naming the KDCs of %s)",
			path, err, cfg.Realm)
	}
	kc, err := krbconfig.Load(path)
	if err != nil {
		return nil, fmt.Errorf("kerberos: parsing krb5.conf %s: %w", path, err)
	}
	settings := []func(*client.Settings){client.DisablePAFXFAST(true)}
	if cfg.KeytabFile != "" {
		kt, err := keytab.Load(cfg.KeytabFile)
		if err != nil {
			return nil, fmt.Errorf("kerberos: loading keytab %s: %w", cfg.KeytabFile, err)
		}
		if !hasPrincipal(kt, cfg.Username, cfg.Realm) {
			return nil, fmt.Errorf("kerberos: keytab %s has no entry for %s@%s", cfg.KeytabFile, cfg.Username, cfg.Realm)
		}
		t.cl = client.NewWithKeytab(cfg.Username, cfg.Realm, kt, kc, settings...)
	} else {
		t.cl = client.NewWithPassword(cfg.Username, cfg.Realm, string(cfg.Password), kc, settings...)
	}
	return t, nil
}

// hasPrincipal tells whether a keytab holds any key of the principal (any etype),
// so New can fail early on a keytab made for someone else.
func hasPrincipal(kt *keytab.Keytab, user, realm string) bool {
	for _, e := range kt.Entries {
		if e.Principal.Realm == realm && strings.Join(e.Principal.Components, "/") == user {
			return true
		}
	}
	return false
}

// Close drops idle connections. In-flight Posts finish.
func (t *Transport) Close() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*session{}
	t.closed = true
	t.mu.Unlock()
	for _, ss := range idle {
		for _, s := range ss {
			s.close()
		}
	}
}

// ReplyError is a non-200 reply the server sent in the protocol's own form (for
// http, decrypted): typically HTTP 500 carrying a SOAP fault in Body.
type ReplyError struct {
	StatusCode int
	Body       []byte
}

func (e *ReplyError) Error() string {
	// The text carries the fault: masterzen's client re-polls a Receive only when
	// the error mentions OperationTimeout.
	s := strings.Join(strings.Fields(string(e.Body)), " ")
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return fmt.Sprintf("HTTP %d: %s", e.StatusCode, s)
}

// Post sends one SOAP envelope to endpointURL (http or https, e.g.
// http://ex01.corp.example.com/PowerShell) and returns the reply body. An HTTP 500
// SOAP fault comes back as the body together with a *ReplyError.
func (t *Transport) Post(ctx context.Context, endpointURL string, body []byte) ([]byte, error) {
	u, err := url.Parse(endpointURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("kerberos: endpoint %q is not an http(s) URL", endpointURL)
	}
	ctx, cancel := context.WithTimeout(ctx, t.reqTimeout)
	defer cancel()

	s, err := t.session(u)
	if err != nil {
		return nil, err
	}
	reply, err := s.post(ctx, body)
	if err != nil && !s.reusable(err) {
		s.close()
	} else {
		t.release(s)
	}
	return reply, err
}

// session takes an idle session for u or makes a new one.
func (t *Transport) session(u *url.URL) (*session, error) {
	key := u.String()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errors.New("kerberos: transport closed")
	}
	if ss := t.idle[key]; len(ss) > 0 {
		s := ss[len(ss)-1]
		t.idle[key] = ss[:len(ss)-1]
		return s, nil
	}
	return t.newSession(u), nil
}

// release returns a session for reuse.
func (t *Transport) release(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		s.close()
		return
	}
	t.idle[s.url.String()] = append(t.idle[s.url.String()], s)
}

func (t *Transport) scheme(key string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.schemes[key]
}

func (t *Transport) setScheme(key, scheme string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.schemes[key] = scheme
}

// spnFor is the service principal of an endpoint.
func (t *Transport) spnFor(u *url.URL) string {
	if t.spn != "" {
		return t.spn
	}
	return "HTTP/" + strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
}

// ticket gets a service ticket for spn, bounded by the KDC timeout and ctx.
// gokrb5 takes no context, so the exchange runs aside; an abandoned one finishes
// on its own (gokrb5 bounds each KDC connection to 5 s) and fills the cache.
func (t *Transport) ticket(ctx context.Context, spn string) (messages.Ticket, types.EncryptionKey, error) {
	ctx, cancel := context.WithTimeout(ctx, t.kdcTimeout)
	defer cancel()
	select {
	case t.kdc <- struct{}{}:
	case <-ctx.Done():
		return messages.Ticket{}, types.EncryptionKey{}, fmt.Errorf("%w: waiting to ask the KDC for %s: %w", executors.ErrAuth, spn, ctx.Err())
	}
	type result struct {
		tkt messages.Ticket
		key types.EncryptionKey
		err error
	}
	done := make(chan result, 1) // buffered: an abandoned exchange must not block
	go func() {
		defer func() { <-t.kdc }()
		tkt, key, err := t.cl.GetServiceTicket(spn)
		done <- result{tkt, key, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return r.tkt, r.key, fmt.Errorf("%w: getting a service ticket for %s: %s", executors.ErrAuth, spn, kdcReason(r.err))
		}
		return r.tkt, r.key, nil
	case <-ctx.Done():
		return messages.Ticket{}, types.EncryptionKey{}, fmt.Errorf("%w: getting a service ticket for %s: KDC did not answer: %w", executors.ErrAuth, spn, ctx.Err())
	}
}

// kdcReason names the usual causes of a failed ticket request. gokrb5's errors
// are flat strings (krberror), so the KRB-ERROR code names are matched in the text.
func kdcReason(err error) string {
	msg := err.Error()
	hint := ""
	switch {
	case strings.Contains(msg, "KDC_ERR_S_PRINCIPAL_UNKNOWN"):
		hint = "the KDC does not know the SPN (register it with setspn on the server's account, or set spn)"
	case strings.Contains(msg, "KDC_ERR_C_PRINCIPAL_UNKNOWN"):
		hint = "the KDC does not know the user (check username and realm)"
	case strings.Contains(msg, "KDC_ERR_PREAUTH_FAILED"), strings.Contains(msg, "error decrypting"),
		strings.Contains(msg, "integrity verification failed"):
		hint = "wrong password or keytab key for the user"
	case strings.Contains(msg, "KRB_AP_ERR_SKEW"), strings.Contains(msg, "clock skew"):
		hint = "clock skew with the KDC exceeds the allowed maximum; fix time sync (NTP)"
	case strings.Contains(msg, "KDC_ERR_CLIENT_REVOKED"):
		hint = "the account is disabled or locked out"
	case strings.Contains(msg, "KDC_ERR_ETYPE_NOSUPP"):
		hint = "no common encryption type with the KDC (enable AES for the account)"
	case strings.Contains(msg, "matching key not found"), strings.Contains(msg, "keytab"):
		hint = "the keytab has no key of the type the KDC uses for the user"
	case strings.Contains(msg, "error sending to a KDC"), strings.Contains(msg, "no KDC"), strings.Contains(msg, "dial"),
		strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "connection refused"):
		hint = "KDC unreachable (check krb5.conf [realms] kdc entries and that TCP/UDP 88 is open)"
	}
	if hint == "" {
		return msg
	}
	return hint + ": " + msg
}

// session is one HTTP connection and, for http, its Kerberos security context.
// A session is used by one Post at a time.
type session struct {
	t      *Transport
	url    *url.URL
	client *http.Client
	dials  atomic.Int64 // connections opened; a change means the old one is gone

	gss      *gssContext // http: established context
	gssDials int64       // dials when gss was established
	broken   bool        // a failure left the context unusable
}

func (t *Transport) newSession(u *url.URL) *session {
	s := &session{t: t, url: u}
	tr := &http.Transport{
		Proxy: nil, // a proxy would split the connection-bound security context
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			s.dials.Add(1)
			return t.dial(ctx, network, addr)
		},
		TLSClientConfig:     t.tls,
		ForceAttemptHTTP2:   false, // HTTP/1.1 only: the context belongs to the connection
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 30 * time.Second,
	}
	s.client = &http.Client{
		Transport: tr,
		// Never follow a redirect with credentials or a sealed body.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s
}

func (s *session) close() {
	s.client.CloseIdleConnections()
}

// reusable tells whether a session survives an error: a SOAP fault or a context
// deadline leaves the connection and context sound only in the first case.
func (s *session) reusable(err error) bool {
	var re *ReplyError
	return errors.As(err, &re) && !s.broken
}

func (s *session) post(ctx context.Context, body []byte) ([]byte, error) {
	key := s.url.String()
	scheme := s.t.scheme(key)
	if scheme == "" {
		var err error
		if scheme, err = s.preflight(ctx); err != nil {
			return nil, err
		}
		s.t.setScheme(key, scheme)
	}
	if s.url.Scheme == "https" {
		return s.postTLS(ctx, scheme, body)
	}
	return s.postSealed(ctx, scheme, body)
}

// preflight asks the endpoint, anonymously and with no body, which schemes it
// offers. Exchange's /PowerShell (its kerbauth module) answers "Kerberos";
// WinRM's /wsman answers "Negotiate" (and "Kerberos" when enabled).
func (s *session) preflight(ctx context.Context) (string, error) {
	resp, err := s.do(ctx, "", nil, nil)
	if err != nil {
		return "", err
	}
	drain(resp)
	var offered []string
	for _, h := range resp.Header.Values("WWW-Authenticate") {
		for _, part := range strings.Split(h, ",") {
			scheme, _, _ := strings.Cut(strings.TrimSpace(part), " ")
			offered = append(offered, scheme)
		}
	}
	for _, want := range []string{"Kerberos", "Negotiate"} {
		for _, o := range offered {
			if strings.EqualFold(o, want) {
				return want, nil
			}
		}
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return "", fmt.Errorf("%w: %s answered an unauthenticated request with HTTP %d instead of asking for Kerberos",
			executors.ErrAuth, s.url.Redacted(), resp.StatusCode)
	}
	return "", fmt.Errorf("%w: %s offers %q, not Kerberos or Negotiate", executors.ErrAuth, s.url.Redacted(), offered)
}

// authToken builds the Authorization value for scheme and what is needed to
// check the reply.
func (s *session) authToken(ctx context.Context, scheme string) (string, *initiator, error) {
	spn := s.t.spnFor(s.url)
	tkt, key, err := s.t.ticket(ctx, spn)
	if err != nil {
		return "", nil, err
	}
	in, apreq, err := newAPReq(s.t.cl.Credentials, tkt, key)
	if err != nil {
		return "", nil, err
	}
	tok, err := krb5Token(apreq)
	if err != nil {
		return "", nil, err
	}
	if scheme == "Negotiate" {
		if tok, err = spnegoInit(tok); err != nil {
			return "", nil, fmt.Errorf("building SPNEGO token: %w", err)
		}
	}
	return scheme + " " + base64.StdEncoding.EncodeToString(tok), in, nil
}

// replyAuth finds the acceptor's token for scheme in a reply.
func replyAuth(resp *http.Response, scheme string) (*replyToken, error) {
	for _, h := range resp.Header.Values("WWW-Authenticate") {
		for _, part := range strings.Split(h, ",") {
			name, tok, ok := strings.Cut(strings.TrimSpace(part), " ")
			if !ok || !strings.EqualFold(name, scheme) || strings.TrimSpace(tok) == "" {
				continue
			}
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(tok))
			if err != nil {
				return nil, fmt.Errorf("server's %s token is not base64: %w", scheme, err)
			}
			return parseReplyToken(b)
		}
	}
	return nil, nil
}

// unauthorized turns a 401 into ErrAuth, with the server's KRB-ERROR when it sent one.
func (s *session) unauthorized(resp *http.Response, scheme, when string) error {
	reason := "the server refused the Kerberos ticket"
	if rt, err := replyAuth(resp, scheme); err == nil && rt != nil && rt.krbError != nil {
		reason = krbErrorReason(rt.krbError)
	}
	return fmt.Errorf("%w: HTTP 401 from %s %s: %s (user %s, SPN %s)", executors.ErrAuth, s.url.Redacted(), when, reason,
		s.t.cl.Credentials.UserName()+"@"+s.t.cl.Credentials.Realm(), s.t.spnFor(s.url))
}

// establish checks the acceptor's answer to our AP-REQ and returns the context.
func establish(resp *http.Response, scheme string, in *initiator, required bool) (*gssContext, error) {
	rt, err := replyAuth(resp, scheme)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", executors.ErrAuth, err)
	}
	switch {
	case rt == nil || (rt.apRep == nil && rt.krbError == nil && !rt.rejected):
		if required {
			return nil, fmt.Errorf("%w: the server accepted the request without a mutual-authentication token; "+
				"message encryption needs one", executors.ErrAuth)
		}
		return nil, nil
	case rt.rejected:
		return nil, fmt.Errorf("%w: the server rejected the SPNEGO negotiation", executors.ErrAuth)
	case rt.krbError != nil:
		return nil, fmt.Errorf("%w: %s", executors.ErrAuth, krbErrorReason(rt.krbError))
	}
	gss, err := in.finish(rt.apRep)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", executors.ErrAuth, err)
	}
	if len(rt.mic) > 0 {
		if err := verifyMIC(gss, rt.mic); err != nil {
			return nil, fmt.Errorf("%w: %w", executors.ErrAuth, err)
		}
	}
	return gss, nil
}

// postTLS sends the envelope with a fresh AP-REQ: per-request authentication
// keeps no state that a reconnect could invalidate, and every reply is mutually
// authenticated when the server includes the AP-REP.
func (s *session) postTLS(ctx context.Context, scheme string, body []byte) ([]byte, error) {
	auth, in, err := s.authToken(ctx, scheme)
	if err != nil {
		return nil, err
	}
	resp, err := s.do(ctx, auth, body, http.Header{"Content-Type": {"application/soap+xml;charset=UTF-8"}})
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, s.unauthorized(resp, scheme, "")
	}
	if _, err := establish(resp, scheme, in, false); err != nil {
		return nil, err
	}
	reply, err := readBody(resp)
	if err != nil {
		return nil, err
	}
	return soapReply(resp, reply)
}

// soapReply accepts a 200 SOAP reply and returns a 500 SOAP fault as ReplyError.
func soapReply(resp *http.Response, reply []byte) ([]byte, error) {
	isSOAP := strings.Contains(resp.Header.Get("Content-Type"), "application/soap+xml")
	switch {
	case resp.StatusCode == http.StatusOK && isSOAP:
		return reply, nil
	case isSOAP:
		return reply, &ReplyError{StatusCode: resp.StatusCode, Body: reply}
	}
	return nil, fmt.Errorf("HTTP %d (%s): %s", resp.StatusCode, resp.Header.Get("Content-Type"), snippet(reply))
}

// handshake authenticates the session's connection with an empty POST and keeps
// the context ([MS-WSMV] 3.1.4.1.30: the client authenticates before it sends
// encrypted messages; pypsrp does the same with a blank request).
func (s *session) handshake(ctx context.Context, scheme string) error {
	s.gss = nil
	auth, in, err := s.authToken(ctx, scheme)
	if err != nil {
		return err
	}
	resp, err := s.do(ctx, auth, nil, nil)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode == http.StatusUnauthorized {
		return s.unauthorized(resp, scheme, "to the Kerberos handshake")
	}
	gss, err := establish(resp, scheme, in, true)
	if err != nil {
		return err
	}
	if _, err := checkEtype(gss.key.KeyType); err != nil {
		return err
	}
	s.gss, s.gssDials = gss, s.dials.Load()
	return nil
}

// postSealed sends the envelope encrypted on the session's connection.
func (s *session) postSealed(ctx context.Context, scheme string, body []byte) ([]byte, error) {
	protocol := protocolKerberos
	if scheme == "Negotiate" {
		protocol = protocolSPNEGO
	}
	for attempt := 0; ; attempt++ {
		// A new connection has no security context on the server: authenticate it.
		if s.gss == nil || s.dials.Load() != s.gssDials {
			if err := s.handshake(ctx, scheme); err != nil {
				return nil, err
			}
		}
		sealed, err := s.gss.seal(protocol, body)
		if err != nil {
			return nil, err
		}
		before := s.dials.Load()
		resp, err := s.do(ctx, "", sealed, http.Header{"Content-Type": {contentType(protocol)}})
		if err != nil {
			s.gss = nil // the sequence numbers are no longer in step
			return nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized {
			drain(resp)
			// The idle connection was closed under us and the request went out on a
			// new one: authenticate that one and send again, once.
			if s.dials.Load() != before && attempt == 0 {
				s.gss = nil
				continue
			}
			s.gss = nil
			return nil, s.unauthorized(resp, scheme, "to an encrypted request after the handshake")
		}
		reply, err := readBody(resp)
		drain(resp)
		if err != nil {
			s.gss = nil
			return nil, err
		}
		ct := resp.Header.Get("Content-Type")
		if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), encryptedTypeBase) {
			// Refuse clear text: on http it could come from anyone on the path.
			s.gss = nil
			return nil, fmt.Errorf("HTTP %d from %s was not encrypted (%s): %s", resp.StatusCode, s.url.Redacted(), ct, snippet(reply))
		}
		plain, err := s.gss.open(reply)
		if err != nil {
			s.gss, s.broken = nil, true
			return nil, fmt.Errorf("decrypting reply from %s: %w", s.url.Redacted(), err)
		}
		if resp.StatusCode == http.StatusOK {
			return plain, nil
		}
		return plain, &ReplyError{StatusCode: resp.StatusCode, Body: plain}
	}
}

// do sends one POST on the session's connection. An empty auth sends none.
func (s *session) do(ctx context.Context, auth string, body []byte, h http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Connection", "Keep-Alive")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, netError(err)
	}
	return resp, nil
}

// readBody reads a bounded reply.
func readBody(resp *http.Response) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return nil, fmt.Errorf("reading reply: %w", netError(err))
	}
	if len(b) > maxReply {
		return nil, fmt.Errorf("reply exceeds %d bytes", maxReply)
	}
	return b, nil
}

// drain reads what is left of a body so the connection, and with it the
// security context, can be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// netError marks failures to connect as ErrUnreachable.
func netError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w: %w", executors.ErrUnreachable, err)
	}
	return err
}

// snippet shortens a body for an error message.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}
