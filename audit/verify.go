package audit

import (
	"context"
	"fmt"
)

// Reason classifies the first problem Verify found.
type Reason string

const (
	ReasonOK        Reason = ""
	ReasonDeleted   Reason = "deleted"   // a sequence number is missing
	ReasonAltered   Reason = "altered"   // the content does not match its hash (edited)
	ReasonReordered Reason = "reordered" // the event was sealed under another sequence number
	ReasonReplaced  Reason = "replaced"  // the event's successor does not link to it (rewritten with a recomputed hash, or an event inserted)
	ReasonForged    Reason = "forged"    // not sealed with the HMAC key
	ReasonNeedKey   Reason = "need-key"  // HMAC-sealed but no key was given to check it
	ReasonTruncated Reason = "truncated" // events after the last one were deleted
)

// Report is the result of walking a chain.
type Report struct {
	OK       bool
	Events   int64  // events checked
	FirstSeq int64  // first sequence number seen
	LastSeq  int64  // last sequence number seen
	LastHash string // hash of the last event seen: pin it somewhere to detect a rewritten chain later
	// Unkeyed counts SHA-256-only events at the start of a chain verified with a
	// key (written before the key was configured). They do not resist a forger
	// with database access; the CLI should warn about them.
	Unkeyed int64

	// On failure: the first bad sequence number, why, and a sentence for humans.
	FirstBad int64
	Reason   Reason
	Detail   string
}

// String is a one-line summary for humans.
func (r Report) String() string {
	if r.OK {
		s := fmt.Sprintf("audit chain OK: %d events (seq %d..%d), head %s", r.Events, r.FirstSeq, r.LastSeq, short(r.LastHash))
		if r.Unkeyed > 0 {
			s += fmt.Sprintf("; warning: the first %d events predate the HMAC key and are protected by SHA-256 only", r.Unkeyed)
		}
		return s
	}
	return fmt.Sprintf("audit chain BROKEN at seq %d (%s): %s", r.FirstBad, r.Reason, r.Detail)
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Verify walks src in sequence order and checks every event's hash and its link
// to its predecessor, stopping at the first bad one. key is the HMAC key the
// trail was written with (nil if none): with a key, an event hashed without it is
// reported as forged. A broken chain is a Report with OK false, not an error; the
// error is for failing to read the trail. Memory use is constant.
func Verify(ctx context.Context, src Source, key []byte) (Report, error) {
	var (
		r         Report
		prev      = Genesis
		expect    = int64(1)
		keyedSeen bool
	)
	fail := func(seq int64, why Reason, format string, args ...any) (Report, error) {
		r.OK, r.FirstBad, r.Reason, r.Detail = false, seq, why, fmt.Sprintf(format, args...)
		return r, nil
	}
	for e, err := range src.Events(ctx, Filter{}) {
		if err != nil {
			return r, err
		}
		if r.Events&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return r, err
			}
		}
		if r.Events == 0 {
			r.FirstSeq = e.Seq
		}
		switch {
		case e.Seq > expect:
			if e.Seq == expect+1 {
				return fail(expect, ReasonDeleted, "event %d is missing (deleted); the trail goes on at %d", expect, e.Seq)
			}
			return fail(expect, ReasonDeleted, "events %d..%d are missing (deleted); the trail goes on at %d", expect, e.Seq-1, e.Seq)
		case e.Seq < expect:
			return fail(e.Seq, ReasonReordered, "event %d appears after event %d", e.Seq, expect-1)
		}

		enc, err := Encode(e)
		if err != nil {
			return fail(e.Seq, ReasonAltered, "%v", err)
		}
		switch e.Alg {
		case AlgHMAC:
			if len(key) == 0 {
				return fail(e.Seq, ReasonNeedKey, "event %d is sealed with an HMAC key; verify with the audit key", e.Seq)
			}
			keyedSeen = true
		case AlgSHA256:
			if len(key) > 0 {
				if keyedSeen {
					return fail(e.Seq, ReasonForged, "event %d is hashed without the HMAC key after keyed events: forged", e.Seq)
				}
				r.Unkeyed++
			}
		default:
			return fail(e.Seq, ReasonAltered, "event %d names an unknown hash algorithm %q", e.Seq, e.Alg)
		}
		got, err := hashBytes(enc, e.Alg, key)
		if err != nil {
			return r, err
		}
		if got != e.Hash {
			return diagnose(r, e, key, prev)
		}
		if e.PrevHash != prev {
			if e.Seq == 1 {
				return fail(1, ReasonReplaced, "event 1 does not start the chain (prev hash %s, want genesis)", short(e.PrevHash))
			}
			return fail(e.Seq-1, ReasonReplaced, "event %d was replaced or inserted: event %d, intact itself, was chained to a different predecessor", e.Seq-1, e.Seq)
		}
		prev = e.Hash
		expect++
		r.Events++
		r.LastSeq = e.Seq
		r.LastHash = e.Hash
	}
	if hs, ok := src.(HeadSource); ok {
		seq, hash, err := hs.AuditHead(ctx)
		if err != nil {
			return r, err
		}
		switch {
		case seq > r.LastSeq:
			return fail(r.LastSeq+1, ReasonTruncated, "the trail ends at event %d but %d events were written: events %d..%d deleted", r.LastSeq, seq, r.LastSeq+1, seq)
		case seq == r.LastSeq && seq > 0 && hash != r.LastHash:
			return fail(seq, ReasonReplaced, "event %d differs from the last event written", seq)
		}
	}
	r.OK = true
	return r, nil
}

// diagnose explains why e's hash does not match its content.
func diagnose(r Report, e Event, key []byte, prev string) (Report, error) {
	r.OK, r.FirstBad = false, e.Seq
	if e.Alg == AlgHMAC {
		if enc, err := Encode(e); err == nil {
			if h, _ := hashBytes(enc, AlgSHA256, nil); h == e.Hash {
				r.Reason, r.Detail = ReasonForged, fmt.Sprintf("event %d was hashed without the HMAC key: forged", e.Seq)
				return r, nil
			}
		}
	}
	// Sealed under a nearby sequence number: moved (swapped, or shifted by an insert).
	for d := int64(1); d <= 3; d++ {
		for _, s := range []int64{e.Seq - d, e.Seq + d} {
			if s <= 0 {
				continue
			}
			moved := e
			moved.Seq = s
			if h, err := ComputeHash(moved, key); err == nil && h == e.Hash {
				r.Reason, r.Detail = ReasonReordered, fmt.Sprintf("the event stored as %d was written as %d: events were reordered or one was inserted", e.Seq, s)
				return r, nil
			}
		}
	}
	r.Reason = ReasonAltered
	if e.PrevHash != prev {
		r.Detail = fmt.Sprintf("event %d does not match its hash and does not follow event %d: edited or inserted", e.Seq, e.Seq-1)
	} else {
		r.Detail = fmt.Sprintf("event %d does not match its hash: its content was edited", e.Seq)
	}
	if len(key) > 0 {
		r.Detail += " (or forged without the HMAC key)"
	}
	return r, nil
}
