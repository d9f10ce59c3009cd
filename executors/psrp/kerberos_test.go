package psrp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/psobj"
	"github.com/ndrbot/ndrbot/executors/psrp/psrpfake"
	"github.com/ndrbot/ndrbot/executors/wsman/kerberos/krbtest"
)

const (
	krbRealm    = "CORP.EXAMPLE.COM"
	krbUser     = "svc-ndrbot"
	krbPassword = "Kerb-S3cret-never-print-me"
	krbHost     = "ex01.corp.example.com"
	krbSPN      = "HTTP/" + krbHost
	// krbPrincipal is how the server names the bot once authenticated.
	krbPrincipal = krbUser + "@" + krbRealm
)

// newKrbRealm starts a KDC knowing the bot's account and Exchange's SPN.
func newKrbRealm(t *testing.T) *krbtest.Realm {
	t.Helper()
	r := krbtest.NewRealm(t, krbRealm)
	r.AddUser(krbUser, krbPassword)
	r.AddService(krbSPN)
	return r
}

// users records who ran which cmdlet on the fake.
type users struct {
	mu   sync.Mutex
	seen []string // "user cmdlet"
}

func (u *users) handler(_ context.Context, _ string, cmd psrpfake.Command) psrpfake.Result {
	u.mu.Lock()
	u.seen = append(u.seen, cmd.User+" "+cmd.Name)
	u.mu.Unlock()
	return psrpfake.Result{Output: []any{&psobj.Object{
		TypeNames: []string{"Deserialized.Microsoft.Exchange.Data.QueueViewer.ExtensibleQueueInfo"},
		Props:     []psobj.Prop{{Name: "Identity", Value: `EX01\Submission`}, {Name: "MessageCount", Value: int64(7)}},
	}}}
}

func (u *users) list() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

// krbFake starts a Kerberos-only fake Exchange (http: sealed; https: per request).
func krbFake(t *testing.T, realm *krbtest.Realm, tlsOn bool, h psrpfake.Handler) *psrpfake.Server {
	t.Helper()
	opts := []psrpfake.Option{psrpfake.WithKerberos(realm, krbSPN)}
	if !tlsOn {
		opts = append(opts, psrpfake.WithPlainHTTP())
	}
	fake := psrpfake.New(h, opts...)
	t.Cleanup(fake.Close)
	return fake
}

// krbTarget is the documented Exchange-on-premises target: auth kerberos with
// a password file and the realm's krb5.conf.
func krbTarget(t *testing.T, realm *krbtest.Realm, endpoint string) config.Target {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "ndrbot.password")
	if err := os.WriteFile(pwFile, []byte(krbPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Target{
		Kind:               "exchange",
		Endpoints:          []string{endpoint},
		Auth:               "kerberos",
		Username:           krbPrincipal,
		PasswordFile:       pwFile,
		Krb5Conf:           realm.Krb5Conf(),
		InsecureSkipVerify: true, // the fake's certificate names example.com
		OperationTimeout:   5 * time.Second,
	}
}

// newKrbExecutor builds an executor whose WS-Man connections all reach fake,
// whatever host the endpoint names. (gokrb5 dials the KDC itself, at the
// loopback address krb5.conf gives.)
func newKrbExecutor(t *testing.T, fake *psrpfake.Server, tgt config.Target) (*Executor, error) {
	t.Helper()
	u, _ := url.Parse(fake.URL)
	d := &net.Dialer{}
	e, err := New("mail", tgt, WithDialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, u.Host)
	}), WithCleanupTimeout(2*time.Second))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e, nil
}

func runGetQueue(t *testing.T, e *Executor, host string) (executors.Output, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.Run(ctx, host, executors.Action{
		Cmdlet: "Get-Queue", Args: []executors.Arg{{Name: "Identity", Value: `EX01\Submission`}},
		Select: []string{"Identity", "MessageCount"},
	})
}

const wantQueue = `[{"Identity":"EX01\\Submission","MessageCount":7}]`

var argumentsRE = regexp.MustCompile(`<rsp:Arguments>([^<]+)</rsp:Arguments>`)

