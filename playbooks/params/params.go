// Package params defines the typed parameters a playbook declares and validates
// what a user typed against them.
//
// Validation narrows input to well-formed values, but it is not what keeps a
// script safe: validated values are handed to PowerShell as data (see
// ScriptValue), never spliced into script text. That is why an email address
// such as o'brien@contoso.com is accepted even though it holds a quote.
package params

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ndrbot/ndrbot/incident"
)

// Type is the kind of value a parameter holds.
type Type string

// The parameter types a playbook may declare.
const (
	// TypeEmail is an SMTP address with a dot-atom local part (RFC 5321) and a
	// domain as TypeDomain; the domain is lower-cased, the local part kept as typed.
	TypeEmail Type = "email"
	// TypeDomain is a DNS name of at least two LDH labels, lower-cased; IDNs in
	// their punycode (xn--) form.
	TypeDomain Type = "domain"
	// TypeHostname is like TypeDomain but a single label (EXCH01) is allowed.
	TypeHostname Type = "hostname"
	// TypeIdentity is an Exchange identity (a mailbox, policy or connector name):
	// letters, digits, space and . _ - @ \ only.
	TypeIdentity Type = "identity"
	// TypeIP is an IPv4 or IPv6 address in canonical form.
	TypeIP Type = "ip"
	// TypeInt is a whole number (int64), bounded by Min and Max when set.
	TypeInt Type = "int"
	// TypeDuration is a positive whole number of seconds written in Go syntax
	// (90s, 15m, 2h); Min and Max are in seconds.
	TypeDuration Type = "duration"
	// TypeEnum is exactly one of Values.
	TypeEnum Type = "enum"
	// TypeString is a short, printable text without control characters.
	TypeString Type = "string"
)

// Limits of the types.
const (
	MaxStringRunes   = 200
	MaxIdentityRunes = 256
	maxDomainLen     = 253
	maxLabelLen      = 63
	maxLocalLen      = 64
	maxEmailLen      = 254
	maxEcho          = 80
)

// Types lists every known type.
var Types = []Type{TypeEmail, TypeDomain, TypeHostname, TypeIdentity, TypeIP, TypeInt, TypeDuration, TypeEnum, TypeString}

// Known reports whether t is one of Types.
func (t Type) Known() bool { return slices.Contains(Types, t) }

// Describe names the type for humans, with an article ("an email address").
func (t Type) Describe() string {
	switch t {
	case TypeEmail:
		return "an email address"
	case TypeDomain:
		return "a domain name"
	case TypeHostname:
		return "a host name"
	case TypeIdentity:
		return "an Exchange identity"
	case TypeIP:
		return "an IP address"
	case TypeInt:
		return "a whole number"
	case TypeDuration:
		return "a duration"
	case TypeEnum:
		return "one of the listed values"
	case TypeString:
		return "a short text"
	default:
		return "a value of unknown type " + strconv.Quote(string(t))
	}
}

// Spec declares one playbook parameter.
type Spec struct {
	Type     Type     `yaml:"type"`
	Required bool     `yaml:"required"`
	Default  string   `yaml:"default"`
	Values   []string `yaml:"values"` // enum only
	Min      *int64   `yaml:"min"`    // int; duration in seconds
	Max      *int64   `yaml:"max"`    // int; duration in seconds
	Help     string   `yaml:"help"`
	Example  string   `yaml:"example"`
}

// Error is a value that failed validation. Its message is safe to show to the
// user: the offending value is cut to 80 characters and stripped of control
// characters. It unwraps to incident.ErrInvalidInput.
type Error struct {
	// Param is the parameter name; empty when Spec.Parse was called directly.
	Param string
	// Reason reads as a sentence fragment: `"x" is not an email address`.
	Reason string
}

func (e *Error) Error() string {
	if e.Param == "" {
		return e.Reason
	}
	return e.Param + ": " + e.Reason
}

// Unwrap makes errors.Is(err, incident.ErrInvalidInput) hold.
func (e *Error) Unwrap() error { return incident.ErrInvalidInput }

func invalid(format string, args ...any) *Error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}

// Echo renders user text for an error message: Sanitize(s) in double quotes.
// It is for humans only; never parse it.
func Echo(s string) string { return `"` + Sanitize(s) + `"` }

