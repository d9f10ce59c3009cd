package lab

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/ndrbot/ndrbot/executors/probe"
)

// The smtp-421 side of the organisation: transport limits, send connectors, the
// default accepted domain, queues per destination domain and their reliefs — and the
// outside world the bot's own probes see: destination MX hosts, the DNS of sending
// domains and DNSBL listings. Exchange answers are shaped like the ConvertTo-Json
// projections in playbooks/builtin/smtp-421.yaml; network answers use the probe
// executor's result types, so the field names cannot drift.

// sendConnector mirrors the Get-SendConnector properties the playbook projects.
type sendConnector struct {
	identity      string
	addressSpaces []string // the Address of each AddressSpace: "*", "*.contoso.com"
	smartHosts    []string
	dnsRouting    bool
	sourceServers []string
	perConnection int    // SmtpMaxMessagesPerConnection
	inactivity    string // ConnectionInactivityTimeOut
	sourceIP      string // SourceIPAddress
	fqdn          string
	// What only the cmdlet path shows (Get-SendConnector).
	disabled       bool
	requireTLS     bool
	tlsCertName    string // TlsCertificateName: "<I>issuer<S>subject"
	tlsAuthLevel   string
	tlsDomain      string
	cloudMail      bool  // CloudServicesMailEnabled
	maxMessageSize int64 // bytes; 0 is the 35 MB default, sizeUnlimited is Unlimited
	port           int   // 0 is 25
	smartHostAuth  string
}

// sizeUnlimited marks an Unlimited ByteQuantifiedSize.
const sizeUnlimited = -1

// destination is a remote domain as our servers and the bot's probe meet it.
type destination struct {
	mx string
	ip string
	// probe is what one polite connection from the bot gets.
	probe smtpOutcome
	// accepts is how many concurrent connections per sending server the domain takes
	// before it answers 421 4.3.2; 0 is no limit.
	accepts int64
	// refusesListed: while one of our sending IPs is on a DNSBL, our servers'
	// connections are refused.
	refusesListed bool
	// refusal is the LastError a queue gets when the domain refuses a retry.
	refusal string
}

// dnsZone is what the DNS checks find at one name: a sending domain's A and SPF
// records, other TXT records (_dmarc.<domain>, DKIM keys), or a CNAME (Exchange
// Online's DKIM selectors) — or, with fail, a lookup that fails for this name and
// every name below it, as when the zone's servers are broken or do not answer.
// Records are served as written, malformed ones too: the probe's evaluation
// judges them, as a receiver's would.
type dnsZone struct {
	a     []string
	spf   []string
	txt   []string
	cname string
	fail  string // "", or one of dnsFailures
}

// dnsFailures are the ways a lab lookup can fail, each answered as the probe's
// resolver reports the same reply from a real recursive server, in its words
// (probe.LookupFailure): SERVFAIL is status servfail; no reply within the timeout
// (twice) is status timeout; REFUSED is status error. A receiver meeting the
// first two answers temperror (RFC 7208 §2.6.6 for SPF, RFC 7489 §6.6.3 for
// DMARC: a DMARC record that cannot be retrieved for a transient reason).
var dnsFailures = []string{"servfail", "timeout", "refused"}

// labResolver is the recursive server the lab's lookups name in their errors,
// systemd-resolved's stub as a Linux bot host has it in /etc/resolv.conf.
const labResolver = "127.0.0.53:53"

// failing returns how a lookup of name fails: the fail of the name or of the
// nearest name above it that sets one; "" when it does not fail.
func failing(zones map[string]dnsZone, name string) string {
	for n := name; n != ""; {
		if z, ok := zones[n]; ok && z.fail != "" {
			return z.fail
		}
		_, parent, found := strings.Cut(n, ".")
		if !found {
			break
		}
		n = parent
	}
	return ""
}

