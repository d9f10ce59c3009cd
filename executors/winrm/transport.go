package winrm

import (
	"context"
	"strings"
	"time"

	mwinrm "github.com/masterzen/winrm"
	"github.com/masterzen/winrm/soap"

	"github.com/ndrbot/ndrbot/executors/wsman"
)

// FaultError is a SOAP fault the WinRM service answered with: w:QuotaLimit when the
// user holds too many shells, w:TimedOut when a Receive saw no output within the
// OperationTimeout, w:AccessDenied, w:InternalError, …
type FaultError = wsman.FaultError

// sender delivers one SOAP envelope to an endpoint and returns the reply body.
// A SOAP fault comes back as the body or as a *FaultError.
type sender interface {
	send(ctx context.Context, c *mwinrm.Client, msg *soap.SoapMessage) (string, error)
}

// transport is the mwinrm.Transporter of one Run. The library's Post takes no
// context, so the run's context lives here and every request is bound to it —
// except Signal and Delete, which get a fresh short deadline of their own: after a
// timeout or cancel they must still reach the server, or the shell stays open and
// counts against the user's shell quota (MaxShellsPerUser) until its idle timeout.
type transport struct {
	ctx     context.Context
	cleanup time.Duration
	sender  sender
}

// Transport implements mwinrm.Transporter; the sender was configured in New.
func (t *transport) Transport(*mwinrm.Endpoint) error { return nil }

// Post implements mwinrm.Transporter.
func (t *transport) Post(c *mwinrm.Client, msg *soap.SoapMessage) (string, error) {
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
	return wsman.CheckReply(body)
}

// isCleanup tells the requests that end a command or a shell. Only the action
// header names them; the rest of an envelope is base64 or fixed text.
func isCleanup(msg *soap.SoapMessage) bool {
	s := msg.String()
	return strings.Contains(s, "/windows/shell/Signal<") || strings.Contains(s, "/transfer/Delete<")
}

// httpSender is wsman.HTTPSender with the password of one run.
type httpSender struct{ *wsman.HTTPSender }

func (s httpSender) send(ctx context.Context, _ *mwinrm.Client, msg *soap.SoapMessage) (string, error) {
	return s.Send(ctx, msg)
}

// encryptedSender speaks NTLM-encrypted WS-Management on http (5985) through the
// library's Encryption transport, a fresh one per request, after the anonymous
// preflight of wsman.EncryptedTransport (nothing is handed to the library unless
// the endpoint offers NTLM or Negotiate).
type encryptedSender struct {
	ep *mwinrm.Endpoint
	// preflight checks the endpoint offers NTLM; nil uses wsman.OffersNTLM.
	preflight func(ctx context.Context, url string) error
}

func (s encryptedSender) send(ctx context.Context, c *mwinrm.Client, msg *soap.SoapMessage) (string, error) {
	enc, err := wsman.EncryptedTransport(ctx, s.preflight, s.ep)
	if err != nil {
		return "", err
	}
	return wsman.Post(ctx, enc, c, msg)
}
