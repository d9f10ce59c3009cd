package keeper_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/internal/keeper"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

// The keepers here run against real SQLite stores on one file, each replica
// with its own store (its own connections), on the wall clock with short ttls:
// what they assert is an order of events (who ran, who stopped first), never a
// duration.

const ttl = 300 * time.Millisecond

func dbPath(t *testing.T) string { return filepath.Join(t.TempDir(), "ndrbot.db") }

func openStore(t *testing.T, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// flaky is a real store whose lease calls fail while down is set: a replica that
// lost its database connection.
type flaky struct {
	store.Store
	down atomic.Bool
}

var errDown = errors.New("dial tcp 10.0.0.5:5432: connect: connection refused")

func (f *flaky) TryLease(ctx context.Context, name, owner string, ttl time.Duration, now time.Time) (store.Lease, error) {
	if f.down.Load() {
		return store.Lease{}, errDown
	}
	return f.Store.TryLease(ctx, name, owner, ttl, now)
}

func (f *flaky) ReleaseLease(ctx context.Context, name, owner string) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.ReleaseLease(ctx, name, owner)
}

// work watches over every replica's run of one work: how many run at once (never
// more than one), and what happened in which order.
type work struct {
	mu      sync.Mutex
	running string // the replica running it now
	overlap []string
	events  []string
}

func (w *work) log(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, fmt.Sprintf(format, args...))
}

func (w *work) Events() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.events...)
}

func (w *work) Running() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running
}

// run is the work of replica name: it runs until its context ends.
func (w *work) run(name string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		w.mu.Lock()
		if w.running != "" {
			w.overlap = append(w.overlap, w.running+" and "+name)
		}
		w.running = name
		w.events = append(w.events, name+" started")
		w.mu.Unlock()
		<-ctx.Done()
		w.mu.Lock()
		w.running = ""
		w.events = append(w.events, name+" stopped")
		w.mu.Unlock()
		return nil
	}
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type replica struct {
	name   string
	k      *keeper.Keeper
	cancel context.CancelFunc
	done   chan error
	logs   *logBuffer

	mu      sync.Mutex
	signals []string
	changes []bool
}

func (r *replica) Signals() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.signals...)
}

func (r *replica) Changes() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.changes...)
}

