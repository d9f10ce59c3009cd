package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// Redacted replaces a secret in an audit payload.
const Redacted = "[redacted]"

// Redactor removes secrets from payloads before they are hashed and stored:
// configured secret values (exact strings, wherever they occur inside a string)
// and credential-looking text — password=… / secret: … pairs, Bearer and Basic
// credentials, Authorization headers, Slack tokens (xoxb-, xoxp-, xoxa-, xapp-, …),
// JWTs, PEM private keys, passwords in connection URLs, and the values of object
// members whose key names a credential (password, secret, token, api_key, …).
// The zero value and nil apply the patterns only.
type Redactor struct {
	secrets []string // longest first, so a secret containing another is masked whole
}

// NewRedactor returns a Redactor for the given secret values; empty ones are ignored.
func NewRedactor(secrets ...string) *Redactor {
	r := &Redactor{}
	for _, s := range secrets {
		if s != "" && !slices.Contains(r.secrets, s) {
			r.secrets = append(r.secrets, s)
		}
	}
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return r
}

var (
	// Keys whose whole value is a credential.
	secretKey = lazyre.New(`(?i)^(.*[_-])?(password|passwd|pwd|passphrase|secret|client_secret|token|access_token|refresh_token|id_token|api_?key|apikey|authorization|cookie|private_?key|signing_secret|credentials?)$`)

	// Each pattern comes with a test its match cannot pass without (lower is the
	// string in lower case): most audit strings contain none of them, and the
	// regexps were a fifth of an append's CPU. Each is compiled when a string
	// first passes its test.
	patterns = []struct {
		re    func() *regexp.Regexp
		repl  string
		maybe func(s, lower string) bool
	}{
		// PEM private keys, whole block.
		{lazyre.New(`-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)`), "-----BEGIN ${1}PRIVATE KEY-----" + Redacted + "-----END ${1}PRIVATE KEY-----",
			func(s, _ string) bool { return strings.Contains(s, "PRIVATE KEY-----") }},
		// Authorization / Proxy-Authorization headers: scheme and credentials.
		{lazyre.New(`(?i)\b((?:proxy-)?authorization\s*[:=]\s*)(?:(?:bearer|basic|negotiate|ntlm|digest|token)\s+)?("[^"]*"|'[^']*'|[^\s"',;]+)`), "${1}" + Redacted,
			func(_, l string) bool { return strings.Contains(l, "authorization") }},
		// Bearer / Basic credentials anywhere else.
		{lazyre.New(`(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]{8,}=*`), "${1} " + Redacted,
			func(_, l string) bool { return strings.Contains(l, "bearer") || strings.Contains(l, "basic") }},
		// Slack tokens: bot, user, app-level, legacy, refresh, config.
		{lazyre.New(`\bxox[abposre]-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+`), Redacted,
			func(s, _ string) bool { return strings.Contains(s, "xox") || strings.Contains(s, "xapp-") }},
		// JWTs (Graph / Entra ID access tokens).
		{lazyre.New(`\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+`), Redacted,
			func(s, _ string) bool { return strings.Contains(s, "eyJ") }},
		// Userinfo passwords in URLs: postgres://user:pw@host, https://u:p@proxy.
		{lazyre.New(`(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/?#@]*:)([^\s@/?#]+)(@)`), "${1}" + Redacted + "${3}",
			func(s, _ string) bool { return strings.Contains(s, "://") }},
		// key=value / key: value pairs naming a credential, as in connection strings
		// ("Password=…;"), command lines and log lines.
		{lazyre.New(`(?i)\b((?:[a-z0-9]+[_\-.]?)?(?:password|passwd|pwd|passphrase|secret|client_secret|access_token|refresh_token|api_?key|apikey|token|sas|sig)\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s;,&"'<>}]+)`), "${1}" + Redacted,
			func(s, l string) bool { return strings.ContainsAny(s, "=:") && containsAny(l, credentialWords) }},
		// PowerShell: ConvertTo-SecureString "plain" -AsPlainText.
		{lazyre.New(`(?i)(ConvertTo-SecureString\s+(?:-String\s+)?)("[^"]*"|'[^']*'|\S+)`), "${1}" + Redacted,
			func(_, l string) bool { return strings.Contains(l, "convertto-securestring") }},
	}
)

