package playbooks

import (
	"regexp"
	"strings"
	"sync"
)

// Classifications every playbook reads the same way, offered to expressions as
// functions so the knowledge lives in one place, with its table of samples in
// classify_test.go.
func classifiers() map[string]any {
	return map[string]any{
		"smtpClass":  smtpClass,
		"queueKind":  queueKind,
		"certCovers": certCovers,
	}
}

// certCovers reports whether a certificate whose names (its subject's CN and
// CertificateDomains) are names satisfies what a connector expects of it
// (expected: a TlsSenderCertificateName, a TlsDomain). The one rule every
// playbook uses:
//   - the same name, ignoring case;
//   - a connector's "*.contoso.com" means the domain and all its subdomains
//     (Learn, Set-InboundConnector -TlsSenderCertificateName and
//     Set-OutboundConnector -TlsDomain): contoso.com, mail.contoso.com,
//     a.b.contoso.com, and a certificate's own *.contoso.com;
//   - a certificate's "*.contoso.com" covers one label below contoso.com
//     (mail.contoso.com, not contoso.com nor a.mail.contoso.com: RFC 6125
//     §6.4.3, and the lab's Get-ExchangeCertificate -DomainName).
//
// A name or expectation that is not a string (nil) covers nothing.
func certCovers(names any, expected any) bool {
	e, _ := expected.(string)
	e = strings.ToLower(strings.TrimSpace(e))
	if e == "" {
		return false
	}
	var list []string
	switch v := names.(type) {
	case []any:
		for _, n := range v {
			if s, ok := n.(string); ok {
				list = append(list, s)
			}
		}
	case []string:
		list = v
	case string:
		list = []string{v}
	}
	domain, anySub := strings.CutPrefix(e, "*.")
	for _, n := range list {
		n = strings.ToLower(strings.TrimSpace(n))
		switch {
		case n == "":
		case n == e:
			return true
		case anySub && (n == domain || strings.HasSuffix(n, "."+domain)):
			return true
		case !anySub && strings.HasPrefix(n, "*."):
			label, parent, ok := strings.Cut(e, ".")
			if ok && label != "" && parent == n[2:] {
				return true
			}
		}
	}
	return false
}

// smtpErrorClasses are tried in order, most specific first: "451 4.4.0 … responded
// with 421 4.4.2 Connection dropped" is our failed connection, not the remote's
// 4.4.0; "454 4.7.5 certificate" is TLS, not a 4.7.x policy refusal; "4.7.0 too
// many connections" is throttling. Codes per RFC
// 3463 and Microsoft Learn "Email non-delivery reports and SMTP errors in Exchange
// Online" / "DSNs and NDRs in Exchange Server".
var smtpErrorClasses = sync.OnceValue(func() []smtpErrorClass {
	return []smtpErrorClass{
		// TLS: 454 4.7.5 (the connector's certificate not found), 4.7.4 TLS not
		// available, STARTTLS/certificate failures.
		{"tls", regexp.MustCompile(`\b4\.7\.[45]\b|certificate|\btls\b|starttls`)},
		// The remote limits our connections: 4.3.2, 4.7.x "too many connections".
		{"throttled", regexp.MustCompile(`\b4\.3\.2\b|too many (connections|concurrent)|concurrent connections|connection limit|too many (messages|recipients)`)},
		// The remote refuses us by reputation or policy: 5.7.x, 4.7.x, blocklists —
		// before "connect": a remote's "421 4.7.0 Connection refused, … listed at
		// zen.spamhaus.org" is a refusal by reputation, not a failed connection.
		{"reputation", regexp.MustCompile(`\b5\.7\.\d{1,3}\b|\b4\.7\.\d{1,3}\b|blocked|block ?list|blacklist|listed (at|on|in)|reputation|spamhaus|spamcop`)},
		// A connection our own server could not make or keep: 4.4.1 connection timed
		// out, 4.4.2 connection dropped, 421 4.2.1 unable to connect, socket errors.
		{"connect", regexp.MustCompile(`\b4\.4\.[12]\b|421 4\.2\.1|unable to connect|socket ?error|connection (timed out|dropped|refused|was closed)|failed to connect|actively refused`)},
		// DNS: the MX or host lookup failed (SMTPSEND.DNS…, 4.4.0 DNS query failed).
		{"dns", regexp.MustCompile(`\bdns\b|smtpsend\.dns|non-?existent ?domain|mx record|could not resolve`)},
		// The remote's own unavailability: 5.5.4 / 4.4.0 service unavailable.
		{"unavailable", regexp.MustCompile(`\b5\.5\.4\b|\b4\.4\.0\b|service (temporarily )?unavailable`)},
	}
})

type smtpErrorClass struct {
	class string
	re    *regexp.Regexp
}

// smtpClass names what a queue's LastError (or any SMTP reply text) says:
// tls, connect, dns, throttled, reputation, unavailable, other; nil when there
// is no error.
func smtpClass(text any) any {
	s, _ := text.(string)
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return nil
	}
	for _, c := range smtpErrorClasses() {
		if c.re.MatchString(s) {
			return c.class
		}
	}
	return "other"
}

// queueKind names what a Get-Queue row is, by its DeliveryType and the system
// queues' names (Microsoft Learn "Queues and messages in queues in Exchange
// Server"): shadow, safety-net, poison, submission, unreachable, delivery (toward
// a next hop outside the organisation's transport) or internal.
func queueKind(row any) any {
	q, _ := row.(map[string]any)
	str := func(k string) string { s, _ := q[k].(string); return s }
	id, hop, dt := str("Identity"), strings.ToLower(str("NextHopDomain")), str("DeliveryType")
	switch {
	case dt == "ShadowRedundancy" || strings.Contains(id, `\Shadow\`):
		return "shadow"
	case hop == "safety net" || strings.HasSuffix(id, `\Safety Net`) || strings.HasSuffix(id, `\SafetyNet`):
		return "safety-net"
	case strings.HasSuffix(id, `\Poison`):
		return "poison"
	case strings.HasSuffix(id, `\Submission`):
		return "submission"
	case strings.HasSuffix(id, `\Unreachable`):
		return "unreachable"
	case dt == "SmartHostConnectorDelivery" || dt == "DnsConnectorDelivery" || dt == "NonSmtpGatewayDelivery":
		return "delivery"
	default:
		return "internal"
	}
}
