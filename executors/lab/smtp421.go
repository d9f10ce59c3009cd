package lab

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

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

// dnsZone is what the dns check finds for a sending domain.
type dnsZone struct {
	a   []string
	spf []string
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

// answer421 answers the smtp-421 playbook's Exchange scripts; ok is false for any
// other cmdlet.
func (o *org) answer421(s *server, cmdlet string, p map[string]any) (out any, ok bool, err error) {
	switch cmdlet {
	case "Get-TransportService":
		return s.limitsRow(), true, nil
	case "Get-SendConnector":
		domain, _ := p["domain"].(string)
		return o.sendConnectors(domain), true, nil
	case "Get-AcceptedDomain":
		return map[string]any{"DomainName": o.defaultDomain(), "DomainType": "Authoritative", "Default": true}, true, nil
	case cmdletDomainQueues:
		domain, _ := p["domain"].(string)
		var rows []map[string]any
		for _, q := range s.queues {
			if strings.EqualFold(q.NextHopDomain, domain) {
				rows = append(rows, q.row421())
			}
		}
		return rows, true, nil
	case cmdletQueuesByIdentity:
		var rows []map[string]any
		for _, q := range s.named(p["queues"]) {
			rows = append(rows, q.row421())
		}
		return rows, true, nil
	case "Set-TransportService":
		out, err := o.setPerDomain(s, p)
		return out, true, err
	case "Retry-Queue":
		out, err := o.retryQueues(s, p)
		return out, true, err
	case "Suspend-Queue":
		return o.suspendQueues(s, p), true, nil
	case "Resume-Queue":
		return o.resumeQueues(s, p), true, nil
	}
	return nil, false, nil
}

func (s *server) limitsRow() map[string]any {
	return map[string]any{
		"Server":                                 s.name,
		"MaxOutboundConnections":                 limit(s.maxOutbound),
		"MaxPerDomainOutboundConnections":        limit(s.maxPerDomain),
		"MessageRetryInterval":                   messageRetryInterval,
		"TransientFailureRetryInterval":          transientFailureRetryInterval,
		"TransientFailureRetryCount":             transientFailureRetryCount,
		"OutboundConnectionFailureRetryInterval": outboundConnectionFailureRetry,
		"MessageExpirationTimeout":               messageExpirationTimeout,
	}
}

// refusedRE is the playbook's `"$($_.LastError)" -match '\b421\b|too many connections'`
// (PowerShell's -match ignores case).
var refusedRE = regexp.MustCompile(`(?i)\b421\b|too many connections`)

// row421 is the smtp-421 playbook's Get-Queue projection.
func (q *queue) row421() map[string]any {
	return map[string]any{"Identity": q.Identity, "DeliveryType": q.DeliveryType, "NextHopDomain": q.NextHopDomain,
		"Status": q.Status, "MessageCount": q.MessageCount, "LastError": nilIfEmpty(q.LastError), "Refused": refusedRE.MatchString(q.LastError),
		"LastRetryTime": timeOrNil(q.LastRetryTime), "NextRetryTime": timeOrNil(q.NextRetryTime)}
}

// named returns the server's queues whose identity is in the data list ids, as
// `Get-Queue -Server $env:COMPUTERNAME | Where-Object { @($P.queues) -contains … }` does.
func (s *server) named(ids any) []*queue {
	var want []string
	switch x := ids.(type) {
	case string:
		want = []string{x}
	case []string:
		want = x
	case []any:
		for _, v := range x {
			if id, ok := v.(string); ok {
				want = append(want, id)
			}
		}
	}
	var out []*queue
	for _, q := range s.queues {
		if slices.Contains(want, q.Identity) {
			out = append(out, q)
		}
	}
	return out
}

func (o *org) sendConnectors(domain string) []map[string]any {
	var rows []map[string]any
	for _, c := range o.connectors {
		spaces := make([]string, len(c.addressSpaces))
		covers := false
		for i, a := range c.addressSpaces {
			spaces[i] = "SMTP:" + a + ";1"
			covers = covers || like(domain, a)
		}
		ip, _ := netip.ParseAddr(c.sourceIP)
		public := ip.IsValid() && !ip.IsUnspecified() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast()
		rows = append(rows, map[string]any{
			"Identity":                     c.identity,
			"AddressSpaces":                spaces,
			"CoversDomain":                 covers,
			"SmartHosts":                   append([]string{}, c.smartHosts...),
			"DNSRoutingEnabled":            c.dnsRouting,
			"SourceTransportServers":       c.sourceServers,
			"SmtpMaxMessagesPerConnection": c.perConnection,
			"ConnectionInactivityTimeOut":  c.inactivity,
			"SourceIPAddress":              c.sourceIP,
			"SourceIPPublic":               public,
			"Fqdn":                         c.fqdn,
		})
	}
	return rows
}

// like is PowerShell's -like for the address-space patterns Exchange uses: "*",
// "*.suffix" or a literal domain, case-insensitive.
func like(domain, pattern string) bool {
	domain, pattern = strings.ToLower(domain), strings.ToLower(pattern)
	switch {
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(domain, pattern[1:])
	default:
		return domain == pattern
	}
}

// setPerDomain is `Set-TransportService -MaxPerDomainOutboundConnections $P.connections`
// with the previous value recorded for rollback.
func (o *org) setPerDomain(s *server, p map[string]any) (any, error) {
	n := number(p["connections"])
	if n == nil || *n < 1 {
		return nil, fmt.Errorf("Cannot validate argument on parameter 'MaxPerDomainOutboundConnections'. The value %v is not valid.", p["connections"])
	}
	if s.maxOutbound != nil && *n > *s.maxOutbound {
		return nil, fmt.Errorf("The value of MaxPerDomainOutboundConnections (%d) must be less than or equal to the value of MaxOutboundConnections (%d).", *n, *s.maxOutbound)
	}
	before := unlimited(s.maxPerDomain)
	s.maxPerDomain = n
	return map[string]any{"Server": s.name, "Previous": before, "MaxPerDomainOutboundConnections": *n,
		"Rollback": "Set-TransportService -Identity " + s.name + " -MaxPerDomainOutboundConnections " + before}, nil
}

// unlimited renders an Unlimited<int> as PowerShell's "$value" does.
func unlimited(v *int64) string {
	if v == nil {
		return "Unlimited"
	}
	return fmt.Sprint(*v)
}

// retryQueues is the retry-queue relief: it refuses while the server's per-domain
// limit is above $P.connections, as the playbook's script does, then retries each
// named queue.
func (o *org) retryQueues(s *server, p map[string]any) (any, error) {
	want := number(p["connections"])
	if want == nil {
		return nil, fmt.Errorf("$P.connections is missing")
	}
	if s.maxPerDomain == nil || *s.maxPerDomain > *want {
		return nil, fmt.Errorf("MaxPerDomainOutboundConnections on %s is %s, above %d: lower it first (relief lower-per-domain-connections); a retry now would open as many connections as before",
			s.name, unlimited(s.maxPerDomain), *want)
	}
	var rows []map[string]any
	for _, q := range s.named(p["queues"]) {
		prev, count := q.Status, q.MessageCount
		o.attempt(s, q)
		rows = append(rows, map[string]any{"Identity": q.Identity, "PreviousStatus": prev, "PreviousMessageCount": count,
			"Status": q.Status, "MessageCount": q.MessageCount, "LastError": nilIfEmpty(q.LastError), "NextRetryTime": timeOrNil(q.NextRetryTime)})
	}
	return rows, nil
}

func (o *org) suspendQueues(s *server, p map[string]any) any {
	var rows []map[string]any
	for _, q := range s.named(p["queues"]) {
		prev := q.Status
		q.Status = "Suspended"
		rows = append(rows, map[string]any{"Identity": q.Identity, "PreviousStatus": prev, "Status": q.Status,
			"MessageCount": q.MessageCount, "Rollback": "Resume-Queue -Identity " + q.Identity})
	}
	return rows
}

func (o *org) resumeQueues(s *server, p map[string]any) any {
	var rows []map[string]any
	for _, q := range s.named(p["queues"]) {
		prev := q.Status
		o.attempt(s, q) // a resumed queue connects at once
		rows = append(rows, map[string]any{"Identity": q.Identity, "PreviousStatus": prev, "Status": q.Status,
			"MessageCount": q.MessageCount, "LastError": nilIfEmpty(q.LastError), "Rollback": "Suspend-Queue -Identity " + q.Identity})
	}
	return rows
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
		return []probe.MXRecord{{Domain: domain, Exchange: o.dest(domain).mx, Preference: 10, Status: probe.DNSOK}}, nil
	}
	z, ok := o.zones[domain]
	res := probe.DNSResult{Domain: domain, A: []string{}, AAAA: []string{}, SPFRecords: []string{}, Status: probe.DNSOK}
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
			if status, down := o.dnsblDown[ip+" "+z]; down {
				row.Status, row.Error = status, fmt.Sprintf("A %s.%s via 127.0.0.53:53: no reply: i/o timeout", reversed(ip), z)
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
