package winrm

import (
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// clixmlHeader starts a CLIXML block on stderr. powershell.exe without a console
// serializes its non-output streams this way, so even a run that failed nothing
// writes a progress record ("Preparing modules for first use.") to stderr.
const clixmlHeader = "#< CLIXML"

// cleanStderr turns PowerShell's stderr into the text a person should read: the
// Error records of CLIXML blocks, decoded, plus any text outside CLIXML as it is.
// Progress, warning, verbose, debug and information records are dropped: they are
// not failures, and a non-empty result is treated as one.
func cleanStderr(raw []byte) string {
	s := strings.ToValidUTF8(string(raw), "\uFFFD")
	var out strings.Builder
	for {
		i := strings.Index(s, clixmlHeader)
		if i < 0 {
			out.WriteString(s)
			break
		}
		out.WriteString(s[:i])
		rest := strings.TrimLeft(s[i+len(clixmlHeader):], "\r\n")
		errText, after, ok := clixmlErrors(rest)
		if !ok { // not CLIXML after all: keep it readable rather than lose it
			out.WriteString(s[i:])
			break
		}
		out.WriteString(errText)
		s = after
	}
	return tidy(out.String())
}

// clixmlErrors reads one <Objs> document from the start of s and returns the text
// of its Error records and what follows the document. A document cut short (the
// output cap, a dropped connection) still yields the records read so far.
func clixmlErrors(s string) (text, rest string, ok bool) {
	dec := xml.NewDecoder(strings.NewReader(s))
	var (
		out     strings.Builder
		depth   int
		inError bool
	)
	for {
		tok, err := dec.Token()
		if err != nil {
			// Cut short inside the document: keep what was read. Nothing at all
			// after the header is an empty block. Anything else was not CLIXML.
			if depth > 0 || errors.Is(err, io.EOF) {
				return out.String(), "", true
			}
			return "", "", false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name.Local != "Objs" {
				return "", "", false
			}
			depth++
			// Error records are top-level <S S="Error">; an <S> inside an <Obj>
			// (a progress record, say) is something else.
			inError = depth == 2 && t.Name.Local == "S" && strings.EqualFold(attr(t, "S"), "error")
		case xml.EndElement:
			depth--
			inError = false
			if depth == 0 {
				return out.String(), s[dec.InputOffset():], true
			}
		case xml.CharData:
			if depth == 0 && strings.TrimSpace(string(t)) != "" {
				return "", "", false
			}
			if inError {
				out.WriteString(unescapeCLIXML(string(t)))
			}
		}
	}
}

func attr(t xml.StartElement, name string) string {
	for _, a := range t.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// clixmlEscape is how CLIXML writes characters XML cannot carry (CR, LF, …):
// _xHHHH_ with one UTF-16 code unit.
var clixmlEscape = lazyre.New(`_x([0-9A-Fa-f]{4})_`)

// unescapeCLIXML decodes _xHHHH_ escapes, joining surrogate pairs.
func unescapeCLIXML(s string) string {
	if !strings.Contains(s, "_x") {
		return s
	}
	var (
		out   strings.Builder
		units []uint16 // consecutive escapes, decoded together for surrogate pairs
		last  int
	)
	flush := func() {
		out.WriteString(string(utf16.Decode(units)))
		units = units[:0]
	}
	for _, m := range clixmlEscape().FindAllStringSubmatchIndex(s, -1) {
		if m[0] != last {
			flush()
			out.WriteString(s[last:m[0]])
		}
		u, _ := strconv.ParseUint(s[m[2]:m[3]], 16, 16)
		units = append(units, uint16(u))
		last = m[1]
	}
	flush()
	out.WriteString(s[last:])
	return out.String()
}

// tidy normalises line ends and drops trailing blanks.
func tidy(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// headLines is the first n non-blank lines of s on one line, for an error message.
func headLines(s string, n int) string {
	var head []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			head = append(head, l)
			if len(head) == n {
				break
			}
		}
	}
	out := strings.Join(head, " / ")
	if r := []rune(out); len(r) > 500 {
		out = string(r[:500]) + "…"
	}
	return out
}
