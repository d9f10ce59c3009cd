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
	var b bytes.Buffer
	b.Grow(len(encodingTag) + 9*8 + 200 + len(payload))
	b.WriteString(encodingTag)
	var n [8]byte
	field := func(s []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		b.Write(n[:])
		b.Write(s)
	}
	var num [20]byte
	field(strconv.AppendInt(num[:0], e.Seq, 10))
	var ts [len(TimeLayout)]byte
	field(TimeUS(e.Time).AppendFormat(ts[:0], TimeLayout))
	field([]byte(e.Actor.ID))
	field([]byte(e.Actor.Name))
	field([]byte(e.RunID))
	field([]byte(e.Kind))
	field([]byte(e.Alg))
	field([]byte(e.PrevHash))
	field(payload)
	return b.Bytes(), nil
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
	e.Hash, err = ComputeHash(*e, key)
	return err
}

// CanonicalJSON re-encodes one JSON value canonically: no insignificant
// whitespace; object members sorted by key (bytewise UTF-8; a duplicated key keeps
// its last value); numbers exactly as written; strings with only '"', '\\', and
// control characters escaped ('\n', '\r', '\t' as such, others as \u00xx with
// lowercase hex) and everything else as literal UTF-8 (invalid UTF-8 becomes
// U+FFFD). An empty input encodes as null.
func CanonicalJSON(raw []byte) ([]byte, error) {
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
