package slack_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/incident"
)

// oversize is n characters of plain text (nothing mrkdwn escapes) ending in a
// marker, so a test can tell the whole text from a cut one.
func oversize(n int, what string) string {
	const end = " ENDMARK"
	var b strings.Builder
	for i := 0; b.Len() < n-len(end); i++ {
		fmt.Fprintf(&b, "%s word %d ", what, i)
	}
	return b.String()[:n-len(end)] + end
}

// A single item longer than a section allows — one finding, one step, one
// parameter, one argument, one title — is cut to fit, and its full text is
// attached and named in the message. Neither "cut and lost" nor "not cut at all".
func TestRenderOneOversizeItem(t *testing.T) {
	long := oversize(3500, "queue")
	one := func(f func(*commands.RunView)) *commands.RunView {
		v := runView("awaiting-approval", []incident.StepResult{{Step: "queues", Title: "Queue depth", Status: incident.StepOK, Hosts: []string{"EX01"}, Duration: time.Second}})
		f(v)
		return v
	}
	card := func(f func(*incident.Proposal)) *commands.ApprovalView {
		a := approval(commands.ApprovalPending, nil, nil)
		f(&a.Proposal)
		return a
	}
	tests := []struct {
		name string
		msg  commands.Message
	}{
		{"one finding", commands.Message{RunID: "r1", Key: "findings", Findings: &commands.FindingsView{RunID: "r1",
			Findings: []incident.Finding{{Rule: "queue-overloaded", Severity: incident.SeverityCritical, Text: long, Step: "queues", Host: "EX01"}}}}},
		{"one finding's evidence", commands.Message{RunID: "r1", Key: "findings", Findings: &commands.FindingsView{RunID: "r1",
			Findings: []incident.Finding{{Rule: "queue-overloaded", Severity: incident.SeverityCritical, Text: "Queue EX01\\7 is deep", Evidence: long}}}}},
		{"one step's title", commands.Message{RunID: "r1", Key: "root", Root: one(func(v *commands.RunView) { v.Steps[0].Title = long })}},
		{"one step's error", commands.Message{RunID: "r1", Key: "root", Root: one(func(v *commands.RunView) {
			v.Steps[0].Status, v.Steps[0].Error = incident.StepFailed, long
		})}},
		{"one parameter", commands.Message{RunID: "r1", Key: "root", Root: one(func(v *commands.RunView) {
			v.Params = []commands.Param{{Name: "sender", Value: long}}
		})}},
		{"the playbook's title", commands.Message{RunID: "r1", Key: "root", Root: one(func(v *commands.RunView) { v.Title = long })}},
		{"one finding behind a proposal", commands.Message{RunID: "r1", Key: "approval:x", Approval: card(func(p *incident.Proposal) {
			p.Because = []incident.Finding{{Rule: "queue-overloaded", Severity: incident.SeverityCritical, Text: long}}
		})}},
		{"one relief argument", commands.Message{RunID: "r1", Key: "approval:x", Approval: card(func(p *incident.Proposal) {
			p.Args = map[string]any{"policy": long}
		})}},
		{"the relief's risk", commands.Message{RunID: "r1", Key: "approval:x", Approval: card(func(p *incident.Proposal) { p.Risk = long })}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := renderer.Render(tc.msg)
			require.NoError(t, err, "the renderer must cut what does not fit")
			assertWithinLimits(t, r)

			blocks, err := json.Marshal(r.Blocks)
			require.NoError(t, err)
			assert.NotContains(t, string(blocks), "ENDMARK", "the item is cut in the message")
			assert.Contains(t, string(blocks), long[:100], "the message shows its beginning")

			attached := false
			for _, f := range r.Files {
				attached = attached || strings.Contains(f.Content, long)
			}
			require.True(t, attached, "the full %d characters are attached", len(long))
			for _, f := range r.Files {
				assert.Contains(t, string(blocks), f.Name, "every attached file is named in the message")
			}
		})
	}
}
