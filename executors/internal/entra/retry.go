package entra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ndrbot/ndrbot/internal/backoff"
)

// RetryPolicy bounds retries of transient failures of a Microsoft REST call
// (429, 5xx, connection resets). Every wait also ends before the action's
// deadline: a wait that would not leave MinAttemptTime for the next attempt is
// not started, and the last failure is returned at once.
type RetryPolicy struct {
	// MaxAttempts counts the first try too.
	MaxAttempts int
	// BaseDelay is the first backoff when the service sends no Retry-After; each
	// later one doubles, up to MaxDelay.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MinAttemptTime is the least time left before the deadline worth starting
	// another attempt with.
	MinAttemptTime time.Duration
}

// DefaultRetryPolicy: 5 attempts, 2 s doubling to 30 s (waits of 1–2, 2–4, 4–8 and
// 8–16 s: 15–30 s in all, inside a 60 s step with room for the attempts).
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 5, BaseDelay: 2 * time.Second, MaxDelay: 30 * time.Second, MinAttemptTime: time.Second}
}

// Valid reports a policy that cannot work.
func (p RetryPolicy) Valid() error {
	if p.MaxAttempts < 1 || p.BaseDelay <= 0 || p.MaxDelay < p.BaseDelay || p.MinAttemptTime < 0 {
		return fmt.Errorf("retry policy %+v: want MaxAttempts >= 1, 0 < BaseDelay <= MaxDelay, MinAttemptTime >= 0", p)
	}
	return nil
}

// Wait is the wait before retry n (1 for the first retry) without Retry-After:
// "equal jitter", uniformly in [d/2, d) for d = BaseDelay·2^(n-1) capped at
// MaxDelay. Each range starts where the previous one ends, so successive waits
// never shrink while they spread clients that failed together. rnd is the
// jitter source.
func (p RetryPolicy) Wait(n int, rnd func() float64) time.Duration {
	return backoff.Policy{Base: p.BaseDelay, Max: p.MaxDelay, Jitter: backoff.Equal}.Wait(n, rnd)
}

// Next is the wait before retry n: retryAfter when the service sent one (0 or
// more; negative when it did not), else Wait's backoff. ok is false when that
// wait would not leave MinAttemptTime for the attempt before ctx's deadline:
// then there is no retry.
func (p RetryPolicy) Next(ctx context.Context, n int, retryAfter time.Duration, rnd func() float64) (wait time.Duration, ok bool) {
	wait = retryAfter
	if wait < 0 {
		wait = p.Wait(n, rnd)
	}
	if dl, has := ctx.Deadline(); has && time.Until(dl) < wait+p.MinAttemptTime {
		return wait, false
	}
	return wait, true
}

// Pause waits d before the next attempt, or until ctx ends, whose error it
// returns then.
func Pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ParseRetryAfter reads delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A date
// in the past, or garbage, means no wait.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// IsConnReset reports a connection the peer dropped: RST, or closed before the
// response (EOF while reading it).
func IsConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
