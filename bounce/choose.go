package bounce

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Param is one parameter a playbook declares.
type Param struct {
	Name string
	// Type is the playbook parameter type (email, domain, hostname, ip,
	// identity, string, …); a value is offered only when it has that shape.
	Type string
	// Required marks a parameter the playbook cannot run without (required and
	// without a default); one Choose cannot fill is listed in Choice.Missing.
	Required bool
}

// Candidate is a playbook as Choose sees it: its id, its `matches` (NDR codes
// such as "5.5.4", reply and code such as "550 5.5.4", a bare reply code, or
// phrases such as "service unavailable") and its parameters.
type Candidate struct {
	ID      string
	Matches []string
	Params  []Param
}

// Choice is one playbook Choose offers.
type Choice struct {
	ID string
	// Score orders choices; it means nothing across two calls.
	Score int
	// Matched is the candidate's match that fit, or for a closest playbook the
	// code of its that is nearest to the report's.
	Matched string
	// Reason says in a sentence why it was offered.
	Reason string
	// Recipient is the recipient whose answer the choice rests on: the picked
	// one, or another recipient of the same report.
	Recipient string
	// Params are values for the playbook's parameters, as text for its own
	// validation (e.g. sender=<original sender> for a `sender` of type email).
	Params map[string]string
	// Missing lists the required parameters the report could not fill.
	Missing []string
}

// Selection is what Choose found: the playbooks that fit, best first, and when
// none fits the closest ones.
type Selection struct {
	Fits    []Choice
	Closest []Choice
}

// Scores. A reply with its code is the most specific match, then the code,
// then a bare reply code (only for a report without an enhanced code), then a
// phrase. Evidence from the codes nested in the picked recipient's diagnostic,
// or from another recipient, counts less than the picked recipient's own code.
const (
	scoreReplyCode = 100
	scoreCode      = 80
	scoreReply     = 50
	scorePhrase    = 40
	bonusPerMatch  = 5 // each further match of the same playbook
	penaltyNested  = 25
	penaltyOther   = 30
	// RFC 3463 on X.4.7 (delivery time expired): "the code for the actual
	// problem found when delivery was attempted should be returned rather
	// than this code". Behind an expiry or a delay the nested reply is that
	// problem, so it counts nearly as much as a code of the report's own.
	penaltyBehindExpiry = 5
)

// Closeness of a playbook's code to the report's when nothing fits.
const (
	nearSame          = 70 // the very code, listed inside a phrase that did not match
	nearCondition     = 60 // same subject.detail, other class: 4.4.7 and 5.4.7
	nearClassSubject  = 50 // 5.5.x
	nearSubject       = 30 // x.7.x
	nearClass         = 10 // 5.x.x
	nearPhrase        = 25 // its phrase is in the reply, but the code is not its
	maxBonusedMatches = 3
)

type matchKind int

const (
	kindPhrase matchKind = iota
	kindReplyCode
	kindCode
	kindReply
)

type matcher struct {
	raw      string
	kind     matchKind
	reply    string
	code     enhanced
	phrase   string     // lower-cased, white space squashed
	embedded []enhanced // codes written inside a phrase
}

func parseMatch(raw string) matcher {
	m := matcher{raw: strings.TrimSpace(raw), phrase: squash(strings.ToLower(raw))}
	f := strings.Fields(m.phrase)
	switch {
	case len(f) == 1 && isReply(f[0]):
		m.kind, m.reply = kindReply, f[0]
		return m
	case len(f) == 1:
		if e, ok := parseEnhanced(f[0]); ok {
			m.kind, m.code = kindCode, e
			return m
		}
	case len(f) == 2 && isReply(f[0]):
		if e, ok := parseEnhanced(f[1]); ok {
			m.kind, m.reply, m.code = kindReplyCode, f[0], e
			return m
		}
	}
	for _, c := range findCodes(m.phrase) {
		if e, ok := parseEnhanced(c.Enhanced); ok {
			m.embedded = append(m.embedded, e)
		}
	}
	return m
}

// evidence is one code of the report Choose weighs.
type evidence struct {
	recip   int
	code    Code
	e       enhanced
	hasE    bool
	nested  bool
	text    string // the recipient's diagnostic, lower-cased; own evidence only
	penalty int
}

