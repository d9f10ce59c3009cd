package playbooks_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

// firstFinding records when the first finding arrived.
type firstFinding struct {
	once sync.Once
	at   time.Time
}

func (f *firstFinding) Observe(_ context.Context, ev incident.Event) {
	if ev.Kind == incident.EventFinding {
		f.once.Do(func() { f.at = time.Now() })
	}
}

// BenchmarkDiagnoseNDR554 runs the ndr-5.5.4 diagnosis with every simulated call
// taking 200ms. The longest dependency chain is one round of independent steps,
// then port25 (it needs connectors) and the sender's mailbox where it runs (it
// needs queues and tracking), then the relief's preview (after every step): a
// sequential runbook pays for every call in turn.
//
//	go test ./playbooks -run '^$' -bench DiagnoseNDR554 -benchtime 10x
func BenchmarkDiagnoseNDR554(b *testing.B) {
	const latency = 200 * time.Millisecond
	for _, bc := range []struct {
		scenario string
		chain    time.Duration // the longest dependency chain in calls
	}{
		{"healthy", 2 * latency},          // connectors → port25; the mailbox skipped, nothing proposed
		{"overloaded-queue", 3 * latency}, // connectors → port25 → restart-transport preview
		{"throttled-sender", 3 * latency}, // queues → mailbox (and port25) → adjust-throttling preview
	} {
		b.Run(bc.scenario, func(b *testing.B) {
			pb := builtin(b, "5.5.4")
			b.ReportAllocs()
			var first, wall time.Duration
			for b.Loop() {
				l, err := lab.New(bc.scenario, lab.Options{Latency: latency})
				if err != nil {
					b.Fatal(err)
				}
				eng := playbooks.NewEngine(labTargetsFor(l), playbooks.Options{})
				ff := &firstFinding{}
				start := time.Now()
				run := playbooks.NewRun("r-bench", pb, map[string]any{}, start, ff)
				if err := eng.Diagnose(context.Background(), run); err != nil {
					b.Fatal(err)
				}
				wall += time.Since(start)
				first += ff.at.Sub(start)
			}
			n := float64(b.N)
			b.ReportMetric(float64(wall.Milliseconds())/n, "wall-ms/op")
			b.ReportMetric(float64(first.Milliseconds())/n, "first-finding-ms/op")
			b.ReportMetric(float64(bc.chain.Milliseconds()), "chain-ms")
			b.ReportMetric(float64(wall)/n/float64(bc.chain), "wall/chain")
		})
	}
}
