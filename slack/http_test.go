package slack_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/slack"
	"github.com/ndrbot/ndrbot/slack/slackfake"
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
