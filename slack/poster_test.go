package slack_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/slack"
)

func newPoster(t *testing.T, opts slack.Options) *slack.Poster {
	t.Helper()
	p, err := slack.NewPoster(opts)
	require.NoError(t, err)
	return p
}

func render(t *testing.T, m commands.Message) slack.Rendered {
	t.Helper()
	r, err := renderer.Render(m)
	require.NoError(t, err)
	return r
}

func TestPosterPostThenUpdateEditsInPlace(t *testing.T) {
	fake := newFake(t)
	p := newPoster(t, fakeOptions(t, fake, slack.ModeSocket))
	ctx := waitCtx(t)

	root := commands.Message{RunID: "r-1", Key: commands.KeyRoot, Root: runView(string(incident.RunDiagnosing), stepsRunning[:1], "queues")}
	ts, err := p.Deliver(ctx, "C1", "", commands.KeyRoot, "", render(t, root))
	require.NoError(t, err)
	require.NotEmpty(t, ts)

	root.Root = runView(string(incident.RunFinished), stepsRunning[:2])
	ts2, err := p.Deliver(ctx, "C1", "", commands.KeyRoot, ts, render(t, root))
	require.NoError(t, err)
	assert.Equal(t, ts, ts2, "an update keeps the message's ts")

	findings := commands.Message{RunID: "r-1", Key: commands.KeyFindings, Findings: &commands.FindingsView{RunID: "r-1"}}
	reply, err := p.Deliver(ctx, "C1", ts, commands.KeyFindings, "", render(t, findings))
	require.NoError(t, err)

	msgs := fake.Messages("C1")
	require.Len(t, msgs, 2, "one root (edited, not re-posted) and one reply")
	assert.Equal(t, ts, msgs[0].TS)
	require.Len(t, msgs[0].Edits, 1)
	assert.Contains(t, msgs[0].Edits[0].Text, "diagnosing")
	assert.Contains(t, msgs[0].Text, "finished")
	assert.Contains(t, string(msgs[0].Blocks), "Connector queue depth")
	assert.Equal(t, ts, msgs[1].ThreadTS, "the findings are a reply in the thread")
	assert.Equal(t, reply, msgs[1].TS)
	assert.Len(t, fake.Thread("C1", ts), 2)

	calls := fake.Calls("chat.postMessage", "chat.update")
	require.Len(t, calls, 3)
	assert.Equal(t, []string{"chat.postMessage", "chat.update", "chat.postMessage"},
		[]string{calls[0].Method, calls[1].Method, calls[2].Method})
	var blocks []map[string]any
	require.NoError(t, json.Unmarshal([]byte(calls[0].Params.Get("blocks")), &blocks), "blocks are sent as JSON")
	assert.Equal(t, "header", blocks[0]["type"])
	assert.Equal(t, "false", calls[0].Params.Get("unfurl_links"))
}

