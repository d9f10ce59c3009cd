package kerberos

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/masterzen/winrm/soap"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/wsman/kerberos/krbtest"
)

const envelope = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><Get-Queue>MARK-SECRET-PLAINTEXT-1</Get-Queue></s:Body></s:Envelope>`

func newTransport(t *testing.T, k *krbtest.Realm, a *endpoint, password string, opts ...Option) *Transport {
	t.Helper()
	opts = append([]Option{WithDialer(a.dialer()), WithRequestTimeout(20 * time.Second), WithKDCTimeout(10 * time.Second)}, opts...)
	tr, err := New(Config{Username: testUser, Realm: testRealm, Password: config.Secret(password), Krb5Conf: k.Krb5Conf()}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestHTTPEncryptedRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		scheme  string
		rrc, ec int
		spaced  bool
	}{
		{"Kerberos, Windows layout", "Kerberos", 28, 0, false},
		{"Negotiate, no rotation, filler, spaced boundary", "Negotiate", 0, 7, true},
		{"Kerberos, odd rotation", "Kerberos", 5, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newRealm(t)
			a := newEndpoint(t, k, false, krbtest.WithScheme(tc.scheme), krbtest.WithSealLayout(tc.rrc, tc.ec, tc.spaced))
			tr := newTransport(t, k, a, testPassword)
			url := "http://" + testHost + "/PowerShell"

			for i, mark := range []string{"MARK-SECRET-PLAINTEXT-1", "MARK-SECRET-PLAINTEXT-2", "MARK-SECRET-PLAINTEXT-3"} {
				env := strings.Replace(envelope, "MARK-SECRET-PLAINTEXT-1", mark, 1)
				got, err := tr.Post(ctx(t), url, []byte(env))
				if err != nil {
					t.Fatalf("post %d: %v", i, err)
				}
				if !bytes.Contains(got, []byte("REPLY-TO-"+mark)) {
					t.Fatalf("post %d: reply %q", i, got)
				}
			}
			plain, auths := a.Received(), a.Handshakes()
			if len(plain) != 3 || !bytes.Contains(plain[2], []byte("MARK-SECRET-PLAINTEXT-3")) {
				t.Fatalf("server decrypted %q", plain)
			}
			// One handshake served all three envelopes on the same connection.
			if auths != 1 || k.TGSRequests() != 1 {
				t.Errorf("handshakes %d, TGS requests %d; want 1 and 1", auths, k.TGSRequests())
			}
			wire := a.Wire()
			if bytes.Contains(wire, []byte("MARK-SECRET")) || bytes.Contains(wire, []byte("Get-Queue")) {
				t.Fatal("plaintext SOAP appeared on the wire")
			}
			if !bytes.Contains(wire, []byte("multipart/encrypted")) {
				t.Fatal("no encrypted request seen on the wire")
			}
		})
	}
}

func TestHTTPSRoundTrip(t *testing.T) {
	for _, scheme := range []string{"Negotiate", "Kerberos"} {
		t.Run(scheme, func(t *testing.T) {
			k := newRealm(t)
			a := newEndpoint(t, k, true, krbtest.WithScheme(scheme))
			pool := x509.NewCertPool()
			pool.AddCert(a.srv.Certificate())
			tr := newTransport(t, k, a, testPassword, WithTLSConfig(&tls.Config{RootCAs: pool, ServerName: "example.com"}))
			url := "https://" + testHost + ":5986/wsman"
			for range 2 {
				got, err := tr.Post(ctx(t), url, []byte(envelope))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(got, []byte("REPLY-TO-MARK-SECRET-PLAINTEXT-1")) {
					t.Fatalf("reply %q", got)
				}
			}
			// https authenticates every request (mutually: the AP-REP is checked)
			// but reuses the cached ticket.
			if a.Handshakes() != 2 || k.TGSRequests() != 1 || k.ASRequests() != 1 {
				t.Errorf("auths %d, TGS %d, AS %d; want 2, 1, 1", a.Handshakes(), k.TGSRequests(), k.ASRequests())
			}
		})
	}
}

func TestTamperedReplyIsRejected(t *testing.T) {
	k := newRealm(t)
	a := newEndpoint(t, k, false, krbtest.WithScheme("Kerberos"), krbtest.WithSealLayout(28, 0, false))
	tr := newTransport(t, k, a, testPassword)
	url := "http://" + testHost + "/PowerShell"
	a.TamperNextReply()
	_, err := tr.Post(ctx(t), url, []byte(envelope))
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("tampered reply: err %v, want ErrIntegrity", err)
	}
	// The session is dropped; the next Post authenticates a new one and works.
	if _, err := tr.Post(ctx(t), url, []byte(envelope)); err != nil {
		t.Fatalf("after tampering: %v", err)
	}
}

func TestClearTextReplyOnHTTPIsRefused(t *testing.T) {
	k := newRealm(t)
	a := newEndpoint(t, k, false, krbtest.WithScheme("Kerberos"), krbtest.WithClearReplies())
	tr := newTransport(t, k, a, testPassword)
	_, err := tr.Post(ctx(t), "http://"+testHost+"/PowerShell", []byte(envelope))
	if err == nil || !strings.Contains(err.Error(), "not encrypted") {
		t.Fatalf("clear-text reply: err %v", err)
	}
}

func TestEncryptedFaultIsReplyError(t *testing.T) {
	k := newRealm(t)
	a := newEndpoint(t, k, false, krbtest.WithScheme("Kerberos"), krbtest.WithSealLayout(28, 0, false))
	a.fault.Store(true)
	tr := newTransport(t, k, a, testPassword)
	url := "http://" + testHost + "/PowerShell"
	body, err := tr.Post(ctx(t), url, []byte(envelope))
	var re *ReplyError
	if !errors.As(err, &re) || re.StatusCode != 500 || !bytes.Contains(body, []byte("s:Fault")) {
		t.Fatalf("fault: err %v body %q", err, body)
	}
	// Through the masterzen adapter the fault text survives, so the library
	// re-polls a Receive that timed out.
	rt := tr.Transporter(ctx(t), url)
	_, err = rt.Post(nil, soap.NewMessage())
	if err == nil || !strings.Contains(err.Error(), "OperationTimeout") {
		t.Fatalf("adapter: %v", err)
	}
	// The session survives a fault: still one handshake.
	if a.Handshakes() != 1 {
		t.Errorf("handshakes %d, want 1", a.Handshakes())
	}
}

func TestWrongServiceKeyIsErrAuth(t *testing.T) {
	k := newRealm(t)
	// The server's key is not the one the KDC encrypted the ticket with: an SPN
	// registered on the wrong account, or a stale keytab.
	a := newEndpoint(t, k, false, krbtest.WithScheme("Kerberos"), krbtest.WithWrongServiceKey())
	tr := newTransport(t, k, a, testPassword)
	_, err := tr.Post(ctx(t), "http://"+testHost+"/PowerShell", []byte(envelope))
	if !errors.Is(err, executors.ErrAuth) {
		t.Fatalf("err %v, want ErrAuth", err)
	}
	if !strings.Contains(err.Error(), "setspn") || !strings.Contains(err.Error(), testSPN) {
		t.Errorf("error does not say why: %v", err)
	}
	if strings.Contains(err.Error(), testPassword) {
		t.Fatal("password in error")
	}
}

func TestAuthFailuresNameTheCauseAndNeverThePassword(t *testing.T) {
	k := newRealm(t)
	a := newEndpoint(t, k, false, krbtest.WithScheme("Kerberos"))
	url := "http://" + testHost + "/PowerShell"

	wrong := "Wrong-" + testPassword
	cases := []struct {
		name     string
		password string
		opts     []Option
		krb5     func(string) string
		want     string
	}{
		{"wrong password", wrong, nil, nil, "wrong password"},
		{"unknown SPN", testPassword, nil, nil, "does not know the SPN"},
		{"KDC unreachable", testPassword, nil, func(conf string) string {
			return strings.Replace(conf, k.KDCAddr(), "127.0.0.1:1", 1)
		}, "KDC unreachable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := k.Krb5Conf()
			if tc.krb5 != nil {
				// A copy: the realm's own krb5.conf serves the other cases.
				b, err := os.ReadFile(path)
				must(t, err)
				path = filepath.Join(t.TempDir(), "krb5.conf")
				must(t, os.WriteFile(path, []byte(tc.krb5(string(b))), 0o600))
			}
			cfg := Config{Username: testUser, Realm: testRealm, Password: config.Secret(tc.password), Krb5Conf: path}
			if tc.name == "unknown SPN" {
				cfg.SPN = "HTTP/nosuch.corp.example.com"
			}
			tr, err := New(cfg, WithDialer(a.dialer()), WithKDCTimeout(15*time.Second))
			must(t, err)
			defer tr.Close()
			_, err = tr.Post(ctx(t), url, []byte(envelope))
			if !errors.Is(err, executors.ErrAuth) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v; want ErrAuth mentioning %q", err, tc.want)
			}
			for _, pw := range []string{testPassword, wrong} {
				if strings.Contains(err.Error(), pw) {
					t.Fatalf("password in error: %v", err)
				}
			}
		})
	}
}

func TestUnreachableEndpoint(t *testing.T) {
	k := newRealm(t)
	tr, err := New(Config{Username: testUser, Realm: testRealm, Password: testPassword, Krb5Conf: k.Krb5Conf()})
	must(t, err)
	defer tr.Close()
	_, err = tr.Post(ctx(t), "http://127.0.0.1:1/PowerShell", []byte(envelope))
	if !errors.Is(err, executors.ErrUnreachable) {
		t.Fatalf("err %v, want ErrUnreachable", err)
	}
}

func TestNewChecksConfiguration(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "krb5.conf")
	_, err := New(Config{Username: testUser, Realm: testRealm, Password: testPassword, Krb5Conf: missing})
	if err == nil || !strings.Contains(err.Error(), "krb5.conf") || !strings.Contains(err.Error(), "[realms]") {
		t.Fatalf("missing krb5.conf: %v", err)
	}
	k := newRealm(t)
	conf := k.Krb5Conf()
	if _, err := New(Config{Username: testUser, Realm: testRealm, Krb5Conf: conf}); err == nil {
		t.Fatal("no password or keytab accepted")
	}
	// A keytab for someone else fails early, naming the principal it lacks.
	ktPath := k.KeytabFile(testSPN)
	_, err = New(Config{Username: testUser, Realm: testRealm, KeytabFile: ktPath, Krb5Conf: conf})
	if err == nil || !strings.Contains(err.Error(), "no entry for "+testUser) {
		t.Fatalf("foreign keytab: %v", err)
	}
}

func TestKeytabLogin(t *testing.T) {
	k := newRealm(t)
	a := newEndpoint(t, k, false, krbtest.WithScheme("Kerberos"), krbtest.WithSealLayout(28, 0, false))
	// Someone else's key first: the client must pick its own entry.
	kt := keytab.New()
	must(t, kt.AddEntry(testSPN, testRealm, "unused", time.Now(), 1, etypeID.AES256_CTS_HMAC_SHA1_96))
	must(t, kt.AddEntry(testUser, testRealm, testPassword, time.Now(), 1, etypeID.AES256_CTS_HMAC_SHA1_96))
	b, err := kt.Marshal()
	must(t, err)
	path := filepath.Join(t.TempDir(), "user.keytab")
	must(t, os.WriteFile(path, b, 0o600))
	tr, err := New(Config{Username: testUser, Realm: testRealm, KeytabFile: path, Krb5Conf: k.Krb5Conf()}, WithDialer(a.dialer()))
	must(t, err)
	defer tr.Close()
	if _, err := tr.Post(ctx(t), "http://"+testHost+"/PowerShell", []byte(envelope)); err != nil {
		t.Fatal(err)
	}
}

func TestHTTPRequiresMutualAuthToken(t *testing.T) {
	k := newRealm(t)
	a := newEndpoint(t, k, false, krbtest.WithScheme("Kerberos"), krbtest.WithoutMutualToken())
	tr := newTransport(t, k, a, testPassword)
	_, err := tr.Post(ctx(t), "http://"+testHost+"/PowerShell", []byte(envelope))
	if !errors.Is(err, executors.ErrAuth) || !strings.Contains(err.Error(), "mutual") {
		t.Fatalf("err %v", err)
	}
}

func TestReplayedAPRepIsRefused(t *testing.T) {
	k := newRealm(t)
	a := newEndpoint(t, k, false, krbtest.WithScheme("Negotiate"), krbtest.WithStaleAPRep())
	tr := newTransport(t, k, a, testPassword)
	_, err := tr.Post(ctx(t), "http://"+testHost+"/PowerShell", []byte(envelope))
	if !errors.Is(err, executors.ErrAuth) || !strings.Contains(err.Error(), "does not answer our authenticator") {
		t.Fatalf("err %v", err)
	}
}
