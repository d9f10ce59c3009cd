package bounce

import (
	"bytes"
	"encoding/base64"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// Bounds on what a report may make the reader do: a report is three or four
// parts; a forwarded one nests once more.
const (
	maxDepth   = 6
	maxParts   = 64
	maxHeaders = 400
	// maxFieldLen bounds an unfolded header or DSN field.
	maxFieldLen = 16 << 10
	// maxRecipients bounds the recipients read from one report; the rest are
	// dropped. Exchange lists at most a few hundred in one NDR.
	maxRecipients = 500
)

// facts collects what the parts of a report say before assemble decides.
type facts struct {
	// From message/delivery-status fields.
	dsn          []Recipient
	dsnSeen      bool
	reporting    string
	receivedFrom string
	arrival      time.Time
	dsnSender    string // X-Postfix-Sender

	// From the report's text.
	text          []*Recipient
	textIdx       map[string]int
	textReporting string
	remote        string // "Receiving server:", "Remote server:" — for every recipient
	remoteIP      string
	textSender    string // Exchange Online "Sender Address:"
	textSubject   string
	created       time.Time // Exchange Online "Created Date:"
	delayed       bool
	failed        bool
	listed        []string // recipient addresses named without a status
	listedSet     map[string]bool
	fallback      []string // "Recipient Address:", "Your message to … couldn't be delivered"
	generic       string   // the first line with a code, when nothing structured had one

	texts []string // decoded text/plain parts, read after the walk
	htmls []string

	outer textproto.MIMEHeader // the report's own header
	orig  textproto.MIMEHeader // the returned message's header
}

func (f *facts) hasStatus() bool {
	for _, r := range f.dsn {
		if r.Code != (Code{}) {
			return true
		}
	}
	for _, r := range f.text {
		if r.Code != (Code{}) {
			return true
		}
	}
	return f.generic != ""
}

func (f *facts) setOriginal(h textproto.MIMEHeader) {
	if f.orig == nil && len(h) > 0 {
		f.orig = h
	}
}

// headerLineRE is a header field's start: a field name (RFC 5322 ftext) and a
// colon.
var headerLineRE = lazyre.New(`^[!-9;-~]{1,76}:`)

// envelope headers one of which a message's header block has, and DSN fields,
// which mean a pasted block is a delivery-status part rather than a message.
var (
	messageFields = []string{"from", "to", "subject", "date", "received", "message-id", "return-path", "mime-version", "delivered-to"}
	dsnFields     = map[string]bool{
		"reporting-mta": true, "received-from-mta": true, "arrival-date": true, "original-envelope-id": true,
		"dsn-gateway": true, "x-postfix-queue-id": true, "x-postfix-sender": true,
		"final-recipient": true, "original-recipient": true, "x-actual-recipient": true, "action": true,
		"status": true, "diagnostic-code": true, "remote-mta": true, "last-attempt-date": true,
		"final-log-id": true, "will-retry-until": true,
	}
)

func fieldName(line string) string {
	m := headerLineRE().FindString(line)
	if m == "" {
		return ""
	}
	return strings.ToLower(m[:len(m)-1])
}

// findMessage finds where a message starts in a paste: the first run of header
// lines that has a Content-Type (junk before it is dropped), or a run at the
// very start that looks like a message's header rather than delivery-status
// fields.
func findMessage(text string) (string, bool) {
	offset, runStart, runLine := 0, -1, 0
	var names []string
	line := 0
	for offset <= len(text) {
		end := strings.IndexByte(text[offset:], '\n')
		var l string
		if end < 0 {
			l = text[offset:]
			end = len(text) - offset
		} else {
			l = text[offset : offset+end]
		}
		isField := fieldName(l) != ""
		isCont := runStart >= 0 && (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) && strings.TrimSpace(l) != ""
		switch {
		case isField:
			if runStart < 0 {
				runStart, runLine, names = offset, line, nil
			}
			names = append(names, fieldName(l))
		case isCont:
		default:
			if runStart >= 0 && messageRun(names, runLine == 0) {
				return text[runStart:], true
			}
			runStart = -1
		}
		offset += end + 1
		line++
	}
	if runStart >= 0 && messageRun(names, runLine == 0) {
		return text[runStart:], true
	}
	return "", false
}

func messageRun(names []string, atStart bool) bool {
	hasCT, hasMsg, hasDSN := false, false, false
	for _, n := range names {
		switch {
		case n == "content-type":
			hasCT = true
		case dsnFields[n]:
			hasDSN = true
		}
		for _, m := range messageFields {
			if n == m {
				hasMsg = true
			}
		}
	}
	if hasCT && !(hasDSN && !hasMsg) {
		return true
	}
	return atStart && hasMsg && !hasDSN && len(names) >= 2
}

// readMessage reads one message: net/mail first, a lenient header reader when
// its header does not parse.
func readMessage(f *facts, raw string, depth int) {
	var h textproto.MIMEHeader
	var body string
	if msg, err := mail.ReadMessage(strings.NewReader(raw)); err == nil {
		h = textproto.MIMEHeader(msg.Header)
		b, _ := io.ReadAll(msg.Body)
		body = string(b)
	} else {
		h, body = parseHeaderBlock(raw)
	}
	if f.outer == nil {
		f.outer = h
	}
	walk(f, h, body, depth)
}

// walk reads one MIME entity and, for a multipart, its parts.
func walk(f *facts, h textproto.MIMEHeader, body string, depth int) {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt == "" {
		mt = "text/plain"
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		if depth >= maxDepth || params["boundary"] == "" || !walkParts(f, body, params["boundary"], depth) {
			f.texts = append(f.texts, body)
		}
	case mt == "message/delivery-status" || mt == "message/global-delivery-status":
		parseDSN(f, strings.Split(decode(body, h.Get("Content-Transfer-Encoding")), "\n"))
	case mt == "message/rfc822" || mt == "message/global":
		inner := decode(body, h.Get("Content-Transfer-Encoding"))
		ih, _ := parseHeaderBlock(inner)
		if !f.dsnSeen && depth < maxDepth && isReport(ih) {
			// A report forwarded as an attachment: the report is the inner
			// message, and its addressee the original sender.
			f.outer = nil
			readMessage(f, inner, depth+1)
			return
		}
		f.setOriginal(ih)
	case mt == "text/rfc822-headers" || mt == "text/rfc822-header" || mt == "message/global-headers":
		ih, _ := parseHeaderBlock(decode(body, h.Get("Content-Transfer-Encoding")))
		f.setOriginal(ih)
	case mt == "text/html":
		f.htmls = append(f.htmls, htmlText(decode(body, h.Get("Content-Transfer-Encoding"))))
	case strings.HasPrefix(mt, "text/"):
		f.texts = append(f.texts, decode(body, h.Get("Content-Transfer-Encoding")))
	}
}

// walkParts reads the parts of a multipart body; false when not one part could
// be read (a wrong or missing boundary), so the body is read as text instead.
func walkParts(f *facts, body, boundary string, depth int) bool {
	mr := multipart.NewReader(strings.NewReader(body), boundary)
	n := 0
	for ; n < maxParts; n++ {
		p, err := mr.NextRawPart()
		if err != nil {
			break
		}
		data, err := io.ReadAll(io.LimitReader(p, MaxSize))
		if err != nil && len(data) == 0 {
			break
		}
		walk(f, textproto.MIMEHeader(p.Header), string(data), depth+1)
	}
	return n > 0
}

// decode undoes a Content-Transfer-Encoding; what does not decode is kept as it
// is, since a half-readable report is still worth reading.
func decode(body, cte string) string {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		return decodeQP(body)
	case "base64":
		clean := strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, body)
		if b, err := base64.StdEncoding.DecodeString(clean); err == nil {
			return normalizeEOL(string(b))
		}
		if b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(clean, "=")); err == nil {
			return normalizeEOL(string(b))
		}
		return body
	}
	return body
}

