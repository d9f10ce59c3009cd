package lab

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/psobj"
)

var labNow = time.Date(2026, 5, 15, 10, 0, 0, 0, time.UTC)

func orgLab(t *testing.T, name string) *Lab {
	t.Helper()
	l, err := NewOrg(name, Options{Now: func() time.Time { return labNow }})
	require.NoError(t, err)
	return l
}

func args(kv ...any) []executors.Arg {
	var out []executors.Arg
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, executors.Arg{Name: kv[i].(string), Value: kv[i+1]})
	}
	return out
}

// objects runs a cmdlet on EX01 and returns the raw objects.
func objects(t *testing.T, l *Lab, kind, cmdlet string, a []executors.Arg) []any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	items, _, err := l.org.runCmdlet("ex01.lab.contoso.com", kind, executors.Action{Cmdlet: cmdlet, Args: a})
	require.NoError(t, err, cmdlet)
	return items
}

// rows runs a cmdlet step through the executor and decodes its rows.
func rows(t *testing.T, l *Lab, kind, cmdlet string, sel []string, a ...any) []map[string]any {
	t.Helper()
	out, err := run(l, kind, cmdlet, sel, a...)
	require.NoError(t, err, "%s: %s", cmdlet, out.Stderr)
	var r []map[string]any
	require.NoError(t, json.Unmarshal(out.Stdout, &r), "%s", out.Stdout)
	return r
}

func run(l *Lab, kind, cmdlet string, sel []string, a ...any) (executors.Output, error) {
	return l.Target(kind, kind, nil).Run(context.Background(), "ex01.lab.contoso.com",
		executors.Action{Step: "s", Cmdlet: cmdlet, Args: args(a...), Select: sel})
}

