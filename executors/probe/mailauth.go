package probe

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/ndrbot/ndrbot/incident"
)

// Verdicts of the mail-authentication checks (spf, dmarc): what a receiving
// server would make of the published record, in the results' own words
// (RFC 7208 §2.6, RFC 7489 §6.6.3).
const (
	AuthOK        = "ok"        // one well-formed record
	AuthNone      = "none"      // no record: receivers apply no policy
	AuthPermError = "permerror" // the record cannot be used (several records, too many lookups, bad syntax)
	AuthTempError = "temperror" // DNS did not answer; receivers defer or treat as none
)

// DKIM key states, one per selector.
const (
	DKIMPresent = "present" // a key record with a non-empty p=
	DKIMRevoked = "revoked" // p= empty (RFC 6376 §3.6.1): the key was withdrawn
	DKIMAbsent  = "absent"  // no key record at the selector
	DKIMInvalid = "invalid" // a TXT record that is not a usable key (wrong v=, no p=, bad key data)
)

const (
	// SPFLookupLimit is RFC 7208 §4.6.4's bound on DNS-querying terms (include,
	// a, mx, ptr, exists, redirect) over the whole evaluation; one more is a permerror.
	SPFLookupLimit = 10
	// maxSPFDepth bounds nesting apart from the lookup count (a chain of includes
	// already stops at the limit; this keeps a mistake in counting from recursing on).
	maxSPFDepth = SPFLookupLimit + 1
	// maxSelectors bounds the DKIM selectors one check reads.
	maxSelectors = 8
	// ExchangeOnlineSPF is the include Microsoft asks Microsoft 365 senders to publish
	// (Learn "Set up SPF to identify valid email sources for your Microsoft 365 domain").
	ExchangeOnlineSPF = "spf.protection.outlook.com"
)

// DefaultDKIMSelectors are Exchange Online's: selector1 and selector2, published by
// the customer as CNAMEs to keys Microsoft keeps under the tenant's domain (Learn "Set
// up DKIM to sign mail from your Microsoft 365 domain").
var defaultDKIMSelectors = []string{"selector1", "selector2"}

// TXTAnswer is the outcome of one TXT lookup: each record's strings joined (RFC 7208
// §3.3, RFC 6376 §3.6.2.2), the end of the CNAME chain the resolver followed, and a
// DNS* status.
type TXTAnswer struct {
	Records []string
	CNAME   string
	Status  string
	Err     error
}

// TXTResolver reads TXT records. The probe executor's resolver is one; the lab
// answers from an organisation file, so both evaluate records with the same code.
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) TXTAnswer
}

