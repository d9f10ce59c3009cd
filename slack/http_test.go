package slack_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/slack"
	"github.com/ndrbot/ndrbot/slack/slackfake"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

func TestHTTPMode(t *testing.T) {
	const secret = "s3cr3t"
	fake := newFake(t)
	slash := fake.SlashCommandForm(slackfake.SlashCommand{UserID: "U1", UserName: "alice", ChannelID: "C1",
		ChannelName: "inc-mail", Text: "diagnose 5.5.4"})
	click, err := fake.ClickForm(slackfake.Click{UserID: "U2", UserName: "bob", ChannelID: "C1",
		MessageTS: "1700000000.000200", ActionID: "reject", Value: "apr-7"})
	require.NoError(t, err)

	tests := []struct {
		name       string
		form       url.Values
		rawBody    string // instead of form
		jsonBody   string // an Events API request
		secret     string
		at         time.Duration // signing time relative to now
		tamper     func(*http.Request)
		wantStatus int
		wantBody   string
		wantCalled bool
		wantReq    *commands.Request
		wantClick  *commands.Click
	}{
		{name: "valid slash command", form: slash, secret: secret, wantStatus: 200, wantCalled: true,
			wantReq: &commands.Request{Text: "diagnose 5.5.4", User: commands.Actor{ID: "U1", Name: "alice"},
				ChannelID: "C1", ChannelName: "inc-mail"}},
		{name: "valid click", form: click, secret: secret, wantStatus: 200, wantCalled: true,
			wantClick: &commands.Click{Action: "reject", Value: "apr-7", User: commands.Actor{ID: "U2", Name: "bob"},
				ChannelID: "C1", MessageKey: "C1:1700000000.000200"}},
		{name: "signed with another secret", form: slash, secret: "wrong", wantStatus: 401},
		{name: "body changed after signing", form: slash, secret: secret, wantStatus: 401,
			tamper: func(r *http.Request) {
				r.Body = io.NopCloser(strings.NewReader(strings.Replace(slash.Encode(), "diagnose", "disgnose", 1)))
			}},
		{name: "timestamp 6 minutes old", form: slash, secret: secret, at: -6 * time.Minute, wantStatus: 401},
		{name: "timestamp 6 minutes ahead", form: slash, secret: secret, at: 6 * time.Minute, wantStatus: 401},
		{name: "timestamp 4 minutes old is fine", form: slash, secret: secret, at: -4 * time.Minute, wantStatus: 200, wantCalled: true},
		{name: "no signature headers", form: slash, secret: secret, wantStatus: 401,
			tamper: func(r *http.Request) { r.Header.Del("X-Slack-Signature") }},
		{name: "oversized body", rawBody: "text=" + strings.Repeat("a", 70_000), secret: secret, wantStatus: 413},
		{name: "url_verification handshake", jsonBody: `{"type":"url_verification","challenge":"c-123"}`,
			secret: secret, wantStatus: 200, wantBody: "c-123"},
		{name: "neither command nor payload", form: url.Values{"x": {"1"}}, secret: secret, wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var called atomic.Int32
			gotReq := make(chan commands.Request, 1)
			gotClick := make(chan commands.Click, 1)
			h := handlerFunc{
				command: func(_ context.Context, r commands.Request) commands.Reply {
					called.Add(1)
					gotReq <- r
					return commands.Reply{Text: "ok"}
				},
				click: func(_ context.Context, c commands.Click) commands.Reply {
					called.Add(1)
					gotClick <- c
					return commands.Reply{}
				},
			}
			opts := fakeOptions(t, fake, slack.ModeHTTP)
			opts.MaxBodyBytes = 64 << 10
			r := startAdapter(t, opts, h)
			srv := httptest.NewServer(r.adapter.HTTPHandler())
			defer srv.Close()
			ctx := waitCtx(t)

			body := tt.form.Encode()
			ctype := "application/x-www-form-urlencoded"
			switch {
			case tt.rawBody != "":
				body = tt.rawBody
			case tt.jsonBody != "":
				body, ctype = tt.jsonBody, "application/json"
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/slack/events", strings.NewReader(body))
			require.NoError(t, err)
			for k, v := range slackfake.Sign(tt.secret, time.Now().Add(tt.at), []byte(body)) {
				req.Header[k] = v
			}
			req.Header.Set("Content-Type", ctype)
			if tt.tamper != nil {
				tt.tamper(req)
			}
			start := time.Now()
			resp, err := testClient(t).Do(req)
			require.NoError(t, err)
			respBody, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, tt.wantStatus, resp.StatusCode, string(respBody))
			if tt.wantBody != "" {
				assert.Equal(t, tt.wantBody, string(respBody))
			}
			t.Logf("answered in %s", time.Since(start))

			// Stop the adapter: queued work has run when Run returns.
			require.NoError(t, r.stop())
			if !tt.wantCalled {
				assert.Zero(t, called.Load(), "the handler must never see a refused request")
				return
			}
			assert.EqualValues(t, 1, called.Load())
			if tt.wantReq != nil {
				assert.Equal(t, *tt.wantReq, recv(t, gotReq))
			}
			if tt.wantClick != nil {
				assert.Equal(t, *tt.wantClick, recv(t, gotClick))
			}
		})
	}
}

