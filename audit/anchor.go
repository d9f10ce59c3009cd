package audit

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// What anchors the chain beyond its own database.
//
// A writer of the database who lacks the HMAC key cannot forge keyed events, but
// without more they could (1) rewrite the whole trail unkeyed (a downgrade), or
// (2) delete the tail together with the head row, which lives in the same
// database. Two anchors close those gaps:
//
//   - The key epoch: the first event sealed with a key is a KindKeyEpoch event
//     naming the key's id, and the head row keeps that id. Verified with the key,
//     a trail in which no event is sealed with it is a downgrade, and an unkeyed
//     event after the epoch is forged.
//   - Checkpoints: signed (HMAC-SHA256 with the audit key) statements of the head
//     — sequence number, hash, time — written to a sink the database writer cannot
//     rewrite (an append-only file, an audit Slack channel). Verify given them
//     detects a truncated tail and a rewritten head even if the head row went too.

// KindKeyEpoch marks the first event sealed with a key; its payload is KeyEpoch.
const KindKeyEpoch Kind = "key-epoch"

// KeyEpoch is the payload of a KindKeyEpoch event.
type KeyEpoch struct {
	KeyID string `json:"key_id"`
	// Since is the sequence number of this event: every later event is keyed.
	Since int64 `json:"since"`
}

// KeyID names a key without revealing it: the first 8 bytes of an HMAC of a fixed
// label, in hex. Empty for no key.
func KeyID(key []byte) string {
	if len(key) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("ndrbot audit key id v1"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// Head is what the store records about the last event written.
type Head struct {
	Seq  int64
	Hash string
	// KeyID is the id of the key the trail is sealed with since KeySince ("" if
	// it never was).
	KeyID    string
	KeySince int64
}

// ErrNoHead is returned by a HeadSource whose head record is missing: the
// database was tampered with (it is created with the schema and never deleted).
var ErrNoHead = errors.New("audit head record is missing")

// Checkpoint is a signed statement that the trail's head was at Seq with Hash at
// Time. Its text form is one line, so it survives a log file, syslog or a chat
// message:
//
//	ndrbot-audit-checkpoint v1 seq=42 hash=<hex> time=2026-12-03T10:00:00Z key=<key id> sig=<hex>
type Checkpoint struct {
	Seq   int64
	Hash  string
	Time  time.Time
	KeyID string
	Sig   string
}

const checkpointTag = "ndrbot-audit-checkpoint v1"

// NewCheckpoint signs the head h as seen at t.
func NewCheckpoint(h Head, t time.Time, key []byte) (Checkpoint, error) {
	if len(key) == 0 {
		return Checkpoint{}, errors.New("audit checkpoint: signing needs the audit key")
	}
	c := Checkpoint{Seq: h.Seq, Hash: h.Hash, Time: t.UTC().Truncate(time.Second), KeyID: KeyID(key)}
	c.Sig = c.mac(key)
	return c, nil
}

func (c Checkpoint) mac(key []byte) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s\n%d\n%s\n%s\n%s", checkpointTag, c.Seq, c.Hash, c.Time.UTC().Format(time.RFC3339), c.KeyID)
	return hex.EncodeToString(m.Sum(nil))
}

// Valid reports whether c was signed with key.
func (c Checkpoint) Valid(key []byte) bool {
	return len(key) > 0 && c.KeyID == KeyID(key) && hmac.Equal([]byte(c.Sig), []byte(c.mac(key)))
}

// String is the one-line text form.
func (c Checkpoint) String() string {
	return fmt.Sprintf("%s seq=%d hash=%s time=%s key=%s sig=%s",
		checkpointTag, c.Seq, c.Hash, c.Time.UTC().Format(time.RFC3339), c.KeyID, c.Sig)
}

// ReadCheckpoints collects every checkpoint line in r, in the order they appear,
// wherever the line's text sits (a plain file, syslog lines with their prefix,
// an exported chat channel). A line that carries the tag but does not parse is an
// error naming its line number: evidence that cannot be read must not be skipped.
func ReadCheckpoints(r io.Reader) ([]Checkpoint, error) {
	var out []Checkpoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		i := strings.Index(line, checkpointTag)
		if i < 0 {
			continue
		}
		c, err := parseCheckpoint(line[i+len(checkpointTag):])
		if err != nil {
			return nil, fmt.Errorf("checkpoint on line %d: %w", n, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading checkpoints: %w", err)
	}
	return out, nil
}

const valueChars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:.+-"

func parseCheckpoint(s string) (Checkpoint, error) {
	var c Checkpoint
	fields := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			break // the rest of the line (a chat message's trailing text) is not ours
		}
		// Values are digits, hex and RFC 3339 times; whatever follows them on the
		// same word (a JSON export's closing quote) is not part of the value.
		if end := strings.IndexFunc(v, func(r rune) bool { return !strings.ContainsRune(valueChars, r) }); end >= 0 {
			v = v[:end]
		}
		fields[k] = v
	}
	for _, k := range []string{"seq", "hash", "time", "key", "sig"} {
		if fields[k] == "" {
			return c, fmt.Errorf("missing %s=", k)
		}
	}
	var err error
	if c.Seq, err = strconv.ParseInt(fields["seq"], 10, 64); err != nil || c.Seq < 0 {
		return c, fmt.Errorf("seq=%q is not a sequence number", fields["seq"])
	}
	if c.Time, err = time.Parse(time.RFC3339, fields["time"]); err != nil {
		return c, fmt.Errorf("time=%q: %w", fields["time"], err)
	}
	c.Hash, c.KeyID, c.Sig = fields["hash"], fields["key"], fields["sig"]
	return c, nil
}