func TestKerberosHTTPSealsEveryEnvelope(t *testing.T) {
	realm := newKrbRealm(t)
	var u users
	fake := krbFake(t, realm, false, u.handler)
	e, err := newKrbExecutor(t, fake, krbTarget(t, realm, "http://"+krbHost+"/PowerShell"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second run reuses the pool and the sealed session
		out, err := runGetQueue(t, e, krbHost)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if string(out.Stdout) != wantQueue {
			t.Fatalf("run %d: Stdout = %s, want %s", i, out.Stdout, wantQueue)
		}
	}
	if got := u.list(); len(got) != 2 || got[0] != krbPrincipal+" Get-Queue" {
		t.Errorf("server saw %q, want Get-Queue twice from %s", got, krbPrincipal)
	}

	acc := fake.Acceptor()
	plain := acc.Received()
	if len(plain) == 0 {
		t.Fatal("the fake decrypted no envelope")
	}
	// What the server decrypted must be nowhere on the wire: not the SOAP, not
	// the resource URI, not the base64 CREATE_PIPELINE that carries Get-Queue.
	wire := acc.Wire()
	secrets := []string{"Get-Queue", "Envelope", ExchangeResourceURI, `EX01\Submission`}
	var sawPipeline bool
	for _, p := range plain {
		for _, m := range argumentsRE.FindAllSubmatch(p, -1) {
			sawPipeline = true
			secrets = append(secrets, string(m[1][:min(len(m[1]), 64)]))
		}
	}
	if !sawPipeline {
		t.Fatal("no decrypted Command carried rsp:Arguments; the check below would prove nothing")
	}
	for _, s := range secrets {
		if bytes.Contains(wire, []byte(s)) {
			t.Errorf("%q appeared on the wire in clear text", s)
		}
	}
	// Every request with a body was sealed; the only unsealed ones are the
	// empty preflight and handshake POSTs.
	sealed := 0
	for i, conn := range acc.WireConns() {
		r := bufio.NewReader(bytes.NewReader(conn))
		for {
			req, err := http.ReadRequest(r)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("connection %d: not HTTP: %v", i, err)
			}
			body, err := io.ReadAll(req.Body)
			if err != nil {
				t.Fatalf("connection %d: body: %v", i, err)
			}
			ct := req.Header.Get("Content-Type")
			switch {
			case strings.HasPrefix(ct, "multipart/encrypted") && strings.Contains(ct, "HTTP-Kerberos-session-encrypted"):
				sealed++
			case len(body) != 0:
				t.Errorf("connection %d: %s request with a %d-byte body in clear (%s)", i, req.Method, len(body), ct)
			}
		}
	}
	if sealed != len(plain) {
		t.Errorf("%d sealed requests on the wire, %d envelopes decrypted", sealed, len(plain))
	}
}

func TestKerberosHTTPS(t *testing.T) {
	realm := newKrbRealm(t)
	var u users
	fake := krbFake(t, realm, true, u.handler)
	e, err := newKrbExecutor(t, fake, krbTarget(t, realm, "https://"+krbHost+"/PowerShell"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := runGetQueue(t, e, krbHost)
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Stdout) != wantQueue {
		t.Fatalf("Stdout = %s, want %s", out.Stdout, wantQueue)
	}
	if got := u.list(); len(got) != 1 || got[0] != krbPrincipal+" Get-Queue" {
		t.Errorf("server saw %q", got)
	}
	acc := fake.Acceptor()
	// https authenticates every request (no message encryption, TLS protects it).
	if n, h := len(acc.Received()), acc.Handshakes(); n == 0 || h != n {
		t.Errorf("%d envelopes, %d AP-REQs; want one AP-REQ per envelope", n, h)
	}
	if bytes.Contains(acc.Wire(), []byte("Envelope")) {
		t.Error("SOAP in clear text on an https connection")
	}
	// One ticket for the whole run: the transport caches it.
	if realm.ASRequests() != 1 || realm.TGSRequests() != 1 {
		t.Errorf("AS %d, TGS %d; want 1 and 1", realm.ASRequests(), realm.TGSRequests())
	}
}

func TestKerberosUsernameForms(t *testing.T) {
	realm := newKrbRealm(t)
	var u users
	fake := krbFake(t, realm, false, u.handler)
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, tgt *config.Target)
	}{
		{"user@REALM", func(*testing.T, *config.Target) {}},
		{"username and realm", func(_ *testing.T, tgt *config.Target) {
			tgt.Username, tgt.Realm = krbUser, krbRealm
		}},
		{"realm in lower case", func(_ *testing.T, tgt *config.Target) {
			tgt.Username = krbUser + "@" + strings.ToLower(krbRealm)
		}},
		{"username and realm in lower case", func(_ *testing.T, tgt *config.Target) {
			tgt.Username, tgt.Realm = krbUser, strings.ToLower(krbRealm)
		}},
		{"keytab_file instead of a password", func(t *testing.T, tgt *config.Target) {
			tgt.PasswordFile, tgt.KeytabFile = "", realm.KeytabFile(krbUser)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt := krbTarget(t, realm, "http://"+krbHost+"/PowerShell")
			tc.mutate(t, &tgt)
			before := len(u.list())
			e, err := newKrbExecutor(t, fake, tgt)
			if err != nil {
				t.Fatal(err)
			}
			out, err := runGetQueue(t, e, krbHost)
			if err != nil {
				t.Fatal(err)
			}
			if string(out.Stdout) != wantQueue {
				t.Fatalf("Stdout = %s", out.Stdout)
			}
			if got := u.list()[before:]; len(got) != 1 || got[0] != krbPrincipal+" Get-Queue" {
				t.Errorf("server saw %q, want one Get-Queue from %s", got, krbPrincipal)
			}
		})
	}
}

