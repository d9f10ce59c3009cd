package probe

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
)

func TestMX(t *testing.T) {
	t.Parallel()
	e := newTestExec(t, newTestDNS(t), nil)
	fast := newTestExec(t, newTestDNS(t), nil, WithDNSTimeout(300*time.Millisecond))
	tests := []struct {
		domain string
		want   []MXRecord // nil: a single status object
		status string
	}{
		{domain: "contoso.test", want: []MXRecord{
			{Domain: "contoso.test", Exchange: "mx1.contoso.test", Preference: 10, Status: "ok"},
			{Domain: "contoso.test", Exchange: "mx2.contoso.test", Preference: 20, Status: "ok"},
		}},
		{domain: "alice@Contoso.TEST.", want: []MXRecord{ // an address pasted from an NDR
			{Domain: "contoso.test", Exchange: "mx1.contoso.test", Preference: 10, Status: "ok"},
			{Domain: "contoso.test", Exchange: "mx2.contoso.test", Preference: 20, Status: "ok"},
		}},
		{domain: "nx.test", status: "nxdomain"},
		{domain: "nomx.test", status: "nodata"},
		{domain: "broken.test", status: "servfail"},
		{domain: "slow.test", status: "timeout"},
		{domain: "nullmx.test", status: "null-mx"},
		{domain: "mixed.test", want: []MXRecord{ // a stray "MX 0 ." next to a real MX is ignored
			{Domain: "mixed.test", Exchange: "mx1.contoso.test", Preference: 10, Status: "ok"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			t.Parallel()
			ex := e
			if tt.status == "timeout" {
				ex = fast
			}
			out := runCheck(t, ex, "", "mx", map[string]any{"domain": tt.domain})
			if tt.want != nil {
				assert.Equal(t, tt.want, decode[[]MXRecord](t, out))
				return
			}
			r := decode[DNSStatus](t, out)
			assert.Equal(t, tt.status, r.Status)
			assert.NotEmpty(t, r.Domain)
			if tt.status == "timeout" || tt.status == "servfail" {
				assert.NotEmpty(t, r.Error)
			}
		})
	}
}

func TestDNS(t *testing.T) {
	t.Parallel()
	e := newTestExec(t, newTestDNS(t), nil)
	fast := newTestExec(t, newTestDNS(t), nil, WithDNSTimeout(300*time.Millisecond))
	tests := []struct {
		domain string
		want   DNSResult
	}{
		{"contoso.test", DNSResult{Domain: "contoso.test", A: []string{"192.0.2.10"}, AAAA: []string{"2001:db8::10"},
			SPF: "v=spf1 include:spf.protection.outlook.com -all", SPFCount: 1,
			SPFRecords: []string{"v=spf1 include:spf.protection.outlook.com -all"}, Status: "ok"}},
		// Two SPF records: a permerror (RFC 7208 §4.5); split strings are joined without a space.
		{"twospf.test", DNSResult{Domain: "twospf.test", A: []string{}, AAAA: []string{},
			SPF: "v=spf1 ip4:192.0.2.0/24 -all", SPFCount: 2,
			SPFRecords: []string{"v=spf1 ip4:192.0.2.0/24 -all", "v=spf1 include:spf.protection.outlook.com ~all"}, Status: "ok"}},
		{"nomx.test", DNSResult{Domain: "nomx.test", A: []string{"127.0.0.1"}, AAAA: []string{}, SPFRecords: []string{}, Status: "ok"}},
		{"nx.test", DNSResult{Domain: "nx.test", A: []string{}, AAAA: []string{}, SPFRecords: []string{}, Status: "nxdomain"}},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			t.Parallel()
			r := decode[DNSResult](t, runCheck(t, e, "", "dns", map[string]any{"domain": tt.domain}))
			if tt.want.SPFRecords != nil && len(tt.want.SPFRecords) > 1 {
				assert.ElementsMatch(t, tt.want.SPFRecords, r.SPFRecords)
				assert.Contains(t, tt.want.SPFRecords, r.SPF)
				tt.want.SPFRecords, r.SPFRecords, tt.want.SPF, r.SPF = nil, nil, "", ""
			}
			assert.Equal(t, tt.want, r)
		})
	}

	t.Run("no answer", func(t *testing.T) {
		t.Parallel()
		r := decode[DNSResult](t, runCheck(t, fast, "", "dns", map[string]any{"domain": "slow.test"}))
		assert.Equal(t, "timeout", r.Status)
		assert.Contains(t, r.Error, "no reply")
	})
}

