package watch_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
	"github.com/ndrbot/ndrbot/watch"
)

var (
	t0    = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	kinds = map[string]string{"exchange": "exchange", "jea": "jea", "eop": "probe", "net": "probe", "graph": "graph", "exo": "exo"}
)

const (
	alertChannel = "C0ESC"
	watchKey     = "postmaster@contoso.com/inbox"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// mailbox is a fake Source: a delta sync over an ordered change log. The cursor is
// the log position; a message changed again (read, moved) is appended again, as
// Graph's delta reports it again.
type mailbox struct {
	mu    sync.Mutex
	log   []watch.Message
	calls int
	// fail makes the next n Delta calls fail.
	fail int
}

func (m *mailbox) Deliver(msgs ...watch.Message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = append(m.log, msgs...)
}

func (m *mailbox) Delta(_ context.Context, cursor string) ([]watch.Message, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail > 0 {
		m.fail--
		return nil, "", errors.New("503 ServiceUnavailable")
	}
	pos := 0
	if cursor != "" {
		var err error
		if pos, err = strconv.Atoi(strings.TrimPrefix(cursor, "pos:")); err != nil {
			return nil, "", fmt.Errorf("bad cursor %q", cursor)
		}
	}
	out := append([]watch.Message(nil), m.log[pos:]...)
	return out, fmt.Sprintf("pos:%d", len(m.log)), nil
}

// recThread records published messages by channel/key, keeping every version.
type recThread struct {
	mu   sync.Mutex
	msgs map[string][]commands.Message
	keys []string
	// fail makes the next n Publish calls fail.
	fail int
}

func (r *recThread) Publish(_ context.Context, m commands.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("outbox unavailable")
	}
	if r.msgs == nil {
		r.msgs = map[string][]commands.Message{}
	}
	k := m.Channel + "/" + m.Key
	if _, ok := r.msgs[k]; !ok {
		r.keys = append(r.keys, k)
	}
	r.msgs[k] = append(r.msgs[k], m)
	return nil
}

// alerts returns the latest version of every alert message, in first-post order.
func (r *recThread) alerts() []commands.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []commands.Message
	for _, k := range r.keys {
		ms := r.msgs[k]
		if last := ms[len(ms)-1]; last.Alert != nil {
			out = append(out, last)
		}
	}
	return out
}

func (r *recThread) versions(key string) []commands.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]commands.Message(nil), r.msgs[key]...)
}

var (
	sampleMu sync.Mutex
	samples  = map[string]watch.Message{}
)

// sample reads testdata/ndr/NAME.txt (header lines, blank line, body).
func sample(t testing.TB, name string) watch.Message {
	t.Helper()
	sampleMu.Lock()
	defer sampleMu.Unlock()
	if m, ok := samples[name]; ok {
		return m
	}
	b, err := os.ReadFile(filepath.Join("testdata", "ndr", name+".txt"))
	require.NoError(t, err)
	head, body, ok := strings.Cut(string(b), "\n\n")
	require.True(t, ok)
	m := watch.Message{Body: body}
	for line := range strings.SplitSeq(head, "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "From":
			m.From = strings.TrimSpace(v)
		case "Subject":
			m.Subject = strings.TrimSpace(v)
		}
	}
	samples[name] = m
	return m
}

// ndr554 is an Exchange 2019 5.5.4 NDR for recipient, received at at.
func ndr554(t testing.TB, id, recipient string, at time.Time) watch.Message {
	m := sample(t, "ex2019-554")
	m.ID, m.ReceivedDateTime = id, at
	m.Body = strings.ReplaceAll(m.Body, "bob@fabrikam.com", recipient)
	return m
}

// ndr511 is an Exchange Online 5.1.1 NDR.
func ndr511(t testing.TB, id, recipient string, at time.Time) watch.Message {
	m := sample(t, "exo-511")
	m.ID, m.ReceivedDateTime = id, at
	m.Body = strings.ReplaceAll(m.Body, "ivan@fabrikam.com", recipient)
	return m
}

func ordinary(id string, at time.Time) watch.Message {
	return watch.Message{ID: id, ReceivedDateTime: at, From: "bob@contoso.com", Subject: "Mail issues",
		Body: "We keep getting 550 5.5.4 Service Unavailable since 9:40."}
}

// storm is n 5.5.4 NDRs spread over domains recipient domains, received from at on,
// one every step.
func storm(t testing.TB, prefix string, n, domains int, at time.Time, step time.Duration) []watch.Message {
	out := make([]watch.Message, n)
	for i := range out {
		out[i] = ndr554(t, fmt.Sprintf("%s-%03d", prefix, i), fmt.Sprintf("user%d@d%02d.example", i, i%domains), at.Add(time.Duration(i)*step))
	}
	return out
}

func openStore(t testing.TB, path string, now func() time.Time) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, store.Options{Now: now})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func catalog(t testing.TB) *playbooks.Catalog {
	t.Helper()
	cat, err := playbooks.Load("", kinds)
	require.NoError(t, err)
	return cat
}

type rig struct {
	src   *mailbox
	st    *sqlite.Store
	th    *recThread
	clock *clock
	cat   *playbooks.Catalog
	path  string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	c := newClock(t0)
	path := filepath.Join(t.TempDir(), "ndrbot.db")
	return &rig{src: &mailbox{}, st: openStore(t, path, c.Now), th: &recThread{}, clock: c, cat: catalog(t), path: path}
}

func (r *rig) watcher(t *testing.T, st store.WatchStore, mod ...func(*watch.Options)) *watch.Watcher {
	t.Helper()
	o := watch.Options{Key: watchKey, Mailbox: "postmaster@contoso.com", Source: r.src, Store: st, Thread: r.th,
		Channel: alertChannel, Playbooks: watch.CatalogPlaybooks(func() *playbooks.Catalog { return r.cat }),
		Threshold: 20, Window: 5 * time.Minute, Cooldown: 30 * time.Minute, Interval: time.Minute, Now: r.clock.Now}
	for _, f := range mod {
		f(&o)
	}
	w, err := watch.New(o)
	require.NoError(t, err)
	return w
}

func (r *rig) poll(t *testing.T, w *watch.Watcher) watch.Result {
	t.Helper()
	res, err := w.Poll(context.Background())
	require.NoError(t, err)
	return res
}

// count is the store's count of code NDRs in the window ending now.
func (r *rig) count(t *testing.T, code string) int {
	t.Helper()
	cs, err := r.st.NDRCounts(context.Background(), watchKey, r.clock.Now().Add(-5*time.Minute), r.clock.Now().Add(time.Minute))
	require.NoError(t, err)
	for _, c := range cs {
		if c.Code == code {
			return c.Messages
		}
	}
	return 0
}
