package watch_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/watch"
)

func TestStormPostsOneAlert(t *testing.T) {
	r := newRig(t)
	w := r.watcher(t, r.st)

	// 37 NDRs 5.5.4 across 12 domains within 4 minutes, among ordinary mail and a
	// few 5.1.1 NDRs that stay under the threshold.
	r.clock.Advance(4 * time.Minute)
	r.src.Deliver(storm(t, "s", 37, 12, t0, 6*time.Second)...)
	r.src.Deliver(ordinary("o1", t0.Add(time.Minute)), ordinary("o2", t0.Add(2*time.Minute)))
	for i := range 5 {
		r.src.Deliver(ndr511(t, fmt.Sprintf("u%d", i), fmt.Sprintf("nobody%d@fabrikam.com", i), t0.Add(time.Duration(i)*time.Second)))
	}
	res := r.poll(t, w)
	assert.Equal(t, watch.Result{Seen: 44, New: 44, NDRs: 42, Codes: map[string]int{"5.5.4": 37, "5.1.1": 5},
		Lag: 4 * time.Minute, Alerts: res.Alerts}, res, "the oldest new message arrived 4 minutes before the round")
	require.Len(t, res.Alerts, 1)

	alerts := r.th.alerts()
	require.Len(t, alerts, 1, "exactly one alert")
	m := alerts[0]
	assert.Equal(t, alertChannel, m.Channel)
	assert.True(t, m.TopLevel)
	assert.Empty(t, m.RunID)
	v := m.Alert
	assert.Equal(t, "NDR 5.5.4 spike: 37 in 5 min across 12 domains", v.Headline())
	assert.Equal(t, res.Alerts[0].ID, v.AlertID)
	assert.Equal(t, "5.5.4", v.Button, "the button starts the playbook for the code")
	assert.Equal(t, "ndr-5.5.4", v.Playbook)
	assert.Equal(t, "postmaster@contoso.com", v.Mailbox)
	assert.Contains(t, v.Sample, "550 5.5.4 Service Unavailable")
	require.Len(t, v.TopDomains, 5)
	assert.Equal(t, "d00.example", v.TopDomains[0].Domain)
	assert.Equal(t, 4, v.TopDomains[0].Messages, "37 over 12 domains: d00 has 4")

	stored, err := r.st.GetWatchAlert(context.Background(), v.AlertID)
	require.NoError(t, err)
	assert.False(t, stored.PostedAt.IsZero(), "the post is recorded")

	// The storm goes on: more NDRs, more polls, no second alert.
	for i := range 6 {
		r.clock.Advance(30 * time.Second)
		r.src.Deliver(storm(t, fmt.Sprintf("more%d", i), 10, 12, r.clock.Now().Add(-10*time.Second), time.Second)...)
		assert.Empty(t, r.poll(t, w).Alerts)
	}
	assert.Len(t, r.th.alerts(), 1)
}

func TestStormCrossesTheThresholdGradually(t *testing.T) {
	r := newRig(t)
	w := r.watcher(t, r.st)
	posted := -1
	for i := range 10 {
		r.clock.Advance(30 * time.Second)
		r.src.Deliver(storm(t, fmt.Sprintf("b%d", i), 4, 3, r.clock.Now().Add(-20*time.Second), time.Second)...)
		res := r.poll(t, w)
		if len(res.Alerts) > 0 {
			require.Equal(t, -1, posted, "a second alert at poll %d", i)
			posted = i
		}
	}
	require.Equal(t, 4, posted, "20 NDRs after the fifth poll of 4")
	alerts := r.th.alerts()
	require.Len(t, alerts, 1)
	assert.Equal(t, 20, alerts[0].Alert.Messages)
	assert.Equal(t, 3, alerts[0].Alert.Domains)
}

func TestBelowThresholdNoAlert(t *testing.T) {
	r := newRig(t)
	w := r.watcher(t, r.st)
	r.clock.Advance(time.Minute)
	r.src.Deliver(storm(t, "s", 19, 5, t0, time.Second)...)
	r.poll(t, w)
	assert.Empty(t, r.th.alerts())
	// NDRs older than the window do not count: 19 old + 19 new is no spike.
	r.clock.Advance(10 * time.Minute)
	r.src.Deliver(storm(t, "t", 19, 5, r.clock.Now().Add(-time.Minute), time.Second)...)
	r.poll(t, w)
	assert.Empty(t, r.th.alerts())
	assert.Equal(t, 19, r.count(t, "5.5.4"))
}

