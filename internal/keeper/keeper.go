// Package keeper runs work that must happen once per deployment — the NDR watch,
// the approval sweeper, audit checkpoints — in one process at a time: the one
// holding the work's named lease in the store. Every replica runs a Keeper for
// each such work; the one that holds the lease runs it and renews the lease, the
// others stand by and take over when the holder releases the lease (a graceful
// stop) or stops renewing it (it died, or lost the database).
//
// Two holders never run the work at once, as far as clocks allow: the holder
// renews at a third of the lease's ttl, and stops its work when a renewal says
// another process holds the lease, or when it has not managed to renew by the
// time a third of the ttl is left — so its work has stopped before the lease
// expires and another process may take it. That margin assumes the replicas'
// clocks agree to well within a third of the ttl, and that the work stops soon
// after its context ends.
package keeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ndrbot/ndrbot/internal/backoff"
	"github.com/ndrbot/ndrbot/store"
)

// Leaser is the part of the store a Keeper uses (store.LeaseStore).
type Leaser interface {
	TryLease(ctx context.Context, name, owner string, ttl time.Duration, now time.Time) (store.Lease, error)
	ReleaseLease(ctx context.Context, name, owner string) error
	SignalLease(ctx context.Context, name string, signals ...string) error
}

// DefaultTTL is a lease's lifetime when Options.TTL is zero: a dead holder's work
// is taken over 30 to 40 seconds after its last renewal.
const DefaultTTL = 30 * time.Second

// Options configure a Keeper.
type Options struct {
	// Name is the work's lease name, shared by every replica ("ndr-watch").
	Name string
	// Owner names this process, uniquely in the deployment (a restarted process
	// is another owner: it waits for its predecessor's lease like anyone else).
	Owner string
	Store Leaser
	// TTL is how long a renewal holds the lease (default DefaultTTL).
	TTL time.Duration
	// OnSignal receives each signal (see Signal) while this process holds the
	// lease. It is called from the keeper's goroutine or from Signal's caller, and
	// must not block.
	OnSignal func(signal string)
	// OnChange is told when this process gains (true) or loses (false) the lease.
	OnChange func(held bool)
	Now      func() time.Time
	// Rand draws the jitter of waits (default math/rand/v2).
	Rand func() float64
	Log  *slog.Logger
}

// Keeper runs one work under its lease. Its methods are safe for concurrent use;
// Run is called once.
type Keeper struct {
	o    Options
	log  *slog.Logger
	held atomic.Bool

	mu      sync.Mutex
	pending []string // signals not delivered yet, in arrival order, without repeats
	flush   chan struct{}
}

// New returns a Keeper for o.Name.
func New(o Options) (*Keeper, error) {
	switch {
	case o.Name == "" || o.Owner == "":
		return nil, errors.New("keeper: a name and an owner are required")
	case o.Store == nil:
		return nil, errors.New("keeper: a store is required")
	case o.TTL != 0 && o.TTL < 30*time.Millisecond:
		return nil, fmt.Errorf("keeper %s: ttl %s is too short to renew a third of the way", o.Name, o.TTL)
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.OnSignal == nil {
		o.OnSignal = func(string) {}
	}
	if o.OnChange == nil {
		o.OnChange = func(bool) {}
	}
	return &Keeper{o: o, log: o.Log.With("component", "keeper", "work", o.Name), flush: make(chan struct{}, 1)}, nil
}

// Name is the work's lease name.
func (k *Keeper) Name() string { return k.o.Name }

// Held reports whether this process holds the lease (and runs the work) now.
func (k *Keeper) Held() bool { return k.held.Load() }

// Signal asks the holder of the lease to act on signal (OnSignal): at once when
// this process holds it, else through the store, where the holder finds it at its
// next renewal (within a third of the ttl). It never blocks: signals are written
// by Run's goroutine, coalesced while a write is in flight. A signal is a hint —
// one lost (the store unreachable, no Run) only delays the holder's work.
func (k *Keeper) Signal(signal string) {
	if k.held.Load() {
		k.o.OnSignal(signal)
		return
	}
	k.mu.Lock()
	if !slices.Contains(k.pending, signal) && len(k.pending) < store.MaxLeaseSignals {
		k.pending = append(k.pending, signal)
	}
	k.mu.Unlock()
	select {
	case k.flush <- struct{}{}:
	default:
	}
}

// Run contends for the lease until ctx ends, running work whenever it holds it.
// work's context ends when the lease is lost or ctx ends; on a graceful stop
// (ctx ends) the lease is released so another process takes over at once. Run
// returns nil when ctx ends or work returns nil by itself; when work fails while
// the lease is held, Run releases it and returns work's error.
func (k *Keeper) Run(ctx context.Context, work func(ctx context.Context) error) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	fctx, stopFlush := context.WithCancel(ctx)
	defer stopFlush()
	wg.Go(func() { k.flushSignals(fctx) })

	failures := 0
	standingBy := ""
	for {
		l, err := k.try(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			failures++
			wait := backoff.Policy{Base: k.o.TTL / 10, Max: k.o.TTL, Jitter: backoff.Spread20}.Wait(failures, k.o.Rand)
			k.log.Warn("lease: the store did not answer; retrying", "err", err, "failures", failures, "retry_in", wait)
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		case !l.Held:
			failures = 0
			if l.Holder != standingBy {
				k.log.Info("lease held by another process; standing by", "holder", l.Holder, "expires", l.Expires)
				standingBy = l.Holder
			}
			// Look again at a third of the ttl (a released lease is taken that
			// soon), or as the holder's lease runs out if that is sooner; jittered
			// so that replicas do not ask in step.
			wait := min(k.o.TTL/3, max(l.Expires.Sub(k.o.Now()), 0)+k.o.TTL/30)
			if !sleep(ctx, backoff.Policy{Base: wait, Jitter: backoff.Spread20}.Wait(1, k.o.Rand)) {
				return nil
			}
			continue
		}
		failures, standingBy = 0, ""
		done, err := k.hold(ctx, l, work)
		if done || err != nil {
			return err
		}
	}
}

