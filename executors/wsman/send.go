package wsman

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	ntlmssp "github.com/Azure/go-ntlmssp"
	mwinrm "github.com/masterzen/winrm"
	"github.com/masterzen/winrm/soap"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// HTTPSender speaks to https endpoints (basic or NTLM) and to http with basic. It
// owns its HTTP requests, so a deadline or cancel aborts a long-polling Receive at
// once instead of after the OperationTimeout.
type HTTPSender struct {
	URL  string
	User string
	// Password returns the current password (password_file is read anew).
	Password func() (config.Secret, error)
	Client   *http.Client
}

// CloseIdleConnections ends the client's kept-alive connections.
func (s *HTTPSender) CloseIdleConnections() { s.Client.CloseIdleConnections() }

// Send posts one envelope and returns the reply body; a fault in a SOAP error
// reply comes back as *FaultError, a 401 as executors.ErrAuth.
func (s *HTTPSender) Send(ctx context.Context, msg *soap.SoapMessage) (string, error) {
	pw, err := s.Password()
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, strings.NewReader(msg.String()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/soap+xml;charset=UTF-8")
	req.SetBasicAuth(s.User, pw.Reveal())
	resp, err := s.Client.Do(req)
	if err != nil {
		return "", NetError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxReply))
	if err != nil {
		return "", fmt.Errorf("reading reply from %s: %w", s.URL, NetError(err))
	}
	body := string(b)
	soapReply := strings.Contains(resp.Header.Get("Content-Type"), "application/soap+xml")
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return "", fmt.Errorf("%w: HTTP 401 from %s", executors.ErrAuth, s.URL)
	case resp.StatusCode == http.StatusOK && soapReply:
		return body, nil
	case soapReply:
		if f := ParseFault(body); f != nil {
			return "", f
		}
	}
	return "", fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, s.URL, Snippet(body))
}

// HTTPClient is the HTTP client of an https endpoint or of basic over http, to be
// shared by the endpoint's requests so connections are reused. With ntlm, the
// negotiator turns a request's basic credentials into an NTLM handshake when the
// server asks for Negotiate or NTLM.
func HTTPClient(dial func(ctx context.Context, network, addr string) (net.Conn, error),
	ntlm, https bool, tlsConf *tls.Config, maxIdlePerHost int, opTimeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: opTimeout + HeaderSlack,
		MaxIdleConnsPerHost:   maxIdlePerHost,
		IdleConnTimeout:       90 * time.Second,
	}
	if https {
		tr.TLSClientConfig = tlsConf.Clone()
	}
	var rt http.RoundTripper = tr
	if ntlm {
		rt = ntlmssp.Negotiator{RoundTripper: tr}
	}
	return &http.Client{Transport: rt}
}

// status401 finds the HTTP status in the library's error text; it exposes no other way.
var status401 = lazyre.New(`\b401\b`)

// Post hands msg to a masterzen/winrm Transporter, which keeps no deadline and
// cannot be cancelled: a request still running when ctx ends is left to finish on
// its own and its reply is dropped. A 401 is executors.ErrAuth, a failure to
// connect executors.ErrUnreachable.
func Post(ctx context.Context, t mwinrm.Transporter, c *mwinrm.Client, msg *soap.SoapMessage) (string, error) {
	type reply struct {
		body string
		err  error
	}
	done := make(chan reply, 1) // buffered: an abandoned request must not block forever
	go func() {
		body, err := t.Post(c, msg)
		done <- reply{body, err}
	}()
	select {
	case r := <-done:
		switch {
		case r.err == nil:
			return r.body, nil
		case status401().MatchString(r.err.Error()):
			return "", fmt.Errorf("%w: %w", executors.ErrAuth, r.err)
		default:
			return "", NetError(r.err)
		}
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// EncryptedTransport returns a fresh NTLM-encrypted transport of the library for
// one request to ep over http (5985): the Encryption transport is not safe for
// concurrent use and keeps no deadline, so every request gets its own, sent
// through Post.
//
// Known flaw of the pinned library: when its NTLM handshake fails,
// Encryption.Post retries through the plain NTLM negotiator, which sends the
// envelope unencrypted and, if the 401 offers only Basic, the username and
// password as clear-text Basic credentials. So before every request an anonymous
// preflight (nil: OffersNTLM) asks the endpoint what it offers, and nothing is
// handed to the library unless the answer is NTLM or Negotiate: a server (or a
// passive path) that offers only Basic never sees the password. An active
// attacker who answers the preflight and then the real request differently
// remains out of reach of anything but a sender without the fallback.
func EncryptedTransport(ctx context.Context, preflight func(ctx context.Context, url string) error, ep *mwinrm.Endpoint) (mwinrm.Transporter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if preflight == nil {
		preflight = OffersNTLM
	}
	if err := preflight(ctx, fmt.Sprintf("http://%s:%d/wsman", ep.Host, ep.Port)); err != nil {
		return nil, err
	}
	enc, err := mwinrm.NewEncryption("ntlm")
	if err != nil {
		return nil, err
	}
	if err := enc.Transport(ep); err != nil {
		return nil, err
	}
	return enc, nil
}

// OffersNTLM sends an empty, anonymous POST and requires a 401 whose
// WWW-Authenticate offers Negotiate or NTLM.
func OffersNTLM(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, http.NoBody)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/soap+xml;charset=UTF-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return NetError(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	for _, h := range resp.Header.Values("WWW-Authenticate") {
		scheme, _, _ := strings.Cut(strings.TrimSpace(h), " ")
		if strings.EqualFold(scheme, "Negotiate") || strings.EqualFold(scheme, "NTLM") {
			return nil
		}
	}
	return fmt.Errorf("%w: %s answered HTTP %d offering %q, not NTLM or Negotiate: refusing to send credentials over http (use https on 5986)",
		executors.ErrAuth, url, resp.StatusCode, resp.Header.Values("WWW-Authenticate"))
}
