package bounce

import (
	"fmt"
	"io"
	"maps"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"time"
)

// assemble decides what the report says: the delivery-status fields where
// there are some (they are the report's machine-readable statement), the text
// for what they leave open, the picked recipient, the sender and the dates.
func (f *facts) assemble() *Bounce {
	recips, fromDSN := f.recipients()
	b := &Bounce{Recipients: recips, Picked: -1}

	b.Picked, b.PickedWhy = pick(recips)
	if b.Picked >= 0 {
		r := recips[b.Picked]
		b.Status, b.Reply = r.Code.Enhanced, r.Code.Reply
		b.Diagnostic, b.Action = r.Diagnostic, r.Action
		b.Recipient, b.RecipientDomain = r.Address, r.Domain
		b.RemoteMTA, b.RemoteIP = r.RemoteMTA, r.RemoteIP
		b.StatusFrom = FromText
		if fromDSN[b.Picked] {
			b.StatusFrom = FromDSN
		}
	}

	b.ReportingMTA = f.reporting
	if b.ReportingMTA == "" {
		b.ReportingMTA = f.textReporting
	}
	b.ReceivedFromMTA = f.receivedFrom
	b.Sender, b.SenderFrom = f.sender()
	b.MessageID = f.messageID()
	b.Subject = decodeWords(f.orig.Get("Subject"))
	if b.Subject == "" {
		b.Subject = f.textSubject
	}
	if b.Subject == "" && isReport(f.outer) {
		// Exchange keeps the original subject in its report's Thread-Topic.
		b.Subject = decodeWords(f.outer.Get("Thread-Topic"))
	}
	b.OriginalDate = parseDate(f.orig.Get("Date"))
	if b.OriginalDate.IsZero() {
		b.OriginalDate = f.created
	}
	b.Date, b.DateFrom = f.date(b)
	return b
}

// recipients merges the DSN's recipients with what the text says about them;
// the text's own recipients count only when there is no DSN.
func (f *facts) recipients() ([]Recipient, []bool) {
	out := append([]Recipient(nil), f.dsn...)
	fromDSN := make([]bool, len(out))
	for i := range fromDSN {
		fromDSN[i] = true
	}
	// Where each address (final or original) sits in out.
	at := map[string]int{}
	note := func(i int) {
		for _, a := range []string{out[i].Address, out[i].Original} {
			if k := strings.ToLower(a); k != "" {
				if _, ok := at[k]; !ok {
					at[k] = i
				}
			}
		}
	}
	for i := range out {
		note(i)
	}
	add := func(r Recipient, dsn bool) {
		out = append(out, r)
		fromDSN = append(fromDSN, dsn)
		note(len(out) - 1)
	}
	for _, t := range f.text {
		i, ok := at[strings.ToLower(t.Address)]
		if t.Address == "" {
			i, ok = 0, len(f.dsn) == 1
		}
		switch {
		case ok:
			fill(&out[i], *t)
		case len(f.dsn) == 0:
			add(*t, false)
		}
	}
	if len(out) == 0 && f.generic != "" {
		g := &facts{}
		g.status("", f.generic, "", "")
		add(*g.text[0], false)
	}
	// Recipients the text names without a status, when nothing names them.
	if len(f.dsn) == 0 && len(out) > 0 {
		for _, a := range f.listed {
			if _, ok := at[strings.ToLower(a)]; !ok {
				add(Recipient{Address: a}, false)
			}
		}
	}

	fallbacks := append([]string(nil), f.fallback...)
	fallbacks = append(fallbacks, f.listed...)
	for _, v := range f.outer.Values("X-Failed-Recipients") {
		for a := range strings.SplitSeq(v, ",") {
			fallbacks = append(fallbacks, cleanAddress(a))
		}
	}
	if to, err := mail.ParseAddressList(f.orig.Get("To")); err == nil && len(to) == 1 {
		fallbacks = append(fallbacks, cleanAddress(to[0].Address))
	}
	for i := range out {
		r := &out[i]
		if r.Address == "" {
			for _, a := range fallbacks {
				if _, taken := at[strings.ToLower(a)]; a != "" && !taken {
					r.Address = a
					note(i)
					break
				}
			}
		}
		r.Domain = domainOf(r.Address)
		if r.Domain == "" {
			r.Domain = domainOf(r.Original)
		}
		if r.RemoteMTA == "" && f.remote != "" {
			r.RemoteMTA, r.RemoteIP = f.remote, f.remoteIP
		} else if r.RemoteIP == "" && strings.EqualFold(r.RemoteMTA, f.remote) {
			r.RemoteIP = f.remoteIP
		}
		if r.Action == "" && !fromDSN[i] && r.Code != (Code{}) {
			switch {
			case f.delayed:
				r.Action = "delayed"
			case f.failed || r.Code.class() == '5':
				r.Action = "failed"
			}
		}
	}
	return out, fromDSN
}