// hold runs work while renewing the lease l. It returns done when Run should
// return (ctx ended, or work returned), with work's error if it failed; otherwise
// the lease was lost and Run contends again.
func (k *Keeper) hold(ctx context.Context, l store.Lease, work func(context.Context) error) (done bool, err error) {
	k.log.Info("lease acquired; running the work", "holder", k.o.Owner, "previous", l.Previous, "expires", l.Expires)
	k.held.Store(true)
	k.o.OnChange(true)
	k.deliver(l.Signals)
	k.deliverPending()

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	result := make(chan error, 1)
	go func() { result <- work(wctx) }()
	// stop ends the work and waits for it: nothing of it may run once this
	// process no longer holds the lease (or is about to let it go).
	stop := func() {
		cancel()
		if werr := <-result; werr != nil && !errors.Is(werr, context.Canceled) {
			k.log.Debug("the work ended with an error after it was stopped", "err", werr)
		}
		k.held.Store(false)
		k.o.OnChange(false)
	}

	expires := l.Expires
	failures := 0
	t := time.NewTimer(k.o.TTL / 3)
	defer t.Stop()
	for {
		select {
		case werr := <-result:
			k.held.Store(false)
			k.o.OnChange(false)
			k.release(ctx)
			if werr != nil && ctx.Err() == nil {
				k.log.Error("the work failed; lease released", "err", werr)
				return true, fmt.Errorf("%s: %w", k.o.Name, werr)
			}
			k.log.Info("the work ended; lease released")
			return true, nil
		case <-ctx.Done():
			stop()
			k.release(ctx)
			k.log.Info("stopped; lease released for another process to take over")
			return true, nil
		case <-t.C:
		}
		nl, err := k.try(ctx)
		switch {
		case ctx.Err() != nil:
			continue // the next select stops the work
		case err == nil && nl.Held:
			expires, failures = nl.Expires, 0
			k.deliver(nl.Signals)
			t.Reset(k.o.TTL / 3)
		case err == nil:
			// Taken over: this process's clock or renewals lagged. Stop at once.
			stop()
			k.log.Info("lease lost to another process; the work stopped", "holder", nl.Holder, "since", nl.Since)
			return false, nil
		default:
			failures++
			left := expires.Sub(k.o.Now())
			if left <= k.o.TTL/3 {
				stop()
				k.log.Warn("lease given up: renewals failed and it expires soon; the work stopped", "err", err,
					"failures", failures, "expires", expires)
				return false, nil
			}
			// Retry well before the deadline: several attempts fit in the third
			// of the ttl that separates a renewal from giving up.
			wait := backoff.Policy{Base: k.o.TTL / 30, Max: k.o.TTL / 6, Jitter: backoff.Spread20}.Wait(failures, k.o.Rand)
			k.log.Warn("lease renewal failed; retrying", "err", err, "failures", failures, "expires", expires)
			t.Reset(min(wait, left-k.o.TTL/3))
		}
	}
}

// try asks the store for the lease, bounded by a third of the ttl.
func (k *Keeper) try(ctx context.Context) (store.Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, k.o.TTL/3)
	defer cancel()
	l, err := k.o.Store.TryLease(ctx, k.o.Name, k.o.Owner, k.o.TTL, k.o.Now())
	if err != nil {
		return l, fmt.Errorf("lease %s: %w", k.o.Name, err)
	}
	return l, nil
}

// release frees the lease with a deadline of its own: ctx may have ended.
func (k *Keeper) release(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(k.o.TTL/3, 5*time.Second))
	defer cancel()
	if err := k.o.Store.ReleaseLease(rctx, k.o.Name, k.o.Owner); err != nil {
		k.log.Warn("lease not released; another process takes over when it expires", "err", err)
	}
}

func (k *Keeper) deliver(signals []string) {
	for _, s := range signals {
		k.o.OnSignal(s)
	}
}

// deliverPending hands signals that were waiting to be written to the store to
// this process's work, now that it holds the lease.
func (k *Keeper) deliverPending() {
	k.mu.Lock()
	p := k.pending
	k.pending = nil
	k.mu.Unlock()
	k.deliver(p)
}

// flushSignals writes pending signals to the store until ctx ends.
func (k *Keeper) flushSignals(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.flush:
		}
		if k.held.Load() {
			k.deliverPending()
			continue
		}
		k.mu.Lock()
		p := k.pending
		k.pending = nil
		k.mu.Unlock()
		if len(p) == 0 {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, k.o.TTL/3)
		err := k.o.Store.SignalLease(wctx, k.o.Name, p...)
		cancel()
		if err != nil && ctx.Err() == nil {
			k.log.Warn("signal for the lease's holder not stored; its work runs late", "signals", p, "err", err)
		}
	}
}

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