func TestKerberosWrongPasswordIsErrAuth(t *testing.T) {
	realm := newKrbRealm(t)
	var u users
	fake := krbFake(t, realm, false, u.handler)
	const wrong = "Wrong-" + krbPassword
	tgt := krbTarget(t, realm, "http://"+krbHost+"/PowerShell")
	tgt.PasswordFile, tgt.Password = "", wrong
	e, err := newKrbExecutor(t, fake, tgt)
	if err != nil {
		t.Fatal(err)
	}
	_, err = runGetQueue(t, e, krbHost)
	if !errors.Is(err, executors.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if !strings.Contains(err.Error(), "wrong password") {
		t.Errorf("error does not name the cause: %v", err)
	}
	for _, pw := range []string{wrong, krbPassword} {
		if strings.Contains(err.Error(), pw) {
			t.Fatalf("password in error: %v", err)
		}
	}
	if len(u.list()) != 0 || len(fake.Acceptor().Received()) != 0 {
		t.Error("a request reached the server without a ticket")
	}
}

func TestKerberosUnknownSPNIsErrAuth(t *testing.T) {
	realm := newKrbRealm(t)
	var u users
	fake := krbFake(t, realm, false, u.handler)
	for _, tc := range []struct {
		name, endpoint, spn, want string
	}{
		// A server whose SPN was never registered (or an alias in the URL).
		{"endpoint host without SPN", "http://ex02.corp.example.com/PowerShell", "", "HTTP/ex02.corp.example.com"},
		// A mistyped spn key.
		{"spn key unknown", "http://" + krbHost + "/PowerShell", "HTTP/nosuch.corp.example.com", "HTTP/nosuch.corp.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt := krbTarget(t, realm, tc.endpoint)
			tgt.SPN = tc.spn
			e, err := newKrbExecutor(t, fake, tgt)
			if err != nil {
				t.Fatal(err)
			}
			host, _, _ := strings.Cut(strings.TrimPrefix(tc.endpoint, "http://"), "/")
			_, err = runGetQueue(t, e, host)
			if !errors.Is(err, executors.ErrAuth) {
				t.Fatalf("err = %v, want ErrAuth", err)
			}
			for _, want := range []string{tc.want, "does not know the SPN"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), krbPassword) {
				t.Fatalf("password in error: %v", err)
			}
		})
	}
	if len(u.list()) != 0 {
		t.Error("a command ran without a service ticket")
	}
}

func TestKerberosConfigurationErrors(t *testing.T) {
	realm := newKrbRealm(t)
	for _, tc := range []struct {
		name   string
		mutate func(*config.Target)
		want   []string
	}{
		{"missing realm", func(tgt *config.Target) { tgt.Username = krbUser }, []string{"realm: required", "user@REALM"}},
		{"domain\\user", func(tgt *config.Target) { tgt.Username, tgt.Realm = `CORP\`+krbUser, krbRealm }, []string{"must not carry a realm or domain"}},
		{"no username", func(tgt *config.Target) { tgt.Username = "" }, []string{"username: required"}},
		{"missing krb5.conf", func(tgt *config.Target) { tgt.Krb5Conf = filepath.Join(t.TempDir(), "none.conf") }, []string{"krb5.conf", "[realms]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt := krbTarget(t, realm, "http://"+krbHost+"/PowerShell")
			tc.mutate(&tgt)
			_, err := New("mail", tgt)
			if err == nil {
				t.Fatal("New accepted the target")
			}
			for _, want := range append([]string{`exchange target "mail": auth kerberos`}, tc.want...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
	// Nothing was asked of the KDC: New checks the configuration only.
	if realm.ASRequests() != 0 {
		t.Errorf("New contacted the KDC (%d AS-REQs)", realm.ASRequests())
	}
}

func TestKerberosStaleServerKeyIsErrAuth(t *testing.T) {
	realm := newKrbRealm(t)
	var u users
	// The server holds a key the KDC no longer uses (password reset on the
	// computer account, or the SPN moved to another account).
	fake := psrpfake.New(u.handler, psrpfake.WithPlainHTTP(), psrpfake.WithKerberos(realm, krbSPN, krbtest.WithWrongServiceKey()))
	t.Cleanup(fake.Close)
	e, err := newKrbExecutor(t, fake, krbTarget(t, realm, "http://"+krbHost+"/PowerShell"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = runGetQueue(t, e, krbHost)
	if !errors.Is(err, executors.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	for _, want := range []string{"HTTP 401", krbSPN, "setspn"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if len(u.list()) != 0 {
		t.Error("a command ran on a server that refused the ticket")
	}
}
