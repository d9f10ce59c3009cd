package exo

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors/psobj"
)

func TestValueShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string // a JSON value as Exchange Online writes it
		typ       string // its "@data.type", if any
		want      any
		unlimited bool
	}{
		{"int", `176814`, "System.Int32", int64(176814), false},
		{"big int keeps precision", `106300440576123`, "", int64(106300440576123), false},
		{"float", `1.5`, "", 1.5, false},
		{"bool", `true`, "", true, false},
		{"null", `null`, "", nil, false},
		{"DateTime typed", `"2026-07-23T22:01:22.0480000Z"`, "System.DateTime", "2026-07-23T22:01:22Z", false},
		{"DateTime with offset", `"2026-06-14T19:23:32.0000000+02:00"`, "", "2026-06-14T17:23:32Z", false},
		{"TimeSpan days", `"90.00:00:00"`, "", float64(90 * 24 * 3600), false},
		{"TimeSpan", `"06:00:00"`, "", float64(6 * 3600), false},
		{"ByteQuantifiedSize", `"99 GB (106,300,440,576 bytes)"`, "", int64(106300440576), false},
		{"Unlimited", `"Unlimited"`, "", nil, true},
		{"int as text, typed", `"500"`, "System.Int32", int64(500), false},
		{"plain text stays", `"Delivered"`, "", "Delivered", false},
		{"a time of day is not a date", `"2026-07-23"`, "", "2026-07-23", false},
		{"list", `["SMTP:a@contoso.com","smtp:b@contoso.com"]`, "", []any{"SMTP:a@contoso.com", "smtp:b@contoso.com"}, false},
		{"nested object drops annotations", `{"A":1,"A@data.type":"System.Int32"}`, "", map[string]any{"A": int64(1)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pg, err := decodePage([]byte(`{"value":[{"X":` + tt.in + `}]}`))
			require.NoError(t, err)
			got, unlimited := value(pg.Items[0]["X"], tt.typ)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.unlimited, unlimited)
		})
	}
}

// An Exchange Online row and the row a PowerShell remoting target writes for the
// same object (psobj) are the same JSON, field by field, so a rule reads the same
// value from an exchange and an exo target.
func TestRowsMatchPowerShellRows(t *testing.T) {
	t.Parallel()
	items := fixture(t, "mailbox.json")
	pg, err := decodePage([]byte(`{"value":[` + string(items[0]) + `,` + string(items[1]) + `]}`))
	require.NoError(t, err)
	sel := []string{"PrimarySmtpAddress", "ProhibitSendQuota", "MaxSendSize", "RetainDeletedItemsFor", "WhenCreated",
		"EmailAddresses", "AccountDisabled", "ForwardingSmtpAddress"}
	bq := func(s string) *psobj.Object {
		return &psobj.Object{TypeNames: []string{"Deserialized.Microsoft.Exchange.Data.ByteQuantifiedSize"}, ToString: s, HasToString: true}
	}
	unl := func(s string) *psobj.Object {
		return &psobj.Object{TypeNames: []string{"Deserialized.Microsoft.Exchange.Data.Unlimited`1[[Microsoft.Exchange.Data.ByteQuantifiedSize]]"}, ToString: s, HasToString: true}
	}
	ets := &psobj.Object{TypeNames: []string{"Deserialized.Microsoft.Exchange.Data.EnhancedTimeSpan"}, ToString: "14.00:00:00", HasToString: true}
	ps := []*psobj.Object{
		{Props: []psobj.Prop{{Name: "PrimarySmtpAddress", Value: "alex@contoso.com"}, {Name: "ProhibitSendQuota", Value: unl("99 GB (106,300,440,576 bytes)")},
			{Name: "MaxSendSize", Value: unl("35 MB (36,700,160 bytes)")}, {Name: "RetainDeletedItemsFor", Value: ets},
			{Name: "WhenCreated", Value: time.Date(2025, 8, 8, 18, 38, 40, 0, time.UTC)},
			{Name: "EmailAddresses", Value: []any{"SMTP:alex@contoso.com", "smtp:alex@contoso.onmicrosoft.com"}},
			{Name: "AccountDisabled", Value: false}, {Name: "ForwardingSmtpAddress", Value: nil}}},
		{Props: []psobj.Prop{{Name: "PrimarySmtpAddress", Value: "postmaster@contoso.com"}, {Name: "ProhibitSendQuota", Value: unl("Unlimited")},
			{Name: "MaxSendSize", Value: bq("35 MB (36,700,160 bytes)")}, {Name: "RetainDeletedItemsFor", Value: ets},
			{Name: "WhenCreated", Value: time.Date(2025, 9, 1, 8, 0, 0, 0, time.UTC)},
			{Name: "EmailAddresses", Value: []any{"SMTP:postmaster@contoso.com"}},
			{Name: "AccountDisabled", Value: true}, {Name: "ForwardingSmtpAddress", Value: nil}}},
	}
	for i := range ps {
		exo := row(pg.Items[i], sel, RouteAdminAPI)
		assert.Equal(t, "AdminAPI", exo[RouteField])
		delete(exo, RouteField)
		want, err := json.Marshal(psobj.Row(ps[i], sel))
		require.NoError(t, err)
		got, err := json.Marshal(exo)
		require.NoError(t, err)
		assert.JSONEq(t, string(want), string(got))
	}
	// Without a selection every property comes, annotations never.
	all := row(pg.Items[0], nil, RouteInvokeCommand)
	for k := range all {
		assert.NotContains(t, k, "@")
	}
	// Known difference: an Unlimited<int> that is not Unlimited arrives as text
	// ("500") with no type annotation, and text of digits is not guessed to be a
	// number (an Alias may be digits); PowerShell targets write 500.
	assert.Equal(t, "500", all["RecipientLimits"])
}
