package commands

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks/params"
)

func TestParseArgs(t *testing.T) {
	named := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name  string
		input string
		want  Args
	}{
		{"empty", "", Args{Named: named()}},
		{"only space", " \t\n ", Args{Named: named()}},
		{"positional", "5.5.4", Args{Positional: []string{"5.5.4"}, Named: named()}},
		{
			"the design example", "5.5.4 sender=alice@contoso.com",
			Args{Positional: []string{"5.5.4"}, Named: named("sender", "alice@contoso.com"), Order: []string{"sender"}},
		},
		{
			"order kept, positionals interleaved", "b=2 graph-503 a=1 now",
			Args{Positional: []string{"graph-503", "now"}, Named: named("b", "2", "a", "1"), Order: []string{"b", "a"}},
		},
		{"any white space separates", "a=1\tb=2\n c=3\u00a0d", Args{Positional: []string{"d"}, Named: named("a", "1", "b", "2", "c", "3"), Order: []string{"a", "b", "c"}}},
		{"double quoted", `policy="Default Throttling Policy"`, Args{Named: named("policy", "Default Throttling Policy"), Order: []string{"policy"}}},
		{"single quoted", `note='a "b" c'`, Args{Named: named("note", `a "b" c`), Order: []string{"note"}}},
		{"escapes in double quotes", `note="say \"hi\" \\o/"`, Args{Named: named("note", `say "hi" \o/`), Order: []string{"note"}}},
		{"other backslashes literal", `id="CONTOSO\Alice Smith"`, Args{Named: named("id", `CONTOSO\Alice Smith`), Order: []string{"id"}}},
		{"backslash literal in single quotes", `id='a\'`, Args{Named: named("id", `a\`), Order: []string{"id"}}},
		{"bare backslash", `id=CONTOSO\alice`, Args{Named: named("id", `CONTOSO\alice`), Order: []string{"id"}}},
		{"apostrophe inside a bare value", "sender=o'brien@contoso.com", Args{Named: named("sender", "o'brien@contoso.com"), Order: []string{"sender"}}},
		{"apostrophe in quoted value", `sender="o'brien@contoso.com"`, Args{Named: named("sender", "o'brien@contoso.com"), Order: []string{"sender"}}},
		{"smart double quotes", "policy=\u201cDefault Throttling Policy\u201d", Args{Named: named("policy", "Default Throttling Policy"), Order: []string{"policy"}}},
		{"smart single quotes", "note=\u2018a b\u2019", Args{Named: named("note", "a b"), Order: []string{"note"}}},
		{"smart apostrophe in a bare word", "sender=o\u2019brien@contoso.com", Args{Named: named("sender", "o'brien@contoso.com"), Order: []string{"sender"}}},
		{"mixed smart and straight quotes", "note=\u201ca b\"", Args{Named: named("note", "a b"), Order: []string{"note"}}},
		{"quoted positional", `"service unavailable" 5.5.4`, Args{Positional: []string{"service unavailable", "5.5.4"}, Named: named()}},
		{"quoted positional with =", `"a=b"`, Args{Positional: []string{"a=b"}, Named: named()}},
		{"empty value", "sender=", Args{Named: named("sender", ""), Order: []string{"sender"}}},
		{"empty quoted value", `sender=""`, Args{Named: named("sender", ""), Order: []string{"sender"}}},
		{"value holds =", "filter=a=b", Args{Named: named("filter", "a=b"), Order: []string{"filter"}}},
		{"key folded to lower case", "Sender=alice@contoso.com", Args{Named: named("sender", "alice@contoso.com"), Order: []string{"sender"}}},
		{"quotes elsewhere are literal", `it's 5.5.4"`, Args{Positional: []string{"it's", `5.5.4"`}, Named: named()}},
		{"newline inside quotes kept", "note=\"a\nb\"", Args{Named: named("note", "a\nb"), Order: []string{"note"}}},

		{"angle text is ordinary", "<b>", Args{Positional: []string{"<b>"}, Named: named()}},

		{
			"hostile values are just data", "sender=\"x'; Remove-Mailbox ceo\" id=$(whoami) n=`id` a=b;c",
			Args{
				Named: named("sender", "x'; Remove-Mailbox ceo", "id", "$(whoami)", "n", "`id`", "a", "b;c"),
				Order: []string{"sender", "id", "n", "a"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseArgs(tt.input)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)

			back, err := ParseArgs(got.String())
			require.NoError(t, err, "canonical form %q", got.String())
			assert.Equal(t, got, back, "canonical form %q", got.String())
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string
	}{
		{"duplicate key", "sender=a@contoso.com sender=b@contoso.com", "parameter sender is given twice"},
		{"duplicate key after folding", "sender=a Sender=b", "parameter sender is given twice"},
		{"unterminated double", `note="abc`, `the closing " is missing in note="abc`},
		{"unterminated single", `note='abc`, `the closing ' is missing in note='abc`},
		{"unterminated smart", "note=\u201cabc", `the closing " is missing in note="abc`},
		{"escaped closing quote", `note="abc\"`, `the closing " is missing`},
		{"unterminated positional", `"abc def`, `the closing " is missing`},
		{"apostrophe in single quotes", `note='it's'`, `put a space after the closing ' in note='it's'`},
		{"text after closing quote", `note="a"b`, `put a space after the closing " in note="a"b`},
		{"empty key", "=alice@contoso.com", "the parameter name before = is missing in =alice@contoso.com"},
		{"lone =", "=", "the parameter name before = is missing"},
		{"key with dash", "next-hop=contoso.com", `"next-hop" is not a parameter name`},
		{"key starting with digit", "1x=1", `"1x" is not a parameter name`},
		{"key with quote", `a"b=c`, `is not a parameter name`},
		{"key with unicode", "séndér=x", `is not a parameter name`},
		{"key too long", strings.Repeat("k", 65) + "=1", `is not a parameter name`},
		{"url without quotes", "http://x.test/?a=b", `is not a parameter name`},
		{"too long", strings.Repeat("a ", 2049), "too long: 4098 bytes, at most 4096"},
		{"nul", "sender=a\x00b", "control character U+0000"},
		{"escape sequence", "note=\x1b[31mred", "control character U+001B"},
		{"invalid utf-8", "sender=\xff", "not valid UTF-8"},
		{"hostile echo is sanitised", "note=\"\u202e" + strings.Repeat("x", 200), "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseArgs(tt.input)
			require.Error(t, err)
			assert.ErrorIs(t, err, incident.ErrInvalidInput)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Equal(t, Args{}, got)
			assert.NotContains(t, err.Error(), "\u202e")
			assert.LessOrEqual(t, len([]rune(err.Error())), 160)
		})
	}
}

func TestParseArgsLimit(t *testing.T) {
	_, err := ParseArgs("note=" + strings.Repeat("a", MaxArgsBytes-5))
	assert.NoError(t, err, "exactly the limit is fine")
}

func TestArgsString(t *testing.T) {
	a := Args{
		Positional: []string{"5.5.4", "service unavailable", "a=b", "<x", `it's "x"`, ""},
		Named:      map[string]string{"sender": "o'brien@contoso.com", "id": `C\A B\`, "e": ""},
		Order:      []string{"sender", "id", "e"},
	}
	assert.Equal(t, `5.5.4 'service unavailable' 'a=b' '<x' "it's \"x\"" '' sender=o'brien@contoso.com id='C\A B\' e=''`, a.String())
	back, err := ParseArgs(a.String())
	require.NoError(t, err)
	assert.Equal(t, a, back)

	b := Args{Named: map[string]string{"n": `it's \ "\" \\`}, Order: []string{"n"}}
	assert.Equal(t, `n="it's \ \"\\\" \\\\"`, b.String())
	back, err = ParseArgs(b.String())
	require.NoError(t, err)
	assert.Equal(t, b, back)
}

// FuzzParseArgs checks that ParseArgs:
//
//  1. never panics, and rejects only with an error wrapping
//     incident.ErrInvalidInput whose message is valid UTF-8, holds no control
//     or format character and is at most 200 runes, returning a zero Args;
//  2. never accepts more than MaxArgsBytes;
//  3. on success returns a consistent Args: Named non-nil, Order listing each
//     key of Named exactly once, every key a params.ValidName, and no value
//     holding a smart quote or a control character other than white space;
//  4. round-trips: when Args.String() fits MaxArgsBytes it parses back to the
//     same Args, and String is then a fixed point;
//  5. agrees with strings.Fields on input without quotes or angle brackets:
//     a field with = is key=value (split at the first =), any other field is
//     positional.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{
		"", "5.5.4", "5.5.4 sender=alice@contoso.com", "diagnose smtp-421 domain=contoso.com ip=192.0.2.1",
		`policy="Default Throttling Policy"`, `note='a "b" c'`, `note="say \"hi\" \\o/"`, `id="CONTOSO\Alice"`,
		"sender=o'brien@contoso.com", "sender=o\u2019brien@contoso.com", "policy=\u201cDefault\u201d", "n=\u2018a b\u2019",
		"sender=<mailto:alice@contoso.com|alice@contoso.com>", "<http://contoso.com|contoso.com>", "<http://x>", "<@U1> <#C1|x>",
		"u=<http://x.test/?a=1&amp;b=2|x &lt;y&gt;>", "<a:|b c> d", "<a:b|c>d",
		"sender=a sender=b", "=x", "a-b=c", `"unterminated`, `'it's'`, `"a"b`, "a=\"x\ny\"", "a=\x00", "\xff",
		"Sender=x", "x= y", `"" ''`, "a==b", `"\\"`, `"\`, "\u00a0a=1\u2028b=2\u0085",
		"x'; Remove-Mailbox ceo", "sender=\"$(Remove-Mailbox ceo)\" n=`id` a=b;c|d&e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		a, err := ParseArgs(input)
		if err != nil {
			if !errors.Is(err, incident.ErrInvalidInput) {
				t.Fatalf("error does not wrap ErrInvalidInput: %v", err)
			}
			msg := err.Error()
			if !utf8.ValidString(msg) || strings.ContainsFunc(msg, func(r rune) bool { return !unicode.IsGraphic(r) }) {
				t.Fatalf("unsafe error message %q", msg)
			}
			if n := utf8.RuneCountInString(msg); n > 200 {
				t.Fatalf("error message is %d runes", n)
			}
			if a.Named != nil || a.Positional != nil || a.Order != nil {
				t.Fatalf("error with non-zero Args %#v", a)
			}
			return
		}
		if len(input) > MaxArgsBytes {
			t.Fatalf("accepted %d bytes", len(input))
		}
		argsCheck(t, a)

		canon := a.String()
		if len(canon) <= MaxArgsBytes {
			back, err := ParseArgs(canon)
			if err != nil {
				t.Fatalf("canonical form %q of %q does not parse: %v", canon, input, err)
			}
			if !argsEqual(a, back) {
				t.Fatalf("round trip of %q via %q: %#v != %#v", input, canon, a, back)
			}
			if back.String() != canon {
				t.Fatalf("String is not a fixed point: %q then %q", canon, back.String())
			}
		}

		if !strings.ContainsAny(input, "\"'<\u201c\u201d\u2018\u2019") {
			want := Args{Named: map[string]string{}}
			for _, field := range strings.Fields(input) {
				k, v, ok := strings.Cut(field, "=")
				if !ok {
					want.Positional = append(want.Positional, field)
					continue
				}
				k = strings.ToLower(k)
				want.Named[k] = v
				want.Order = append(want.Order, k)
			}
			if !argsEqual(a, want) {
				t.Fatalf("%q: got %#v, strings.Fields says %#v", input, a, want)
			}
		}
	})
}

func argsCheck(t *testing.T, a Args) {
	t.Helper()
	if a.Named == nil || len(a.Order) != len(a.Named) {
		t.Fatalf("inconsistent Args %#v", a)
	}
	seen := map[string]bool{}
	for _, k := range a.Order {
		if _, ok := a.Named[k]; !ok || seen[k] || !params.ValidName(k) {
			t.Fatalf("bad key %q in %#v", k, a)
		}
		seen[k] = true
	}
	bad := func(r rune) bool {
		return unicode.IsControl(r) && !unicode.IsSpace(r) || strings.ContainsRune("\u201c\u201d\u2018\u2019", r)
	}
	for _, v := range a.Positional {
		if strings.ContainsFunc(v, bad) {
			t.Fatalf("positional %q holds a control character or smart quote", v)
		}
	}
	for k, v := range a.Named {
		if strings.ContainsFunc(v, bad) {
			t.Fatalf("value of %s %q holds a control character or smart quote", k, v)
		}
	}
}

// argsEqual compares Args treating nil and empty slices alike.
func argsEqual(a, b Args) bool {
	return slices.Equal(a.Positional, b.Positional) && slices.Equal(a.Order, b.Order) &&
		len(a.Named) == len(b.Named) && func() bool {
		for k, v := range a.Named {
			if w, ok := b.Named[k]; !ok || w != v {
				return false
			}
		}
		return true
	}()
}
