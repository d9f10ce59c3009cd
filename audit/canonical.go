package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// encodingTag opens every encoded event; a future format changes the tag.
const encodingTag = "ndrbot-audit-v1"

// TimeLayout is how an event's time is written in the canonical encoding and in
// exports: RFC 3339, UTC, exactly six fractional digits.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// Encode returns the canonical encoding of e, the bytes its hash covers:
//
//	"ndrbot-audit-v1"
//	then, for each field in this order, its length as an 8-byte big-endian
//	unsigned integer followed by its bytes:
//	  seq        decimal ASCII, no sign or leading zeros
//	  time       TimeLayout (UTC, microseconds)
//	  actor.id   UTF-8
//	  actor.name UTF-8
//	  run_id     UTF-8 (empty when the event belongs to no run)
//	  kind       UTF-8
//	  alg        "sha256" or "hmac-sha256"
//	  prev_hash  lowercase hex (Genesis for seq 1)
//	  payload    CanonicalJSON(payload)
//
// Length prefixes make the encoding unambiguous whatever the fields contain.
func Encode(e Event) ([]byte, error) {
	payload, err := CanonicalJSON(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("event %d: payload: %w", e.Seq, err)
	}
	return appendEncoded(make([]byte, 0, len(encodingTag)+9*8+200+len(payload)), e, payload), nil
}

// appendEncoded appends the encoding of e with the given payload bytes to dst.
func appendEncoded(dst []byte, e Event, payload []byte) []byte {
	dst = append(dst, encodingTag...)
	var num [20]byte
	dst = appendField(dst, strconv.AppendInt(num[:0], e.Seq, 10))
	var ts [len(TimeLayout)]byte
	dst = appendField(dst, appendTime(ts[:0], TimeUS(e.Time)))
	for _, f := range [...]string{e.Actor.ID, e.Actor.Name, e.RunID, string(e.Kind), string(e.Alg), e.PrevHash} {
		dst = appendField(dst, f)
	}
	return appendField(dst, payload)
}

// appendField appends one length-prefixed field.
func appendField[T string | []byte](dst []byte, f T) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(len(f)))
	return append(dst, f...)
}