// LookupTXT implements TXTResolver with the executor's recursive resolver.
func (r *resolver) LookupTXT(ctx context.Context, name string) TXTAnswer {
	a := r.lookup(ctx, name, dns.TypeTXT)
	out := TXTAnswer{Status: a.status, Err: a.err, CNAME: a.cname}
	for _, rr := range a.rrs {
		out.Records = append(out.Records, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out
}

// SPFResult is the row of the spf check: the domain's SPF policy and what a
// receiver evaluating it would run into.
type SPFResult struct {
	Domain     string
	Record     string   // the v=spf1 record ("" when none, the first when several)
	Count      int      // v=spf1 records at the domain; more than one is a permerror (RFC 7208 §4.5)
	Records    []string // all of them
	Mechanisms []string // the record's terms in order, qualifiers kept (include:…, ip4:…, -all)
	All        string   // the all mechanism with its qualifier (-all, ~all, ?all, +all), through redirect=; "" when none
	Redirect   string   // the redirect= domain, "" when none
	Includes   []string // every include: domain followed, nested ones too, in evaluation order
	// ExchangeOnline: spf.protection.outlook.com is included, directly or through another include.
	ExchangeOnline bool
	// Lookups counts the DNS-querying terms (include, a, mx, ptr, exists, redirect) over
	// the record and the records it includes, up to the point evaluation stopped; more
	// than SPFLookupLimit is a permerror (RFC 7208 §4.6.4).
	Lookups int
	Verdict string // ok | none | permerror | temperror
	Problem string // why the verdict is not ok, in an admin's words
	Status  string // the DNS status of the domain's own TXT lookup
	// Unanswered is the name whose TXT lookup failed on a temperror — the domain
	// itself or an include:/redirect= target — the one to try nslookup on.
	Unanswered string
	Error      string
}

// DMARCResult is the row of the dmarc check: the policy at _dmarc.<domain> (RFC 7489 §6.3).
type DMARCResult struct {
	Domain          string
	Name            string // _dmarc.<domain>
	Record          string
	Count           int      // v=DMARC1 records; more than one means no policy applies (RFC 7489 §6.6.3)
	Policy          string   // p=: none | quarantine | reject
	SubdomainPolicy string   // sp=, or p= when absent (RFC 7489 §6.3)
	Pct             int      // pct=, 100 when absent
	Rua             []string // aggregate report addresses
	Ruf             []string // failure report addresses
	HasRua          bool
	HasRuf          bool
	ADKIM           string // r (relaxed, the default) or s (strict)
	ASPF            string
	Verdict         string // ok | none | permerror | temperror
	Problem         string
	Status          string
	Error           string
}

// DKIMKey is one row of the dkim check: the key record at <selector>._domainkey.<domain>.
type DKIMKey struct {
	Domain   string
	Selector string
	Name     string // <selector>._domainkey.<domain>
	CNAME    string // where the name points, e.g. selector1-contoso-com._domainkey.contoso.onmicrosoft.com
	State    string // present | revoked | absent | invalid
	KeyType  string // k=, rsa when absent (RFC 6376 §3.6.1)
	KeyBits  int    // RSA modulus size when the key parses, else 0
	Record   string
	Problem  string
	Status   string
	Error    string
}

func (e *Executor) spfCheck(ctx context.Context, params map[string]any) (any, error) {
	domain, err := domainParam(params, "domain")
	if err != nil {
		return nil, err
	}
	return EvaluateSPF(ctx, e.dns, domain), nil
}

func (e *Executor) dmarcCheck(ctx context.Context, params map[string]any) (any, error) {
	domain, err := domainParam(params, "domain")
	if err != nil {
		return nil, err
	}
	return ReadDMARC(ctx, e.dns, domain), nil
}

func (e *Executor) dkimCheck(ctx context.Context, params map[string]any) (any, error) {
	domain, err := domainParam(params, "domain")
	if err != nil {
		return nil, err
	}
	selectors, err := SelectorsParam(params)
	if err != nil {
		return nil, err
	}
	return ReadDKIM(ctx, e.dns, domain, selectors), nil
}

// SelectorsParam reads the dkim check's selectors: a list or a comma-separated
// string of DNS labels, Exchange Online's selector1 and selector2 when absent.
func SelectorsParam(params map[string]any) ([]string, error) {
	sels, err := stringsParam(params, "selectors")
	if err != nil {
		return nil, err
	}
	if len(sels) == 0 {
		return append([]string(nil), defaultDKIMSelectors...), nil
	}
	if len(sels) > maxSelectors {
		return nil, fmt.Errorf("parameter %q: %d selectors, at most %d: %w", "selectors", len(sels), maxSelectors, incident.ErrInvalidInput)
	}
	out := make([]string, 0, len(sels))
	for _, s := range sels {
		c, err := canonicalName(s)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %w", "selectors", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// spfRecords keeps the v=spf1 records among TXT records.
func spfRecords(txts []string) []string {
	var out []string
	for _, t := range txts {
		if isSPF(t) {
			out = append(out, truncate(t, maxTextBytes))
		}
	}
	return out
}

// spfEval walks a record and the records it includes or redirects to.
type spfEval struct {
	r       TXTResolver
	res     *SPFResult
	path    []string // domains being evaluated, for loop detection
	stopped bool     // a permerror or temperror ended the walk
}

func (ev *spfEval) fail(verdict, format string, args ...any) {
	if !ev.stopped {
		ev.res.Verdict, ev.res.Problem, ev.stopped = verdict, fmt.Sprintf(format, args...), true
	}
}

// EvaluateSPF reads domain's SPF record and follows its include: and redirect=
// terms as a receiver would (RFC 7208 §4.6.4, §5.2, §6.1), counting DNS-querying
// terms. It stops at the first permerror or temperror; a loop is a permerror.
// a, mx, ptr and exists are counted but not resolved: their answers do not change
// the count, and the per-mx 10-address limit is not checked.
func EvaluateSPF(ctx context.Context, r TXTResolver, domain string) SPFResult {
	res := SPFResult{Domain: domain, Records: []string{}, Mechanisms: []string{}, Includes: []string{}, Verdict: AuthOK}
	top := r.LookupTXT(ctx, domain)
	res.Status = top.Status
	if top.Err != nil {
		res.Error = top.Err.Error()
	}
	switch top.Status {
	case DNSOK, DNSNoData:
	case DNSNXDomain:
		res.Verdict, res.Problem = AuthNone, domain+" does not exist in DNS"
		return res
	default:
		res.Verdict, res.Problem = AuthTempError, "the TXT lookup of "+domain+" failed ("+top.Status+"): receivers answer temperror and defer or accept unauthenticated"
		res.Unanswered = domain
		return res
	}
	res.Records = append(res.Records, spfRecords(top.Records)...)
	res.Count = len(res.Records)
	switch res.Count {
	case 0:
		res.Verdict, res.Problem = AuthNone, domain+" publishes no SPF record (no TXT record starting v=spf1)"
		return res
	case 1:
	default:
		res.Record = res.Records[0]
		res.Verdict = AuthPermError
		res.Problem = fmt.Sprintf("%s publishes %d SPF records: receivers answer permerror (RFC 7208 §4.5); merge them into one", domain, res.Count)
		return res
	}
	res.Record = res.Records[0]
	// The record's own terms are reported whole, even when evaluation stops early.
	for _, term := range strings.Fields(res.Record)[1:] {
		res.Mechanisms = append(res.Mechanisms, term)
		switch name, value, isMod := spfTerm(term); {
		case isMod && name == "redirect":
			res.Redirect = value
		case !isMod && name == "all":
			res.All = term
		}
	}
	ev := &spfEval{r: r, res: &res}
	if all := ev.walk(ctx, domain, res.Record); res.All == "" {
		res.All = all // through redirect=
	}
	return res
}

// walk evaluates one record's terms and returns its effective all term.
func (ev *spfEval) walk(ctx context.Context, domain, record string) string {
	if len(ev.path) >= maxSPFDepth {
		ev.fail(AuthPermError, "SPF includes nest deeper than %d levels under %s", maxSPFDepth, ev.res.Domain)
		return ""
	}
	ev.path = append(ev.path, domain)
	defer func() { ev.path = ev.path[:len(ev.path)-1] }()

	var all, redirect string
	for _, term := range strings.Fields(record)[1:] {
		if ev.stopped {
			return all
		}
		name, value, isMod := spfTerm(term)
		if isMod {
			if name == "redirect" {
				redirect = value
			}
			continue // unknown modifiers are ignored (RFC 7208 §6)
		}
		switch name {
		case "all":
			all = term
		case "ip4", "ip6":
		case "a", "mx", "ptr", "exists":
			ev.count(domain)
		case "include":
			if value == "" {
				ev.fail(AuthPermError, "%s has include without a domain", domain)
				continue
			}
			ev.count(domain)
			ev.include(ctx, value)
		default:
			ev.fail(AuthPermError, "%s's SPF record has an unknown mechanism %q: receivers answer permerror", domain, term)
		}
	}
	// redirect= applies only when the record has no all (RFC 7208 §6.1).
	if redirect != "" && all == "" && !ev.stopped {
		ev.count(domain)
		if target, ok := ev.follow(ctx, redirect, "redirect="); ok {
			all = ev.walk(ctx, strings.ToLower(redirect), target)
		}
	}
	return all
}

// count adds one DNS-querying term and stops the walk past the limit.
func (ev *spfEval) count(domain string) {
	ev.res.Lookups++
	if ev.res.Lookups > SPFLookupLimit {
		ev.fail(AuthPermError, "the SPF record of %s needs more than %d DNS lookups (counted through its includes, the limit passed at %s): receivers answer permerror (RFC 7208 §4.6.4); flatten it or drop includes",
			ev.res.Domain, SPFLookupLimit, domain)
	}
}

func (ev *spfEval) include(ctx context.Context, target string) {
	if ev.stopped {
		return
	}
	d := strings.ToLower(strings.TrimSuffix(target, "."))
	ev.res.Includes = append(ev.res.Includes, d)
	if d == ExchangeOnlineSPF {
		ev.res.ExchangeOnline = true
	}
	if strings.Contains(d, "%") { // a macro: its name depends on the message being checked
		return
	}
	if rec, ok := ev.follow(ctx, d, "include:"); ok {
		ev.walk(ctx, d, rec)
	}
}

// follow fetches the one SPF record of an include: or redirect= target; none
// once the walk has stopped (a redirect= counted past the limit).
func (ev *spfEval) follow(ctx context.Context, target, how string) (string, bool) {
	if ev.stopped {
		return "", false
	}
	d := strings.ToLower(strings.TrimSuffix(target, "."))
	for _, p := range ev.path {
		if p == d {
			ev.fail(AuthPermError, "SPF loop: %s%s is already being evaluated (%s): receivers answer permerror", how, d, strings.Join(append(ev.path, d), " → "))
			return "", false
		}
	}
	if !validHostname(d) {
		ev.fail(AuthPermError, "%s%s is not a domain name", how, target)
		return "", false
	}
	a := ev.r.LookupTXT(ctx, d)
	switch a.Status {
	case DNSOK, DNSNoData, DNSNXDomain:
	default:
		ev.res.Unanswered = d // the walk's first failure: it had not stopped
		ev.fail(AuthTempError, "the TXT lookup of %s%s failed (%s): receivers answer temperror", how, d, a.Status)
		return "", false
	}
	recs := spfRecords(a.Records)
	switch len(recs) {
	case 1:
		return recs[0], true
	case 0:
		ev.fail(AuthPermError, "%s%s has no SPF record: receivers answer permerror (RFC 7208 §5.2)", how, d)
	default:
		ev.fail(AuthPermError, "%s%s publishes %d SPF records: receivers answer permerror", how, d, len(recs))
	}
	return "", false
}

// spfTerm splits a term into its name and value, qualifier dropped; isMod for
// name=value modifiers.
func spfTerm(term string) (name, value string, isMod bool) {
	if i := strings.IndexAny(term, ":=/"); i >= 0 && term[i] == '=' {
		return strings.ToLower(term[:i]), term[i+1:], true
	}
	t := strings.TrimLeft(term, "+-~?")
	if len(t) < len(term)-1 {
		return "", "", false // two qualifiers: unknown mechanism
	}
	name, value, _ = strings.Cut(t, ":")
	if i := strings.IndexByte(name, '/'); i >= 0 { // a/24, mx/24
		name = name[:i]
	}
	return strings.ToLower(name), value, false
}

// tags parses a tag=value list (RFC 7489 §6.4, RFC 6376 §3.2): keys lower-cased,
// values trimmed; a later duplicate does not replace the first.
func tags(record string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(record, ";") {
		k, v, ok := strings.Cut(part, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			continue
		}
		if _, dup := out[k]; !dup {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// isDMARC reports whether a TXT record is a DMARC record: v=DMARC1 its first tag
// (RFC 7489 §6.3).
func isDMARC(txt string) bool {
	first, _, _ := strings.Cut(txt, ";")
	name, val, _ := strings.Cut(first, "=")
	return strings.TrimSpace(name) == "v" && strings.TrimSpace(val) == "DMARC1"
}

// ReadDMARC reads and parses the DMARC record of domain (RFC 7489 §6.3, §6.6.3).
// The organisational-domain fallback (_dmarc of the parent registered domain) needs
// the Public Suffix List and is not done: pass the domain that sends.
func ReadDMARC(ctx context.Context, r TXTResolver, domain string) DMARCResult {
	name := "_dmarc." + domain
	res := DMARCResult{Domain: domain, Name: name, Rua: []string{}, Ruf: []string{}, Verdict: AuthOK}
	a := r.LookupTXT(ctx, name)
	res.Status = a.Status
	if a.Err != nil {
		res.Error = a.Err.Error()
	}
	switch a.Status {
	case DNSOK, DNSNoData, DNSNXDomain:
	default:
		res.Verdict, res.Problem = AuthTempError, "the TXT lookup of "+name+" failed ("+a.Status+")"
		return res
	}
	var recs []string
	for _, t := range a.Records {
		if isDMARC(t) {
			recs = append(recs, truncate(t, maxTextBytes))
		}
	}
	res.Count = len(recs)
	switch res.Count {
	case 0:
		res.Verdict, res.Problem = AuthNone, name+" has no DMARC record (no TXT record starting v=DMARC1)"
		return res
	case 1:
	default:
		res.Record = recs[0]
		res.Verdict, res.Problem = AuthPermError, fmt.Sprintf("%s has %d DMARC records: receivers apply no DMARC policy (RFC 7489 §6.6.3); keep one", name, res.Count)
		return res
	}
	res.Record = recs[0]
	t := tags(res.Record)
	res.Policy = strings.ToLower(t["p"])
	res.SubdomainPolicy = strings.ToLower(t["sp"])
	if res.SubdomainPolicy == "" {
		res.SubdomainPolicy = res.Policy
	}
	res.ADKIM, res.ASPF = alignment(t["adkim"]), alignment(t["aspf"])
	res.Pct = 100
	if v, ok := t["pct"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100 {
			res.Verdict, res.Problem = AuthPermError, fmt.Sprintf("%s: pct=%s is not a number from 0 to 100", name, v)
		} else {
			res.Pct = n
		}
	}
	res.Rua, res.Ruf = uris(t["rua"]), uris(t["ruf"])
	res.HasRua, res.HasRuf = len(res.Rua) > 0, len(res.Ruf) > 0
	for _, p := range []struct{ tag, v string }{{"p", res.Policy}, {"sp", res.SubdomainPolicy}} {
		switch p.v {
		case "none", "quarantine", "reject":
		case "":
			res.Verdict, res.Problem = AuthPermError, name+" has no p= tag: the record is not a valid DMARC policy"
		default:
			res.Verdict, res.Problem = AuthPermError, fmt.Sprintf("%s: %s=%s is not none, quarantine or reject", name, p.tag, p.v)
		}
	}
	return res
}

func alignment(v string) string {
	if strings.EqualFold(v, "s") {
		return "s"
	}
	return "r"
}

func uris(v string) []string {
	out := []string{}
	for _, u := range strings.Split(v, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// ReadDKIM reads the key record of each selector (RFC 6376 §3.6.2.1), noting the
// CNAME it goes through (Exchange Online's selectors point into the tenant's
// onmicrosoft.com domain).
func ReadDKIM(ctx context.Context, r TXTResolver, domain string, selectors []string) []DKIMKey {
	rows := make([]DKIMKey, 0, len(selectors))
	for _, sel := range selectors {
		name := sel + "._domainkey." + domain
		row := DKIMKey{Domain: domain, Selector: sel, Name: name}
		a := r.LookupTXT(ctx, name)
		row.Status, row.CNAME = a.Status, a.CNAME
		if a.Err != nil {
			row.Error = a.Err.Error()
		}
		switch a.Status {
		case DNSOK:
			dkimKey(&row, a.Records)
		case DNSNoData, DNSNXDomain:
			row.State = DKIMAbsent
			row.Problem = "no DKIM key at " + name
			if row.CNAME != "" {
				row.Problem = fmt.Sprintf("%s points to %s, which has no key: DKIM signing is not enabled for %s (or the CNAME target is wrong)", name, row.CNAME, domain)
			}
		default:
			row.Problem = "the TXT lookup of " + name + " failed (" + a.Status + ")"
		}
		rows = append(rows, row)
	}
	return rows
}

// dkimKey fills a row from the TXT records at a selector.
func dkimKey(row *DKIMKey, records []string) {
	var rec string
	for _, r := range records {
		t := tags(r)
		if v, ok := t["v"]; (ok && v == "DKIM1") || (!ok && strings.Contains(r, "p=")) {
			rec = r
			break
		}
	}
	if rec == "" {
		row.State, row.Problem = DKIMInvalid, row.Name+" holds TXT records but no DKIM key (v=DKIM1; … p=…)"
		return
	}
	row.Record = truncate(rec, maxTextBytes)
	t := tags(rec)
	row.KeyType = strings.ToLower(t["k"])
	if row.KeyType == "" {
		row.KeyType = "rsa"
	}
	p, ok := t["p"]
	switch {
	case !ok:
		row.State, row.Problem = DKIMInvalid, row.Name+"'s record has no p= tag"
		return
	case strings.Join(strings.Fields(p), "") == "":
		row.State, row.Problem = DKIMRevoked, row.Name+"'s key is revoked (empty p=): mail signed with this selector fails DKIM"
		return
	}
	row.State = DKIMPresent
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(p), ""))
	if err != nil {
		row.State, row.Problem = DKIMInvalid, row.Name+"'s p= is not base64"
		return
	}
	if row.KeyType == "rsa" {
		key, err := x509.ParsePKIXPublicKey(der)
		if rk, ok := key.(*rsa.PublicKey); err == nil && ok {
			row.KeyBits = rk.N.BitLen()
		} else {
			row.State, row.Problem = DKIMInvalid, row.Name+"'s p= is not an RSA public key"
		}
	}
}