func TestMessageSeenTwiceCountsOnce(t *testing.T) {
	r := newRig(t)
	w := r.watcher(t, r.st, func(o *watch.Options) { o.Threshold = 4 })
	r.clock.Advance(time.Minute)
	a, b := ndr554(t, "m-a", "x@fabrikam.com", t0), ndr554(t, "m-b", "y@northwind.example", t0.Add(time.Second))
	r.src.Deliver(a, b, a) // twice in one round
	res := r.poll(t, w)
	assert.Equal(t, 3, res.Seen)
	assert.Equal(t, 2, res.New)
	// Read in Outlook, moved and moved back: delta reports both again.
	r.src.Deliver(b, a)
	res = r.poll(t, w)
	assert.Equal(t, 2, res.Seen)
	assert.Zero(t, res.New)
	assert.Equal(t, 2, r.count(t, "5.5.4"))
	assert.Empty(t, r.th.alerts(), "2 NDRs seen 5 times are not 4")
}

func TestCooldown(t *testing.T) {
	r := newRig(t)
	w := r.watcher(t, r.st)
	r.clock.Advance(time.Minute)
	r.src.Deliver(storm(t, "s1", 25, 4, t0, time.Second)...)
	require.Len(t, r.poll(t, w).Alerts, 1)

	// The storm ends and another starts 20 minutes later: inside the cooldown.
	r.clock.Advance(20 * time.Minute)
	r.src.Deliver(storm(t, "s2", 30, 4, r.clock.Now().Add(-time.Minute), time.Second)...)
	assert.Empty(t, r.poll(t, w).Alerts, "cooldown holds")
	// Another code is another storm.
	for i := range 20 {
		r.src.Deliver(ndr511(t, fmt.Sprintf("u%d", i), fmt.Sprintf("gone%d@fabrikam.com", i), r.clock.Now().Add(-time.Minute)))
	}
	alerts := r.poll(t, w).Alerts
	require.Len(t, alerts, 1)
	assert.Equal(t, "5.1.1", alerts[0].Code)

	// 31 minutes after the first alert, a storm of 5.5.4 alerts again.
	r.clock.Advance(11 * time.Minute)
	r.src.Deliver(storm(t, "s3", 21, 4, r.clock.Now().Add(-time.Minute), time.Second)...)
	alerts = r.poll(t, w).Alerts
	require.Len(t, alerts, 1)
	assert.Equal(t, "5.5.4", alerts[0].Code)
	assert.Len(t, r.th.alerts(), 3)
}

// failingCursor fails SetWatchCursor n times: a crash after the messages were
// recorded but before the cursor moved.
type failingCursor struct {
	store.WatchStore
	n int
}

func (f *failingCursor) SetWatchCursor(ctx context.Context, watch, cursor string) error {
	if f.n > 0 {
		f.n--
		return errors.New("killed")
	}
	return f.WatchStore.SetWatchCursor(ctx, watch, cursor)
}

// failingRecord fails RecordWatchMessages n times: a crash before the messages of a
// round are stored.
type failingRecord struct {
	store.WatchStore
	n int
}

func (f *failingRecord) RecordWatchMessages(ctx context.Context, watch string, msgs []store.WatchMessage) ([]store.WatchMessage, error) {
	if f.n > 0 {
		f.n--
		return nil, errors.New("killed")
	}
	return f.WatchStore.RecordWatchMessages(ctx, watch, msgs)
}

func TestCrashBeforeRecordingMissesNothing(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.clock.Advance(time.Minute)
	r.src.Deliver(storm(t, "s", 25, 5, t0, time.Second)...)
	_, err := r.watcher(t, &failingRecord{WatchStore: r.st, n: 1}).Poll(ctx)
	require.Error(t, err)
	cur, err := r.st.WatchCursor(ctx, watchKey)
	require.NoError(t, err)
	assert.Empty(t, cur, "the cursor did not move past messages that were not stored")

	res := r.poll(t, r.watcher(t, r.st))
	assert.Equal(t, 25, res.New, "the next process reads them again")
	require.Len(t, res.Alerts, 1)
	assert.Equal(t, 25, r.count(t, "5.5.4"))
}

