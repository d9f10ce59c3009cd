package incident_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ndrbot/ndrbot/incident"
)

func TestProposalDigest(t *testing.T) {
	base := incident.Proposal{ID: "restart-transport", Relief: "restart-transport", Target: "exchange",
		Hosts: []string{"ex01", "ex02"}, Command: "Restart-Service MSExchangeTransport",
		Args: map[string]any{"b": 2, "a": "x"}, Title: "Restart", Risk: "pause"}
	d := incident.ProposalDigest("v1", base)
	assert.Len(t, d, 64)
	same := base
	same.Args = map[string]any{"a": "x", "b": 2}
	same.Title, same.Risk = "other words", "other risk" // display text is not what runs
	assert.Equal(t, d, incident.ProposalDigest("v1", same))

	changes := map[string]func(p *incident.Proposal){
		"hosts":   func(p *incident.Proposal) { p.Hosts = []string{"ex01"} },
		"order":   func(p *incident.Proposal) { p.Hosts = []string{"ex02", "ex01"} },
		"command": func(p *incident.Proposal) { p.Command += " -Force" },
		"args":    func(p *incident.Proposal) { p.Args = map[string]any{"a": "y", "b": 2} },
		"target":  func(p *incident.Proposal) { p.Target = "edge" },
		"relief":  func(p *incident.Proposal) { p.Relief = "clear-queue" },
	}
	for name, change := range changes {
		p := base
		p.Args = map[string]any{"b": 2, "a": "x"}
		change(&p)
		assert.NotEqual(t, d, incident.ProposalDigest("v1", p), name)
	}
	assert.NotEqual(t, d, incident.ProposalDigest("v2", base), "playbook version")
}
