package slack_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/slack"
	"github.com/ndrbot/ndrbot/slack/slackfake"
)

// Slack's own limit for an acknowledgement.
const slackAckDeadline = 3 * time.Second

func TestSocketIntake(t *testing.T) {
	tests := []struct {
		name    string
		inject  func(context.Context, *slackfake.Server) (string, error)
		request *commands.Request
		click   *commands.Click
	}{
		{
			name: "slash command becomes a Request",
			inject: func(ctx context.Context, f *slackfake.Server) (string, error) {
				return f.SlashCommand(ctx, slackfake.SlashCommand{UserID: "U1", UserName: "alice",
					ChannelID: "C1", ChannelName: "inc-mail", Text: "diagnose 5.5.4 sender=alice@contoso.com"})
			},
			request: &commands.Request{Text: "diagnose 5.5.4 sender=alice@contoso.com",
				User: commands.Actor{ID: "U1", Name: "alice"}, ChannelID: "C1", ChannelName: "inc-mail"},
		},
		{
			name: "block_actions button becomes a Click",
			inject: func(ctx context.Context, f *slackfake.Server) (string, error) {
				return f.Click(ctx, slackfake.Click{UserID: "U2", UserName: "bob", ChannelID: "C1",
					ChannelName: "inc-mail", MessageTS: "1700000000.000100", ActionID: "approve", Value: "apr-42"})
			},
			click: &commands.Click{Action: "approve", Value: "apr-42", User: commands.Actor{ID: "U2", Name: "bob"},
				ChannelID: "C1", MessageKey: "C1:1700000000.000100"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			gotReq := make(chan commands.Request, 1)
			gotClick := make(chan commands.Click, 1)
			release := make(chan struct{})
			h := handlerFunc{
				command: func(_ context.Context, r commands.Request) commands.Reply {
					<-release
					gotReq <- r
					return commands.Reply{Text: "started run r-1 <!channel>"}
				},
				click: func(_ context.Context, c commands.Click) commands.Reply {
					<-release
					gotClick <- c
					return commands.Reply{Text: "approved"}
				},
			}
			startAdapter(t, fakeOptions(t, fake, slack.ModeSocket), h)
			unblock := sync.OnceFunc(func() { close(release) })
			t.Cleanup(unblock) // runs before the adapter stops, also when the test fails
			ctx := waitCtx(t)

			id, err := tt.inject(ctx, fake)
			require.NoError(t, err)
			// The handler is blocked until release: the ack must not wait for it.
			ack, err := fake.WaitAck(ctx, id)
			require.NoError(t, err)
			t.Logf("ack latency %s", ack.Latency)
			assert.Less(t, ack.Latency, slackAckDeadline)
			assert.Empty(t, ack.Payload, "the ack carries no payload; the reply comes via response_url")
			unblock()

			if tt.request != nil {
				assert.Equal(t, *tt.request, recv(t, gotReq))
			}
			if tt.click != nil {
				assert.Equal(t, *tt.click, recv(t, gotClick))
			}
			require.NoError(t, fake.WaitFor(ctx, func() bool { return len(fake.Responses()) == 1 }))
			resp := fake.Responses()[0]
			assert.Equal(t, "ephemeral", resp.ResponseType)
			assert.False(t, resp.ReplaceOriginal)
			assert.NotContains(t, resp.Text, "<!channel>", "reply text is escaped")
			assert.Empty(t, fake.Calls("chat.postEphemeral"), "response_url worked: no fallback")
		})
	}
}

func TestSocketAckWhileHandlersBusy(t *testing.T) {
	fake := newFake(t)
	release := make(chan struct{})
	opts := fakeOptions(t, fake, slack.ModeSocket)
	opts.Workers = 1
	started := make(chan struct{}, 10)
	h := handlerFunc{command: func(context.Context, commands.Request) commands.Reply {
		started <- struct{}{}
		<-release
		return commands.Reply{}
	}}
	startAdapter(t, opts, h)
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)
	ctx := waitCtx(t)

	// One worker, blocked: every further command still gets its ack.
	var ids []string
	for i := range 5 {
		id, err := fake.SlashCommand(ctx, slackfake.SlashCommand{UserID: "U1", ChannelID: "C1", Text: "status " + string(rune('a'+i))})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	for _, id := range ids {
		_, err := fake.WaitAck(ctx, id)
		require.NoError(t, err)
	}
	recv(t, started)
	assert.Empty(t, started, "only one handler runs with one worker")
	unblock()
	for range 4 {
		recv(t, started)
	}
}

