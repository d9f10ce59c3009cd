package lab

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors/psobj"
)

// parsedLab builds a lab from an org file extending base, at the test clock.
func parsedLab(t *testing.T, yaml string) *Lab {
	t.Helper()
	l, err := ParseOrg("t.yaml", []byte("extends: base\n"+yaml), Options{Now: func() time.Time { return labNow }})
	require.NoError(t, err)
	return l
}

// Port 25 of a lab server, tested from EX01: the server's own SMTP listener.
func TestSMTPPortOfALabServer(t *testing.T) {
	const ready = " Microsoft ESMTP MAIL Service ready at Fri, 15 May 2026 10:00:00 +0000"
	cases := []struct {
		name, remote string
		lab          func(t *testing.T) *Lab
		tcp          bool
		banner, err  any
	}{
		{"by name", "EX02", func(t *testing.T) *Lab { return orgLab(t, "base") }, true, "220 ex02.lab.contoso.com" + ready, nil},
		{"by FQDN in another case, itself", "EX01.Lab.Contoso.COM", func(t *testing.T) *Lab { return orgLab(t, "base") }, true, "220 ex01.lab.contoso.com" + ready, nil},
		{"the Default Frontend connector's Fqdn", "EX01", func(t *testing.T) *Lab {
			return parsedLab(t, "servers:\n  EX01:\n    receive_connectors:\n      Default Frontend EX01: {Bindings: ['0.0.0.0:25'], Fqdn: mail.contoso.com}\n")
		}, true, "220 mail.contoso.com" + ready, nil},
		{"HubTransport Inactive", "ex01.lab.contoso.com", func(t *testing.T) *Lab { return orgLab(t, "component-maintenance") }, true, "421 4.3.2 Service not available", nil},
		{"the other server of component-maintenance", "EX02", func(t *testing.T) *Lab { return orgLab(t, "component-maintenance") }, true, "220 ex02.lab.contoso.com" + ready, nil},
		{"MSExchangeTransport stopped", "EX02", func(t *testing.T) *Lab { return orgLab(t, "connector-unhealthy") }, false, nil, refusedText},
		{"MSExchangeFrontEndTransport stopped", "EX02", func(t *testing.T) *Lab {
			return parsedLab(t, "servers:\n  EX02:\n    services:\n      MSExchangeFrontEndTransport: {Status: Stopped}\n")
		}, false, nil, refusedText},
		{"a ports: entry wins", "ex02.lab.contoso.com", func(t *testing.T) *Lab {
			return parsedLab(t, "servers:\n  EX01:\n    ports:\n      ex02.lab.contoso.com:25: {TcpSucceeded: false, Error: A firewall drops it}\n")
		}, false, nil, "A firewall drops it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rows(t, tc.lab(t), "jea", "Test-NdrSmtpPort", nil, "RemoteHost", tc.remote, "Port", int64(25))[0]
			assert.Equal(t, tc.tcp, r["TcpSucceeded"])
			assert.Equal(t, tc.banner, r["Banner"])
			assert.Equal(t, tc.err, r["Error"])
		})
	}

	t.Run("421 until Set-ServerComponentState brings HubTransport back", func(t *testing.T) {
		l := orgLab(t, "component-maintenance")
		banner := func() any {
			return rows(t, l, "jea", "Test-NdrSmtpPort", nil, "RemoteHost", "EX01")[0]["Banner"]
		}
		assert.Equal(t, "421 4.3.2 Service not available", banner())
		rows(t, l, "exchange", "Set-ServerComponentState", nil, "Identity", "EX01", "Component", "HubTransport", "State", "Active", "Requester", "Functional")
		assert.Equal(t, "421 4.3.2 Service not available", banner(), "Maintenance still holds it")
		rows(t, l, "exchange", "Set-ServerComponentState", nil, "Identity", "EX01", "Component", "HubTransport", "State", "Active", "Requester", "Maintenance")
		assert.Equal(t, "220 ex01.lab.contoso.com"+ready, banner())
	})
	t.Run("refused until Restart-Service starts the transport", func(t *testing.T) {
		l := parsedLab(t, "servers:\n  EX01:\n    services:\n      MSExchangeTransport: {Status: Stopped}\n")
		assert.Equal(t, refusedText, rows(t, l, "jea", "Test-NdrSmtpPort", nil, "RemoteHost", "EX01")[0]["Error"])
		rows(t, l, "jea", "Restart-Service", nil, "Name", "MSExchangeTransport")
		r := rows(t, l, "jea", "Test-NdrSmtpPort", nil, "RemoteHost", "EX01")[0]
		assert.Equal(t, true, r["TcpSucceeded"])
		assert.Equal(t, "220 ex01.lab.contoso.com"+ready, r["Banner"])
	})
}