// failedLookup is the status and error the probe's resolver gives for a lookup
// of qtype at name that fails as fail (one of dnsFailures) says.
func failedLookup(qtype, name, fail string) (string, error) {
	switch fail {
	case "timeout":
		return probe.LookupFailure(qtype, name, labResolver, 0, os.ErrDeadlineExceeded) // "i/o timeout"
	case "refused":
		return probe.LookupFailure(qtype, name, labResolver, dns.RcodeRefused, nil)
	}
	return probe.LookupFailure(qtype, name, labResolver, dns.RcodeServerFailure, nil)
}

// listing is one DNSBL entry: the 127.0.0.x answer and the TXT reason.
type listing struct {
	code   string
	reason string
}

// Exchange 2019 defaults of the transport retry settings the playbook projects.
const (
	messageRetryInterval           = "00:15:00"
	transientFailureRetryInterval  = "00:05:00"
	transientFailureRetryCount     = 6
	outboundConnectionFailureRetry = "00:10:00"
	messageExpirationTimeout       = "2.00:00:00"
	nextRetryAfter                 = 10 * time.Minute
)

func utc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// unlimited renders an Unlimited<int> as PowerShell's "$value" does.
func unlimited(v *int64) string {
	if v == nil {
		return "Unlimited"
	}
	return fmt.Sprint(*v)
}

// attempt is one delivery attempt of a queue now: it drains when the destination
// takes our connections, else it stays in Retry with the destination's refusal.
func (o *org) attempt(s *server, q *queue) {
	now := o.now().UTC().Truncate(time.Second)
	q.LastRetryTime = now
	d := o.destinations[strings.ToLower(q.NextHopDomain)]
	if o.delivers(s, d) {
		q.Status, q.MessageCount, q.LastError, q.NextRetryTime = "Ready", 0, "", time.Time{}
		q.RetryCount, q.FirstRetryTime = 0, time.Time{}
		return
	}
	q.RetryCount++
	q.Status, q.NextRetryTime = "Retry", now.Add(nextRetryAfter)
	if d.refusal != "" {
		q.LastError = d.refusal
	}
}

// delivers reports whether the destination takes the server's connections.
func (o *org) delivers(s *server, d *destination) bool {
	switch {
	case d == nil:
		return true
	case d.probe.status != probe.StatusOK: // refuses everyone
		return false
	case d.refusesListed && len(o.listings) > 0:
		return false
	case d.accepts > 0 && (s.maxPerDomain == nil || *s.maxPerDomain > d.accepts):
		return false
	}
	return true
}

// dest returns the destination of a domain; one the scenario does not know is a
// well-behaved domain with an MX of its own.
func (o *org) dest(domain string) *destination {
	if d, ok := o.destinations[domain]; ok {
		return d
	}
	return &destination{mx: "mx." + domain, ip: "192.0.2.25",
		probe: smtpOutcome{status: probe.StatusOK, code: 220, text: "mx." + domain + " ESMTP ready"}}
}

