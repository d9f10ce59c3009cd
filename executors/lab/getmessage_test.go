package lab

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
)

// Get-Message lists what the organisation file says a queue holds, no more
// than its MessageCount, with each message's expiry: its own, or DateReceived
// plus the server's MessageExpirationTimeout.
func TestGetMessage(t *testing.T) {
	sel := []string{"Identity", "Queue", "FromAddress", "Status", "DateReceived", "ExpirationTime", "RetryCount", "LastError"}
	tests := []struct {
		name    string
		args    []any
		senders []string
		err     string
	}{
		{"a queue by identity", []any{"Queue", `EX01\21`}, []string{"alice@contoso.com", "bob@contoso.com", "billing@contoso.com"}, ""},
		{"a queue by next-hop domain", []any{"Queue", `EX01\fabrikam.com`}, []string{"alice@contoso.com", "bob@contoso.com", "billing@contoso.com"}, ""},
		{"every queue of the server", []any{"Server", "EX01"}, []string{"alice@contoso.com", "bob@contoso.com", "billing@contoso.com"}, ""},
		{"a queue with no messages described", []any{"Queue", `EX01\7`}, nil, ""},
		{"ResultSize", []any{"Queue", `EX01\21`, "ResultSize", int64(1)}, []string{"alice@contoso.com"}, ""},
		{"an unknown queue", []any{"Queue", `EX01\99`}, nil, `The queue "EX01\99" couldn't be found.`},
		{"the filter is not simulated", []any{"Filter", "FromAddress -eq 'a@b'"}, nil, "The lab does not simulate parameter 'Filter'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := orgLab(t, "nexthop-recovered")
			if tc.err != "" {
				_, err := run(l, "exchange", "Get-Message", sel, tc.args...)
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			got := rows(t, l, "exchange", "Get-Message", sel, tc.args...)
			var senders []string
			for _, r := range got {
				senders = append(senders, r["FromAddress"].(string))
				assert.Equal(t, `EX01\21`, r["Queue"])
				assert.Equal(t, "Retry", r["Status"])
				assert.EqualValues(t, 41, r["RetryCount"], "the queue's")
				assert.Contains(t, r["LastError"], "421 4.4.1 Connection timed out.")
			}
			assert.Equal(t, tc.senders, senders)
		})
	}

	t.Run("expiry is DateReceived plus MessageExpirationTimeout", func(t *testing.T) {
		got := rows(t, orgLab(t, "nexthop-recovered"), "exchange", "Get-Message", sel, "Queue", `EX01\21`)
		require.NotEmpty(t, got)
		received, err := time.Parse(time.RFC3339, got[0]["DateReceived"].(string))
		require.NoError(t, err)
		expires, err := time.Parse(time.RFC3339, got[0]["ExpirationTime"].(string))
		require.NoError(t, err)
		assert.Equal(t, 48*time.Hour, expires.Sub(received), "Exchange 2019's default MessageExpirationTimeout")
		assert.Equal(t, labNow.Add(-31*time.Hour).UTC().Truncate(time.Second), received.UTC().Truncate(time.Second))
	})

	t.Run("a drained queue lists nothing", func(t *testing.T) {
		l := orgLab(t, "nexthop-recovered")
		_, err := run(l, "exchange", "Retry-Queue", nil, "Identity", `EX01\21`)
		require.NoError(t, err)
		assert.Empty(t, rows(t, l, "exchange", "Get-Message", sel, "Queue", `EX01\21`))
	})

	t.Run("transport stopped", func(t *testing.T) {
		l := orgLab(t, "connector-unhealthy")
		_, err := l.Target("exchange", "exchange", nil).Run(context.Background(), "ex02.lab.contoso.com",
			executors.Action{Step: "s", Cmdlet: "Get-Message", Args: args("Server", "EX02")})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "Failed to connect to the Microsoft Exchange Transport service")
	})
}
