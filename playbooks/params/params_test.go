package params_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks/params"
)

func i64(n int64) *int64 { return &n }

// hostile values no type but string may accept (and string only some).
var hostile = []string{
	`x'; Remove-Mailbox ceo`,
	`alice@contoso.com'; Remove-Mailbox ceo -Confirm:$false; '`,
	`$(Remove-Mailbox ceo)`,
	"`whoami`",
	`a;b`,
	`a|b`,
	`a&b`,
	`"quoted"`,
	"alice@contoso.com\nRemove-Mailbox ceo",
	"alice@contoso.com\r\n",
	"alice@contoso.com\x00",
	"contoso.com\x00.evil",
	"@{a=1}",
	"<script>",
	"contoso.com\u202e",
	"\u200bcontoso.com",
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		spec params.Spec
		raw  string
		want any
	}{
		{"email", params.Spec{Type: params.TypeEmail}, "alice@contoso.com", "alice@contoso.com"},
		{"email lower-cases domain only", params.Spec{Type: params.TypeEmail}, "Alice.Smith@Contoso.COM", "Alice.Smith@contoso.com"},
		{"email apostrophe", params.Spec{Type: params.TypeEmail}, "o'brien@contoso.com", "o'brien@contoso.com"},
		{"email plus tag", params.Spec{Type: params.TypeEmail}, "alice+ndr@contoso.com", "alice+ndr@contoso.com"},
		{"email all atext specials", params.Spec{Type: params.TypeEmail}, "a!#$%&'*+-/=?^_`{|}~z@contoso.com", "a!#$%&'*+-/=?^_`{|}~z@contoso.com"},
		{"email subdomain", params.Spec{Type: params.TypeEmail}, "svc@mail.eu.contoso.com", "svc@mail.eu.contoso.com"},
		{"email idn domain", params.Spec{Type: params.TypeEmail}, "info@xn--mnchen-3ya.de", "info@xn--mnchen-3ya.de"},
		{"email 64 char local", params.Spec{Type: params.TypeEmail}, strings.Repeat("a", 64) + "@contoso.com", strings.Repeat("a", 64) + "@contoso.com"},
		{"email trailing dot domain", params.Spec{Type: params.TypeEmail}, "alice@contoso.com.", "alice@contoso.com"},

		{"domain", params.Spec{Type: params.TypeDomain}, "contoso.com", "contoso.com"},
		{"domain upper", params.Spec{Type: params.TypeDomain}, "Contoso.MAIL.protection.outlook.COM", "contoso.mail.protection.outlook.com"},
		{"domain absolute", params.Spec{Type: params.TypeDomain}, "contoso.com.", "contoso.com"},
		{"domain punycode", params.Spec{Type: params.TypeDomain}, "xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"domain digits and hyphens", params.Spec{Type: params.TypeDomain}, "1-2.contoso-mail.com", "1-2.contoso-mail.com"},
		{"domain 63 char label", params.Spec{Type: params.TypeDomain}, strings.Repeat("a", 63) + ".com", strings.Repeat("a", 63) + ".com"},
		{"domain 253 chars", params.Spec{Type: params.TypeDomain}, longDomain(253), longDomain(253)},

		{"hostname single label", params.Spec{Type: params.TypeHostname}, "EXCH01", "exch01"},
		{"hostname fqdn", params.Spec{Type: params.TypeHostname}, "exch01.corp.contoso.com", "exch01.corp.contoso.com"},

		{"identity policy", params.Spec{Type: params.TypeIdentity}, "Default Throttling Policy", "Default Throttling Policy"},
		{"identity domain user", params.Spec{Type: params.TypeIdentity}, `CONTOSO\alice`, `CONTOSO\alice`},
		{"identity address", params.Spec{Type: params.TypeIdentity}, "alice.smith@contoso.com", "alice.smith@contoso.com"},
		{"identity unicode letters", params.Spec{Type: params.TypeIdentity}, "Jürgen Müller_2-Ω", "Jürgen Müller_2-Ω"},
		{"identity max", params.Spec{Type: params.TypeIdentity}, strings.Repeat("é", 256), strings.Repeat("é", 256)},

		{"ipv4", params.Spec{Type: params.TypeIP}, "192.0.2.10", "192.0.2.10"},
		{"ipv6 canonical", params.Spec{Type: params.TypeIP}, "2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
		{"ipv4-mapped", params.Spec{Type: params.TypeIP}, "::ffff:192.0.2.1", "192.0.2.1"},

		{"int", params.Spec{Type: params.TypeInt}, "1000", int64(1000)},
		{"int negative", params.Spec{Type: params.TypeInt}, "-5", int64(-5)},
		{"int plus sign", params.Spec{Type: params.TypeInt}, "+5", int64(5)},
		{"int at bounds", params.Spec{Type: params.TypeInt, Min: i64(1), Max: i64(10)}, "10", int64(10)},
		{"int max int64", params.Spec{Type: params.TypeInt}, "9223372036854775807", int64(9223372036854775807)},

		{"duration minutes", params.Spec{Type: params.TypeDuration}, "15m", 15 * time.Minute},
		{"duration compound", params.Spec{Type: params.TypeDuration}, "1h30m", 90 * time.Minute},
		{"duration within bounds", params.Spec{Type: params.TypeDuration, Min: i64(60), Max: i64(3600)}, "1h", time.Hour},
		{"duration fractional whole seconds", params.Spec{Type: params.TypeDuration}, "1.5m", 90 * time.Second},

		{"enum", params.Spec{Type: params.TypeEnum, Values: []string{"soft", "hard"}}, "hard", "hard"},

		{"string", params.Spec{Type: params.TypeString}, "queue stuck since 09:00, see INC-42", "queue stuck since 09:00, see INC-42"},
		{"string with quotes is data", params.Spec{Type: params.TypeString}, `it's "fine"; $(no) `, `it's "fine"; $(no) `},
		{"string unicode", params.Spec{Type: params.TypeString}, "Störung – 5.5.4 🔥", "Störung – 5.5.4 🔥"},
		{"string max", params.Spec{Type: params.TypeString}, strings.Repeat("ü", 200), strings.Repeat("ü", 200)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.spec.Parse(tt.raw)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// longDomain builds a valid domain of exactly n bytes (n >= 5) ending in .com.
func longDomain(n int) string {
	var b strings.Builder
	for rem := n - 3; rem > 0; {
		l := min(63, rem-1)
		if rem-(l+1) == 1 { // a remainder of one byte cannot hold a label and its dot
			l--
		}
		b.WriteString(strings.Repeat("a", l) + ".")
		rem -= l + 1
	}
	return b.String() + "com"
}

func TestLongDomainHelper(t *testing.T) {
	assert.Len(t, longDomain(253), 253)
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name    string
		spec    params.Spec
		raw     string
		wantMsg string // substring of the error
	}{
		{"email empty", params.Spec{Type: params.TypeEmail}, "", "a value is required"},
		{"email injection", params.Spec{Type: params.TypeEmail}, `x'; Remove-Mailbox ceo`, `"x'; Remove-Mailbox ceo" is not an email address`},
		{"email no at", params.Spec{Type: params.TypeEmail}, "alice", "has no @"},
		{"email two ats", params.Spec{Type: params.TypeEmail}, "a@b@contoso.com", "more than one @"},
		{"email empty local", params.Spec{Type: params.TypeEmail}, "@contoso.com", "nothing before the @"},
		{"email empty domain", params.Spec{Type: params.TypeEmail}, "alice@", "nothing after the @"},
		{"email leading dot", params.Spec{Type: params.TypeEmail}, ".alice@contoso.com", "starts or ends with a dot"},
		{"email double dot", params.Spec{Type: params.TypeEmail}, "a..b@contoso.com", "two dots"},
		{"email quoted local", params.Spec{Type: params.TypeEmail}, `"a b"@contoso.com`, "may hold only"},
		{"email space", params.Spec{Type: params.TypeEmail}, "alice smith@contoso.com", "may hold only"},
		{"email semicolon", params.Spec{Type: params.TypeEmail}, "a;b@contoso.com", "may hold only"},
		{"email paren", params.Spec{Type: params.TypeEmail}, "a(b)@contoso.com", "may hold only"},
		{"email backslash", params.Spec{Type: params.TypeEmail}, `a\b@contoso.com`, "may hold only"},
		{"email subexpression in domain", params.Spec{Type: params.TypeEmail}, "a@$(whoami).com", "the domain"},
		{"email single label domain", params.Spec{Type: params.TypeEmail}, "alice@localhost", "at least two labels"},
		{"email address literal", params.Spec{Type: params.TypeEmail}, "alice@[192.0.2.1]", "the domain"},
		{"email ip domain", params.Spec{Type: params.TypeEmail}, "alice@192.0.2.1", "looks like an IP"},
		{"email local too long", params.Spec{Type: params.TypeEmail}, strings.Repeat("a", 65) + "@contoso.com", "longer than 64"},
		{"email too long", params.Spec{Type: params.TypeEmail}, "a@" + longDomain(253), "longer than 254"},
		{"email unicode local", params.Spec{Type: params.TypeEmail}, "jürgen@contoso.com", "may hold only"},
		{"email smart apostrophe", params.Spec{Type: params.TypeEmail}, "o\u2019brien@contoso.com", "may hold only"},
		{"email mailto", params.Spec{Type: params.TypeEmail}, "mailto:alice@contoso.com", "may hold only"},

		{"domain single label", params.Spec{Type: params.TypeDomain}, "contoso", "at least two labels"},
		{"domain empty label", params.Spec{Type: params.TypeDomain}, "contoso..com", "empty label"},
		{"domain leading dot", params.Spec{Type: params.TypeDomain}, ".contoso.com", "empty label"},
		{"domain lone dot", params.Spec{Type: params.TypeDomain}, ".", "empty label"},
		{"domain two trailing dots", params.Spec{Type: params.TypeDomain}, "contoso.com..", "empty label"},
		{"domain hyphen edge", params.Spec{Type: params.TypeDomain}, "-contoso.com", "hyphen"},
		{"domain underscore", params.Spec{Type: params.TypeDomain}, "_dmarc.contoso.com", "only letters"},
		{"domain label too long", params.Spec{Type: params.TypeDomain}, strings.Repeat("a", 64) + ".com", "longer than 63"},
		{"domain too long", params.Spec{Type: params.TypeDomain}, longDomain(253) + "a", "longer than 253"},
		{"domain unicode", params.Spec{Type: params.TypeDomain}, "münchen.de", "xn--"},
		{"domain reserved hyphens", params.Spec{Type: params.TypeDomain}, "ab--cd.com", "third and fourth"},
		{"domain bare xn--", params.Spec{Type: params.TypeDomain}, "xn--.com", "hyphen"},
		{"domain reserved ab--", params.Spec{Type: params.TypeDomain}, "ab--x.com", "third and fourth"},
		{"domain ip", params.Spec{Type: params.TypeDomain}, "192.0.2.1", "looks like an IP"},
		{"domain url", params.Spec{Type: params.TypeDomain}, "http://contoso.com", "only letters"},
		{"domain space", params.Spec{Type: params.TypeDomain}, "contoso.com ", "only letters"},

		{"hostname numeric", params.Spec{Type: params.TypeHostname}, "123", "looks like an IP"},
		{"hostname with port", params.Spec{Type: params.TypeHostname}, "exch01:25", "only letters"},

		{"identity leading space", params.Spec{Type: params.TypeIdentity}, " Default", "starts or ends with a space"},
		{"identity trailing space", params.Spec{Type: params.TypeIdentity}, "Default ", "starts or ends with a space"},
		{"identity apostrophe", params.Spec{Type: params.TypeIdentity}, "O'Brien", "only letters"},
		{"identity comma", params.Spec{Type: params.TypeIdentity}, "Smith, Pat", "only letters"},
		{"identity too long", params.Spec{Type: params.TypeIdentity}, strings.Repeat("a", 257), "257 characters"},
		{"identity tab", params.Spec{Type: params.TypeIdentity}, "a\tb", "only letters"},
		{"identity invalid utf8", params.Spec{Type: params.TypeIdentity}, "a\xffb", "UTF-8"},

		{"ip zone", params.Spec{Type: params.TypeIP}, "fe80::1%eth0", "zone"},
		{"ip zone injection", params.Spec{Type: params.TypeIP}, "fe80::1%$(whoami)", "zone"},
		{"ip leading zero", params.Spec{Type: params.TypeIP}, "010.0.0.1", "is not an IP address"},
		{"ip cidr", params.Spec{Type: params.TypeIP}, "192.0.2.0/24", "is not an IP address"},
		{"ip hostname", params.Spec{Type: params.TypeIP}, "contoso.com", "is not an IP address"},

		{"int word", params.Spec{Type: params.TypeInt}, "ten", `"ten" is not a whole number`},
		{"int float", params.Spec{Type: params.TypeInt}, "1.5", "not a whole number"},
		{"int hex", params.Spec{Type: params.TypeInt}, "0x10", "not a whole number"},
		{"int underscore", params.Spec{Type: params.TypeInt}, "1_000", "not a whole number"},
		{"int overflow", params.Spec{Type: params.TypeInt}, "9223372036854775808", "too large"},
		{"int space", params.Spec{Type: params.TypeInt}, " 1", "not a whole number"},
		{"int below min", params.Spec{Type: params.TypeInt, Min: i64(1)}, "0", "0 is below the minimum 1"},
		{"int above max", params.Spec{Type: params.TypeInt, Max: i64(1000)}, "5000", "5000 is above the maximum 1000"},

		{"duration unitless", params.Spec{Type: params.TypeDuration}, "15", "is not a duration"},
		{"duration days", params.Spec{Type: params.TypeDuration}, "1d", "is not a duration"},
		{"duration zero", params.Spec{Type: params.TypeDuration}, "0s", "not a positive duration"},
		{"duration negative", params.Spec{Type: params.TypeDuration}, "-5m", "not a positive duration"},
		{"duration sub-second", params.Spec{Type: params.TypeDuration}, "1500ms", "whole number of seconds"},
		{"duration overflow", params.Spec{Type: params.TypeDuration}, "9999999999h", "is not a duration"},
		{"duration below min", params.Spec{Type: params.TypeDuration, Min: i64(60)}, "30s", "30s is shorter than the minimum 1m0s"},
		{"duration above max", params.Spec{Type: params.TypeDuration, Max: i64(3600)}, "2h", "2h0m0s is longer than the maximum 1h0m0s"},

		{"enum case", params.Spec{Type: params.TypeEnum, Values: []string{"soft", "hard"}}, "Hard", `"Hard" is not one of: soft, hard`},
		{"enum prefix", params.Spec{Type: params.TypeEnum, Values: []string{"soft", "hard"}}, "har", "is not one of"},

		{"string newline", params.Spec{Type: params.TypeString}, "a\nb", "control character U+000A"},
		{"string nul", params.Spec{Type: params.TypeString}, "a\x00b", "control character U+0000"},
		{"string tab", params.Spec{Type: params.TypeString}, "a\tb", "control character"},
		{"string bidi override", params.Spec{Type: params.TypeString}, "abc\u202edef", "U+202E"},
		{"string zero width", params.Spec{Type: params.TypeString}, "a\u200bb", "U+200B"},
		{"string line separator", params.Spec{Type: params.TypeString}, "a\u2028b", "U+2028"},
		{"string too long", params.Spec{Type: params.TypeString}, strings.Repeat("a", 201), "201 characters"},
		{"string invalid utf8", params.Spec{Type: params.TypeString}, "a\xc3", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.spec.Parse(tt.raw)
			require.Error(t, err)
			assert.Nil(t, got)
			assert.ErrorIs(t, err, incident.ErrInvalidInput)
			var pe *params.Error
			require.ErrorAs(t, err, &pe)
			assert.Contains(t, err.Error(), tt.wantMsg)
			assertSafeMessage(t, err.Error())
		})
	}
}

// TestHostileRejected feeds injection attempts to every structured type.
func TestHostileRejected(t *testing.T) {
	specs := map[string]params.Spec{
		"email":    {Type: params.TypeEmail},
		"domain":   {Type: params.TypeDomain},
		"hostname": {Type: params.TypeHostname},
		"identity": {Type: params.TypeIdentity},
		"ip":       {Type: params.TypeIP},
		"int":      {Type: params.TypeInt},
		"duration": {Type: params.TypeDuration},
		"enum":     {Type: params.TypeEnum, Values: []string{"a", "b"}},
	}
	for name, spec := range specs {
		for _, raw := range hostile {
			t.Run(name+"/"+raw, func(t *testing.T) {
				_, err := spec.Parse(raw)
				require.ErrorIs(t, err, incident.ErrInvalidInput)
				assertSafeMessage(t, err.Error())
			})
		}
	}
}

func assertSafeMessage(t *testing.T, msg string) {
	t.Helper()
	assert.True(t, utf8.ValidString(msg), "message is valid UTF-8")
	for _, r := range msg {
		assert.False(t, r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' || r == '\u200b' || r == '\u2028',
			"message %q holds control character %U", msg, r)
	}
}

func TestErrorEchoIsBounded(t *testing.T) {
	raw := strings.Repeat("x'; Remove-Mailbox ceo\n", 50)
	_, err := params.Spec{Type: params.TypeEmail}.Parse(raw)
	require.Error(t, err)
	msg := err.Error()
	assert.Less(t, utf8.RuneCountInString(msg), 200)
	assert.Contains(t, msg, "…")
	assert.NotContains(t, msg, "\n")
}

func TestEcho(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"plain":       {"abc", `"abc"`},
		"controls":    {"a\x00b\nc\x1bd\u202ee", `"abcde"`},
		"invalid":     {"a\xffb", "\"a\uFFFDb\""},
		"exactly 80":  {strings.Repeat("a", 80), `"` + strings.Repeat("a", 80) + `"`},
		"81 cut":      {strings.Repeat("a", 81), `"` + strings.Repeat("a", 80) + `…"`},
		"runes count": {strings.Repeat("ü", 81), `"` + strings.Repeat("ü", 80) + `…"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tt.want, params.Echo(tt.in))
		})
	}
}

func TestSanitize(t *testing.T) {
	assert.Equal(t, "Remove-Mailbox ceo", params.Sanitize("Remove-Mailbox\x00 ceo\r\n"))
	assert.Equal(t, "[31mred", params.Sanitize("\x1b[31mred"), "ESC goes, the printable rest stays")
}

func TestSpecCheck(t *testing.T) {
	tests := []struct {
		name    string
		spec    params.Spec
		wantErr string // empty: valid
	}{
		{"email", params.Spec{Type: params.TypeEmail, Required: true, Example: "alice@contoso.com"}, ""},
		{"int bounded with default", params.Spec{Type: params.TypeInt, Min: i64(1), Max: i64(10), Default: "5"}, ""},
		{"duration bounded", params.Spec{Type: params.TypeDuration, Min: i64(60), Max: i64(3600), Default: "5m"}, ""},
		{"enum", params.Spec{Type: params.TypeEnum, Values: []string{"soft", "hard"}, Default: "soft"}, ""},
		{"unknown type", params.Spec{Type: "mailbox"}, `unknown type "mailbox"`},
		{"no type", params.Spec{}, `unknown type ""`},
		{"enum without values", params.Spec{Type: params.TypeEnum}, "needs values"},
		{"enum duplicate", params.Spec{Type: params.TypeEnum, Values: []string{"a", "a"}}, "listed twice"},
		{"enum empty value", params.Spec{Type: params.TypeEnum, Values: []string{""}}, "must not be empty"},
		{"enum control value", params.Spec{Type: params.TypeEnum, Values: []string{"a\nb"}}, "control character"},
		{"values on non-enum", params.Spec{Type: params.TypeString, Values: []string{"a"}}, "only apply to type enum"},
		{"min above max", params.Spec{Type: params.TypeInt, Min: i64(10), Max: i64(1)}, "min 10 is greater than max 1"},
		{"min on email", params.Spec{Type: params.TypeEmail, Min: i64(1)}, "only apply to types int and duration"},
		{"negative duration bound", params.Spec{Type: params.TypeDuration, Min: i64(-1)}, "min -1"},
		{"huge duration bound", params.Spec{Type: params.TypeDuration, Max: i64(1 << 40)}, "max 1099511627776"},
		{"bad default", params.Spec{Type: params.TypeEmail, Default: "nobody"}, `default: "nobody" is not an email address`},
		{"default out of range", params.Spec{Type: params.TypeInt, Max: i64(10), Default: "11"}, "default: 11 is above the maximum 10"},
		{"enum default not a value", params.Spec{Type: params.TypeEnum, Values: []string{"a"}, Default: "b"}, "default:"},
		{"bad example", params.Spec{Type: params.TypeDuration, Example: "15"}, "example:"},
		{"required with default", params.Spec{Type: params.TypeInt, Required: true, Default: "1"}, "required parameter cannot have a default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Check()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestEveryTypeIsDescribed(t *testing.T) {
	for _, typ := range params.Types {
		assert.True(t, typ.Known())
		assert.NotContains(t, typ.Describe(), "unknown", typ)
	}
	assert.False(t, params.Type("mailbox").Known())
}

func TestScriptValue(t *testing.T) {
	assert.Equal(t, int64(900), params.ScriptValue(15*time.Minute))
	assert.Equal(t, "alice@contoso.com", params.ScriptValue("alice@contoso.com"))
	assert.Equal(t, int64(7), params.ScriptValue(int64(7)))
	assert.Nil(t, params.ScriptValue(nil))

	got := params.ScriptValues(map[string]any{"wait": 2 * time.Hour, "sender": "o'brien@contoso.com"})
	assert.Equal(t, map[string]any{"wait": int64(7200), "sender": "o'brien@contoso.com"}, got)
}

func TestErrorUnwraps(t *testing.T) {
	err := error(&params.Error{Param: "sender", Reason: "nope"})
	assert.True(t, errors.Is(err, incident.ErrInvalidInput))
	assert.Equal(t, "sender: nope", err.Error())
	assert.Equal(t, "nope", (&params.Error{Reason: "nope"}).Error())
}
