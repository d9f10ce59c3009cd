package audit_test

import (
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
)

// decodeFields splits a canonical encoding into its tag and its length-prefixed
// fields, failing on anything left over.
func decodeFields(t *testing.T, enc []byte) (tag string, fields []string) {
	t.Helper()
	const want = "ndrbot-audit-v1"
	require.GreaterOrEqual(t, len(enc), len(want))
	tag, rest := string(enc[:len(want)]), enc[len(want):]
	for len(rest) > 0 {
		require.GreaterOrEqual(t, len(rest), 8, "a length prefix is 8 bytes")
		n := binary.BigEndian.Uint64(rest[:8])
		rest = rest[8:]
		require.LessOrEqual(t, n, uint64(len(rest)), "field %d runs past the end", len(fields))
		fields = append(fields, string(rest[:n]))
		rest = rest[n:]
	}
	return tag, fields
}

func sealedSample(t *testing.T) audit.Event {
	t.Helper()
	e := sample(7)
	require.NoError(t, audit.Seal(&e, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", nil))
	return e
}

// The canonical encoding field by field: the tag, then exactly nine fields in a
// fixed order, each written in its fixed form. A change here breaks every stored
// chain, so it must come with a new tag.
func TestEncodeFieldsInOrder(t *testing.T) {
	e := sealedSample(t)
	enc, err := audit.Encode(e)
	require.NoError(t, err)
	tag, fields := decodeFields(t, enc)
	assert.Equal(t, "ndrbot-audit-v1", tag)
	assert.Equal(t, []string{
		"7",                           // seq: decimal ASCII
		"2026-11-23T10:04:05.123456Z", // time: UTC, exactly six fractional digits
		"U0ALICE",                     // actor.id
		"alice",                       // actor.name
		"r-20261123-0e1b5a3f2c",       // run_id
		"approval",                    // kind
		"sha256",                      // alg
		"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", // prev_hash
		`{"approval_id":"a-1","votes":1}`,                                  // payload: canonical JSON
	}, fields)

	// The forms hold at their edges: no leading zeros or padding in seq, six
	// fractional digits even when they are zero, an empty run id still a field.
	e.Seq, e.Time, e.RunID = 1234567890123, time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC), ""
	enc, err = audit.Encode(e)
	require.NoError(t, err)
	_, fields = decodeFields(t, enc)
	require.Len(t, fields, 9)
	assert.Equal(t, "1234567890123", fields[0])
	assert.Equal(t, "2027-01-02T03:04:05.000000Z", fields[1])
	assert.Equal(t, "", fields[4])
}

// Every field the encoding names changes the hash; the hash itself is not hashed.
func TestEveryFieldChangesTheHash(t *testing.T) {
	base := sealedSample(t)
	baseHash, err := audit.ComputeHash(base, nil)
	require.NoError(t, err)
	require.Equal(t, base.Hash, baseHash)

	changes := map[string]func(e *audit.Event){
		"seq":               func(e *audit.Event) { e.Seq++ },
		"time (a second)":   func(e *audit.Event) { e.Time = e.Time.Add(time.Second) },
		"time (a µs)":       func(e *audit.Event) { e.Time = e.Time.Add(time.Microsecond) },
		"actor.id":          func(e *audit.Event) { e.Actor.ID = "U0MALLORY" },
		"actor.name":        func(e *audit.Event) { e.Actor.Name = "mallory" },
		"run_id":            func(e *audit.Event) { e.RunID = "r-other" },
		"run_id emptied":    func(e *audit.Event) { e.RunID = "" },
		"kind":              func(e *audit.Event) { e.Kind = audit.KindRejection },
		"prev_hash":         func(e *audit.Event) { e.PrevHash = audit.Genesis },
		"payload value":     func(e *audit.Event) { e.Payload = json.RawMessage(`{"approval_id":"a-1","votes":2}`) },
		"payload key":       func(e *audit.Event) { e.Payload = json.RawMessage(`{"approval_id":"a-1","vote":1}`) },
		"payload type":      func(e *audit.Event) { e.Payload = json.RawMessage(`{"approval_id":"a-1","votes":"1"}`) },
		"payload number":    func(e *audit.Event) { e.Payload = json.RawMessage(`{"approval_id":"a-1","votes":1.0}`) },
		"actor.id↔name":     func(e *audit.Event) { e.Actor.ID, e.Actor.Name = e.Actor.Name, e.Actor.ID },
		"run_id↔kind":       func(e *audit.Event) { e.RunID, e.Kind = string(e.Kind), audit.Kind(e.RunID) },
		"boundary id|name":  func(e *audit.Event) { e.Actor.ID, e.Actor.Name = "U0ALICEa", "lice" },
		"boundary run|kind": func(e *audit.Event) { e.RunID, e.Kind = e.RunID+"a", "pproval" },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			e := base
			e.Payload = append(json.RawMessage(nil), base.Payload...)
			change(&e)
			h, err := audit.ComputeHash(e, nil)
			require.NoError(t, err)
			assert.NotEqual(t, baseHash, h)
		})
	}

	t.Run("alg", func(t *testing.T) {
		e := base
		e.Alg = audit.AlgHMAC
		h, err := audit.ComputeHash(e, []byte("key"))
		require.NoError(t, err)
		assert.NotEqual(t, baseHash, h)
		// The alg is itself encoded: the same HMAC key over an encoding that said
		// sha256 would give another hash.
		encS, err := audit.Encode(base)
		require.NoError(t, err)
		encH, err := audit.Encode(e)
		require.NoError(t, err)
		assert.NotEqual(t, encS, encH)
	})
	t.Run("hash is not hashed", func(t *testing.T) {
		e := base
		e.Hash = "tampered"
		h, err := audit.ComputeHash(e, nil)
		require.NoError(t, err)
		assert.Equal(t, baseHash, h)
	})
	t.Run("hmac key", func(t *testing.T) {
		e := base
		e.Alg = audit.AlgHMAC
		a, err := audit.ComputeHash(e, []byte("key-a"))
		require.NoError(t, err)
		b, err := audit.ComputeHash(e, []byte("key-b"))
		require.NoError(t, err)
		assert.NotEqual(t, a, b)
		_, err = audit.ComputeHash(e, nil)
		assert.Error(t, err, "an HMAC event needs the key")
	})
}

