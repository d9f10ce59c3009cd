package audit

import (
	"context"
	"encoding/json"
	"iter"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendTimeIsTimeLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // past the fast path: AppendFormat's own answer
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for range 10000 {
		times = append(times, time.UnixMicro(rng.Int64N(253402300799000000)).UTC())
	}
	for _, tm := range times {
		assert.Equal(t, tm.AppendFormat(nil, TimeLayout), appendTime(nil, tm), "%v", tm)
	}
}

type events []Event

func (es events) Events(context.Context, Filter) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for _, e := range es {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// A payload whose bytes are not canonical (re-spaced by an export tool) misses
// the stored-bytes path and verifies through Encode; an edited one fails both.
func TestVerifyFallsBackToCanonicalForm(t *testing.T) {
	e := Event{Seq: 1, Time: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), Kind: KindCommand, Payload: json.RawMessage(`{"b":1,"a":"x"}`)}
	require.NoError(t, Seal(&e, Genesis, nil))
	assert.True(t, newStoredHasher(nil).matches(e))

	respaced := e
	respaced.Payload = json.RawMessage(`{ "a": "x", "b": 1 }`)
	assert.False(t, newStoredHasher(nil).matches(respaced))
	rep, err := Verify(context.Background(), events{respaced}, nil)
	require.NoError(t, err)
	assert.True(t, rep.OK, rep.String())

	edited := e
	edited.Payload = json.RawMessage(`{"a":"y","b":1}`)
	rep, err = Verify(context.Background(), events{edited}, nil)
	require.NoError(t, err)
	assert.Equal(t, ReasonAltered, rep.Reason)
}

// isCanonical may only say yes where the long way gives back the same bytes.
func TestIsCanonical(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{`{"a":[true,null,"x"],"b":1}`, true},
		{`{"duration_ms":1532,"hosts":["ex01","ex02"],"rows":-0.5e+3}`, true},
		{`"a\"b\\c\nd\te\u0001\u001f<&>é` + "\u2028\ufffd" + `"`, true},
		{`[]`, true},
		{`{}`, true},
		{`0`, true},
		{``, false},                 // encodes as null
		{`{"b":1,"a":2}`, false},    // unsorted
		{`{"a":1,"a":2}`, false},    // duplicate key
		{`{"a":1, "b":2}`, false},   // whitespace
		{`{"a":1} `, false},         // trailing whitespace
		{`{"a\n":1}`, false},        // key with an escape: the long way
		{`"\u0041"`, false},         // escape that decodes to a printable
		{`"\u000a"`, false},         // \n is written \n
		{`"\u001F"`, false},         // uppercase hex
		{`"\/"`, false},             // escaped solidus
		{`"\b"`, false},             // \b is written \u0008
		{"\"\x01\"", false},         // raw control character: invalid JSON
		{"\"\xff\"", false},         // invalid UTF-8 becomes U+FFFD
		{"\"\xed\xa0\x80\"", false}, // a surrogate in UTF-8
		{`01`, false},               // leading zero: invalid
		{`1.`, false},               // invalid
		{`-`, false},                // invalid
		{`+1`, false},               // invalid
		{`{"a":1}{}`, false},        // data after the value
		{`[1,]`, false},             // invalid
		{`tru`, false},              // invalid
		{strings.Repeat("[", 65) + strings.Repeat("]", 65), false}, // deep: the long way
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, isCanonical([]byte(tc.in)), "%q", tc.in)
		if tc.want {
			out, err := canonicalize([]byte(tc.in))
			require.NoError(t, err)
			assert.Equal(t, tc.in, string(out), "the long way agrees")
		}
	}
}

// unescapeCanonical reads a string canonicalScan accepted as JSON decodes it.
func TestUnescapeCanonical(t *testing.T) {
	for _, in := range []string{`plain`, `EX01\\Submission`, `a\"b`, `line\nnext\r\n\tindented`, `ctl\u0001\u001f\u0000`, `é ü \\\\srv`, ``} {
		var want string
		require.NoError(t, json.Unmarshal([]byte(`"`+in+`"`), &want), in)
		require.True(t, isCanonical([]byte(`"`+in+`"`)), in)
		assert.Equal(t, want, unescapeCanonical([]byte(in)), in)
	}
}

func FuzzIsCanonical(f *testing.F) {
	for _, s := range []string{`{"a":[true,null,"x"],"b":1}`, `"a\"b\\c\nd\u0001é"`, `{"b":1,"a":2}`, `-0.5e+3`, `[[],{}]`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if isCanonical(in) {
			out, err := canonicalize(in)
			if err != nil || string(out) != string(in) {
				t.Fatalf("isCanonical(%q) but the long way gives %q, %v", in, out, err)
			}
		}
		if out, err := canonicalize(in); err == nil {
			again, err := CanonicalJSON(out)
			if err != nil || string(again) != string(out) {
				t.Fatalf("CanonicalJSON(%q) = %q, %v: not idempotent", out, again, err)
			}
		}
	})
}

// The redactor's shortcut may only say a payload is unchanged where the long
// way gives back the same bytes.
func FuzzRedactorUnchanged(f *testing.F) {
	for _, s := range []string{`{"password":"pw1","user":"svc"}`, `{"cmd":"net use password=hunter2"}`, `["uses s3cret-value"]`,
		`{"hosts":["ex01"],"password_set":true,"status":"ok","token":""}`, `{"a":{"b":[1,"Bearer abcdefghijklmnop"]}}`, `"pa` + "\u017f\u017f" + `word=x"`,
		`{"Identity":"EX01\\Submission","LastError":"451 4.4.0 \"Primary target IP address responded\"\r\n\tretry\u0001"}`,
		`{"cmd":"net use \\\\srv\\c$ password=hunter2"}`, `["s3cret\\-value","s3cret\u002dvalue"]`, `"tab\tBearer abcdefghijklmnop"`} {
		f.Add([]byte(s))
	}
	r := NewRedactor("s3cret-value")
	f.Fuzz(func(t *testing.T, in []byte) {
		if r.unchanged(in) {
			out, err := r.redactJSON(in)
			if err != nil || string(out) != string(in) {
				t.Fatalf("unchanged(%q) but the long way gives %q, %v", in, out, err)
			}
		}
	})
}
