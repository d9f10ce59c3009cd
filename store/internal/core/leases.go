package core

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/store"
)

// ---- named leases ------------------------------------------------------------

// TryLease acquires or renews a named lease. The row is created first (so there
// is a row to lock), then read under a lock and decided on: two processes asking
// at once are serialised by the row lock (PostgreSQL) or the write transaction
// (SQLite), and the second sees what the first wrote.
func (s *Store) TryLease(ctx context.Context, name, owner string, ttl time.Duration, now time.Time) (store.Lease, error) {
	switch {
	case name == "" || owner == "":
		return store.Lease{}, invalid("lease without a name or an owner")
	case ttl <= 0:
		return store.Lease{}, invalid("lease %q with ttl %s", name, ttl)
	}
	now = audit.TimeUS(now)
	until := audit.TimeUS(now.Add(ttl))
	var out store.Lease
	err := s.db.Write(ctx, func(tx Q) error {
		out = store.Lease{Name: name}
		if _, err := tx.Exec(ctx, `INSERT INTO work_leases (name) VALUES (?) ON CONFLICT (name) DO NOTHING`, name); err != nil {
			return err
		}
		var holder, signals string
		var since, expires int64
		if err := tx.QueryRow(ctx, `SELECT holder, since_us, expires_us, signals FROM work_leases WHERE name = ?`+s.d.ForUpdate, name).
			Scan(&holder, &since, &expires, &signals); err != nil {
			return err
		}
		live := holder != "" && expires > us(now)
		if live && holder != owner {
			out.Holder, out.Since, out.Expires = holder, fromUS(since), fromUS(expires)
			return nil
		}
		if !live {
			// A fresh tenure, also for an owner whose own lease lapsed: its work
			// stopped before the expiry, so this is a new start.
			since = us(now)
			if holder != owner {
				out.Previous = holder
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE work_leases SET holder = ?, since_us = ?, expires_us = ?, signals = '' WHERE name = ?`,
			owner, since, us(until), name); err != nil {
			return err
		}
		out.Holder, out.Since, out.Expires, out.Held = owner, fromUS(since), until, true
		out.Signals = splitSignals(signals)
		return nil
	})
	if err != nil {
		return store.Lease{}, err
	}
	return out, nil
}

// ReleaseLease frees the lease when owner holds it.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	if name == "" || owner == "" {
		return invalid("lease release without a name or an owner")
	}
	return s.db.Write(ctx, func(tx Q) error {
		_, err := tx.Exec(ctx, `UPDATE work_leases SET holder = '', since_us = 0, expires_us = 0 WHERE name = ? AND holder = ?`, name, owner)
		return err
	})
}

// SignalLease adds signals to the set waiting for the lease's holder.
func (s *Store) SignalLease(ctx context.Context, name string, signals ...string) error {
	if name == "" {
		return invalid("lease signal without a lease name")
	}
	for _, sig := range signals {
		if sig == "" || len(sig) > store.MaxLeaseSignal || strings.ContainsAny(sig, "\r\n") {
			return invalid("lease signal %.40q: want 1 to %d bytes on one line", sig, store.MaxLeaseSignal)
		}
	}
	if len(signals) == 0 {
		return nil
	}
	return s.db.Write(ctx, func(tx Q) error {
		if _, err := tx.Exec(ctx, `INSERT INTO work_leases (name) VALUES (?) ON CONFLICT (name) DO NOTHING`, name); err != nil {
			return err
		}
		var stored string
		if err := tx.QueryRow(ctx, `SELECT signals FROM work_leases WHERE name = ?`+s.d.ForUpdate, name).Scan(&stored); err != nil {
			return err
		}
		set := splitSignals(stored)
		n := len(set)
		for _, sig := range signals {
			if len(set) < store.MaxLeaseSignals && !slices.Contains(set, sig) {
				set = append(set, sig)
			}
		}
		if len(set) == n {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE work_leases SET signals = ? WHERE name = ?`, strings.Join(set, "\n"), name)
		return err
	})
}

func splitSignals(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