// fill completes a DSN recipient with what the text says about it.
func fill(r *Recipient, t Recipient) {
	switch {
	case t.Code == (Code{}):
	case r.Code == (Code{}):
		r.Code, r.Nested = t.Code, t.Nested
	case r.Code.Enhanced == t.Code.Enhanced || t.Code.Enhanced == "":
		if r.Code.Reply == "" && t.Code.Reply != "" && (t.Code.Enhanced != "" || t.Code.Reply[0] == r.Code.class()) {
			r.Code.Reply = t.Code.Reply
		}
		if len(r.Nested) == 0 {
			for _, c := range t.Nested {
				r.Nested = appendCode(r.Nested, r.Code, c)
			}
		}
	}
	if r.Diagnostic == "" {
		r.Diagnostic = t.Diagnostic
	}
	if r.RemoteMTA == "" {
		r.RemoteMTA, r.RemoteIP = t.RemoteMTA, t.RemoteIP
	} else if r.RemoteIP == "" && strings.EqualFold(r.RemoteMTA, t.RemoteMTA) {
		r.RemoteIP = t.RemoteIP
	}
	if r.Original == "" && !strings.EqualFold(t.Original, r.Address) {
		r.Original = t.Original
	}
}

// pick chooses the recipient the report is about: the first permanent failure,
// else the first temporary one, else the first with a code.
func pick(rs []Recipient) (int, string) {
	withCode := 0
	for _, r := range rs {
		if r.Code != (Code{}) {
			withCode++
		}
	}
	if withCode == 0 {
		return -1, ""
	}
	of := func(what string) string {
		if withCode == 1 {
			for _, r := range rs {
				if r.Code != (Code{}) && r.Address == "" {
					return "the only status in the report; it names no recipient"
				}
			}
			return "the only recipient with a status"
		}
		return fmt.Sprintf("%s of %d recipients with a status", what, withCode)
	}
	for i, r := range rs {
		if r.Code != (Code{}) && r.Permanent() {
			return i, of("the first permanent failure")
		}
	}
	for i, r := range rs {
		if r.Code != (Code{}) && r.Transient() {
			return i, of("no permanent failure; the first temporary one")
		}
	}
	for i, r := range rs {
		if r.Code != (Code{}) {
			return i, of("the first")
		}
	}
	return -1, ""
}

// sender is the original sender: the returned message's own header first
// (From, Sender, Return-Path), then what the report says of it, then the
// report's addressee — a report goes back to the envelope sender.
func (f *facts) sender() (string, string) {
	for _, c := range []struct{ value, from string }{
		{f.orig.Get("From"), "original From"},
		{f.orig.Get("Sender"), "original Sender"},
		{f.orig.Get("Return-Path"), "original Return-Path"},
		{f.dsnSender, "X-Postfix-Sender"},
		{f.textSender, "Sender Address"},
	} {
		if a := headerAddress(c.value); a != "" {
			return a, c.from
		}
	}
	// Exchange's organization headers that name a sender, whichever the
	// returned header carries.
	for _, k := range slices.Sorted(maps.Keys(f.orig)) {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-ms-exchange-organization-") && strings.Contains(lk, "sender") {
			if a := headerAddress(f.orig.Get(k)); a != "" {
				return a, k
			}
		}
	}
	if isReport(f.outer) {
		if a := headerAddress(f.outer.Get("To")); a != "" && !systemAddress(a) {
			return a, "To of the report"
		}
	}
	return "", ""
}

// headerAddress reads the first address of a header value, with net/mail when
// it parses and by pattern when it does not; "<>" is no address.
func headerAddress(v string) string {
	v = strings.TrimSpace(v)
	if v == "" || v == "<>" {
		return ""
	}
	p := mail.AddressParser{WordDecoder: wordDecoder()}
	if list, err := p.ParseList(v); err == nil && len(list) > 0 {
		if a := cleanAddress(list[0].Address); a != "" {
			return a
		}
	}
	return cleanAddress(v)
}

func systemAddress(a string) bool {
	local, _, _ := strings.Cut(strings.ToLower(a), "@")
	return local == "postmaster" || local == "mailer-daemon" || strings.HasPrefix(local, "microsoftexchange")
}

// messageID is the returned message's Message-ID, else the In-Reply-To an
// Exchange report carries (it names the original message).
func (f *facts) messageID() string {
	if id := strings.TrimSpace(f.orig.Get("Message-Id")); id != "" {
		return bounded(id, 250)
	}
	if _, ok := f.outer["X-Ms-Exchange-Message-Is-Ndr"]; ok {
		if id := strings.TrimSpace(f.outer.Get("In-Reply-To")); strings.HasPrefix(id, "<") && strings.HasSuffix(id, ">") {
			return bounded(id, 250)
		}
	}
	return ""
}

func (f *facts) date(b *Bounce) (time.Time, string) {
	if isReport(f.outer) {
		if t := parseDate(f.outer.Get("Date")); !t.IsZero() {
			return t, "Date of the report"
		}
	}
	if b.Picked >= 0 && !b.Recipients[b.Picked].LastAttempt.IsZero() {
		return b.Recipients[b.Picked].LastAttempt, "Last-Attempt-Date"
	}
	if !f.arrival.IsZero() {
		return f.arrival, "Arrival-Date"
	}
	if !b.OriginalDate.IsZero() {
		return b.OriginalDate, "date of the original message"
	}
	return time.Time{}, ""
}

// wordDecoder decodes RFC 2047 words; a charset the standard library does not
// know is passed through, which keeps the ASCII an address is made of.
func wordDecoder() *mime.WordDecoder {
	return &mime.WordDecoder{CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil }}
}

func decodeWords(s string) string {
	s = strings.TrimSpace(s)
	if d, err := wordDecoder().DecodeHeader(s); err == nil {
		return bounded(d, 300)
	}
	return bounded(s, 300)
}