// Get-ExchangeServer: each server's AD site from site:, Default-First-Site-Name
// when the file leaves it out.
func TestExchangeServerSite(t *testing.T) {
	l := parsedLab(t, "servers:\n  EX02:\n    site: Branch-Site\n  EX03:\n    fqdn: ex03.branch.contoso.com\n")
	cases := []struct{ identity, fqdn, site string }{
		{"EX01", "ex01.lab.contoso.com", "contoso.com/Configuration/Sites/Default-First-Site-Name"},
		{"ex02.lab.contoso.com", "ex02.lab.contoso.com", "contoso.com/Configuration/Sites/Branch-Site"},
		{"EX03", "ex03.branch.contoso.com", "contoso.com/Configuration/Sites/Default-First-Site-Name"},
	}
	for _, tc := range cases {
		t.Run(tc.identity, func(t *testing.T) {
			o := objects(t, l, "exchange", "Get-ExchangeServer", args("Identity", tc.identity))[0].(*psobj.Object)
			site, _ := o.Prop("Site")
			assert.Equal(t, tc.site, site.(*psobj.Object).ToString)
			assert.Contains(t, site.(*psobj.Object).TypeNames, "Deserialized.Microsoft.Exchange.Data.Directory.ADObjectId")
			r := rows(t, l, "exchange", "Get-ExchangeServer", []string{"Name", "Fqdn", "Site", "ServerRole", "AdminDisplayVersion"}, "Identity", tc.identity)[0]
			assert.Equal(t, tc.site, r["Site"])
			assert.Equal(t, tc.fqdn, r["Fqdn"])
			assert.Equal(t, "Mailbox", r["ServerRole"])
			assert.NotEmpty(t, r["Name"])
			assert.NotEmpty(t, r["AdminDisplayVersion"])
		})
	}
	assert.Len(t, rows(t, l, "exchange", "Get-ExchangeServer", []string{"Name"}), 3)
}

