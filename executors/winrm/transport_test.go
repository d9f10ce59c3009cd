package winrm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	wsman "github.com/masterzen/winrm"
	"github.com/masterzen/winrm/soap"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/winrm/winrmfake"
)

// senderFunc is a function-type fake for the transport's one seam.
type senderFunc func(ctx context.Context, c *wsman.Client, msg *soap.SoapMessage) (string, error)

func (f senderFunc) send(ctx context.Context, c *wsman.Client, msg *soap.SoapMessage) (string, error) {
	return f(ctx, c, msg)
}

func TestTransportPost(t *testing.T) {
	const url = "http://ex01.contoso.com:5985/wsman"
	params := *wsman.DefaultParameters
	messages := map[string]*soap.SoapMessage{
		"Create":  wsman.NewOpenShellRequest(url, &params),
		"Receive": wsman.NewGetOutputRequest(url, "S1", "C1", "stdout stderr", &params),
		"Signal":  wsman.NewSignalRequest(url, "S1", "C1", &params),
		"Delete":  wsman.NewDeleteShellRequest(url, "S1", &params),
	}

	t.Run("a fault in a 200 body is an error", func(t *testing.T) {
		// The encrypted transport returns a 500's decrypted body without an error.
		tr := &transport{ctx: t.Context(), cleanup: time.Second, sender: senderFunc(
			func(context.Context, *wsman.Client, *soap.SoapMessage) (string, error) {
				return winrmfake.FaultQuota.Body(), nil
			})}
		_, err := tr.Post(nil, messages["Create"])
		var fault *FaultError
		require.ErrorAs(t, err, &fault)
		assert.Equal(t, "w:QuotaLimit", fault.Subcode)
	})

	t.Run("a body that is not SOAP is an error", func(t *testing.T) {
		tr := &transport{ctx: t.Context(), cleanup: time.Second, sender: senderFunc(
			func(context.Context, *wsman.Client, *soap.SoapMessage) (string, error) {
				return "<html><body>502 Bad Gateway</body></html>", nil
			})}
		_, err := tr.Post(nil, messages["Create"])
		require.ErrorContains(t, err, "reply is not a SOAP envelope: <html><body>502 Bad Gateway")
	})

	// After the run's context is gone, only Signal and Delete may still go out,
	// each with a deadline of its own.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for name, msg := range messages {
		t.Run(name+" after cancel", func(t *testing.T) {
			var (
				live        bool
				deadline    time.Time
				hasDeadline bool
			)
			tr := &transport{ctx: ctx, cleanup: time.Second, sender: senderFunc(
				func(ctx context.Context, _ *wsman.Client, _ *soap.SoapMessage) (string, error) {
					live = ctx.Err() == nil
					deadline, hasDeadline = ctx.Deadline()
					return winrmfake.SignalResponse("uuid:1"), nil
				})}
			_, err := tr.Post(nil, msg)
			require.NoError(t, err)
			cleanup := name == "Signal" || name == "Delete"
			assert.Equal(t, cleanup, live, "live context")
			if cleanup {
				require.True(t, hasDeadline, "cleanup without a deadline")
				assert.WithinDuration(t, time.Now().Add(time.Second), deadline, 500*time.Millisecond)
			}
		})
	}
}

// The NTLM-encrypted path cannot be run end to end without an NTLM server, but its
// error handling and its deadline can.
func TestEncryptedSender(t *testing.T) {
	endpointFor := func(srv *httptest.Server) *wsman.Endpoint {
		port, err := strconv.Atoi(srv.URL[strings.LastIndex(srv.URL, ":")+1:])
		require.NoError(t, err)
		return &wsman.Endpoint{Host: "127.0.0.1", Port: port, Timeout: time.Minute}
	}
	run := func(t *testing.T, srv *httptest.Server, ctx context.Context) error {
		ep := endpointFor(srv)
		s := encryptedSender{ep: ep}
		params := *wsman.DefaultParameters
		params.TransportDecorator = func() wsman.Transporter { return &transport{ctx: ctx, cleanup: time.Second, sender: s} }
		c, err := wsman.NewClientWithParameters(ep, `CONTOSO\svc-ndrbot`, "Winter2024!", &params)
		require.NoError(t, err)
		_, err = s.send(ctx, c, wsman.NewOpenShellRequest(srv.URL+"/wsman", &params))
		return err
	}

	t.Run("a server offering only Basic never sees the password", func(t *testing.T) {
		var sawAuth atomic.Bool
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "" {
				sawAuth.Store(true)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="WSMAN"`)
			w.WriteHeader(http.StatusUnauthorized)
		}))
		defer srv.Close()
		err := run(t, srv, t.Context())
		require.ErrorIs(t, err, executors.ErrAuth)
		require.ErrorContains(t, err, "refusing to send credentials over http")
		require.False(t, sawAuth.Load(), "credentials reached a Basic-only server")
	})

	t.Run("401 is an authentication failure", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("WWW-Authenticate", "Negotiate")
			w.WriteHeader(http.StatusUnauthorized)
		}))
		defer srv.Close()
		require.ErrorIs(t, run(t, srv, t.Context()), executors.ErrAuth)
	})

	t.Run("a server that never answers does not outlive the deadline", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release) // lets the abandoned request end before Close waits for it

		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := run(t, srv, ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 2*time.Second)
	})
}
