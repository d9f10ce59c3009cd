package core

import (
	"context"
	"hash/fnv"
	"time"

	"github.com/ndrbot/ndrbot/audit"
)

// replaySweepEvery and replaySweepLimit bound the cleanup of expired replay
// entries: about one sighting in replaySweepEvery deletes up to replaySweepLimit
// expired rows, so the table tracks the requests of the last few minutes without
// a sweeper of its own and without a sighting ever scanning much.
const (
	replaySweepEvery = 16
	replaySweepLimit = 256
)

// FirstSighting records signature until expires and reports whether this is its
// first sighting: true exactly once while the entry is live, across goroutines and
// processes sharing the database. An entry whose expiry has passed (by the store's
// clock) counts as absent.
func (s *Store) FirstSighting(ctx context.Context, signature string, expires time.Time) (bool, error) {
	switch {
	case signature == "":
		return false, invalid("replay check without a signature")
	case expires.IsZero():
		return false, invalid("replay check of %q without an expiry", signature)
	}
	now := us(s.now())
	var first bool
	err := s.db.Write(ctx, func(tx Q) error {
		// Inserted, or an expired entry taken over: one row changed. A live entry
		// is left alone: none. The primary key decides between racing writers.
		n, err := tx.Exec(ctx, `INSERT INTO slack_requests (signature, expires_us) VALUES (?, ?)
			ON CONFLICT (signature) DO UPDATE SET expires_us = excluded.expires_us
			WHERE slack_requests.expires_us <= ?`, signature, us(audit.TimeUS(expires)), now)
		first = n == 1
		return err
	})
	if err != nil {
		return false, err
	}
	if sweepTurn(signature) {
		// Its own transaction, after the answer is decided: a failed or contended
		// cleanup never fails a sighting, and the next turn retries it.
		_ = s.db.Write(ctx, func(tx Q) error {
			_, err := tx.Exec(ctx, `DELETE FROM slack_requests WHERE signature IN
				(SELECT signature FROM slack_requests WHERE expires_us <= ? ORDER BY expires_us LIMIT ?)`, now, replaySweepLimit)
			return err
		})
	}
	return first, nil
}

// sweepTurn picks about one signature in replaySweepEvery, by a hash of the
// signature itself: no state in the store, and every replica takes its share.
func sweepTurn(signature string) bool {
	h := fnv.New32a()
	_, _ = h.Write([]byte(signature))
	return h.Sum32()%replaySweepEvery == 0
}
