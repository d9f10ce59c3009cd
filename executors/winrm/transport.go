package winrm

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	wsman "github.com/masterzen/winrm"
	"github.com/masterzen/winrm/soap"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
)

// maxReply bounds one SOAP reply we read. The client asks for envelopes of at most
// MaxEnvelopeSize (150 KiB by default); anything far larger is not WinRM.
const maxReply = 8 << 20

// sender delivers one SOAP envelope to an endpoint and returns the reply body.
// A SOAP fault comes back as the body or as a *FaultError.
type sender interface {
	send(ctx context.Context, c *wsman.Client, msg *soap.SoapMessage) (string, error)
}

// transport is the wsman.Transporter of one Run. The library's Post takes no
// context, so the run's context lives here and every request is bound to it —
// except Signal and Delete, which get a fresh short deadline of their own: after a
// timeout or cancel they must still reach the server, or the shell stays open and
// counts against the user's shell quota (MaxShellsPerUser) until its idle timeout.
type transport struct {
	ctx     context.Context
	cleanup time.Duration
	sender  sender
}

// Transport implements wsman.Transporter; the sender was configured in New.
func (t *transport) Transport(*wsman.Endpoint) error { return nil }

// Post implements wsman.Transporter.
func (t *transport) Post(c *wsman.Client, msg *soap.SoapMessage) (string, error) {
	ctx := t.ctx
	if isCleanup(msg) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(t.ctx), t.cleanup)
		defer cancel()
	}
	body, err := t.sender.send(ctx, c, msg)
	if err != nil {
		return "", err
	}
	// The encrypted transport hands back a 500's body as if it were a reply, so
	// every body is checked: a fault must never pass for an answer.
	if f := parseFault(body); f != nil {
		return "", f
	}
	if !strings.Contains(body, "Envelope") {
		return "", fmt.Errorf("reply is not a SOAP envelope: %s", snippet(body))
	}
	return body, nil
}

// isCleanup tells the requests that end a command or a shell. Only the action
// header names them; the rest of an envelope is base64 or fixed text.
func isCleanup(msg *soap.SoapMessage) bool {
	s := msg.String()
	return strings.Contains(s, "/windows/shell/Signal<") || strings.Contains(s, "/transfer/Delete<")
}

// httpSender speaks to https endpoints (basic or NTLM) and to http with basic. It
// owns its HTTP requests, so a deadline or cancel aborts a long-polling Receive at
// once instead of after the OperationTimeout.
type httpSender struct {
	url      string
	user     string
	password config.Secret
	client   *http.Client
}

func (s *httpSender) send(ctx context.Context, _ *wsman.Client, msg *soap.SoapMessage) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, strings.NewReader(msg.String()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/soap+xml;charset=UTF-8")
	req.SetBasicAuth(s.user, s.password.Reveal())
	resp, err := s.client.Do(req)
	if err != nil {
		return "", netError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return "", fmt.Errorf("reading reply from %s: %w", s.url, netError(err))
	}
	body := string(b)
	soapReply := strings.Contains(resp.Header.Get("Content-Type"), "application/soap+xml")
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return "", fmt.Errorf("%w: HTTP 401 from %s", executors.ErrAuth, s.url)
	case resp.StatusCode == http.StatusOK && soapReply:
		return body, nil
	case soapReply:
		if f := parseFault(body); f != nil {
			return "", f
		}
	}
	return "", fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, s.url, snippet(body))
}

// encryptedSender speaks NTLM-encrypted WS-Management on http (5985) through the
// library's Encryption transport. That transport is not safe for concurrent use,
// keeps no deadline and cannot be cancelled, so every request gets a fresh one, and
// a request still running when its context ends is left to finish on its own.
//
// Known flaw of the pinned library: when its NTLM handshake fails, Encryption.Post
// retries through the plain NTLM negotiator, which sends the envelope unencrypted
// and, if the 401 offers only Basic, the username and password as clear-text Basic
// credentials. Before every request an anonymous preflight asks the endpoint what
// it offers, and nothing is handed to the library unless the answer is NTLM or
// Negotiate: a server (or a passive path) that offers only Basic never sees the
// password. An active attacker who answers the preflight and then the real request
// differently remains out of reach of anything but a sender without the fallback.
type encryptedSender struct {
	ep *wsman.Endpoint
	// preflight checks the endpoint offers NTLM; nil uses offersNTLM.
	preflight func(ctx context.Context, url string) error
}

// offersNTLM sends an empty, anonymous POST and requires a 401 whose
// WWW-Authenticate offers Negotiate or NTLM.
func offersNTLM(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, http.NoBody)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/soap+xml;charset=UTF-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return netError(err)
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