// appendTime writes t (UTC) in TimeLayout; time.Format's general layout parser
// was a fifth of Verify's time.
func appendTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	pad := func(v, width int) {
		for i := width - 1; i >= 0; i-- {
			b = append(b, 0)
		}
		for i := len(b) - 1; i >= len(b)-width; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
	}
	pad(y, 4)
	b = append(b, '-')
	pad(int(mo), 2)
	b = append(b, '-')
	pad(d, 2)
	b = append(b, 'T')
	pad(h, 2)
	b = append(b, ':')
	pad(mi, 2)
	b = append(b, ':')
	pad(s, 2)
	b = append(b, '.')
	pad(t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// storedHasher checks events against their hashes taking the payload as stored:
// Seal stores it in canonical form, so for an intact event this is Encode without
// re-parsing the JSON, with one buffer and one hash reused — what keeps Verify
// near the cost of the hashing itself. A payload that is not byte-for-byte
// canonical gives different bytes; Verify then falls back to Encode, so the
// verdicts stay Encode's.
type storedHasher struct {
	key       []byte
	sha, hmac hash.Hash
	buf       []byte
	sum       [sha256.Size]byte
	hex       [2 * sha256.Size]byte
}

func newStoredHasher(key []byte) *storedHasher {
	h := &storedHasher{key: key, sha: sha256.New()}
	if len(key) > 0 {
		h.hmac = hmac.New(sha256.New, key)
	}
	return h
}

// matches reports whether e's stored bytes hash to e.Hash under e.Alg (false
// for an algorithm it cannot compute, e.g. HMAC without a key).
func (h *storedHasher) matches(e Event) bool {
	var m hash.Hash
	switch {
	case e.Alg == AlgSHA256:
		m = h.sha
	case e.Alg == AlgHMAC && h.hmac != nil:
		m = h.hmac
	default:
		return false
	}
	payload := []byte(e.Payload)
	if len(payload) == 0 {
		payload = []byte("null")
	}
	h.buf = appendEncoded(h.buf[:0], e, payload)
	m.Reset()
	m.Write(h.buf)
	hex.Encode(h.hex[:], m.Sum(h.sum[:0]))
	return string(h.hex[:]) == e.Hash
}

// ComputeHash returns the hex hash of e under e.Alg: SHA-256 of Encode(e), or
// HMAC-SHA256 keyed with key when e.Alg is AlgHMAC.
func ComputeHash(e Event, key []byte) (string, error) {
	enc, err := Encode(e)
	if err != nil {
		return "", err
	}
	return hashBytes(enc, e.Alg, key)
}

func hashBytes(enc []byte, alg Alg, key []byte) (string, error) {
	var h hash.Hash
	switch alg {
	case AlgSHA256:
		h = sha256.New()
	case AlgHMAC:
		if len(key) == 0 {
			return "", errors.New("hmac-sha256 event needs the audit key")
		}
		h = hmac.New(sha256.New, key)
	default:
		return "", fmt.Errorf("unknown hash algorithm %q", alg)
	}
	h.Write(enc)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Seal completes e for appending after prevHash: it truncates the time to
// microseconds (UTC), canonicalises the payload, sets PrevHash, Alg (HMAC when key
// is not empty) and Hash. The caller has set Seq, Actor, RunID and Kind.
func Seal(e *Event, prevHash string, key []byte) error {
	if e.Seq <= 0 {
		return fmt.Errorf("audit: seal: seq %d must be positive", e.Seq)
	}
	if e.Kind == "" {
		return errors.New("audit: seal: empty kind")
	}
	p, err := CanonicalJSON(e.Payload)
	if err != nil {
		return fmt.Errorf("audit: seal %s: %w", e.Kind, err)
	}
	e.Payload = p
	e.Time = TimeUS(e.Time)
	e.PrevHash = prevHash
	e.Alg = AlgSHA256
	if len(key) > 0 {
		e.Alg = AlgHMAC
	}
	// ComputeHash(*e, key), without Encode canonicalising p a second time.
	e.Hash, err = hashBytes(appendEncoded(make([]byte, 0, len(encodingTag)+9*8+200+len(p)), *e, p), e.Alg, key)
	return err
}

// CanonicalJSON re-encodes one JSON value canonically: no insignificant
// whitespace; object members sorted by key (bytewise UTF-8; a duplicated key keeps
// its last value); numbers exactly as written; strings with only '"', '\\', and
// control characters escaped ('\n', '\r', '\t' as such, others as \u00xx with
// lowercase hex) and everything else as literal UTF-8 (invalid UTF-8 becomes
// U+FFFD). An empty input encodes as null.
func CanonicalJSON(raw []byte) ([]byte, error) {
	if isCanonical(raw) {
		// What the store seals comes from Redactor.JSON, canonical already:
		// checking it is a fraction of decoding and re-encoding it.
		return bytes.Clone(raw), nil
	}
	return canonicalize(raw)
}

// canonicalize is CanonicalJSON the long way: decode, then encode canonically.
func canonicalize(raw []byte) ([]byte, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return []byte("null"), nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: data after the value")
	}
	out := make([]byte, 0, len(raw))
	return appendCanonical(out, v), nil
}

// isCanonical reports whether raw is one JSON value exactly as CanonicalJSON
// would write it, so that CanonicalJSON(raw) is raw. It accepts a subset of the
// canonical forms and is never wrong when it says yes: a key with an escape in
// it, or nesting deeper than maxCanonicalDepth, takes the long way.
func isCanonical(raw []byte) bool {
	c := canonicalScan{b: raw}
	return c.value(0) && c.i == len(raw)
}

const maxCanonicalDepth = 64

type canonicalScan struct {
	b []byte
	i int
	// str, when set, is shown each string value (its bytes between the quotes)
	// and member each object member (its key and its value's bytes); either may
	// refuse what it is shown.
	str    func(s []byte) bool
	member func(key, value []byte) bool
}

func (c *canonicalScan) value(depth int) bool {
	if c.i >= len(c.b) || depth >= maxCanonicalDepth {
		return false
	}
	switch c.b[c.i] {
	case '{':
		return c.object(depth)
	case '[':
		c.i++
		if c.i < len(c.b) && c.b[c.i] == ']' {
			c.i++
			return true
		}
		for {
			if !c.value(depth + 1) {
				return false
			}
			if c.i >= len(c.b) {
				return false
			}
			switch c.b[c.i] {
			case ',':
				c.i++
			case ']':
				c.i++
				return true
			default:
				return false
			}
		}
	case '"':
		start := c.i + 1
		return c.string(true) && (c.str == nil || c.str(c.b[start:c.i-1]))
	case 't':
		return c.literal("true")
	case 'f':
		return c.literal("false")
	case 'n':
		return c.literal("null")
	default:
		return c.number()
	}
}

// object accepts members whose keys are escape-free and strictly increasing:
// sorted bytewise, no key twice.
func (c *canonicalScan) object(depth int) bool {
	c.i++
	if c.i < len(c.b) && c.b[c.i] == '}' {
		c.i++
		return true
	}
	var prev []byte
	for n := 0; ; n++ {
		start := c.i + 1
		if c.i >= len(c.b) || c.b[c.i] != '"' || !c.string(false) {
			return false
		}
		key := c.b[start : c.i-1]
		if n > 0 && bytes.Compare(prev, key) >= 0 {
			return false
		}
		prev = key
		if c.i >= len(c.b) || c.b[c.i] != ':' {
			return false
		}
		c.i++
		vstart := c.i
		if !c.value(depth+1) || (c.member != nil && !c.member(key, c.b[vstart:c.i])) {
			return false
		}
		if c.i >= len(c.b) {
			return false
		}
		switch c.b[c.i] {
		case ',':
			c.i++
		case '}':
			c.i++
			return true
		default:
			return false
		}
	}
}

// string accepts a string as appendString writes it: valid UTF-8, and only
// \", \\, \n, \r, \t and \u00xx (lowercase, other control characters) escaped
// (no escape at all when escapes is false).
func (c *canonicalScan) string(escapes bool) bool {
	c.i++ // the opening quote
	for c.i < len(c.b) {
		ch := c.b[c.i]
		switch {
		case ch == '"':
			c.i++
			return true
		case ch < 0x20:
			return false
		case ch == '\\':
			if !escapes || c.i+1 >= len(c.b) {
				return false
			}
			switch c.b[c.i+1] {
			case '"', '\\', 'n', 'r', 't':
				c.i += 2
			case 'u':
				if c.i+6 > len(c.b) || c.b[c.i+2] != '0' || c.b[c.i+3] != '0' || (c.b[c.i+4] != '0' && c.b[c.i+4] != '1') {
					return false
				}
				lo := strings.IndexByte(hexDigits, c.b[c.i+5])
				if lo < 0 {
					return false
				}
				switch v := int(c.b[c.i+4]-'0')<<4 | lo; v {
				case '\n', '\r', '\t':
					return false
				}
				c.i += 6
			default:
				return false
			}
		case ch < utf8.RuneSelf:
			c.i++
		default:
			r, size := utf8.DecodeRune(c.b[c.i:])
			if r == utf8.RuneError && size == 1 {
				return false
			}
			c.i += size
		}
	}
	return false
}

func (c *canonicalScan) literal(lit string) bool {
	end := c.i + len(lit)
	if end > len(c.b) || string(c.b[c.i:end]) != lit {
		return false
	}
	c.i += len(lit)
	return true
}

// unescapeCanonical is the value of a string's contents that canonicalScan
// accepted: the escapes it allows are \" \\ \n \r \t and \u00XX.
func unescapeCanonical(s []byte) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			if i+4 < len(s) {
				v, _ := strconv.ParseUint(string(s[i+1:i+5]), 16, 8)
				b.WriteByte(byte(v))
				i += 4
			}
		default: // " and \
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// number accepts JSON's number grammar; CanonicalJSON keeps numbers as written.
func (c *canonicalScan) number() bool {
	digits := func() int {
		n := 0
		for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
			c.i++
			n++
		}
		return n
	}
	if c.i < len(c.b) && c.b[c.i] == '-' {
		c.i++
	}
	switch {
	case c.i < len(c.b) && c.b[c.i] == '0':
		c.i++
	case digits() == 0:
		return false
	}
	if c.i < len(c.b) && c.b[c.i] == '.' {
		c.i++
		if digits() == 0 {
			return false
		}
	}
	if c.i < len(c.b) && (c.b[c.i] == 'e' || c.b[c.i] == 'E') {
		c.i++
		if c.i < len(c.b) && (c.b[c.i] == '+' || c.b[c.i] == '-') {
			c.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

func appendCanonical(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case json.Number:
		return append(b, v...)
	case string:
		return appendString(b, v)
	case []any:
		b = append(b, '[')
		for i, x := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonical(b, x)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendCanonical(b, v[k])
		}
		return append(b, '}')
	default:
		panic(fmt.Sprintf("audit: unexpected JSON value %T", v))
	}
}

const hexDigits = "0123456789abcdef"

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// MarshalPayload turns a Record payload into JSON bytes (not yet canonical).
func MarshalPayload(p any) ([]byte, error) {
	switch p := p.(type) {
	case nil:
		return []byte("{}"), nil
	case json.RawMessage:
		return p, nil
	case []byte:
		return p, nil
	default:
		return json.Marshal(p)
	}
}
