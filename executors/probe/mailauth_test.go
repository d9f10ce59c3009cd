package probe

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
)

// authZone is the fake resolver's data for the mail-authentication checks.
// Shapes: the SPF, DKIM CNAME and DMARC records Microsoft Learn asks Microsoft 365
// customers to publish ("Set up SPF …", "Set up DKIM …", "Set up DMARC …" for
// Microsoft 365: include:spf.protection.outlook.com -all; selector1._domainkey CNAME
// selector1-<domain>._domainkey.<tenant>.onmicrosoft.com; v=DMARC1; p=…; rua=mailto:…).
// spf.protection.outlook.com's own record is modelled on its published one (ip4/ip6
// ranges and a nested include:spfd.protection.outlook.com); the ranges are not
// copied byte for byte and only their shape matters here.
func authZone(dkimKey string) []string {
	eop := `"v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip4:52.100.0.0/15 ip4:104.47.0.0/17 ip6:2a01:111:f400::/48 ip6:2a01:111:f403::/49 include:spfd.protection.outlook.com -all"`
	return []string{
		`spf.protection.outlook.com. 300 IN TXT ` + eop,
		`spfd.protection.outlook.com. 300 IN TXT "v=spf1 ip4:51.4.72.0/24 ip4:51.5.72.0/24 ip4:51.5.80.0/27 -all"`,
		`contoso.test. 300 IN TXT "v=spf1 include:spf.protection.outlook.com -all"`,
		`contoso.test. 300 IN TXT "MS=ms12345678"`,
		`twospf.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`twospf.test. 300 IN TXT "v=spf1 " "include:spf.protection.outlook.com ~all"`,
		`nospf.test. 300 IN TXT "MS=ms87654321"`,
		`softfail.test. 300 IN TXT "v=spf1 ip4:192.0.2.25 ~all"`,
		// Exactly ten lookups: outlook (2 with its nested include) + 8.
		`ten.test. 300 IN TXT "v=spf1 include:spf.protection.outlook.com a mx ptr exists:%{i}.spf.ten.test a/24 mx:mail.ten.test a:web.ten.test mx -all"`,
		// Eleven: outlook 2, vendor1 1+1 nested+2, vendor2 1+3, then mx.
		`toomany.test. 300 IN TXT "v=spf1 include:spf.protection.outlook.com include:_spf.vendor1.test include:vendor2.test mx -all"`,
		`_spf.vendor1.test. 300 IN TXT "v=spf1 include:_spf2.vendor1.test a mx ~all"`,
		`_spf2.vendor1.test. 300 IN TXT "v=spf1 ip4:198.51.100.0/24 ~all"`,
		`vendor2.test. 300 IN TXT "v=spf1 a mx ptr ?all"`,
		`loop.test. 300 IN TXT "v=spf1 include:loop2.test -all"`,
		`loop2.test. 300 IN TXT "v=spf1 include:LOOP.test. -all"`,
		`redirect.test. 300 IN TXT "v=spf1 redirect=contoso.test"`,
		`brokeninclude.test. 300 IN TXT "v=spf1 include:spf.broken.test -all"`,
		`missinginclude.test. 300 IN TXT "v=spf1 include:nothing.test -all"`,
		`typo.test. 300 IN TXT "v=spf1 ipv4:192.0.2.1 -all"`,

		`_dmarc.contoso.test. 300 IN TXT "v=DMARC1; p=reject; pct=100; rua=mailto:d@rua.contoso.test; ruf=mailto:d@ruf.contoso.test"`,
		`_dmarc.softfail.test. 300 IN TXT "v=DMARC1; p=quarantine; sp=none; pct=25; adkim=s; aspf=s; rua=mailto:a@x.test,mailto:b@y.test"`,
		`_dmarc.twospf.test. 300 IN TXT "v=DMARC1; p=none"`,
		`_dmarc.twospf.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`_dmarc.nop.test. 300 IN TXT "v=DMARC1; rua=mailto:d@nop.test"`,
		`_dmarc.notdmarc.test. 300 IN TXT "p=reject; v=DMARC1"`,

		"selector1._domainkey.contoso.test. 300 IN CNAME selector1-contoso-test._domainkey.contoso.onmicrosoft.test.",
		"selector2._domainkey.contoso.test. 300 IN CNAME selector2-contoso-test._domainkey.contoso.onmicrosoft.test.",
		"selector1-contoso-test._domainkey.contoso.onmicrosoft.test. 300 IN TXT " + dkimKey,
		`selector2-contoso-test._domainkey.contoso.onmicrosoft.test. 300 IN TXT "v=DKIM1; k=rsa; p="`,
		// CNAMEs published, DKIM not enabled in the tenant: the targets do not exist.
		"selector1._domainkey.nodkim.test. 300 IN CNAME selector1-nodkim-test._domainkey.contoso.onmicrosoft.test.",
		`s1._domainkey.softfail.test. 300 IN TXT "google-site-verification=abc"`,
		`s2._domainkey.softfail.test. 300 IN TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="`,
	}
}