func (b *Bounce) evidence() []evidence {
	order := make([]int, 0, len(b.Recipients))
	if b.Picked >= 0 && b.Picked < len(b.Recipients) {
		order = append(order, b.Picked)
	}
	for i := range b.Recipients {
		if i != b.Picked {
			order = append(order, i)
		}
	}
	var out []evidence
	for _, i := range order {
		r := b.Recipients[i]
		if r.Code == (Code{}) {
			continue
		}
		base := 0
		if i != b.Picked {
			base = penaltyOther
		}
		e, ok := parseEnhanced(r.Code.Enhanced)
		out = append(out, evidence{recip: i, code: r.Code, e: e, hasE: ok, text: squash(strings.ToLower(r.Diagnostic)), penalty: base})
		nested := penaltyNested
		if ok && e.subject == 4 && e.detail == 7 {
			nested = penaltyBehindExpiry
		}
		for _, c := range r.Nested {
			e, ok := parseEnhanced(c.Enhanced)
			out = append(out, evidence{recip: i, code: c, e: e, hasE: ok, nested: true, penalty: base + nested})
		}
	}
	return out
}

type hit struct {
	score int
	ev    evidence
	m     matcher
	weak  bool
}

// Choose returns the candidates that fit the report, best first, each with the
// parameters the report can fill; when none fits, the closest ones by code
// (the same condition in the other class, then the same class and subject,
// then the same subject, then the same class). A phrase found in the reply
// fits only when the report's code is one the candidate lists, or it lists no
// code at all: "550 5.7.708 Service unavailable. Access denied …" is not a
// 5.5.4 "service unavailable". Ties keep the candidates' order.
func Choose(b *Bounce, cands []Candidate) Selection {
	var sel Selection
	if b == nil {
		return sel
	}
	evs := b.evidence()
	type scored struct {
		c    Candidate
		best hit
		weak hit
		n    int
	}
	var all []scored
	seen := map[string]bool{}
	for _, c := range cands {
		if seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		ms := make([]matcher, 0, len(c.Matches))
		for _, raw := range c.Matches {
			if strings.TrimSpace(raw) != "" {
				ms = append(ms, parseMatch(raw))
			}
		}
		declared := declaredCodes(ms)
		sc := scored{c: c}
		strong := map[int]bool{}
		for _, ev := range evs {
			for mi, m := range ms {
				h, ok := matchOne(m, ev, declared, b.Recipients[ev.recip])
				if !ok {
					continue
				}
				if h.weak {
					if h.score > sc.weak.score {
						sc.weak = h
					}
					continue
				}
				strong[mi] = true
				if h.score > sc.best.score {
					sc.best = h
				}
			}
		}
		sc.n = len(strong)
		all = append(all, sc)
	}
	for _, sc := range all {
		if sc.best.score <= 0 {
			continue
		}
		score := sc.best.score + bonusPerMatch*min(sc.n-1, maxBonusedMatches)
		sel.Fits = append(sel.Fits, b.choice(sc.c, score, sc.best.m.raw, fitReason(b, sc.best), sc.best.ev.recip))
	}
	slices.SortStableFunc(sel.Fits, func(x, y Choice) int { return y.Score - x.Score })
	if len(sel.Fits) > 0 {
		return sel
	}
	for _, sc := range all {
		ms := make([]matcher, 0, len(sc.c.Matches))
		for _, raw := range sc.c.Matches {
			ms = append(ms, parseMatch(raw))
		}
		score, matched, reason, recip := nearest(b, evs, ms)
		if sc.weak.score > 0 {
			if score <= 0 {
				recip = sc.weak.ev.recip
				matched = sc.weak.m.raw
				reason = fmt.Sprintf("%q appears in the reply, but %s is not a code it lists", sc.weak.m.raw, sc.weak.ev.code)
				score = 0
			} else {
				reason += fmt.Sprintf("; and %q appears in the reply", sc.weak.m.raw)
			}
			score += nearPhrase
		}
		if score > 0 {
			sel.Closest = append(sel.Closest, b.choice(sc.c, score, matched, reason, recip))
		}
	}
	slices.SortStableFunc(sel.Closest, func(x, y Choice) int { return y.Score - x.Score })
	return sel
}