// Sanitize makes user text safe to repeat in a message: control and format
// characters (newlines, NUL, ANSI escapes, bidi overrides, zero-width
// characters) are dropped, invalid UTF-8 becomes U+FFFD, and the result is
// cut to 80 characters, marked with "…". It does not escape chat markup; that
// is the chat adapter's job.
func Sanitize(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if !unicode.IsGraphic(r) {
			continue
		}
		if n == maxEcho {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// Check reports whether the spec itself is sane: a known type, values for (and
// only for) an enum, bounds only where they apply with min <= max, and a
// default and example that parse. Its errors are meant for playbook authors.
func (s Spec) Check() error {
	var errs []error
	if !s.Type.Known() {
		known := make([]string, len(Types))
		for i, t := range Types {
			known[i] = string(t)
		}
		return fmt.Errorf("unknown type %q (known: %s)", s.Type, strings.Join(known, ", "))
	}
	if s.Type == TypeEnum {
		if len(s.Values) == 0 {
			errs = append(errs, errors.New("an enum needs values"))
		}
		seen := map[string]bool{}
		for _, v := range s.Values {
			switch {
			case v == "":
				errs = append(errs, errors.New("enum values must not be empty"))
			case checkText(v) != "":
				errs = append(errs, fmt.Errorf("enum value %q: %s", v, checkText(v)))
			case seen[v]:
				errs = append(errs, fmt.Errorf("enum value %q is listed twice", v))
			}
			seen[v] = true
		}
	} else if len(s.Values) > 0 {
		errs = append(errs, fmt.Errorf("values only apply to type enum, not %s", s.Type))
	}
	if s.Type == TypeInt || s.Type == TypeDuration {
		if s.Min != nil && s.Max != nil && *s.Min > *s.Max {
			errs = append(errs, fmt.Errorf("min %d is greater than max %d", *s.Min, *s.Max))
		}
		if s.Type == TypeDuration {
			for _, b := range []struct {
				name string
				v    *int64
			}{{"min", s.Min}, {"max", s.Max}} {
				if b.v != nil && (*b.v < 0 || *b.v > maxDurationSeconds) {
					errs = append(errs, fmt.Errorf("%s %d is not a number of seconds between 0 and %d", b.name, *b.v, maxDurationSeconds))
				}
			}
		}
	} else if s.Min != nil || s.Max != nil {
		errs = append(errs, fmt.Errorf("min and max only apply to types int and duration, not %s", s.Type))
	}
	if s.Required && s.Default != "" {
		errs = append(errs, errors.New("a required parameter cannot have a default"))
	}
	if len(errs) > 0 {
		// Default and example are only meaningful once the spec is otherwise sane.
		return errors.Join(errs...)
	}
	if s.Default != "" {
		if _, err := s.Parse(s.Default); err != nil {
			errs = append(errs, fmt.Errorf("default: %s", err.Error()))
		}
	}
	if s.Example != "" {
		if _, err := s.Parse(s.Example); err != nil {
			errs = append(errs, fmt.Errorf("example: %s", err.Error()))
		}
	}
	return errors.Join(errs...)
}

const maxDurationSeconds = int64(1<<63-1) / int64(time.Second)

// seconds renders a bound in seconds the way durations are written.
func seconds(n int64) string {
	if n < 0 || n > maxDurationSeconds {
		return strconv.FormatInt(n, 10) + "s"
	}
	return (time.Duration(n) * time.Second).String()
}

// Parse validates raw against the spec and returns the typed value:
// string for email, domain, hostname, identity, ip, enum and string; int64 for
// int; time.Duration for duration. Raw is taken exactly as given (no trimming).
// Errors are *Error and wrap incident.ErrInvalidInput.
func (s Spec) Parse(raw string) (any, error) {
	if raw == "" {
		return nil, invalid("a value is required (%s)", s.describe())
	}
	switch s.Type {
	case TypeEmail:
		v, why := parseEmail(raw)
		if why != "" {
			return nil, invalid("%s is not an email address: %s", Echo(raw), why)
		}
		return v, nil
	case TypeDomain, TypeHostname:
		minLabels := 2
		if s.Type == TypeHostname {
			minLabels = 1
		}
		v, why := parseDomain(raw, minLabels)
		if why != "" {
			return nil, invalid("%s is not %s: %s", Echo(raw), s.Type.Describe(), why)
		}
		return v, nil
	case TypeIdentity:
		if why := checkIdentity(raw); why != "" {
			return nil, invalid("%s is not an Exchange identity: %s", Echo(raw), why)
		}
		return raw, nil
	case TypeIP:
		v, err := parseIP(raw)
		if err != nil {
			return nil, err
		}
		return v, nil
	case TypeInt:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return nil, invalid("%s is too large", Echo(raw))
			}
			return nil, invalid("%s is not a whole number", Echo(raw))
		}
		if s.Min != nil && n < *s.Min {
			return nil, invalid("%d is below the minimum %d", n, *s.Min)
		}
		if s.Max != nil && n > *s.Max {
			return nil, invalid("%d is above the maximum %d", n, *s.Max)
		}
		return n, nil
	case TypeDuration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return nil, invalid("%s is not a duration (write it like 90s, 15m or 2h)", Echo(raw))
		}
		if d <= 0 {
			return nil, invalid("%s is not a positive duration", Echo(raw))
		}
		if d%time.Second != 0 {
			return nil, invalid("%s is not a whole number of seconds", Echo(raw))
		}
		secs := int64(d / time.Second)
		if s.Min != nil && secs < *s.Min {
			return nil, invalid("%s is shorter than the minimum %s", d, seconds(*s.Min))
		}
		if s.Max != nil && secs > *s.Max {
			return nil, invalid("%s is longer than the maximum %s", d, seconds(*s.Max))
		}
		return d, nil
	case TypeEnum:
		if slices.Contains(s.Values, raw) {
			return raw, nil
		}
		return nil, invalid("%s is not one of: %s", Echo(raw), strings.Join(s.Values, ", "))
	case TypeString:
		if why := checkText(raw); why != "" {
			return nil, invalid("%s is not allowed: %s", Echo(raw), why)
		}
		return raw, nil
	default:
		return nil, invalid("parameter has unknown type %s", Echo(string(s.Type)))
	}
}