// dkimRecord is a DKIM key record for a fresh RSA key, split into 255-byte
// character-strings as a zone holds a long TXT record (RFC 1035 §3.3).
func dkimRecord(t *testing.T, bits int) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, bits)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	text := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	var parts []string
	for len(text) > 255 {
		parts = append(parts, `"`+text[:255]+`"`)
		text = text[255:]
	}
	return strings.Join(append(parts, `"`+text+`"`), " ")
}

func newAuthExec(t *testing.T, opts ...Option) (*Executor, *fakeDNS) {
	t.Helper()
	d := newFakeDNS(t, []string{"slow.test"}, []string{"broken.test"}, authZone(dkimRecord(t, 1024))...)
	return newTestExec(t, d, nil, opts...), d
}

func TestSPF(t *testing.T) {
	t.Parallel()
	e, _ := newAuthExec(t)
	eop := []string{"spf.protection.outlook.com", "spfd.protection.outlook.com"}
	tests := []struct {
		domain string
		want   SPFResult
		// problem is a fragment of Problem ("" when the verdict is ok).
		problem string
	}{
		{domain: "contoso.test", want: SPFResult{Record: "v=spf1 include:spf.protection.outlook.com -all", Count: 1,
			Mechanisms: []string{"include:spf.protection.outlook.com", "-all"}, All: "-all", Includes: eop,
			ExchangeOnline: true, Lookups: 2, Verdict: "ok", Status: "ok"}},
		{domain: "softfail.test", want: SPFResult{Record: "v=spf1 ip4:192.0.2.25 ~all", Count: 1,
			Mechanisms: []string{"ip4:192.0.2.25", "~all"}, All: "~all", Includes: []string{}, Verdict: "ok", Status: "ok"}},
		{domain: "ten.test", want: SPFResult{Count: 1, All: "-all", Includes: eop, ExchangeOnline: true, Lookups: 10, Verdict: "ok", Status: "ok"}},
		{domain: "toomany.test", problem: "more than 10 DNS lookups", want: SPFResult{Count: 1,
			Includes: []string{"spf.protection.outlook.com", "spfd.protection.outlook.com", "_spf.vendor1.test", "_spf2.vendor1.test", "vendor2.test"},
			All:      "-all", ExchangeOnline: true, Lookups: 11, Verdict: "permerror", Status: "ok"}},
		{domain: "twospf.test", problem: "2 SPF records", want: SPFResult{Count: 2, Includes: []string{}, Verdict: "permerror", Status: "ok"}},
		{domain: "nospf.test", problem: "no SPF record", want: SPFResult{Includes: []string{}, Verdict: "none", Status: "ok"}},
		{domain: "nx.test", problem: "does not exist", want: SPFResult{Includes: []string{}, Verdict: "none", Status: "nxdomain"}},
		{domain: "loop.test", problem: "SPF loop", want: SPFResult{Count: 1, Includes: []string{"loop2.test", "loop.test"},
			All: "-all", Lookups: 2, Verdict: "permerror", Status: "ok"}},
		{domain: "redirect.test", want: SPFResult{Record: "v=spf1 redirect=contoso.test", Count: 1,
			Mechanisms: []string{"redirect=contoso.test"}, All: "-all", Redirect: "contoso.test", Includes: eop,
			ExchangeOnline: true, Lookups: 3, Verdict: "ok", Status: "ok"}},
		{domain: "brokeninclude.test", problem: "failed (servfail)", want: SPFResult{Count: 1, Includes: []string{"spf.broken.test"},
			All: "-all", Lookups: 1, Verdict: "temperror", Status: "ok", Unanswered: "spf.broken.test"}},
		{domain: "missinginclude.test", problem: "include:nothing.test has no SPF record", want: SPFResult{Count: 1,
			Includes: []string{"nothing.test"}, All: "-all", Lookups: 1, Verdict: "permerror", Status: "ok"}},
		{domain: "typo.test", problem: `unknown mechanism "ipv4:192.0.2.1"`, want: SPFResult{Count: 1, Includes: []string{},
			All: "-all", Verdict: "permerror", Status: "ok"}},
		{domain: "x.broken.test", problem: "failed (servfail)", want: SPFResult{Includes: []string{}, Verdict: "temperror", Status: "servfail", Unanswered: "x.broken.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			t.Parallel()
			r := decode[SPFResult](t, runCheck(t, e, VantagePoint, "spf", map[string]any{"domain": tt.domain}))
			if tt.problem == "" {
				assert.Empty(t, r.Problem)
			} else {
				assert.Contains(t, r.Problem, tt.problem)
			}
			tt.want.Domain = tt.domain
			// Fields a case leaves empty are not what it is about.
			if tt.want.Record == "" {
				r.Record = ""
			}
			if tt.want.Mechanisms == nil {
				r.Mechanisms = nil
			}
			if tt.want.Records == nil {
				assert.Len(t, r.Records, tt.want.Count)
				r.Records = nil
			}
			r.Problem, r.Error = "", ""
			assert.Equal(t, tt.want, r)
		})
	}

	t.Run("a resolver that never answers", func(t *testing.T) {
		t.Parallel()
		fast, _ := newAuthExec(t, WithDNSTimeout(200*time.Millisecond))
		r := decode[SPFResult](t, runCheck(t, fast, VantagePoint, "spf", map[string]any{"domain": "slow.test"}))
		assert.Equal(t, "timeout", r.Status)
		assert.Equal(t, "temperror", r.Verdict)
		assert.Contains(t, r.Error, "no reply")
	})
}

