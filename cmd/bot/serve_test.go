package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/slack/slackfake"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/pgtest"
	"github.com/ndrbot/ndrbot/store/postgres"
	"github.com/ndrbot/ndrbot/store/sqlite"
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
		"NDRBOT_SERVER_LISTEN=127.0.0.1:0", // replicas in one test must not share a port
	}
}

// startServe runs `ndrbot serve` in-process against a fake Slack.
func startServe(t *testing.T, fake *slackfake.Server, args ...string) *served {
	t.Helper()
	return startServeEnv(t, fake, 1, nil, args...)
}

// startServeEnv starts a replica and waits until the fake has seen `nth`
// connections in all.
func startServeEnv(t *testing.T, fake *slackfake.Server, nth int, extra []string, args ...string) *served {
	t.Helper()
	return startServeDial(t, fake, nth, extra, nil, args...)
}

// startServeDial is startServeEnv with the executors' dialer (nil: the system's).
func startServeDial(t *testing.T, fake *slackfake.Server, nth int, extra []string, dial func(ctx context.Context, network, addr string) (net.Conn, error), args ...string) *served {
	t.Helper()
	// Registered first, so it runs last: after the bot has stopped, none of the
	// goroutines it started may be left (the fake's own were running already).
	// Kept-alive HTTP connections (net/http's pool, to the fakes, which close
	// them when they stop) are the transport's, not the bot's.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, before,
			goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreAnyFunction("net/http.(*conn).serve"))
	})
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{fake: fake, cancel: cancel, done: make(chan int, 1), out: &lockedBuffer{}}
	env := testEnv(append(serveEnv(fake), extra...))
	go func() {
		s.done <- run(ctx, append([]string{"serve"}, args...), stdio{in: strings.NewReader(""), out: s.out, err: s.out,
			getenv: lookupIn(env), environ: func() []string { return env }, dial: dial})
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	require.NoError(t, fake.WaitConnections(wctx, nth), "ndrbot serve did not connect:\n%s", s.out.String())
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
		t.Fatalf("ndrbot serve did not stop:\n%s", s.out.String())
		return -1
	}
}

func (s *served) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// Generous: a 429 storm backs the outbox off for several seconds per message.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
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

// diagnose types `/ndr diagnose 5.5.4` as the requester in the incident channel.
func (s *served) diagnose(t *testing.T) {
	t.Helper()
	_, err := s.fake.SlashCommand(context.Background(), slackfake.SlashCommand{UserID: requesterU, UserName: "req",
		ChannelID: incChannel, ChannelName: "inc-mail", Text: "diagnose 5.5.4"})
	require.NoError(t, err)
}

// approve presses Approve on the card as the approver.
func (s *served) approve(t *testing.T, card slackfake.Message, approval string) {
	t.Helper()
	_, err := s.fake.Click(context.Background(), slackfake.Click{UserID: approverU, ChannelID: incChannel, MessageTS: card.TS, ActionID: "approve", Value: approval})
	require.NoError(t, err)
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
	// Count once the diagnosis's last message has landed: its final edit of the
	// root, which names the state it left the run in. The outbox delivers a
	// channel's posts in the order they were stored, so by then every post and
	// coalesced checklist edit of the diagnosis has been delivered too — an event,
	// not a quiet interval that a slow machine can mistake for the end.
	s.waitFor(t, "the root to show the diagnosis finished", func() bool {
		m, ok := fake.Message(incChannel, card.ThreadTS)
		return ok && strings.Contains(m.Text, "· "+string(incident.RunAwaitingApproval)+" ·")
	})
	before := len(fake.Calls("chat.postMessage", "chat.update"))
	assert.GreaterOrEqual(t, before, 3, "root, findings and card at least")
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
			inThread = inThread || strings.Contains(string(m.Blocks), "persists after the transport restart")
		}
		for _, m := range fake.Messages(escChannel) {
			inChannel = inChannel || strings.Contains(string(m.Blocks), "persists after the transport restart")
		}
		return inThread && inChannel
	})
	assert.Equal(t, 0, s.stop(t), s.out.String())

	// Every decision is a log line an SRE can follow, with the run and the actor.
	logs := s.out.String()
	runID := regexp.MustCompile(`msg="run started" .*run=(r-[0-9a-f-]+)`).FindStringSubmatch(logs)
	require.NotNil(t, runID, logs)
	run := " .*run=" + runID[1]
	for _, want := range []string{
		`level=INFO msg=command .*verb=diagnose user=` + requesterU,
		`msg="run started"` + run + ` playbook=ndr-5.5.4 .*requester=` + requesterU,
		`msg="approval requested"` + run + ` relief=restart-transport`,
		`msg="vote refused"` + run + ` relief=restart-transport .*voter=` + requesterU,
		`msg=vote` + run + ` relief=restart-transport .*voter=` + approverU + ` .*outcome=approved`,
		`msg="relief started"` + run + ` relief=restart-transport`,
		`msg="relief finished"` + run + ` relief=restart-transport ok=`,
		`msg=escalated` + run + ` rule=persists-after-relief`,
		`msg="run ended"` + run + ` state=escalated`,
		`msg="stopping: interrupted \(SIGINT or SIGTERM\); draining"`,
		`level=INFO msg=stopped`,
	} {
		assert.Regexp(t, want, logs)
	}
}

// A 429 storm on chat.postMessage and chat.update and a dropped websocket mid-run:
// every message still arrives, once, in order.
func TestServeSurvives429StormAndReconnect(t *testing.T) {
	t.Chdir(t.TempDir())
	fake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	defer fake.Close()
	s := startServe(t, fake, "--lab", "overloaded-queue")
	ctx := context.Background()
	fake.RateLimit("chat.postMessage", 3, time.Second)
	fake.RateLimit("chat.update", 3, time.Second)

	env, err := fake.SlashCommand(ctx, slackfake.SlashCommand{UserID: requesterU, ChannelID: incChannel, ChannelName: "inc-mail", Text: "diagnose 5.5.4"})
	require.NoError(t, err)
	_, err = fake.WaitAck(ctx, env) // Slack redelivers what was not acked; the fake does not
	require.NoError(t, err)
	fake.Disconnect()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	require.NoError(t, fake.WaitConnections(wctx, 2), "the bot did not reconnect")

	card, _ := s.card(t)
	thread := fake.Thread(incChannel, card.ThreadTS)
	var kinds []string
	for _, m := range thread {
		switch {
		case strings.Contains(string(m.Blocks), "connector overloaded") && approvalButton(m.Blocks) == "":
			kinds = append(kinds, "findings")
		case approvalButton(m.Blocks) != "":
			kinds = append(kinds, "card")
		}
	}
	assert.Equal(t, []string{"findings", "card"}, kinds, "each message once, findings before the card")
	roots := 0
	for _, m := range fake.Messages(incChannel) {
		if m.ThreadTS == "" {
			roots++
		}
	}
	assert.Equal(t, 1, roots, "one root message, edited in place")
	assert.Equal(t, 0, s.stop(t), s.out.String())
}

func TestServeFailsFastOnBadTokens(t *testing.T) {
	t.Chdir(t.TempDir())
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"no bot token", []string{"NDRBOT_SLACK_API_URL=" + fake.APIURL(), "SLACK_APP_TOKEN=" + fake.AppToken()}, "slack.bot_token"},
		{"no app token", []string{"NDRBOT_SLACK_API_URL=" + fake.APIURL(), "SLACK_BOT_TOKEN=" + fake.BotToken()}, "slack.app_token"},
		{"wrong bot token", []string{"NDRBOT_SLACK_API_URL=" + fake.APIURL(), "SLACK_BOT_TOKEN=xoxb-revoked", "SLACK_APP_TOKEN=" + fake.AppToken()}, "slack.bot_token"},
		{"app token in the bot token's place", []string{"NDRBOT_SLACK_API_URL=" + fake.APIURL(), "SLACK_BOT_TOKEN=" + fake.AppToken(), "SLACK_APP_TOKEN=" + fake.AppToken()}, "slack.bot_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out lockedBuffer
			env := testEnv(tc.env)
			code := run(ctx, []string{"serve"}, stdio{in: strings.NewReader(""), out: &out, err: &out,
				getenv: lookupIn(env), environ: func() []string { return env }})
			assert.Equal(t, exitUsage, code, out.String())
			assert.Contains(t, out.String(), tc.want)
			assert.NotContains(t, out.String(), "xoxb-revoked")
		})
	}
}