// Every simulated Get- cmdlet answers objects of the Deserialized. type Exchange
// sends, with the properties playbooks select.
func TestCmdletShapes(t *testing.T) {
	l := orgLab(t, "base")
	cases := []struct {
		cmdlet, kind string
		args         []executors.Arg
		typeName     string
		props        []string
	}{
		{"Get-Queue", "exchange", nil, "Deserialized.Microsoft.Exchange.Data.QueueViewer.ExtensibleQueueInfo",
			[]string{"Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain", "LastError", "LastRetryTime", "NextRetryTime",
				"RiskLevel", "NextHopCategory", "Velocity", "IncomingRate", "OutgoingRate", "RetryCount", "TlsDomain", "NextHopConnector"}},
		{"Get-MessageTrackingLog", "exchange", nil, "Deserialized.Microsoft.Exchange.Management.TransportLogSearchTasks.MessageTrackingEvent",
			[]string{"Timestamp", "EventId", "Source", "Sender", "Recipients", "RecipientStatus", "ServerHostname", "MessageId", "MessageSubject"}},
		{"Get-ServerComponentState", "exchange", args("Identity", "EX01"), "Deserialized.Microsoft.Exchange.Management.SystemConfigurationTasks.ServerComponentStatePresentationObject",
			[]string{"ServerFqdn", "Component", "State", "LocalStates", "RemoteStates", "Identity"}},
		{"Get-TransportService", "exchange", nil, "Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.TransportServer",
			[]string{"Name", "MaxOutboundConnections", "MaxPerDomainOutboundConnections", "TransientFailureRetryInterval", "MessageExpirationTimeout"}},
		{"Get-SendConnector", "exchange", nil, "Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.SmtpSendConnectorConfig",
			[]string{"Name", "AddressSpaces", "SmartHosts", "DNSRoutingEnabled", "SourceTransportServers", "TlsCertificateName", "RequireTLS", "Enabled", "CloudServicesMailEnabled", "MaxMessageSize"}},
		{"Get-ReceiveConnector", "exchange", args("Server", "EX01"), "Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.ReceiveConnector",
			[]string{"Identity", "Bindings", "RemoteIPRanges", "AuthMechanism", "PermissionGroups", "TransportRole"}},
		{"Get-Mailbox", "exchange", nil, "Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox",
			[]string{"Name", "PrimarySmtpAddress", "ThrottlingPolicy", "Database"}},
		{"Get-ThrottlingPolicy", "exchange", nil, "Deserialized.Microsoft.Exchange.Data.Directory.Management.ThrottlingPolicy",
			[]string{"Name", "ThrottlingPolicyScope", "RecipientRateLimit", "MessageRateLimit"}},
		{"Get-ThrottlingPolicyAssociation", "exchange", nil, "Deserialized.Microsoft.Exchange.Data.Directory.Management.ThrottlingPolicyAssociation",
			[]string{"ObjectId", "ThrottlingPolicyId"}},
		{"Get-AcceptedDomain", "exchange", nil, "Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomain",
			[]string{"DomainName", "DomainType", "Default"}},
		{"Get-ExchangeServer", "exchange", nil, "Deserialized.Microsoft.Exchange.Data.Directory.Management.ExchangeServer",
			[]string{"Name", "Fqdn", "Site", "ServerRole", "AdminDisplayVersion"}},
		{"Get-Service", "jea", args("Name", "MSExchangeTransport"), "Deserialized.System.ServiceProcess.ServiceController",
			[]string{"Name", "DisplayName", "Status", "StartType"}},
		{"Test-NdrSmtpPort", "jea", args("RemoteHost", "contoso-com.mail.protection.outlook.com", "Port", int64(25)), "Deserialized.System.Management.Automation.PSCustomObject",
			[]string{"ComputerName", "RemoteHost", "RemotePort", "TcpSucceeded", "Banner", "LatencyMs", "Error"}},
	}
	for _, tc := range cases {
		t.Run(tc.cmdlet, func(t *testing.T) {
			items := objects(t, l, tc.kind, tc.cmdlet, tc.args)
			require.NotEmpty(t, items)
			for _, it := range items {
				o, ok := it.(*psobj.Object)
				require.True(t, ok)
				assert.Equal(t, tc.typeName, o.TypeNames[0])
				assert.Equal(t, "Deserialized.System.Object", o.TypeNames[len(o.TypeNames)-1])
				for _, prop := range tc.props {
					_, ok := o.Prop(prop)
					assert.True(t, ok, "%s has no %s", tc.cmdlet, prop)
				}
			}
		})
	}
}

// Exchange's value types arrive as objects with the ToString Exchange prints,
// and psobj maps them to rows.
func TestCmdletValueShapes(t *testing.T) {
	l := orgLab(t, "base")
	q := objects(t, l, "exchange", "Get-Queue", args("Identity", `EX01\7`))[0].(*psobj.Object)
	st, _ := q.Prop("Status")
	assert.Equal(t, "Ready", st.(*psobj.Object).ToString)
	assert.True(t, st.(*psobj.Object).Is("Enum"))
	id, _ := q.Prop("Identity")
	assert.Equal(t, `EX01\7`, id.(*psobj.Object).ToString)

	sc := objects(t, l, "exchange", "Get-SendConnector", args("Identity", "Internet"))[0].(*psobj.Object)
	size, _ := sc.Prop("MaxMessageSize")
	assert.Equal(t, "35 MB (36,700,160 bytes)", size.(*psobj.Object).ToString)
	span, _ := sc.Prop("ConnectionInactivityTimeOut")
	assert.Equal(t, "00:10:00", span.(*psobj.Object).ToString)
	ts := objects(t, l, "exchange", "Get-TransportService", args("Identity", "EX01"))[0].(*psobj.Object)
	exp, _ := ts.Prop("MessageExpirationTimeout")
	assert.Equal(t, "2.00:00:00", exp.(*psobj.Object).ToString)

	pol := rows(t, l, "exchange", "Get-ThrottlingPolicy", []string{"Name", "RecipientRateLimit", "ThrottlingPolicyScope"})
	require.Len(t, pol, 2)
	assert.Nil(t, pol[0]["RecipientRateLimit"])
	assert.Equal(t, true, pol[0]["RecipientRateLimit"+psobj.UnlimitedSuffix])
	assert.Equal(t, "Global", pol[0]["ThrottlingPolicyScope"])
	assert.Equal(t, 100.0, pol[1]["RecipientRateLimit"])

	conn := rows(t, l, "exchange", "Get-SendConnector", []string{"Name", "MaxMessageSize", "SmartHosts", "TlsCertificateName"})
	assert.Equal(t, 36700160.0, conn[0]["MaxMessageSize"])
	assert.Equal(t, true, conn[1]["MaxMessageSizeIsUnlimited"])
	assert.Equal(t, []any{"contoso-com.mail.protection.outlook.com"}, conn[1]["SmartHosts"])
	assert.Equal(t, "<I>CN=R11, O=Let's Encrypt, C=US<S>CN=mail.contoso.com", conn[1]["TlsCertificateName"])
}

