package commands

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks/params"
)

// MaxArgsBytes bounds the text after a verb that ParseArgs accepts.
const MaxArgsBytes = 4096

// Args is the text after a verb, split into positional words and key=value
// pairs. Values are raw strings; playbook parameters type them
// (params.Set.Resolve).
type Args struct {
	// Positional holds the bare words in order (5.5.4, graph-503, …).
	Positional []string
	// Named holds key=value pairs; keys match [a-z][a-z0-9_]*.
	Named map[string]string
	// Order is the keys of Named in the order they were given.
	Order []string
}

// argsError is a malformed argument text. Its message is safe to show.
type argsError struct{ msg string }

func (e *argsError) Error() string { return e.msg }
func (e *argsError) Unwrap() error { return incident.ErrInvalidInput }

// ParseArgs splits the text after a verb the way an admin would expect from a
// shell, minus everything a shell does beyond quoting:
//
//   - words are separated by white space; a word of the form key=value is a
//     named argument, any other word is positional;
//   - a value (or a whole positional word) that starts with " or ' runs to
//     the matching quote and may hold spaces; inside "…" a backslash escapes
//     " and \ and is literal before anything else (so "CONTOSO\Alice" keeps
//     its backslash); inside '…' nothing is special. A quote anywhere else is
//     an ordinary character, so sender=o'brien@contoso.com is one value;
//   - smart quotes “ ” ‘ ’ (chat clients and word processors put them in)
//     count as " and ' (and are never kept);
//   - the text is what the admin typed: a chat adapter undoes its platform's
//     markup first (slack.CommandText);
//   - keys are ASCII letters, digits and _, starting with a letter; upper-case
//     letters are folded to lower case.
//
// It fails, with an error wrapping incident.ErrInvalidInput, on text longer
// than MaxArgsBytes, invalid UTF-8, control characters other than white
// space, an unterminated quote, text glued to a closing quote, an empty or
// malformed key, and a key given twice.
func ParseArgs(input string) (Args, error) {
	a := Args{Named: map[string]string{}}
	if len(input) > MaxArgsBytes {
		return Args{}, argsErrorf("the arguments are too long: %d bytes, at most %d", len(input), MaxArgsBytes)
	}
	if !utf8.ValidString(input) {
		return Args{}, argsErrorf("the arguments are not valid UTF-8 text")
	}
	for _, r := range input {
		if unicode.IsControl(r) && !unicode.IsSpace(r) {
			return Args{}, argsErrorf("the arguments contain the control character %U", r)
		}
	}
	sc := argScanner{s: []rune(argsSmartQuotes.Replace(input))}
	for {
		sc.skipSpace()
		if sc.eof() {
			return a, nil
		}
		start := sc.i
		if v, ok, err := sc.special(start); err != nil {
			return Args{}, err
		} else if ok {
			a.Positional = append(a.Positional, v)
			continue
		}
		word, eq := sc.word(true)
		if !eq {
			a.Positional = append(a.Positional, word)
			continue
		}
		key, err := argsKey(word, sc.fragment(start))
		if err != nil {
			return Args{}, err
		}
		value, ok, err := sc.special(start)
		if err != nil {
			return Args{}, err
		}
		if !ok {
			value, _ = sc.word(false)
		}
		if _, dup := a.Named[key]; dup {
			return Args{}, argsErrorf("parameter %s is given twice", key)
		}
		a.Named[key] = value
		a.Order = append(a.Order, key)
	}
}

var argsSmartQuotes = strings.NewReplacer("\u201c", `"`, "\u201d", `"`, "\u2018", "'", "\u2019", "'")

func argsErrorf(format string, args ...any) error {
	return &argsError{msg: fmt.Sprintf(format, args...)}
}

