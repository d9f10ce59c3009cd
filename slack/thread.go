package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/outbox"
)

// Outbox is the part of the store a Thread writes to.
type Outbox interface {
	EnqueuePost(ctx context.Context, p store.Post) (store.Post, error)
}

// Thread implements commands.Thread on top of the store's outbox: every message is
// stored before it is sent, so a Slack outage or a 429 storm loses nothing. Edits
// of one message are coalesced to at most one per interval — a diagnosis's live
// checklist costs a handful of calls, not one per step event.
type Thread struct {
	outbox   Outbox
	notify   func()
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu      sync.Mutex
	msgs    map[string]*threadMsg
	pruneAt int // len(msgs) at which idle messages are forgotten next
	wg      sync.WaitGroup
	closed  bool
}

// minPrune is the fewest messages remembered before any is forgotten.
const minPrune = 256

type threadMsg struct {
	posted   bool
	last     time.Time
	payload  []byte
	pending  *commands.Message
	timer    *time.Timer
	postBase store.Post
}

// ThreadOptions tune a Thread.
type ThreadOptions struct {
	// Notify wakes the outbox dispatcher after a post is stored.
	Notify func()
	// Interval between two edits of one message (default 1s).
	Interval time.Duration
	Now      func() time.Time
	Log      *slog.Logger
}

// NewThread returns a Thread writing to ob.
func NewThread(ob Outbox, o ThreadOptions) *Thread {
	t := &Thread{outbox: ob, notify: o.Notify, interval: o.Interval, now: o.Now, log: o.Log, msgs: map[string]*threadMsg{}}
	if t.notify == nil {
		t.notify = func() {}
	}
	if t.interval <= 0 {
		t.interval = time.Second
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	return t
}

var _ commands.Thread = (*Thread)(nil)

// postKey is a message's outbox key: one per run, message and channel.
func postKey(m commands.Message) string {
	k := m.RunID + "/" + m.Key
	if m.TopLevel {
		k += "@" + m.Channel
	}
	return k
}

// Publish stores a new message at once, and an edit of an existing one at most
// once per interval (the latest version wins).
func (t *Thread) Publish(ctx context.Context, m commands.Message) error {
	payload, err := json.Marshal(m)
	if err != nil {
		return err
	}
	key := postKey(m)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return errors.New("slack thread: closed")
	}
	tm, ok := t.msgs[key]
	if !ok {
		t.pruneLocked()
		tm = &threadMsg{}
		t.msgs[key] = tm
	}
	if !tm.posted {
		tm.posted, tm.last, tm.payload = true, t.now(), payload
		t.mu.Unlock()
		return t.post(ctx, m, key, payload)
	}
	if bytes.Equal(payload, tm.payload) {
		t.mu.Unlock()
		return nil
	}
	cp := m
	tm.pending = &cp
	if tm.timer == nil {
		wait := max(0, tm.last.Add(t.interval).Sub(t.now()))
		t.wg.Add(1)
		tm.timer = time.AfterFunc(wait, func() {
			defer t.wg.Done()
			t.flush(key)
		})
	}
	t.mu.Unlock()
	return nil
}

// post stores the first version of a message. A message another process posted
// already (a restored run) is edited instead.
func (t *Thread) post(ctx context.Context, m commands.Message, key string, payload []byte) error {
	p := store.Post{RunID: m.RunID, Channel: m.Channel, Key: key, Kind: store.PostNew, Payload: payload}
	if m.Key != commands.KeyRoot && !m.TopLevel {
		p.Ref = m.RunID + "/" + commands.KeyRoot
	}
	stored, err := t.outbox.EnqueuePost(ctx, p)
	if err != nil {
		return fmt.Errorf("slack thread: storing %s: %w", key, err)
	}
	if !bytes.Equal(stored.Payload, payload) && !jsonEqual(stored.Payload, payload) {
		if err := t.update(ctx, m, key, payload); err != nil {
			return err
		}
	}
	t.notify()
	return nil
}

func (t *Thread) update(ctx context.Context, m commands.Message, key string, payload []byte) error {
	p := store.Post{RunID: m.RunID, Channel: m.Channel, Kind: store.PostUpdate, Ref: key, Payload: payload,
		Key: fmt.Sprintf("%s#%d", key, t.now().UnixNano())}
	if _, err := t.outbox.EnqueuePost(ctx, p); err != nil {
		return fmt.Errorf("slack thread: storing an edit of %s: %w", key, err)
	}
	t.notify()
	return nil
}

// pruneLocked forgets messages with no edit pending whose last version is
// older than the interval: memory holds the messages being edited now, not
// every message of every run since the start. A forgotten message edited
// later takes the path of a restored run's (post finds it in the store and
// edits it), and its interval has passed, so the pace of edits is kept.
// Amortised: it runs when the map has doubled since the last time.
func (t *Thread) pruneLocked() {
	if len(t.msgs) < max(t.pruneAt, minPrune) {
		return
	}
	idle := t.now().Add(-t.interval)
	for key, tm := range t.msgs {
		if tm.timer == nil && tm.pending == nil && tm.last.Before(idle) {
			delete(t.msgs, key)
		}
	}
	t.pruneAt = 2 * len(t.msgs)
}