// declaredCodes are the enhanced codes a candidate names anywhere in its matches.
func declaredCodes(ms []matcher) []enhanced {
	var out []enhanced
	for _, m := range ms {
		switch m.kind {
		case kindCode, kindReplyCode:
			out = append(out, m.code)
		case kindPhrase:
			out = append(out, m.embedded...)
		}
	}
	return out
}

func matchOne(m matcher, ev evidence, declared []enhanced, r Recipient) (hit, bool) {
	base := 0
	weak := false
	switch m.kind {
	case kindReplyCode:
		if ev.hasE && ev.e == m.code && ev.code.Reply == m.reply {
			base = scoreReplyCode
		}
	case kindCode:
		if ev.hasE && ev.e == m.code {
			base = scoreCode
		}
	case kindReply:
		if !ev.hasE && ev.code.Reply == m.reply {
			base = scoreReply
		}
	case kindPhrase:
		if !ev.nested && m.phrase != "" && containsPhrase(ev.text, m.phrase) {
			base = scorePhrase + min(len(m.phrase)/4, 15)
			weak = len(m.embedded) == 0 && ev.hasE && len(declared) > 0 && !declaresAny(declared, r)
		}
	}
	if base == 0 {
		return hit{}, false
	}
	return hit{score: base - ev.penalty, ev: ev, m: m, weak: weak}, base-ev.penalty > 0
}

// declaresAny reports whether one of the recipient's codes, own or nested, is
// among the declared ones.
func declaresAny(declared []enhanced, r Recipient) bool {
	for _, c := range append([]Code{r.Code}, r.Nested...) {
		if e, ok := parseEnhanced(c.Enhanced); ok && slices.Contains(declared, e) {
			return true
		}
	}
	return false
}

// containsPhrase finds phrase in text at word boundaries.
func containsPhrase(text, phrase string) bool {
	for from := 0; from <= len(text); {
		i := strings.Index(text[from:], phrase)
		if i < 0 {
			return false
		}
		i += from
		j := i + len(phrase)
		before, _ := utf8.DecodeLastRuneInString(text[:i])
		after, _ := utf8.DecodeRuneInString(text[j:])
		first, _ := utf8.DecodeRuneInString(phrase)
		last, _ := utf8.DecodeLastRuneInString(phrase)
		okBefore := i == 0 || !wordRune(first) || !wordRune(before)
		okAfter := j == len(text) || !wordRune(last) || !wordRune(after)
		if okBefore && okAfter {
			return true
		}
		from = i + 1
	}
	return false
}

func wordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// nearest is how close a candidate's codes come to the report's.
func nearest(b *Bounce, evs []evidence, ms []matcher) (int, string, string, int) {
	best, matched, reason, recip := 0, "", "", -1
	for _, m := range ms {
		var codes []enhanced
		switch m.kind {
		case kindCode, kindReplyCode:
			codes = []enhanced{m.code}
		case kindPhrase:
			codes = m.embedded
		}
		for _, d := range codes {
			for _, ev := range evs {
				if !ev.hasE {
					continue
				}
				rel, why := relation(d, ev.e, m)
				if s := rel - ev.penalty; s > best {
					best, matched, recip = s, d.String(), ev.recip
					reason = fmt.Sprintf("no playbook lists %s; this one handles %s, %s", ev.code, d, why)
					if ev.nested {
						reason = fmt.Sprintf("no playbook lists %s (inside the report's %s); this one handles %s, %s", ev.code, b.Recipients[ev.recip].Code, d, why)
					}
				}
			}
		}
	}
	return best, matched, reason, recip
}

// RFC 3463 section 3's subjects.
var subjects = map[int]string{
	0: "other or undefined", 1: "addressing", 2: "mailbox", 3: "mail system",
	4: "network and routing", 5: "mail delivery protocol", 6: "message content", 7: "security or policy",
}

func className(c int) string {
	switch c {
	case 2:
		return "success"
	case 4:
		return "a temporary failure"
	default:
		return "a permanent failure"
	}
}

