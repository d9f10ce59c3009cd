// Package wsman holds the WS-Management plumbing shared by the winrm and psrp
// executors: SOAP fault parsing, error classification, endpoint URL parsing and
// limits, and the HTTP and NTLM-encrypted senders built on
// github.com/masterzen/winrm.
package wsman

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/executors"
)

// HeaderSlack is how much longer than the WS-Man OperationTimeout we wait for a
// reply's headers: a Receive legitimately long-polls for the whole
// OperationTimeout before the server answers with a w:TimedOut fault.
const HeaderSlack = 15 * time.Second

// MaxReply bounds one SOAP reply we read. The client asks for envelopes of at most
// MaxEnvelopeSize (150 KiB by default); anything far larger is not WinRM.
const MaxReply = 8 << 20

// CheckReply turns a reply body into an error when it is not an answer: a SOAP
// fault comes back as *FaultError, anything that is not an envelope as an error.
// Some senders (the encrypted transport) hand back a 500's body as if it were a
// reply, so every body is checked: a fault must never pass for an answer.
func CheckReply(body string) (string, error) {
	if f := ParseFault(body); f != nil {
		return "", f
	}
	if !strings.Contains(body, "Envelope") {
		return "", fmt.Errorf("reply is not a SOAP envelope: %s", Snippet(body))
	}
	return body, nil
}

// NetError marks failures to connect as ErrUnreachable. Everything else is
// returned as it is: the library decides from a *url.Error's Timeout() whether a
// Receive is polled again.
func NetError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w: %w", executors.ErrUnreachable, err)
	}
	return err
}

// Snippet shortens a reply for an error message.
func Snippet(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}