func TestBytesString(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B (0 bytes)", 1572864: "1.5 MB (1,572,864 bytes)", 36700160: "35 MB (36,700,160 bytes)", 1023: "1023 B (1,023 bytes)"} {
		assert.Equal(t, want, bytesString(n))
		got, ok := psobj.ParseBytes(bytesString(n))
		assert.True(t, ok)
		assert.Equal(t, n, got)
	}
}

func TestCmdletParameterFiltering(t *testing.T) {
	l := orgLab(t, "overloaded-queue")
	ids := func(rs []map[string]any, key string) []any {
		var out []any
		for _, r := range rs {
			out = append(out, r[key])
		}
		return out
	}
	sel := []string{"Identity", "MessageCount"}
	cases := []struct {
		name    string
		cmdlet  string
		args    []any
		key     string
		want    []any
		wantLen int
	}{
		{"Get-Queue on the local server", "Get-Queue", nil, "Identity", []any{`EX01\Submission`, `EX01\Shadow\4`, `EX01\7`, `EX01\Poison`}, 0},
		{"Get-Queue -Server", "Get-Queue", []any{"Server", "ex02.lab.contoso.com"}, "Identity", []any{`EX02\Submission`, `EX02\Shadow\4`, `EX02\7`, `EX02\Poison`}, 0},
		{"Get-Queue -Identity", "Get-Queue", []any{"Identity", `EX02\7`}, "Identity", []any{`EX02\7`}, 0},
		{"Get-Queue -Identity Server\\NextHopDomain", "Get-Queue", []any{"Identity", `EX01\outbound to office 365`}, "Identity", []any{`EX01\7`}, 0},
		{"Get-Queue -ResultSize", "Get-Queue", []any{"ResultSize", int64(2)}, "Identity", []any{`EX01\Submission`, `EX01\Shadow\4`}, 0},
		{"a prefix of a parameter name", "Get-Queue", []any{"serv", "EX02"}, "Identity", nil, 4},
		{"Get-MessageTrackingLog -EventId", "Get-MessageTrackingLog", []any{"EventId", "FAIL"}, "EventId", nil, 20}, // every 3m from -57m to now
		{"Get-MessageTrackingLog -Start", "Get-MessageTrackingLog", []any{"EventId", "FAIL", "Start", labNow.Add(-10 * time.Minute)}, "EventId", []any{"FAIL", "FAIL", "FAIL", "FAIL"}, 0},
		{"Get-MessageTrackingLog -Start as text", "Get-MessageTrackingLog", []any{"EventId", "fail", "Start", "2026-05-15T09:50:00Z", "End", labNow}, "EventId", nil, 4},
		{"Get-MessageTrackingLog -Sender no match", "Get-MessageTrackingLog", []any{"Sender", "nobody@contoso.com"}, "EventId", nil, 0},
		{"Get-MessageTrackingLog -Server -Recipients", "Get-MessageTrackingLog", []any{"Server", "EX02", "Recipients", []any{"AP@fabrikam.com"}, "EventId", "DEFER"}, "EventId", nil, 56}, // periodic only: EX02's first stream (FAIL) is the one logged again at now
		{"Get-ServerComponentState -Component", "Get-ServerComponentState", []any{"Identity", "EX01", "Component", "hubtransport"}, "Component", []any{"HubTransport"}, 0},
		{"Get-Mailbox -Identity", "Get-Mailbox", []any{"Identity", "alice@contoso.com"}, "Name", []any{"Alice"}, 0},
		{"Get-ThrottlingPolicyAssociation -Identity", "Get-ThrottlingPolicyAssociation", []any{"Identity", "Alice"}, "ThrottlingPolicyId", []any{"LowVolumeSenders"}, 0},
		{"Get-Service with a wildcard", "Get-Service", []any{"Name", "MSExchangeTr*"}, "Name", []any{"MSExchangeTransport"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := append(sel, tc.key, "Name", "EventId", "Component", "ThrottlingPolicyId")
			rs := rows(t, l, "lab", tc.cmdlet, s, tc.args...)
			if tc.want != nil {
				assert.Equal(t, tc.want, ids(rs, tc.key))
			} else {
				assert.Len(t, rs, tc.wantLen)
			}
		})
	}
}

func TestCmdletErrors(t *testing.T) {
	l := orgLab(t, "base")
	cases := []struct {
		name, kind, cmdlet string
		args               []any
		want               string
	}{
		{"unknown cmdlet", "exchange", "Get-Quue", nil, "The term 'Get-Quue' is not recognized as the name of a cmdlet"},
		{"JEA command on Exchange's runspace", "exchange", "Restart-Service", []any{"Name", "MSExchangeTransport"}, "The term 'Restart-Service' is not recognized"},
		{"Exchange cmdlet on the JEA endpoint", "jea", "Get-Queue", nil, "The term 'Get-Queue' is not recognized"},
		{"unknown parameter", "exchange", "Get-Queue", []any{"Sevrer", "EX01"}, "A parameter cannot be found that matches parameter name 'Sevrer'."},
		{"ambiguous prefix", "exchange", "Get-MessageTrackingLog", []any{"S", "EX01"}, "Parameter cannot be processed because the parameter name 'S' is ambiguous. Possible matches include: -Server -Start -Sender"},
		{"missing mandatory parameter", "exchange", "Get-ServerComponentState", nil, "missing mandatory parameters: Identity."},
		{"wrong type", "exchange", "Get-MessageTrackingLog", []any{"Start", "yesterday"}, `Cannot bind parameter 'Start'. Cannot convert value "yesterday" to type "System.DateTime".`},
		{"unsimulated parameter", "exchange", "Get-Queue", []any{"Filter", "MessageCount -gt 100"}, "The lab does not simulate parameter 'Filter' of Get-Queue"},
		{"unknown object", "exchange", "Get-Mailbox", []any{"Identity", "zed@contoso.com"}, "The operation couldn't be performed because object 'zed@contoso.com' couldn't be found on 'dc01.lab.contoso.com'."},
		{"unknown queue", "exchange", "Retry-Queue", []any{"Identity", `EX01\99`}, `The queue "EX01\99" couldn't be found.`},
		{"ValidateSet", "exchange", "Set-ServerComponentState", []any{"Identity", "EX01", "Component", "HubTransport", "State", "Active", "Requester", "Admin"},
			`Cannot validate argument on parameter 'Requester'. The argument "Admin" does not belong to the set "HealthAPI,Maintenance,Sidelined,Functional,Deployment"`},
		{"per-domain above max", "exchange", "Set-TransportService", []any{"Identity", "EX01", "MaxPerDomainOutboundConnections", int64(2000)},
			"The value of MaxPerDomainOutboundConnections (2000) must be less than or equal to the value of MaxOutboundConnections (1000)."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(l, tc.kind, tc.cmdlet, nil, tc.args...)
			require.Error(t, err)
			assert.ErrorIs(t, err, executors.ErrExit)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, out.Stderr, tc.want)
			assert.Equal(t, 1, out.ExitCode)
		})
	}

	// Script text to a no-language runspace fails as on a server; on the legacy
	// winrm kind the lab says it simulates cmdlets, not scripts.
	for _, kind := range []string{"exchange", "jea"} {
		_, err := l.Target(kind, kind, nil).Run(context.Background(), "ex01.lab.contoso.com", executors.Action{Step: "s", Script: "Get-Queue | ConvertTo-Json"})
		require.Error(t, err, kind)
		assert.Contains(t, err.Error(), "The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode.")
	}
	_, err := l.Target("w", "winrm", nil).Run(context.Background(), "ex01.lab.contoso.com", executors.Action{Step: "s", Script: "Get-Queue | ConvertTo-Json"})
	require.ErrorContains(t, err, "the lab simulates cmdlet steps and checks, not scripts")
}

