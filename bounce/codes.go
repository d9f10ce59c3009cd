package bounce

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// Code is one SMTP answer as a report quotes it: the three-digit reply code
// (RFC 5321) and the enhanced status code (RFC 3463 class.subject.detail).
// Either may be empty, not both.
type Code struct {
	Reply    string // "550"
	Enhanced string // "5.5.4"
}

// String reads "550 5.5.4", "5.5.4" or "550".
func (c Code) String() string {
	switch {
	case c.Reply != "" && c.Enhanced != "":
		return c.Reply + " " + c.Enhanced
	case c.Enhanced != "":
		return c.Enhanced
	default:
		return c.Reply
	}
}

// enhanced is a parsed class.subject.detail.
type enhanced struct{ class, subject, detail int }

func (e enhanced) String() string {
	return strconv.Itoa(e.class) + "." + strconv.Itoa(e.subject) + "." + strconv.Itoa(e.detail)
}

// parseEnhanced accepts exactly a class.subject.detail with class 2, 4 or 5 and
// one to three digits in subject and detail (RFC 3463; Microsoft's own codes such
// as 5.7.708 and 4.4.317 use three-digit details).
func parseEnhanced(s string) (enhanced, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return enhanced{}, false
	}
	var n [3]int
	for i, p := range parts {
		if p == "" || len(p) > 3 || (i == 0 && len(p) != 1) {
			return enhanced{}, false
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return enhanced{}, false
			}
		}
		n[i], _ = strconv.Atoi(p)
	}
	if n[0] != 2 && n[0] != 4 && n[0] != 5 {
		return enhanced{}, false
	}
	return enhanced{n[0], n[1], n[2]}, true
}

// enhancedRE finds enhanced-code candidates; findCodes checks their boundaries
// by hand, because Go's regexp has no look-around and a version number such as
// 15.20.1771.16 or an ISP code like 4.16.55.1 must not read as a status.
var enhancedRE = lazyre.New(`[245]\.\d{1,3}\.\d{1,3}`)

// findCodes lists the codes in a status text in the order they appear: each
// enhanced code with the reply code written just before it ("550 5.5.4",
// "421-4.7.0", "#550 5.1.1", "550 #5.1.1"). When there is no enhanced code at
// all, a reply code opening the text ("426 connection timed out", "'421 Too
// many connections") is the only code.
func findCodes(s string) []Code {
	var out []Code
	for _, loc := range enhancedRE().FindAllStringIndex(s, -1) {
		start, end := loc[0], loc[1]
		if start > 0 && (isDigit(s[start-1]) || s[start-1] == '.') {
			continue
		}
		if end < len(s) && (isDigit(s[end]) || s[end] == '.' && end+1 < len(s) && isDigit(s[end+1])) {
			continue
		}
		e, ok := parseEnhanced(s[start:end])
		if !ok {
			continue
		}
		c := Code{Enhanced: e.String(), Reply: replyBefore(s[:start])}
		// A reply's class must agree with the enhanced code's, except a 4.x.x
		// in a permanent reply ("550 4.4.7 QUEUE.Expired"): otherwise the number
		// before the code is something else.
		if c.Reply != "" && c.Reply[0] != c.Enhanced[0] && !(c.Reply[0] == '5' && c.Enhanced[0] == '4') {
			c.Reply = ""
		}
		out = append(out, c)
	}
	if len(out) > 0 {
		return out
	}
	if r := leadingReply(s); r != "" {
		return []Code{{Reply: r}}
	}
	return nil
}

// replyBefore returns the reply code that ends prefix ("… 550 ", "…421-", "#550 #").
func replyBefore(prefix string) string {
	p := strings.TrimRight(prefix, "#")
	if p == "" || (p[len(p)-1] != ' ' && p[len(p)-1] != '-') {
		return ""
	}
	p = strings.TrimRight(p[:len(p)-1], "#")
	if len(p) < 3 {
		return ""
	}
	r := p[len(p)-3:]
	if !isReply(r) {
		return ""
	}
	if len(p) > 3 && (isDigit(p[len(p)-4]) || p[len(p)-4] == '.') {
		return ""
	}
	return r
}