func TestReverseIP(t *testing.T) {
	t.Parallel()
	tests := []struct{ ip, want string }{
		{"127.0.0.2", "2.0.0.127"},
		{"192.0.2.99", "99.2.0.192"},
		{"2001:db8::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"},
		{"2001:DB8:1234:5678:9abc:def0:1:ff", "f.f.0.0.1.0.0.0.0.f.e.d.c.b.a.9.8.7.6.5.4.3.2.1.8.b.d.0.1.0.0.2"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, reverseIP(netip.MustParseAddr(tt.ip)), tt.ip)
	}
}

func TestDNSBL(t *testing.T) {
	t.Parallel()
	e := newTestExec(t, newTestDNS(t), nil)
	fast := newTestExec(t, newTestDNS(t), nil, WithDNSTimeout(300*time.Millisecond))

	t.Run("default zones, IPv4 and IPv6", func(t *testing.T) {
		t.Parallel()
		rows := decode[[]DNSBLRow](t, runCheck(t, e, "", "dnsbl", map[string]any{
			"ips": []any{"127.0.0.2", "192.0.2.99", "2001:db8::1", "::ffff:192.0.2.99"}}))
		spamhaus := "Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL2"
		want := []DNSBLRow{
			{IP: "127.0.0.2", Zone: "zen.spamhaus.org", Listed: true, Code: "127.0.0.10,127.0.0.2", Reason: spamhaus, Status: "ok"},
			{IP: "127.0.0.2", Zone: "bl.spamcop.net", Listed: true, Code: "127.0.0.2", Reason: "Blocked - see https://www.spamcop.net/bl.shtml?127.0.0.2", Status: "ok"},
			{IP: "127.0.0.2", Zone: "b.barracudacentral.org", Status: "ok"},
			{IP: "192.0.2.99", Zone: "zen.spamhaus.org", Status: "ok"},
			{IP: "192.0.2.99", Zone: "bl.spamcop.net", Status: "ok"},
			{IP: "192.0.2.99", Zone: "b.barracudacentral.org", Status: "ok"},
			{IP: "2001:db8::1", Zone: "zen.spamhaus.org", Listed: true, Code: "127.0.0.4", Status: "ok"},
			{IP: "2001:db8::1", Zone: "bl.spamcop.net", Status: "ok"},
			{IP: "2001:db8::1", Zone: "b.barracudacentral.org", Status: "ok"},
			// An IPv4-mapped address is queried as IPv4.
			{IP: "192.0.2.99", Zone: "zen.spamhaus.org", Status: "ok"},
			{IP: "192.0.2.99", Zone: "bl.spamcop.net", Status: "ok"},
			{IP: "192.0.2.99", Zone: "b.barracudacentral.org", Status: "ok"},
		}
		assert.Equal(t, want, rows)
	})

	t.Run("a zone that never answers times out alone", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		rows := decode[[]DNSBLRow](t, runCheck(t, fast, "", "dnsbl", map[string]any{
			"ip": "127.0.0.2", "zones": "zen.spamhaus.org, slow.dnsbl.test"}))
		require.Len(t, rows, 2)
		assert.Equal(t, "ok", rows[0].Status)
		assert.True(t, rows[0].Listed)
		assert.Equal(t, "timeout", rows[1].Status)
		assert.False(t, rows[1].Listed)
		assert.Contains(t, rows[1].Error, "slow.dnsbl.test")
		// Two attempts of 300 ms each; the bound is loose, it only rules out hanging
		// (or zones being queried one after another).
		assert.Less(t, time.Since(start), 5*time.Second)
	})

	t.Run("refusal codes are not listings", func(t *testing.T) {
		t.Parallel()
		rows := decode[[]DNSBLRow](t, runCheck(t, e, "", "dnsbl", map[string]any{
			"ips": "127.0.0.2", "zones": []string{"public.dnsbl.test"}}))
		require.Len(t, rows, 1)
		assert.False(t, rows[0].Listed)
		assert.Equal(t, "error", rows[0].Status)
		assert.Equal(t, "127.255.255.254", rows[0].Code)
		assert.Contains(t, rows[0].Error, "refused the query")
	})

	t.Run("a run bounded by its timeout", func(t *testing.T) {
		t.Parallel()
		out, err := e.Run(context.Background(), "", executors.Action{Check: "dnsbl", Timeout: 200 * time.Millisecond,
			Params: map[string]any{"ips": "127.0.0.2", "zones": "slow.dnsbl.test"}})
		require.NoError(t, err)
		rows := decode[[]DNSBLRow](t, out)
		require.Len(t, rows, 1)
		assert.Equal(t, "timeout", rows[0].Status)
	})
}