func TestRestartMidStorm(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	total := storm(t, "s", 36, 9, t0, 5*time.Second) // 36 NDRs over 3 minutes
	r.clock.Advance(3 * time.Minute)

	// The first process records 12 and its cursor, then 6 more, and dies before
	// storing the cursor that covers them.
	first := r.watcher(t, r.st)
	r.src.Deliver(total[:12]...)
	r.poll(t, first)
	r.src.Deliver(total[12:18]...)
	_, err := r.watcher(t, &failingCursor{WatchStore: r.st, n: 1}).Poll(ctx)
	require.Error(t, err)
	require.NoError(t, r.st.Close())

	// A new process on the same database: the delta round replays the 6 from the
	// old cursor, more arrive, the 20th NDR crosses the threshold.
	st2 := openStore(t, r.path, r.clock.Now)
	second := r.watcher(t, st2)
	r.src.Deliver(total[18:30]...)
	res, err := second.Poll(ctx)
	require.NoError(t, err)
	assert.Equal(t, 18, res.Seen, "6 replayed + 12 new")
	assert.Equal(t, 12, res.New, "the replayed 6 are not counted again")
	require.Len(t, res.Alerts, 1)
	assert.Equal(t, 30, res.Alerts[0].Messages, "none missed, none twice")

	// And again: the third process sees the rest, keeps the count, posts no second alert.
	require.NoError(t, st2.Close())
	st3 := openStore(t, r.path, r.clock.Now)
	third := r.watcher(t, st3)
	r.src.Deliver(total[30:]...)
	res, err = third.Poll(ctx)
	require.NoError(t, err)
	assert.Equal(t, 6, res.New)
	assert.Empty(t, res.Alerts)
	counts, err := st3.NDRCounts(ctx, watchKey, t0.Add(-time.Minute), r.clock.Now().Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, counts, 1)
	assert.Equal(t, 36, counts[0].Messages)
	assert.Equal(t, 9, counts[0].Domains)
	assert.Len(t, r.th.alerts(), 1)
}

func TestAlertRecordedButNotPostedIsPostedOnRestart(t *testing.T) {
	r := newRig(t)
	r.clock.Advance(time.Minute)
	r.th.fail = 1 // the process dies between recording the alert and storing its post
	w := r.watcher(t, r.st)
	r.src.Deliver(storm(t, "s", 25, 3, t0, time.Second)...)
	_, err := w.Poll(context.Background())
	require.Error(t, err)
	assert.Empty(t, r.th.alerts())

	again := r.watcher(t, r.st)
	res := r.poll(t, again)
	assert.Empty(t, res.Alerts, "no new alert: the cooldown holds")
	require.Len(t, r.th.alerts(), 1, "the recorded alert is posted")
	// Yet another start posts nothing more.
	r.poll(t, r.watcher(t, r.st))
	assert.Len(t, r.th.alerts(), 1)
}

func TestPollFailureKeepsTheCursor(t *testing.T) {
	r := newRig(t)
	w := r.watcher(t, r.st)
	r.src.Deliver(storm(t, "s", 3, 1, t0, time.Second)...)
	r.poll(t, w)
	cur, err := r.st.WatchCursor(context.Background(), watchKey)
	require.NoError(t, err)
	assert.Equal(t, "pos:3", cur)
	r.src.fail = 1
	_, err = w.Poll(context.Background())
	require.Error(t, err)
	cur2, err := r.st.WatchCursor(context.Background(), watchKey)
	require.NoError(t, err)
	assert.Equal(t, cur, cur2)
}

func TestPartialRoundKeepsItsProgress(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	msgs := storm(t, "s", 4, 2, t0, time.Second)
	half := watch.SourceFunc(func(context.Context, string) ([]watch.Message, string, error) {
		return msgs[:2], "page:2", errors.New("503 on page 2")
	})
	w := r.watcher(t, r.st, func(o *watch.Options) { o.Source = half })
	res, err := w.Poll(ctx)
	require.ErrorContains(t, err, "kept 2 messages")
	assert.Equal(t, 2, res.New)
	cur, err := r.st.WatchCursor(ctx, watchKey)
	require.NoError(t, err)
	assert.Equal(t, "page:2", cur, "the next round continues after the pages read")
}

func TestRunPollsAndStops(t *testing.T) {
	r := newRig(t)
	w := r.watcher(t, r.st, func(o *watch.Options) { o.Interval = 10 * time.Millisecond; o.Now = time.Now })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	r.src.Deliver(storm(t, "s", 20, 2, time.Now(), time.Millisecond)...)
	w.Poke()
	require.Eventually(t, func() bool { return len(r.th.alerts()) == 1 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestNewChecksOptions(t *testing.T) {
	_, err := watch.New(watch.Options{})
	assert.Error(t, err)
	_, err = watch.New(watch.Options{Key: "k", Source: &mailbox{}, Store: newRig(t).st, Thread: &recThread{}})
	assert.ErrorContains(t, err, "channel")
}

// Run tells every round's outcome to Polled (the metrics), failures included:
// a round that recorded NDRs and then failed still counted them, and the next
// round does not count them again.
func TestRunTellsEachRound(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	codes := map[string]int{}
	var ok, failed int
	w := r.watcher(t, &failingCursor{WatchStore: r.st, n: 1}, func(o *watch.Options) {
		o.Interval = 10 * time.Millisecond
		o.MaxBackoff = 10 * time.Millisecond
		o.Polled = func(res watch.Result, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
			} else {
				ok++
			}
			for c, n := range res.Codes {
				codes[c] += n
			}
		}
	})
	r.src.Deliver(storm(t, "s", 3, 2, t0, time.Second)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return failed >= 1 && ok >= 2
	}, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, map[string]int{"5.5.4": 3}, codes)
}
