package kerberos

import (
	"context"
	"net"
	"strconv"
	"strings"
	"time"

	wsman "github.com/masterzen/winrm"
	"github.com/masterzen/winrm/soap"
)

// DefaultCleanupTimeout bounds a Signal or Delete sent through a RunTransporter.
const DefaultCleanupTimeout = 10 * time.Second

// RunTransporter adapts a Transport to masterzen's winrm.Transporter for one run.
// The library's Post takes no context, so the run's context lives here (as in
// executors/winrm); Signal and Delete get a fresh short deadline of their own so a
// timed-out or cancelled run still closes its shell, which otherwise counts
// against the user's shell quota until it idles out.
type RunTransporter struct {
	T   *Transport
	Ctx context.Context
	// URL is the endpoint, e.g. http://ex01.corp.example.com/PowerShell. Empty
	// takes http(s)://host:port/wsman from the Endpoint given to Transport.
	URL string
	// Cleanup bounds Signal and Delete (DefaultCleanupTimeout when zero).
	Cleanup time.Duration
}

var _ wsman.Transporter = (*RunTransporter)(nil)

// Transporter returns the adapter for one run against endpointURL.
func (t *Transport) Transporter(ctx context.Context, endpointURL string) *RunTransporter {
	return &RunTransporter{T: t, Ctx: ctx, URL: endpointURL}
}

// Transport implements wsman.Transporter: the Transport was configured in New;
// only a missing URL is taken from the endpoint.
func (r *RunTransporter) Transport(ep *wsman.Endpoint) error {
	if r.URL == "" && ep != nil {
		scheme := "http"
		if ep.HTTPS {
			scheme = "https"
		}
		r.URL = scheme + "://" + net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)) + "/wsman"
	}
	return nil
}

// Post implements wsman.Transporter. A SOAP fault comes back as an error whose
// text carries the fault (the library re-polls a Receive on "OperationTimeout").
func (r *RunTransporter) Post(_ *wsman.Client, msg *soap.SoapMessage) (string, error) {
	ctx := r.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	env := msg.String()
	if isCleanup(env) {
		d := r.Cleanup
		if d <= 0 {
			d = DefaultCleanupTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), d)
		defer cancel()
	}
	body, err := r.T.Post(ctx, r.URL, []byte(env))
	if err != nil {
		return "", err
	}
	return string(body), nil
}

// isCleanup tells the requests that end a command or a shell by their action.
func isCleanup(env string) bool {
	return strings.Contains(env, "/windows/shell/Signal<") || strings.Contains(env, "/transfer/Delete<")
}
