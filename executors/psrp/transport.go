package psrp

import (
	"context"

	mwinrm "github.com/masterzen/winrm"
	"github.com/masterzen/winrm/soap"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/wsman"
)

// FaultError is a SOAP fault the WinRM service answered with ([MS-WSMV] 2.2.2):
// w:TimedOut when a Receive saw nothing within the OperationTimeout,
// w:QuotaLimit, w:AccessDenied, w:InvalidSelectors (the shell is gone), …
type FaultError = wsman.FaultError

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
	// for senders built on a masterzen/winrm Transporter.
	WSMan *mwinrm.Endpoint
}

// SenderFactory builds the sender of one endpoint; WithSenderFactory plugs one in
// (Kerberos from executors/wsman/kerberos).
type SenderFactory func(ep Endpoint) (Sender, error)

// TransporterSender adapts a masterzen/winrm Transporter (which has no context
// and posts to the /wsman path of its client) into a Sender. A request still
// running when ctx ends is left to finish on its own; its reply is dropped.
func TransporterSender(t mwinrm.Transporter, ep Endpoint) (Sender, error) {
	if err := t.Transport(ep.WSMan); err != nil {
		return nil, err
	}
	return SenderFunc(func(ctx context.Context, msg *soap.SoapMessage) (string, error) {
		pw, err := ep.Password()
		if err != nil {
			return "", err
		}
		params := *mwinrm.DefaultParameters
		params.TransportDecorator = func() mwinrm.Transporter { return t }
		c, err := mwinrm.NewClientWithParameters(ep.WSMan, ep.Username, pw.Reveal(), &params)
		if err != nil {
			return "", err
		}
		return wsman.Post(ctx, t, c, msg)
	}), nil
}

// encryptedSender speaks NTLM-encrypted WS-Management on http (5985) through the
// library's Encryption transport, a fresh one per request, after the anonymous
// preflight of wsman.EncryptedTransport: nothing is handed to the library unless
// the endpoint offers NTLM or Negotiate, because on a failed handshake the
// library falls back to sending the password as clear-text Basic.
type encryptedSender struct {
	ep        Endpoint
	preflight func(ctx context.Context, url string) error
}

func (s encryptedSender) Send(ctx context.Context, msg *soap.SoapMessage) (string, error) {
	enc, err := wsman.EncryptedTransport(ctx, s.preflight, s.ep.WSMan)
	if err != nil {
		return "", err
	}
	snd, err := TransporterSender(enc, s.ep)
	if err != nil {
		return "", err
	}
	return snd.Send(ctx, msg)
}
