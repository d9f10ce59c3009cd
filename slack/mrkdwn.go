package slack

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ndrbot/ndrbot/commands"
)

// escape makes user-controlled text inert in mrkdwn: Slack parses only &, < and >
// as control characters, so "<!channel>" or "<https://evil|bank>" become plain
// text. Text objects are also sent with verbatim=true, so a bare "@channel" or URL
// is not auto-linked either.
func escape(s string) string {
	if !strings.ContainsAny(s, "&<>") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// escapeCode escapes text for a ``` block and breaks any ``` inside it, which
// would otherwise close the block early.
func escapeCode(s string) string {
	return strings.ReplaceAll(escape(s), "```", "`\u200b`\u200b`")
}

// code is an inline code span of s.
func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(escape(s), "`", "'") + "`"
}

func codeBlock(encoded string) string { return "```\n" + encoded + "\n```" }

func runes(s string) int { return utf8.RuneCountInString(s) }

// cutRunes returns the first n runes of s, ending at a line break when one is
// near the end.
func cutRunes(s string, n int) string {
	if n <= 0 {
		return ""
	}
	i, count := 0, 0
	for i < len(s) && count < n {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		count++
	}
	out := s[:i]
	if nl := strings.LastIndexByte(out, '\n'); nl > len(out)*3/4 {
		out = out[:nl]
	}
	return out
}

// excerpt encodes raw with enc and, when the result is longer than limit runes,
// encodes the longest leading part of raw that fits. clipped says it was cut.
func excerpt(raw string, limit int, enc func(string) string) (encoded string, clipped bool) {
	if e := enc(raw); runes(e) <= limit {
		return e, false
	}
	n := limit
	for n > 0 {
		e := enc(cutRunes(raw, n))
		over := runes(e) - limit
		if over <= 0 {
			return e, true
		}
		n -= max(over, 1)
	}
	return "", true
}

// excerptLines is excerpt also limited to maxLines lines.
func excerptLines(raw string, limit, maxLines int, enc func(string) string) (string, bool) {
	lines := strings.SplitAfter(raw, "\n")
	cut := false
	if len(lines) > maxLines {
		raw = strings.TrimRight(strings.Join(lines[:maxLines], ""), "\n")
		cut = true
	}
	e, clipped := excerpt(raw, limit, enc)
	return e, cut || clipped
}

// mention is <@U…> for a Slack user id, otherwise the escaped name (a CLI user).
func mention(a commands.Actor) string {
	if isUserID(a.ID) {
		return "<@" + a.ID + ">"
	}
	if a.Name != "" {
		return escape(a.Name)
	}
	if a.ID == "" {
		return "someone"
	}
	return escape(a.ID)
}

func isUserID(id string) bool {
	if len(id) < 3 || (id[0] != 'U' && id[0] != 'W') {
		return false
	}
	for _, c := range id[1:] {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// link is <url|text> when url is a plain http(s) URL, else the escaped text of both.
func link(raw, text string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		strings.ContainsAny(raw, "|<> \n") {
		return escape(text) + " (" + escape(raw) + ")"
	}
	return "<" + escape(raw) + "|" + escape(text) + ">"
}

func clock(t time.Time) string { return t.UTC().Format("15:04 UTC") }

func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second).Seconds()))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// hostList shows up to three hosts and says how many more there are.
func hostList(hosts []string) string {
	const show = 3
	parts := make([]string, 0, show+1)
	for i, h := range hosts {
		if i == show {
			parts = append(parts, fmt.Sprintf("+%d more", len(hosts)-show))
			break
		}
		parts = append(parts, code(h))
	}
	return strings.Join(parts, ", ")
}

// fileSafe keeps a file name to [A-Za-z0-9._-].
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '-'
	}, s)
}
