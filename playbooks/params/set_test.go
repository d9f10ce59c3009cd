package params_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks/params"
)

// ndr554 is shaped like the ndr-5.5.4 playbook's parameters.
var ndr554 = params.Set{
	"sender":    {Type: params.TypeEmail, Required: true},
	"server":    {Type: params.TypeHostname},
	"threshold": {Type: params.TypeInt, Min: i64(1), Max: i64(100000), Default: "1000"},
	"wait":      {Type: params.TypeDuration, Default: "5m", Max: i64(3600)},
	"mode":      {Type: params.TypeEnum, Values: []string{"soft", "hard"}, Default: "soft"},
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name string
		raw  map[string]string
		want map[string]any
	}{
		{
			name: "defaults applied, optional absent",
			raw:  map[string]string{"sender": "o'brien@Contoso.com"},
			want: map[string]any{
				"sender":    "o'brien@contoso.com",
				"threshold": int64(1000),
				"wait":      5 * time.Minute,
				"mode":      "soft",
			},
		},
		{
			name: "given values override defaults",
			raw:  map[string]string{"sender": "alice@contoso.com", "server": "EXCH01", "threshold": "500", "wait": "10m", "mode": "hard"},
			want: map[string]any{
				"sender":    "alice@contoso.com",
				"server":    "exch01",
				"threshold": int64(500),
				"wait":      10 * time.Minute,
				"mode":      "hard",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, ndr554.Check())
			got, err := ndr554.Resolve(tt.raw)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestResolveReportsEverythingSorted(t *testing.T) {
	raw := map[string]string{
		"wait":      "forever",
		"threshold": "0",
		"zzz":       "1",
		"sendr":     "alice@contoso.com",
		"mode":      "x'; Remove-Mailbox ceo",
	}
	got, err := ndr554.Resolve(raw)
	require.Error(t, err)
	assert.Nil(t, got)
	assert.ErrorIs(t, err, incident.ErrInvalidInput)

	want := `mode: "x'; Remove-Mailbox ceo" is not one of: soft, hard
sender: missing (an email address, e.g. alice@contoso.com)
sendr: unknown parameter (did you mean sender? known: mode, sender, server, threshold, wait)
threshold: 0 is below the minimum 1
wait: "forever" is not a duration (write it like 90s, 15m or 2h)
zzz: unknown parameter (known: mode, sender, server, threshold, wait)`
	assert.Equal(t, want, err.Error())

	// Every joined error is a *params.Error naming its parameter.
	var joined interface{ Unwrap() []error }
	require.ErrorAs(t, err, &joined)
	var names []string
	for _, e := range joined.Unwrap() {
		var pe *params.Error
		require.ErrorAs(t, e, &pe)
		names = append(names, pe.Param)
	}
	assert.Equal(t, []string{"mode", "sender", "sendr", "threshold", "wait", "zzz"}, names)

	// Deterministic across map iteration orders.
	for range 20 {
		_, again := ndr554.Resolve(raw)
		assert.Equal(t, want, again.Error())
	}
}

func TestResolveEdgeCases(t *testing.T) {
	t.Run("empty set refuses any parameter", func(t *testing.T) {
		_, err := params.Set{}.Resolve(map[string]string{"sender": "a@contoso.com"})
		assert.EqualError(t, err, "sender: unknown parameter (this playbook takes none)")
	})
	t.Run("empty set, nothing given", func(t *testing.T) {
		got, err := params.Set(nil).Resolve(nil)
		require.NoError(t, err)
		assert.Empty(t, got)
	})
	t.Run("hostile unknown key is sanitised", func(t *testing.T) {
		_, err := params.Set{}.Resolve(map[string]string{"a\nb\x00c": "1"})
		assert.EqualError(t, err, "abc: unknown parameter (this playbook takes none)")
	})
	t.Run("given but empty", func(t *testing.T) {
		_, err := ndr554.Resolve(map[string]string{"sender": ""})
		assert.EqualError(t, err, "sender: a value is required (an email address, e.g. alice@contoso.com)")
	})
	t.Run("example used in messages", func(t *testing.T) {
		s := params.Set{"policy": {Type: params.TypeIdentity, Required: true, Example: "EOP Throttling"}}
		_, err := s.Resolve(nil)
		assert.EqualError(t, err, "policy: missing (an Exchange identity, e.g. EOP Throttling)")
	})
	t.Run("bounds used in messages", func(t *testing.T) {
		s := params.Set{
			"count": {Type: params.TypeInt, Required: true, Min: i64(1), Max: i64(1000)},
			"low":   {Type: params.TypeInt, Required: true, Min: i64(1)},
			"wait":  {Type: params.TypeDuration, Required: true, Max: i64(3600)},
			"mode":  {Type: params.TypeEnum, Required: true, Values: []string{"soft", "hard"}},
		}
		_, err := s.Resolve(nil)
		assert.EqualError(t, err, `count: missing (a whole number from 1 to 1000)
low: missing (a whole number of at least 1)
mode: missing (one of: soft, hard)
wait: missing (a duration of at most 1h0m0s, e.g. 15m)`)
	})
	t.Run("invalid default blames the playbook", func(t *testing.T) {
		s := params.Set{"n": {Type: params.TypeInt, Default: "many"}}
		_, err := s.Resolve(nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "n: the playbook's default is invalid")
		assert.False(t, errors.Is(err, incident.ErrInvalidInput), "a broken playbook is not the user's fault")
	})
}

func TestSetCheck(t *testing.T) {
	require.NoError(t, ndr554.Check())
	err := params.Set{
		"Sender": {Type: params.TypeEmail},
		"1x":     {Type: params.TypeInt},
		"ok":     {Type: "mailbox"},
	}.Check()
	require.Error(t, err)
	assert.Equal(t, `parameter "1x": a name is a lower-case letter followed by lower-case letters, digits or _
parameter "Sender": a name is a lower-case letter followed by lower-case letters, digits or _
parameter "ok": unknown type "mailbox" (known: email, domain, hostname, identity, ip, int, duration, enum, string)`, err.Error())
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"sender": true, "next_hop2": true, "a": true,
		"": false, "Sender": false, "_x": false, "2x": false, "a-b": false, "a b": false, "é": false,
		"a23456789012345678901234567890123456789012345678901234567890abcd":  true,
		"a23456789012345678901234567890123456789012345678901234567890abcde": false,
	} {
		assert.Equal(t, want, params.ValidName(name), name)
	}
}