// leadingReply returns the reply code that opens s, after quotes, brackets and
// a '#': the shape of a reply quoted without an enhanced code.
func leadingReply(s string) string {
	s = strings.TrimLeft(s, " \t'\"(<#")
	if len(s) < 3 || !isReply(s[:3]) {
		return ""
	}
	if len(s) > 3 && s[3] != ' ' && s[3] != '-' && s[3] != '\'' && s[3] != '"' {
		return ""
	}
	return s[:3]
}

func isReply(s string) bool {
	return len(s) == 3 && (s[0] == '2' || s[0] == '4' || s[0] == '5') && isDigit(s[1]) && isDigit(s[2])
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// classOf is the first character of a code's class ('2', '4', '5'), 0 when none.
func (c Code) class() byte {
	if c.Enhanced != "" {
		return c.Enhanced[0]
	}
	if c.Reply != "" {
		return c.Reply[0]
	}
	return 0
}

// Addresses and hosts.
var (
	addrRE = lazyre.New(`[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+`)
	// hostRE is a DNS name of LDH labels; a single label is allowed (EX01).
	hostRE = lazyre.New(`^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*$`)
)

// cleanAddress turns "rfc822; Bob@Fabrikam.COM", "<bob@fabrikam.com>" or
// "bob@fabrikam.com<mailto:bob@fabrikam.com>" into bob@fabrikam.com: the local
// part as written, the domain lower-cased. "" when there is no address.
func cleanAddress(s string) string {
	s = strings.TrimSpace(s)
	if t, v, ok := strings.Cut(s, ";"); ok && !strings.Contains(t, "@") {
		s = v // address-type ";" address (RFC 3464 section 2.3.2)
	}
	a := addrRE().FindString(s)
	if a == "" || len(a) > 254 {
		return ""
	}
	local, domain, _ := strings.Cut(a, "@")
	local = strings.Trim(local, ".")
	if local == "" {
		return ""
	}
	return local + "@" + strings.ToLower(domain)
}

// domainOf is the domain of an address, lower-cased; "" when there is none.
func domainOf(addr string) string {
	_, d, ok := strings.Cut(addr, "@")
	if !ok {
		return ""
	}
	return strings.TrimSuffix(strings.ToLower(d), ".")
}

// cleanHost reads an MTA name ("dns; mx1.fabrikam.com.", "[203.0.113.40]",
// "mx1.fabrikam.com (203.0.113.40)") into a lower-cased host name and, when the
// text carries one, an IP address. Both are "" when the text is neither.
func cleanHost(s string) (host, ip string) {
	s = strings.TrimSpace(s)
	if t, v, ok := strings.Cut(s, ";"); ok && len(t) < 12 && !strings.ContainsAny(t, " .") {
		s = strings.TrimSpace(v) // mta-name-type ";" mta-name
	}
	if i := strings.IndexAny(s, "(["); i >= 0 {
		rest := s[i+1:]
		if j := strings.IndexAny(rest, ")]"); j >= 0 {
			ip = cleanIP(rest[:j])
		}
		s = strings.TrimSpace(s[:i])
	}
	if f := strings.Fields(s); len(f) > 0 {
		s = f[0]
	}
	s = strings.TrimSuffix(strings.TrimRight(s, ".,:;'\""), ".")
	if a := cleanIP(s); a != "" {
		return "", a
	}
	if s == "" || len(s) > 253 || !hostRE().MatchString(s) || !strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		return "", ip
	}
	return strings.ToLower(s), ip
}

// cleanIP accepts "203.0.113.40", "203.0.113.40:25", "IPv6:2001:db8::1".
func cleanIP(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "IPv6:"), "ipv6:")
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String()
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().String()
	}
	return ""
}

// bounded cuts s to n runes, marking the cut.
func bounded(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// squash collapses runs of white space into one space.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }
