package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/slack/slackfake"
)

const (
	incChannel = "C0INC"
	escChannel = "C0ESC"
	requesterU = "U0REQ"
	approverU  = "U0APP"
)

type served struct {
	fake   *slackfake.Server
	cancel context.CancelFunc
	done   chan int
	out    *lockedBuffer
}

func serveEnv(fake *slackfake.Server) []string {
	return []string{
		"USER=ops", "SLACK_BOT_TOKEN=" + fake.BotToken(), "SLACK_APP_TOKEN=" + fake.AppToken(),
		"NDRBOT_SLACK_API_URL=" + fake.APIURL(), "NDRBOT_SLACK_CHANNELS=inc-*", "NDRBOT_SLACK_ESCALATION_CHANNEL=" + escChannel,
		"NDRBOT_ACCESS_RESPONDERS=" + requesterU, "NDRBOT_ACCESS_APPROVERS=" + approverU + "," + requesterU,
		"NDRBOT_LAB_TIME_SCALE=3000",
	}
}

// startServe runs `bot serve` in-process against a fake Slack.
func startServe(t *testing.T, fake *slackfake.Server, args ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{fake: fake, cancel: cancel, done: make(chan int, 1), out: &lockedBuffer{}}
	env := serveEnv(fake)
	go func() {
		s.done <- run(ctx, append([]string{"serve"}, args...), stdio{in: strings.NewReader(""), out: s.out, err: s.out,
			getenv: lookupIn(env), environ: func() []string { return env }})
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	require.NoError(t, fake.WaitConnections(wctx, 1), "bot serve did not connect:\n%s", s.out.String())
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *served) stop(t *testing.T) int {
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("bot serve did not stop:\n%s", s.out.String())
		return -1
	}
}

func (s *served) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, s.fake.WaitFor(ctx, cond), "waiting for %s; bot output:\n%s", what, s.out.String())
}

// approvalButton finds the approval id on a message's Approve button.
func approvalButton(blocks json.RawMessage) string {
	var bs []struct {
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	_ = json.Unmarshal(blocks, &bs)
	for _, b := range bs {
		for _, e := range b.Elements {
			if e.ActionID == "approve" {
				return e.Value
			}
		}
	}
	return ""
}

func (s *served) card(t *testing.T) (slackfake.Message, string) {
	t.Helper()
	var msg slackfake.Message
	var id string
	s.waitFor(t, "an approval card", func() bool {
		for _, m := range s.fake.Messages(incChannel) {
			if v := approvalButton(m.Blocks); v != "" {
				msg, id = m, v
				return true
			}
		}
		return false
	})
	return msg, id
}

func (s *served) responseTo(t *testing.T, prefix int) string {
	t.Helper()
	var text string
	s.waitFor(t, "a reply", func() bool {
		rs := s.fake.Responses()
		if len(rs) > prefix {
			text = rs[prefix].Text
			return true
		}
		return false
	})
	return text
}

// The whole incident from Slack: slash command → ack → thread with a live
// checklist → findings → approval card → refusals → approval by an approver →
// relief → verification → escalation summary in the thread and the escalation
// channel.
func TestServeIncidentEndToEnd(t *testing.T) {
	t.Chdir(t.TempDir())
	fake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	defer fake.Close()
	s := startServe(t, fake, "--lab", "relief-fails")
	ctx := context.Background()

	env, err := fake.SlashCommand(ctx, slackfake.SlashCommand{UserID: requesterU, UserName: "req", ChannelID: incChannel, ChannelName: "inc-mail", Text: "diagnose 5.5.4"})
	require.NoError(t, err)
	ack, err := fake.WaitAck(ctx, env)
	require.NoError(t, err)
	t.Logf("slash command acked in %s", ack.Latency)
	assert.Contains(t, s.responseTo(t, 0), "Started ndr-5.5.4")

	card, approval := s.card(t)
	assert.NotEmpty(t, card.ThreadTS, "the card is in the run's thread")
	s.waitFor(t, "the findings", func() bool {
		for _, m := range fake.Thread(incChannel, card.ThreadTS) {
			if strings.Contains(string(m.Blocks), "connector overloaded") {
				return true
			}
		}
		return false
	})
	// Let the coalesced checklist edits land before counting.
	quiet := 0
	for last := -1; quiet < 3; time.Sleep(500 * time.Millisecond) {
		n := len(fake.Calls("chat.postMessage", "chat.update"))
		if n == last {
			quiet++
		} else {
			quiet, last = 0, n
		}
	}
	before := len(fake.Calls("chat.postMessage", "chat.update"))
	t.Logf("Slack Web API calls for the diagnosis before approval: %d", before)
	assert.LessOrEqual(t, before, 8)

	// The requester may not approve their own relief; a forged value runs nothing.
	_, err = fake.Click(ctx, slackfake.Click{UserID: requesterU, ChannelID: incChannel, MessageTS: card.TS, ActionID: "approve", Value: approval})
	require.NoError(t, err)
	assert.Contains(t, s.responseTo(t, 1), "Four-eyes")
	_, err = fake.Click(ctx, slackfake.Click{UserID: approverU, ChannelID: incChannel, MessageTS: card.TS, ActionID: "approve", Value: "a-forged"})
	require.NoError(t, err)
	assert.Contains(t, s.responseTo(t, 2), "does not match any approval")

	_, err = fake.Click(ctx, slackfake.Click{UserID: approverU, ChannelID: incChannel, MessageTS: card.TS, ActionID: "approve", Value: approval})
	require.NoError(t, err)
	assert.Contains(t, s.responseTo(t, 3), "Approved: running restart-transport")

	// The card is edited in place: no buttons, who approved, the relief's outcome.
	s.waitFor(t, "the card to show the verification", func() bool {
		m, ok := fake.Message(incChannel, card.TS)
		return ok && approvalButton(m.Blocks) == "" && strings.Contains(string(m.Blocks), "Approved by") &&
			strings.Contains(strings.ToLower(string(m.Blocks)), "not verified")
	})
	// The escalation summary reaches the thread and the escalation channel.
	s.waitFor(t, "the escalation summary", func() bool {
		inThread, inChannel := false, false
		for _, m := range fake.Thread(incChannel, card.ThreadTS) {
			inThread = inThread || strings.Contains(string(m.Blocks), "persists after the queue was cleared")
		}
		for _, m := range fake.Messages(escChannel) {
			inChannel = inChannel || strings.Contains(string(m.Blocks), "persists after the queue was cleared")
		}
		return inThread && inChannel
	})
	assert.Equal(t, 0, s.stop(t), s.out.String())
}
