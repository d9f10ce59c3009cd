package audit_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
)

var cpKey = []byte("checkpoint-test-key-32-bytes!!!!")

func checkpointAt(t *testing.T, c []audit.Event, seq int64, key []byte) audit.Checkpoint {
	t.Helper()
	cp, err := audit.NewCheckpoint(audit.Head{Seq: seq, Hash: c[seq-1].Hash}, time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), key)
	require.NoError(t, err)
	return cp
}

func TestCheckpointTextRoundTrip(t *testing.T) {
	c := chain(t, 4, cpKey)
	cp := checkpointAt(t, c, 4, cpKey)
	line := cp.String()
	assert.Regexp(t, `^ndrbot-audit-checkpoint v1 seq=4 hash=[0-9a-f]{64} time=2026-12-03T10:00:00Z key=[0-9a-f]{16} sig=[0-9a-f]{64}$`, line)

	// The same line as a file, as syslog wrote it, and inside an exported Slack
	// channel (conversations.history JSON: the text field, one message per line).
	slackExport := `{"type":"message","user":"U0BOT","text":"` + line + `","ts":"1764756000.000100"}`
	in := strings.Join([]string{
		"# ndrbot checkpoints",
		line,
		"Dec  3 10:00:00 mail-ops ndrbot[4242]: " + line,
		slackExport,
	}, "\n")
	got, err := audit.ReadCheckpoints(strings.NewReader(in))
	require.NoError(t, err)
	require.Len(t, got, 3)
	for _, g := range got {
		assert.Equal(t, cp, g)
		assert.True(t, g.Valid(cpKey))
	}
}

func TestCheckpointSignature(t *testing.T) {
	c := chain(t, 4, cpKey)
	cp := checkpointAt(t, c, 3, cpKey)
	assert.True(t, cp.Valid(cpKey))
	assert.False(t, cp.Valid([]byte("another key")), "another key")
	assert.False(t, cp.Valid(nil), "no key")
	for name, edit := range map[string]func(*audit.Checkpoint){
		"seq":  func(c *audit.Checkpoint) { c.Seq++ },
		"hash": func(c *audit.Checkpoint) { c.Hash = strings.Repeat("0", 64) },
		"time": func(c *audit.Checkpoint) { c.Time = c.Time.Add(time.Second) },
		"sig":  func(c *audit.Checkpoint) { c.Sig = strings.Repeat("a", 64) },
	} {
		bad := cp
		edit(&bad)
		assert.False(t, bad.Valid(cpKey), "edited %s", name)
	}
	_, err := audit.NewCheckpoint(audit.Head{Seq: 1}, time.Now(), nil)
	assert.Error(t, err, "a checkpoint cannot be signed without the key")
}

func TestReadCheckpointsRefusesDamagedLines(t *testing.T) {
	for name, line := range map[string]string{
		"no seq":    "ndrbot-audit-checkpoint v1 hash=ab time=2026-12-03T10:00:00Z key=k sig=s",
		"bad seq":   "ndrbot-audit-checkpoint v1 seq=x hash=ab time=2026-12-03T10:00:00Z key=k sig=s",
		"bad time":  "ndrbot-audit-checkpoint v1 seq=1 hash=ab time=yesterday key=k sig=s",
		"truncated": "ndrbot-audit-checkpoint v1 seq=1 hash=ab",
	} {
		_, err := audit.ReadCheckpoints(strings.NewReader("first line\n" + line + "\n"))
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "line 2", name)
	}
}

type headless struct{ mem }

func (headless) AuditHead(context.Context) (audit.Head, error) { return audit.Head{}, audit.ErrNoHead }

