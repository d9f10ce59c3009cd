package probe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
)

// Status values of the DNS checks (mx, dns, dnsbl and the MX step of smtp-mx).
const (
	DNSOK       = "ok"
	DNSNXDomain = "nxdomain" // the name does not exist
	DNSNoData   = "nodata"   // the name exists but has no record of the type
	DNSServFail = "servfail" // the resolver could not get an answer (often broken DNSSEC or dead authoritative servers)
	DNSTimeout  = "timeout"  // no reply within the per-query timeout (twice)
	DNSError    = "error"    // REFUSED, malformed reply, network error
)

const (
	dnsAttempts   = 2
	maxDNSBLIPs   = 16
	maxDNSBLZones = 16
	dnsblWorkers  = 8
	maxReasonLen  = 512
)

// resolver sends queries with miekg/dns to one recursive server.
type resolver struct {
	server  string
	timeout time.Duration
	udp     *dns.Client
	tcp     *dns.Client
}

func newResolver(server string, timeout time.Duration) *resolver {
	return &resolver{
		server:  server,
		timeout: timeout,
		udp:     &dns.Client{Net: "udp", Timeout: timeout},
		tcp:     &dns.Client{Net: "tcp", Timeout: timeout},
	}
}

// answer is the outcome of one lookup: the records of the asked type and a DNS* status.
type answer struct {
	rrs    []dns.RR
	status string
	err    error  // detail when status is servfail, timeout or error
	cname  string // the last CNAME target the resolver followed, "" when none
}

// lookup asks for name/qtype, retrying once on timeout and over TCP on truncation.
func (r *resolver) lookup(ctx context.Context, name string, qtype uint16) answer {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)

	var (
		in  *dns.Msg
		err error
	)
	for range dnsAttempts {
		qctx, cancel := context.WithTimeout(ctx, r.timeout)
		in, _, err = r.udp.ExchangeContext(qctx, m, r.server)
		if err == nil && in.Truncated {
			in, _, err = r.tcp.ExchangeContext(qctx, m, r.server)
		}
		cancel()
		if err == nil || !isTimeout(err) || ctx.Err() != nil {
			break
		}
	}
	qt := dns.TypeToString[qtype]
	if err != nil {
		status, err := LookupFailure(qt, name, r.server, 0, err)
		return answer{status: status, err: err}
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError: // a CNAME to a name that does not exist says so here
		return answer{status: DNSNXDomain, cname: cnameTarget(in.Answer)}
	default:
		status, err := LookupFailure(qt, name, r.server, in.Rcode, nil)
		return answer{status: status, err: err}
	}
	cname := cnameTarget(in.Answer)
	var rrs []dns.RR
	for _, rr := range in.Answer { // skip the CNAME chain, keep the asked type
		if rr.Header().Rrtype == qtype {
			rrs = append(rrs, rr)
		}
	}
	if len(rrs) == 0 {
		return answer{status: DNSNoData, cname: cname}
	}
	return answer{rrs: rrs, status: DNSOK, cname: cname}
}

// LookupFailure is the status and error the resolver reports for a lookup of
// qtype at name, via server, that failed: with cause, no answer came (DNSTimeout
// when it timed out); without, the server answered rcode, neither success nor
// NXDOMAIN. The lab writes its simulated failures with it.
func LookupFailure(qtype, name, server string, rcode int, cause error) (string, error) {
	switch {
	case cause != nil && isTimeout(cause):
		return DNSTimeout, fmt.Errorf("%s %s via %s: no reply: %w", qtype, name, server, cause)
	case cause != nil:
		return DNSError, fmt.Errorf("%s %s via %s: %w", qtype, name, server, cause)
	case rcode == dns.RcodeServerFailure:
		return DNSServFail, fmt.Errorf("%s %s via %s: SERVFAIL", qtype, name, server)
	default:
		return DNSError, fmt.Errorf("%s %s via %s: %s", qtype, name, server, dns.RcodeToString[rcode])
	}
}

// cnameTarget is the end of the CNAME chain in an answer section, "" when none.
func cnameTarget(rrs []dns.RR) string {
	var target string
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CNAME); ok {
			target = strings.ToLower(strings.TrimSuffix(c.Target, "."))
		}
	}
	return target
}

// describe is the Error field text for a failed lookup.
func (a answer) describe() string {
	if a.err != nil {
		return a.err.Error()
	}
	return ""
}

