package slack

import (
	"strings"
	"unicode"

	"github.com/ndrbot/ndrbot/commands"
)

// CommandText turns the text of a slash command as Slack sends it into what
// the admin typed, for commands.ParseArgs. Slack rewrites what it recognises
// (api.slack.com/reference/surfaces/formatting, "Escaping text" and
// "Linking to URLs"): an address becomes <mailto:alice@contoso.com|alice@contoso.com>,
// a domain or URL <http://contoso.com|contoso.com>, and &, < and > in typed
// text arrive as &amp;, &lt; and &gt;. A link standing as a word of its own (or
// as the value after key=) becomes its visible text — the label, or the target
// without mailto: — quoted when it holds spaces or quotes; a link glued to
// other text, a mention (<@U123>) or a channel (<#C1|ops>) stays as sent. The
// three entities are undone everywhere, once.
func CommandText(s string) string {
	return undoMarkup(s, typedLink, commands.QuoteArg)
}

// undoMarkup writes s with each link that link reads replaced by its visible
// text (as show writes it) and Slack's entities undone, in one pass, so
// nothing is undone twice.
func undoMarkup(s string, link func(r []rune, i int) (string, int, bool), show func(string) string) string {
	var b strings.Builder
	r := []rune(s)
	for i := 0; i < len(r); i++ {
		switch r[i] {
		case '<':
			if text, end, ok := link(r, i); ok {
				b.WriteString(show(text))
				i = end
				continue
			}
		case '&':
			if e, n := entity(r[i:]); n > 0 {
				b.WriteRune(e)
				i += n - 1
				continue
			}
		}
		b.WriteRune(r[i])
	}
	return b.String()
}

var entities = []struct {
	text string
	r    rune
}{{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}}

// entity reads one of Slack's three entities at the start of r.
func entity(r []rune) (rune, int) {
	for _, e := range entities {
		if len(r) >= len(e.text) && string(r[:len(e.text)]) == e.text {
			return e.r, len(e.text)
		}
	}
	return 0, 0
}

// typedLink reads <scheme:target|label> or <scheme:target> at r[i] when it begins a
// word (after white space, the start or key=) and ends one; it returns the
// visible text, entities undone, and the index of the closing >.
func typedLink(r []rune, i int) (string, int, bool) {
	if i > 0 && !unicode.IsSpace(r[i-1]) && r[i-1] != '=' {
		return "", 0, false
	}
	text, end, ok := anyLink(r, i)
	if !ok || (end+1 < len(r) && !unicode.IsSpace(r[end+1])) {
		return "", 0, false
	}
	return text, end, true
}

// unescape undoes Slack's three entities in s, once.
func unescape(s string) string {
	var b strings.Builder
	r := []rune(s)
	for k := 0; k < len(r); k++ {
		if e, n := entity(r[k:]); n > 0 {
			b.WriteRune(e)
			k += n - 1
			continue
		}
		b.WriteRune(r[k])
	}
	return b.String()
}

// linkScheme reports whether s starts with a URI scheme (RFC 3986) and a colon.
func linkScheme(s string) bool {
	colon := strings.IndexByte(s, ':')
	if colon < 1 {
		return false
	}
	for i := 0; i < colon; i++ {
		c := s[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}
