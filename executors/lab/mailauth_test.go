package lab

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/probe"
)

// The lab answers spf, dmarc and dkim from world.dns with the probe's own record
// evaluation: CNAMEs followed, includes walked through the file's zones.
func TestMailAuthChecks(t *testing.T) {
	t.Parallel()
	l, err := ParseOrg("mailauth", []byte(`
extends: base
world:
  dns:
    contoso.com: {spf: ["v=spf1 include:spf.protection.outlook.com include:_spf.vendor.test -all"]}
    _spf.vendor.test: {spf: ["v=spf1 a mx ptr exists:x.vendor.test include:_spf2.vendor.test a mx ~all"]}
    _spf2.vendor.test: {spf: ["v=spf1 a mx ~all"]}
    _dmarc.contoso.com: {txt: ["v=DMARC1; p=reject; rua=mailto:d@contoso.com", "v=DMARC1; p=none"]}
    selector2-contoso-com._domainkey.contoso.onmicrosoft.com: null
`), Options{})
	require.NoError(t, err)
	net := l.Target("net", "probe", nil)
	run := func(check string, params map[string]any) []byte {
		t.Helper()
		out, err := net.Run(context.Background(), probe.VantagePoint, executors.Action{Step: "s", Check: check, Params: params})
		require.NoError(t, err)
		return out.Stdout
	}

	var spf probe.SPFResult
	require.NoError(t, json.Unmarshal(run(probe.CheckSPF, map[string]any{"domain": "postmaster@Contoso.com"}), &spf))
	assert.Equal(t, "contoso.com", spf.Domain)
	assert.Equal(t, "permerror", spf.Verdict)
	assert.Equal(t, 11, spf.Lookups, "outlook 2, vendor 1+4, nested 1+2, then the limit")
	assert.True(t, spf.ExchangeOnline)
	assert.Equal(t, "-all", spf.All)

	var dmarc probe.DMARCResult
	require.NoError(t, json.Unmarshal(run(probe.CheckDMARC, map[string]any{"domain": "contoso.com"}), &dmarc))
	assert.Equal(t, 2, dmarc.Count)
	assert.Equal(t, "permerror", dmarc.Verdict)

	var dkim []probe.DKIMKey
	require.NoError(t, json.Unmarshal(run(probe.CheckDKIM, map[string]any{"domain": "contoso.com"}), &dkim))
	require.Len(t, dkim, 2)
	assert.Equal(t, probe.DKIMKey{Domain: "contoso.com", Selector: "selector1", Name: "selector1._domainkey.contoso.com",
		CNAME: "selector1-contoso-com._domainkey.contoso.onmicrosoft.com", State: "present", KeyType: "rsa", KeyBits: 2048,
		Record: dkim[0].Record, Status: "ok"}, dkim[0])
	assert.Equal(t, "absent", dkim[1].State, "the CNAME's target is gone")
	assert.Equal(t, "selector2-contoso-com._domainkey.contoso.onmicrosoft.com", dkim[1].CNAME)
	assert.Equal(t, "nxdomain", dkim[1].Status)

	// The base file's records: what Microsoft 365 customers publish.
	healthy, err := New("healthy", Options{})
	require.NoError(t, err)
	hnet := healthy.Target("net", "probe", nil)
	for _, c := range []struct{ check, verdict string }{{probe.CheckSPF, "ok"}, {probe.CheckDMARC, "ok"}} {
		out, err := hnet.Run(context.Background(), probe.VantagePoint, executors.Action{Step: "s", Check: c.check, Params: map[string]any{"domain": "contoso.com"}})
		require.NoError(t, err)
		assert.Contains(t, string(out.Stdout), `"Verdict":"`+c.verdict+`"`, c.check)
	}

	_, err = net.Run(context.Background(), probe.VantagePoint, executors.Action{Step: "s", Check: probe.CheckDKIM,
		Params: map[string]any{"domain": "contoso.com", "selectors": "bad selector!"}})
	assert.Error(t, err, "selectors are validated as the probe does")
}

func TestMailAuthCNAMEWithData(t *testing.T) {
	t.Parallel()
	_, err := ParseOrg("bad", []byte(`
extends: base
world:
  dns:
    selector1._domainkey.contoso.com: {cname: x.contoso.onmicrosoft.com, txt: ["v=DKIM1; p="]}
`), Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has a cname and other records")
}