// network answers the probe checks that take their subject from params.
func (o *org) network(check string, p map[string]any) (any, error) {
	if check == probe.CheckDNSBL {
		return o.dnsbl(p)
	}
	domain, _ := p["domain"].(string)
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" {
		return nil, fmt.Errorf("missing parameter %q", "domain")
	}
	switch check {
	case probe.CheckSMTPMX:
		d := o.dest(domain)
		return []probe.MXProbe{{Domain: domain, Exchange: d.mx, Preference: 10, SMTPResult: d.probe.result(d.mx, d.ip+":25", 25)}}, nil
	case probe.CheckMX:
		if fail := failing(o.zones, domain); fail != "" {
			status, err := failedLookup("MX", domain, fail)
			return probe.DNSStatus{Domain: domain, Status: status, Error: err.Error()}, nil
		}
		return []probe.MXRecord{{Domain: domain, Exchange: o.dest(domain).mx, Preference: 10, Status: probe.DNSOK}}, nil
	}
	if at := strings.LastIndexByte(domain, '@'); at >= 0 { // an address, as the probe takes it
		domain = domain[at+1:]
	}
	ctx := context.Background() // the lab answers at once
	switch check {
	case probe.CheckSPF:
		return probe.EvaluateSPF(ctx, o.txtResolver(), domain), nil
	case probe.CheckDMARC:
		return probe.ReadDMARC(ctx, o.txtResolver(), domain), nil
	case probe.CheckDKIM:
		selectors, err := probe.SelectorsParam(p)
		if err != nil {
			return nil, err
		}
		return probe.ReadDKIM(ctx, o.txtResolver(), domain, selectors), nil
	}
	z, ok := o.zones[domain]
	res := probe.DNSResult{Domain: domain, A: []string{}, AAAA: []string{}, SPFRecords: []string{}, Status: probe.DNSOK}
	if fail := failing(o.zones, domain); fail != "" {
		// Every lookup fails alike; the probe reports the first of A, AAAA, TXT.
		status, err := failedLookup("A", domain, fail)
		res.Status, res.Error = status, err.Error()
		return res, nil
	}
	if !ok {
		res.Status = probe.DNSNXDomain
		return res, nil
	}
	res.A = append(res.A, z.a...)
	res.SPFRecords = append(res.SPFRecords, z.spf...)
	res.SPFCount = len(z.spf)
	if res.SPFCount > 0 {
		res.SPF = z.spf[0]
	}
	return res, nil
}

// txtResolver answers TXT lookups from world.dns as a recursive resolver would:
// CNAMEs followed (at most 8), NXDOMAIN for a name the file does not hold, NODATA
// for one without TXT records, a failure (fail:) as the probe's resolver reports
// it — with no CNAME, as a failed reply carries no answer section. The probe's own
// record evaluation runs on it.
func (o *org) txtResolver() probe.TXTResolver { return labTXT{zones: o.zones} }

type labTXT struct{ zones map[string]dnsZone }

func (l labTXT) LookupTXT(_ context.Context, name string) probe.TXTAnswer {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	asked := name
	var cname string
	for range 8 {
		if fail := failing(l.zones, name); fail != "" {
			status, err := failedLookup("TXT", asked, fail)
			return probe.TXTAnswer{Status: status, Err: err}
		}
		z, ok := l.zones[name]
		switch {
		case !ok:
			return probe.TXTAnswer{Status: probe.DNSNXDomain, CNAME: cname}
		case z.cname != "":
			name, cname = z.cname, z.cname
			continue
		}
		recs := append(slices.Clone(z.spf), z.txt...)
		if len(recs) == 0 {
			return probe.TXTAnswer{Status: probe.DNSNoData, CNAME: cname}
		}
		return probe.TXTAnswer{Records: recs, Status: probe.DNSOK, CNAME: cname}
	}
	return probe.TXTAnswer{Status: probe.DNSServFail, CNAME: cname, Err: fmt.Errorf("TXT %s: CNAME chain longer than 8", name)}
}

func (o *org) dnsbl(p map[string]any) (any, error) {
	ips := strs(p["ips"])
	if len(ips) == 0 {
		ips = strs(p["ip"])
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("missing parameter %q", "ips")
	}
	zones := strs(p["zones"])
	if len(zones) == 0 {
		zones = probe.DefaultDNSBLZones()
	}
	var rows []probe.DNSBLRow
	for _, ip := range ips {
		for _, z := range zones {
			row := probe.DNSBLRow{IP: ip, Zone: z, Status: probe.DNSOK}
			if fail, down := o.dnsblDown[ip+" "+z]; down {
				var err error
				row.Status, err = failedLookup("A", reversed(ip)+"."+z, fail)
				row.Error = err.Error()
			} else if l, ok := o.listings[ip+" "+z]; ok {
				row.Listed, row.Code, row.Reason = true, l.code, l.reason
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// reversed is the DNSBL query label of an IPv4 address.
func reversed(ip string) string {
	parts := strings.Split(ip, ".")
	slices.Reverse(parts)
	return strings.Join(parts, ".")
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == ' ' })
	case []string:
		return x
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