// Two replicas on one PostgreSQL, both connected: the click lands on the replica
// that did not start the run, and the relief still runs exactly once.
func TestServeTwoReplicasOnePostgres(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	fake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	defer fake.Close()
	pgEnv := []string{"NDRBOT_STORE_DRIVER=postgres", "NDRBOT_STORE_DSN=" + dsn}
	t.Chdir(t.TempDir())
	// The lab's runs go to the configured PostgreSQL, which both replicas share.
	a := startServeEnv(t, fake, 1, pgEnv, "--lab", "overloaded-queue", "--lab-store", labStoreConfigured)
	ctx := context.Background()
	_, err := fake.SlashCommand(ctx, slackfake.SlashCommand{UserID: requesterU, ChannelID: incChannel, ChannelName: "inc-mail", Text: "diagnose 5.5.4"})
	require.NoError(t, err)
	card, approval := a.card(t)

	b := startServeEnv(t, fake, 2, pgEnv, "--lab", "overloaded-queue", "--lab-store", labStoreConfigured)
	fake.SendToNewest(true)
	for range 2 { // a double click, both on replica b
		_, err = fake.Click(ctx, slackfake.Click{UserID: approverU, ChannelID: incChannel, MessageTS: card.TS, ActionID: "approve", Value: approval})
		require.NoError(t, err)
	}
	b.waitFor(t, "the relief to be verified", func() bool {
		m, ok := fake.Message(incChannel, card.TS)
		return ok && strings.Contains(string(m.Blocks), "Approved by") && strings.Contains(strings.ToLower(string(m.Blocks)), "verified")
	})
	replies := []string{a.responseTo(t, 1), a.responseTo(t, 2)}
	assert.Contains(t, strings.Join(replies, "\n"), "Approved: running restart-transport")
	assert.Contains(t, strings.Join(replies, "\n"), "Already approved")

	st, err := postgres.Open(ctx, dsn, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	runs, err := st.ListRuns(ctx, store.RunFilter{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	xs, err := st.Executions(ctx, runs[0].ID)
	require.NoError(t, err)
	require.Len(t, xs, 1, "the relief ran exactly once")
	assert.Contains(t, xs[0].Owner, "serve@", "claimed by a serving replica")
	assert.Equal(t, 0, b.stop(t))
	assert.Equal(t, 0, a.stop(t))
}

// The same incident from the terminal and from Slack gives the same findings.
func TestTerminalAndSlackAgree(t *testing.T) {
	t.Chdir(t.TempDir())
	// Its run goes to a throw-away lab store, not to the one ndrbot serve keeps below.
	term := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--json")
	require.Equal(t, exitFindings, term.code, term.err)
	var rep runReport
	require.NoError(t, json.Unmarshal([]byte(term.out), &rep))

	fake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	defer fake.Close()
	// The chat run is read back from the lab store ndrbot serve keeps.
	s := startServe(t, fake, "--lab", "overloaded-queue", "--lab-store", storeFile)
	_, err := fake.SlashCommand(context.Background(), slackfake.SlashCommand{UserID: requesterU, ChannelID: incChannel, ChannelName: "inc-mail", Text: "diagnose 5.5.4"})
	require.NoError(t, err)
	s.card(t)
	require.Equal(t, 0, s.stop(t))

	st, err := sqlite.Open(context.Background(), storeFile, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	runs, err := st.ListRuns(context.Background(), store.RunFilter{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	fromSlack, err := st.Findings(context.Background(), runs[0].ID)
	require.NoError(t, err)
	assert.Equal(t, findingKeys(rep.Findings), findingKeys(fromSlack))
	props, err := st.Proposals(context.Background(), runs[0].ID)
	require.NoError(t, err)
	require.Len(t, props, 1)
	assert.Equal(t, rep.Proposals[0].Command, props[0].Command)
	assert.Equal(t, rep.Proposals[0].Hosts, props[0].Hosts)
}

// From Slack, the approved relief reaches the real PSRP executor: Restart-Service
// arrives at EX01's JEA endpoint exactly once, even under a double click, and
// never at EX02 (nor at Exchange's /PowerShell); the failed verification escalates.
func TestServeReliefOverPSRP(t *testing.T) {
	site := newPSRPSiteIn(t, "relief-fails", true)
	fake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	defer fake.Close()
	s := startServeDial(t, fake, 1, site.env, site.dial)
	ctx := context.Background()
	_, err := fake.SlashCommand(ctx, slackfake.SlashCommand{UserID: requesterU, ChannelID: incChannel, ChannelName: "inc-mail", Text: "diagnose 5.5.4"})
	require.NoError(t, err)
	card, approval := s.card(t)
	assert.Empty(t, calling(site.jea, ex01Host, "Restart-Service"), "nothing runs before approval")

	for range 2 {
		_, err = fake.Click(ctx, slackfake.Click{UserID: approverU, ChannelID: incChannel, MessageTS: card.TS, ActionID: "approve", Value: approval})
		require.NoError(t, err)
	}
	s.waitFor(t, "the escalation summary", func() bool {
		for _, m := range fake.Messages(escChannel) {
			if strings.Contains(string(m.Blocks), "persists after the transport restart") {
				return true
			}
		}
		return false
	})
	restarts := calling(site.jea, ex01Host, "Restart-Service")
	require.Len(t, restarts, 1)
	assert.Equal(t, []string{"Name=MSExchangeTransport"}, paramsOf(restarts[0]))
	assert.Empty(t, calling(site.jea, ex02Host, "Restart-Service"))
	for _, h := range []string{ex01Host, ex02Host} {
		assert.Empty(t, calling(site.exchange, h, "Restart-Service"))
	}
	assert.Equal(t, 0, s.stop(t))
	// Stopped: every runspace pool was closed on the way out.
	assert.Zero(t, site.exchange.OpenPools())
	assert.Zero(t, site.jea.OpenPools())
	site.assertOnlyCmdlets(t)
}

// HTTP mode through `ndrbot serve`: a signed slash command starts a run; a bad
// signature or an old timestamp is refused with 401 and starts nothing.
func TestServeHTTPMode(t *testing.T) {
	t.Chdir(t.TempDir())
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	const secret = "http-mode-signing-secret"
	env := testEnv(append(serveEnv(fake), "NDRBOT_SLACK_MODE=http", "NDRBOT_SLACK_LISTEN="+addr, "SLACK_SIGNING_SECRET="+secret))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--lab", "overloaded-queue"}, stdio{in: strings.NewReader(""), out: out, err: out,
			getenv: lookupIn(env), environ: func() []string { return env }})
	}()
	post := func(at time.Time, key string) int {
		form := fake.SlashCommandForm(slackfake.SlashCommand{UserID: requesterU, ChannelID: incChannel, ChannelName: "inc-mail", Text: "diagnose 5.5.4"})
		req, err := slackfake.SignedRequest(context.Background(), "http://"+addr+"/slack/commands", key, at, form)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(10 * time.Second)
	for post(time.Now(), "wrong-secret") == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // until it listens
	}
	assert.Equal(t, http.StatusUnauthorized, post(time.Now(), "wrong-secret"))
	assert.Equal(t, http.StatusUnauthorized, post(time.Now().Add(-6*time.Minute), secret))
	assert.Empty(t, fake.Messages(incChannel), "a refused request starts nothing")

	assert.Equal(t, http.StatusOK, post(time.Now(), secret))
	s := &served{fake: fake, cancel: cancel, done: done, out: out}
	s.card(t)
	cancel()
	assert.Equal(t, 0, <-done, out.String())
}

// findingKeys identifies findings by rule, severity and host, in a stable order:
// their texts carry times that differ between two runs.
func findingKeys(fs []incident.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s/%s/%s", f.Rule, f.Severity, f.Host))
	}
	sort.Strings(out)
	return out
}