// resolveHost returns the addresses of a host name to dial: A records, or AAAA when
// there are none.
func (e *Executor) resolveHost(ctx context.Context, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		a := e.dns.lookup(ctx, host, qt)
		switch a.status {
		case DNSOK:
			for _, rr := range a.rrs {
				addrs = append(addrs, rrAddr(rr))
			}
			return addrs, nil
		case DNSNoData:
			continue
		case DNSNXDomain:
			return nil, fmt.Errorf("resolve %s: nxdomain", host)
		default:
			return nil, fmt.Errorf("resolve %s: %s: %w", host, a.status, a.err)
		}
	}
	return nil, fmt.Errorf("resolve %s: no A or AAAA record", host)
}

func rrAddr(rr dns.RR) netip.Addr {
	var ip netip.Addr
	switch v := rr.(type) {
	case *dns.A:
		ip, _ = netip.AddrFromSlice(v.A)
	case *dns.AAAA:
		ip, _ = netip.AddrFromSlice(v.AAAA)
	}
	return ip.Unmap()
}

// MXRecord is one row of the mx check (the shape of Resolve-DnsName -Type MX, cut to
// what the playbooks use). Rows come sorted by Preference, then Exchange.
type MXRecord struct {
	Domain     string
	Exchange   string // host name without the final dot
	Preference uint16
	Status     string // always "ok" on a record row
}

// DNSStatus is the single object the mx check returns when there is no MX to list.
type DNSStatus struct {
	Domain string
	Status string // nxdomain | nodata | servfail | timeout | error | null-mx
	Error  string
}

// lookupMX returns the domain's MX records sorted by preference. A null MX (RFC 7505)
// yields status null-mx and no records.
func (e *Executor) lookupMX(ctx context.Context, domain string) ([]MXRecord, answer) {
	a := e.dns.lookup(ctx, domain, dns.TypeMX)
	if a.status != DNSOK {
		return nil, a
	}
	recs := make([]MXRecord, 0, len(a.rrs))
	for _, rr := range a.rrs {
		mx := rr.(*dns.MX)
		ex := strings.ToLower(strings.TrimSuffix(mx.Mx, "."))
		if ex == "" { // "MX 0 ." among real ones is a misconfiguration; ignore it
			continue
		}
		recs = append(recs, MXRecord{Domain: domain, Exchange: ex, Preference: mx.Preference, Status: DNSOK})
	}
	if len(recs) == 0 {
		return nil, answer{status: StatusNullMX, err: errors.New(domain + " publishes a null MX (RFC 7505): it accepts no mail")}
	}
	slices.SortFunc(recs, func(x, y MXRecord) int {
		return cmp.Or(cmp.Compare(x.Preference, y.Preference), strings.Compare(x.Exchange, y.Exchange))
	})
	return recs, a
}

func (e *Executor) mxCheck(ctx context.Context, params map[string]any) (any, error) {
	domain, err := domainParam(params, "domain")
	if err != nil {
		return nil, err
	}
	recs, a := e.lookupMX(ctx, domain)
	if len(recs) == 0 {
		return DNSStatus{Domain: domain, Status: a.status, Error: a.describe()}, nil
	}
	return recs, nil
}

// DNSResult is the output of the dns check: address records and the SPF policy.
// SPFCount > 1 is a permerror under RFC 7208 §4.5 and worth a finding.
type DNSResult struct {
	Domain     string
	A          []string
	AAAA       []string
	SPF        string   // the first v=spf1 TXT record, strings concatenated (RFC 7208 §3.3)
	SPFCount   int      // number of v=spf1 records
	SPFRecords []string // all of them, for the evidence
	Status     string   // ok, or the first failure among the A, AAAA and TXT lookups
	Error      string
}

func (e *Executor) dnsCheck(ctx context.Context, params map[string]any) (any, error) {
	domain, err := domainParam(params, "domain")
	if err != nil {
		return nil, err
	}
	qtypes := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT}
	answers := make([]answer, len(qtypes))
	var wg sync.WaitGroup
	for i, qt := range qtypes {
		wg.Go(func() { answers[i] = e.dns.lookup(ctx, domain, qt) })
	}
	wg.Wait()

	res := DNSResult{Domain: domain, A: []string{}, AAAA: []string{}, SPFRecords: []string{}, Status: DNSOK}
	for _, rr := range answers[0].rrs {
		res.A = append(res.A, rrAddr(rr).String())
	}
	for _, rr := range answers[1].rrs {
		res.AAAA = append(res.AAAA, rrAddr(rr).String())
	}
	for _, rr := range answers[2].rrs {
		txt := strings.Join(rr.(*dns.TXT).Txt, "")
		if isSPF(txt) {
			res.SPFRecords = append(res.SPFRecords, truncate(txt, maxTextBytes))
		}
	}
	slices.Sort(res.A)
	slices.Sort(res.AAAA)
	res.SPFCount = len(res.SPFRecords)
	if res.SPFCount > 0 {
		res.SPF = res.SPFRecords[0]
	}

	nodata := 0
	for _, a := range answers {
		switch a.status {
		case DNSOK:
		case DNSNoData:
			nodata++
		case DNSNXDomain:
			res.Status, res.Error = DNSNXDomain, ""
			return res, nil
		default:
			if res.Status == DNSOK {
				res.Status, res.Error = a.status, a.describe()
			}
		}
	}
	if nodata == len(answers) {
		res.Status = DNSNoData
	}
	return res, nil
}