func relation(d, e enhanced, m matcher) (int, string) {
	subject := subjects[e.subject]
	if subject == "" {
		subject = "subject " + fmt.Sprint(e.subject)
	}
	switch {
	case d == e:
		return nearSame, fmt.Sprintf("this very code, though its wording %q is not in the reply", m.raw)
	case d.subject == e.subject && d.detail == e.detail:
		return nearCondition, fmt.Sprintf("the same condition (x.%d.%d) as %s", e.subject, e.detail, className(d.class))
	case d.class == e.class && d.subject == e.subject:
		return nearClassSubject, fmt.Sprintf("the same class and subject (%d.%d.x, %s)", e.class, e.subject, subject)
	case d.subject == e.subject:
		return nearSubject, fmt.Sprintf("the same subject (x.%d.x, %s) as %s", e.subject, subject, className(d.class))
	case d.class == e.class:
		return nearClass, fmt.Sprintf("the same class (%s)", className(e.class))
	}
	return 0, ""
}

func fitReason(b *Bounce, h hit) string {
	r := b.Recipients[h.ev.recip]
	for1 := ""
	if r.Address != "" {
		for1 = " for " + r.Address
	}
	var what string
	switch {
	case h.m.kind == kindPhrase:
		what = fmt.Sprintf("the reply%s says %q", for1, h.m.raw)
	case h.ev.nested:
		what = fmt.Sprintf("the reply behind the report's %s%s is %s", r.Code, for1, h.ev.code)
	default:
		what = fmt.Sprintf("the status%s is %s", for1, h.ev.code)
	}
	if h.ev.recip != b.Picked && b.Picked >= 0 {
		what += fmt.Sprintf(" (the report's first failure, %s, got %s)", b.Recipient, b.Code())
	}
	return fmt.Sprintf("matches %q: %s", h.m.raw, what)
}

func (b *Bounce) choice(c Candidate, score int, matched, reason string, recip int) Choice {
	ch := Choice{ID: c.ID, Score: score, Matched: matched, Reason: reason}
	var r Recipient
	if recip >= 0 && recip < len(b.Recipients) {
		r = b.Recipients[recip]
		ch.Recipient = r.Address
	}
	for _, p := range c.Params {
		if v := b.valueFor(p, r); v != "" {
			if ch.Params == nil {
				ch.Params = map[string]string{}
			}
			ch.Params[p.Name] = v
		} else if p.Required {
			ch.Missing = append(ch.Missing, p.Name)
		}
	}
	return ch
}

// valueFor fills a parameter by its name, when the value has the parameter's
// type. The names are the ones a playbook author would reach for; a name not
// here is left to the admin. `ip` is not filled: in a playbook it is our own
// sending address (smtp-421), which a bounce does not state.
func (b *Bounce) valueFor(p Param, r Recipient) string {
	var v string
	switch strings.ToLower(p.Name) {
	case "sender", "original_sender", "from", "sender_address":
		v = b.Sender
	case "recipient", "rcpt", "to", "recipient_address":
		v = r.Address
	case "domain", "recipient_domain", "destination_domain", "remote_domain":
		v = r.Domain
	case "sending_domain", "sender_domain", "from_domain":
		v = domainOf(b.Sender)
	case "remote_host", "remote_server", "remote_mta", "receiving_server":
		v = r.RemoteMTA
	case "remote_ip":
		v = r.RemoteIP
	case "generating_server", "reporting_mta", "reporting_server":
		v = b.ReportingMTA
	case "message_id", "internet_message_id":
		v = b.MessageID
	case "code", "status", "status_code", "ndr_code":
		v = r.Code.String()
	}
	if v == "" || !fitsType(v, p.Type) {
		return ""
	}
	return v
}

// fitsType is a shape check, not validation: the playbook's own parameter
// parser validates what the admin finally runs.
func fitsType(v, typ string) bool {
	switch strings.ToLower(typ) {
	case "email":
		return cleanAddress(v) == v
	case "domain":
		h, _ := cleanHost(v)
		return h == v && strings.Contains(v, ".")
	case "hostname":
		h, _ := cleanHost(v)
		return h == v
	case "ip":
		_, err := netip.ParseAddr(v)
		return err == nil
	case "identity":
		return len(v) <= 256 && strings.IndexFunc(v, func(r rune) bool {
			return !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(" ._-@\\", r))
		}) < 0
	case "string", "":
		return utf8.RuneCountInString(v) <= 200 && strings.IndexFunc(v, unicode.IsControl) < 0
	}
	return false
}
