package audit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
)

type movingHead struct {
	mu sync.Mutex
	h  audit.Head
}

func (m *movingHead) AuditHead(context.Context) (audit.Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.h, nil
}

func (m *movingHead) advance(c []audit.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.h = audit.Head{Seq: int64(len(c)), Hash: c[len(c)-1].Hash}
}

func TestCheckpointerWritesEachNewHeadOnce(t *testing.T) {
	ctx := context.Background()
	c := chain(t, 6, cpKey)
	heads := &movingHead{}
	heads.advance(c[:3])
	path := filepath.Join(t.TempDir(), "audit", "checkpoints.log")
	failing := true
	flaky := audit.SinkFunc(func(context.Context, audit.Checkpoint) error {
		if failing {
			return errors.New("slack: channel_not_found")
		}
		return nil
	})
	cpr, err := audit.NewCheckpointer(heads, cpKey, map[string]audit.Sink{"file": audit.FileSink{Path: path}, "slack": flaky}, audit.CheckpointerOptions{})
	require.NoError(t, err)

	assert.ErrorContains(t, cpr.Once(ctx), "channel_not_found", "a failing sink is reported")
	failing = false
	require.NoError(t, cpr.Once(ctx), "and the same head is written again next time")
	require.NoError(t, cpr.Once(ctx), "an unmoved head is not written a third time")
	heads.advance(c)
	require.NoError(t, cpr.Once(ctx))

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	cps, err := audit.ReadCheckpoints(f)
	require.NoError(t, err)
	require.Len(t, cps, 3)
	assert.Equal(t, []int64{3, 3, 6}, []int64{cps[0].Seq, cps[1].Seq, cps[2].Seq})
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	rep, err := audit.Verify(ctx, mem(c), cpKey, cps...)
	require.NoError(t, err)
	assert.True(t, rep.OK, rep.String())
	assert.Equal(t, 3, rep.Checkpoints)

	_, err = audit.NewCheckpointer(heads, nil, map[string]audit.Sink{"file": audit.FileSink{Path: path}}, audit.CheckpointerOptions{})
	assert.ErrorContains(t, err, "audit key")
}

func TestCheckpointerRunNudgedAndAtEnd(t *testing.T) {
	c := chain(t, 4, cpKey)
	heads := &movingHead{}
	heads.advance(c[:1])
	lines := make(chan string, 8)
	sink := audit.SinkFunc(func(_ context.Context, cp audit.Checkpoint) error { lines <- cp.String(); return nil })
	cpr, err := audit.NewCheckpointer(heads, cpKey, map[string]audit.Sink{"chan": sink}, audit.CheckpointerOptions{Interval: time.Hour})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cpr.Run(ctx) }()

	assert.Contains(t, <-lines, "seq=1 ", "one at start")
	heads.advance(c[:2])
	cpr.Nudge()
	assert.Contains(t, <-lines, "seq=2 ", "one when nudged (after a relief)")
	heads.advance(c)
	cancel()
	require.NoError(t, <-done)
	last := <-lines
	assert.True(t, strings.Contains(last, "seq=4 "), "one at shutdown: %s", last)
}
