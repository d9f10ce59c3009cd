package store

import (
	"context"
	"time"
)

// LeaseStore holds named leases: work that must run once per deployment (the NDR
// watch's subscription keeper and delta poller, the approval sweeper, checkpoint
// posting) runs only in the process holding its lease, and another process takes
// the lease over once its holder stops renewing it. Decisions are atomic across
// goroutines, processes and replicas (SQLite's write transaction, a PostgreSQL row
// lock). These leases are not the run-ownership leases of Heartbeat and Recover.
//
// Expiry is compared against the now each caller passes: the replicas' clocks must
// agree to well within a lease's ttl (NTP does).
type LeaseStore interface {
	// TryLease acquires or renews the lease name for owner until now+ttl: owner
	// gets it when it holds it already, when nobody does, or when the holder's
	// lease expired at or before now. Otherwise it stays with its holder, and the
	// returned Lease says who that is and until when. Signals left for the holder
	// are returned, once, to whoever holds the lease after the call.
	TryLease(ctx context.Context, name, owner string, ttl time.Duration, now time.Time) (Lease, error)
	// ReleaseLease gives the lease up at once when owner holds it (a graceful
	// stop), so another process need not wait for it to expire; it does nothing
	// otherwise. Signals waiting for the holder stay for the next one.
	ReleaseLease(ctx context.Context, name, owner string) error
	// SignalLease leaves signals (short words without line breaks, e.g. "poke")
	// for the holder of the lease name, held or not: a process that does not hold
	// the lease asks the one that does to act (a change notification landed on
	// the wrong replica). Signals are a set: one already waiting is not added
	// again. At most MaxLeaseSignals wait; later ones are dropped, since a signal
	// is a hint whose absence only delays the holder's work.
	SignalLease(ctx context.Context, name string, signals ...string) error
}

// MaxLeaseSignals is how many distinct signals wait for a lease's holder at most;
// MaxLeaseSignal is the longest signal accepted, in bytes.
const (
	MaxLeaseSignals = 32
	MaxLeaseSignal  = 256
)

// Lease is where a named lease stands after TryLease.
type Lease struct {
	Name string `json:"name"`
	// Holder holds the lease until Expires ("" when nobody has held it or it was
	// released); Since is when it acquired it.
	Holder  string    `json:"holder"`
	Since   time.Time `json:"since"`
	Expires time.Time `json:"expires"`
	// Held reports that the caller holds the lease now.
	Held bool `json:"held"`
	// Previous is the holder the caller took the lease over from, when it changed
	// hands in this call ("" otherwise, or when it was free).
	Previous string `json:"previous,omitempty"`
	// Signals left for the holder since it last called, when Held.
	Signals []string `json:"signals,omitempty"`
}
