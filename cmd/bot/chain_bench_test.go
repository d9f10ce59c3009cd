package main

import (
	"testing"
	"time"
)

// BenchmarkDiagnoseProcessChain times `ndrbot diagnose 5.5.4 --lab SCENARIO` as a
// whole process with every simulated call taking 200 ms (lab.latency), against
// the longest dependency chain of its calls — the least any diagnosis could
// take (playbooks.BenchmarkDiagnoseNDR554 names the chains, from the
// playbook's needs and what each scenario runs): wall/chain is what
// start-up, the store, the engine and exit add, process start included. The
// hello-world floor is timed alternately in the same run, so a loaded machine
// shows as a slow floor.
//
//	go test ./cmd/bot -run '^$' -bench DiagnoseProcessChain -benchtime 5x
func BenchmarkDiagnoseProcessChain(b *testing.B) {
	const latency = 200 * time.Millisecond
	for _, bc := range []struct {
		scenario string
		calls    int   // the longest dependency chain, in calls
		exit     []int // how the diagnosis ends
	}{
		{"healthy", 2, []int{exitHealthy}},           // connectors → port25
		{"throttled-sender", 3, []int{exitFindings}}, // queues → the sender's mailbox → the relief's preview
	} {
		b.Run(bc.scenario, func(b *testing.B) {
			p := newProcessBench(b, "NDRBOT_LAB_LATENCY="+latency.String())
			var bot, floor time.Duration
			for b.Loop() {
				floor += p.floor()
				bot += p.bot(bc.exit, "diagnose", "5.5.4", "--lab", bc.scenario)
			}
			n := float64(b.N)
			chain := time.Duration(bc.calls) * latency
			wall := time.Duration(float64(bot) / n)
			if wall < chain {
				b.Fatalf("%s took %s, less than its chain of %d calls: the playbook's chain is shorter now, fix calls", bc.scenario, wall, bc.calls)
			}
			b.ReportMetric(float64(wall.Microseconds())/1000, "wall-ms")
			b.ReportMetric(float64(chain.Milliseconds()), "chain-ms")
			b.ReportMetric(float64(wall)/float64(chain), "wall/chain")
			b.ReportMetric(float64((wall-chain).Microseconds())/1000, "over-chain-ms")
			b.ReportMetric(float64(floor.Microseconds())/1000/n, "hello-ms")
		})
	}
}
