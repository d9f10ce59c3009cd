package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// Status values of the smtp, tcp and smtp-mx checks.
const (
	StatusOK          = "ok"          // 220 banner and EHLO accepted (tcp: connected)
	Status421         = "421"         // 421: service not available, e.g. too many connections
	StatusTempFail    = "tempfail"    // any other 4xx reply
	StatusPermFail    = "permfail"    // 5xx reply (e.g. 554 no SMTP service here)
	StatusTimeout     = "timeout"     // no connect or no reply before the deadline
	StatusRefused     = "refused"     // ECONNREFUSED: nothing listens on the port
	StatusUnreachable = "unreachable" // no route, host down, other dial failures
	StatusDNSError    = "dns-error"   // the host name (or the domain's MX) did not resolve
	StatusTLSError    = "tls-error"   // STARTTLS was refused or the handshake failed
	StatusError       = "error"       // connection closed or reset, or the peer does not speak SMTP
	StatusThrottled   = "throttled"   // not probed: per-destination limit reached, no fresh result
	StatusNullMX      = "null-mx"     // the domain publishes a null MX (RFC 7505): it takes no mail
)

// SMTPResult is the output of the smtp check (one object) and, with MXProbe's extra
// fields, of smtp-mx (one row per probed MX). The field names follow what an
// operator reads off a `telnet host 25` session and what Exchange cmdlets call the
// same things, PascalCase as ConvertTo-Json emits them; every field is always present.
type SMTPResult struct {
	Host       string   // host as configured (or the MX exchange), no port
	Address    string   // ip:port actually dialed ("" when DNS failed)
	Port       int      // destination port
	Status     string   // one of the Status* values
	Code       int      // reply code behind Status: the 220 banner when ok, else the failing reply; 0 if none
	Enhanced   string   // RFC 3463 enhanced status code of that reply, e.g. "4.3.2"; "" if none
	Text       string   // reply text without code and enhanced code; lines joined with "\n"
	StartTLS   bool     // the EHLO reply offered STARTTLS
	TLSVersion string   // e.g. "TLS 1.3" when STARTTLS was negotiated (params.starttls=true)
	Extensions []string // EHLO keywords as sent, e.g. "SIZE 37748736", "STARTTLS"
	BannerMs   int64    // from TCP connect to the end of the greeting
	DurationMs int64    // whole dialogue including DNS, connect and QUIT
	Cached     bool     // reused from a probe made moments ago by another run (no new connection)
	Error      string   // local description of a network/TLS/DNS failure; "" otherwise
}

// TCPResult is the output of the tcp check.
type TCPResult struct {
	Host       string
	Address    string
	Port       int
	Status     string // ok | refused | timeout | unreachable | dns-error | throttled
	DurationMs int64
	Cached     bool
	Error      string
}

// MXProbe is one row of the smtp-mx check: the MX record and the SMTP probe of it.
type MXProbe struct {
	Domain     string
	Exchange   string
	Preference uint16
	SMTPResult
}

const (
	maxLineBytes   = 2048 // RFC 5321 allows 512 per reply line; be lenient
	maxReplyLines  = 64
	maxTextBytes   = 1024
	quitGrace      = 2 * time.Second
	maxDialAddrs   = 3
	variantTCP     = "tcp"
	variantSMTP    = "smtp"
	variantSMTPTLS = "smtp+starttls"
)

// smtp runs the smtp check against ep through the per-destination guard.
func (e *Executor) smtp(ctx context.Context, ep endpoint, starttls bool) (SMTPResult, error) {
	variant := variantSMTP
	if starttls {
		variant = variantSMTPTLS
	}
	res, v, err := guarded(ctx, e.guard, ep.key(), variant, func(ctx context.Context) (SMTPResult, bool) {
		return e.smtpProbe(ctx, ep, starttls)
	})
	if err != nil {
		return SMTPResult{}, err
	}
	switch v.how {
	case shared, cached:
		res.Cached = true
	case throttled:
		res = SMTPResult{Host: ep.host, Port: ep.port, Status: StatusThrottled, Extensions: []string{}, Error: v.note}
	}
	return res, nil
}

// tcp runs the tcp check against ep through the per-destination guard.
func (e *Executor) tcp(ctx context.Context, ep endpoint) (TCPResult, error) {
	res, v, err := guarded(ctx, e.guard, ep.key(), variantTCP, func(ctx context.Context) (TCPResult, bool) {
		start := time.Now()
		r := TCPResult{Host: ep.host, Port: ep.port}
		conn, addr, status, err := e.connect(ctx, ep)
		r.Address, r.DurationMs = addr, ms(time.Since(start))
		if err != nil {
			r.Status, r.Error = status, err.Error()
			return r, observed(ctx)
		}
		closeGently(ctx, conn)
		r.Status = StatusOK
		return r, true
	})
	if err != nil {
		return TCPResult{}, err
	}
	switch v.how {
	case shared, cached:
		res.Cached = true
	case throttled:
		res = TCPResult{Host: ep.host, Port: ep.port, Status: StatusThrottled, Error: v.note}
	}
	return res, nil
}

