package slack

import (
	"strings"
	"unicode"
)

// PlainText turns a slash command's text as Slack sends it into the prose the
// admin pasted, for reading a bounce (commands.Request.Plain). Unlike
// CommandText, every link Slack wrote becomes its visible text wherever it
// stands — a bounce glues them to other text: "&lt;<mailto:bob@fabrikam.com|bob@fabrikam.com>&gt;",
// "host <http://mx1.fabrikam.com|mx1.fabrikam.com>[203.0.113.5] said:" — and
// nothing is quoted. Mentions (<@U123>) and channels (<#C1|ops>) stay as sent;
// &amp;, &lt; and &gt; are undone once.
func PlainText(s string) string {
	return undoMarkup(s, anyLink, func(text string) string { return text })
}

// plainUnlessSame is PlainText(s), or "" when it reads as CommandText(s) does
// (commands.Request.Plain: empty means Text is plain already).
func plainUnlessSame(s string) string {
	if p := PlainText(s); p != CommandText(s) {
		return p
	}
	return ""
}

// anyLink reads <scheme:target|label> or <scheme:target> at r[i], on one line,
// and returns its visible text with entities undone and the index of the >.
func anyLink(r []rune, i int) (string, int, bool) {
	end := -1
	for j := i + 1; j < len(r) && end < 0; j++ {
		switch r[j] {
		case '<', '\n':
			return "", 0, false
		case '>':
			end = j
		}
	}
	if end < 0 {
		return "", 0, false
	}
	target, label, hasLabel := strings.Cut(string(r[i+1:end]), "|")
	if !linkScheme(target) || strings.IndexFunc(target, unicode.IsSpace) >= 0 {
		return "", 0, false
	}
	visible := label
	if !hasLabel || label == "" {
		visible = target
		if len(visible) >= 7 && strings.EqualFold(visible[:7], "mailto:") {
			visible = visible[7:]
		}
	}
	return unescape(visible), end, true
}
