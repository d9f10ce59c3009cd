package probe

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
)

// A probe target without endpoints (the default `net` target) is the bot's own
// vantage point: one host, so the engine runs each DNS or MX step once; the checks
// that take their subject from params work there, the ones that dial the host say
// clearly why they cannot.
func TestTargetWithoutEndpointsIsTheVantagePoint(t *testing.T) {
	t.Parallel()
	f := newFakeSMTP(t, modeNoTLS)
	d := newTestDNS(t)
	e, err := New("net", config.Target{Kind: Kind, HeloName: testHelo},
		WithDNSServer(d.Addr), WithSMTPPort(f.port()))
	require.NoError(t, err)
	require.Equal(t, []string{VantagePoint}, e.Hosts())
	host := e.Hosts()[0]

	for _, check := range []string{CheckSMTP, CheckTCP} {
		t.Run(check, func(t *testing.T) {
			_, err := e.Run(context.Background(), host, executors.Action{Step: "s", Check: check})
			require.Error(t, err)
			assert.ErrorIs(t, err, incident.ErrInvalidInput)
			assert.Contains(t, err.Error(), "targets.net has no endpoints to probe; smtp-mx takes the domain from params")
		})
	}
	assert.Zero(t, f.accepted.Load(), "smtp and tcp on the vantage point dial nothing")

	tests := []struct {
		check  string
		params map[string]any
		check1 func(t *testing.T, out executors.Output)
	}{
		{CheckSMTPMX, map[string]any{"domain": "contoso.test"}, func(t *testing.T, out executors.Output) {
			rows := decode[[]MXProbe](t, out)
			require.Len(t, rows, 1)
			assert.Equal(t, "mx1.contoso.test", rows[0].Exchange)
			assert.Equal(t, StatusOK, rows[0].Status, rows[0].Error)
		}},
		{CheckMX, map[string]any{"domain": "contoso.test"}, func(t *testing.T, out executors.Output) {
			assert.Len(t, decode[[]MXRecord](t, out), 2)
		}},
		{CheckDNS, map[string]any{"domain": "contoso.test"}, func(t *testing.T, out executors.Output) {
			assert.Equal(t, 1, decode[DNSResult](t, out).SPFCount)
		}},
		{CheckDNSBL, map[string]any{"ips": []any{"127.0.0.2"}, "zones": "zen.spamhaus.org"}, func(t *testing.T, out executors.Output) {
			rows := decode[[]DNSBLRow](t, out)
			require.Len(t, rows, 1)
			assert.True(t, rows[0].Listed)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.check, func(t *testing.T) {
			out := runCheck(t, e, host, tt.check, tt.params)
			assert.Equal(t, VantagePoint, out.Host)
			tt.check1(t, out)
		})
	}
	assert.Equal(t, int64(1), f.accepted.Load(), "one polite connection for smtp-mx")
}