// closeGently half-closes conn and waits briefly for the server to close its side,
// so the server has released the connection before the destination's slot is free
// for the next probe.
func closeGently(ctx context.Context, conn net.Conn) {
	defer func() { _ = conn.Close() }()
	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	dl := time.Now().Add(quitGrace)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = conn.SetReadDeadline(dl)
	_, _ = io.Copy(io.Discard, io.LimitReader(conn, 64<<10))
}

// observed reports whether a failure seen under ctx is a real observation: anything
// but the caller cancelling (our own deadline expiring is the "timeout" observation).
func observed(ctx context.Context) bool { return !errors.Is(ctx.Err(), context.Canceled) }

// connect resolves ep (through the configured DNS server unless it is an IP) and
// dials its addresses one after another until one answers. It returns the address
// tried last and, on failure, a Status value.
func (e *Executor) connect(ctx context.Context, ep endpoint) (net.Conn, string, string, error) {
	addrs := []netip.Addr{ep.ip}
	if !ep.ip.IsValid() {
		var err error
		if addrs, err = e.resolveHost(ctx, ep.host); err != nil {
			return nil, "", StatusDNSError, err
		}
	}
	if len(addrs) > maxDialAddrs {
		addrs = addrs[:maxDialAddrs]
	}
	var (
		last string
		err  error
	)
	for _, a := range addrs {
		last = net.JoinHostPort(a.String(), strconv.Itoa(ep.port))
		var conn net.Conn
		if conn, err = e.dialer.DialContext(ctx, "tcp", last); err == nil {
			return conn, last, "", nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, last, dialStatus(err), fmt.Errorf("connect %s: %w", last, err)
}

func dialStatus(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return StatusRefused
	case isTimeout(err):
		return StatusTimeout
	default:
		return StatusUnreachable
	}
}

func ioStatus(err error) string {
	if isTimeout(err) {
		return StatusTimeout
	}
	return StatusError
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// replyStatus classifies an SMTP reply code.
func replyStatus(code int) string {
	switch {
	case code == 421:
		return Status421
	case code >= 200 && code < 400:
		return StatusOK
	case code >= 400 && code < 500:
		return StatusTempFail
	case code >= 500 && code < 600:
		return StatusPermFail
	default:
		return StatusError
	}
}

// smtpProbe is one polite SMTP dialogue: banner, EHLO (HELO if EHLO is not
// understood), optionally STARTTLS and a second EHLO, QUIT. The bool reports whether
// the result is an observation (see observed).
func (e *Executor) smtpProbe(ctx context.Context, ep endpoint, starttls bool) (r SMTPResult, _ bool) {
	start := time.Now()
	r = SMTPResult{Host: ep.host, Port: ep.port, Extensions: []string{}}
	defer func() { r.DurationMs = ms(time.Since(start)) }()

	conn, addr, status, err := e.connect(ctx, ep)
	r.Address = addr
	if err != nil {
		r.Status, r.Error = status, err.Error()
		return r, observed(ctx)
	}
	connected := time.Now()
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Cancellation (not only the deadline) interrupts a blocked read or write.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	s := &session{conn: conn, br: bufio.NewReaderSize(conn, maxLineBytes)}
	fail := func(what string, err error) (SMTPResult, bool) {
		r.Status, r.Error = ioStatus(err), what+": "+err.Error()
		return r, observed(ctx)
	}
	// reject records a reply that ends the dialogue and leaves politely.
	reject := func(code int, lines []string, status string) (SMTPResult, bool) {
		r.setReply(code, lines)
		r.Status = status
		s.quit(ctx)
		return r, true
	}

	code, lines, err := s.read()
	r.BannerMs = ms(time.Since(connected))
	if err != nil {
		return fail("reading banner", err)
	}
	r.setReply(code, lines) // until a later reply ends the dialogue
	if code != 220 {
		return reject(code, lines, replyStatus(code))
	}

	code, lines, err = s.cmd("EHLO " + e.helo)
	if err != nil {
		return fail("EHLO", err)
	}
	if code == 500 || code == 502 { // EHLO not understood: an RFC 821 server
		if code, lines, err = s.cmd("HELO " + e.helo); err != nil {
			return fail("HELO", err)
		}
	} else if code == 250 {
		r.setExtensions(lines)
	}
	if code != 250 {
		return reject(code, lines, replyStatus(code))
	}

	if starttls && r.StartTLS {
		code, lines, err = s.cmd("STARTTLS")
		if err != nil {
			return fail("STARTTLS", err)
		}
		if code != 220 {
			return reject(code, lines, StatusTLSError)
		}
		if s.br.Buffered() > 0 { // RFC 3207 §6: nothing may follow the 220 in clear text
			r.Status, r.Error = StatusTLSError, "server sent data after the STARTTLS reply"
			return r, true
		}
		tc := tls.Client(conn, e.tlsFor(ep))
		if err := tc.HandshakeContext(ctx); err != nil {
			if isTimeout(err) {
				return fail("TLS handshake", err)
			}
			r.Status, r.Error = StatusTLSError, "TLS handshake: "+err.Error()
			return r, observed(ctx)
		}
		r.TLSVersion = tls.VersionName(tc.ConnectionState().Version)
		s = &session{conn: tc, br: bufio.NewReaderSize(tc, maxLineBytes)}
		code, lines, err = s.cmd("EHLO " + e.helo)
		if err != nil {
			return fail("EHLO after STARTTLS", err)
		}
		if code != 250 {
			return reject(code, lines, replyStatus(code))
		}
	}

	r.Status = StatusOK
	s.quit(ctx)
	return r, true
}

// tlsFor returns the STARTTLS configuration for ep.
func (e *Executor) tlsFor(ep endpoint) *tls.Config {
	c := e.tlsConfig.Clone()
	if c.ServerName == "" {
		c.ServerName = ep.host
	}
	return c
}

var enhancedRE = lazyre.New(`^([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)`)

// setReply records a reply's code, enhanced code and text.
func (r *SMTPResult) setReply(code int, lines []string) {
	r.Code = code
	r.Enhanced = ""
	if len(lines) > 0 {
		if m := enhancedRE().FindStringSubmatch(lines[0]); m != nil {
			r.Enhanced = m[1]
		}
	}
	text := make([]string, 0, len(lines))
	for _, l := range lines {
		if r.Enhanced != "" {
			if m := enhancedRE().FindStringSubmatch(l); m != nil && m[1] == r.Enhanced {
				l = l[len(m[0]):]
			}
		}
		text = append(text, strings.TrimSpace(l))
	}
	r.Text = truncate(strings.Join(text, "\n"), maxTextBytes)
}

// setExtensions records the keywords of a 250 EHLO reply (its first line is the
// server's greeting, not a keyword).
func (r *SMTPResult) setExtensions(lines []string) {
	r.Extensions = []string{}
	r.StartTLS = false
	for _, l := range lines[min(1, len(lines)):] {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		r.Extensions = append(r.Extensions, truncate(l, 128))
		if kw, _, _ := strings.Cut(l, " "); strings.EqualFold(kw, "STARTTLS") {
			r.StartTLS = true
		}
	}
}

// truncate caps remote text at n bytes, keeps it valid UTF-8 and drops control
// characters other than newline and tab (the text ends up in chat and the audit).
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// session is the client side of an SMTP dialogue. Commands are fixed text plus the
// validated HELO name; nothing else is ever written.
type session struct {
	conn net.Conn
	br   *bufio.Reader
}

// errProtocol is a reply that is not SMTP.
type errProtocol string

func (e errProtocol) Error() string { return "not an SMTP reply: " + string(e) }

func (s *session) cmd(line string) (int, []string, error) {
	if _, err := io.WriteString(s.conn, line+"\r\n"); err != nil {
		return 0, nil, err
	}
	return s.read()
}

// read reads one (possibly multi-line, "250-…" continued) reply.
func (s *session) read() (code int, lines []string, err error) {
	for n := 0; ; n++ {
		if n == maxReplyLines {
			return 0, nil, errProtocol("more than " + strconv.Itoa(maxReplyLines) + " lines")
		}
		raw, err := s.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return 0, nil, errProtocol("line longer than " + strconv.Itoa(maxLineBytes) + " bytes")
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(raw) == 0 {
				return 0, nil, errors.New("connection closed by the server")
			}
			return 0, nil, err
		}
		line := strings.TrimRight(string(raw), "\r\n")
		if len(line) < 3 || (len(line) > 3 && line[3] != ' ' && line[3] != '-') {
			return 0, nil, errProtocol(fmt.Sprintf("%.64q", line))
		}
		c, convErr := strconv.Atoi(line[:3])
		if convErr != nil || c < 200 || c > 599 || (n > 0 && c != code) {
			return 0, nil, errProtocol(fmt.Sprintf("%.64q", line))
		}
		code = c
		text := ""
		if len(line) > 4 {
			text = line[4:]
		}
		lines = append(lines, text)
		if len(line) == 3 || line[3] == ' ' {
			return code, lines, nil
		}
	}
}

// quit ends the session politely, waiting briefly for the 221.
func (s *session) quit(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	dl := time.Now().Add(quitGrace)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = s.conn.SetDeadline(dl)
	_, _, _ = s.cmd("QUIT")
}
