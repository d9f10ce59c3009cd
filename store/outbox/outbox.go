// Package outbox delivers the chat posts the store holds: every post once (as far
// as the chat platform lets anyone know), in enqueue order per channel, retrying
// with capped exponential backoff and honouring a platform's Retry-After, until the
// context ends. A chat outage or rate limiting delays posts; it loses none.
package outbox

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/internal/backoff"
	"github.com/ndrbot/ndrbot/store"
)

// Sender delivers one post to the chat platform and returns its reference (e.g.
// Slack's message ts). For store.PostUpdate, p.RefExternal is the message to edit;
// for a store.PostNew with p.Ref, p.RefExternal is the thread to reply in.
type Sender interface {
	Send(ctx context.Context, p store.Post) (ref string, err error)
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, p store.Post) (string, error)

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, p store.Post) (string, error) { return f(ctx, p) }

// RetryAfterError is implemented by errors that carry the platform's hint of when
// to try again (Slack's 429 Retry-After). The dispatcher waits at least that long.
type RetryAfterError interface {
	error
	RetryAfter() time.Duration
}

// RetryAfter wraps err with a retry-after hint.
func RetryAfter(err error, d time.Duration) error { return &retryAfter{err: err, d: d} }

type retryAfter struct {
	err error
	d   time.Duration
}

func (e *retryAfter) Error() string             { return e.err.Error() }
func (e *retryAfter) Unwrap() error             { return e.err }
func (e *retryAfter) RetryAfter() time.Duration { return e.d }

// Permanent marks err as not worth retrying (channel_not_found, invalid_blocks):
// the post is given up (state dead, audited) so it no longer holds up its channel.
func Permanent(err error) error { return &permanent{err} }

type permanent struct{ err error }

func (e *permanent) Error() string { return e.err.Error() }
func (e *permanent) Unwrap() error { return e.err }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanent
	return errors.As(err, &p)
}

// Queue is the part of store.Store the dispatcher uses.
type Queue interface {
	NextPosts(ctx context.Context, owner string, limit int, now time.Time) ([]store.Post, error)
	MarkDelivered(ctx context.Context, id int64, externalRef string) error
	MarkFailed(ctx context.Context, id int64, retryAt time.Time, errText string) error
}

// Dispatcher polls the queue and sends what is due.
type Dispatcher struct {
	Queue  Queue
	Sender Sender
	Owner  string       // lease owner: this process (several replicas may dispatch)
	Log    *slog.Logger // nil: discard

	Poll       time.Duration // idle poll interval (default 1s)
	Batch      int           // posts per poll (default 50)
	MinBackoff time.Duration // first retry delay (default 1s)
	MaxBackoff time.Duration // cap (default 5m)
	// Now is the clock (default time.Now).
	Now func() time.Time

	once sync.Once
	wake chan struct{}
}

func (d *Dispatcher) init() {
	d.once.Do(func() {
		d.wake = make(chan struct{}, 1)
		if d.Poll <= 0 {
			d.Poll = time.Second
		}
		if d.Batch <= 0 {
			d.Batch = 50
		}
		if d.MinBackoff <= 0 {
			d.MinBackoff = time.Second
		}
		if d.MaxBackoff <= 0 {
			d.MaxBackoff = 5 * time.Minute
		}
		if d.Now == nil {
			d.Now = time.Now
		}
		if d.Log == nil {
			d.Log = slog.New(slog.DiscardHandler)
		}
		if d.Owner == "" {
			d.Owner = "outbox"
		}
	})
}

// Notify wakes the dispatcher now (call it after EnqueuePost); it never blocks.
func (d *Dispatcher) Notify() {
	d.init()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers posts until ctx ends; it returns ctx's error. Store errors are
// logged and retried after the poll interval.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.init()
	for {
		n, err := d.RunOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			d.Log.Warn("outbox: dispatch failed", "err", err)
		}
		if n > 0 && err == nil {
			continue // more may be due right away
		}
		t := time.NewTimer(d.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-d.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// RunOnce sends one batch of due posts and returns how many were delivered. A
// channel whose post fails is not advanced further in this batch.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	d.init()
	posts, err := d.Queue.NextPosts(ctx, d.Owner, d.Batch, d.Now())
	if err != nil {
		return 0, err
	}
	blocked := map[string]bool{}
	delivered := 0
	for _, p := range posts {
		if ctx.Err() != nil {
			return delivered, ctx.Err()
		}
		if blocked[p.Channel] {
			continue
		}
		ref, err := d.Sender.Send(ctx, p)
		if err == nil {
			if err := d.Queue.MarkDelivered(ctx, p.ID, ref); err != nil {
				// Sent but not recorded: stop this channel; the lease expires and the
				// post is offered again (at-least-once at this one edge).
				blocked[p.Channel] = true
				d.Log.Error("outbox: record delivery", "post", p.ID, "key", p.Key, "err", err)
				continue
			}
			delivered++
			continue
		}
		if ctx.Err() != nil {
			return delivered, ctx.Err()
		}
		blocked[p.Channel] = true
		retryAt := time.Time{}
		if !IsPermanent(err) {
			retryAt = d.Now().Add(d.retryIn(p.Attempts+1, err))
		}
		d.Log.Warn("outbox: send failed", "post", p.ID, "key", p.Key, "channel", p.Channel,
			"attempt", p.Attempts+1, "retry_at", retryAt, "err", err)
		if mErr := d.Queue.MarkFailed(ctx, p.ID, retryAt, err.Error()); mErr != nil {
			return delivered, mErr
		}
	}
	return delivered, nil
}

// retryIn is the wait after failed attempt n (counted in the store, so it survives a
// restart): MinBackoff·2^(n-1), at most MaxBackoff, ±20 %, and never shorter than
// the error's Retry-After hint.
func (d *Dispatcher) retryIn(attempt int, err error) time.Duration {
	b := backoff.Policy{Base: d.MinBackoff, Max: d.MaxBackoff, Jitter: backoff.Spread20}.Wait(attempt, nil)
	var ra RetryAfterError
	if errors.As(err, &ra) && ra.RetryAfter() > b {
		b = ra.RetryAfter()
	}
	return b
}