// isSPF reports whether a TXT record is an SPF policy ("v=spf1" then space or end).
func isSPF(txt string) bool {
	const tag = "v=spf1"
	return len(txt) >= len(tag) && strings.EqualFold(txt[:len(tag)], tag) &&
		(len(txt) == len(tag) || txt[len(tag)] == ' ')
}

// DNSBLRow is one row of the dnsbl check, one per IP and zone, in parameter order.
// Listed/Code/Reason follow RFC 5782 (127.0.0.x answers, TXT reason).
type DNSBLRow struct {
	IP     string
	Zone   string
	Listed bool
	Code   string // the A answer(s), e.g. "127.0.0.2"; comma-separated if several
	Reason string // the TXT record(s) of a listing
	Status string // ok | timeout | error
	Error  string
}

// dnsblErrorNet holds return codes list operators use to refuse a query (Spamhaus:
// 127.255.255.252 typo, .254 public/open resolver, .255 excessive queries). They are
// not listings.
var dnsblErrorNet = netip.MustParsePrefix("127.255.255.0/24")

var loopbackNet = netip.MustParsePrefix("127.0.0.0/8")

func (e *Executor) dnsblCheck(ctx context.Context, params map[string]any) (any, error) {
	rawIPs, err := stringsParam(params, "ips")
	if err != nil {
		return nil, err
	}
	if len(rawIPs) == 0 {
		if rawIPs, err = stringsParam(params, "ip"); err != nil {
			return nil, err
		}
	}
	if len(rawIPs) == 0 {
		return nil, fmt.Errorf("missing parameter %q: %w", "ips", incident.ErrInvalidInput)
	}
	if len(rawIPs) > maxDNSBLIPs {
		return nil, fmt.Errorf("parameter %q: %d addresses, at most %d: %w", "ips", len(rawIPs), maxDNSBLIPs, incident.ErrInvalidInput)
	}
	ips := make([]netip.Addr, 0, len(rawIPs))
	for _, s := range rawIPs {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return nil, fmt.Errorf("parameter %q: %q is not an IPv4 or IPv6 address: %w", "ips", s, incident.ErrInvalidInput)
		}
		ips = append(ips, ip.Unmap())
	}

	zones := e.zones
	if custom, err := stringsParam(params, "zones"); err != nil {
		return nil, err
	} else if len(custom) > 0 {
		if len(custom) > maxDNSBLZones {
			return nil, fmt.Errorf("parameter %q: %d zones, at most %d: %w", "zones", len(custom), maxDNSBLZones, incident.ErrInvalidInput)
		}
		if zones, err = validateNames(custom); err != nil {
			return nil, fmt.Errorf("parameter %q: %w", "zones", err)
		}
	}

	rows := make([]DNSBLRow, 0, len(ips)*len(zones))
	for _, ip := range ips {
		for _, z := range zones {
			rows = append(rows, DNSBLRow{IP: ip.String(), Zone: z})
		}
	}
	// Zones answer independently; one that never answers costs its own timeout only.
	sem := make(chan struct{}, dnsblWorkers)
	var wg sync.WaitGroup
	for i := range rows {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			e.dnsblQuery(ctx, &rows[i])
		})
	}
	wg.Wait()
	return rows, nil
}

