// Package audit is ndrbot's tamper-evident audit trail: the event model, its
// canonical encoding and hash chain (SHA-256, or HMAC-SHA256 with a key), redaction
// of secrets before an event is written, verification of a stored chain, and
// export (JSON Lines, CSV, a human-readable run timeline).
//
// The chain: every event carries the hash of its predecessor (PrevHash; Genesis for
// the first) and its own Hash over Encode(event), so editing, deleting, inserting
// or reordering a stored event breaks the chain at that event. With a key, hashes
// are HMACs, so someone with write access to the database cannot recompute them.
//
// Storage lives elsewhere (package store): it assigns Seq and PrevHash under a
// lock, calls Seal and writes the event in the same transaction as the change it
// records. This package imports nothing of SQL.
package audit

import (
	"context"
	"encoding/json"
	"iter"
	"time"

	"github.com/ndrbot/ndrbot/incident"
)

// Kind names what an event records.
type Kind string

// Event kinds. The store writes the ones marked (store) itself, in the same
// transaction as the change; callers append the others with Store.Append.
const (
	KindCommand         Kind = "command"          // a chat or CLI command as received
	KindRun             Kind = "run"              // (store) a run was created
	KindState           Kind = "state"            // (store) a run changed state
	KindStep            Kind = "step"             // (store) a step finished: executor, target, digest, exit code, duration
	KindFinding         Kind = "finding"          // (store)
	KindProposal        Kind = "proposal"         // (store)
	KindApprovalRequest Kind = "approval-request" // (store) an approval was asked for
	KindApproval        Kind = "approval"         // (store) one approver voted approve
	KindApproved        Kind = "approved"         // (store) the approval reached its quorum
	KindRejection       Kind = "rejection"        // (store) an approver rejected: decided
	KindExpired         Kind = "expired"          // (store) the approval expired undecided
	KindVoid            Kind = "void"             // (store) what would run changed: approval void
	KindVoteRefused     Kind = "vote-refused"     // (store) a vote was refused (four-eyes)
	KindRelief          Kind = "relief"           // (store) a relief execution started/finished
	KindClaimRefused    Kind = "claim-refused"    // (store) a relief's claim met another execution on a host (running, or in cooldown)
	KindEscalation      Kind = "escalation"
	KindVerification    Kind = "verification" // a relief's verification and its verdict
	KindChatPost        Kind = "chat-post"    // (store) a chat post was delivered
	KindRecovery        Kind = "recovery"     // (store) interrupted work was recovered at start
)

// Alg is how an event's hash was made.
type Alg string

const (
	AlgSHA256 Alg = "sha256"
	AlgHMAC   Alg = "hmac-sha256"
)

// Genesis is the PrevHash of the first event.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Event is one entry of the audit trail.
type Event struct {
	Seq      int64           `json:"seq"`
	Time     time.Time       `json:"time"` // UTC, microsecond precision
	Actor    incident.Actor  `json:"actor"`
	RunID    string          `json:"run_id,omitempty"`
	Kind     Kind            `json:"kind"`
	Payload  json.RawMessage `json:"payload"` // canonical JSON (see CanonicalJSON)
	Alg      Alg             `json:"alg"`
	PrevHash string          `json:"prev_hash"` // hex
	Hash     string          `json:"hash"`      // hex
}

// Record is what a caller asks to append; the store turns it into an Event.
type Record struct {
	Actor incident.Actor
	RunID string
	Kind  Kind
	// Payload is a json.RawMessage, []byte of JSON, or any value encoding/json
	// accepts. It is redacted and canonicalised before it is hashed.
	Payload any
	// Time is when it happened; zero means now (the store's clock).
	Time time.Time
}

// Filter selects events for export and display. Zero fields select everything.
type Filter struct {
	RunID    string
	Since    time.Time // events at or after
	AfterSeq int64     // events with Seq > AfterSeq
	Kinds    []Kind
	Limit    int
}

// Match reports whether e passes f (for sources that cannot filter in a query).
func (f Filter) Match(e Event) bool {
	if f.RunID != "" && e.RunID != f.RunID {
		return false
	}
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	if e.Seq <= f.AfterSeq {
		return false
	}
	if len(f.Kinds) > 0 {
		ok := false
		for _, k := range f.Kinds {
			ok = ok || k == e.Kind
		}
		if !ok {
			return false
		}
	}
	return true
}

// Source streams stored events in Seq order. Implementations must not buffer the
// whole trail: Verify walks 100 000 events in constant memory.
type Source interface {
	Events(ctx context.Context, f Filter) iter.Seq2[Event, error]
}

// HeadSource is optionally implemented by a Source that also records the last
// sequence number and hash written (so Verify can detect deleted tail events).
// A missing head record is reported as ErrNoHead.
type HeadSource interface {
	AuditHead(ctx context.Context) (Head, error)
}

// TimeUS truncates t to microseconds in UTC: the precision events are stored and
// hashed with.
func TimeUS(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
