package lab

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/probe"
	"github.com/ndrbot/ndrbot/executors/probe/dnsfake"
)

// A lookup the organisation file makes fail (world.dns fail:) answers the
// mail-authentication and DNS checks exactly as the probe executor answers
// when a real recursive server sends SERVFAIL or REFUSED or never replies —
// the same rows, verdicts and problems, errors alike but for the server's
// address and the socket's own words for the timeout.
func TestDNSFailuresAsTheProbeMeetsThem(t *testing.T) {
	t.Parallel()
	const spf = "v=spf1 ip4:203.0.113.25 include:_spf.slow.test -all"
	addr := dnsfake.New(t, dnsfake.Failing{ServFail: []string{"broken.test"}, Refused: []string{"refused.test"}, Blackhole: []string{"slow.test"}},
		`contoso.test. 300 IN TXT "`+spf+`"`,
		`_dmarc.contoso.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`selector1._domainkey.contoso.test. 300 IN CNAME selector1.broken.test.`).Addr
	real, err := probe.New("net", config.Target{Kind: config.KindProbe, Timeout: 10 * time.Second},
		probe.WithDNSServer(addr), probe.WithDNSTimeout(150*time.Millisecond))
	require.NoError(t, err)

	l, err := ParseOrg("dnsfail", []byte(`
extends: base
world:
  dns:
    contoso.test: {spf: ["`+spf+`"]}
    _dmarc.contoso.test: {txt: ["v=DMARC1; p=reject"]}
    selector1._domainkey.contoso.test: {cname: selector1.broken.test}
    broken.test: {fail: servfail}
    slow.test: {fail: timeout}
    refused.test: {fail: refused}
`), Options{})
	require.NoError(t, err)
	lab := l.Target("net", "probe", nil)

	// The server's address and the socket's words for a timeout differ; the
	// rest of an error must not.
	server := regexp.MustCompile(` via [^ ]+:\d+: `)
	noReply := regexp.MustCompile(`no reply: .*$`)
	var tidy func(v any) any
	tidy = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = tidy(e)
			}
		case []any:
			for i, e := range x {
				x[i] = tidy(e)
			}
		case string:
			return noReply.ReplaceAllString(server.ReplaceAllString(x, " via <resolver>: "), "no reply: <timeout>")
		}
		return v
	}
	normal := func(b []byte) any {
		var v any
		require.NoError(t, json.Unmarshal(b, &v))
		return tidy(v)
	}
	for _, c := range []struct {
		check, domain, status string
		selectors             any
	}{
		{probe.CheckSPF, "broken.test", "servfail", nil},
		{probe.CheckSPF, "slow.test", "timeout", nil},
		{probe.CheckSPF, "refused.test", "error", nil},
		{probe.CheckSPF, "contoso.test", "ok", nil}, // its include times out
		{probe.CheckDMARC, "broken.test", "servfail", nil},
		{probe.CheckDMARC, "slow.test", "timeout", nil},
		{probe.CheckDMARC, "contoso.test", "ok", nil},
		{probe.CheckDKIM, "contoso.test", "", "selector1"}, // a CNAME into a zone that fails
		{probe.CheckMX, "broken.test", "", nil},
		{probe.CheckMX, "slow.test", "", nil},
		{probe.CheckDNS, "refused.test", "error", nil},
	} {
		t.Run(c.check+" "+c.domain, func(t *testing.T) {
			t.Parallel()
			params := map[string]any{"domain": c.domain}
			if c.selectors != nil {
				params["selectors"] = c.selectors
			}
			a := executors.Action{Step: "s", Check: c.check, Params: params}
			want, err := real.Run(context.Background(), probe.VantagePoint, a)
			require.NoError(t, err)
			got, err := lab.Run(context.Background(), probe.VantagePoint, a)
			require.NoError(t, err)
			assert.Equal(t, normal(want.Stdout), normal(got.Stdout))
			if c.status != "" {
				assert.Contains(t, string(got.Stdout), `"Status":"`+c.status+`"`)
			}
		})
	}

	// The temperror verdicts a receiver would reach (RFC 7208 §2.6.6, RFC 7489 §6.6.3).
	for _, d := range []string{"broken.test", "slow.test", "contoso.test"} {
		out, err := lab.Run(context.Background(), probe.VantagePoint, executors.Action{Step: "s", Check: probe.CheckSPF, Params: map[string]any{"domain": d}})
		require.NoError(t, err)
		assert.Contains(t, string(out.Stdout), `"Verdict":"temperror"`, d)
	}
}

func TestDNSFailValues(t *testing.T) {
	t.Parallel()
	_, err := ParseOrg("bad", []byte(`
extends: base
world:
  dns:
    contoso.com: {fail: nxdomain}
`), Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `dns contoso.com: fail "nxdomain" is not one of servfail, timeout, refused`)
}