func TestReliefBehaviours(t *testing.T) {
	count := func(l *Lab, id string) (float64, string) {
		r := rows(t, l, "exchange", "Get-Queue", []string{"MessageCount", "Status"}, "Identity", id)
		return r[0]["MessageCount"].(float64), r[0]["Status"].(string)
	}
	hub := func(l *Lab, server string) map[string]any {
		return rows(t, l, "exchange", "Get-ServerComponentState", []string{"State", "LocalStates"}, "Identity", server, "Component", "HubTransport")[0]
	}
	fails := func(l *Lab, since time.Time) int {
		return len(rows(t, l, "exchange", "Get-MessageTrackingLog", []string{"EventId"}, "EventId", "FAIL", "Start", since))
	}
	restart := func(l *Lab) {
		rows(t, l, "jea", "Restart-Service", nil, "Name", "MSExchangeTransport")
	}

	t.Run("restart keeps mail.que and component state", func(t *testing.T) {
		l := orgLab(t, "component-maintenance")
		require.NoError(t, l.org.serverByID("EX01").queues[2].setCount(900))
		restart(l)
		n, _ := count(l, `EX01\7`)
		assert.Equal(t, 900.0, n)
		assert.Equal(t, "Inactive", hub(l, "EX01")["State"])
	})
	t.Run("Set-ServerComponentState changes only its requester", func(t *testing.T) {
		// Managed Availability (HealthAPI) holds EX02's HubTransport Inactive.
		l, err := ParseOrg("held.yaml", []byte("extends: base\nservers:\n  EX02:\n    components:\n      HubTransport: {Functional: Active, HealthAPI: Inactive}\n"),
			Options{Now: func() time.Time { return labNow }})
		require.NoError(t, err)
		rows(t, l, "exchange", "Set-ServerComponentState", nil, "Identity", "EX02", "Component", "HubTransport", "State", "Active", "Requester", "Maintenance")
		h := hub(l, "EX02")
		assert.Equal(t, "Inactive", h["State"], "HealthAPI still holds it")
		states := map[string]string{}
		for _, e := range h["LocalStates"].([]any) {
			m := e.(map[string]any)
			states[m["Requester"].(string)] = m["State"].(string)
		}
		assert.Equal(t, map[string]string{"Functional": "Active", "HealthAPI": "Inactive", "Maintenance": "Active"}, states)
		rows(t, l, "exchange", "Set-ServerComponentState", nil, "Identity", "EX02", "Component", "HubTransport", "State", "Active", "Requester", "HealthAPI")
		assert.Equal(t, "Active", hub(l, "EX02")["State"])
	})
	t.Run("component-maintenance: Maintenance back to Active", func(t *testing.T) {
		l := orgLab(t, "component-maintenance")
		assert.Equal(t, "Running", rows(t, l, "jea", "Get-Service", []string{"Status"}, "Name", "MSExchangeTransport")[0]["Status"])
		rows(t, l, "exchange", "Set-ServerComponentState", nil, "Identity", "EX01", "Component", "HubTransport", "State", "Active", "Requester", "Maintenance")
		assert.Equal(t, "Active", hub(l, "EX01")["State"])
	})
	t.Run("overloaded-queue: the restart drains and the failures stop", func(t *testing.T) {
		l := orgLab(t, "overloaded-queue")
		n, _ := count(l, `EX01\7`)
		assert.Equal(t, 1523.0, n)
		assert.Positive(t, fails(l, labNow.Add(-time.Hour)))
		restart(l)
		n, st := count(l, `EX01\7`)
		assert.Equal(t, 3.0, n)
		assert.Equal(t, "Ready", st)
		l.org.now = func() time.Time { return labNow.Add(10 * time.Minute) }
		assert.Zero(t, fails(l, labNow.Add(time.Second)), "no failure after the relief")
		assert.Positive(t, fails(l, labNow.Add(-time.Hour)), "the history stays in the log")
	})
	t.Run("relief-fails: the restart keeps the backlog", func(t *testing.T) {
		l := orgLab(t, "relief-fails")
		restart(l)
		n, st := count(l, `EX01\7`)
		assert.Equal(t, 1610.0, n)
		assert.Equal(t, "Retry", st)
		l.org.now = func() time.Time { return labNow.Add(10 * time.Minute) }
		assert.Positive(t, fails(l, labNow.Add(time.Second)))
	})
	t.Run("throttled-sender: only a high enough limit stops the failures", func(t *testing.T) {
		l := orgLab(t, "throttled-sender")
		later := func(d time.Duration) { l.org.now = func() time.Time { return labNow.Add(d) } }
		rows(t, l, "exchange", "Set-ThrottlingPolicy", nil, "Identity", "LowVolumeSenders", "RecipientRateLimit", int64(200), "MessageRateLimit", int64(30))
		later(30 * time.Minute)
		assert.Positive(t, fails(l, labNow), "200 is not enough")
		rows(t, l, "exchange", "Set-ThrottlingPolicy", nil, "Identity", "LowVolumeSenders", "RecipientRateLimit", "Unlimited", "MessageRateLimit", int64(30))
		n := fails(l, labNow)
		later(90 * time.Minute)
		assert.Equal(t, n, fails(l, labNow), "no new failure after Unlimited")
		pol := rows(t, l, "exchange", "Get-ThrottlingPolicy", []string{"RecipientRateLimit"}, "Identity", "LowVolumeSenders")[0]
		assert.Equal(t, true, pol["RecipientRateLimitIsUnlimited"])
	})
	t.Run("Retry-Queue: Active now; to a known destination it delivers", func(t *testing.T) {
		l := orgLab(t, "tls-cert-expired")
		rows(t, l, "exchange", "Retry-Queue", nil, "Identity", `EX01\7`)
		r := rows(t, l, "exchange", "Get-Queue", []string{"Status", "MessageCount", "NextRetryTime", "LastRetryTime"}, "Identity", `EX01\7`)[0]
		assert.Equal(t, "Active", r["Status"])
		assert.Equal(t, 318.0, r["MessageCount"])
		assert.Equal(t, "2026-05-15T10:00:00Z", r["NextRetryTime"])

		l = orgLab(t, "retry-transient")
		rows(t, l, "exchange", "Retry-Queue", nil, "Identity", `EX01\21`)
		n, st := count(l, `EX01\21`)
		assert.Equal(t, 0.0, n)
		assert.Equal(t, "Ready", st)
	})
	t.Run("Suspend-Queue and Resume-Queue", func(t *testing.T) {
		l := orgLab(t, "queue-suspended")
		_, err := run(l, "exchange", "Retry-Queue", nil, "Identity", `EX01\18`)
		require.Error(t, err, "a suspended queue is resumed, not retried")
		rows(t, l, "exchange", "Resume-Queue", nil, "Identity", `EX01\18`)
		n, st := count(l, `EX01\18`)
		assert.Equal(t, 0.0, n, "fabrikam.com takes 5 connections per domain")
		assert.Equal(t, "Ready", st)
		rows(t, l, "exchange", "Suspend-Queue", nil, "Identity", `EX01\18`)
		_, st = count(l, `EX01\18`)
		assert.Equal(t, "Suspended", st)
	})
	t.Run("Set-TransportService then Retry-Queue drains concurrency-too-high", func(t *testing.T) {
		l := orgLab(t, "concurrency-too-high")
		rows(t, l, "exchange", "Retry-Queue", nil, "Identity", `EX01\18`)
		n, st := count(l, `EX01\18`)
		assert.Equal(t, 800.0, n)
		assert.Equal(t, "Retry", st)
		rows(t, l, "exchange", "Set-TransportService", nil, "Identity", "EX01", "MaxPerDomainOutboundConnections", int64(10), "TransientFailureRetryInterval", "00:01:00")
		ts := rows(t, l, "exchange", "Get-TransportService", []string{"MaxPerDomainOutboundConnections", "TransientFailureRetryInterval"}, "Identity", "EX01")[0]
		assert.Equal(t, 10.0, ts["MaxPerDomainOutboundConnections"])
		assert.Equal(t, 60.0, ts["TransientFailureRetryInterval"])
		rows(t, l, "exchange", "Retry-Queue", nil, "Identity", `EX01\18`)
		n, _ = count(l, `EX01\18`)
		assert.Equal(t, 0.0, n)
	})
	t.Run("the lab records the cmdlet and its arguments", func(t *testing.T) {
		l := orgLab(t, "base")
		rows(t, l, "exchange", "Get-Queue", nil, "Server", "EX02")
		calls := l.Calls()
		require.Len(t, calls, 1)
		assert.Equal(t, "Get-Queue", calls[0].Cmdlet)
		assert.Equal(t, args("Server", "EX02"), calls[0].Args)
	})
}

