package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/slack"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

// The thread remembers the messages it is editing now, not every message since
// it started: after thousands of runs it holds a bounded number, and an edit of
// a message it forgot still reaches the store — as an edit of the stored post,
// with the latest text — while edits of a remembered message keep being
// coalesced.
func TestThreadForgetsIdleMessages(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ndrbot.db"), store.Options{})
	require.NoError(t, err)
	defer st.Close()
	var mu sync.Mutex
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	th := slack.NewThread(st, slack.ThreadOptions{Interval: time.Second, Now: clock})
	defer th.Close()

	root := func(run, title string) commands.Message {
		return commands.Message{RunID: run, Channel: "C0INC", Key: commands.KeyRoot, Root: &commands.RunView{RunID: run, Title: title}}
	}
	const runs = 3000
	for i := range runs {
		require.NoError(t, th.Publish(ctx, root(fmt.Sprintf("run-%04d", i), "diagnosing")))
		advance(10 * time.Millisecond)
	}
	assert.Less(t, th.Remembered(), 1000, "messages of runs long done are forgotten")

	// The first run's root, forgotten long ago, is edited: the store gets an
	// edit of the stored post with the new text.
	require.NoError(t, th.Publish(ctx, root("run-0000", "finished")))
	posts, err := st.Posts(ctx, "run-0000")
	require.NoError(t, err)
	require.Len(t, posts, 2)
	assert.Equal(t, store.PostUpdate, posts[1].Kind)
	assert.Equal(t, "run-0000/"+commands.KeyRoot, posts[1].Ref)
	var m commands.Message
	require.NoError(t, json.Unmarshal(posts[1].Payload, &m))
	assert.Equal(t, "finished", m.Root.Title)

	// A remembered message edited twice within the interval: one edit, the
	// latest, once the interval has passed.
	last := fmt.Sprintf("run-%04d", runs-1)
	require.NoError(t, th.Publish(ctx, root(last, "step 1")))
	require.NoError(t, th.Publish(ctx, root(last, "step 2")))
	advance(2 * time.Second)
	require.Eventually(t, func() bool {
		posts, err := st.Posts(ctx, last)
		return err == nil && len(posts) == 2
	}, 5*time.Second, 20*time.Millisecond)
	posts, err = st.Posts(ctx, last)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(posts[1].Payload, &m))
	assert.Equal(t, "step 2", m.Root.Title)
}
