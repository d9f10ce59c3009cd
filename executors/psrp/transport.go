package psrp

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

// The senders mirror executors/winrm/transport.go. They are copied rather than
// shared because moving them into a common package would change executors/winrm;
// merging both into executors/wsman is a follow-up once the Kerberos sender there
// settles the interface.

// maxReply bounds one SOAP reply we read: the client asks for envelopes of at most
// MaxEnvelopeSize, so anything far larger is not WinRM.
const maxReply = 8 << 20

// Sender delivers one SOAP envelope to an endpoint and returns the reply body. A
// SOAP fault comes back as the body (it is parsed) or as an error. Send must
// honour ctx: after a timeout the executor's cleanup calls it again with a fresh
// short deadline of its own.
type Sender interface {
	Send(ctx context.Context, msg *soap.SoapMessage) (string, error)
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, msg *soap.SoapMessage) (string, error)

// Send implements Sender.
func (f SenderFunc) Send(ctx context.Context, msg *soap.SoapMessage) (string, error) {
	return f(ctx, msg)
}

// Endpoint describes one configured server to a SenderFactory.
type Endpoint struct {
	Host     string // as configured, e.g. "ex01.contoso.example"
	URL      string // e.g. "http://ex01.contoso.example/PowerShell"
	Username string
	// Password returns the current password (password_file is read anew).
	Password func() (config.Secret, error)
	// WSMan is the library's view of the endpoint (host, port, https, timeout),
	// for senders built on a wsman.Transporter.
	WSMan *wsman.Endpoint
}

// SenderFactory builds the sender of one endpoint; WithSenderFactory plugs one in
// (Kerberos from executors/wsman/kerberos).
type SenderFactory func(ep Endpoint) (Sender, error)

// TransporterSender adapts a masterzen/winrm Transporter (which has no context
// and posts to the /wsman path of its client) into a Sender. A request still
// running when ctx ends is left to finish on its own; its reply is dropped.
func TransporterSender(t wsman.Transporter, ep Endpoint) (Sender, error) {
	if err := t.Transport(ep.WSMan); err != nil {
		return nil, err
	}
	return SenderFunc(func(ctx context.Context, msg *soap.SoapMessage) (string, error) {
		pw, err := ep.Password()
		if err != nil {
			return "", err
		}
		params := *wsman.DefaultParameters
		params.TransportDecorator = func() wsman.Transporter { return t }
		c, err := wsman.NewClientWithParameters(ep.WSMan, ep.Username, pw.Reveal(), &params)
		if err != nil {
			return "", err
		}
		type result struct {
			body string
			err  error
		}
		done := make(chan result, 1) // buffered: an abandoned request must not block
		go func() {
			body, err := t.Post(c, msg)
			done <- result{body, err}
		}()
		select {
		case r := <-done:
			if r.err != nil && status401.MatchString(r.err.Error()) {
				return "", fmt.Errorf("%w: %w", executors.ErrAuth, r.err)
			}
			if r.err != nil {
				return "", netError(r.err)
			}
			return r.body, nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}), nil
}

// httpSender speaks to https endpoints (basic or NTLM) and to http with basic. It
// owns its HTTP requests, so a deadline or cancel aborts a long-polling Receive.
type httpSender struct {
	url      string
	user     string
	password func() (config.Secret, error)
	client   *http.Client
}

// CloseIdleConnections lets Close end the kept-alive connections.
func (s *httpSender) CloseIdleConnections() { s.client.CloseIdleConnections() }

func (s *httpSender) Send(ctx context.Context, msg *soap.SoapMessage) (string, error) {
	pw, err := s.password()
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, strings.NewReader(msg.String()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/soap+xml;charset=UTF-8")
	req.SetBasicAuth(s.user, pw.Reveal())
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
// library's Encryption transport, with the same anonymous preflight as the winrm
// executor: nothing is handed to the library unless the endpoint offers NTLM or
// Negotiate, because on a failed handshake the library falls back to sending the
// password as clear-text Basic. See executors/winrm/transport.go for the details.
type encryptedSender struct {
	ep        Endpoint
	preflight func(ctx context.Context, url string) error
}

func (s encryptedSender) Send(ctx context.Context, msg *soap.SoapMessage) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	preflight := s.preflight
	if preflight == nil {
		preflight = offersNTLM
	}
	if err := preflight(ctx, s.ep.URL); err != nil {
		return "", err
	}
	enc, err := wsman.NewEncryption("ntlm")
	if err != nil {
		return "", err
	}
	snd, err := TransporterSender(enc, s.ep)
	if err != nil {
		return "", err
	}
	return snd.Send(ctx, msg)
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

// netError marks failures to connect as ErrUnreachable.
func netError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w: %w", executors.ErrUnreachable, err)
	}
	return err
}

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

// FaultError is a SOAP fault the WinRM service answered with ([MS-WSMV] 2.2.2):
// w:TimedOut when a Receive saw nothing within the OperationTimeout,
// w:QuotaLimit, w:AccessDenied, w:InvalidSelectors (the shell is gone), …
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
	return msg
}

// Unwrap classifies the faults the engine branches on.
func (f *FaultError) Unwrap() error {
	if f.local() == "AccessDenied" {
		return executors.ErrAuth
	}
	return nil
}

func (f *FaultError) local() string {
	_, name, found := strings.Cut(f.Subcode, ":")
	if !found {
		return f.Subcode
	}
	return name
}

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
	out := &FaultError{Subcode: strings.TrimSpace(f.Code.Subcode.Value), Code: w.Code, Machine: w.Machine}
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