func TestSocketReconnectsAfterDisconnect(t *testing.T) {
	fake := newFake(t)
	got := make(chan commands.Request, 2)
	h := handlerFunc{command: func(_ context.Context, r commands.Request) commands.Reply {
		got <- r
		return commands.Reply{}
	}}
	startAdapter(t, fakeOptions(t, fake, slack.ModeSocket), h)
	ctx := waitCtx(t)

	require.NoError(t, fake.WaitConnections(ctx, 1))
	id, err := fake.SlashCommand(ctx, slackfake.SlashCommand{UserID: "U1", ChannelID: "C1", Text: "before"})
	require.NoError(t, err)
	_, err = fake.WaitAck(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "before", recv(t, got).Text)

	fake.Disconnect()
	require.NoError(t, fake.WaitConnections(ctx, 2), "the adapter must reconnect by itself")
	id, err = fake.SlashCommand(ctx, slackfake.SlashCommand{UserID: "U1", ChannelID: "C1", Text: "after"})
	require.NoError(t, err)
	_, err = fake.WaitAck(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "after", recv(t, got).Text)

	fake.RequestReconnect()
	require.NoError(t, fake.WaitConnections(ctx, 3), "and on Slack's disconnect request")
}

func TestRunFinishesInFlightWorkOnCancel(t *testing.T) {
	fake := newFake(t)
	entered := make(chan struct{})
	h := handlerFunc{command: func(ctx context.Context, _ commands.Request) commands.Reply {
		close(entered)
		time.Sleep(200 * time.Millisecond)
		if ctx.Err() != nil {
			return commands.Reply{Text: "cancelled"}
		}
		return commands.Reply{Text: "finished"}
	}}
	r := startAdapter(t, fakeOptions(t, fake, slack.ModeSocket), h)
	ctx := waitCtx(t)

	id, err := fake.SlashCommand(ctx, slackfake.SlashCommand{UserID: "U1", ChannelID: "C1", Text: "diagnose 5.5.4"})
	require.NoError(t, err)
	_, err = fake.WaitAck(ctx, id)
	require.NoError(t, err)
	<-entered
	require.NoError(t, r.stop())

	// Run returned only after the handler finished and its reply went out.
	resp := fake.Responses()
	require.Len(t, resp, 1)
	assert.Equal(t, "finished", resp[0].Text)
}

func TestHandlerPanicIsContained(t *testing.T) {
	fake := newFake(t)
	h := handlerFunc{command: func(context.Context, commands.Request) commands.Reply { panic("boom") }}
	startAdapter(t, fakeOptions(t, fake, slack.ModeSocket), h)
	ctx := waitCtx(t)
	_, err := fake.SlashCommand(ctx, slackfake.SlashCommand{UserID: "U1", ChannelID: "C1", Text: "x"})
	require.NoError(t, err)
	require.NoError(t, fake.WaitFor(ctx, func() bool { return len(fake.Responses()) == 1 }))
	assert.True(t, strings.HasPrefix(fake.Responses()[0].Text, "Something went wrong on our side (error "))
}

func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting")
		var zero T
		return zero
	}
}

func TestRunFailsOnRejectedAppToken(t *testing.T) {
	fake := newFake(t)
	opts := fakeOptions(t, fake, slack.ModeSocket)
	opts.AppToken = "xapp-not-the-right-one"
	a, err := slack.New(opts, nil, handlerFunc{})
	require.NoError(t, err)
	err = a.Run(waitCtx(t))
	require.Error(t, err)
	var setup *slack.SetupError
	require.ErrorAs(t, err, &setup)
	assert.Equal(t, "slack.app_token", setup.Setting)
	assert.NotContains(t, err.Error(), "not-the-right-one")
}
