package lab

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/exo"
)

// runEXOStep runs a cmdlet step on the lab's exo target, as the engine does.
func runEXOStep(l *Lab, cmdlet string, sel []string, a ...any) (executors.Output, error) {
	return l.Target("exo", "exo", nil).Run(context.Background(), Tenant,
		executors.Action{Step: "s", Cmdlet: cmdlet, Args: args(a...), Select: sel})
}

func exoRows(t *testing.T, l *Lab, cmdlet string, sel []string, a ...any) []map[string]any {
	t.Helper()
	out, err := runEXOStep(l, cmdlet, sel, a...)
	require.NoError(t, err, "%s: %s", cmdlet, out.Stderr)
	var r []map[string]any
	require.NoError(t, json.Unmarshal(out.Stdout, &r))
	return r
}

// blockedOrg restricts two senders, one for good and one for today.
const blockedOrg = `extends: base
tenant:
  blocked_senders:
    j.smith@contoso.com: {Reason: 'Outbound spam', BlockType: Outbound, CreatedDatetime: -4h}
    k.lee@contoso.com: {Reason: 'Recipient limit', CreatedDatetime: -1h, TemporaryBlock: true, ExpireDatetime: +23h}
`

// orgFrom builds a lab from an organisation file's text (extends: base finds
// the built-in base).
func orgFrom(t *testing.T, text string) *Lab {
	t.Helper()
	l, err := ParseOrg("test.yaml", []byte(text), Options{Now: func() time.Time { return labNow }})
	require.NoError(t, err)
	return l
}

// The lab's Exchange Online cmdlets and the exo kind's descriptions agree:
// every property a row carries is described, every parameter the lab binds is
// one the description names, and the lab takes the route the executor takes
// (the Admin API for the cmdlets whose description names its endpoint).
func TestEXOShapesAreDescribed(t *testing.T) {
	described := map[string]executors.Command{}
	for _, c := range exo.Commands() {
		described[c.Name] = c
	}
	l := orgLab(t, "base")
	for _, c := range exoCmdlets() {
		if !strings.HasPrefix(c.name, "Get-") {
			continue // the exo kind describes reads; a relief's cmdlet is open
		}
		t.Run(c.name, func(t *testing.T) {
			d, ok := described[c.name]
			require.True(t, ok, "%s is simulated but not described", c.name)
			names := slices.Clone(c.unsimulated)
			for _, pr := range c.params {
				names = append(names, pr.name)
			}
			for _, n := range names {
				_, found, _ := d.Param(n)
				assert.True(t, found, "-%s is not described", n)
			}
			adminAPI := strings.Contains(d.Source, "Admin API endpoint")
			assert.Equal(t, adminAPI, c.admin != nil, "the route: the description says Admin API %v", adminAPI)
			rows := exoRows(t, l, c.name, nil)
			if c.name == "Get-BlockedSenderAddress" { // nobody is blocked in base
				rows = exoRows(t, orgFrom(t, blockedOrg), c.name, nil)
			}
			require.NotEmpty(t, rows)
			for _, r := range rows {
				for name := range r {
					assert.Contains(t, d.Fields, name, "%s writes %s", c.name, name)
				}
				assert.Contains(t, r, exo.RouteField)
			}
		})
	}
}

