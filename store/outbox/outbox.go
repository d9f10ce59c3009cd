// Package outbox delivers the chat posts the store holds: every post once (as far
// as the chat platform lets anyone know), in enqueue order per channel, retrying
// with capped exponential backoff and honouring a platform's Retry-After, until the
// context ends. A chat outage or rate limiting delays posts; it loses none.
package outbox

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ndrbot/ndrbot/internal/backoff"
	"github.com/ndrbot/ndrbot/store"
)

// Sender delivers one post to the chat platform and returns its reference (e.g.
// Slack's message ts). For store.PostUpdate, p.RefExternal is the message to edit;
// for a store.PostNew with p.Ref, p.RefExternal is the thread to reply in.
// Send is called concurrently for different channels, never for one channel.
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

	Poll  time.Duration // idle poll interval (default 1s)
	Batch int           // posts per poll (default 200)
	// Channels caps the channels sent to at once (default 64).
	Channels   int
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
			d.Batch = 200
		}
		if d.Channels <= 0 {
			d.Channels = 64
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

// Run delivers posts until ctx ends; it returns ctx's error. Each channel is
// drained by its own goroutine, in order, at the pace its rate limit allows: a
// busy or rate-limited channel never holds another back (Slack allows about one
// post per second per channel, so 50 channels can take 50 a second). Store
// errors are logged and retried after the poll interval.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.init()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		busy    = map[string]bool{} // channels being sent by a goroutine of this Run
		fetches int                 // fetches started (guarded by mu)
		doneAt  = map[string]int{}  // channel → fetches started when its last goroutine ended
	)
	defer wg.Wait()
	freed := make(chan struct{}, 1)
	for {
		mu.Lock()
		fetches++
		fetch := fetches
		// A mark older than this fetch holds back no fetch from now on.
		maps.DeleteFunc(doneAt, func(_ string, at int) bool { return at < fetch })
		mu.Unlock()
		posts, err := d.Queue.NextPosts(ctx, d.Owner, d.Batch, d.Now())
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			d.Log.Warn("outbox: dispatch failed", "err", err)
		}
		for _, run := range byChannel(posts) {
			ch := run[0].Channel
			mu.Lock()
			// A fetch that began before the channel's last goroutine ended may
			// hold posts that goroutine has since delivered: skip it, the next
			// fetch sees the channel as it is (its posts stay leased to us).
			if busy[ch] || fetch <= doneAt[ch] || len(busy) >= d.Channels {
				mu.Unlock()
				continue
			}
			busy[ch] = true
			mu.Unlock()
			wg.Go(func() {
				if _, err := d.sendChannel(ctx, run); err != nil {
					d.Log.Warn("outbox: dispatch failed", "channel", ch, "err", err)
				}
				mu.Lock()
				delete(busy, ch)
				doneAt[ch] = fetches
				mu.Unlock()
				select {
				case freed <- struct{}{}:
				default:
				}
			})
		}
		t := time.NewTimer(d.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-d.wake:
			t.Stop()
		case <-freed:
			t.Stop()
		case <-t.C:
		}
	}
}

// RunOnce sends one batch of due posts — its channels in parallel, each in order —
// and returns how many were delivered. A channel whose post fails is not
// advanced further in this batch.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	d.init()
	posts, err := d.Queue.NextPosts(ctx, d.Owner, d.Batch, d.Now())
	if err != nil {
		return 0, err
	}
	var (
		delivered atomic.Int64
		firstErr  error
		mu        sync.Mutex
		wg        sync.WaitGroup
		slots     = make(chan struct{}, d.Channels)
	)
	for _, run := range byChannel(posts) {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			n, err := d.sendChannel(ctx, run)
			delivered.Add(int64(n))
			if err != nil {
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return int(delivered.Load()), ctx.Err()
	}
	return int(delivered.Load()), firstErr
}

// byChannel splits posts (in id order) into one run per channel, keeping each
// channel's order; channels come in the order of their oldest post.
func byChannel(posts []store.Post) [][]store.Post {
	var runs [][]store.Post
	at := map[string]int{}
	for _, p := range posts {
		i, ok := at[p.Channel]
		if !ok {
			i = len(runs)
			at[p.Channel] = i
			runs = append(runs, nil)
		}
		runs[i] = append(runs[i], p)
	}
	return runs
}

// sendChannel sends one channel's posts in order, stopping at the first that
// fails (it is marked for a retry, or dead when permanent). It returns how many
// were delivered and an error only for a store failure.
func (d *Dispatcher) sendChannel(ctx context.Context, run []store.Post) (int, error) {
	delivered := 0
	for _, p := range run {
		if ctx.Err() != nil {
			return delivered, nil
		}
		ref, err := d.Sender.Send(ctx, p)
		if err == nil {
			if err := d.Queue.MarkDelivered(ctx, p.ID, ref); err != nil {
				// Sent but not recorded: stop this channel; the lease expires and the
				// post is offered again (at-least-once at this one edge).
				d.Log.Error("outbox: record delivery", "post", p.ID, "key", p.Key, "err", err)
				return delivered, nil
			}
			delivered++
			continue
		}
		if ctx.Err() != nil {
			return delivered, nil
		}
		retryAt := time.Time{}
		if !IsPermanent(err) {
			retryAt = d.Now().Add(d.retryIn(p.Attempts+1, err))
		}
		d.Log.Warn("outbox: send failed", "post", p.ID, "key", p.Key, "channel", p.Channel,
			"attempt", p.Attempts+1, "retry_at", retryAt, "err", err)
		if mErr := d.Queue.MarkFailed(ctx, p.ID, retryAt, err.Error()); mErr != nil {
			return delivered, mErr
		}
		return delivered, nil
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