func TestTestMailflow(t *testing.T) {
	const tenant = "postmaster@contoso.mail.onmicrosoft.com"
	sel := []string{"TestMailflowResult", "MessageLatencyTime", "IsRemoteTest"}
	const local, outside = "00:00:02.1560000", "00:00:04.2130000" // within the organisation, leaving it
	cases := []struct {
		name, scenario string
		args           []any
		result         string
		remote         bool
		latency        string
	}{
		{"base: to its own system mailbox", "base", nil, "Success", false, local},
		{"base: to the tenant's routing domain", "base", []any{"TargetEmailAddress", tenant}, "Success", true, outside},
		{"base: to an external domain, from EX02", "base", []any{"Identity", "EX02", "TargetEmailAddress", "ap@fabrikam.com", "ExecutionTimeout", int64(60)}, "Success", true, outside},
		{"base: to a local mailbox", "base", []any{"TargetEmailAddress", "alice@contoso.com"}, "Success", true, local},
		{"overloaded-queue: the 5.5.4 failures continue", "overloaded-queue", []any{"TargetEmailAddress", tenant}, "*FAILURE*", true, "00:00:00"},
		{"overloaded-queue: a local mailbox still gets mail", "overloaded-queue", []any{"TargetEmailAddress", "alice@contoso.com"}, "Success", true, local},
		{"tls-cert-expired: the connector's queue is in Retry", "tls-cert-expired", []any{"TargetEmailAddress", tenant}, "*FAILURE*", true, "00:00:00"},
		{"tls-cert-expired: the Internet is another queue", "tls-cert-expired", []any{"TargetEmailAddress", "ap@fabrikam.com"}, "Success", true, outside},
		{"concurrency-too-high: the queue to fabrikam.com is in Retry", "concurrency-too-high", []any{"TargetEmailAddress", "AP@Fabrikam.com"}, "*FAILURE*", true, "00:00:00"},
		{"concurrency-too-high: from EX02, whose queue is fine", "concurrency-too-high", []any{"Identity", "EX02", "TargetEmailAddress", "ap@fabrikam.com"}, "Success", true, outside},
		{"queue-suspended: a suspended queue delivers nothing", "queue-suspended", []any{"TargetEmailAddress", "ap@fabrikam.com"}, "*FAILURE*", true, "00:00:00"},
		{"component-maintenance: HubTransport Inactive", "component-maintenance", nil, "*FAILURE*", false, "00:00:00"},
		{"component-maintenance: EX02 is fine", "component-maintenance", []any{"Identity", "ex02.lab.contoso.com"}, "Success", false, local},
		{"connector-unhealthy: EX02's transport is stopped", "connector-unhealthy", []any{"Identity", "EX02", "TargetEmailAddress", "alice@contoso.com"}, "*FAILURE*", true, "00:00:00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := orgLab(t, tc.scenario)
			r := rows(t, l, "exchange", "Test-Mailflow", sel, tc.args...)
			require.Len(t, r, 1)
			assert.Equal(t, tc.result, r[0]["TestMailflowResult"])
			assert.Equal(t, tc.remote, r[0]["IsRemoteTest"])
			o := objects(t, l, "exchange", "Test-Mailflow", args(tc.args...))[0].(*psobj.Object)
			assert.Equal(t, "Deserialized.Microsoft.Exchange.Monitoring.TestMailflowOutput", o.TypeNames[0])
			lat, _ := o.Prop("MessageLatencyTime")
			assert.Equal(t, tc.latency, lat.(*psobj.Object).ToString)
		})
	}

	t.Run("overloaded-queue: Success once the restart stops the failures", func(t *testing.T) {
		l := orgLab(t, "overloaded-queue")
		result := func() any {
			return rows(t, l, "exchange", "Test-Mailflow", sel, "TargetEmailAddress", tenant)[0]["TestMailflowResult"]
		}
		assert.Equal(t, "*FAILURE*", result())
		rows(t, l, "jea", "Restart-Service", nil, "Name", "MSExchangeTransport")
		assert.Equal(t, "Success", result())
	})
	t.Run("relief-fails: the restart changes nothing", func(t *testing.T) {
		l := orgLab(t, "relief-fails")
		rows(t, l, "jea", "Restart-Service", nil, "Name", "MSExchangeTransport")
		assert.Equal(t, "*FAILURE*", rows(t, l, "exchange", "Test-Mailflow", sel, "TargetEmailAddress", tenant)[0]["TestMailflowResult"])
	})
	t.Run("queue-suspended: Success once resumed", func(t *testing.T) {
		l := orgLab(t, "queue-suspended")
		rows(t, l, "exchange", "Resume-Queue", nil, "Identity", `EX01\18`)
		assert.Equal(t, "Success", rows(t, l, "exchange", "Test-Mailflow", sel, "TargetEmailAddress", "ap@fabrikam.com")[0]["TestMailflowResult"])
	})
	t.Run("component-maintenance: Success once HubTransport is back", func(t *testing.T) {
		l := orgLab(t, "component-maintenance")
		rows(t, l, "exchange", "Set-ServerComponentState", nil, "Identity", "EX01", "Component", "HubTransport", "State", "Active", "Requester", "Maintenance")
		assert.Equal(t, "Success", rows(t, l, "exchange", "Test-Mailflow", sel)[0]["TestMailflowResult"])
	})
	t.Run("no connector routes the domain", func(t *testing.T) {
		l := parsedLab(t, "send_connectors:\n  Internet: null\n")
		assert.Equal(t, "*FAILURE*", rows(t, l, "exchange", "Test-Mailflow", sel, "TargetEmailAddress", "ap@fabrikam.com")[0]["TestMailflowResult"])
		assert.Equal(t, "Success", rows(t, l, "exchange", "Test-Mailflow", sel, "TargetEmailAddress", tenant)[0]["TestMailflowResult"])
	})

	errs := []struct {
		name, kind string
		args       []any
		want       string
	}{
		{"unknown server", "exchange", []any{"Identity", "EX09"}, "The operation couldn't be performed because object 'EX09' couldn't be found"},
		{"not on the JEA endpoint", "jea", nil, "The term 'Test-Mailflow' is not recognized"},
		{"an unsimulated parameter set", "exchange", []any{"TargetMailboxServer", "EX02"}, "The lab does not simulate parameter 'TargetMailboxServer' of Test-Mailflow"},
		{"ExecutionTimeout is a number", "exchange", []any{"ExecutionTimeout", "soon"}, `Cannot convert value "soon" to type "System.Int32".`},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(orgLab(t, "base"), tc.kind, "Test-Mailflow", nil, tc.args...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestTimeSpanFractions(t *testing.T) {
	for d, want := range map[time.Duration]string{4213 * time.Millisecond: "00:00:04.2130000", 0: "00:00:00",
		90 * time.Second: "00:01:30", 26*time.Hour + 500*time.Millisecond: "1.02:00:00.5000000"} {
		assert.Equal(t, want, timeSpanString(d))
		got, ok := psobj.ParseTimeSpan(want)
		assert.True(t, ok)
		assert.InDelta(t, float64(d), float64(got), float64(time.Microsecond))
	}
}