func TestEXOCmdlets(t *testing.T) {
	l := orgLab(t, "base")
	tests := []struct {
		name   string
		cmdlet string
		args   []any
		sel    []string
		check  func(t *testing.T, rows []map[string]any)
		route  exo.Route
	}{
		{"accepted domains", "Get-AcceptedDomain", nil, []string{"DomainName", "DomainType", "Default"},
			func(t *testing.T, rows []map[string]any) {
				require.Len(t, rows, 3)
				assert.Equal(t, map[string]any{"DomainName": "contoso.com", "DomainType": "Authoritative", "Default": true, exo.RouteField: "AdminAPI"}, rows[0])
			}, exo.RouteAdminAPI},
		{"one accepted domain", "Get-AcceptedDomain", []any{"Identity", "contoso.onmicrosoft.com"}, []string{"DomainName"},
			func(t *testing.T, rows []map[string]any) { require.Len(t, rows, 1) }, exo.RouteAdminAPI},
		{"a cloud mailbox", "Get-Mailbox", []any{"Identity", "dana@contoso.com"}, []string{"PrimarySmtpAddress", "RecipientTypeDetails", "ForwardingSmtpAddress", "DeliverToMailboxAndForward"},
			func(t *testing.T, rows []map[string]any) {
				assert.Equal(t, []map[string]any{{"PrimarySmtpAddress": "dana@contoso.com", "RecipientTypeDetails": "UserMailbox",
					"ForwardingSmtpAddress": nil, "DeliverToMailboxAndForward": false, exo.RouteField: "AdminAPI"}}, rows)
			}, exo.RouteAdminAPI},
		{"every cloud mailbox", "Get-Mailbox", []any{"ResultSize", "Unlimited"}, []string{"Alias"},
			func(t *testing.T, rows []map[string]any) { assert.Len(t, rows, 4) }, exo.RouteAdminAPI},
		{"the outbound spam policy", "Get-HostedOutboundSpamFilterPolicy", nil, nil,
			func(t *testing.T, rows []map[string]any) {
				require.Len(t, rows, 1)
				assert.Equal(t, "Default", rows[0]["Name"])
				assert.Equal(t, true, rows[0]["IsDefault"])
				assert.EqualValues(t, 0, rows[0]["RecipientLimitExternalPerHour"])
				assert.Equal(t, "BlockUserForToday", rows[0]["ActionWhenThresholdReached"])
			}, exo.RouteInvokeCommand},
		{"nobody blocked", "Get-BlockedSenderAddress", nil, nil,
			func(t *testing.T, rows []map[string]any) { assert.Empty(t, rows) }, exo.RouteInvokeCommand},
		{"the hybrid inbound connector", "Get-InboundConnector", nil, []string{"Identity", "ConnectorType", "TlsSenderCertificateName", "SenderDomains", "Enabled"},
			func(t *testing.T, rows []map[string]any) {
				require.Len(t, rows, 1)
				assert.Equal(t, "OnPremises", rows[0]["ConnectorType"])
				assert.Equal(t, "mail.contoso.com", rows[0]["TlsSenderCertificateName"])
				assert.Equal(t, []any{"smtp:*;1"}, rows[0]["SenderDomains"])
				assert.Equal(t, true, rows[0]["Enabled"])
			}, exo.RouteInvokeCommand},
		{"the hybrid outbound connector", "Get-OutboundConnector", nil, []string{"SmartHosts", "TlsSettings", "TlsDomain", "WhenChanged"},
			func(t *testing.T, rows []map[string]any) {
				require.Len(t, rows, 1)
				assert.Equal(t, []any{"mail.contoso.com"}, rows[0]["SmartHosts"])
				assert.Equal(t, "DomainValidation", rows[0]["TlsSettings"])
				assert.Equal(t, labNow.Add(-120*24*time.Hour).Format(time.RFC3339), rows[0]["WhenChanged"])
			}, exo.RouteInvokeCommand},
		{"message trace: the last 48 hours by default, newest first", "Get-MessageTraceV2", nil, []string{"Received", "SenderAddress", "Status"},
			func(t *testing.T, rows []map[string]any) {
				assert.Len(t, rows, 24+12+11+5)
				for i := 1; i < len(rows); i++ {
					assert.GreaterOrEqual(t, rows[i-1]["Received"], rows[i]["Received"])
				}
			}, exo.RouteInvokeCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runEXOStep(l, tt.cmdlet, tt.sel, tt.args...)
			require.NoError(t, err, out.Stderr)
			assert.Contains(t, out.Stderr, "route: "+string(tt.route))
			var rows []map[string]any
			require.NoError(t, json.Unmarshal(out.Stdout, &rows))
			for _, r := range rows {
				assert.Equal(t, string(tt.route), r[exo.RouteField])
			}
			tt.check(t, rows)
		})
	}

	t.Run("an unknown identity", func(t *testing.T) {
		out, err := runEXOStep(l, "Get-InboundConnector", nil, "Identity", "Inbound from nowhere")
		require.ErrorIs(t, err, executors.ErrExit)
		assert.Contains(t, out.Stderr, "ManagementObjectNotFoundException")
		assert.Contains(t, err.Error(), "object 'Inbound from nowhere' couldn't be found")
	})
	t.Run("an unsimulated cmdlet", func(t *testing.T) {
		_, err := runEXOStep(l, "Get-InboxRule", nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "does not simulate Get-InboxRule on an Exchange Online target")
	})
	t.Run("a mailbox that is not in Exchange Online", func(t *testing.T) {
		// alice's mailbox is on-premises: Exchange Online has none of hers.
		_, err := runEXOStep(l, "Get-Mailbox", nil, "Identity", "alice@contoso.com")
		require.ErrorIs(t, err, executors.ErrExit)
		assert.Contains(t, err.Error(), "object 'alice@contoso.com' couldn't be found")
	})
	t.Run("an unsimulated parameter takes the route it would", func(t *testing.T) {
		out, err := runEXOStep(l, "Get-Mailbox", nil, "Filter", "ForwardingSmtpAddress -ne $null")
		require.Error(t, err)
		assert.Contains(t, out.Stderr, "route: InvokeCommand")
		assert.Contains(t, err.Error(), "does not simulate parameter 'Filter'")
	})
	t.Run("an on-premises cmdlet", func(t *testing.T) {
		_, err := runEXOStep(l, "Get-Queue", nil)
		require.Error(t, err)
	})
	t.Run("checks are refused", func(t *testing.T) {
		_, err := l.Target("exo", "exo", nil).Run(context.Background(), Tenant, executors.Action{Step: "s", Check: "service_health"})
		require.ErrorIs(t, err, executors.ErrUnsupported)
	})
	t.Run("the one host is the tenant", func(t *testing.T) {
		assert.Equal(t, []string{Tenant}, l.Target("exo", "exo", nil).Hosts())
	})
}

