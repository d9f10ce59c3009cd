// Package backoff is the bot's one retry-wait rule: capped exponential growth with
// jitter, computed for attempt n without state.
//
// It is a function of n, not an iterator like cenkalti/backoff's ExponentialBackOff,
// because callers keep the attempt count where it must survive a restart (an
// outbox post's attempts, a subscription's failures are rows in the store) and ask
// for the wait that count earns; and it takes the random source as an argument, so
// that tests can pin the jitter.
package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// Jitter spreads a wait d uniformly over [d·Lo, d·Hi). The zero Jitter is none.
type Jitter struct{ Lo, Hi float64 }

var (
	// None waits exactly the exponential step.
	None = Jitter{}
	// Spread20 is ±20 %: [0.8·d, 1.2·d).
	Spread20 = Jitter{Lo: 0.8, Hi: 1.2}
	// Equal is "equal jitter", [d/2, d): until the cap each range starts where the
	// one before it ends, so successive waits never shrink while they spread
	// clients that failed together.
	Equal = Jitter{Lo: 0.5, Hi: 1}
)

// Policy is Base·2^(n-1) for retry n (1 for the first), at most Max, then jittered.
// Max caps the step before jitter: with a Jitter.Hi above 1 a wait may pass Max by
// that factor (Spread20 at the cap: up to 1.2·Max). Max <= 0 means no cap.
type Policy struct {
	Base   time.Duration
	Max    time.Duration
	Jitter Jitter
}

// Step is the wait before retry n without jitter: Base·2^(n-1), at most Max. An n
// below 1 counts as 1; no n overflows.
func (p Policy) Step(n int) time.Duration {
	limit := p.Max
	if limit <= 0 {
		limit = math.MaxInt64
	}
	d := p.Base
	for i := 1; i < n && d < limit; i++ {
		if d > limit/2 {
			d = limit
			break
		}
		d *= 2
	}
	return min(d, limit)
}

// Wait is the wait before retry n: Step(n) spread by the Jitter, with rnd in
// [0, 1) choosing where (nil: math/rand/v2's Float64, safe for concurrent use).
func (p Policy) Wait(n int, rnd func() float64) time.Duration {
	d := p.Step(n)
	j := p.Jitter
	if j == None {
		return d
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	f := j.Lo + (j.Hi-j.Lo)*rnd()
	w := float64(d) * f
	if w >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(w)
}
