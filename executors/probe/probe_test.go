package probe

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testHelo = "probe.ndrbot.test"

// testZone is the fake resolver's data; see fakeDNS for where the shapes come from.
var testZone = []string{
	// MX listed worst-first so sorting is exercised.
	"contoso.test. 300 IN MX 20 mx2.contoso.test.",
	"contoso.test. 300 IN MX 10 mx1.contoso.test.",
	"contoso.test. 300 IN A 192.0.2.10",
	"contoso.test. 300 IN AAAA 2001:db8::10",
	`contoso.test. 300 IN TXT "v=spf1 include:spf.protection.outlook.com -all"`,
	`contoso.test. 300 IN TXT "MS=ms12345678"`,
	"mx1.contoso.test. 300 IN A 127.0.0.1",
	"mx2.contoso.test. 300 IN A 127.0.0.1",
	`twospf.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
	`twospf.test. 300 IN TXT "v=spf1 " "include:spf.protection.outlook.com ~all"`,
	`twospf.test. 300 IN TXT "v=spf10 not-an-spf-record"`,
	"nomx.test. 300 IN A 127.0.0.1",
	"nullmx.test. 300 IN MX 0 .",
	"mixed.test. 300 IN MX 0 .",
	"mixed.test. 300 IN MX 10 mx1.contoso.test.",
	// RFC 5782 §5: 127.0.0.2 is listed in every DNSBL as a test entry.
	"2.0.0.127.zen.spamhaus.org. 300 IN A 127.0.0.2",
	"2.0.0.127.zen.spamhaus.org. 300 IN A 127.0.0.10",
	`2.0.0.127.zen.spamhaus.org. 300 IN TXT "Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL2"`,
	"2.0.0.127.bl.spamcop.net. 300 IN A 127.0.0.2",
	`2.0.0.127.bl.spamcop.net. 300 IN TXT "Blocked - see https://www.spamcop.net/bl.shtml?127.0.0.2"`,
	// 2001:db8::1 in nibble format (RFC 5782 §2.4), written out independently of reverseIP.
	"1.0.0.0." + strings.Repeat("0.", 20) + "8.b.d.0.1.0.0.2.zen.spamhaus.org. 300 IN A 127.0.0.4",
	// Spamhaus's answer to queries through public resolvers.
	"2.0.0.127.public.dnsbl.test. 300 IN A 127.255.255.254",
}

func newTestDNS(t *testing.T) *fakeDNS {
	t.Helper()
	return newFakeDNS(t, []string{"slow.test", "slow.dnsbl.test"}, []string{"broken.test"}, testZone...)
}

// newTestExec builds an Executor that only talks to loopback fakes.
func newTestExec(t *testing.T, d *fakeDNS, endpoints []string, opts ...Option) *Executor {
	t.Helper()
	// Generous for loaded CI machines; tests of the timeout itself pass a short one.
	base := []Option{WithDNSServer(d.Addr), WithDNSTimeout(2 * time.Second)}
	e, err := New("test", config.Target{Kind: Kind, Endpoints: endpoints, HeloName: testHelo, Timeout: 3 * time.Second},
		append(base, opts...)...)
	require.NoError(t, err)
	return e
}

func runCheck(t *testing.T, e *Executor, host, check string, params map[string]any) executors.Output {
	t.Helper()
	out, err := e.Run(context.Background(), host, executors.Action{Step: "t", Check: check, Params: params})
	require.NoError(t, err)
	require.True(t, json.Valid(out.Stdout), "%s", out.Stdout)
	return out
}

func decode[T any](t *testing.T, out executors.Output) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(out.Stdout, &v), "%s", out.Stdout)
	return v
}

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestNew(t *testing.T) {
	t.Parallel()
	ok := func(eps ...string) config.Target { return config.Target{Endpoints: eps} }
	tests := []struct {
		name    string
		target  config.Target
		opts    []Option
		wantErr string
	}{
		{"names, ports and IPs", ok("outlook.office365.com:25", "mx.contoso.com", "192.0.2.1", "[2001:db8::1]:2525", "2001:db8::2"), nil, ""},
		{"no endpoints (DNS-only target)", ok(), nil, ""},
		{"space in host", ok("mx contoso.com"), nil, "not a valid"},
		{"shell text", ok("mx.contoso.com;rm -rf /"), nil, "not a valid"},
		{"port out of range", ok("mx.contoso.com:70000"), nil, "out of range"},
		{"port not a number", ok("mx.contoso.com:smtp"), nil, "out of range"},
		{"too many colons", ok("a:b:c"), nil, "endpoint"},
		{"helo with CRLF", config.Target{HeloName: "x\r\nMAIL FROM:<>"}, nil, "helo_name"},
		{"negative timeout", config.Target{Timeout: -time.Second}, nil, "negative"},
		{"zero rate", ok(), []Option{WithRateLimit(0, 1)}, "rate limit"},
		{"zero burst", ok(), []Option{WithRateLimit(time.Second, 0)}, "rate limit"},
		{"DNS server by name", ok(), []Option{WithDNSServer("dns.google:53")}, "dns server"},
		{"bad DNSBL zone", ok(), []Option{WithDNSBLZones("zen.spamhaus.org", "bad zone")}, "dnsbl zones"},
		{"bad smtp port", ok(), []Option{WithSMTPPort(0)}, "smtp port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := New("edge", tt.target, append([]Option{WithDNSServer("127.0.0.1:53")}, tt.opts...)...)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Contains(t, err.Error(), `"edge"`, "errors name the target")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "probe", e.Kind())
			want := tt.target.Endpoints
			if len(want) == 0 {
				want = []string{VantagePoint}
			}
			assert.Equal(t, want, e.Hosts(), "config order, as configured; the vantage point without endpoints")
		})
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rc := filepath.Join(dir, "resolv.conf")
	require.NoError(t, os.WriteFile(rc, []byte("# generated\nsearch corp.test\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"), 0o600))

	e, err := New("edge", config.Target{}, WithResolvConf(rc))
	require.NoError(t, err)
	assert.Equal(t, "192.0.2.53:53", e.DNSServer(), "first nameserver of resolv.conf")
	assert.True(t, validHostname(e.helo), "default HELO name %q", e.helo)
	assert.Equal(t, DefaultTimeout, e.timeout)

	e, err = New("edge", config.Target{}, WithResolvConf(filepath.Join(dir, "missing")))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:53", e.DNSServer(), "like the C resolver without resolv.conf")

	e, err = New("edge", config.Target{}, WithDNSServer("2001:db8::53"))
	require.NoError(t, err)
	assert.Equal(t, "[2001:db8::53]:53", e.DNSServer())

	// Hosts returns a copy.
	e, err = New("edge", config.Target{Endpoints: []string{"mx.contoso.com"}}, WithDNSServer("127.0.0.1"))
	require.NoError(t, err)
	e.Hosts()[0] = "evil.test"
	assert.Equal(t, []string{"mx.contoso.com"}, e.Hosts())
}

// Malformed actions are errors, and nothing is dialed or queried for them.
func TestRunRejectsMalformedActions(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	smtp := newFakeSMTP(t, modeOK)
	e := newTestExec(t, d, []string{smtp.addr()})
	host := smtp.addr()

	tests := []struct {
		name    string
		host    string
		check   string
		params  map[string]any
		wantErr error
	}{
		{"unknown check", host, "traceroute", nil, executors.ErrUnsupported},
		{"empty check", host, "", nil, executors.ErrUnsupported},
		{"smtp to a host that is not an endpoint", "127.0.0.1:1", "smtp", nil, incident.ErrInvalidInput},
		{"tcp to a host that is not an endpoint", "evil.test:25", "tcp", nil, incident.ErrInvalidInput},
		{"starttls not a boolean", host, "smtp", map[string]any{"starttls": "maybe"}, incident.ErrInvalidInput},
		{"mx without domain", host, "mx", nil, incident.ErrInvalidInput},
		{"mx domain not a string", host, "mx", map[string]any{"domain": 42}, incident.ErrInvalidInput},
		{"mx domain with shell text", host, "mx", map[string]any{"domain": "contoso.test; rm -rf /"}, incident.ErrInvalidInput},
		{"mx single-label domain", host, "mx", map[string]any{"domain": "localhost"}, incident.ErrInvalidInput},
		{"dns domain with CRLF", host, "dns", map[string]any{"domain": "contoso.test\r\n"}, incident.ErrInvalidInput},
		{"dnsbl without ips", host, "dnsbl", nil, incident.ErrInvalidInput},
		{"dnsbl short IPv4", host, "dnsbl", map[string]any{"ips": "192.0.2"}, incident.ErrInvalidInput},
		{"dnsbl IPv6 with zone", host, "dnsbl", map[string]any{"ips": []any{"fe80::1%eth0"}}, incident.ErrInvalidInput},
		{"dnsbl ip not a string", host, "dnsbl", map[string]any{"ips": []any{1}}, incident.ErrInvalidInput},
		{"dnsbl bad zone", host, "dnsbl", map[string]any{"ips": "192.0.2.1", "zones": []string{"zen.spamhaus.org", "x y"}}, incident.ErrInvalidInput},
		{"smtp-mx max_hosts zero", host, "smtp-mx", map[string]any{"domain": "contoso.test", "max_hosts": 0}, incident.ErrInvalidInput},
		{"smtp-mx max_hosts huge", host, "smtp-mx", map[string]any{"domain": "contoso.test", "max_hosts": "50"}, incident.ErrInvalidInput},
		{"smtp-mx max_hosts fraction", host, "smtp-mx", map[string]any{"domain": "contoso.test", "max_hosts": 1.5}, incident.ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Run(context.Background(), tt.host, executors.Action{Step: "s", Check: tt.check, Params: tt.params})
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.wantErr)
			assert.Contains(t, err.Error(), `step "s"`)
		})
	}
	assert.Zero(t, smtp.accepted.Load(), "no connection for a malformed action")
	assert.Zero(t, d.Queries.Load(), "no DNS query for a malformed action")
}

func TestSMTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		mode         smtpMode
		maxConc      int64
		status       string
		code         int
		enhanced     string
		text         string
		startTLS     bool
		quit         bool // the probe said QUIT
		wantBanner   bool // BannerMs measured and Error empty
		errorMention string
	}{
		{name: "220 with EHLO and STARTTLS", mode: modeOK, status: "ok", code: 220,
			text: "mx.fake.test Microsoft ESMTP MAIL Service ready\nsecond banner line", startTLS: true, quit: true, wantBanner: true},
		{name: "220 without STARTTLS", mode: modeNoTLS, status: "ok", code: 220,
			text: "mx.fake.test Microsoft ESMTP MAIL Service ready\nsecond banner line", quit: true, wantBanner: true},
		{name: "EHLO not understood, HELO accepted", mode: modeHELOOnly, status: "ok", code: 220,
			text: "mx.fake.test Microsoft ESMTP MAIL Service ready\nsecond banner line", quit: true, wantBanner: true},
		{name: "421 greeting", mode: modeGreet421, status: "421", code: 421, enhanced: "4.3.2",
			text: "Service not available, too many concurrent connections", wantBanner: true},
		{name: "421 to EHLO", mode: modeEHLO421, status: "421", code: 421, enhanced: "4.3.2",
			text: "Service not available, too many concurrent connections", wantBanner: true},
		{name: "450 greeting", mode: modeGreet450, status: "tempfail", code: 450, enhanced: "4.7.1",
			text: "Try again later, closing connection", quit: true, wantBanner: true},
		{name: "554 multi-line greeting", mode: modeGreet554, status: "permfail", code: 554, enhanced: "5.7.1",
			text: "Service unavailable; Client host [127.0.0.1] blocked\nusing Spamhaus", quit: true, wantBanner: true},
		{name: "421 once more than N connections are open", mode: modeOK, maxConc: 1, status: "421", code: 421,
			enhanced: "4.3.2", text: "Service not available, too many concurrent connections", wantBanner: true},
		{name: "silent server", mode: modeSilent, status: "timeout", errorMention: "reading banner"},
		{name: "not SMTP", mode: modeGarbage, status: "error", errorMention: "not an SMTP reply"},
		{name: "hang-up without banner", mode: modeHangup, status: "error", errorMention: "closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeSMTP(t, tt.mode, func(f *fakeSMTP) { f.maxConc = tt.maxConc })
			if tt.maxConc > 0 { // someone else holds the allowed connections
				for range tt.maxConc {
					c, err := net.Dial("tcp", f.addr())
					require.NoError(t, err)
					t.Cleanup(func() { _ = c.Close() })
					_, err = c.Read(make([]byte, 512)) // banner: the fake counts it open
					require.NoError(t, err)
				}
			}
			e := newTestExec(t, newTestDNS(t), []string{f.addr()})
			timeout := 5 * time.Second // generous: only the silent server should use it up
			if tt.status == "timeout" {
				timeout = 400 * time.Millisecond
			}
			start := time.Now()
			out, err := e.Run(context.Background(), f.addr(), executors.Action{Check: "smtp", Timeout: timeout})
			elapsed := time.Since(start)
			require.NoError(t, err, "an observed failure is a successful Run")
			assert.Less(t, elapsed, timeout+2*time.Second, "the probe honours its deadline")
			r := decode[SMTPResult](t, out)

			assert.Equal(t, tt.status, r.Status)
			assert.Equal(t, tt.code, r.Code)
			assert.Equal(t, tt.enhanced, r.Enhanced)
			assert.Equal(t, tt.text, r.Text)
			assert.Equal(t, tt.startTLS, r.StartTLS)
			assert.Equal(t, "127.0.0.1", r.Host)
			assert.Equal(t, f.port(), r.Port)
			assert.Equal(t, f.addr(), r.Address)
			assert.False(t, r.Cached)
			assert.Empty(t, r.TLSVersion, "STARTTLS is only negotiated on request")
			if tt.wantBanner {
				assert.Empty(t, r.Error)
			}
			if tt.errorMention != "" {
				assert.Contains(t, r.Error, tt.errorMention)
			}
			if tt.status == "ok" && tt.mode != modeHELOOnly {
				assert.Contains(t, r.Extensions, "SIZE 36700160")
			}
			cmds := f.commands()
			if tt.quit {
				assert.Equal(t, "QUIT", cmds[len(cmds)-1], "leaves politely")
			}
			if tt.status == "ok" {
				assert.Equal(t, "EHLO "+testHelo, cmds[0])
				assert.NotContains(t, cmds, "STARTTLS")
			}
		})
	}
}

func TestSMTPStartTLS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		mode       smtpMode
		trustCA    bool
		status     string
		tlsVersion string
		errMention string
		code       int
	}{
		{name: "negotiated", mode: modeOK, trustCA: true, status: "ok", tlsVersion: "TLS 1.3", code: 220},
		{name: "untrusted certificate", mode: modeOK, status: "tls-error", errMention: "certificate", code: 220},
		{name: "not offered", mode: modeNoTLS, trustCA: true, status: "ok", code: 220},
		{name: "refused with 454", mode: modeSTARTTLS454, trustCA: true, status: "tls-error", code: 454},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeSMTP(t, tt.mode)
			var opts []Option
			if tt.trustCA {
				opts = append(opts, WithTLSConfig(f.pair.client))
			}
			e := newTestExec(t, newTestDNS(t), []string{f.addr()}, opts...)
			r := decode[SMTPResult](t, runCheck(t, e, f.addr(), "smtp", map[string]any{"starttls": true}))
			assert.Equal(t, tt.status, r.Status)
			assert.Equal(t, tt.tlsVersion, r.TLSVersion)
			assert.Equal(t, tt.code, r.Code)
			if tt.errMention != "" {
				assert.Contains(t, r.Error, tt.errMention)
			}
			if tt.tlsVersion != "" {
				assert.Equal(t, []string{"EHLO " + testHelo, "STARTTLS", "[tls] EHLO " + testHelo, "[tls] QUIT"}, f.commands(),
					"EHLO again inside TLS (RFC 3207), then QUIT")
			}
		})
	}
}

// Host names are resolved through the configured DNS server, never the system's.
func TestSMTPResolvesThroughConfiguredDNS(t *testing.T) {
	t.Parallel()
	f := newFakeSMTP(t, modeNoTLS)
	d := newTestDNS(t)
	port := strconv.Itoa(f.port())
	e := newTestExec(t, d, []string{"MX1.contoso.test:" + port, "nxhost.contoso.test:" + port, "slow.test:" + port},
		WithDNSTimeout(300*time.Millisecond))

	r := decode[SMTPResult](t, runCheck(t, e, "MX1.contoso.test:"+port, "smtp", nil))
	assert.Equal(t, "ok", r.Status)
	assert.Equal(t, "mx1.contoso.test", r.Host)
	assert.Equal(t, f.addr(), r.Address)

	r = decode[SMTPResult](t, runCheck(t, e, "nxhost.contoso.test:"+port, "smtp", nil))
	assert.Equal(t, "dns-error", r.Status)
	assert.Contains(t, r.Error, "nxdomain")

	r = decode[SMTPResult](t, runCheck(t, e, "slow.test:"+port, "smtp", nil))
	assert.Equal(t, "dns-error", r.Status)
	assert.Contains(t, r.Error, "timeout")
	assert.Equal(t, int64(1), f.accepted.Load(), "only the resolvable host was dialed")
}

// dialerFunc is a function-type fake for the Dialer seam.
type dialerFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialerFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

func TestTCP(t *testing.T) {
	t.Parallel()
	open := newFakeSMTP(t, modeSilent)
	closed := closedPort(t)
	hang := dialerFunc(func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
	})
	noRoute := dialerFunc(func(context.Context, string, string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}
	})
	tests := []struct {
		name   string
		host   string
		dialer Dialer
		status string
		errMsg string
	}{
		{"open port", open.addr(), nil, "ok", ""},
		{"closed port", closed, nil, "refused", "connection refused"},
		{"no answer to SYN", "192.0.2.1:25", hang, "timeout", "deadline"},
		{"no route", "192.0.2.2:25", noRoute, "unreachable", "no route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var opts []Option
			if tt.dialer != nil {
				opts = append(opts, WithDialer(tt.dialer))
			}
			e := newTestExec(t, newTestDNS(t), []string{tt.host}, opts...)
			out, err := e.Run(context.Background(), tt.host, executors.Action{Check: "tcp", Timeout: 300 * time.Millisecond})
			require.NoError(t, err)
			r := decode[TCPResult](t, out)
			assert.Equal(t, tt.status, r.Status)
			assert.Equal(t, tt.host, r.Address)
			if tt.errMsg != "" {
				assert.Contains(t, r.Error, tt.errMsg)
			} else {
				assert.Empty(t, r.Error)
			}
		})
	}
	// The SMTP probe classifies a refused port the same way.
	e := newTestExec(t, newTestDNS(t), []string{closed})
	r := decode[SMTPResult](t, runCheck(t, e, closed, "smtp", nil))
	assert.Equal(t, "refused", r.Status)
}

// The caller cancelling is not an observation: Run returns an error.
func TestRunCancelled(t *testing.T) {
	t.Parallel()
	f := newFakeSMTP(t, modeSilent)
	e := newTestExec(t, newTestDNS(t), []string{f.addr()})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := e.Run(ctx, f.addr(), executors.Action{Check: "smtp", Timeout: 5 * time.Second})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)

	// The cancelled attempt did open a connection, so it counts against the rate
	// limit; its non-result is not reused.
	r := decode[SMTPResult](t, runCheck(t, e, f.addr(), "smtp", nil))
	assert.Equal(t, "throttled", r.Status)
	assert.False(t, r.Cached)
	assert.Equal(t, int64(1), f.accepted.Load())
}

// The JSON field names are a contract with playbook rules: PascalCase, always present.
func TestOutputShapes(t *testing.T) {
	t.Parallel()
	f := newFakeSMTP(t, modeOK)
	d := newTestDNS(t)
	e := newTestExec(t, d, []string{f.addr()}, WithSMTPPort(f.port()), WithRateLimit(time.Millisecond, 100), WithCacheTTL(0))
	keys := func(b []byte) []string {
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m), "%s", b)
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	firstRow := func(b []byte) []byte {
		var rows []json.RawMessage
		require.NoError(t, json.Unmarshal(b, &rows), "%s", b)
		require.NotEmpty(t, rows)
		return rows[0]
	}
	smtpKeys := []string{"Address", "BannerMs", "Cached", "Code", "DurationMs", "Enhanced", "Error", "Extensions", "Host", "Port", "StartTLS", "Status", "TLSVersion", "Text"}
	tests := []struct {
		name   string
		check  string
		params map[string]any
		rows   bool
		want   []string
	}{
		{"smtp", "smtp", nil, false, smtpKeys},
		{"tcp", "tcp", nil, false, []string{"Address", "Cached", "DurationMs", "Error", "Host", "Port", "Status"}},
		{"mx", "mx", map[string]any{"domain": "contoso.test"}, true, []string{"Domain", "Exchange", "Preference", "Status"}},
		{"mx failure", "mx", map[string]any{"domain": "nx.test"}, false, []string{"Domain", "Error", "Status"}},
		{"dns", "dns", map[string]any{"domain": "contoso.test"}, false, []string{"A", "AAAA", "Domain", "Error", "SPF", "SPFCount", "SPFRecords", "Status"}},
		{"dnsbl", "dnsbl", map[string]any{"ips": "192.0.2.99", "zones": "zen.spamhaus.org"}, true, []string{"Code", "Error", "IP", "Listed", "Reason", "Status", "Zone"}},
		{"smtp-mx", "smtp-mx", map[string]any{"domain": "contoso.test"}, true, append([]string{"Domain", "Exchange", "Preference"}, smtpKeys...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := runCheck(t, e, f.addr(), tt.check, tt.params)
			b := out.Stdout
			if tt.rows {
				b = firstRow(b)
			}
			want := slices.Clone(tt.want)
			slices.Sort(want)
			assert.Equal(t, want, keys(b))
			assert.Equal(t, f.addr(), out.Host)
			assert.Positive(t, out.Duration)
		})
	}
}

// BenchmarkSMTPProbe measures one full dialogue (banner, EHLO, QUIT) against the
// loopback fake with the manners switched off.
func BenchmarkSMTPProbe(b *testing.B) {
	f := newFakeSMTP(b, modeNoTLS)
	d := newFakeDNS(b, nil, nil)
	e, err := New("bench", config.Target{Endpoints: []string{f.addr()}, HeloName: testHelo},
		WithDNSServer(d.Addr), WithRateLimit(time.Nanosecond, 1<<30), WithCacheTTL(0))
	require.NoError(b, err)
	for b.Loop() {
		out, err := e.Run(context.Background(), f.addr(), executors.Action{Check: "smtp"})
		if err != nil || !json.Valid(out.Stdout) {
			b.Fatal(err)
		}
	}
}

func TestSetReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		lines    []string
		enhanced string
		text     string
	}{
		// Exchange Online repeats the enhanced code on every line of a multi-line reply.
		{"EOP 421", []string{"4.3.2 The maximum number of concurrent server connections has exceeded a limit, closing transmission channel"},
			"4.3.2", "The maximum number of concurrent server connections has exceeded a limit, closing transmission channel"},
		{"repeated enhanced code", []string{"5.7.1 Service unavailable;", "5.7.1 Client host blocked"}, "5.7.1", "Service unavailable;\nClient host blocked"},
		{"no enhanced code", []string{"mx.contoso.com ESMTP"}, "", "mx.contoso.com ESMTP"},
		{"version-like text is not an enhanced code", []string{"2.0.0.1 is not one"}, "", "2.0.0.1 is not one"},
		{"control characters dropped", []string{"bad\x1b[31m banner\x00"}, "", "bad[31m banner"},
		{"bare code", []string{""}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r SMTPResult
			r.setReply(421, tt.lines)
			assert.Equal(t, 421, r.Code)
			assert.Equal(t, tt.enhanced, r.Enhanced)
			assert.Equal(t, tt.text, r.Text)
		})
	}
}

func TestReadReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     string
		code    int
		lines   []string
		wantErr string
	}{
		{"single line", "220 mx ready\r\n", 220, []string{"mx ready"}, ""},
		{"multi-line", "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n", 250, []string{"mx", "PIPELINING", "STARTTLS"}, ""},
		{"bare code (RFC 5321 allows it)", "220\r\n", 220, []string{""}, ""},
		{"LF only", "421 4.3.2 busy\n", 421, []string{"4.3.2 busy"}, ""},
		{"codes change mid-reply", "250-mx\r\n550 no\r\n", 0, nil, "not an SMTP reply"},
		{"not SMTP", "SSH-2.0-OpenSSH_9.6\r\n", 0, nil, "not an SMTP reply"},
		{"1xx is not a reply", "199 hmm\r\n", 0, nil, "not an SMTP reply"},
		{"line too long", "220 " + strings.Repeat("x", maxLineBytes) + "\r\n", 0, nil, "longer than"},
		{"endless continuation", strings.Repeat("250-x\r\n", maxReplyLines+1), 0, nil, "more than"},
		{"closed", "", 0, nil, "closed by the server"},
		{"closed mid-line", "220 mx", 0, nil, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &session{br: bufio.NewReaderSize(strings.NewReader(tt.raw), maxLineBytes)}
			code, lines, err := s.read()
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.code, code)
			assert.Equal(t, tt.lines, lines)
		})
	}
}
