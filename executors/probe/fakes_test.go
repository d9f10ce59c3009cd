package probe

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors/probe/dnsfake"
)

// ---- fake SMTP server -------------------------------------------------------------
//
// Replies are shaped like Exchange Online / EOP's (e.g. "421 4.3.2 Service not
// available" and the 220 banner of *.mail.protection.outlook.com), trimmed.

type smtpMode int

const (
	modeOK          smtpMode = iota // 220 multi-line banner, EHLO with STARTTLS, QUIT
	modeNoTLS                       // as modeOK without STARTTLS
	modeGreet421                    // 421 greeting, then close
	modeEHLO421                     // 220, then 421 to EHLO
	modeGreet450                    // 450 greeting
	modeGreet554                    // 554 greeting, waits for QUIT
	modeHELOOnly                    // 502 to EHLO, 250 to HELO
	modeSilent                      // accepts and never says anything
	modeGarbage                     // not SMTP
	modeHangup                      // accepts and closes at once
	modeSTARTTLS454                 // offers STARTTLS, refuses it with 454
)

const (
	fakeBanner  = "220-mx.fake.test Microsoft ESMTP MAIL Service ready\r\n220 second banner line\r\n"
	fake421     = "421 4.3.2 Service not available, too many concurrent connections\r\n"
	fakeEHLOExt = "250-PIPELINING\r\n250-SIZE 36700160\r\n"
)

type fakeSMTP struct {
	ln      net.Listener
	mode    smtpMode
	maxConc int64         // > 0: answer 421 to a connection while more than maxConc are open
	hold    time.Duration // pause before the greeting, to make connections overlap
	pair    tlsPair       // pair.client trusts the server's certificate

	accepted atomic.Int64
	active   atomic.Int64
	peak     atomic.Int64

	mu    sync.Mutex
	cmds  []string
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newFakeSMTP(t testing.TB, mode smtpMode, opts ...func(*fakeSMTP)) *fakeSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakeSMTP{ln: ln, mode: mode, conns: map[net.Conn]struct{}{}, pair: testTLS(t)}
	for _, o := range opts {
		o(f)
	}
	f.wg.Go(f.serve)
	t.Cleanup(f.close)
	return f
}

func (f *fakeSMTP) addr() string { return f.ln.Addr().String() }
func (f *fakeSMTP) port() int    { return f.ln.Addr().(*net.TCPAddr).Port }

func (f *fakeSMTP) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

func (f *fakeSMTP) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakeSMTP) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.accepted.Add(1)
		n := f.active.Add(1)
		for p := f.peak.Load(); n > p && !f.peak.CompareAndSwap(p, n); p = f.peak.Load() {
		}
		f.mu.Lock()
		f.conns[c] = struct{}{}
		f.mu.Unlock()
		f.wg.Go(func() {
			// release marks the session over, as a server does when it answers QUIT or
			// sees the client leave; it runs before the client can observe the end.
			var once sync.Once
			release := func() { once.Do(func() { f.active.Add(-1) }) }
			defer func() {
				f.mu.Lock()
				delete(f.conns, c)
				f.mu.Unlock()
				release()
				_ = c.Close()
			}()
			if f.maxConc > 0 && n > f.maxConc {
				_, _ = c.Write([]byte(fake421))
				return
			}
			f.session(c, release)
		})
	}
}

func (f *fakeSMTP) record(cmd string) {
	f.mu.Lock()
	f.cmds = append(f.cmds, cmd)
	f.mu.Unlock()
}

func (f *fakeSMTP) session(c net.Conn, release func()) {
	br := bufio.NewReader(c)
	if f.hold > 0 { // pause before the greeting, noticing a client that leaves meanwhile
		_ = c.SetReadDeadline(time.Now().Add(f.hold))
		if _, err := br.Peek(1); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		_ = c.SetReadDeadline(time.Time{})
	}
	write := func(s string) bool { _, err := c.Write([]byte(s)); return err == nil }
	switch f.mode {
	case modeSilent:
		_, _ = br.ReadString('\n') // until the client gives up and closes
		return
	case modeHangup:
		return
	case modeGarbage:
		write("HTTP/1.1 400 Bad Request\r\n\r\n")
		return
	case modeGreet421:
		write(fake421)
		return
	case modeGreet450:
		if !write("450 4.7.1 Try again later, closing connection\r\n") {
			return
		}
	case modeGreet554:
		if !write("554-5.7.1 Service unavailable; Client host [127.0.0.1] blocked\r\n554 5.7.1 using Spamhaus\r\n") {
			return
		}
	default:
		if !write(fakeBanner) {
			return
		}
	}
	inTLS := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if inTLS {
			line = "[tls] " + line
		}
		f.record(line)
		verb, arg, _ := strings.Cut(strings.TrimPrefix(line, "[tls] "), " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			switch {
			case f.mode == modeEHLO421:
				write(fake421)
				return
			case f.mode == modeHELOOnly:
				write("502 5.5.2 Command not recognized\r\n")
				continue
			}
			reply := "250-mx.fake.test Hello [" + arg + "]\r\n" + fakeEHLOExt
			if (f.mode == modeOK || f.mode == modeSTARTTLS454) && !inTLS {
				reply += "250-STARTTLS\r\n"
			}
			write(reply + "250 8BITMIME\r\n")
		case "HELO":
			write("250 mx.fake.test Hello [" + arg + "]\r\n")
		case "STARTTLS":
			if f.mode == modeSTARTTLS454 {
				write("454 4.7.0 TLS not available due to temporary reason\r\n")
				continue
			}
			if !write("220 2.0.0 SMTP server ready\r\n") {
				return
			}
			tc := tls.Server(c, f.pair.server)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, br, inTLS = tc, bufio.NewReader(tc), true
		case "QUIT":
			release()
			write("221 2.0.0 Service closing transmission channel\r\n")
			return
		default:
			write("502 5.5.2 Command not recognized\r\n")
		}
	}
}

// ---- TLS material -----------------------------------------------------------------

type tlsPair struct {
	server *tls.Config
	client *tls.Config // trusts the test CA
}

// testTLS makes a self-signed certificate for 127.0.0.1 and mx1.contoso.test.
func testTLS(t testing.TB) tlsPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mx.fake.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"mx1.contoso.test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tlsPair{
		server: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}},
		client: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}
}

// ---- fake DNS server --------------------------------------------------------------
//
// A recursive resolver as the bot sees it, answering from a fixed table
// (dnsfake). Record shapes follow real zones: Microsoft 365 MX/SPF, RFC 5782
// DNSBL test entries (127.0.0.2 listed with a TXT reason in every zone),
// Spamhaus's 127.255.255.254 "public resolver" refusal.

type fakeDNS = dnsfake.Server

// newFakeDNS serves rrs; blackhole and servfail are name suffixes.
func newFakeDNS(t testing.TB, blackhole, servfail []string, rrs ...string) *fakeDNS {
	return dnsfake.New(t, dnsfake.Failing{Blackhole: blackhole, ServFail: servfail}, rrs...)
}

// ---- clock ------------------------------------------------------------------------

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