func TestPosterUpdateOfMissingMessageIsPermanent(t *testing.T) {
	fake := newFake(t)
	p := newPoster(t, fakeOptions(t, fake, slack.ModeSocket))
	_, err := p.Deliver(waitCtx(t), "C1", "", "root", "1.000001", slack.Rendered{Text: "x"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "chat.update")
	assert.True(t, slack.Permanent(err), "message_not_found will not heal by retrying")
}

func TestPosterRateLimited(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		retryAfter time.Duration
		deliver    func(*slack.Poster, string) error
		want       time.Duration
	}{
		{name: "429 with Retry-After 2 on post", method: "chat.postMessage", retryAfter: 2 * time.Second, want: 2 * time.Second,
			deliver: func(p *slack.Poster, _ string) error {
				_, err := p.Deliver(waitCtx(t), "C1", "", "root", "", slack.Rendered{Text: "hi"})
				return err
			}},
		{name: "429 without Retry-After on update", method: "chat.update", want: slack.DefaultRetryAfter,
			deliver: func(p *slack.Poster, ts string) error {
				_, err := p.Deliver(waitCtx(t), "C1", "", "root", ts, slack.Rendered{Text: "hi again"})
				return err
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			p := newPoster(t, fakeOptions(t, fake, slack.ModeSocket))
			ts, err := p.Deliver(waitCtx(t), "C1", "", "root", "", slack.Rendered{Text: "first"})
			require.NoError(t, err)

			fake.RateLimit(tt.method, 1, tt.retryAfter)
			before := len(fake.Calls(tt.method))
			err = tt.deliver(p, ts)
			require.Error(t, err)
			var ra slack.RetryAfterError
			require.True(t, errors.As(err, &ra), "a 429 exposes RetryAfter: %v", err)
			assert.Equal(t, tt.want, ra.RetryAfter())
			assert.False(t, slack.Permanent(err))
			assert.Len(t, fake.Calls(tt.method), before+1, "no retry inside the poster: the outbox owns retries")

			// The storm is over: the same delivery goes through once.
			require.NoError(t, tt.deliver(p, ts))
			assert.Len(t, fake.Messages("C1"), 2-boolInt(tt.method == "chat.update"))
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestPosterFilesUploadV2(t *testing.T) {
	fake := newFake(t)
	p := newPoster(t, fakeOptions(t, fake, slack.ModeSocket))
	ctx := waitCtx(t)

	root, err := p.Deliver(ctx, "C1", "", commands.KeyRoot, "", slack.Rendered{Text: "root"})
	require.NoError(t, err)

	a := approval(commands.ApprovalPending, nil, nil)
	a.Proposal.Preview = strings.Repeat("Identity=EX01\\Submission MessageCount=1450\n", 500)
	m := commands.Message{RunID: "r-1", Key: commands.ApprovalKey("restart-transport"), Approval: a}
	r := render(t, m)
	require.Len(t, r.Files, 1)

	card, err := p.Deliver(ctx, "C1", root, m.Key, "", r)
	require.NoError(t, err)

	var methods []string
	for _, c := range fake.Calls() {
		methods = append(methods, c.Method)
	}
	assert.Equal(t, []string{"chat.postMessage", "chat.postMessage", "files.getUploadURLExternal", "upload", "files.completeUploadExternal"}, methods)
	complete := fake.Calls("files.completeUploadExternal")[0]
	assert.Equal(t, "C1", complete.Params.Get("channel_id"))
	assert.Equal(t, root, complete.Params.Get("thread_ts"), "the file goes into the run's thread")

	files := fake.Files()
	require.Len(t, files, 1)
	assert.Equal(t, a.Proposal.Preview, files[0].Content, "the full text, not cut")
	assert.Equal(t, r.Files[0].Name, files[0].Name)
	assert.True(t, files[0].Shared)

	// Editing the card (same file) does not upload it again; new content does.
	_, err = p.Deliver(ctx, "C1", root, m.Key, card, r)
	require.NoError(t, err)
	assert.Len(t, fake.Files(), 1)
	a.Proposal.Preview += "one more line\n"
	_, err = p.Deliver(ctx, "C1", root, m.Key, card, render(t, m))
	require.NoError(t, err)
	assert.Len(t, fake.Files(), 2)
}

func TestPosterFileUploadFailureKeepsTS(t *testing.T) {
	fake := newFake(t)
	p := newPoster(t, fakeOptions(t, fake, slack.ModeSocket))
	fake.RateLimit("files.getUploadURLExternal", 1, 3*time.Second)
	r := slack.Rendered{Text: "x", Files: []slack.File{{Name: "out.txt", Content: "full"}}}
	ts, err := p.Deliver(waitCtx(t), "C1", "", "root", "", r)
	require.Error(t, err)
	assert.NotEmpty(t, ts, "the message exists: retry as an update with this ts")
	var ra slack.RetryAfterError
	require.ErrorAs(t, err, &ra)
	assert.Equal(t, 3*time.Second, ra.RetryAfter())

	_, err = p.Deliver(waitCtx(t), "C1", "", "root", ts, r)
	require.NoError(t, err)
	assert.Len(t, fake.Messages("C1"), 1)
	require.Len(t, fake.Files(), 1, "uploaded by the retry")
	assert.Equal(t, ts, fake.Files()[0].ThreadTS)
}

func TestPosterRateLimitsPerChannel(t *testing.T) {
	fake := newFake(t)
	opts := fakeOptions(t, fake, slack.ModeSocket)
	opts.PostInterval, opts.PostBurst = 50*time.Millisecond, 1
	p := newPoster(t, opts)
	ctx := waitCtx(t)

	start := time.Now()
	for range 5 {
		_, err := p.Deliver(ctx, "C1", "", "k", "", slack.Rendered{Text: "x"})
		require.NoError(t, err)
	}
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "5 posts to one channel at 1 per 50ms")

	// Another channel has its own budget.
	start = time.Now()
	_, err := p.Deliver(ctx, "C2", "", "k", "", slack.Rendered{Text: "x"})
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 50*time.Millisecond)
}

func TestPosterHelpers(t *testing.T) {
	fake := newFake(t)
	p := newPoster(t, fakeOptions(t, fake, slack.ModeSocket))
	ctx := waitCtx(t)

	ts, err := p.Deliver(ctx, "C1", "", "root", "", slack.Rendered{Text: "root"})
	require.NoError(t, err)
	link, err := p.Permalink(ctx, "C1", ts)
	require.NoError(t, err)
	assert.Equal(t, "https://fake.slack.test/archives/C1/p"+strings.ReplaceAll(ts, ".", ""), link)

	fake.SetUserGroup("S0APPROVERS", "U02BOB", "U03CAROL")
	for range 2 {
		members, err := p.GroupMembers(ctx, "S0APPROVERS")
		require.NoError(t, err)
		assert.Equal(t, []string{"U02BOB", "U03CAROL"}, members)
	}
	assert.Len(t, fake.Calls("usergroups.users.list"), 1, "cached")
	_, err = p.GroupMembers(ctx, "S0NOPE")
	require.Error(t, err)
	assert.True(t, slack.Permanent(err))

	require.NoError(t, p.Ephemeral(ctx, "C1", "U01ALICE", "usage: /ndr diagnose <code> & more"))
	eph := fake.Ephemerals()
	require.Len(t, eph, 1)
	assert.Equal(t, "U01ALICE", eph[0].User)
	assert.Equal(t, "usage: /ndr diagnose &lt;code&gt; &amp; more", eph[0].Text)

	// No response_url (or an untrusted one): Respond falls back to chat.postEphemeral.
	require.NoError(t, p.Respond(ctx, "", "C1", "U01ALICE", "a"))
	require.NoError(t, p.Respond(ctx, "http://169.254.169.254/latest", "C1", "U01ALICE", "b"))
	assert.Len(t, fake.Ephemerals(), 3)
	assert.Empty(t, fake.Responses())
	require.NoError(t, p.Respond(ctx, fake.URL()+"/response/R1", "C1", "U01ALICE", "c"))
	assert.Len(t, fake.Responses(), 1)
}