// dnsblQuery fills one row: A lookup of reversed-ip.zone, TXT for the reason if listed.
func (e *Executor) dnsblQuery(ctx context.Context, row *DNSBLRow) {
	ip := netip.MustParseAddr(row.IP)
	name := reverseIP(ip) + "." + row.Zone
	a := e.dns.lookup(ctx, name, dns.TypeA)
	switch a.status {
	case DNSNXDomain, DNSNoData:
		row.Status = DNSOK
		return
	case DNSTimeout:
		row.Status, row.Error = DNSTimeout, a.describe()
		return
	case DNSOK:
	default:
		row.Status, row.Error = DNSError, a.describe()
		return
	}
	codes := make([]string, 0, len(a.rrs))
	listed, refused := false, false
	for _, rr := range a.rrs {
		addr := rrAddr(rr)
		codes = append(codes, addr.String())
		switch {
		case dnsblErrorNet.Contains(addr):
			refused = true
		case loopbackNet.Contains(addr):
			listed = true
		}
	}
	slices.Sort(codes)
	row.Code = strings.Join(codes, ",")
	switch {
	case refused:
		row.Status = DNSError
		row.Error = fmt.Sprintf("%s refused the query (return code %s): the resolver may be public or over its query quota", row.Zone, row.Code)
		return
	case !listed:
		row.Status = DNSError
		row.Error = fmt.Sprintf("%s answered %s, outside 127.0.0.0/8: not a DNSBL answer", row.Zone, row.Code)
		return
	}
	row.Listed, row.Status = true, DNSOK
	if t := e.dns.lookup(ctx, name, dns.TypeTXT); t.status == DNSOK {
		reasons := make([]string, 0, len(t.rrs))
		for _, rr := range t.rrs {
			reasons = append(reasons, strings.Join(rr.(*dns.TXT).Txt, ""))
		}
		row.Reason = truncate(strings.Join(reasons, " / "), maxReasonLen)
	}
}

// reverseIP returns the DNSBL query label of ip (RFC 5782 §2.1 and §2.4): reversed
// octets for IPv4, reversed nibbles for IPv6.
func reverseIP(ip netip.Addr) string {
	if ip.Is4() {
		b := ip.As4()
		return fmt.Sprintf("%d.%d.%d.%d", b[3], b[2], b[1], b[0])
	}
	const hexdigits = "0123456789abcdef"
	b := ip.As16()
	out := make([]byte, 0, 63)
	for i := len(b) - 1; i >= 0; i-- {
		if len(out) > 0 {
			out = append(out, '.')
		}
		out = append(out, hexdigits[b[i]&0x0f], '.', hexdigits[b[i]>>4])
	}
	return string(out)
}

// smtpMXCheck resolves the domain's MX and probes the best max_hosts of them.
func (e *Executor) smtpMXCheck(ctx context.Context, params map[string]any) (any, error) {
	domain, err := domainParam(params, "domain")
	if err != nil {
		return nil, err
	}
	maxHosts, err := executors.IntParam(params, "max_hosts", 1, 1, maxMXHosts)
	if err != nil {
		return nil, err
	}
	starttls, err := executors.BoolParam(params, "starttls", false)
	if err != nil {
		return nil, err
	}

	recs, a := e.lookupMX(ctx, domain)
	switch {
	case a.status == StatusNullMX:
		return []MXProbe{mxFailure(domain, e.smtpPort, StatusNullMX, a.describe())}, nil
	case a.status == DNSNoData: // RFC 5321 §5.1: no MX means the domain itself is the MX
		recs = []MXRecord{{Domain: domain, Exchange: domain}}
	case a.status != DNSOK:
		msg := "MX lookup for " + domain + ": " + a.status
		if a.err != nil {
			msg = a.err.Error()
		}
		return []MXProbe{mxFailure(domain, e.smtpPort, StatusDNSError, msg)}, nil
	}
	if len(recs) > maxHosts {
		recs = recs[:maxHosts]
	}

	rows := make([]MXProbe, len(recs))
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for i, rec := range recs {
		rows[i] = MXProbe{Domain: domain, Exchange: rec.Exchange, Preference: rec.Preference}
		ep, err := parseEndpoint(rec.Exchange, e.smtpPort) // DNS data is untrusted too
		if err != nil {
			rows[i].SMTPResult = SMTPResult{Host: rec.Exchange, Port: e.smtpPort, Status: StatusDNSError,
				Extensions: []string{}, Error: "invalid MX exchange name: " + err.Error()}
			continue
		}
		ep.port = e.smtpPort
		wg.Go(func() { rows[i].SMTPResult, errs[i] = e.smtp(ctx, ep, starttls) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rows, nil
}

func mxFailure(domain string, port int, status, msg string) MXProbe {
	return MXProbe{Domain: domain, SMTPResult: SMTPResult{Port: port, Status: status, Extensions: []string{}, Error: msg}}
}
