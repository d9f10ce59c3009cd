package playbooks

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// LastError texts as Get-Queue shows them. Shapes from Microsoft Learn ("Email
// non-delivery reports and SMTP errors in Exchange Online", "Fix email delivery
// issues for error code 451 4.4.0 / 4.4.7 / 5.7.x", "Queues and messages in queues
// in Exchange Server") and RFC 3463; written here, not captured from a server.
func TestSMTPClass(t *testing.T) {
	tests := []struct {
		text string
		want any
	}{
		{"", nil},
		{`454 4.7.5 The certificate specified in TlsCertificateName of the SendConnector could not be found.`, "tls"},
		{`451 4.4.0 Primary target IP address responded with: "454 4.7.5 Certificate validation failure." Attempted failover to alternate host, but that did not succeed.`, "tls"},
		{`451 4.4.0 Primary target IP address responded with: "421 4.4.2 Connection dropped due to SocketError." Attempted failover to alternate host, but that did not succeed.`, "connect"},
		{`451 4.4.0 Primary target IP address responded with: "421 4.4.1 Connection timed out." Attempted failover to alternate host, but that did not succeed.`, "connect"},
		{`421 4.2.1 Unable to connect. Attempted failover to alternate host, but that did not succeed.`, "connect"},
		{`451 4.4.0 DNS query failed. The error was: SMTPSEND.DNS.NonExistentDomain; nonexistent domain`, "dns"},
		{`451 4.4.0 Primary target IP address responded with: "421 4.3.2 Service not available, too many connections"`, "throttled"},
		{`421 4.7.0 Too many concurrent connections from this IP`, "throttled"},
		{`550 5.7.1 Service unavailable; Client host [203.0.113.25] blocked using Spamhaus`, "reputation"},
		{`451 4.7.500 Server busy. Please try again later from [203.0.113.25]. (S77719)`, "reputation"},
		{`451 4.4.0 Primary target IP address responded with: "451 5.5.4 Service Unavailable" Attempted failover to alternate host, but that did not succeed.`, "unavailable"},
		{`451 4.4.0 Service Temporarily Unavailable`, "unavailable"},
		{`451 4.4.0 Primary target IP address responded with: "421 4.7.0 Connection refused, 203.0.113.25 is listed at zen.spamhaus.org" Attempted failover to alternate host, but that did not succeed.`, "reputation"},
		{`451 4.4.0 Primary target IP address responded with: "No connection could be made because the target machine actively refused it 198.51.100.10:25."`, "connect"},
		{`452 4.3.1 Insufficient system resources`, "other"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, smtpClass(tc.text), tc.text)
	}
	assert.Nil(t, smtpClass(nil), "a queue without an error")
}

// Get-Queue rows by what they are (Exchange 2019 system queues and delivery types).
func TestQueueKind(t *testing.T) {
	row := func(id, dt, hop string) map[string]any {
		return map[string]any{"Identity": id, "DeliveryType": dt, "NextHopDomain": hop}
	}
	tests := []struct {
		row  map[string]any
		want string
	}{
		{row(`EX01\Submission`, "Undefined", "Submission"), "submission"},
		{row(`EX01\Poison`, "Undefined", "Poison Message"), "poison"},
		{row(`EX01\Unreachable`, "Unreachable", "Unreachable Domain"), "unreachable"},
		{row(`EX01\Shadow\4`, "ShadowRedundancy", "ex02.contoso.com"), "shadow"},
		{row(`EX01\Safety Net`, "Undefined", "Safety Net"), "safety-net"},
		{row(`EX01\7`, "SmartHostConnectorDelivery", "outbound to office 365 - 5e6f7a8b"), "delivery"},
		{row(`EX01\21`, "DnsConnectorDelivery", "fabrikam.com"), "delivery"},
		{row(`EX01\3`, "SmtpRelayToMailboxDeliveryGroup", "site:default-first-site-name; version:15"), "internal"},
		{row(`EX01\5`, "SmtpDeliveryToMailbox", "mailbox database 0123"), "internal"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, queueKind(tc.row), "%v", tc.row)
	}
}

// What a certificate's names satisfy of a connector's expected name: the
// connector's wildcard as Learn's Set-InboundConnector -TlsSenderCertificateName
// and Set-OutboundConnector -TlsDomain describe it ("a domain and all
// subdomains"), the certificate's as RFC 6125 §6.4.3 (one label).
func TestCertCovers(t *testing.T) {
	tests := []struct {
		name     string
		names    any
		expected any
		want     bool
	}{
		{"same name", []any{"mail.contoso.com", "autodiscover.contoso.com"}, "mail.contoso.com", true},
		{"case ignored", []any{"Mail.Contoso.com"}, "MAIL.contoso.COM", true},
		{"other name", []any{"mail.contoso.com"}, "smtp.contoso.com", false},
		{"expected wildcard: a subdomain", []any{"mail.contoso.com"}, "*.contoso.com", true},
		{"expected wildcard: deeper subdomain", []any{"mail.eu.contoso.com"}, "*.contoso.com", true},
		{"expected wildcard: the domain itself", []any{"contoso.com"}, "*.contoso.com", true},
		{"expected wildcard: a wildcard certificate", []any{"*.contoso.com"}, "*.contoso.com", true},
		{"expected wildcard: another domain", []any{"mail.fabrikam.com"}, "*.contoso.com", false},
		{"expected wildcard: a suffix that is not a label", []any{"mailcontoso.com"}, "*.contoso.com", false},
		{"certificate wildcard: one label", []any{"*.contoso.com"}, "mail.contoso.com", true},
		{"certificate wildcard: not two labels", []any{"*.contoso.com"}, "mail.eu.contoso.com", false},
		{"certificate wildcard: not the domain", []any{"*.contoso.com"}, "contoso.com", false},
		{"nil name skipped", []any{nil, "mail.contoso.com"}, "mail.contoso.com", true},
		{"only nil", []any{nil}, "*.contoso.com", false},
		{"no names", nil, "mail.contoso.com", false},
		{"nothing expected", []any{"mail.contoso.com"}, nil, false},
		{"empty expected", []any{""}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, certCovers(tc.names, tc.expected))
		})
	}
}