// status401 finds the HTTP status in the library's error text; it exposes no other way.
var status401 = regexp.MustCompile(`\b401\b`)

func (s encryptedSender) send(ctx context.Context, c *wsman.Client, msg *soap.SoapMessage) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	preflight := s.preflight
	if preflight == nil {
		preflight = offersNTLM
	}
	if err := preflight(ctx, fmt.Sprintf("http://%s:%d/wsman", s.ep.Host, s.ep.Port)); err != nil {
		return "", err
	}
	enc, err := wsman.NewEncryption("ntlm")
	if err != nil {
		return "", err
	}
	if err := enc.Transport(s.ep); err != nil {
		return "", err
	}
	type reply struct {
		body string
		err  error
	}
	done := make(chan reply, 1) // buffered: an abandoned request must not block forever
	go func() {
		body, err := enc.Post(c, msg)
		done <- reply{body, err}
	}()
	select {
	case r := <-done:
		switch {
		case r.err == nil:
			return r.body, nil
		case status401.MatchString(r.err.Error()):
			return "", fmt.Errorf("%w: %w", executors.ErrAuth, r.err)
		default:
			return "", netError(r.err)
		}
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// netError marks failures to connect as ErrUnreachable. Everything else is
// returned as it is: the library decides from a *url.Error's Timeout() whether a
// Receive is polled again.
func netError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w: %w", executors.ErrUnreachable, err)
	}
	return err
}

// snippet shortens a reply for an error message.
func snippet(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// FaultError is a SOAP fault the WinRM service answered with: w:QuotaLimit when the
// user holds too many shells, w:TimedOut when a Receive saw no output within the
// OperationTimeout, w:AccessDenied, w:InternalError, …
type FaultError struct {
	Subcode string // e.g. "w:QuotaLimit"; the fault code when there is no subcode
	Reason  string
	Code    string // WSManFault code, e.g. "2150859173"
	Machine string
}

func (f *FaultError) Error() string {
	msg := "wsman fault " + f.Subcode
	if f.Code != "" {
		msg += " (" + f.Code + ")"
	}
	if f.Reason != "" {
		msg += ": " + f.Reason
	}
	// The library polls a Receive again only when the error text mentions
	// OperationTimeout; keep that true even if a server words the reason differently.
	if f.local() == "TimedOut" && !strings.Contains(msg, "OperationTimeout") {
		msg += " (OperationTimeout)"
	}
	return msg
}

// Unwrap classifies the faults the engine branches on.
func (f *FaultError) Unwrap() error {
	if f.local() == "AccessDenied" {
		return executors.ErrAuth
	}
	return nil
}

// local is the subcode without its namespace prefix.
func (f *FaultError) local() string {
	_, name, found := strings.Cut(f.Subcode, ":")
	if !found {
		return f.Subcode
	}
	return name
}

// faultEnvelope is the part of a SOAP 1.2 fault we read (MS-WSMV 2.2.2).
type faultEnvelope struct {
	Body struct {
		Fault *struct {
			Code struct {
				Value   string `xml:"Value"`
				Subcode struct {
					Value string `xml:"Value"`
				} `xml:"Subcode"`
			} `xml:"Code"`
			Reason struct {
				Text []string `xml:"Text"`
			} `xml:"Reason"`
			Detail struct {
				WSManFault struct {
					Code    string `xml:"Code,attr"`
					Machine string `xml:"Machine,attr"`
					Message struct {
						Text          string `xml:",chardata"`
						ProviderFault string `xml:"ProviderFault"`
					} `xml:"Message"`
				} `xml:"WSManFault"`
			} `xml:"Detail"`
		} `xml:"Fault"`
	} `xml:"Body"`
}

// parseFault returns the fault a reply carries, or nil.
func parseFault(body string) *FaultError {
	if !strings.Contains(body, "Fault") {
		return nil
	}
	var env faultEnvelope
	if err := xml.Unmarshal([]byte(body), &env); err != nil || env.Body.Fault == nil {
		return nil
	}
	f := env.Body.Fault
	w := f.Detail.WSManFault
	out := &FaultError{
		Subcode: strings.TrimSpace(f.Code.Subcode.Value),
		Code:    w.Code,
		Machine: w.Machine,
	}
	if out.Subcode == "" {
		out.Subcode = strings.TrimSpace(f.Code.Value)
	}
	for _, text := range []string{strings.Join(f.Reason.Text, " "), w.Message.Text, w.Message.ProviderFault} {
		if text = strings.Join(strings.Fields(text), " "); text != "" {
			out.Reason = text
			break
		}
	}
	return out
}
