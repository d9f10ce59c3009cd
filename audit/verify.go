package audit

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
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
	ReasonRewritten Reason = "rewritten" // an event differs from a checkpoint's
	ReasonDowngrade Reason = "downgrade" // verified with a key, yet no event is sealed with it
	ReasonWrongKey  Reason = "wrong-key" // the trail is sealed with another key
	// ReasonHeadMissing: the head record was deleted; a tail may have gone with it.
	ReasonHeadMissing Reason = "head-missing"
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
	// Checkpoints counts the checkpoints the walk matched.
	Checkpoints int

	// On failure: the first bad sequence number, why, and a sentence for humans.
	FirstBad int64
	Reason   Reason
	Detail   string
}

// String is a one-line summary for humans.
func (r Report) String() string {
	if r.OK {
		s := fmt.Sprintf("audit chain OK: %d events (seq %d..%d), head %s", r.Events, r.FirstSeq, r.LastSeq, short(r.LastHash))
		if r.Checkpoints > 0 {
			s += fmt.Sprintf("; matches %d checkpoint(s)", r.Checkpoints)
		}
		if r.Unkeyed > 0 {
			s += fmt.Sprintf("; the first %d events predate the HMAC key: SHA-256 only, held by their link to the first keyed event", r.Unkeyed)
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
// trail was written with (nil if none): with a key, an event hashed without it
// after the key's epoch is reported as forged, and a trail with no event sealed
// by it as a downgrade. Checkpoints (signed with key, read by ReadCheckpoints)
// anchor the walk outside the database: an event that differs from a checkpoint
// is a rewrite, a trail ending before one is truncated. A source that is also a
// HeadSource has its head record checked too; a missing head is a tamper
// verdict. A broken chain is a Report with OK false, not an error; the error is
// for failing to read the trail or a checkpoint that does not verify. Memory use
// is constant in the trail's length.
func Verify(ctx context.Context, src Source, key []byte, checkpoints ...Checkpoint) (Report, error) {
	var (
		r         Report
		prev      = Genesis
		expect    = int64(1)
		keyedSeen bool
		keyID     = KeyID(key)
		stored    = newStoredHasher(key)
	)
	cps := slices.Clone(checkpoints)
	slices.SortStableFunc(cps, func(a, b Checkpoint) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, c := range cps {
		if len(key) == 0 {
			return r, errors.New("checkpoints are signed with the audit key: verify with it")
		}
		if !c.Valid(key) {
			return r, fmt.Errorf("checkpoint seq=%d time=%s does not verify with the audit key (id %s; the checkpoint names %s): it was altered or made with another key",
				c.Seq, c.Time.UTC().Format(time.RFC3339), keyID, c.KeyID)
		}
	}
	for len(cps) > 0 && cps[0].Seq == 0 {
		cps = cps[1:] // an empty trail's checkpoint says nothing a walk can check
	}

	// The head is read before the walk: a bot appending meanwhile only adds
	// events after it, so the head's event is always among those walked.
	var (
		head     Head
		headErr  error
		headHash string
		hasHead  bool
	)
	if hs, ok := src.(HeadSource); ok {
		hasHead = true
		head, headErr = hs.AuditHead(ctx)
		if headErr != nil && !errors.Is(headErr, ErrNoHead) {
			return r, headErr
		}
	}

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

		if e.Kind == KindKeyEpoch && len(key) > 0 {
			var ep KeyEpoch
			if json.Unmarshal(e.Payload, &ep) == nil && ep.KeyID != keyID {
				return fail(e.Seq, ReasonWrongKey, "events from %d on are sealed with key id %s, not with the key given (id %s)", e.Seq, ep.KeyID, keyID)
			}
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
		if !stored.matches(e) {
			// Not the stored bytes: the content in its canonical form, as Seal
			// hashed it (an export whose JSON was re-spaced still verifies).
			enc, err := Encode(e)
			if err != nil {
				return fail(e.Seq, ReasonAltered, "%v", err)
			}
			got, err := hashBytes(enc, e.Alg, key)
			if err != nil {
				return r, err
			}
			if got != e.Hash {
				return diagnose(r, e, key, prev)
			}
		}
		if e.PrevHash != prev {
			if e.Seq == 1 {
				return fail(1, ReasonReplaced, "event 1 does not start the chain (prev hash %s, want genesis)", short(e.PrevHash))
			}
			return fail(e.Seq-1, ReasonReplaced, "event %d was replaced or inserted: event %d, intact itself, was chained to a different predecessor", e.Seq-1, e.Seq)
		}
		for len(cps) > 0 && cps[0].Seq == e.Seq {
			if cps[0].Hash != e.Hash {
				return fail(e.Seq, ReasonRewritten, "event %d is not the event the checkpoint of %s saw: the trail was rewritten up to event %d",
					e.Seq, cps[0].Time.UTC().Format(time.RFC3339), e.Seq)
			}
			r.Checkpoints++
			cps = cps[1:]
		}
		if e.Seq == head.Seq {
			headHash = e.Hash
		}
		prev = e.Hash
		expect++
		r.Events++
		r.LastSeq = e.Seq
		r.LastHash = e.Hash
	}
	if len(cps) > 0 {
		last := cps[len(cps)-1]
		return fail(r.LastSeq+1, ReasonTruncated, "the trail ends at event %d but the checkpoint of %s saw event %d: events %d..%d were deleted",
			r.LastSeq, last.Time.UTC().Format(time.RFC3339), last.Seq, r.LastSeq+1, last.Seq)
	}
	if hasHead {
		switch {
		case errors.Is(headErr, ErrNoHead):
			return fail(r.LastSeq+1, ReasonHeadMissing, "the head record is missing (deleted): whether events after %d were deleted too cannot be told without checkpoints", r.LastSeq)
		case head.Seq > r.LastSeq:
			return fail(r.LastSeq+1, ReasonTruncated, "the trail ends at event %d but %d events were written: events %d..%d deleted", r.LastSeq, head.Seq, r.LastSeq+1, head.Seq)
		case head.Seq > 0 && headHash != head.Hash:
			return fail(head.Seq, ReasonReplaced, "event %d differs from the last event written", head.Seq)
		case head.KeyID != "" && len(key) == 0:
			return fail(head.KeySince, ReasonNeedKey, "the trail is sealed with key id %s since event %d; verify with the audit key", head.KeyID, head.KeySince)
		case head.KeyID != "" && head.KeyID != keyID:
			return fail(head.KeySince, ReasonWrongKey, "the trail is sealed with key id %s since event %d, not with the key given (id %s)", head.KeyID, head.KeySince, keyID)
		}
	}
	if len(key) > 0 && r.Events > 0 && !keyedSeen {
		return fail(r.FirstSeq, ReasonDowngrade, "no event is sealed with the key (id %s): the trail was rewritten without it (downgrade), or no ndrbot has written to it with this key yet", keyID)
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