// Without the module's endpoint (allow_module_endpoint off) the Admin API
// cmdlets answer and the others fail as the exo executor fails them: the
// evidence is missing, and the error says what would allow it.
func TestEXOModuleEndpointOff(t *testing.T) {
	l := orgFrom(t, "extends: base\ntenant: {allow_module_endpoint: false}\n")
	rows := exoRows(t, l, "Get-AcceptedDomain", []string{"DomainName"})
	assert.Len(t, rows, 3)
	for _, cmdlet := range []string{"Get-MessageTraceV2", "Get-BlockedSenderAddress", "Get-HostedOutboundSpamFilterPolicy",
		"Get-InboundConnector", "Get-OutboundConnector"} {
		out, err := runEXOStep(l, cmdlet, nil)
		require.Error(t, err, cmdlet)
		assert.ErrorIs(t, err, exo.ErrModuleEndpointOff)
		assert.ErrorIs(t, err, executors.ErrUnsupported)
		assert.NotErrorIs(t, err, executors.ErrExit, "a refusal before anything ran")
		for _, w := range []string{cmdlet + ": the Exchange Online Admin API has no endpoint for it",
			"InvokeCommand endpoint of the Exchange Online PowerShell V3 module", "set targets.exo.allow_module_endpoint: true"} {
			assert.Contains(t, out.Stderr, w, cmdlet)
		}
	}
}

