package slack

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ReplayGuard remembers the signatures of accepted HTTP mode requests. A signed
// request stays valid for 5 minutes after its timestamp, so whoever captures one
// (a proxy's log, a misrouted copy) could send it again; the guard lets each
// signature through once. store.Store implements it in the database, shared by
// every replica; without one the adapter keeps an in-process cache.
type ReplayGuard interface {
	// FirstSighting records signature until expires and reports whether it is
	// new. An error refuses the request (fail closed).
	FirstSighting(ctx context.Context, signature string, expires time.Time) (bool, error)
}

const (
	// signatureWindow is how far from now slack-go's verifier accepts a request
	// timestamp; replaySkew is added to it so an entry outlives the window on a
	// replica whose clock is a little behind the one that stored it.
	signatureWindow = 5 * time.Minute
	replaySkew      = time.Minute
	// replayTimeout bounds the guard's answer, well inside Slack's 3 s.
	replayTimeout = 2 * time.Second
	// replayCacheSize caps the in-process cache: 10 000 requests in 6 minutes is
	// ~28 per second, far above what a workspace sends one bot.
	replayCacheSize = 10_000
)

var errReplayCacheFull = errors.New("replay cache full of live entries")

// checkReplay lets a verified request through once. A replay is refused with 401
// (like any request that fails authentication; Slack never retries a slash
// command or an interaction, and X-Slack-No-Retry tells the Events API not to);
// a guard that cannot answer fails closed with 503. It writes the refusal and
// returns false.
func (a *Adapter) checkReplay(w http.ResponseWriter, r *http.Request) bool {
	// The verifier decodes the hex signature case-insensitively: the canonical
	// (lowercase) form is the key, so re-casing a captured signature does not
	// make it new.
	sig := strings.ToLower(r.Header.Get("X-Slack-Signature"))
	ts, err := strconv.ParseInt(r.Header.Get("X-Slack-Request-Timestamp"), 10, 64)
	if err != nil { // the verifier parsed it already
		http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
		return false
	}
	expires := time.Unix(ts, 0).Add(signatureWindow + replaySkew)
	ctx, cancel := context.WithTimeout(r.Context(), replayTimeout)
	defer cancel()
	first, err := a.opts.Replay.FirstSighting(ctx, sig, expires)
	switch {
	case err != nil:
		a.log.Error("slack request refused: the replay check failed", "status", http.StatusServiceUnavailable,
			"remote", r.RemoteAddr, "err", err)
		http.Error(w, "replay check unavailable", http.StatusServiceUnavailable)
		return false
	case !first:
		a.log.Warn("slack request refused: replay of a request already accepted", "status", http.StatusUnauthorized,
			"remote", r.RemoteAddr, "request_ts", ts)
		w.Header().Set("X-Slack-No-Retry", "1")
		http.Error(w, "replayed request", http.StatusUnauthorized)
		return false
	}
	return true
}

// replayCache is the in-process ReplayGuard: one replica's memory, bounded.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time // signature → expiry
	max  int
	now  func() time.Time
}

func newReplayCache(max int) *replayCache {
	return &replayCache{seen: map[string]time.Time{}, max: max, now: time.Now}
}

// FirstSighting records signature until expires; when the cache is full it drops
// the expired entries, and refuses (fails closed) if none has expired.
func (c *replayCache) FirstSighting(_ context.Context, signature string, expires time.Time) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if exp, ok := c.seen[signature]; ok && now.Before(exp) {
		return false, nil
	}
	if len(c.seen) >= c.max {
		for s, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, s)
			}
		}
		if len(c.seen) >= c.max {
			return false, errReplayCacheFull
		}
	}
	c.seen[signature] = expires
	return true, nil
}
