package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/outbox"
)

// gatedSender blocks every send to one channel until the gate opens.
type gatedSender struct {
	slow string
	gate chan struct{}

	mu        sync.Mutex
	delivered map[string][]string
}

func (g *gatedSender) Send(ctx context.Context, p store.Post) (string, error) {
	if p.Channel == g.slow {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.delivered[p.Channel] = append(g.delivered[p.Channel], p.Key)
	return fmt.Sprintf("ts-%d", p.ID), nil
}

func (g *gatedSender) count(ch string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.delivered[ch])
}

// testFairness: channels do not wait on each other — neither on a channel with
// thousands queued nor on one whose sends hang.
func testFairness(t *testing.T, open Opener) {
	t.Run("a full channel does not fill the batch", func(t *testing.T) {
		s, ctx := open(t, store.Options{}).Store, ctxT(t)
		r := newRun(t, s, "bot-1")
		for i := range 300 {
			_, err := s.EnqueuePost(ctx, store.Post{RunID: r.ID, Channel: "C0STORM", Key: fmt.Sprintf("storm-%03d", i), Payload: json.RawMessage(`{}`)})
			require.NoError(t, err)
		}
		_, err := s.EnqueuePost(ctx, store.Post{RunID: r.ID, Channel: "C0QUIET", Key: "quiet", Payload: json.RawMessage(`{}`)})
		require.NoError(t, err)
		got, err := s.NextPosts(ctx, "bot-1", 50, time.Now())
		require.NoError(t, err)
		var keys []string
		for _, p := range got {
			keys = append(keys, p.Key)
		}
		assert.Contains(t, keys, "quiet")
		assert.Less(t, len(keys), 50, "one channel's share is bounded")
		assert.Equal(t, "storm-000", keys[0], "oldest first")
	})

	t.Run("a hanging channel does not hold the others back", func(t *testing.T) {
		s, ctx := open(t, store.Options{}).Store, ctxT(t)
		r := newRun(t, s, "bot-1")
		channels := []string{"C0SLOW", "C0A", "C0B", "C0C"}
		for i := range 6 {
			for _, ch := range channels {
				_, err := s.EnqueuePost(ctx, store.Post{RunID: r.ID, Channel: ch, Key: fmt.Sprintf("%s-%d", ch, i), Payload: json.RawMessage(`{}`)})
				require.NoError(t, err)
			}
		}
		snd := &gatedSender{slow: "C0SLOW", gate: make(chan struct{}), delivered: map[string][]string{}}
		d := &outbox.Dispatcher{Queue: s, Sender: snd, Owner: "bot-1", Poll: 5 * time.Millisecond}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- d.Run(runCtx) }()
		require.Eventually(t, func() bool {
			return snd.count("C0A") == 6 && snd.count("C0B") == 6 && snd.count("C0C") == 6
		}, 30*time.Second, 5*time.Millisecond, "the other channels were held back by C0SLOW")
		assert.Zero(t, snd.count("C0SLOW"))
		close(snd.gate)
		require.Eventually(t, func() bool { return snd.count("C0SLOW") == 6 }, 30*time.Second, 5*time.Millisecond)
		stop()
		<-done
		for _, ch := range channels {
			want := make([]string, 6)
			for i := range want {
				want[i] = fmt.Sprintf("%s-%d", ch, i)
			}
			assert.Equal(t, want, snd.delivered[ch], "channel %s in order, each once", ch)
		}
	})
}