// decodeQP decodes quoted-printable with mime/quotedprintable and, where that
// refuses a malformed escape, by hand: "=XX" is the byte, "=" at the end of a
// line joins it to the next, anything else is kept.
func decodeQP(s string) string {
	if b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(s))); err == nil {
		return normalizeEOL(string(b))
	}
	var out bytes.Buffer
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '=' {
			out.WriteByte(c)
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\n':
			i++
		case i+2 < len(s) && s[i+1] == '\r' && s[i+2] == '\n':
			i += 2
		case i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			out.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			out.WriteByte(c)
		}
	}
	return normalizeEOL(out.String())
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

func normalizeEOL(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

var (
	htmlBreakRE = lazyre.New(`(?i)<\s*(br|/p|/div|/tr|/li|/h\d|/pre|p|div|tr|li|pre)\b[^>]*>`)
	htmlCellRE  = lazyre.New(`(?i)<\s*/t[dh]\s*>`)
	htmlDropRE  = lazyre.New(`(?is)<\s*(style|script|head)\b.*?<\s*/\s*(style|script|head)\s*>`)
	htmlTagRE   = lazyre.New(`(?s)<[^>]*>`)
)

// htmlText renders an HTML body as the lines a reader sees: block ends become
// line breaks, table cells tabs, entities their characters.
func htmlText(s string) string {
	s = htmlDropRE().ReplaceAllString(s, "")
	s = htmlBreakRE().ReplaceAllString(s, "\n")
	s = htmlCellRE().ReplaceAllString(s, "\t")
	s = htmlTagRE().ReplaceAllString(s, "")
	return html.UnescapeString(s)
}

// parseHeaderBlock reads header fields leniently from the start of text (blank
// lines before them are skipped) up to the first blank line or the first line
// that is neither a field nor a continuation; it returns the fields and what
// follows them.
func parseHeaderBlock(text string) (textproto.MIMEHeader, string) {
	h := textproto.MIMEHeader{}
	lines := strings.Split(text, "\n")
	var name string
	var value strings.Builder
	flush := func() {
		if name != "" && len(h) < maxHeaders {
			h.Add(textproto.CanonicalMIMEHeaderKey(name), strings.TrimSpace(value.String()))
		}
		name = ""
		value.Reset()
	}
	i := 0
	for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
		i++
	}
	for ; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" {
			i++
			break
		}
		if (l[0] == ' ' || l[0] == '\t') && name != "" {
			// No field worth reading is longer; the rest of a huge one is
			// dropped rather than copied.
			if value.Len() < maxFieldLen {
				value.WriteByte(' ')
				value.WriteString(strings.TrimSpace(l))
			}
			continue
		}
		if m := headerLineRE().FindString(l); m != "" {
			flush()
			name = m[:len(m)-1]
			value.WriteString(l[len(m):])
			continue
		}
		break
	}
	flush()
	return h, strings.Join(lines[min(i, len(lines)):], "\n")
}