// What is the same event encodes the same, however it is held: the time in any
// zone or below microseconds, the payload with any spacing or key order.
func TestEncodeNormalises(t *testing.T) {
	base := sealedSample(t)
	want, err := audit.Encode(base)
	require.NoError(t, err)

	same := map[string]func(e *audit.Event){
		"time in another zone":        func(e *audit.Event) { e.Time = e.Time.In(time.FixedZone("CET", 3600)) },
		"time with nanoseconds":       func(e *audit.Event) { e.Time = e.Time.Add(789 * time.Nanosecond) },
		"payload spaced and unsorted": func(e *audit.Event) { e.Payload = json.RawMessage(" {\n\"votes\" : 1,\t\"approval_id\": \"a-1\"} ") },
		"payload escaped":             func(e *audit.Event) { e.Payload = json.RawMessage(`{"approval_id":"\u0061-1","votes":1}`) },
	}
	for name, change := range same {
		t.Run(name, func(t *testing.T) {
			e := base
			change(&e)
			got, err := audit.Encode(e)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got))
		})
	}

	t.Run("invalid payload", func(t *testing.T) {
		e := base
		e.Payload = json.RawMessage(`{"votes":`)
		_, err := audit.Encode(e)
		assert.Error(t, err)
	})
	t.Run("nil payload is null", func(t *testing.T) {
		e := base
		e.Payload = nil
		enc, err := audit.Encode(e)
		require.NoError(t, err)
		_, fields := decodeFields(t, enc)
		require.Len(t, fields, 9)
		assert.Equal(t, "null", fields[8])
	})
}

// Seal fills what the chain needs and nothing the caller set is lost.
func TestSealSetsChainFields(t *testing.T) {
	e := audit.Event{Seq: 3, Time: time.Date(2026, 11, 23, 11, 0, 0, 999, time.FixedZone("X", -7200)),
		Actor: incident.Actor{ID: "cli:ops", Name: "ops"}, Kind: audit.KindCommand, Payload: json.RawMessage(`{"b":1,"a":2}`)}
	require.NoError(t, audit.Seal(&e, audit.Genesis, nil))
	assert.Equal(t, time.UTC, e.Time.Location())
	assert.Equal(t, time.Date(2026, 11, 23, 13, 0, 0, 0, time.UTC), e.Time)
	assert.Equal(t, `{"a":2,"b":1}`, string(e.Payload))
	assert.Equal(t, audit.Genesis, e.PrevHash)
	assert.Equal(t, audit.AlgSHA256, e.Alg)
	h, err := audit.ComputeHash(e, nil)
	require.NoError(t, err)
	assert.Equal(t, h, e.Hash)
	assert.Len(t, e.Hash, 64)

	bad := e
	bad.Seq = 0
	assert.Error(t, audit.Seal(&bad, audit.Genesis, nil))
	bad = e
	bad.Kind = ""
	assert.Error(t, audit.Seal(&bad, audit.Genesis, nil))
}
