package params_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks/params"
)

// fuzzSpecs are the specs FuzzParamParse chooses from by index.
var fuzzSpecs = []params.Spec{
	{Type: params.TypeEmail},
	{Type: params.TypeDomain},
	{Type: params.TypeHostname},
	{Type: params.TypeIdentity},
	{Type: params.TypeIP},
	{Type: params.TypeInt},
	{Type: params.TypeInt, Min: i64(1), Max: i64(1000)},
	{Type: params.TypeDuration},
	{Type: params.TypeDuration, Min: i64(60), Max: i64(86400)},
	{Type: params.TypeEnum, Values: []string{"soft", "hard", "Hard"}},
	{Type: params.TypeString},
}

// shellSpecials are the characters that matter to PowerShell, cmd or a shell
// if a value were ever spliced into script text. Backslash is not among them:
// it is literal in PowerShell and part of DOMAIN\user identities.
const shellSpecials = "'\"`$;|&<>(){}"

// format renders a parsed value back into the text Parse accepts.
func format(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case time.Duration:
		return v.String()
	}
	panic(fmt.Sprintf("unexpected type %T", v))
}

// FuzzParamParse checks, for every type:
//
//  1. Parse never panics.
//  2. A rejection is a *params.Error wrapping incident.ErrInvalidInput whose
//     message is valid UTF-8 without control or format characters and of
//     bounded length (the echo of the value is at most 80 characters).
//  3. An accepted value has the Go type the docs promise, is canonical
//     (Parse(format(v)) == v) and re-validates.
//  4. Safety of accepted values, checked independently of the validator:
//     - domain and hostname: only a-z 0-9 . - (hence none of '"`$;|&<>(){}
//     nor space, backslash, newline or NUL), at most 253 bytes;
//     - ip: only 0-9 a-f . :;
//     - identity: no control character (newline and NUL included) and none of
//     '"`$;|&<>(){}; backslash may occur;
//     - email: exactly one @; the domain part satisfies the domain property;
//     the local part is ASCII letters, digits, dots and the RFC 5322 atext
//     specials !#$%&'*+-/=?^_`{|}~ only, so it may hold ' ` $ & | { } but
//     never " ; < > ( ) \, space, newline, NUL or any non-ASCII byte;
//     - string: valid UTF-8, no control or format character, ≤ 200 runes;
//     - int and duration within Min/Max; durations positive whole seconds;
//     - enum: exactly one of Values.
func FuzzParamParse(f *testing.F) {
	seeds := []string{
		"alice@contoso.com", "o'brien@contoso.com", "Alice@CONTOSO.com.", "a@b.c",
		"x'; Remove-Mailbox ceo", "$(Remove-Mailbox ceo)", "`whoami`", "a;b", "a\nb", "a\x00b",
		"contoso.com", "xn--mnchen-3ya.de", "EXCH01", "1.2.3.4", "::ffff:1.2.3.4", "fe80::1%eth0",
		"Default Throttling Policy", `CONTOSO\alice`, " x", "ü", "\u202e", "\xff",
		"15m", "1h30m", "1.5s", "-1m", "0", "9223372036854775807", "+7", "soft", "Hard",
		strings.Repeat("a", 300), strings.Repeat("a.", 130) + "com",
	}
	for i, s := range seeds {
		f.Add(uint8(i%len(fuzzSpecs)), s)
		f.Add(uint8((i+3)%len(fuzzSpecs)), s)
	}
	f.Fuzz(func(t *testing.T, which uint8, raw string) {
		spec := fuzzSpecs[int(which)%len(fuzzSpecs)]
		v, err := spec.Parse(raw)
		if err != nil {
			checkRejection(t, err)
			return
		}
		checkAccepted(t, spec, v)
		again, err := spec.Parse(format(v))
		if err != nil {
			t.Fatalf("%s: %q parsed to %#v, which does not re-validate: %v", spec.Type, raw, v, err)
		}
		if again != v {
			t.Fatalf("%s: %q parsed to %#v, re-parsed to %#v", spec.Type, raw, v, again)
		}
	})
}

func checkRejection(t *testing.T, err error) {
	t.Helper()
	var pe *params.Error
	if !errors.As(err, &pe) || !errors.Is(err, incident.ErrInvalidInput) {
		t.Fatalf("error %v is not a *params.Error wrapping ErrInvalidInput", err)
	}
	msg := err.Error()
	if !utf8.ValidString(msg) {
		t.Fatalf("message is not UTF-8: %q", msg)
	}
	for _, r := range msg {
		if !unicode.IsGraphic(r) {
			t.Fatalf("message holds %U: %q", r, msg)
		}
	}
	if n := utf8.RuneCountInString(msg); n > 300 {
		t.Fatalf("message is %d runes long: %q", n, msg)
	}
}

func checkAccepted(t *testing.T, spec params.Spec, v any) {
	t.Helper()
	switch spec.Type {
	case params.TypeEmail:
		s := v.(string)
		if strings.Count(s, "@") != 1 {
			t.Fatalf("email %q does not have exactly one @", s)
		}
		local, domain, _ := strings.Cut(s, "@")
		checkDomainChars(t, domain)
		for i := 0; i < len(local); i++ {
			c := local[i]
			ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
				strings.IndexByte(".!#$%&'*+-/=?^_`{|}~", c) >= 0
			if !ok {
				t.Fatalf("email local part %q holds %q", local, c)
			}
		}
	case params.TypeDomain, params.TypeHostname:
		checkDomainChars(t, v.(string))
	case params.TypeIP:
		s := v.(string)
		if strings.Trim(s, "0123456789abcdef.:") != "" {
			t.Fatalf("ip %q holds more than hex digits, dots and colons", s)
		}
	case params.TypeIdentity:
		s := v.(string)
		if strings.ContainsAny(s, shellSpecials) || strings.ContainsFunc(s, unicode.IsControl) {
			t.Fatalf("identity %q holds a special or control character", s)
		}
		if n := utf8.RuneCountInString(s); n < 1 || n > 256 {
			t.Fatalf("identity %q is %d runes", s, n)
		}
	case params.TypeString:
		s := v.(string)
		if !utf8.ValidString(s) || utf8.RuneCountInString(s) > 200 ||
			strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
			t.Fatalf("string %q is not safe short text", s)
		}
	case params.TypeInt:
		n := v.(int64)
		if spec.Min != nil && n < *spec.Min || spec.Max != nil && n > *spec.Max {
			t.Fatalf("int %d out of bounds", n)
		}
	case params.TypeDuration:
		d := v.(time.Duration)
		secs := params.ScriptValue(d).(int64)
		if d <= 0 || d%time.Second != 0 || time.Duration(secs)*time.Second != d {
			t.Fatalf("duration %v is not positive whole seconds", d)
		}
		if spec.Min != nil && secs < *spec.Min || spec.Max != nil && secs > *spec.Max {
			t.Fatalf("duration %v out of bounds", d)
		}
	case params.TypeEnum:
		s := v.(string)
		found := false
		for _, x := range spec.Values {
			found = found || x == s
		}
		if !found {
			t.Fatalf("enum %q not among values", s)
		}
	default:
		t.Fatalf("untested type %s", spec.Type)
	}
}

func checkDomainChars(t *testing.T, s string) {
	t.Helper()
	if s == "" || len(s) > 253 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" ||
		strings.Contains(s, "..") || s[0] == '.' || s[len(s)-1] == '.' {
		t.Fatalf("domain %q holds more than a-z 0-9 . - or is malformed", s)
	}
}