// parseDSN reads delivery-status fields (RFC 3464 section 2): a per-message
// group, then a group per recipient, groups separated by blank lines. It stops
// at the first group that is not DSN fields once it has read one that is.
func parseDSN(f *facts, lines []string) {
	var group []string
	found := false
	done := false
	end := func() {
		if len(group) == 0 || done {
			group = nil
			return
		}
		h, _ := parseHeaderBlock(strings.Join(group, "\n"))
		group = nil
		kind := dsnGroupKind(h)
		switch {
		case kind == "recipient":
			if len(f.dsn) < maxRecipients {
				f.dsn = append(f.dsn, dsnRecipient(h))
			}
		case kind == "message":
			if f.reporting == "" {
				f.reporting, _ = cleanHost(h.Get("Reporting-Mta"))
			}
			if f.receivedFrom == "" {
				f.receivedFrom, _ = cleanHost(h.Get("Received-From-Mta"))
			}
			if f.arrival.IsZero() {
				f.arrival = parseDate(h.Get("Arrival-Date"))
			}
			if f.dsnSender == "" {
				f.dsnSender = cleanAddress(h.Get("X-Postfix-Sender"))
			}
		case found:
			done = true
			return
		default:
			return
		}
		found = true
		f.dsnSeen = true
	}
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			end()
			continue
		}
		group = append(group, l)
	}
	end()
}

func dsnGroupKind(h textproto.MIMEHeader) string {
	for _, k := range []string{"Final-Recipient", "Original-Recipient", "Action", "Status", "X-Actual-Recipient"} {
		if h.Get(k) != "" {
			return "recipient"
		}
	}
	for _, k := range []string{"Reporting-Mta", "Received-From-Mta", "Arrival-Date", "Original-Envelope-Id", "Dsn-Gateway", "X-Postfix-Sender", "X-Postfix-Queue-Id"} {
		if h.Get(k) != "" {
			return "message"
		}
	}
	return ""
}

// diagTypeRE is a Diagnostic-Code's diagnostic-type prefix ("smtp;", "X-Unix;").
var diagTypeRE = lazyre.New(`^[A-Za-z][A-Za-z0-9-]{0,20}\s*;\s*`)