func TestHTTPModeRejectsGet(t *testing.T) {
	fake := newFake(t)
	r := startAdapter(t, fakeOptions(t, fake, slack.ModeHTTP), handlerFunc{})
	rec := httptest.NewRecorder()
	r.adapter.HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
}

func TestCheck(t *testing.T) {
	fake := newFake(t)
	limited := slackfake.New(slackfake.Options{Scopes: "commands,chat:write"})
	t.Cleanup(limited.Close)

	tests := []struct {
		name    string
		change  func(*slack.Options)
		wantNew []string // New fails offline with these
		want    []string // Check fails with these
	}{
		{name: "socket mode, good tokens"},
		{name: "http mode, good token and secret", change: func(o *slack.Options) { o.Mode = slack.ModeHTTP; o.AppToken = "" }},
		{name: "bot token missing", change: func(o *slack.Options) { o.BotToken = "" },
			wantNew: []string{"slack.bot_token", "SLACK_BOT_TOKEN", "is not set", "OAuth & Permissions"}},
		{name: "user token instead of bot token", change: func(o *slack.Options) { o.BotToken = "xoxp-123-TOPSECRETVALUE" },
			wantNew: []string{"slack.bot_token", "want xoxb-", "got xoxp-…"}},
		{name: "app token missing in socket mode", change: func(o *slack.Options) { o.AppToken = "" },
			wantNew: []string{"slack.app_token", "SLACK_APP_TOKEN", "connections:write"}},
		{name: "bot token given as app token", change: func(o *slack.Options) { o.AppToken = o.BotToken },
			wantNew: []string{"slack.app_token", "want xapp-"}},
		{name: "signing secret missing in http mode", change: func(o *slack.Options) { o.Mode = slack.ModeHTTP; o.SigningSecret = "" },
			wantNew: []string{"slack.signing_secret", "SLACK_SIGNING_SECRET", "Signing Secret"}},
		{name: "bot token revoked", change: func(o *slack.Options) { o.BotToken = "xoxb-revoked" },
			want: []string{"slack.bot_token", "rejected by Slack", "invalid_auth", "OAuth & Permissions"}},
		{name: "app token revoked", change: func(o *slack.Options) { o.AppToken = "xapp-revoked" },
			want: []string{"slack.app_token", "rejected by Slack", "connections:write"}},
		{name: "bot token lacks scopes", change: func(o *slack.Options) {
			o.APIURL, o.BotToken, o.AppToken = limited.APIURL(), limited.BotToken(), limited.AppToken()
		}, want: []string{"slack.bot_token", "lacks the scopes files:write, usergroups:read"}},
		{name: "api url without trailing slash still works", change: func(o *slack.Options) {
			o.APIURL = strings.TrimSuffix(o.APIURL, "/")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := fakeOptions(t, fake, slack.ModeSocket)
			if tt.change != nil {
				tt.change(&opts)
			}
			a, err := slack.New(opts, nil, handlerFunc{})
			if tt.wantNew != nil {
				require.Error(t, err)
				for _, w := range tt.wantNew {
					assert.Contains(t, err.Error(), w)
				}
				assert.NotContains(t, err.Error(), "TOPSECRETVALUE", "the token value never appears")
				return
			}
			require.NoError(t, err)
			err = a.Check(waitCtx(t))
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "revoked", "the token value never appears")
		})
	}
}