// The walk is bounded whatever the zone holds: a chain of includes longer than
// the limit costs at most limit+1 TXT queries besides the domain's own.
func TestSPFBounded(t *testing.T) {
	t.Parallel()
	var zone []string
	for i := range 30 {
		zone = append(zone, "c"+strconv.Itoa(i)+`.chain.test. 300 IN TXT "v=spf1 include:c`+strconv.Itoa(i+1)+`.chain.test -all"`)
	}
	d := newFakeDNS(t, nil, nil, zone...)
	e := newTestExec(t, d, nil)
	r := decode[SPFResult](t, runCheck(t, e, VantagePoint, "spf", map[string]any{"domain": "c0.chain.test"}))
	assert.Equal(t, "permerror", r.Verdict)
	assert.Equal(t, SPFLookupLimit+1, r.Lookups)
	assert.LessOrEqual(t, d.Queries.Load(), int64(SPFLookupLimit+1))
}

func TestDMARC(t *testing.T) {
	t.Parallel()
	e, _ := newAuthExec(t)
	tests := []struct {
		domain  string
		want    DMARCResult
		problem string
	}{
		{domain: "contoso.test", want: DMARCResult{
			Record: "v=DMARC1; p=reject; pct=100; rua=mailto:d@rua.contoso.test; ruf=mailto:d@ruf.contoso.test", Count: 1,
			Policy: "reject", SubdomainPolicy: "reject", Pct: 100, Rua: []string{"mailto:d@rua.contoso.test"},
			Ruf: []string{"mailto:d@ruf.contoso.test"}, HasRua: true, HasRuf: true, ADKIM: "r", ASPF: "r", Verdict: "ok", Status: "ok"}},
		{domain: "softfail.test", want: DMARCResult{
			Record: "v=DMARC1; p=quarantine; sp=none; pct=25; adkim=s; aspf=s; rua=mailto:a@x.test,mailto:b@y.test", Count: 1,
			Policy: "quarantine", SubdomainPolicy: "none", Pct: 25, Rua: []string{"mailto:a@x.test", "mailto:b@y.test"}, Ruf: []string{},
			HasRua: true, ADKIM: "s", ASPF: "s", Verdict: "ok", Status: "ok"}},
		{domain: "twospf.test", problem: "2 DMARC records", want: DMARCResult{Count: 2, Rua: []string{}, Ruf: []string{},
			Verdict: "permerror", Status: "ok"}},
		{domain: "nop.test", problem: "no p= tag", want: DMARCResult{Record: "v=DMARC1; rua=mailto:d@nop.test", Count: 1, Pct: 100,
			Rua: []string{"mailto:d@nop.test"}, Ruf: []string{}, HasRua: true, ADKIM: "r", ASPF: "r", Verdict: "permerror", Status: "ok"}},
		// v=DMARC1 must come first (RFC 7489 §6.4).
		{domain: "notdmarc.test", problem: "no DMARC record", want: DMARCResult{Rua: []string{}, Ruf: []string{}, Verdict: "none", Status: "ok"}},
		{domain: "nospf.test", problem: "no DMARC record", want: DMARCResult{Rua: []string{}, Ruf: []string{}, Verdict: "none", Status: "nxdomain"}},
		{domain: "x.broken.test", problem: "failed (servfail)", want: DMARCResult{Rua: []string{}, Ruf: []string{}, Verdict: "temperror", Status: "servfail"}},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			t.Parallel()
			r := decode[DMARCResult](t, runCheck(t, e, VantagePoint, "dmarc", map[string]any{"domain": tt.domain}))
			if tt.problem == "" {
				assert.Empty(t, r.Problem)
			} else {
				assert.Contains(t, r.Problem, tt.problem)
			}
			tt.want.Domain, tt.want.Name = tt.domain, "_dmarc."+tt.domain
			if tt.want.Record == "" {
				r.Record = ""
			}
			r.Problem, r.Error = "", ""
			assert.Equal(t, tt.want, r)
		})
	}
}

