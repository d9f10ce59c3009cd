// Package slack is ndrbot's Slack adapter: one intake path for `/ndr` and button
// clicks (Socket Mode or HTTP request URLs, acknowledged at once, handled by a
// bounded worker pool), Block Kit rendering of the transport-neutral messages of
// package commands, and a rate-limited Poster that delivers them.
//
// It translates; it decides nothing. Parsing, authorisation, the store and the
// engine live behind Handler (package commands) and the outbox that calls Poster.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/ndrbot/ndrbot/commands"
)

// Handler does the work behind a slash command or a click. Its Reply is shown
// only to the user who typed or clicked (empty Text: nothing is shown). It runs on
// one of Options.Workers workers after Slack has been acknowledged, so it may take
// seconds; long work (a playbook run) should go on in the caller's own goroutines.
type Handler interface {
	Command(ctx context.Context, req commands.Request) commands.Reply
	Click(ctx context.Context, click commands.Click) commands.Reply
}

// Adapter receives `/ndr` commands and button clicks from Slack.
type Adapter struct {
	opts    Options
	h       Handler
	api     *slackgo.Client
	poster  *Poster
	log     *slog.Logger
	pool    *pool
	started atomic.Bool
	// team is the workspace or organisation HTTP mode accepts requests from:
	// Options.TeamID, or the bot token's as Check learned it ("" unchecked).
	team atomic.Pointer[string]
	// connected: Socket Mode's websocket is up, or HTTP mode is listening.
	connected atomic.Bool
}

// Connected reports whether Slack can reach the bot now: Socket Mode's
// websocket is connected, or HTTP mode's listener is up (readiness).
func (a *Adapter) Connected() bool { return a.connected.Load() }

// New builds an adapter. p delivers the handler's replies (nil: a Poster is made
// from opts); share one Poster with the outbox so both obey one rate limiter.
func New(opts Options, p *Poster, h Handler) (*Adapter, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("slack: nil Handler")
	}
	if p == nil {
		if p, err = NewPoster(opts); err != nil {
			return nil, err
		}
	}
	a := &Adapter{
		opts:   opts,
		h:      h,
		api:    opts.client(),
		poster: p,
		log:    opts.Logger.With("component", "slack"),
		pool:   newPool(opts.QueueSize),
	}
	a.team.Store(&opts.TeamID)
	return a, nil
}

// Poster is the poster the adapter replies through.
func (a *Adapter) Poster() *Poster { return a.poster }

// Run receives requests until ctx is cancelled, then stops intake, lets queued and
// in-flight work finish (for at most Options.DrainTimeout, then cancels it) and
// returns. It returns nil after a cancel, an error when intake failed (rejected
// token, address in use). Run may be called once.
func (a *Adapter) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("slack: Adapter.Run called twice")
	}
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	wait := a.pool.run(workCtx, a.opts.Workers, a.do)

	var err error
	switch a.opts.Mode {
	case ModeHTTP:
		err = a.runHTTP(ctx)
	default:
		err = a.runSocket(ctx)
	}

	a.pool.close()
	drain := time.AfterFunc(a.opts.DrainTimeout, stopWork)
	wait()
	drain.Stop()
	return err
}

// job is one acknowledged request waiting for a worker.
type job struct {
	command     *commands.Request
	click       *commands.Click
	responseURL string
	channelID   string
	userID      string
}

func (j job) attrs() []any {
	if j.command != nil {
		return []any{"kind", "command", "user", j.userID, "channel", j.channelID}
	}
	return []any{"kind", "click", "action", j.click.Action, "user", j.userID, "channel", j.channelID}
}

// enqueue hands an acknowledged request to the pool.
func (a *Adapter) enqueue(j job) {
	if err := a.pool.submit(j); err != nil {
		a.log.Warn("request acknowledged but dropped", append(j.attrs(), "err", err)...)
	}
}

// do runs one job on a worker and delivers the reply, ephemerally.
func (a *Adapter) do(ctx context.Context, j job) {
	reply := a.call(ctx, j)
	if reply.Text == "" {
		return
	}
	if err := a.poster.Respond(ctx, j.responseURL, j.channelID, j.userID, reply.Text); err != nil {
		a.log.Error("reply not delivered", append(j.attrs(), "err", err)...)
	}
}

func (a *Adapter) call(ctx context.Context, j job) (reply commands.Reply) {
	defer func() {
		if r := recover(); r != nil {
			id := fmt.Sprintf("%x", time.Now().UnixNano())
			a.log.Error("handler panicked", append(j.attrs(), "error_id", id, "panic", r, "stack", string(debug.Stack()))...)
			reply = commands.Reply{Text: "Something went wrong on our side (error " + id + "). Nothing was started."}
		}
	}()
	if j.command != nil {
		return a.h.Command(ctx, *j.command)
	}
	return a.h.Click(ctx, *j.click)
}

// commandJob turns a slash command into the transport-neutral request.
func commandJob(cmd slackgo.SlashCommand) job {
	return job{
		command: &commands.Request{
			Text:        CommandText(cmd.Text),
			Plain:       plainUnlessSame(cmd.Text),
			User:        commands.Actor{ID: cmd.UserID, Name: cmd.UserName},
			ChannelID:   cmd.ChannelID,
			ChannelName: cmd.ChannelName,
		},
		responseURL: cmd.ResponseURL,
		channelID:   cmd.ChannelID,
		userID:      cmd.UserID,
	}
}

// clickJobs turns a block_actions interaction into one job per pressed button.
// Other interaction types (modals, shortcuts) are not used by ndrbot: none.
func clickJobs(cb slackgo.InteractionCallback) []job {
	if cb.Type != slackgo.InteractionTypeBlockActions {
		return nil
	}
	channel := cb.Channel.ID
	if channel == "" {
		channel = cb.Container.ChannelID
	}
	ts := cb.Container.MessageTs
	if ts == "" {
		ts = cb.Message.Timestamp
	}
	var jobs []job
	for _, act := range cb.ActionCallback.BlockActions {
		if act == nil {
			continue
		}
		jobs = append(jobs, job{
			click: &commands.Click{
				Action:     act.ActionID,
				Value:      act.Value,
				User:       commands.Actor{ID: cb.User.ID, Name: cb.User.Name},
				ChannelID:  channel,
				MessageKey: MessageKey(channel, ts),
			},
			responseURL: cb.ResponseURL,
			channelID:   channel,
			userID:      cb.User.ID,
		})
	}
	return jobs
}

// MessageKey is the platform reference of a message: "CHANNEL:TS".
func MessageKey(channel, ts string) string { return channel + ":" + ts }

// SplitMessageKey undoes MessageKey.
func SplitMessageKey(key string) (channel, ts string, ok bool) {
	channel, ts, found := strings.Cut(key, ":")
	return channel, ts, found && channel != "" && ts != ""
}