func TestHTTPModeListens(t *testing.T) {
	fake := newFake(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	got := make(chan commands.Request, 1)
	opts := fakeOptions(t, fake, slack.ModeHTTP)
	opts.Listen = addr
	startAdapter(t, opts, handlerFunc{command: func(_ context.Context, r commands.Request) commands.Reply {
		got <- r
		return commands.Reply{Text: "on it"}
	}})
	ctx := waitCtx(t)

	form := fake.SlashCommandForm(slackfake.SlashCommand{UserID: "U1", ChannelID: "C1", Text: "playbooks"})
	var resp *http.Response
	require.Eventually(t, func() bool {
		req, err := slackfake.SignedRequest(ctx, "http://"+addr+"/slack/commands", opts.SigningSecret, time.Now(), form)
		require.NoError(t, err)
		resp, err = testClient(t).Do(req)
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "playbooks", recv(t, got).Text)
	require.NoError(t, fake.WaitFor(ctx, func() bool { return len(fake.Responses()) == 1 }))
	assert.Equal(t, "on it", fake.Responses()[0].Text)
}

// logBuffer is a log sink a test can read while the adapter writes to it.
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

// countingAdapter is a running HTTP mode adapter that counts what reached its
// handler, with its logs kept.
type countingAdapter struct {
	*running
	url   string
	calls atomic.Int32
	logs  *logBuffer
}

func startCounting(t *testing.T, fake *slackfake.Server, change func(*slack.Options)) *countingAdapter {
	t.Helper()
	c := &countingAdapter{logs: &logBuffer{}}
	opts := fakeOptions(t, fake, slack.ModeHTTP)
	opts.Logger = slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if change != nil {
		change(&opts)
	}
	c.running = startAdapter(t, opts, handlerFunc{
		command: func(context.Context, commands.Request) commands.Reply { c.calls.Add(1); return commands.Reply{} },
		click:   func(context.Context, commands.Click) commands.Reply { c.calls.Add(1); return commands.Reply{} },
	})
	srv := httptest.NewServer(c.adapter.HTTPHandler())
	t.Cleanup(srv.Close)
	c.url = srv.URL + "/slack/events"
	return c
}

// handled stops the adapter (queued work has run when Run returns) and returns
// how many commands and clicks reached the handler.
func (c *countingAdapter) handled(t *testing.T) int {
	t.Helper()
	require.NoError(t, c.stop())
	return int(c.calls.Load())
}

// signed is one request as Slack signed it; send posts it as it is, as often as
// asked.
type signed struct {
	body, ctype string
	header      http.Header
}

func signForm(form url.Values, at time.Time) signed {
	body := form.Encode()
	return signed{body: body, ctype: "application/x-www-form-urlencoded", header: slackfake.Sign("s3cr3t", at, []byte(body))}
}

func signJSON(body string, at time.Time) signed {
	return signed{body: body, ctype: "application/json", header: slackfake.Sign("s3cr3t", at, []byte(body))}
}

func (s signed) send(t *testing.T, target string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(waitCtx(t), http.MethodPost, target, strings.NewReader(s.body))
	require.NoError(t, err)
	req.Header = s.header.Clone()
	req.Header.Set("Content-Type", s.ctype)
	resp, err := testClient(t).Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ndrbot.db"), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// guardFunc is a ReplayGuard made of a function.
type guardFunc func(ctx context.Context, sig string, expires time.Time) (bool, error)

func (f guardFunc) FirstSighting(ctx context.Context, sig string, expires time.Time) (bool, error) {
	return f(ctx, sig, expires)
}

// A signed request is accepted once inside its 5-minute window: an identical
// copy (a captured request sent again) is refused with 401 before it is parsed,
// on the same replica (in-process cache) and, through the store, on another.
func TestHTTPModeReplay(t *testing.T) {
	fake := newFake(t)
	slash := func() url.Values {
		return fake.SlashCommandForm(slackfake.SlashCommand{UserID: "U1", ChannelID: "C1", Text: "playbooks"})
	}
	click, err := fake.ClickForm(slackfake.Click{UserID: "U2", ChannelID: "C1", MessageTS: "1700000000.000200",
		ActionID: "reject", Value: "apr-7"})
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		form url.Values
	}{{"slash command", slash()}, {"click", click}} {
		t.Run(tc.name+" replayed on the same adapter", func(t *testing.T) {
			a := startCounting(t, fake, nil) // no guard configured: the in-process cache
			req := signForm(tc.form, time.Now().Add(-time.Minute))
			assert.Equal(t, http.StatusOK, req.send(t, a.url))
			assert.Equal(t, http.StatusUnauthorized, req.send(t, a.url), "the same signed request again")

			recased := req
			recased.header = req.header.Clone()
			recased.header.Set("X-Slack-Signature", "v0="+strings.ToUpper(strings.TrimPrefix(req.header.Get("X-Slack-Signature"), "v0=")))
			assert.Equal(t, http.StatusUnauthorized, recased.send(t, a.url), "the same signature in upper case")

			assert.Equal(t, 1, a.handled(t), "only the first copy reaches a worker")
			assert.Contains(t, a.logs.String(), "replay of a request already accepted")
			assert.Contains(t, a.logs.String(), "level=WARN")
		})
	}

	t.Run("two replicas sharing the store", func(t *testing.T) {
		st := openStore(t)
		a := startCounting(t, fake, func(o *slack.Options) { o.Replay = st })
		b := startCounting(t, fake, func(o *slack.Options) { o.Replay = st })
		req := signForm(slash(), time.Now())
		assert.Equal(t, http.StatusOK, req.send(t, a.url))
		assert.Equal(t, http.StatusUnauthorized, req.send(t, b.url), "the replay on the other replica")
		assert.Equal(t, http.StatusUnauthorized, req.send(t, a.url), "and on the first")
		other := signForm(slash(), time.Now())
		assert.Equal(t, http.StatusOK, other.send(t, b.url), "another request is new")
		assert.Equal(t, 1, a.handled(t))
		assert.Equal(t, 1, b.handled(t))
		assert.Contains(t, b.logs.String(), "replay of a request already accepted")
	})

	t.Run("the entry lasts past the signature window", func(t *testing.T) {
		at := time.Now().Add(-2 * time.Minute)
		var got []time.Time
		var mu sync.Mutex
		a := startCounting(t, fake, func(o *slack.Options) {
			o.Replay = guardFunc(func(_ context.Context, sig string, exp time.Time) (bool, error) {
				mu.Lock()
				defer mu.Unlock()
				assert.Regexp(t, `^v0=[0-9a-f]{64}$`, sig)
				got = append(got, exp)
				return true, nil
			})
		})
		assert.Equal(t, http.StatusOK, signForm(slash(), at).send(t, a.url))
		assert.Equal(t, 1, a.handled(t))
		require.Len(t, got, 1)
		window := time.Unix(at.Unix(), 0).Add(5 * time.Minute)
		assert.True(t, got[0].After(window), "expiry %s after the window's end %s", got[0], window)
		assert.True(t, got[0].Before(window.Add(5*time.Minute)), "but not much later: %s", got[0])
	})

	t.Run("a guard that cannot answer fails closed", func(t *testing.T) {
		a := startCounting(t, fake, func(o *slack.Options) {
			o.Replay = guardFunc(func(context.Context, string, time.Time) (bool, error) {
				return false, errors.New("database is locked")
			})
		})
		assert.Equal(t, http.StatusServiceUnavailable, signForm(slash(), time.Now()).send(t, a.url))
		assert.Zero(t, a.handled(t))
		assert.Contains(t, a.logs.String(), "database is locked")
	})

	t.Run("a bad signature is not recorded", func(t *testing.T) {
		st := openStore(t)
		a := startCounting(t, fake, func(o *slack.Options) { o.Replay = st })
		good := signForm(slash(), time.Now())
		bad := good
		bad.body = strings.Replace(good.body, "playbooks", "playbookz", 1)
		assert.Equal(t, http.StatusUnauthorized, bad.send(t, a.url))
		assert.Equal(t, http.StatusOK, good.send(t, a.url), "the forged copy did not use up the signature")
		assert.Equal(t, 1, a.handled(t))
	})

	t.Run("an oversized body is refused with 413 before the replay check", func(t *testing.T) {
		st := openStore(t)
		a := startCounting(t, fake, func(o *slack.Options) { o.Replay = st; o.MaxBodyBytes = 1 << 10 })
		big := slash()
		big.Set("text", strings.Repeat("a", 2<<10))
		req := signForm(big, time.Now())
		assert.Equal(t, http.StatusRequestEntityTooLarge, req.send(t, a.url))
		assert.Equal(t, http.StatusRequestEntityTooLarge, req.send(t, a.url), "still 413, not a replay")
		assert.Zero(t, a.handled(t))
	})
}

// Signed requests whose team_id or api_app_id are not the configured ones are
// refused with 403 before anything is queued.
func TestHTTPModeOrigin(t *testing.T) {
	fake := newFake(t)
	slash := func(change func(url.Values)) url.Values {
		f := fake.SlashCommandForm(slackfake.SlashCommand{UserID: "U1", ChannelID: "C1", Text: "playbooks"})
		if change != nil {
			change(f)
		}
		return f
	}
	click, err := fake.ClickForm(slackfake.Click{UserID: "U2", ChannelID: "C1", MessageTS: "1700000000.000200",
		ActionID: "reject", Value: "apr-7"}) // team T0FAKE, app A0FAKE
	require.NoError(t, err)
	event := func(team, app string) string {
		return `{"type":"event_callback","team_id":"` + team + `","api_app_id":"` + app + `","event":{"type":"app_mention"}}`
	}
	ours := func(o *slack.Options) { o.TeamID, o.AppID = "T0FAKE", "A0FAKE" }

	tests := []struct {
		name       string
		change     func(*slack.Options)
		req        signed
		wantStatus int
		wantLog    string // the field named in the refusal
	}{
		{name: "slash command from our team and app", change: ours, req: signForm(slash(nil), time.Now()), wantStatus: 200},
		{name: "slash command from another team", change: ours, wantStatus: 403, wantLog: "field=team_id",
			req: signForm(slash(func(f url.Values) { f.Set("team_id", "T0EVIL") }), time.Now())},
		{name: "slash command from another app", change: ours, wantStatus: 403, wantLog: "field=api_app_id",
			req: signForm(slash(func(f url.Values) { f.Set("api_app_id", "A0EVIL") }), time.Now())},
		{name: "slash command without a team", change: ours, wantStatus: 403, wantLog: "field=team_id",
			req: signForm(slash(func(f url.Values) { f.Del("team_id") }), time.Now())},
		{name: "click from our team and app", change: ours, req: signForm(click, time.Now()), wantStatus: 200},
		{name: "click from another team", change: func(o *slack.Options) { o.TeamID = "T0OTHER" },
			req: signForm(click, time.Now()), wantStatus: 403, wantLog: "field=team_id"},
		{name: "click from another app", change: func(o *slack.Options) { o.AppID = "A0OTHER" },
			req: signForm(click, time.Now()), wantStatus: 403, wantLog: "field=api_app_id"},
		{name: "enterprise grid: the organisation's id matches its workspaces",
			change: func(o *slack.Options) { o.TeamID = "E0ORG" }, wantStatus: 200,
			req: signForm(slash(func(f url.Values) { f.Set("enterprise_id", "E0ORG") }), time.Now())},
		{name: "enterprise grid: another organisation", change: func(o *slack.Options) { o.TeamID = "E0ORG" },
			wantStatus: 403, wantLog: "field=team_id",
			req: signForm(slash(func(f url.Values) { f.Set("enterprise_id", "E0EVIL") }), time.Now())},
		{name: "nothing configured, Check not run: not checked",
			req: signForm(slash(func(f url.Values) { f.Set("team_id", "T0EVIL"); f.Set("api_app_id", "A0EVIL") }), time.Now()), wantStatus: 200},
		{name: "event from another team", change: ours, req: signJSON(event("T0EVIL", "A0FAKE"), time.Now()),
			wantStatus: 403, wantLog: "field=team_id"},
		{name: "event from another app", change: ours, req: signJSON(event("T0FAKE", "A0EVIL"), time.Now()),
			wantStatus: 403, wantLog: "field=api_app_id"},
		{name: "event from our team and app", change: ours, req: signJSON(event("T0FAKE", "A0FAKE"), time.Now()), wantStatus: 200},
		{name: "url_verification names no team", change: ours,
			req: signJSON(`{"type":"url_verification","challenge":"c-1"}`, time.Now()), wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := startCounting(t, fake, tt.change)
			assert.Equal(t, tt.wantStatus, tt.req.send(t, a.url))
			calls := a.handled(t)
			if tt.wantStatus != 200 {
				assert.Zero(t, calls, "nothing is queued")
				assert.Contains(t, a.logs.String(), "level=WARN")
				assert.Contains(t, a.logs.String(), tt.wantLog)
				return
			}
			if tt.req.ctype == "application/json" {
				assert.Zero(t, calls, "events queue nothing")
				return
			}
			assert.Equal(t, 1, calls)
		})
	}

	t.Run("the team is learned from auth.test when not configured", func(t *testing.T) {
		a := startCounting(t, fake, nil)
		require.NoError(t, a.adapter.Check(waitCtx(t)))
		assert.Contains(t, a.logs.String(), "team_id=T0FAKE")
		evil := signForm(slash(func(f url.Values) { f.Set("team_id", "T0EVIL") }), time.Now())
		assert.Equal(t, http.StatusForbidden, evil.send(t, a.url))
		assert.Equal(t, http.StatusOK, signForm(slash(nil), time.Now()).send(t, a.url))
		assert.Equal(t, 1, a.handled(t))
	})

	t.Run("a configured team is not overridden by auth.test", func(t *testing.T) {
		a := startCounting(t, fake, func(o *slack.Options) { o.TeamID = "E0ORG" })
		require.NoError(t, a.adapter.Check(waitCtx(t)))
		grid := signForm(slash(func(f url.Values) { f.Set("team_id", "T0OTHERWS"); f.Set("enterprise_id", "E0ORG") }), time.Now())
		assert.Equal(t, http.StatusOK, grid.send(t, a.url))
		assert.Equal(t, http.StatusForbidden, signForm(slash(nil), time.Now()).send(t, a.url), "T0FAKE is not in E0ORG")
		assert.Equal(t, 1, a.handled(t))
	})
}
