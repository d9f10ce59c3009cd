package slack

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// runSocket runs Socket Mode until ctx is cancelled. slack-go reconnects by itself
// (on a "disconnect" request, a dropped connection or missing PINGs); it gives up
// only on a rejected token.
func (a *Adapter) runSocket(ctx context.Context) error {
	opts := []socketmode.Option{socketmode.OptionLog(slogOutput{a.log})}
	if a.opts.PingInterval > 0 {
		opts = append(opts, socketmode.OptionPingInterval(a.opts.PingInterval))
	}
	smc := socketmode.New(a.api, opts...)

	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan error, 1)
	wg.Go(func() { done <- smc.RunContext(ctx) })

	// Read Events continuously: slack-go stalls when its 50-slot buffer is full.
	for {
		select {
		case ev := <-smc.Events:
			a.onSocketEvent(ctx, smc, ev)
		case err := <-done:
			if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
				return nil
			}
			if err == nil {
				err = errors.New("socket mode client stopped")
			}
			var se slackgo.SlackErrorResponse
			if errors.As(err, &se) {
				return explainAppTokenErr(err)
			}
			return fmt.Errorf("slack socket mode: %w", err)
		}
	}
}

// onSocketEvent acks a request at once, then queues the work. The ack carries
// no payload: the handler's reply is delivered later through response_url.
func (a *Adapter) onSocketEvent(ctx context.Context, smc *socketmode.Client, ev socketmode.Event) {
	switch ev.Type {
	case socketmode.EventTypeSlashCommand:
		a.ack(ctx, smc, ev)
		if cmd, ok := ev.Data.(slackgo.SlashCommand); ok {
			a.enqueue(commandJob(cmd))
		}
	case socketmode.EventTypeInteractive:
		a.ack(ctx, smc, ev)
		if cb, ok := ev.Data.(slackgo.InteractionCallback); ok {
			for _, j := range clickJobs(cb) {
				a.enqueue(j)
			}
		}
	case socketmode.EventTypeEventsAPI:
		a.ack(ctx, smc, ev) // not subscribed to any; ack so Slack does not retry
	case socketmode.EventTypeConnecting:
		a.log.Debug("socket mode connecting")
	case socketmode.EventTypeConnected:
		a.connected.Store(true)
		a.log.Info("socket mode connected")
	case socketmode.EventTypeHello:
		a.log.Debug("socket mode hello")
	case socketmode.EventTypeDisconnect:
		a.connected.Store(false)
		a.log.Info("socket mode: Slack asked to reconnect")
	case socketmode.EventTypeConnectionError:
		a.connected.Store(false)
		a.log.Warn("socket mode connection failed; retrying", "err", eventErr(ev.Data))
	case socketmode.EventTypeInvalidAuth:
		a.connected.Store(false)
		a.log.Error("socket mode: app token rejected")
	case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorBadMessage, socketmode.EventTypeErrorWriteFailed:
		a.log.Warn("socket mode error", "type", string(ev.Type), "err", eventErr(ev.Data))
	}
}

// ackTimeout bounds an ack waiting for a free slot in slack-go's response queue
// (20 slots, drained by the connection's writer): past Slack's 3 s an ack is
// worthless, and waiting longer could stall the event loop during a reconnect.
const ackTimeout = 3 * time.Second

func (a *Adapter) ack(ctx context.Context, smc *socketmode.Client, ev socketmode.Event) {
	if ev.Request == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	if err := smc.AckCtx(ctx, ev.Request.EnvelopeID, nil); err != nil {
		a.log.Error("ack failed", "envelope_id", ev.Request.EnvelopeID, "err", err)
	}
}

func eventErr(data any) error {
	switch d := data.(type) {
	case *slackgo.ConnectionErrorEvent:
		return d.ErrorObj
	case *slackgo.IncomingEventError:
		return d.ErrorObj
	case *socketmode.ErrorBadMessage:
		return d.Cause
	case *socketmode.ErrorWriteFailed:
		return d.Cause
	case error:
		return d
	}
	return fmt.Errorf("%v", data)
}