func (q *queue) setCount(n int) error { q.MessageCount = n; return nil }

// Port 25 from a server: what the world says about the EOP endpoint.
func TestSMTPPortFromTheServer(t *testing.T) {
	ok := rows(t, orgLab(t, "base"), "jea", "Test-NdrSmtpPort", nil, "RemoteHost", "contoso-com.mail.protection.outlook.com")[0]
	assert.Equal(t, true, ok["TcpSucceeded"])
	assert.True(t, strings.HasPrefix(ok["Banner"].(string), "220 "))
	down := rows(t, orgLab(t, "network-down"), "jea", "Test-NdrSmtpPort", nil, "RemoteHost", "contoso-com.mail.protection.outlook.com", "Port", int64(25))[0]
	assert.Equal(t, false, down["TcpSucceeded"])
	assert.Contains(t, down["Error"], "did not properly respond")
}

// Get-ExchangeCertificate reads a server's store through its Microsoft
// Exchange Service Host: stopped there (hybrid-certs-unread), the call for that
// server fails and the other server still answers.
func TestExchangeCertificateServiceHostStopped(t *testing.T) {
	l := orgLab(t, "hybrid-certs-unread")
	_, err := run(l, "exchange", "Get-ExchangeCertificate", nil, "Server", "EX02")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "A special Rpc error occurs on server EX02: The RPC server is unavailable.")
	rs := rows(t, l, "exchange", "Get-ExchangeCertificate", nil, "Server", "EX01")
	assert.Len(t, rs, 4, "the three defaults and the hybrid certificate")
}

