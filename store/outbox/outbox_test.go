package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/outbox"
)

// memQueue is an in-memory Queue with the store's per-channel semantics.
type memQueue struct {
	mu     sync.Mutex
	posts  []store.Post
	failed map[int64][]time.Time // retryAt per failure
	dead   []int64
}

func (q *memQueue) NextPosts(_ context.Context, _ string, limit int, now time.Time) ([]store.Post, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []store.Post
	held := map[string]bool{}
	for _, p := range q.posts {
		if p.State != store.PostPending || held[p.Channel] {
			continue
		}
		if p.NextAt.After(now) {
			held[p.Channel] = true
			continue
		}
		out = append(out, p)
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

func (q *memQueue) find(id int64) *store.Post {
	for i := range q.posts {
		if q.posts[i].ID == id {
			return &q.posts[i]
		}
	}
	return nil
}

func (q *memQueue) MarkDelivered(_ context.Context, id int64, ref string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.find(id)
	p.State, p.ExternalRef = store.PostDelivered, ref
	return nil
}

func (q *memQueue) MarkFailed(_ context.Context, id int64, retryAt time.Time, _ string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.find(id)
	p.Attempts++
	if retryAt.IsZero() {
		p.State = store.PostDead
		q.dead = append(q.dead, id)
		return nil
	}
	p.NextAt = retryAt
	if q.failed == nil {
		q.failed = map[int64][]time.Time{}
	}
	q.failed[id] = append(q.failed[id], retryAt)
	return nil
}

func newQueue(keys ...string) *memQueue {
	q := &memQueue{}
	for i, k := range keys {
		q.posts = append(q.posts, store.Post{ID: int64(i + 1), Channel: "C" + k[:1], Key: k, State: store.PostPending, Payload: json.RawMessage(`{}`)})
	}
	return q
}

func TestRetryAfterIsHonoured(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	q := newQueue("a1", "a2", "b1")
	var calls atomic.Int64 // channels are sent to concurrently
	d := &outbox.Dispatcher{Queue: q, Owner: "t", Now: func() time.Time { return now },
		MinBackoff: time.Second, MaxBackoff: time.Minute,
		Sender: outbox.SenderFunc(func(_ context.Context, p store.Post) (string, error) {
			calls.Add(1)
			if p.Key == "a1" {
				return "", outbox.RetryAfter(errors.New("ratelimited"), 30*time.Second)
			}
			return "ts-" + p.Key, nil
		})}
	n, err := d.RunOnce(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, n, "b1 delivered; a2 waits behind a1")
	assert.EqualValues(t, 2, calls.Load(), "a2 is not tried while a1 failed")
	require.Len(t, q.failed[1], 1)
	assert.GreaterOrEqual(t, q.failed[1][0].Sub(now), 30*time.Second, "Retry-After beats the 1s backoff")
	assert.Equal(t, store.PostPending, q.posts[1].State)
	assert.Equal(t, store.PostDelivered, q.posts[2].State)
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	q := newQueue("a1")
	d := &outbox.Dispatcher{Queue: q, Owner: "t", Now: func() time.Time { return now },
		MinBackoff: time.Second, MaxBackoff: 8 * time.Second,
		Sender: outbox.SenderFunc(func(context.Context, store.Post) (string, error) { return "", errors.New("down") })}
	for range 6 {
		now = now.Add(time.Hour) // every retry is due
		_, err := d.RunOnce(context.Background())
		require.NoError(t, err)
	}
	var delays []time.Duration
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for i, at := range q.failed[1] {
		delays = append(delays, at.Sub(base.Add(time.Duration(i+1)*time.Hour)))
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	require.Len(t, delays, len(want))
	for i, w := range want {
		w *= time.Second
		assert.InDelta(t, float64(w), float64(delays[i]), float64(w)*0.21, "attempt %d", i+1)
	}
}

func TestPermanentGivesUp(t *testing.T) {
	q := newQueue("a1", "a2")
	var sent []string
	d := &outbox.Dispatcher{Queue: q, Owner: "t",
		Sender: outbox.SenderFunc(func(_ context.Context, p store.Post) (string, error) {
			if p.Key == "a1" {
				return "", outbox.Permanent(errors.New("channel_not_found"))
			}
			sent = append(sent, p.Key)
			return "ts", nil
		})}
	_, err := d.RunOnce(context.Background())
	require.NoError(t, err)
	_, err = d.RunOnce(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []int64{1}, q.dead)
	assert.Equal(t, []string{"a2"}, sent, "a dead post no longer holds up its channel")
	assert.True(t, outbox.IsPermanent(outbox.Permanent(errors.New("x"))))
	assert.False(t, outbox.IsPermanent(errors.New("x")))
}

func TestRunStopsOnCancel(t *testing.T) {
	q := newQueue()
	d := &outbox.Dispatcher{Queue: q, Owner: "t", Poll: time.Hour,
		Sender: outbox.SenderFunc(func(context.Context, store.Post) (string, error) { return "", nil })}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	d.Notify()
	cancel()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// polledQueue tells the test each time the dispatcher has asked for due posts and
// been answered: after the first answer, an idle Run waits for Notify or Poll.
type polledQueue struct {
	*memQueue
	polled chan int // the number of posts each NextPosts returned
}

func (q polledQueue) NextPosts(ctx context.Context, owner string, limit int, now time.Time) ([]store.Post, error) {
	ps, err := q.memQueue.NextPosts(ctx, owner, limit, now)
	q.polled <- len(ps)
	return ps, err
}

// Notify wakes an idle dispatcher: the post enqueued after its last poll is sent
// at once, not after the hour-long poll interval. The test waits for that poll
// (an event, not a sleep), so it cannot pass by the post being there all along.
func TestNotifyWakesRun(t *testing.T) {
	q := polledQueue{memQueue: newQueue(), polled: make(chan int, 16)}
	delivered := make(chan string, 1)
	d := &outbox.Dispatcher{Queue: q, Owner: "t", Poll: time.Hour,
		Sender: outbox.SenderFunc(func(_ context.Context, p store.Post) (string, error) {
			delivered <- p.Key
			return "ts", nil
		})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	select {
	case n := <-q.polled:
		require.Zero(t, n, "nothing is due yet")
	case <-time.After(5 * time.Second):
		t.Fatal("Run never polled")
	}
	// Run is idle now (or about to be), polling hourly.
	q.mu.Lock()
	q.posts = append(q.posts, store.Post{ID: 1, Channel: "C1", Key: "late", State: store.PostPending})
	q.mu.Unlock()
	d.Notify()
	select {
	case k := <-delivered:
		assert.Equal(t, "late", k)
	case <-time.After(5 * time.Second):
		t.Fatal("Notify did not wake the dispatcher")
	}
}
