package slack_test

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/slack"
	"github.com/ndrbot/ndrbot/slack/slackfake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// handlerFunc is a Handler made of two functions; nil ones reply nothing.
type handlerFunc struct {
	command func(context.Context, commands.Request) commands.Reply
	click   func(context.Context, commands.Click) commands.Reply
}

func (h handlerFunc) Command(ctx context.Context, r commands.Request) commands.Reply {
	if h.command == nil {
		return commands.Reply{}
	}
	return h.command(ctx, r)
}

func (h handlerFunc) Click(ctx context.Context, c commands.Click) commands.Reply {
	if h.click == nil {
		return commands.Reply{}
	}
	return h.click(ctx, c)
}

// testClient is an HTTP client whose idle connections are closed at cleanup.
func testClient(t testing.TB) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func newFake(t testing.TB) *slackfake.Server {
	fake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	t.Cleanup(fake.Close)
	return fake
}

func fakeOptions(t testing.TB, fake *slackfake.Server, mode slack.Mode) slack.Options {
	return slack.Options{
		Mode:          mode,
		BotToken:      fake.BotToken(),
		AppToken:      fake.AppToken(),
		SigningSecret: "s3cr3t",
		APIURL:        fake.APIURL(),
		Workers:       4,
		PingInterval:  2 * time.Second,
		PostInterval:  time.Millisecond,
		PostBurst:     100,
		HTTPClient:    testClient(t),
		Logger:        slog.New(slog.DiscardHandler),
	}
}

// running is an adapter whose Run goroutine the test owns.
type running struct {
	adapter *slack.Adapter
	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
	err     error
}

// stop cancels Run and waits for it to return.
func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.done
	})
	return r.err
}

func startAdapter(t testing.TB, opts slack.Options, h slack.Handler) *running {
	t.Helper()
	a, err := slack.New(opts, nil, h)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{adapter: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { require.NoError(t, r.stop()) })
	return r
}

func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
