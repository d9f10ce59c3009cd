package probe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// outcome says how a guarded probe got its result.
type outcome int

const (
	probed    outcome = iota // this call opened the connection
	shared                   // joined a concurrent identical probe
	cached                   // reused a fresh earlier result; no connection
	throttled                // no connection allowed and nothing fresh to reuse
)

// guard holds the per-destination manners of one Executor: a one-slot semaphore (at
// most one open connection per destination), a token bucket for new connections,
// in-flight sharing of identical probes and the most recent result per probe kind.
type guard struct {
	clock Clock
	every time.Duration // one new connection per every …
	burst int           // … with this burst
	ttl   time.Duration

	mu    sync.Mutex
	dests map[string]*dest
}

type dest struct {
	sem     chan struct{}    // capacity 1: held while a connection is open
	limiter *rate.Limiter    // new connections to this destination
	flight  map[string]*call // variant → the probe in progress (guarded by guard.mu)
	recent  map[string]memo  // variant → last result (guarded by guard.mu)
	used    time.Time        // last activity, for pruning (guarded by guard.mu)
}

type call struct {
	done    chan struct{}
	val     any
	verdict verdict
	retry   bool // the leader was cancelled before observing anything; try again
}

type memo struct {
	val any
	at  time.Time
}

// pruneAbove is the number of destinations above which idle ones are forgotten.
const pruneAbove = 256

func newGuard(c Clock, every time.Duration, burst int, ttl time.Duration) *guard {
	return &guard{clock: c, every: every, burst: burst, ttl: ttl, dests: make(map[string]*dest)}
}

// dest returns the state for key; the caller holds g.mu.
func (g *guard) dest(key string, now time.Time) *dest {
	d, ok := g.dests[key]
	if !ok {
		if len(g.dests) >= pruneAbove {
			g.prune(now)
		}
		d = &dest{
			sem:     make(chan struct{}, 1),
			limiter: rate.NewLimiter(rate.Every(g.every), g.burst),
			flight:  make(map[string]*call),
			recent:  make(map[string]memo),
		}
		g.dests[key] = d
	}
	d.used = now
	return d
}

// prune forgets destinations whose state carries no information any more: nothing in
// flight, no open connection, the bucket refilled and every result stale.
func (g *guard) prune(now time.Time) {
	idle := g.ttl
	if refill := time.Duration(g.burst) * g.every; refill > idle {
		idle = refill
	}
	for k, d := range g.dests {
		if len(d.flight) == 0 && len(d.sem) == 0 && now.Sub(d.used) > idle {
			delete(g.dests, k)
		}
	}
}

// verdict is how a guarded probe got its result; note explains a throttled one.
type verdict struct {
	how  outcome
	note string
}

// guarded runs probe for destination key unless manners forbid it. variant names what
// is being asked of the destination (check and options): identical variants share a
// connection and a cached result; different variants only share the connection slot
// and the rate limit. probe reports whether its result is a real observation (false
// when ctx was cancelled before anything was seen); only observations are reused.
// The error is non-nil only when ctx ended before any result was available.
func guarded[T any](ctx context.Context, g *guard, key, variant string, probe func(context.Context) (T, bool)) (T, verdict, error) {
	var zero T
	for {
		g.mu.Lock()
		d := g.dest(key, g.clock.Now())
		if c, ok := d.flight[variant]; ok {
			g.mu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				return zero, verdict{}, fmt.Errorf("waiting for a concurrent probe of %s: %w", key, ctx.Err())
			}
			if c.retry {
				continue
			}
			v := c.verdict
			if v.how == probed {
				v.how = shared
			}
			return c.val.(T), v, nil
		}
		c := &call{done: make(chan struct{})}
		d.flight[variant] = c
		g.mu.Unlock()

		val, v, err := lead(ctx, g, d, key, variant, probe)

		g.mu.Lock()
		delete(d.flight, variant)
		c.val, c.verdict, c.retry = val, v, err != nil
		g.mu.Unlock()
		close(c.done)
		return val, v, err
	}
}

// lead holds the destination's connection slot, then connects if the rate limit
// allows, else reuses a fresh result, else reports throttled.
func lead[T any](ctx context.Context, g *guard, d *dest, key, variant string, probe func(context.Context) (T, bool)) (T, verdict, error) {
	var zero T
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return zero, verdict{throttled, "another probe of " + key + " was still running when the time ran out"}, nil
		}
		return zero, verdict{}, fmt.Errorf("waiting for the connection slot of %s: %w", key, ctx.Err())
	}
	defer func() { <-d.sem }()

	now := g.clock.Now()
	if d.limiter.AllowN(now, 1) {
		val, observed := probe(ctx)
		if !observed {
			return zero, verdict{}, fmt.Errorf("probe of %s: %w", key, context.Cause(ctx))
		}
		g.mu.Lock()
		d.recent[variant] = memo{val: val, at: g.clock.Now()}
		g.mu.Unlock()
		return val, verdict{how: probed}, nil
	}

	g.mu.Lock()
	m, ok := d.recent[variant]
	g.mu.Unlock()
	if ok && now.Sub(m.at) < g.ttl {
		return m.val.(T), verdict{how: cached}, nil
	}
	r := d.limiter.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now) // we only asked; don't hold a token we won't use
	return zero, verdict{throttled, fmt.Sprintf("per-destination limit for %s reached (%d per %s); next connection allowed in %s",
		key, g.burst, g.every, wait.Round(time.Millisecond))}, nil
}
