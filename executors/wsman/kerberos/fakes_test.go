package kerberos

// Test glue around krbtest: the realm with the bot's user and the Exchange
// server's SPN, and an endpoint whose WS-Management side quotes the request's
// marker back (or answers a SOAP fault), so a test can tell which envelope a
// reply belongs to after sealing and unsealing.

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/ndrbot/ndrbot/executors/wsman/kerberos/krbtest"
)

const (
	testRealm    = "CORP.EXAMPLE.COM"
	testUser     = "svc-ndrbot"
	testPassword = "Tr0ub4dor&3-never-print-me"
	testHost     = "ex01.corp.example.com"
	testSPN      = "HTTP/" + testHost
)

// newRealm starts a KDC that knows testUser and testSPN.
func newRealm(t *testing.T) *krbtest.Realm {
	t.Helper()
	r := krbtest.NewRealm(t, testRealm)
	r.AddUser(testUser, testPassword)
	r.AddService(testSPN)
	return r
}

// endpoint is the fake WinRM/Exchange endpoint for testSPN.
type endpoint struct {
	*krbtest.Acceptor
	srv   *httptest.Server
	fault atomic.Bool // answer HTTP 500 with a SOAP fault
}

func newEndpoint(t *testing.T, r *krbtest.Realm, tlsOn bool, opts ...krbtest.Option) *endpoint {
	t.Helper()
	e := &endpoint{}
	e.Acceptor = r.Handler(testSPN, http.HandlerFunc(e.answer), opts...)
	e.srv = e.NewServer(tlsOn)
	return e
}

// dialer sends every connection for the fake host names to the test server.
func (e *endpoint) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, e.srv.Listener.Addr().String())
	}
}

// answer is the WS-Management side behind the acceptor: it gets the plain
// envelope and its reply is sealed by the acceptor on http.
func (e *endpoint) answer(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	if e.fault.Load() {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(testFault))
		return
	}
	_, _ = w.Write(reply(body))
}

// reply is the fake's answer to an envelope: it quotes the request's marker.
func reply(req []byte) []byte {
	marker := "none"
	if i := bytes.Index(req, []byte("MARK-")); i >= 0 {
		end := bytes.IndexByte(req[i:], '<')
		if end < 0 {
			end = len(req) - i
		}
		marker = string(req[i : i+end])
	}
	return []byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><Reply>REPLY-TO-` + marker + `</Reply></s:Body></s:Envelope>`)
}

const testFault = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value></s:Code>` +
	`<s:Reason><s:Text>The WS-Management service cannot complete the operation within the time specified in OperationTimeout.</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>`

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