// start runs a keeper for replica name with w's work (or fn, when set).
func start(t *testing.T, st keeper.Leaser, name string, w *work, fn func(context.Context) error) *replica {
	t.Helper()
	r := &replica{name: name, done: make(chan error, 1), logs: &logBuffer{}}
	k, err := keeper.New(keeper.Options{Name: "ndr-watch", Owner: name, Store: st, TTL: ttl,
		OnSignal: func(s string) { r.mu.Lock(); r.signals = append(r.signals, s); r.mu.Unlock() },
		OnChange: func(held bool) { r.mu.Lock(); r.changes = append(r.changes, held); r.mu.Unlock() },
		Log:      slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	r.k = k
	if fn == nil {
		fn = w.run(name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- k.Run(ctx, fn) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends the replica gracefully and returns Run's result.
func (r *replica) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("keeper %s did not stop", r.name)
		return nil
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, what)
}

// Three replicas: one runs the work; stopping it hands the work to another, and
// so on; at no moment do two run it.
func TestOneReplicaRunsTheWorkAndHandsItOver(t *testing.T) {
	path := dbPath(t)
	w := &work{}
	rs := map[string]*replica{}
	for _, name := range []string{"a", "b", "c"} {
		rs[name] = start(t, openStore(t, path), name, w, nil)
	}
	var order []string
	for range 3 {
		eventually(t, "a replica runs the work", func() bool { return w.Running() != "" })
		// A few renewals pass: the holder keeps the work, nobody else starts it.
		time.Sleep(2 * ttl)
		holder := w.Running()
		require.NotEmpty(t, holder)
		assert.True(t, rs[holder].k.Held())
		for name, r := range rs {
			if name != holder {
				assert.False(t, r.k.Held(), name)
			}
		}
		order = append(order, holder)
		require.NoError(t, rs[holder].stop(t))
		assert.Contains(t, rs[holder].logs.String(), "lease acquired")
		assert.Contains(t, rs[holder].logs.String(), "stopped; lease released")
		assert.Equal(t, []bool{true, false}, rs[holder].Changes())
		delete(rs, holder)
	}
	assert.ElementsMatch(t, []string{"a", "b", "c"}, order, "each replica ran it in turn")
	w.mu.Lock()
	defer w.mu.Unlock()
	assert.Empty(t, w.overlap, "two replicas ran the work at once")
	require.Len(t, w.events, 6)
	for i := 0; i < 6; i += 2 {
		assert.Equal(t, []string{order[i/2] + " started", order[i/2] + " stopped"}, w.events[i:i+2], "one stops before the next starts")
	}
}

// A graceful stop releases the lease: another process can take it at once,
// without waiting for it to expire.
func TestGracefulStopReleasesTheLease(t *testing.T) {
	st := openStore(t, dbPath(t))
	w := &work{}
	a := start(t, st, "a", w, nil)
	eventually(t, "a runs the work", a.k.Held)
	require.NoError(t, a.stop(t))
	assert.Equal(t, []string{"a started", "a stopped"}, w.Events())
	l, err := st.TryLease(context.Background(), "ndr-watch", "b", time.Hour, time.Now())
	require.NoError(t, err)
	assert.True(t, l.Held, "released: free long before a's last renewal would have expired")
	assert.Empty(t, l.Previous)
}

// A holder that died (it stopped renewing, without releasing) is taken over once
// its lease expires, and not before.
func TestDeadHolderIsTakenOverWhenItsLeaseExpires(t *testing.T) {
	st := openStore(t, dbPath(t))
	dead, err := st.TryLease(context.Background(), "ndr-watch", "dead", ttl, time.Now())
	require.NoError(t, err)
	require.True(t, dead.Held)
	// Left for the holder while it is dead: for whoever takes over.
	require.NoError(t, st.SignalLease(context.Background(), "ndr-watch", "poke"))

	var startedAt atomic.Value
	b := start(t, st, "b", nil, func(ctx context.Context) error {
		startedAt.Store(time.Now())
		<-ctx.Done()
		return nil
	})
	eventually(t, "b takes over", b.k.Held)
	assert.False(t, startedAt.Load().(time.Time).Before(dead.Expires), "b started before the dead holder's lease expired")
	logs := b.logs.String()
	assert.Contains(t, logs, `msg="lease held by another process; standing by" component=keeper work=ndr-watch holder=dead`)
	assert.Contains(t, logs, `msg="lease acquired; running the work" component=keeper work=ndr-watch holder=b previous=dead`)
	assert.Equal(t, []string{"poke"}, b.Signals())
}

// A holder that cannot reach the store stops its work before its lease expires;
// another replica takes over after the expiry; the work never runs twice.
func TestHolderThatCannotRenewStopsBeforeTheLeaseExpires(t *testing.T) {
	path := dbPath(t)
	w := &work{}
	fa := &flaky{Store: openStore(t, path)}
	a := start(t, fa, "a", w, nil)
	eventually(t, "a runs the work", a.k.Held)
	b := start(t, openStore(t, path), "b", w, nil)
	time.Sleep(ttl / 2)
	require.False(t, b.k.Held())

	fa.down.Store(true)
	eventually(t, "b takes over", b.k.Held)
	eventually(t, "b runs the work", func() bool { return w.Running() == "b" })
	assert.Equal(t, []string{"a started", "a stopped", "b started"}, w.Events())
	assert.Empty(t, w.overlap)
	assert.False(t, a.k.Held())
	assert.Contains(t, a.logs.String(), "lease renewal failed; retrying")
	assert.Contains(t, a.logs.String(), "lease given up: renewals failed and it expires soon; the work stopped")

	// a's database comes back: it stands by, b keeps the work.
	fa.down.Store(false)
	time.Sleep(2 * ttl)
	assert.Equal(t, "b", w.Running())
	assert.Contains(t, a.logs.String(), "holder=b")
}

// A holder whose lease was taken (its clock lagged, or a renewal came too late)
// stops its work at its next renewal, when the store names the new holder.
func TestHolderWhoseLeaseWasTakenStops(t *testing.T) {
	st := openStore(t, dbPath(t))
	w := &work{}
	a := start(t, st, "a", w, nil)
	eventually(t, "a runs the work", a.k.Held)
	// A process whose clock runs a minute ahead sees a's lease expired.
	l, err := st.TryLease(context.Background(), "ndr-watch", "fast-clock", time.Hour, time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.True(t, l.Held)
	eventually(t, "a stops", func() bool { return !a.k.Held() && w.Running() == "" })
	// The work stops first; the line that says so follows it.
	eventually(t, "a logs the loss", func() bool {
		return strings.Contains(a.logs.String(), `msg="lease lost to another process; the work stopped" component=keeper work=ndr-watch holder=fast-clock`)
	})
	assert.Equal(t, []bool{true, false}, a.Changes())
}

// A work that fails while its lease is held ends Run with its error (serve stops
// on it), and the lease is released for another replica.
func TestFailingWorkEndsRunAndReleases(t *testing.T) {
	st := openStore(t, dbPath(t))
	boom := errors.New("graph: 401 Unauthorized")
	a := start(t, st, "a", nil, func(context.Context) error { return boom })
	select {
	case err := <-a.done:
		a.done <- err
		require.ErrorIs(t, err, boom)
		assert.Contains(t, err.Error(), "ndr-watch")
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	l, err := st.TryLease(context.Background(), "ndr-watch", "b", time.Hour, time.Now())
	require.NoError(t, err)
	assert.True(t, l.Held, "released")
}

// While the store cannot be reached nobody runs the work; once it answers, a
// replica acquires the lease.
func TestStoreDownAtStart(t *testing.T) {
	fs := &flaky{Store: openStore(t, dbPath(t))}
	fs.down.Store(true)
	w := &work{}
	a := start(t, fs, "a", w, nil)
	time.Sleep(ttl)
	assert.Empty(t, w.Events())
	assert.Contains(t, a.logs.String(), "lease: the store did not answer; retrying")
	fs.down.Store(false)
	eventually(t, "a runs the work", func() bool { return w.Running() == "a" })
}

// A signal given on a replica that does not hold the lease reaches the holder's
// work through the store; one given on the holder reaches its work at once.
func TestSignalsReachTheHolder(t *testing.T) {
	path := dbPath(t)
	w := &work{}
	a := start(t, openStore(t, path), "a", w, nil)
	eventually(t, "a runs the work", a.k.Held)
	b := start(t, openStore(t, path), "b", w, nil)

	for range 50 { // a notification storm on the wrong replica
		b.k.Signal("poke")
	}
	b.k.Signal("lifecycle subscriptionRemoved 7f105c7d-2dc5-4530-97cd-4e7ae6534c07")
	eventually(t, "a gets both signals", func() bool { return len(a.Signals()) >= 2 })
	got := a.Signals()
	assert.Contains(t, got, "poke")
	assert.Contains(t, got, "lifecycle subscriptionRemoved 7f105c7d-2dc5-4530-97cd-4e7ae6534c07")
	assert.Less(t, len(got), 50, "coalesced, not one per call")
	assert.Empty(t, b.Signals(), "the replica that does not hold the lease does not act on it")

	a.k.Signal("nudge")
	assert.Equal(t, "nudge", a.Signals()[len(a.Signals())-1], "on the holder: delivered before Signal returns")
}

func TestNewRefuses(t *testing.T) {
	st := openStore(t, dbPath(t))
	for _, c := range []struct {
		name string
		o    keeper.Options
		msg  string
	}{
		{"no name", keeper.Options{Owner: "a", Store: st}, "a name and an owner are required"},
		{"no owner", keeper.Options{Name: "x", Store: st}, "a name and an owner are required"},
		{"no store", keeper.Options{Name: "x", Owner: "a"}, "a store is required"},
		{"tiny ttl", keeper.Options{Name: "x", Owner: "a", Store: st, TTL: time.Millisecond}, "too short"},
	} {
		_, err := keeper.New(c.o)
		assert.ErrorContains(t, err, c.msg, c.name)
	}
}