// Remembered is how many messages the thread holds in memory.
func (t *Thread) Remembered() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.msgs)
}

func (t *Thread) flush(key string) {
	t.mu.Lock()
	tm := t.msgs[key]
	m := tm.pending
	tm.pending, tm.timer = nil, nil
	if m == nil {
		t.mu.Unlock()
		return
	}
	payload, _ := json.Marshal(m)
	tm.last, tm.payload = t.now(), payload
	t.mu.Unlock()
	// Detached from any request: the edit must be stored even if the click that
	// caused it has long been answered.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := t.update(ctx, *m, key, payload); err != nil {
		t.log.Error("slack thread: edit lost", "key", key, "err", err)
	}
}

// Close stores every pending edit now and waits for in-flight ones.
func (t *Thread) Close() {
	t.mu.Lock()
	t.closed = true
	var due []string
	for key, tm := range t.msgs {
		if tm.timer != nil && tm.timer.Stop() {
			t.wg.Done()
			due = append(due, key)
		}
	}
	t.mu.Unlock()
	for _, key := range due {
		t.flush(key)
	}
	t.wg.Wait()
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

// SenderStore is what a Sender needs of the store.
type SenderStore interface {
	Posts(ctx context.Context, runID string) ([]store.Post, error)
	SetRunChat(ctx context.Context, id string, chat store.ChatRef) error
	EnqueuePost(ctx context.Context, p store.Post) (store.Post, error)
}

// Sender delivers outbox posts to Slack: it renders at send time (so "expires in
// N min" is current), posts into the run's thread or edits in place, and maps
// Slack's answers onto the outbox's retry rules.
type Sender struct {
	store  SenderStore
	poster *Poster
	render Renderer
	log    *slog.Logger
}

// NewSender returns a Sender.
func NewSender(st SenderStore, p *Poster, r Renderer, log *slog.Logger) *Sender {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{store: st, poster: p, render: r, log: log}
}

var _ outbox.Sender = (*Sender)(nil)

// Send implements outbox.Sender.
func (s *Sender) Send(ctx context.Context, p store.Post) (string, error) {
	var m commands.Message
	if err := json.Unmarshal(p.Payload, &m); err != nil {
		return "", outbox.Permanent(fmt.Errorf("post %s: %w", p.Key, err))
	}
	if m.Escalation != nil && m.TopLevel && m.Escalation.ThreadLink == "" {
		m.Escalation.ThreadLink = s.threadLink(ctx, m.RunID)
	}
	r, err := s.render.Render(m)
	if err != nil {
		return "", outbox.Permanent(err)
	}
	var threadTS, existingTS string
	switch {
	case p.Kind == store.PostUpdate:
		if p.RefExternal == "" {
			return "", fmt.Errorf("post %s: the message to edit is not delivered yet", p.Key)
		}
		existingTS = p.RefExternal
	case p.Ref != "":
		if p.RefExternal == "" {
			return "", fmt.Errorf("post %s: the thread's root is not delivered yet", p.Key)
		}
		threadTS = p.RefExternal
	}
	ts, err := s.poster.Deliver(ctx, p.Channel, threadTS, m.Key, existingTS, r)
	if err != nil && ts != "" && p.Kind == store.PostNew {
		// Posted, but an attachment failed: the message must not be posted twice,
		// so retry the attachment as an edit of it.
		s.log.Warn("slack: attachment failed; retrying as an edit", "key", p.Key, "err", err)
		retry := store.Post{RunID: p.RunID, Channel: p.Channel, Kind: store.PostUpdate, Ref: p.Key, Payload: p.Payload,
			Key: fmt.Sprintf("%s#files-%d", p.Key, time.Now().UnixNano())}
		if _, qerr := s.store.EnqueuePost(ctx, retry); qerr != nil {
			s.log.Error("slack: attachment retry lost", "key", p.Key, "err", qerr)
		}
		err = nil
	}
	if err != nil {
		var ra RetryAfterError
		switch {
		case errors.As(err, &ra):
			return "", outbox.RetryAfter(err, ra.RetryAfter())
		case Permanent(err):
			return "", outbox.Permanent(err)
		}
		return "", err
	}
	if p.Kind == store.PostUpdate {
		ts = existingTS
	}
	if m.Key == commands.KeyRoot && p.Kind == store.PostNew {
		if err := s.store.SetRunChat(ctx, m.RunID, store.ChatRef{Channel: p.Channel, ThreadTS: ts}); err != nil {
			s.log.Error("slack: recording the thread", "run", m.RunID, "err", err)
		}
	}
	return ts, nil
}

// threadLink is a permalink to the run's thread, for the escalation channel.
func (s *Sender) threadLink(ctx context.Context, runID string) string {
	posts, err := s.store.Posts(ctx, runID)
	if err != nil {
		return ""
	}
	for _, p := range posts {
		if p.Key == runID+"/"+commands.KeyRoot && p.ExternalRef != "" {
			link, err := s.poster.Permalink(ctx, p.Channel, p.ExternalRef)
			if err == nil {
				return link
			}
		}
	}
	return ""
}