// credentialWords: every credential name the key=value pattern and secretKey
// match contains one of these (in lower case), so a string or key without any
// of them is passed without running the regexp — digests and times ("sha256:…",
// "10:00") have a colon but no credential.
var credentialWords = []string{"pass", "pwd", "secret", "token", "key", "sas", "sig", "authorization", "cookie", "credential"}

func containsAny(lower string, words []string) bool {
	for _, w := range words {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// foldLower lowers s as the (?i) patterns compare it: besides strings.ToLower,
// the long s (ſ) folds to s, so "paſſword" does not slip past a prefilter the
// regexp would have matched. (K, the Kelvin sign, ToLower already makes k; no
// other letter folds to an ASCII one.)
func foldLower(s string) string {
	l := strings.ToLower(s)
	if strings.ContainsRune(l, 'ſ') {
		l = strings.ReplaceAll(l, "ſ", "s")
	}
	return l
}

// String redacts one string.
func (r *Redactor) String(s string) string {
	if r != nil {
		for _, sec := range r.secrets {
			if strings.Contains(s, sec) {
				s = strings.ReplaceAll(s, sec, Redacted)
			}
		}
	}
	lower := foldLower(s)
	for _, p := range patterns {
		if p.maybe(s, lower) {
			s = p.re().ReplaceAllString(s, p.repl)
			lower = foldLower(s)
		}
	}
	return s
}

// isSecretKey reports whether an object member's key names a credential.
func isSecretKey(k string) bool {
	return containsAny(foldLower(k), credentialWords) && secretKey().MatchString(k)
}

// JSON redacts every string (and every member value under a credential-named key)
// of a JSON document and returns it canonically encoded.
func (r *Redactor) JSON(raw []byte) ([]byte, error) {
	if r.unchanged(raw) {
		return bytes.Clone(raw), nil
	}
	return r.redactJSON(raw)
}

// redactJSON is JSON the long way: decode, redact, encode canonically.
func (r *Redactor) redactJSON(raw []byte) ([]byte, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return []byte("null"), nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON payload: %w", err)
	}
	v = r.value(v)
	return appendCanonical(nil, v), nil
}

// unchanged reports whether JSON would give raw back as it is: raw is canonical
// (json.Marshal of a map usually is), no string in it is redacted and no member
// named like a credential holds more than null, a boolean or "". Most audit
// payloads are; this spares them a decode and an encode. A string with an
// escape in it (an Exchange identity, EX01\\Submission) is redacted as it
// reads once decoded.
func (r *Redactor) unchanged(raw []byte) bool {
	c := canonicalScan{b: raw,
		str: func(s []byte) bool {
			v := string(s)
			if bytes.IndexByte(s, '\\') >= 0 {
				v = unescapeCanonical(s)
			}
			return r.String(v) == v
		},
		member: func(key, value []byte) bool {
			if !isSecretKey(string(key)) {
				return true
			}
			switch string(value) {
			case "null", "true", "false", `""`:
				return true
			}
			return false
		},
	}
	return c.value(0) && c.i == len(raw)
}

func (r *Redactor) value(v any) any {
	switch v := v.(type) {
	case string:
		return r.String(v)
	case []any:
		for i := range v {
			v[i] = r.value(v[i])
		}
		return v
	case map[string]any:
		for k, x := range v {
			if isSecretKey(k) {
				switch x.(type) {
				case nil, bool:
					continue // "password_set": true says nothing secret
				case string:
					if x == "" {
						continue
					}
				}
				v[k] = Redacted
				continue
			}
			v[k] = r.value(x)
		}
		return v
	default:
		return v
	}
}
