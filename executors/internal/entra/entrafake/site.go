package entrafake

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Site is an httptest TLS server that answers under Microsoft cloud host names:
// its certificate, a CA of its own, is valid for the names it was started with,
// localhost and the loopback addresses. A client trusts it through CAFile (a
// target's ca_file), CAPEM or CertPool, and reaches the cloud names through
// DialContext, which sends any address to the site while TLS still verifies the
// name the client asked for.
type Site struct {
	*httptest.Server

	caPEM  []byte
	caFile string
	pool   *x509.CertPool
}

// StartSite starts a Site serving h for names; it stops when the test ends.
// fake names the certificate, the CA file and the test's failure messages.
func StartSite(t testing.TB, fake string, names []string, h http.Handler) *Site {
	t.Helper()
	cert, err := selfSigned(fake, append([]string{"localhost"}, names...))
	if err != nil {
		t.Fatalf("%s: certificate: %v", fake, err)
	}
	s := &Site{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		caFile: filepath.Join(t.TempDir(), fake+"-ca.pem"), pool: x509.NewCertPool()}
	s.pool.AppendCertsFromPEM(s.caPEM)
	if err := os.WriteFile(s.caFile, s.caPEM, 0o600); err != nil {
		t.Fatalf("%s: %v", fake, err)
	}
	s.Server = httptest.NewUnstartedServer(h)
	s.Server.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// CAFile is a PEM file holding the site's CA, for a target's ca_file or
// SSL_CERT_FILE.
func (s *Site) CAFile() string { return s.caFile }

// CAPEM returns the site's CA certificate, PEM-encoded.
func (s *Site) CAPEM() []byte { return slices.Clone(s.caPEM) }

// CertPool is a pool holding only the site's CA.
func (s *Site) CertPool() *x509.CertPool { return s.pool.Clone() }

// Addr is the site's listening address (127.0.0.1:port).
func (s *Site) Addr() string { return s.Listener.Addr().String() }

// DialContext connects to the site whatever address is asked for: the client
// keeps the host name for SNI, certificate verification and the Host header.
func (s *Site) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, s.Addr())
}

// CloudClient is a client that trusts the site only and reaches it under any
// host name, as an executor configured with CAFile and DialContext does.
func (s *Site) CloudClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12},
		DialContext:     s.DialContext,
	}}
}

// ResetConnection drops the connection of w with a TCP RST (SO_LINGER 0) instead
// of answering, and reports false when w's connection cannot be taken over.
func ResetConnection(w http.ResponseWriter) bool {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return false
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn() // under TLS, so no close_notify goes out first
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
	return true
}

// selfSigned makes a CA-flagged ECDSA certificate for names and the loopback
// addresses, used as both the server certificate and the trust anchor.
func selfSigned(fake string, names []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: fake, Organization: []string{"ndrbot tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