// describe is the type plus an example, for "missing" messages.
func (s Spec) describe() string {
	d := s.Type.Describe()
	switch {
	case s.Type == TypeEnum && len(s.Values) > 0:
		d = "one of: " + strings.Join(s.Values, ", ")
	case s.Type == TypeInt:
		d += bounds(s.Min, s.Max, func(n int64) string { return strconv.FormatInt(n, 10) })
	case s.Type == TypeDuration:
		d += bounds(s.Min, s.Max, seconds)
	}
	if ex := s.Example; ex != "" {
		d += ", e.g. " + ex
	} else if ex := defaultExample[s.Type]; ex != "" {
		d += ", e.g. " + ex
	}
	return d
}

func bounds(lo, hi *int64, format func(int64) string) string {
	switch {
	case lo != nil && hi != nil:
		return " from " + format(*lo) + " to " + format(*hi)
	case lo != nil:
		return " of at least " + format(*lo)
	case hi != nil:
		return " of at most " + format(*hi)
	}
	return ""
}

var defaultExample = map[Type]string{
	TypeEmail:    "alice@contoso.com",
	TypeDomain:   "contoso.com",
	TypeHostname: "exch01.contoso.com",
	TypeIdentity: "Default Throttling Policy",
	TypeIP:       "192.0.2.10",
	TypeDuration: "15m",
}

// checkText validates TypeString: valid UTF-8, at most MaxStringRunes, and
// graphic characters only (letters, marks, numbers, punctuation, symbols and
// spaces; no control, format, line- or paragraph-separator characters).
func checkText(s string) string {
	if !utf8.ValidString(s) {
		return "it is not valid UTF-8"
	}
	if n := utf8.RuneCountInString(s); n > MaxStringRunes {
		return fmt.Sprintf("it is %d characters long, at most %d are allowed", n, MaxStringRunes)
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) {
			return fmt.Sprintf("it contains the control character %U", r)
		}
	}
	return ""
}

// checkIdentity validates TypeIdentity.
func checkIdentity(s string) string {
	if !utf8.ValidString(s) {
		return "it is not valid UTF-8"
	}
	if n := utf8.RuneCountInString(s); n > MaxIdentityRunes {
		return fmt.Sprintf("it is %d characters long, at most %d are allowed", n, MaxIdentityRunes)
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return "it starts or ends with a space"
	}
	for _, r := range s {
		if !identityRune(r) {
			return "only letters, digits, spaces and . _ - @ \\ are allowed"
		}
	}
	return ""
}

