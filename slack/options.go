package slack

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	slackgo "github.com/slack-go/slack"
)

// Mode says how Slack reaches the bot.
type Mode string

const (
	// ModeSocket opens an outbound websocket (Socket Mode): no public ingress needed.
	ModeSocket Mode = "socket"
	// ModeHTTP serves Slack's request URLs (slash command, interactivity, events).
	ModeHTTP Mode = "http"
)

// DefaultAPIURL is Slack's public Web API; GovSlack and proxies set Options.APIURL.
const DefaultAPIURL = "https://slack.com/api/"

// Options configure the adapter and the poster. The zero value of every optional
// field means "the default" written next to it.
type Options struct {
	Mode          Mode   // socket (default) or http
	BotToken      string // xoxb-…: every Web API call
	AppToken      string // xapp-… with connections:write: Socket Mode only
	SigningSecret string // HTTP mode only
	// Listen is the HTTP mode address (":3000"). Empty: Run serves nothing and the
	// caller mounts HTTPHandler on its own server.
	Listen string
	// APIURL is the Web API base (default DefaultAPIURL); a trailing "/" is added.
	APIURL string
	// Workers is how many commands and clicks are handled at once (default 8).
	Workers int
	// QueueSize is how many acknowledged requests may wait for a worker (default 1024).
	QueueSize int
	// DrainTimeout bounds how long Run lets queued and in-flight work finish after
	// its context is cancelled; then the work's context is cancelled (default 30s).
	DrainTimeout time.Duration
	// MaxBodyBytes limits an HTTP mode request body (default 1 MiB).
	MaxBodyBytes int64
	// Replay lets each signed HTTP mode request through once inside its 5-minute
	// window (default: an in-process cache, enough for one replica; ndrbot serve
	// passes the store, shared by every replica).
	Replay ReplayGuard
	// TeamID is the only workspace (T…) or Enterprise Grid organisation (E…)
	// whose HTTP mode requests are accepted: a request's team or enterprise id
	// must equal it. Empty: the bot token's workspace, learned from auth.test when
	// Check runs (nothing is checked before that).
	TeamID string
	// AppID is the only app (A…) whose HTTP mode requests are accepted (their
	// api_app_id). Empty: not checked.
	AppID string
	// PingInterval: Socket Mode reconnects when Slack sent no websocket PING for
	// this long (default 30s, slack-go's default).
	PingInterval time.Duration
	// PostInterval and PostBurst shape the per-channel rate limit of posts and
	// edits (default one per second, bursts of 3: Slack's "about 1 message per second
	// per channel").
	PostInterval time.Duration
	PostBurst    int
	// GroupTTL is how long GroupMembers answers from its cache (default 5m).
	GroupTTL time.Duration
	// HTTPClient is used for every Web API call (default: a client with a 30s timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// OnAPIError, when set, is told of every failed Web API call (the metrics):
	// its method and whether Slack answered 429.
	OnAPIError func(method string, rateLimited bool)
}

func (o Options) withDefaults() (Options, error) {
	if o.Mode == "" {
		o.Mode = ModeSocket
	}
	if o.Mode != ModeSocket && o.Mode != ModeHTTP {
		return o, fmt.Errorf("slack.mode %q: want %q or %q", o.Mode, ModeSocket, ModeHTTP)
	}
	if o.APIURL == "" {
		o.APIURL = DefaultAPIURL
	}
	if !strings.HasSuffix(o.APIURL, "/") {
		o.APIURL += "/" // slack-go concatenates method names onto it
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Replay == nil {
		o.Replay = newReplayCache(replayCacheSize)
	}
	if o.PostInterval <= 0 {
		o.PostInterval = time.Second
	}
	if o.PostBurst <= 0 {
		o.PostBurst = 3
	}
	if o.GroupTTL <= 0 {
		o.GroupTTL = 5 * time.Minute
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// validate checks what can be checked without calling Slack: presence and shape
// of the secrets the mode needs.
func (o Options) validate() error {
	var errs []error
	if err := checkBotTokenShape(o.BotToken); err != nil {
		errs = append(errs, err)
	}
	switch o.Mode {
	case ModeSocket:
		if err := checkAppTokenShape(o.AppToken); err != nil {
			errs = append(errs, err)
		}
	case ModeHTTP:
		if o.SigningSecret == "" {
			errs = append(errs, errSigningSecret("is not set"))
		}
	}
	return errors.Join(errs...)
}

func (o Options) client() *slackgo.Client {
	opts := []slackgo.Option{
		slackgo.OptionAPIURL(o.APIURL),
		slackgo.OptionHTTPClient(o.HTTPClient),
		slackgo.OptionLog(slogOutput{o.Logger}),
	}
	if o.AppToken != "" {
		opts = append(opts, slackgo.OptionAppLevelToken(o.AppToken))
	}
	return slackgo.New(o.BotToken, opts...)
}

// slogOutput lets slack-go's debug logger (Output(calldepth, s)) write to slog.
type slogOutput struct{ log *slog.Logger }

func (s slogOutput) Output(_ int, msg string) error {
	s.log.Debug(strings.TrimSpace(msg), "component", "slack-go")
	return nil
}