func dsnRecipient(h textproto.MIMEHeader) Recipient {
	r := Recipient{
		Address:     cleanAddress(h.Get("Final-Recipient")),
		Original:    cleanAddress(h.Get("Original-Recipient")),
		Diagnostic:  bounded(squash(diagTypeRE().ReplaceAllString(h.Get("Diagnostic-Code"), "")), 1000),
		LastAttempt: parseDate(h.Get("Last-Attempt-Date")),
	}
	if r.Address == "" {
		r.Address = cleanAddress(h.Get("X-Actual-Recipient"))
	}
	if f := strings.Fields(h.Get("Action")); len(f) > 0 {
		r.Action = strings.ToLower(strings.TrimRight(f[0], ";,"))
	}
	r.RemoteMTA, r.RemoteIP = cleanHost(h.Get("Remote-Mta"))
	if m := lastServerRE().FindStringSubmatch(r.Diagnostic); m != nil && r.RemoteMTA == "" {
		r.RemoteMTA, _ = cleanHost(m[1])
	}
	if m := lastIPRE().FindStringSubmatch(r.Diagnostic); m != nil && r.RemoteIP == "" {
		r.RemoteIP = cleanIP(m[1])
	}
	codes := findCodes(r.Diagnostic)
	status := ""
	if f := strings.Fields(h.Get("Status")); len(f) > 0 {
		status = f[0]
		if r.Diagnostic == "" && len(f) > 1 {
			// "Status: 4.0.0 (mail.northwind.example: host name lookup failure)"
			r.Diagnostic = bounded(strings.Trim(strings.Join(f[1:], " "), "()"), 1000)
		}
	}
	e, ok := parseEnhanced(status)
	if !ok {
		r.Code, r.Nested = ownAndNested(codes)
		return r
	}
	own := Code{Enhanced: e.String()}
	at := -1
	for i, c := range codes {
		if c.Enhanced == own.Enhanced {
			own.Reply, at = c.Reply, i
			break
		}
	}
	switch {
	case at >= 0:
	case len(codes) > 0 && e.subject == 0 && e.detail == 0 && codes[0].Enhanced != "" && codes[0].Enhanced[0] == own.Enhanced[0]:
		// A generic X.0.0 (sendmail, RFC 3464's own examples) with the
		// remote's specific code in the diagnostic: the specific one says more.
		own, at = codes[0], 0
	case len(codes) > 0 && codes[0].Enhanced == "" && codes[0].Reply[0] == own.Enhanced[0]:
		own.Reply, at = codes[0].Reply, 0
	}
	r.Code = own
	for i, c := range codes {
		if i != at {
			r.Nested = appendCode(r.Nested, own, c)
		}
	}
	return r
}

// ownAndNested splits the codes of one status text: the first is the report's
// own, the rest nested. A bare enhanced code followed by the same code with a
// reply ("#5.5.4 smtp;550 5.5.4 …", Exchange 2010) is one code.
func ownAndNested(codes []Code) (Code, []Code) {
	if len(codes) == 0 {
		return Code{}, nil
	}
	own, rest := codes[0], codes[1:]
	if own.Reply == "" {
		for i, c := range rest {
			if c.Enhanced == own.Enhanced && c.Reply != "" {
				own.Reply = c.Reply
				rest = append(rest[:i:i], rest[i+1:]...)
				break
			}
		}
	}
	var nested []Code
	for _, c := range rest {
		nested = appendCode(nested, own, c)
	}
	return own, nested
}

// appendCode adds c to nested unless it repeats own or a code already there;
// nested stays short.
func appendCode(nested []Code, own, c Code) []Code {
	if c == own || c.class() == '2' || len(nested) >= 6 {
		return nested
	}
	for _, n := range nested {
		if n == c {
			return nested
		}
	}
	return append(nested, c)
}

// parseDate reads an RFC 5322 date ("Thu, 7 Jul 1994 17:15:49 -0400 (EDT)").
func parseDate(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	if t, err := mail.ParseDate(s); err == nil {
		return t
	}
	// A trailing comment mail.ParseDate does not take, or a doubled space.
	if i := strings.Index(s, "("); i > 0 {
		if t, err := mail.ParseDate(squash(s[:i])); err == nil {
			return t
		}
	}
	if t, err := mail.ParseDate(squash(s)); err == nil {
		return t
	}
	return time.Time{}
}

// ndrSubjects start the subject of a report (Exchange in English, French,
// Italian and Swedish as the collected samples show, and common MTAs).
var ndrSubjects = []string{
	"undeliverable", "undelivered mail", "delivery status notification", "delivery has failed",
	"delivery delayed", "delayed mail", "mail delivery failed", "returned mail", "failure notice",
	"non remis", "non_remis", "non recapitabile", "olevererbart", "delivery failure",
}

// isReport tells a report's header from an ordinary message's: its type, the
// header Exchange marks its NDRs with, its subject or its sender.
func isReport(h textproto.MIMEHeader) bool {
	if len(h) == 0 {
		return false
	}
	if mt, params, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil && mt == "multipart/report" && strings.EqualFold(params["report-type"], "delivery-status") {
		return true
	}
	if _, ok := h["X-Ms-Exchange-Message-Is-Ndr"]; ok {
		return true
	}
	subject := strings.ToLower(decodeWords(h.Get("Subject")))
	for _, p := range ndrSubjects {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	local, _, _ := strings.Cut(strings.ToLower(cleanAddress(h.Get("From"))), "@")
	return local == "postmaster" || local == "mailer-daemon" || strings.HasPrefix(local, "microsoftexchange")
}
