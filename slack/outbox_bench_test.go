package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/slack"
	"github.com/ndrbot/ndrbot/slack/slackfake"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/outbox"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

// BenchmarkOutboxChannels: an NDR storm's threads in 50 channels — each a root,
// its findings and an escalation per diagnosis — queued at once and delivered
// through the real Thread, Sender, Poster and Dispatcher to the Slack fake, which
// refuses a channel's second post inside its 1-second limit (429). The floor is
// the limit itself: with n posts in a channel the last cannot go out before
// (n-1) seconds, so x-allowed = that ideal span / the measured span (1 = every
// channel sent at Slack's pace). It also checks nothing was lost, sent twice or
// reordered within a thread.
func BenchmarkOutboxChannels(b *testing.B) {
	const (
		channels  = 50
		runsPerCh = 4 // 3 posts each: 12 per channel, 600 in all
		interval  = time.Second
	)
	for b.Loop() {
		b.StopTimer()
		fake := slackfake.New(slackfake.Options{PingInterval: time.Second, ChannelInterval: interval})
		st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ndrbot.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		opts := fakeOptions(b, fake, slack.ModeSocket)
		opts.PostInterval, opts.PostBurst = interval, 1
		poster, err := slack.NewPoster(opts)
		if err != nil {
			b.Fatal(err)
		}
		disp := &outbox.Dispatcher{Queue: st, Sender: slack.NewSender(st, poster, slack.Renderer{}, slog.New(slog.DiscardHandler)),
			Owner: "bench", Poll: 50 * time.Millisecond}
		thread := slack.NewThread(st, slack.ThreadOptions{Notify: disp.Notify})
		ctx := context.Background()
		for c := range channels {
			ch := fmt.Sprintf("C0%03d", c)
			for r := range runsPerCh {
				run, err := st.CreateRun(ctx, store.NewRun{Playbook: "ndr-5.5.4", PlaybookVersion: "v", Params: json.RawMessage(`{}`),
					Requester: incident.Actor{ID: "U1", Name: "u"}, Origin: "slack", Chat: store.ChatRef{Channel: ch}, Owner: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				title := fmt.Sprintf("5.5.4 storm %d", r)
				for _, m := range []commands.Message{
					{RunID: run.ID, Channel: ch, Key: commands.KeyRoot, Root: &commands.RunView{RunID: run.ID, Playbook: "ndr-5.5.4", Title: title, State: string(incident.RunDiagnosing)}},
					{RunID: run.ID, Channel: ch, Key: commands.KeyFindings, Findings: &commands.FindingsView{RunID: run.ID,
						Findings: []incident.Finding{{Severity: incident.SeverityCritical, Text: "Submission queue on ex01 holds 1532 messages"}}}},
					{RunID: run.ID, Channel: ch, Key: commands.KeyEscalation, Escalation: &commands.EscalationView{RunID: run.ID, Playbook: "ndr-5.5.4", Title: title}},
				} {
					if err := thread.Publish(ctx, m); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- disp.Run(runCtx) }()
		want := channels * runsPerCh * 3
		deadline := time.Now().Add(5 * time.Minute)
		for countPosts(fake, channels) < want && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		span := time.Since(start)
		b.StopTimer()
		stop()
		<-done
		thread.Close()
		checkDelivery(b, fake, channels, runsPerCh)
		ideal := time.Duration(runsPerCh*3-1) * interval
		b.ReportMetric(span.Seconds(), "s-to-deliver")
		b.ReportMetric(float64(want)/span.Seconds(), "posts/s")
		b.ReportMetric(ideal.Seconds()/span.Seconds(), "x-allowed")
		b.ReportMetric(float64(fake.Throttled()), "429s")
		_ = st.Close()
		fake.Close()
		b.StartTimer()
	}
}

func countPosts(fake *slackfake.Server, channels int) int {
	n := 0
	for c := range channels {
		n += len(fake.Messages(fmt.Sprintf("C0%03d", c)))
	}
	return n
}

// checkDelivery: every thread has its root and two replies, once each, the
// replies in the root's thread and after it.
func checkDelivery(b *testing.B, fake *slackfake.Server, channels, runsPerCh int) {
	for c := range channels {
		msgs := fake.Messages(fmt.Sprintf("C0%03d", c))
		roots := map[string]bool{}
		for _, m := range msgs {
			if m.ThreadTS == "" {
				roots[m.TS] = true
				continue
			}
			if !roots[m.ThreadTS] {
				b.Fatalf("channel %d: a reply posted before its root (thread %s)", c, m.ThreadTS)
			}
		}
		if len(roots) != runsPerCh || len(msgs) != runsPerCh*3 {
			b.Fatalf("channel %d: %d roots and %d messages, want %d and %d", c, len(roots), len(msgs), runsPerCh, runsPerCh*3)
		}
	}
}
