package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Sink keeps checkpoints where the database's writer cannot rewrite them.
type Sink interface {
	WriteCheckpoint(ctx context.Context, c Checkpoint) error
}

// SinkFunc adapts a function (e.g. a chat post) to a Sink.
type SinkFunc func(ctx context.Context, c Checkpoint) error

// WriteCheckpoint calls f.
func (f SinkFunc) WriteCheckpoint(ctx context.Context, c Checkpoint) error { return f(ctx, c) }

// FileSink appends one line per checkpoint to a file, synced before it returns.
// Its protection is the file's: mark it append-only (chattr +a) or ship it off
// the host — the point is that the database's writer cannot reach it.
type FileSink struct{ Path string }

// WriteCheckpoint appends c's line and syncs it.
func (s FileSink) WriteCheckpoint(_ context.Context, c Checkpoint) error {
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return fmt.Errorf("checkpoint file %s: %w", s.Path, err)
	}
	f, err := os.OpenFile(s.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("checkpoint file %s: %w", s.Path, err)
	}
	_, werr := f.WriteString(c.String() + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("checkpoint file %s: %w", s.Path, err)
	}
	return nil
}

// Checkpointer writes a signed checkpoint of the head to every sink: every
// Interval while Run runs, when nudged (after a relief), and once more when Run
// ends. A head that has not moved since the last checkpoint is not written again.
type Checkpointer struct {
	heads    HeadSource
	key      []byte
	sinks    map[string]Sink
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time
	log      *slog.Logger
	nudge    chan struct{}

	mu   sync.Mutex // one write at a time; guards last
	last int64      // the head sequence number last written to every sink
}

// CheckpointerOptions tune a Checkpointer; zero values take defaults.
type CheckpointerOptions struct {
	Interval time.Duration // default 15 minutes
	Timeout  time.Duration // per sink write; default 15 s
	Now      func() time.Time
	Log      *slog.Logger
}

// NewCheckpointer signs heads read from heads with key and writes them to sinks
// (named for the log).
func NewCheckpointer(heads HeadSource, key []byte, sinks map[string]Sink, o CheckpointerOptions) (*Checkpointer, error) {
	if len(key) == 0 {
		return nil, errors.New("audit checkpoints are signed with the audit key: configure store.audit_key_file")
	}
	if len(sinks) == 0 {
		return nil, errors.New("audit checkpoints: no sink configured")
	}
	c := &Checkpointer{heads: heads, key: key, sinks: sinks, interval: o.Interval, timeout: o.Timeout,
		now: o.Now, log: o.Log, nudge: make(chan struct{}, 1), last: -1}
	if c.interval <= 0 {
		c.interval = 15 * time.Minute
	}
	if c.timeout <= 0 {
		c.timeout = 15 * time.Second
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Nudge asks for a checkpoint soon (after a relief). It never blocks, and a nil
// Checkpointer (none configured) ignores it.
func (c *Checkpointer) Nudge() {
	if c == nil {
		return
	}
	select {
	case c.nudge <- struct{}{}:
	default:
	}
}

// Run writes checkpoints until ctx ends, then writes a last one. Sink failures
// are logged and retried at the next tick; they do not stop the bot.
func (c *Checkpointer) Run(ctx context.Context) error {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	c.write(ctx)
	for {
		select {
		case <-ctx.Done():
			c.write(context.WithoutCancel(ctx))
			return nil
		case <-t.C:
		case <-c.nudge:
		}
		c.write(ctx)
	}
}

// Once writes one checkpoint now (the terminal, after a relief) and returns the
// first failure.
func (c *Checkpointer) Once(ctx context.Context) error { return c.write(ctx) }

func (c *Checkpointer) write(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	h, err := c.heads.AuditHead(ctx)
	if err != nil {
		c.log.Error("audit checkpoint: reading the head", "err", err)
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	if h.Seq == c.last {
		return nil
	}
	cp, err := NewCheckpoint(h, c.now(), c.key)
	if err != nil {
		return err
	}
	var errs []error
	for name, s := range c.sinks {
		if err := s.WriteCheckpoint(ctx, cp); err != nil {
			c.log.Error("audit checkpoint not written", "sink", name, "seq", cp.Seq, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("audit checkpoint seq %d: %w", cp.Seq, errors.Join(errs...))
	}
	c.last = h.Seq
	c.log.Info("audit checkpoint written", "seq", cp.Seq, "hash", cp.Hash)
	return nil
}
