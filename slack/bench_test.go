package slack_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/slack"
	"github.com/ndrbot/ndrbot/slack/slackfake"
)

// BenchmarkAckLatency measures how long Slack waits for the ack of a slash
// command when 200 arrive at once over Socket Mode: from the envelope leaving
// the fake's websocket to its ack arriving back. Handlers reply through
// response_url, as in production.
func BenchmarkAckLatency(b *testing.B) {
	const concurrent = 200
	fake := newFake(b)
	h := handlerFunc{command: func(context.Context, commands.Request) commands.Reply {
		return commands.Reply{Text: "started"}
	}}
	opts := fakeOptions(b, fake, slack.ModeSocket)
	opts.Workers = 8
	startAdapter(b, opts, h)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := fake.WaitConnections(ctx, 1); err != nil {
		b.Fatal(err)
	}

	var latencies []time.Duration
	b.ResetTimer()
	for b.Loop() {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range concurrent {
			wg.Go(func() {
				id, err := fake.SlashCommand(ctx, slackfake.SlashCommand{UserID: "U1", ChannelID: "C1", Text: "status", ChannelName: string(rune('a' + i%26))})
				if err != nil {
					b.Error(err)
					return
				}
				ack, err := fake.WaitAck(ctx, id)
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				latencies = append(latencies, ack.Latency)
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1.00), "max-ms")
	// Let the replies drain before the fake closes.
	_ = fake.WaitFor(ctx, func() bool { return len(fake.Responses()) == len(latencies) })
}