// Get-ExchangeCertificate's other parameter sets: one certificate by
// -Thumbprint (any case) or by -Identity Server\Thumbprint, -Identity refused
// beside -Server, an unknown thumbprint not found, and -DomainName keeping the
// certificates whose CN or CertificateDomains name it, a wildcard covering one
// label (Learn, Get-ExchangeCertificate).
func TestExchangeCertificateSelection(t *testing.T) {
	const (
		mail     = "7F3A9C2E51B04D6E8A1F0C3B5D7E9A2C4F6B8D01" // CN=mail.contoso.com, autodiscover.contoso.com
		ex01     = "78D83880D1F0A0BD8926D5CFCC91216C2E145C52" // CN=EX01, the server's own
		wildcard = "2B8E4F6A0C1D3E5F7A9B1C3D5E7F9A1B3C5D7E9F" // CN=*.contoso.com (hybrid-wildcard-cert)
	)
	thumbprints := func(rs []map[string]any) []any {
		var out []any
		for _, r := range rs {
			out = append(out, r["Thumbprint"])
		}
		return out
	}
	tests := []struct {
		name, org string
		args      []any
		want      []any
		err       string
	}{
		{name: "thumbprint, lower case", org: "cert-renewed-not-bound", args: []any{"Thumbprint", strings.ToLower(mail)}, want: []any{mail}},
		{name: "identity Server\\Thumbprint", org: "cert-renewed-not-bound", args: []any{"Identity", `EX01\` + mail}, want: []any{mail}},
		{name: "identity and server", org: "cert-renewed-not-bound", args: []any{"Identity", `EX01\` + mail, "Server", "EX01"},
			err: "Parameter set cannot be resolved"},
		{name: "unknown thumbprint", org: "cert-renewed-not-bound", args: []any{"Thumbprint", strings.Repeat("A", 40)}, err: "couldn't be found"},
		{name: "a SAN name", org: "cert-renewed-not-bound", args: []any{"Server", "EX01", "DomainName", "autodiscover.contoso.com"}, want: []any{mail}},
		{name: "the CN", org: "cert-renewed-not-bound", args: []any{"Server", "EX01", "DomainName", "ex01"}, want: []any{ex01}},
		{name: "wildcard, one label", org: "hybrid-wildcard-cert", args: []any{"Server", "EX01", "DomainName", "mail.contoso.com"}, want: []any{wildcard}},
		{name: "wildcard, two labels", org: "hybrid-wildcard-cert", args: []any{"Server", "EX01", "DomainName", "mail.eu.contoso.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := orgLab(t, tc.org)
			if tc.err != "" {
				_, err := run(l, "exchange", "Get-ExchangeCertificate", nil, tc.args...)
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			assert.Equal(t, tc.want, thumbprints(rows(t, l, "exchange", "Get-ExchangeCertificate", []string{"Thumbprint"}, tc.args...)))
		})
	}
}

// Set-ReceiveConnector -TlsCertificateName changes the one connector named
// (Server\Name from any server, or a name of the local one) and refuses a value
// not in the <I>issuer<S>subject form, changing nothing.
func TestSetReceiveConnectorTlsCertificateName(t *testing.T) {
	const renewal = "<I>CN=R11, O=Let's Encrypt, C=US<S>CN=mail.contoso.com"
	tests := []struct {
		name, identity, value string
		err                   string
		readBack              string // the connector read after: Server\Name
	}{
		{name: "other server by Server\\Name", identity: `EX02\Default Frontend EX02`, value: renewal, readBack: `EX02\Default Frontend EX02`},
		{name: "local by name", identity: "Default Frontend EX01", value: renewal, readBack: `EX01\Default Frontend EX01`},
		{name: "not the form", identity: `EX02\Default Frontend EX02`, value: "CN=mail.contoso.com", err: "The value is not in the form <I>issuer<S>subject.",
			readBack: `EX02\Default Frontend EX02`},
		{name: "unknown connector", identity: `EX02\Default Frontend EX09`, value: renewal, err: `couldn't be found`, readBack: `EX02\Default Frontend EX02`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := orgLab(t, "cert-renewed-not-bound")
			_, err := run(l, "exchange", "Set-ReceiveConnector", nil, "Identity", tc.identity, "TlsCertificateName", tc.value)
			want := "<I>CN=R3, O=Let's Encrypt, C=US<S>CN=mail.contoso.com"
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
			} else {
				require.NoError(t, err)
				want = tc.value
			}
			rs := rows(t, l, "exchange", "Get-ReceiveConnector", []string{"TlsCertificateName"}, "Identity", tc.readBack)
			require.Len(t, rs, 1)
			assert.Equal(t, want, rs[0]["TlsCertificateName"])
		})
	}
}