// argsKey validates and folds a key; frag is the offending text for the message.
func argsKey(word, frag string) (string, error) {
	if word == "" {
		return "", argsErrorf("the parameter name before = is missing in %s", params.Sanitize(frag))
	}
	b := []byte(word)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	key := string(b)
	if !params.ValidName(key) {
		return "", argsErrorf("%s is not a parameter name: use letters, digits and _, starting with a letter", params.Echo(word))
	}
	return key, nil
}

type argScanner struct {
	s []rune
	i int
}

func (sc *argScanner) eof() bool { return sc.i >= len(sc.s) }

func (sc *argScanner) atBoundary() bool { return sc.eof() || unicode.IsSpace(sc.s[sc.i]) }

func (sc *argScanner) skipSpace() {
	for !sc.eof() && unicode.IsSpace(sc.s[sc.i]) {
		sc.i++
	}
}

// fragment is the input from start to the end of the current word, for errors.
func (sc *argScanner) fragment(start int) string {
	end := sc.i
	for end < len(sc.s) && !unicode.IsSpace(sc.s[end]) {
		end++
	}
	return string(sc.s[start:end])
}

// word reads up to white space, or (when stopAtEq) up to and past the first =.
func (sc *argScanner) word(stopAtEq bool) (string, bool) {
	start := sc.i
	for !sc.atBoundary() {
		if stopAtEq && sc.s[sc.i] == '=' {
			w := string(sc.s[start:sc.i])
			sc.i++
			return w, true
		}
		sc.i++
	}
	return string(sc.s[start:sc.i]), false
}

// special reads a quoted string at the current position. ok is false when
// there is none; start is where the whole word began.
func (sc *argScanner) special(start int) (string, bool, error) {
	if sc.eof() {
		return "", false, nil
	}
	switch sc.s[sc.i] {
	case '"', '\'':
		v, err := sc.quoted(start)
		return v, err == nil, err
	}
	return "", false, nil
}

func (sc *argScanner) quoted(start int) (string, error) {
	q := sc.s[sc.i]
	sc.i++
	var b strings.Builder
	for {
		if sc.eof() {
			return "", argsErrorf("the closing %c is missing in %s", q, params.Sanitize(string(sc.s[start:])))
		}
		c := sc.s[sc.i]
		switch {
		case c == q:
			sc.i++
			if !sc.atBoundary() {
				return "", argsErrorf("put a space after the closing %c in %s", q, params.Sanitize(sc.fragment(start)))
			}
			return b.String(), nil
		case q == '"' && c == '\\' && sc.i+1 < len(sc.s) && (sc.s[sc.i+1] == '"' || sc.s[sc.i+1] == '\\'):
			b.WriteRune(sc.s[sc.i+1])
			sc.i += 2
		default:
			b.WriteRune(c)
			sc.i++
		}
	}
}

// String renders the arguments canonically: positional words first, then
// key=value in Order, quoting where needed. ParseArgs(a.String()) gives back
// a whenever the result fits MaxArgsBytes.
func (a Args) String() string {
	var parts []string
	for _, p := range a.Positional {
		parts = append(parts, argsQuote(p, true))
	}
	for _, k := range a.Order {
		parts = append(parts, k+"="+argsQuote(a.Named[k], false))
	}
	return strings.Join(parts, " ")
}

// QuoteArg writes v as one value ParseArgs reads back whole: bare when it can
// be, else quoted.
func QuoteArg(v string) string { return argsQuote(v, true) }

func argsQuote(v string, positional bool) string {
	bare := v != "" && !strings.ContainsFunc(v, unicode.IsSpace) &&
		!strings.ContainsAny(v[:1], `"'<`) && !(positional && strings.Contains(v, "="))
	switch {
	case bare:
		return v
	case !strings.Contains(v, "'"):
		return "'" + v + "'"
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			// A backslash is literal unless it would escape what follows.
			if i+1 == len(v) || v[i+1] == '"' || v[i+1] == '\\' {
				b.WriteString(`\\`)
			} else {
				b.WriteByte('\\')
			}
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
