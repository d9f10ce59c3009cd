package probe

import (
	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
)

// Describe is the probe kind: checks only, each reading its subject from the
// action's parameters or the target's endpoints, with the rows of Run's result
// types. Run's switch and this list name the same checks (TestDescribeMatchesRun).
func Describe() executors.Kind {
	domain := executors.Param{Name: "domain", Type: "domain", Required: true}
	starttls := executors.Param{Name: "starttls", Type: "bool"}
	return executors.Kind{
		Name:   Kind,
		Config: Config(),
		Checks: []executors.Check{
			{Name: CheckSMTP, Doc: "SMTP dialogue with each endpoint: banner, EHLO, optional STARTTLS, QUIT",
				Params: []executors.Param{starttls}, Fields: executors.RowFields(SMTPResult{})},
			{Name: CheckTCP, Doc: "TCP connect to each endpoint",
				Fields: executors.RowFields(TCPResult{})},
			{Name: CheckMX, Doc: "MX records of a domain, or the lookup's failure",
				Params: []executors.Param{domain}, Fields: executors.RowFields(MXRecord{}, DNSStatus{})},
			{Name: CheckDNS, Doc: "A, AAAA and SPF of a domain",
				Params: []executors.Param{domain}, Fields: executors.RowFields(DNSResult{})},
			{Name: CheckDNSBL, Doc: "DNSBL listings of IP addresses (RFC 5782), one row per address and zone",
				Params: []executors.Param{{Name: "ips", Type: "list"}, {Name: "ip", Type: "ip"}, {Name: "zones", Type: "list"}},
				OneOf:  [][]string{{"ips", "ip"}}, Fields: executors.RowFields(DNSBLRow{})},
			{Name: CheckSMTPMX, Doc: "SMTP probe of a domain's best MX hosts",
				Params: []executors.Param{domain, {Name: "max_hosts", Type: "int"}, starttls},
				Fields: executors.RowFields(MXProbe{})},
			{Name: CheckSPF, Doc: "the domain's SPF record as a receiver evaluates it (RFC 7208): count, terms, all qualifier, includes followed, DNS lookups against the limit of 10",
				Params: []executors.Param{domain}, Fields: executors.RowFields(SPFResult{})},
			{Name: CheckDMARC, Doc: "the DMARC policy at _dmarc.<domain> (RFC 7489): p, sp, pct, rua/ruf, alignment",
				Params: []executors.Param{domain}, Fields: executors.RowFields(DMARCResult{})},
			{Name: CheckDKIM, Doc: "DKIM keys at <selector>._domainkey.<domain> (RFC 6376), one row per selector; selector1 and selector2 (Exchange Online's) by default",
				Params: []executors.Param{domain, {Name: "selectors", Type: "list"}}, Fields: executors.RowFields(DKIMKey{})},
		},
		New: func(name string, t config.Target, _ executors.Env) (executors.Executor, error) {
			return New(name, t)
		},
	}
}
