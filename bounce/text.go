package bounce

import (
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// Section markers, lower-cased. Exchange localises its labels: English, French,
// Italian and Swedish are the ones seen in collected real reports (see
// testdata/README.md); a French report read from ISO-8859-1 keeps "é" as one
// byte, so the French labels are matched around their accented letters.
var (
	diagMarkers = []string{
		"diagnostic information for administrators", "more info for email admins", "error details",
		"informations de diagnostic pour les administrateurs", "informazioni di diagnostica per gli amministratori",
		"diagnostisk information f",
	}
	origHeaderMarkers = []string{
		"original message headers", "intestazioni originali del messaggio", "ursprungshuvuden",
		"------ this is a copy of the message, including all the headers",
	}
	delayMarkers = []string{
		"delivery is delayed to these recipients", "hasn't been delivered yet", "this is a warning only",
		"will continue to be attempted", "still being retried", "will be retried until",
	}
	failMarkers = []string{
		"delivery has failed to these recipients", "couldn't be delivered", "could not be delivered",
		"wasn't delivered", "permanent fatal error", "failed permanently", "rejected your message",
	}
)

var (
	labelRE = lazyre.New(`^([A-Za-z][A-Za-z\x80-\xff\x{FFFD} \-]{1,40}?)\s*:\s*(.*)$`)
	// "Remote Server at mx1.fabrikam.com (203.0.113.40) returned '…'"
	remoteAtRE = lazyre.New(`(?i)remote server at\s+([^\s(']+)\s*(?:\(([^)]*)\))?`)
	// "[LastAttemptedServerName=…] [LastAttemptedIP=198.51.100.10:25]", "[Hostname=…]"
	lastServerRE = lazyre.New(`(?i)\[(?:LastAttemptedServerName|Hostname)=([^\]\s]+)\]`)
	lastIPRE     = lazyre.New(`(?i)\[LastAttemptedIP=([^\]\s]+)\]`)
	// Postfix: "<bob@fabrikam.com> (expanded from <b@fabrikam.com>): host mx[ip] said: …"
	postfixRE     = lazyre.New(`^<([^<>\s]+@[^<>\s]+)>(?:\s*\(expanded from\s*<([^<>\s]+)>\))?\s*:\s*(.*)$`)
	saidRE        = lazyre.New(`(?i)host\s+(\S+?)\[([^\]]*)\]\s+said:\s*(.*)$`)
	connectToRE   = lazyre.New(`(?i)connect to\s+(\S+?)\[([^\]]*)\]`)
	inReplyToRE   = lazyre.New(`(?i)\s*\(in reply to [^)]*\)\s*$`)
	talkingToRE   = lazyre.New(`(?i)^\.\.\.\s*while talking to\s+([^\s:]+?)\.?:\s*$`)
	eximHostRE    = lazyre.New(`(?i)host\s+(\S+)\s+\[([^\]]+)\]`)
	rejectedByRE  = lazyre.New(`(?i)^(\S+)\s+(?:rejected your message to the following|gave this error:)`)
	orgRejectedRE = lazyre.New(`(?i)organization rejected your message:\s*\[?([^\s\]]+?)\]?\.?\s*$`)
	yourMsgRE     = lazyre.New(`(?i)your message (?:to\s+(\S+?)\s+couldn't be delivered|wasn't delivered to\s+(\S+?)\s+because)`)
	// Exchange Online's "Created Date: 11/23/2026 10:02:11 AM".
	usDateLayouts = []string{"1/2/2006 3:04:05 PM", "1/2/2006 15:04:05", "1/2/2006 3:04 PM"}
)

// scanner reads the human-readable text of one report, line by line.
type scanner struct {
	f       *facts
	lines   []string
	i       int
	cur     string // the recipient the next status belongs to
	inDiag  bool
	origDet bool // inside Exchange Online's "Original Message Details"
	hops    bool // inside "Message Hops": a table of hosts and times, no statuses
	prevRcp bool // the previous line was a recipient alone
	pending string
}

// readText reads one report text into f: delivery-status fields pasted as text
// first, then the text's own lines.
func readText(f *facts, text string) {
	lines := strings.Split(text, "\n")
	if !f.dsnSeen {
		for i, l := range lines {
			if n := fieldName(l); n == "final-recipient" || n == "reporting-mta" {
				parseDSN(f, lines[i:])
				break
			}
		}
	}
	s := &scanner{f: f, lines: lines}
	s.run()
}

// readPlain reads a paste that is not a MIME message: undoing quoted-printable
// or HTML a paste may still carry.
func readPlain(f *facts, text string) {
	if looksQP(text) {
		text = decodeQP(text)
	}
	low := strings.ToLower(text)
	if strings.Contains(low, "<html") || strings.Contains(low, "<br") || strings.Contains(low, "<p>") {
		text = htmlText(text)
	}
	if f.outer == nil {
		if h, _ := parseHeaderBlock(text); isReport(h) {
			f.outer = h
		}
	}
	readText(f, text)
}

// looksQP tells a paste still in quoted-printable: "=3D", or long lines cut
// with a soft break. A line ending in an RFC 2047 word ("…?=") is not one.
func looksQP(text string) bool {
	if strings.Contains(text, "=3D") || strings.Contains(text, "=20\n") {
		return true
	}
	soft := 0
	for l := range strings.SplitSeq(text, "\n") {
		if len(l) >= 60 && len(l) <= 78 && strings.HasSuffix(l, "=") && !strings.HasSuffix(l, "?=") {
			soft++
		}
	}
	return soft >= 2
}

func (s *scanner) run() {
	for ; s.i < len(s.lines); s.i++ {
		raw := s.lines[s.i]
		t := strings.TrimSpace(raw)
		if t == "" {
			s.prevRcp = false
			continue
		}
		low := strings.ToLower(t)
		if origHeaderLine(low) {
			h, _ := parseHeaderBlock(strings.Join(s.lines[s.i+1:], "\n"))
			s.f.setOriginal(h)
			return // what follows is the returned message, not the report
		}
		if s.hops {
			continue
		}
		if low == "message hops" {
			s.hops = true
			continue
		}
		if s.pending != "" {
			label := s.pending
			s.pending = ""
			// A label alone takes the next line as its value, unless that line
			// is another label: then the value was empty.
			nextIsLabel := labelRE().MatchString(t) && !strings.Contains(t, "@") && findCodes(t) == nil
			if !nextIsLabel {
				s.label(label, t)
				continue
			}
		}
		if hasPrefixAny(low, diagMarkers) {
			s.inDiag = true
			s.origDet = false
			continue
		}
		if low == "original message details" {
			s.origDet = true
			continue
		}
		if hasAny(low, delayMarkers) {
			s.f.delayed = true
		}
		if hasAny(low, failMarkers) {
			s.f.failed = true
		}
		if s.line(t, low) {
			continue
		}
		if s.f.generic == "" && codeLine(t) {
			s.f.generic = t
		}
	}
}

// line reads one line with the reader of the first shape it has; false when
// no shape fits.
func (s *scanner) line(t, low string) bool {
	for _, read := range []func(t, low string) bool{
		s.exchangeReturned, s.exchangeHash, s.postfix, s.sendmail, s.gmailOrExim,
		s.labelled, s.rejectedBy, s.recipientAlone,
	} {
		if read(t, low) {
			return true
		}
	}
	s.prevRcp = false
	return false
}

// exchangeReturned: "Remote Server returned '…'", "Remote Server at host (ip)
// returned '…'".
func (s *scanner) exchangeReturned(t, low string) bool {
	if !strings.Contains(low, "remote server") || !strings.Contains(low, "returned") {
		return false
	}
	// Offsets come from t itself: lower-casing can change a line's length.
	status := ""
	if i := indexFold(t, "returned"); i >= 0 {
		status = s.quoted(t[i+len("returned"):])
	}
	host, ip := "", ""
	if m := remoteAtRE().FindStringSubmatch(t); m != nil {
		host, ip = cleanHost(m[1])
		if ip == "" {
			ip = cleanIP(m[2])
		}
	}
	s.f.status(s.cur, status, host, ip)
	return true
}

// exchangeHash: "mx.fabrikam.com #550 5.1.1 … ##" (Exchange 2013–2019),
// "#< #5.5.4 smtp;550 5.5.4 …> #SMTP#" (Exchange 2010).
func (s *scanner) exchangeHash(t, _ string) bool {
	hash := strings.Index(t, "#")
	if hash < 0 || !strings.HasSuffix(t, "##") && !strings.HasSuffix(strings.ToUpper(t), "#SMTP#") {
		return false
	}
	host, _ := cleanHost(strings.TrimSpace(t[:hash]))
	body := strings.TrimSuffix(strings.TrimSuffix(t[hash:], "##"), "#SMTP#")
	body = strings.Trim(strings.TrimSpace(body), "#<> ")
	if findCodes(body) == nil {
		return false
	}
	s.f.status(s.cur, body, host, "")
	return true
}

// postfix: "<bob@fabrikam.com> (expanded from <b@fabrikam.com>): host mx[ip]
// said: 550 5.1.1 … (in reply to RCPT TO command)", wrapped over indented lines.
func (s *scanner) postfix(t, _ string) bool {
	if !strings.HasPrefix(t, "<") || !strings.Contains(t, "@") {
		return false
	}
	at := s.i
	m := postfixRE().FindStringSubmatch(s.continued(t))
	if m == nil {
		s.i = at // not Postfix's shape: the indented lines are read on their own
		return false
	}
	s.cur = cleanAddress(m[1])
	r := s.f.entry(s.cur)
	if r.Original == "" && m[2] != "" {
		r.Original = cleanAddress(m[2])
	}
	rest := m[3]
	host, ip := "", ""
	if sm := saidRE().FindStringSubmatch(rest); sm != nil {
		host, ip = cleanHost(sm[1])
		if ip == "" {
			ip = cleanIP(sm[2])
		}
		rest = sm[3]
	} else if cm := connectToRE().FindStringSubmatch(rest); cm != nil {
		host, ip = cleanHost(cm[1])
		if ip == "" {
			ip = cleanIP(cm[2])
		}
	}
	s.f.status(s.cur, inReplyToRE().ReplaceAllString(rest, ""), host, ip)
	return true
}

// sendmail: "... while talking to mx.fabrikam.com.:", "<<< 550 5.7.509 …",
// "(reason: 550 5.7.509 …)".
func (s *scanner) sendmail(t, _ string) bool {
	if m := talkingToRE().FindStringSubmatch(t); m != nil {
		if host, _ := cleanHost(m[1]); host != "" {
			s.f.entry(s.cur).RemoteMTA = host
		}
		return true
	}
	if strings.HasPrefix(t, "<<<") {
		s.f.status(s.cur, strings.TrimSpace(t[3:]), "", "")
		return true
	}
	if len(t) >= len("(reason:") && strings.EqualFold(t[:len("(reason:")], "(reason:") {
		s.f.status(s.cur, strings.TrimSuffix(strings.TrimSpace(t[len("(reason:"):]), ")"), "", "")
		return true
	}
	return false
}

// gmailOrExim: Gmail's "The response was:" / "The response from the remote
// server was:" and Exim's "SMTP error from remote mail server after RCPT
// TO:<…>:" (host … [ip] on the line), the reply on the lines below.
func (s *scanner) gmailOrExim(t, low string) bool {
	if strings.HasPrefix(low, "the response") && strings.HasSuffix(strings.TrimSuffix(low, ":"), "was") {
		s.f.status(s.cur, s.paragraph(), "", "")
		return true
	}
	if strings.Contains(low, "smtp error from remote") {
		host, ip := "", ""
		if m := eximHostRE().FindStringSubmatch(t); m != nil {
			host, _ = cleanHost(m[1])
			ip = cleanIP(m[2])
		}
		s.f.status(s.cur, s.paragraph(), host, ip)
		return true
	}
	return false
}

// labelled: "Generating server: …", "Status code: …" and the other labels
// known; a label alone takes the next line as its value.
func (s *scanner) labelled(t, _ string) bool {
	m := labelRE().FindStringSubmatch(t)
	if m == nil || strings.Contains(m[1], "  ") {
		return false
	}
	label := strings.ToLower(strings.TrimSpace(m[1]))
	if !known(label) {
		return false
	}
	if strings.TrimSpace(m[2]) == "" {
		s.pending = label
	} else {
		s.label(label, strings.TrimSpace(m[2]))
	}
	return true
}

// rejectedBy: the lines that name the remote server or the recipient in
// prose.
func (s *scanner) rejectedBy(t, _ string) bool {
	if m := rejectedByRE().FindStringSubmatch(t); m != nil {
		s.globalRemote(m[1])
		return true
	}
	if m := orgRejectedRE().FindStringSubmatch(t); m != nil {
		s.globalRemote(m[1])
		return true
	}
	if m := yourMsgRE().FindStringSubmatch(t); m != nil {
		s.f.fallback = append(s.f.fallback, cleanAddress(m[1]+m[2]))
		return true
	}
	return false
}

// recipientAlone: a recipient on a line of its own, which the status lines
// after it belong to; in Exchange Online's diagnostic section the remote host
// may follow alone on the next line.
func (s *scanner) recipientAlone(t, _ string) bool {
	if a := loneAddress(t); a != "" {
		s.cur = a
		s.prevRcp = true
		s.f.addListed(a)
		return true
	}
	if s.inDiag && s.prevRcp && !strings.ContainsAny(t, " \t") {
		if host, _ := cleanHost(t); strings.Contains(host, ".") {
			s.f.entry(s.cur).RemoteMTA = host
			s.prevRcp = false
			return true
		}
	}
	return false
}

func known(label string) bool {
	switch label {
	case "generating server", "dsn generated by", "receiving server", "remote server", "status code",
		"reported error", "sender address", "recipient address", "created date", "subject":
		return true
	}
	return strings.HasPrefix(label, "serveur de g") || label == "server di generazione" || label == "genererande server"
}

// label reads a "Label: value" line (or a label and the line after it).
func (s *scanner) label(label, value string) {
	switch {
	case label == "generating server" || label == "dsn generated by" || strings.HasPrefix(label, "serveur de g") ||
		label == "server di generazione" || label == "genererande server":
		if host, _ := cleanHost(value); host != "" && s.f.textReporting == "" {
			s.f.textReporting = host
		}
	case label == "receiving server" || label == "remote server":
		s.f.setRemote(cleanHost(value))
	case label == "status code" || label == "reported error":
		s.f.status(s.cur, value, "", "")
	case label == "sender address":
		if s.f.textSender == "" {
			s.f.textSender = cleanAddress(value)
		}
	case label == "recipient address":
		if a := cleanAddress(value); a != "" {
			s.f.fallback = append(s.f.fallback, a)
		}
	case label == "created date":
		for _, layout := range usDateLayouts {
			// The hop table beside it reads "TIME (UTC)".
			if t, err := time.Parse(layout, squash(value)); err == nil {
				s.f.created = t
				break
			}
		}
	case label == "subject":
		if s.origDet && s.f.textSubject == "" {
			s.f.textSubject = value
		}
	}
}

// status records a status text for a recipient ("" when not yet known); a
// later text for the same recipient adds its codes as nested ones — the history
// behind a delay or an expiry.
func (f *facts) status(addr, text, host, ip string) {
	text = squash(text)
	if m := lastServerRE().FindStringSubmatch(text); m != nil && host == "" {
		host, _ = cleanHost(m[1])
	}
	if m := lastIPRE().FindStringSubmatch(text); m != nil && ip == "" {
		ip = cleanIP(m[1])
	}
	r := f.entry(addr)
	if host != "" && r.RemoteMTA == "" {
		r.RemoteMTA = host
		if ip != "" {
			r.RemoteIP = ip
		}
	}
	var codes []Code
	for _, c := range findCodes(text) {
		if c.class() != '2' {
			codes = append(codes, c)
		}
	}
	if len(codes) == 0 {
		if r.Diagnostic == "" {
			r.Diagnostic = bounded(text, 1000)
		}
		return
	}
	if r.Code == (Code{}) {
		r.Code, r.Nested = ownAndNested(codes)
		r.Diagnostic = bounded(text, 1000)
		return
	}
	own, nested := ownAndNested(codes)
	if own.Enhanced == r.Code.Enhanced && (own.Reply == r.Code.Reply || r.Code.Reply == "" || own.Reply == "") {
		// The same answer again, more fully ("Status code: 550 5.1.10", then
		// "Reported error: 550 5.1.10 RESOLVER.ADR.RecipientNotFound; …").
		if r.Code.Reply == "" {
			r.Code.Reply = own.Reply
		}
		if len(text) > len(r.Diagnostic) {
			r.Diagnostic = bounded(text, 1000)
		}
	} else {
		r.Nested = appendCode(r.Nested, r.Code, own)
		r.Diagnostic = bounded(r.Diagnostic+" | "+text, 1000)
	}
	for _, c := range nested {
		r.Nested = appendCode(r.Nested, r.Code, c)
	}
}

// entry is the text recipient for addr ("" for one not yet named).
func (f *facts) entry(addr string) *Recipient {
	if f.textIdx == nil {
		f.textIdx = map[string]int{}
	}
	key := strings.ToLower(addr)
	if i, ok := f.textIdx[key]; ok {
		return f.text[i]
	}
	r := &Recipient{Address: addr}
	if len(f.text) >= maxRecipients {
		return r // read, not kept
	}
	f.textIdx[key] = len(f.text)
	f.text = append(f.text, r)
	return r
}

func (s *scanner) globalRemote(v string) {
	if host, ip := cleanHost(v); strings.Contains(host, ".") {
		s.f.setRemote(host, ip)
	}
}

// setRemote records the server that answered for every recipient; a later line
// may add the address of the same server.
func (f *facts) setRemote(host, ip string) {
	switch {
	case host == "":
	case f.remote == "":
		f.remote, f.remoteIP = host, ip
	case f.remote == host && f.remoteIP == "":
		f.remoteIP = ip
	}
}

// quoted returns a quoted reply, joining the following lines while the quote is
// open: a pasted report may wrap a long reply.
func (s *scanner) quoted(rest string) string {
	rest = strings.TrimSpace(rest)
	if rest == "" || (rest[0] != '\'' && rest[0] != '"') {
		return rest
	}
	q := rest[0]
	text := rest[1:]
	for n := 0; strings.IndexByte(text, q) < 0 && n < 6 && s.i+1 < len(s.lines); n++ {
		next := strings.TrimSpace(s.lines[s.i+1])
		if next == "" {
			break
		}
		s.i++
		text += " " + next
	}
	if j := strings.LastIndexByte(text, q); j >= 0 {
		text = text[:j]
	}
	return text
}

// continued joins the indented lines that continue line s.i (Postfix wraps at
// 80 columns and indents by four).
func (s *scanner) continued(t string) string {
	for n := 0; s.i+1 < len(s.lines) && n < 12; n++ {
		next := s.lines[s.i+1]
		if strings.TrimSpace(next) == "" || (next[0] != ' ' && next[0] != '\t') {
			break
		}
		s.i++
		t += " " + strings.TrimSpace(next)
	}
	return t
}

// paragraph returns the lines after s.i up to the next blank line (skipping
// blank lines right after the label), joined.
func (s *scanner) paragraph() string {
	var parts []string
	for s.i+1 < len(s.lines) && len(parts) < 12 {
		next := strings.TrimSpace(s.lines[s.i+1])
		if next == "" {
			if len(parts) > 0 {
				break
			}
			s.i++
			continue
		}
		s.i++
		parts = append(parts, next)
	}
	return strings.Join(parts, " ")
}

// loneAddress returns the address when a line is a recipient alone:
// "bob@fabrikam.com", "<bob@fabrikam.com>", "bob@fabrikam.com (bob@fabrikam.com)",
// "bob@fabrikam.com<mailto:bob@fabrikam.com>", "<bob@fabrikam.com>  (unrecoverable error)".
func loneAddress(t string) string {
	a := addrRE().FindString(t)
	if a == "" {
		return ""
	}
	rest := strings.ReplaceAll(t, a, "")
	rest = strings.NewReplacer("<mailto:>", "", "mailto:", "", "<", "", ">", "", "(", "", ")", "", "'", "", `"`, "").Replace(rest)
	rest = strings.TrimSpace(rest)
	if rest != "" && rest != "unrecoverable error" && rest != "transient failure" {
		return ""
	}
	return cleanAddress(a)
}

// codeLine reports whether a line looks like an SMTP reply: an enhanced code, or
// a reply code opening the line followed by words.
func codeLine(t string) bool {
	for _, c := range findCodes(t) {
		if c.Enhanced != "" && c.class() != '2' {
			return true
		}
	}
	r := leadingReply(t)
	return r != "" && r[0] != '2' && len(strings.Fields(t)) > 2
}

// origHeaderLine tells the line after which a report quotes the returned
// message's header. The markers open their line; a sentence mentioning them
// does not count.
func origHeaderLine(low string) bool {
	if hasPrefixAny(low, origHeaderMarkers) {
		return true
	}
	// "En-têtes de message d'origine :", whatever "ê" became.
	return strings.HasPrefix(low, "en-t") && strings.Contains(low, "tes de message d'origine")
}

// indexFold is strings.Index ignoring ASCII case, for an ASCII sub.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

func hasAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

func hasPrefixAny(s string, ps []string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func (f *facts) addListed(a string) {
	if f.listedSet == nil {
		f.listedSet = map[string]bool{}
	}
	key := strings.ToLower(a)
	if f.listedSet[key] || len(f.listed) >= maxRecipients {
		return
	}
	f.listedSet[key] = true
	f.listed = append(f.listed, a)
}