func TestMessageTraceV2(t *testing.T) {
	l := orgFrom(t, `extends: base
tenant:
  message_trace:
    - {Received: -3h, count: 5, every: 10m, SenderAddress: j.smith@contoso.com, RecipientAddress: 'r{n}@fabrikam.com',
       Subject: 'Invoice {n} overdue', Status: Failed, MessageId: '<{n}.burst@contoso.com>'}
    - {Received: -20m, count: 10, every: 10m, SenderAddress: j.smith@contoso.com, RecipientAddress: 'late{n}@fabrikam.com'}
    - {Received: -12d, SenderAddress: old@contoso.com, RecipientAddress: x@fabrikam.com}
`)
	sel := []string{"Received", "SenderAddress", "RecipientAddress", "Subject", "Status", "MessageId"}
	at := func(d time.Duration) string { return labNow.Add(d).Format(time.RFC3339) }
	tests := []struct {
		name       string
		args       []any
		recipients []string
		err        string
		warning    string
	}{
		{"a sender", []any{"SenderAddress", "j.smith@contoso.com"},
			[]string{"late3@fabrikam.com", "late2@fabrikam.com", "late1@fabrikam.com", "r5@fabrikam.com", "r4@fabrikam.com", "r3@fabrikam.com", "r2@fabrikam.com", "r1@fabrikam.com"}, "", ""},
		{"by status", []any{"Status", []any{"Failed"}, "ResultSize", int64(2)}, []string{"r5@fabrikam.com", "r4@fabrikam.com"}, "", "More results are available"},
		{"a subject that starts so", []any{"Subject", "invoice 3", "SubjectFilterType", "StartsWith"}, []string{"r3@fabrikam.com"}, "", ""},
		{"a subject that contains", []any{"Subject", "overdue", "ResultSize", int64(1)}, []string{"r5@fabrikam.com"}, "", "More results"},
		{"a message id", []any{"MessageId", "<2.burst@contoso.com>"}, []string{"r2@fabrikam.com"}, "", ""},
		{"a window", []any{"StartDate", at(-3 * time.Hour), "EndDate", at(-2*time.Hour - 30*time.Minute)},
			[]string{"r4@fabrikam.com", "r3@fabrikam.com", "r2@fabrikam.com", "r1@fabrikam.com"}, "", ""},
		{"older than 90 days", []any{"StartDate", at(-91 * 24 * time.Hour), "EndDate", at(-85 * 24 * time.Hour)}, nil, "more than 90 days ago", ""},
		{"more than 10 days", []any{"StartDate", at(-11 * 24 * time.Hour), "EndDate", at(0)}, nil, "more than 10 days", ""},
		{"end before start", []any{"StartDate", at(0), "EndDate", at(-time.Hour)}, nil, "must be earlier", ""},
		{"ResultSize too big", []any{"ResultSize", int64(5001)}, nil, "from 1 to 5000", ""},
		{"unsimulated paging", []any{"StartingRecipientAddress", "r1@fabrikam.com"}, nil, "does not simulate parameter 'StartingRecipientAddress'", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runEXOStep(l, "Get-MessageTraceV2", sel, tt.args...)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err, out.Stderr)
			var rows []map[string]any
			require.NoError(t, json.Unmarshal(out.Stdout, &rows))
			var got []string
			for _, r := range rows {
				got = append(got, r["RecipientAddress"].(string))
			}
			assert.Equal(t, tt.recipients, got)
			if tt.warning != "" {
				assert.Contains(t, out.Stderr, tt.warning)
			} else {
				assert.NotContains(t, out.Stderr, "WARNING")
			}
		})
	}
	t.Run("a run of rows is numbered and ends at the lab's clock", func(t *testing.T) {
		rows := exoRows(t, l, "Get-MessageTraceV2", sel, "SenderAddress", "j.smith@contoso.com", "Status", "Failed")
		require.Len(t, rows, 5)
		last := rows[0]
		assert.Equal(t, "Invoice 5 overdue", last["Subject"])
		assert.Equal(t, "<5.burst@contoso.com>", last["MessageId"])
		assert.Equal(t, at(-3*time.Hour+40*time.Minute), last["Received"])
		// -20m every 10m: -20m, -10m, now; the rest would be in the future.
		late := exoRows(t, l, "Get-MessageTraceV2", sel, "RecipientAddress", []any{"late3@fabrikam.com", "late4@fabrikam.com"})
		require.Len(t, late, 1)
		assert.Equal(t, "Delivered", late[0]["Status"], "the default status")
	})
}