func TestVerifyAnchors(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		src     func(c []audit.Event) audit.Source
		key     []byte
		cps     func(c []audit.Event) []audit.Checkpoint
		wantWhy audit.Reason
		wantSeq int64
		want    string
	}{
		{name: "checkpoints match", key: cpKey,
			src: func(c []audit.Event) audit.Source { return memHead{mem(c), 10, c[9].Hash} },
			cps: func(c []audit.Event) []audit.Checkpoint {
				return []audit.Checkpoint{checkpointAt(t, c, 7, cpKey), checkpointAt(t, c, 3, cpKey)}
			}},
		{name: "tail truncated and head rewritten to match", key: cpKey,
			src: func(c []audit.Event) audit.Source { return memHead{mem(c[:6]), 6, c[5].Hash} },
			cps: func(c []audit.Event) []audit.Checkpoint { return []audit.Checkpoint{checkpointAt(t, c, 9, cpKey)} },
			// Without the checkpoint this trail verifies: the head row agrees with it.
			wantWhy: audit.ReasonTruncated, wantSeq: 7, want: "events 7..9 were deleted"},
		{name: "rewritten by someone holding the key", key: cpKey,
			src: func(c []audit.Event) audit.Source {
				c[4].Payload = json.RawMessage(`{"text":"nothing happened"}`)
				prev := c[3].Hash
				for i := 4; i < len(c); i++ {
					require.NoError(t, audit.Seal(&c[i], prev, cpKey))
					prev = c[i].Hash
				}
				return memHead{mem(c), 10, c[9].Hash}
			},
			cps:     func(c []audit.Event) []audit.Checkpoint { return []audit.Checkpoint{checkpointAt(t, c, 8, cpKey)} },
			wantWhy: audit.ReasonRewritten, wantSeq: 8},
		{name: "head row deleted", key: cpKey,
			src:     func(c []audit.Event) audit.Source { return headless{mem(c)} },
			wantWhy: audit.ReasonHeadMissing, wantSeq: 11, want: "head record is missing"},
		{name: "head row and tail deleted, checkpoint names the tail", key: cpKey,
			src:     func(c []audit.Event) audit.Source { return headless{mem(c[:5])} },
			cps:     func(c []audit.Event) []audit.Checkpoint { return []audit.Checkpoint{checkpointAt(t, c, 10, cpKey)} },
			wantWhy: audit.ReasonTruncated, wantSeq: 6},
		{name: "downgrade: every event rewritten without the key", key: cpKey,
			src: func(c []audit.Event) audit.Source {
				prev := audit.Genesis
				for i := range c {
					require.NoError(t, audit.Seal(&c[i], prev, nil))
					prev = c[i].Hash
				}
				return memHead{mem(c), 10, c[9].Hash}
			},
			wantWhy: audit.ReasonDowngrade, wantSeq: 1, want: "no event is sealed with the key"},
		{name: "head names the key but no key given",
			src:     func(c []audit.Event) audit.Source { return headKey{mem(c[:0])} },
			wantWhy: audit.ReasonNeedKey, wantSeq: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := chain(t, 10, cpKey)
			var cps []audit.Checkpoint
			if tc.cps != nil {
				cps = tc.cps(chain(t, 10, cpKey))
			}
			rep, err := audit.Verify(ctx, tc.src(c), tc.key, cps...)
			require.NoError(t, err)
			if tc.wantWhy == "" {
				require.True(t, rep.OK, rep.String())
				assert.Equal(t, len(cps), rep.Checkpoints)
				assert.Contains(t, rep.String(), "matches 2 checkpoint(s)")
				return
			}
			assert.False(t, rep.OK, rep.String())
			assert.Equal(t, tc.wantWhy, rep.Reason, rep.String())
			assert.Equal(t, tc.wantSeq, rep.FirstBad, rep.String())
			assert.Contains(t, rep.Detail, tc.want)
		})
	}
}

type headKey struct{ mem }

func (headKey) AuditHead(context.Context) (audit.Head, error) {
	return audit.Head{KeyID: audit.KeyID(cpKey), KeySince: 1}, nil
}

func TestVerifyKeyEpoch(t *testing.T) {
	ctx := context.Background()
	epoch := func(keyID string, seq int64, prev string) audit.Event {
		e := sample(seq)
		e.Kind = audit.KindKeyEpoch
		e.Payload = json.RawMessage(`{"key_id":"` + keyID + `","since":` + "4" + `}`)
		require.NoError(t, audit.Seal(&e, prev, cpKey))
		return e
	}
	// Three events before the key, the epoch, two keyed events: what a store
	// writes when the key is configured on a running deployment.
	build := func(keyID string) []audit.Event {
		c := chain(t, 3, nil)
		c = append(c, epoch(keyID, 4, c[2].Hash))
		for seq := int64(5); seq <= 6; seq++ {
			e := sample(seq)
			require.NoError(t, audit.Seal(&e, c[len(c)-1].Hash, cpKey))
			c = append(c, e)
		}
		return c
	}

	rep, err := audit.Verify(ctx, mem(build(audit.KeyID(cpKey))), cpKey)
	require.NoError(t, err)
	assert.True(t, rep.OK, rep.String())
	assert.EqualValues(t, 3, rep.Unkeyed)

	rep, err = audit.Verify(ctx, mem(build("0123456789abcdef")), cpKey)
	require.NoError(t, err)
	assert.Equal(t, audit.ReasonWrongKey, rep.Reason, rep.String())
	assert.EqualValues(t, 4, rep.FirstBad)

	// An unkeyed event after the epoch.
	c := build(audit.KeyID(cpKey))
	f := sample(7)
	require.NoError(t, audit.Seal(&f, c[5].Hash, nil))
	rep, err = audit.Verify(ctx, mem(append(c, f)), cpKey)
	require.NoError(t, err)
	assert.Equal(t, audit.ReasonForged, rep.Reason, rep.String())
	assert.EqualValues(t, 7, rep.FirstBad)
}

func TestVerifyRefusesBadCheckpoints(t *testing.T) {
	ctx := context.Background()
	c := chain(t, 5, cpKey)
	good := checkpointAt(t, c, 5, cpKey)

	_, err := audit.Verify(ctx, mem(c), nil, good)
	assert.ErrorContains(t, err, "verify with it", "checkpoints without the key")

	forged := good
	forged.Seq = 3
	_, err = audit.Verify(ctx, mem(c), cpKey, forged)
	assert.ErrorContains(t, err, "does not verify with the audit key")

	other := checkpointAt(t, c, 5, []byte("someone else's key"))
	_, err = audit.Verify(ctx, mem(c), cpKey, other)
	assert.ErrorContains(t, err, "made with another key")
}