func TestDKIM(t *testing.T) {
	t.Parallel()
	e, _ := newAuthExec(t)
	tests := []struct {
		name   string
		params map[string]any
		want   []DKIMKey // Record and Problem are checked apart
	}{
		{"Exchange Online's selectors by default", map[string]any{"domain": "contoso.test"}, []DKIMKey{
			{Selector: "selector1", CNAME: "selector1-contoso-test._domainkey.contoso.onmicrosoft.test", State: "present", KeyType: "rsa", KeyBits: 1024, Status: "ok"},
			{Selector: "selector2", CNAME: "selector2-contoso-test._domainkey.contoso.onmicrosoft.test", State: "revoked", KeyType: "rsa", Status: "ok"},
		}},
		{"CNAMEs published, signing not enabled", map[string]any{"domain": "nodkim.test"}, []DKIMKey{
			{Selector: "selector1", CNAME: "selector1-nodkim-test._domainkey.contoso.onmicrosoft.test", State: "absent", Status: "nxdomain"},
			{Selector: "selector2", State: "absent", Status: "nxdomain"},
		}},
		{"named selectors", map[string]any{"domain": "softfail.test", "selectors": "s1, S2"}, []DKIMKey{
			{Selector: "s1", State: "invalid", Status: "ok"},
			{Selector: "s2", State: "present", KeyType: "ed25519", Status: "ok"},
		}},
		{"a failing lookup", map[string]any{"domain": "x.broken.test", "selectors": []any{"selector1"}}, []DKIMKey{
			{Selector: "selector1", Status: "servfail"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rows := decode[[]DKIMKey](t, runCheck(t, e, VantagePoint, "dkim", tt.params))
			require.Len(t, rows, len(tt.want))
			for i := range rows {
				domain := strings.ToLower(tt.params["domain"].(string))
				tt.want[i].Domain, tt.want[i].Name = domain, tt.want[i].Selector+"._domainkey."+domain
				if rows[i].State == "present" {
					assert.Contains(t, rows[i].Record, "p=")
					assert.Empty(t, rows[i].Problem)
				} else {
					assert.NotEmpty(t, rows[i].Problem)
				}
				rows[i].Record, rows[i].Problem, rows[i].Error = "", "", ""
			}
			assert.Equal(t, tt.want, rows)
		})
	}
	t.Run("no key at the CNAME's end says signing is not enabled", func(t *testing.T) {
		t.Parallel()
		rows := decode[[]DKIMKey](t, runCheck(t, e, VantagePoint, "dkim", map[string]any{"domain": "nodkim.test", "selectors": "selector1"}))
		require.Len(t, rows, 1)
		assert.Contains(t, rows[0].Problem, "DKIM signing is not enabled for nodkim.test")
	})
}

func TestMailAuthInput(t *testing.T) {
	t.Parallel()
	e, d := newAuthExec(t)
	tests := []struct {
		check  string
		params map[string]any
	}{
		{"spf", nil},
		{"spf", map[string]any{"domain": "contoso.test\r\nexists:x"}},
		{"dmarc", map[string]any{"domain": "localhost"}},
		{"dkim", map[string]any{"domain": "contoso.test", "selectors": "selector1 bad/selector"}},
		{"dkim", map[string]any{"domain": "contoso.test", "selectors": []any{1}}},
		{"dkim", map[string]any{"domain": "contoso.test", "selectors": "a,b,c,d,e,f,g,h,i"}},
	}
	for _, tt := range tests {
		_, err := e.Run(context.Background(), VantagePoint, executors.Action{Step: "s", Check: tt.check, Params: tt.params})
		assert.ErrorIs(t, err, incident.ErrInvalidInput, "%s %v", tt.check, tt.params)
	}
	assert.Zero(t, d.Queries.Load(), "no DNS query for a malformed action")
}