// Remove-BlockedSenderAddress lifts one sender's restriction; the list says so
// at once (the service may take longer: not simulated).
func TestRemoveBlockedSenderAddress(t *testing.T) {
	l := orgFrom(t, blockedOrg)
	before := exoRows(t, l, "Get-BlockedSenderAddress", []string{"SenderAddress"})
	require.NotEmpty(t, before)
	addr := before[0]["SenderAddress"].(string)
	_, err := runEXOStep(l, "Remove-BlockedSenderAddress", nil, "SenderAddress", addr)
	require.NoError(t, err)
	assert.Empty(t, exoRows(t, l, "Get-BlockedSenderAddress", nil, "SenderAddress", addr))
	assert.Len(t, exoRows(t, l, "Get-BlockedSenderAddress", nil), len(before)-1)
	_, err = runEXOStep(l, "Remove-BlockedSenderAddress", nil, "SenderAddress", addr)
	require.Error(t, err, "not blocked any more")
	_, err = runEXOStep(l, "Remove-BlockedSenderAddress", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing mandatory parameters: SenderAddress")
}

// A mistake in the tenant's Exchange Online section fails the load with the
// place and what is allowed.
func TestEXOOrgErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"domain type", "tenant: {accepted_domains: {contoso.com: {DomainType: Relay}}}", `DomainType "Relay" is not one of Authoritative, InternalRelay, ExternalRelay`},
		{"threshold action", "tenant: {outbound_spam_policies: {Default: {ActionWhenThresholdReached: Block}}}", `ActionWhenThresholdReached "Block" is not one of Alert, BlockUserForToday, BlockUser`},
		{"recipient limit", "tenant: {outbound_spam_policies: {Default: {RecipientLimitPerDay: 20000}}}", "0 (the service's default) to 10000"},
		{"connector type", "tenant: {inbound_connectors: {X: {ConnectorType: Hybrid}}}", `ConnectorType "Hybrid" is not one of OnPremises, Partner`},
		{"tls settings", "tenant: {outbound_connectors: {X: {TlsSettings: Strict}}}", `TlsSettings "Strict" is not one of`},
		{"blocked sender key", "tenant: {blocked_senders: {j.smith: {Reason: x}}}", "the key is the sender's address"},
		{"trace status", "tenant: {message_trace: [{SenderAddress: a@b.c, RecipientAddress: d@e.f, Status: Bounced}]}", `Status "Bounced" is not one of`},
		{"trace run without every", "tenant: {message_trace: [{SenderAddress: a@b.c, RecipientAddress: d@e.f, count: 3}]}", "needs every"},
		{"trace without sender", "tenant: {message_trace: [{RecipientAddress: d@e.f}]}", "SenderAddress and RecipientAddress are required"},
		{"unknown key", "tenant: {blocked_senders: {a@b.c: {Reson: x}}}", `unknown key "Reson"`},
		{"mailbox key", "tenant: {mailboxes: {dana: {}}}", "the key is its primary SMTP address"},
		{"mailbox type", "tenant: {mailboxes: {x@contoso.com: {RecipientTypeDetails: MailUser}}}", `RecipientTypeDetails "MailUser" is not one of`},
		{"forwarding", "tenant: {mailboxes: {x@contoso.com: {ForwardingSmtpAddress: y@fabrikam.com}}}", "ForwardingSmtpAddress is written smtp:<address>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseOrg("bad.yaml", []byte("extends: base\n"+tt.text+"\n"), Options{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "lab: "), err.Error())
			assert.False(t, errors.Is(err, executors.ErrExit))
		})
	}
}

func TestBlockedSenders(t *testing.T) {
	l := orgFrom(t, blockedOrg)
	rows := exoRows(t, l, "Get-BlockedSenderAddress", nil)
	require.Len(t, rows, 2)
	assert.Equal(t, map[string]any{"SenderAddress": "j.smith@contoso.com", "Reason": "Outbound spam", "BlockType": "Outbound",
		"CreatedDatetime": labNow.Add(-4 * time.Hour).Format(time.RFC3339), "ChangedDatetime": labNow.Add(-4 * time.Hour).Format(time.RFC3339),
		"TemporaryBlock": false, "ExpireDatetime": nil, exo.RouteField: "InvokeCommand"}, rows[0])
	assert.Equal(t, labNow.Add(23*time.Hour).Format(time.RFC3339), rows[1]["ExpireDatetime"])
	one := exoRows(t, l, "Get-BlockedSenderAddress", []string{"SenderAddress"}, "SenderAddress", "K.Lee@contoso.com")
	assert.Equal(t, []map[string]any{{"SenderAddress": "k.lee@contoso.com", exo.RouteField: "InvokeCommand"}}, one)
	assert.Empty(t, exoRows(t, l, "Get-BlockedSenderAddress", nil, "SenderAddress", "alice@contoso.com"), "not blocked: no row, no error")
}
