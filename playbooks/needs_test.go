package playbooks_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/executors/registry"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

const chainPlaybook = `id: chain
title: A step that needs another, and one that also reads a finding
steps:
  queues:
    target: exchange
    cmdlet: Get-Queue
    args: {Server: "{{ host }}"}
  again:
    target: exchange
    cmdlet: Get-Queue
    args: {Server: "{{ host }}"}
    needs: [queues]
  after-finding:
    target: exchange
    cmdlet: Get-Queue
    args: {Server: "{{ host }}"}
    needs: [queues]
    when: found("queues-read")
rules:
  - id: queues-read
    when: len(steps.queues) > 0
    severity: info
    finding: "{{ len(steps.queues) }} queues read"
`

// holdObserver holds the observer call for the first step's result until a
// step that needs it has started, or until hold has passed; it notes the order
// of what it saw.
type holdObserver struct {
	hold    time.Duration
	started map[string]chan struct{}

	mu  sync.Mutex
	seq []string
}

func (o *holdObserver) note(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq = append(o.seq, s)
}

func (o *holdObserver) index(s string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, x := range o.seq {
		if x == s {
			return i
		}
	}
	return -1
}

func (o *holdObserver) Observe(_ context.Context, ev incident.Event) {
	switch {
	case ev.Kind == incident.EventStepStarted:
		o.note("started " + ev.Step.Step)
		if ch, ok := o.started[ev.Step.Step]; ok {
			close(ch)
		}
	case ev.Kind == incident.EventStepFinished && ev.Step.Step == "queues":
		select { // a slow durable write or chat post of the result
		case <-o.started["again"]:
		case <-time.After(o.hold):
		}
		o.note("finished queues")
	case ev.Kind == incident.EventFinding:
		o.note("found " + ev.Finding.Rule)
	}
}

// A step starts as soon as the result of what it needs is in: it does not wait
// for that result's observers (the store, the chat thread) or for the rules it
// completes — unless it reads findings, and then it does.
func TestNeedsStartOnTheResult(t *testing.T) {
	pb, err := playbooks.Parse("chain.yaml", []byte(chainPlaybook), labTargets, registry.Kinds()...)
	require.NoError(t, err)
	l, err := lab.New("healthy", lab.Options{})
	require.NoError(t, err)
	eng := playbooks.NewEngine(labTargetsFor(l), playbooks.Options{})
	obs := &holdObserver{hold: 5 * time.Second, started: map[string]chan struct{}{"again": make(chan struct{})}}
	run := playbooks.NewRun("r-1", pb, map[string]any{}, time.Now(), obs)

	start := time.Now()
	require.NoError(t, eng.Diagnose(context.Background(), run))
	assert.Less(t, time.Since(start), obs.hold, "again did not wait for the observers of queues")

	assert.Less(t, obs.index("started again"), obs.index("finished queues"))
	assert.Less(t, obs.index("found queues-read"), obs.index("started after-finding"),
		"a step that reads findings starts after the rules of its needs")
	assert.Len(t, run.Steps(), 3)
	for _, s := range run.Steps() {
		assert.Equal(t, incident.StepOK, s.Status, s.Step)
	}
}