func identityRune(r rune) bool {
	switch r {
	case ' ', '.', '_', '-', '@', '\\':
		return true
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// parseEmail validates an addr-spec with a dot-atom local part. Quoted local
// parts ("a b"@contoso.com) and address literals (a@[192.0.2.1]) are refused:
// Exchange recipients do not use them.
func parseEmail(s string) (string, string) {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", "it has no @"
	}
	local, domain := s[:at], s[at+1:]
	if local == "" {
		return "", "nothing before the @"
	}
	if len(local) > maxLocalLen {
		return "", fmt.Sprintf("the part before the @ is longer than %d characters", maxLocalLen)
	}
	if why := checkDotAtom(local); why != "" {
		return "", why
	}
	if domain == "" {
		return "", "nothing after the @"
	}
	d, why := parseDomain(domain, 2)
	if why != "" {
		return "", "the domain " + why
	}
	addr := local + "@" + d
	if len(addr) > maxEmailLen {
		return "", fmt.Sprintf("it is longer than %d characters", maxEmailLen)
	}
	return addr, ""
}

// atext is RFC 5322 section 3.2.3: ALPHA / DIGIT and these specials.
const atextSpecials = "!#$%&'*+-/=?^_`{|}~"

func isAtext(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte(atextSpecials, c) >= 0
}

func checkDotAtom(local string) string {
	if local[0] == '.' || local[len(local)-1] == '.' {
		return "the part before the @ starts or ends with a dot"
	}
	if strings.Contains(local, "..") {
		return "the part before the @ has two dots in a row"
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; c != '.' && !isAtext(c) {
			if c == '@' {
				return "it has more than one @"
			}
			return "the part before the @ may hold only letters, digits and ! # $ % & ' * + - / = ? ^ _ ` { | } ~ ."
		}
	}
	return ""
}

// parseDomain validates LDH labels and lower-cases them. One trailing dot (an
// absolute name) is accepted and dropped. The last label may not be all digits,
// which keeps IPv4 addresses out.
func parseDomain(s string, minLabels int) (string, string) {
	if len(s) > 1 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	if len(s) > maxDomainLen {
		return "", fmt.Sprintf("it is longer than %d characters", maxDomainLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return "", "use the xn-- (punycode) form for international names"
		}
	}
	s = strings.ToLower(s)
	labels := strings.Split(s, ".")
	if len(labels) < minLabels {
		return "", "it needs at least two labels, like contoso.com"
	}
	for _, l := range labels {
		if why := checkLabel(l); why != "" {
			return "", why
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return "", "it looks like an IP address or a number"
	}
	return s, ""
}

func checkLabel(l string) string {
	if l == "" {
		return "it has an empty label (two dots in a row, or a leading dot)"
	}
	if len(l) > maxLabelLen {
		return fmt.Sprintf("a label is longer than %d characters", maxLabelLen)
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return "a label starts or ends with a hyphen"
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return "only letters, digits, hyphens and dots are allowed"
		}
	}
	// "ab--" is reserved (RFC 5891 4.2.3.1); of those only "xn--" is in use.
	if len(l) >= 4 && l[2:4] == "--" && (l[:2] != "xn" || len(l) == 4) {
		return "a label has -- in third and fourth position, which only xn-- (punycode) may have"
	}
	return ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseIP accepts IPv4 and IPv6 (without a zone) and returns the canonical
// text; an IPv4-mapped IPv6 address becomes plain IPv4.
func parseIP(s string) (string, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", invalid("%s is not an IP address", Echo(s))
	}
	if a.Zone() != "" {
		return "", invalid("%s is not an IP address: a zone such as %%eth0 is not allowed", Echo(s))
	}
	return a.Unmap().String(), nil
}

// ScriptValue is how a typed value is handed to a PowerShell script as JSON
// data: a time.Duration becomes whole seconds (int64); everything else is
// returned as is.
func ScriptValue(v any) any {
	if d, ok := v.(time.Duration); ok {
		return int64(d / time.Second)
	}
	return v
}

// ScriptValues applies ScriptValue to every value of a resolved set.
func ScriptValues(vals map[string]any) map[string]any {
	out := make(map[string]any, len(vals))
	for k, v := range vals {
		out[k] = ScriptValue(v)
	}
	return out
}
