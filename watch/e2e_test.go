package watch_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/slack"
	"github.com/ndrbot/ndrbot/slack/slackfake"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/outbox"
	"github.com/ndrbot/ndrbot/watch"
)

const responder = "U0REQ"

func service(t *testing.T, st store.Store, th commands.Thread, cat *playbooks.Catalog, groups commands.Groups) (*commands.Service, *lab.Lab) {
	t.Helper()
	l, err := lab.New("overloaded-queue", lab.Options{})
	require.NoError(t, err)
	svc := commands.New(commands.Options{
		Catalog: func() *playbooks.Catalog { return cat },
		Engine:  playbooks.NewEngine(l.Targets(kinds), playbooks.Options{WaitScale: 3000, History: store.ReliefHistory{Store: st}}),
		Store:   st, Thread: th, Groups: groups, Owner: "watch-test",
		Access: commands.Access{Responders: []string{responder}, Approvers: []string{"U0APP"}, Channels: []string{"inc-*"}, FourEyes: true},
	})
	t.Cleanup(svc.Close)
	return svc, l
}

// The storm's alert carries a button that starts ndr-5.5.4 against the lab.
func TestStormAlertButtonStartsTheDiagnosis(t *testing.T) {
	r := newRig(t)
	svc, l := service(t, r.st, r.th, r.cat, nil)
	w := r.watcher(t, r.st)
	r.clock.Advance(4 * time.Minute)
	r.src.Deliver(storm(t, "s", 37, 12, t0, 6*time.Second)...)
	r.poll(t, w)
	alerts := r.th.alerts()
	require.Len(t, alerts, 1)
	v := alerts[0].Alert

	reply := svc.Click(context.Background(), commands.Click{Action: commands.ActionRunDiagnosis, Value: v.Button,
		User: incident.Actor{ID: responder, Name: "req"}, ChannelID: alerts[0].Channel})
	require.Contains(t, reply.Text, "Started ndr-5.5.4", reply.Text)
	svc.Wait()
	runs, err := r.st.ListRuns(context.Background(), store.RunFilter{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, "ndr-5.5.4", runs[0].Playbook)
	assert.NotEqual(t, string(incident.RunDiagnosing), string(runs[0].State), "the diagnosis ran to its end")
	assert.NotEmpty(t, l.Calls(), "the playbook's steps reached the lab")
	edited := r.th.versions(alertChannel + "/" + commands.WatchAlertKey(v.AlertID))
	require.Len(t, edited, 2, "posted, then edited once")
	assert.Equal(t, responder, edited[1].Alert.DiagnosisBy.ID)
}

// The same through Slack: the watch posts through the outbox-backed thread to a
// fake Slack, a responder clicks Run diagnosis there, the run's thread appears.
func TestStormEndToEndThroughSlack(t *testing.T) {
	r := newRig(t)
	r.clock = newClock(time.Now()) // the outbox and the adapter run on the wall clock
	fake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	defer fake.Close()
	st := openStore(t, r.path+"-slack", time.Now)
	opts := slack.Options{BotToken: fake.BotToken(), AppToken: fake.AppToken(), APIURL: fake.APIURL()}
	poster, err := slack.NewPoster(opts)
	require.NoError(t, err)
	disp := &outbox.Dispatcher{Queue: st, Sender: slack.NewSender(st, poster, slack.Renderer{}, nil), Owner: "watch-e2e",
		Poll: 20 * time.Millisecond, MinBackoff: 20 * time.Millisecond}
	th := slack.NewThread(st, slack.ThreadOptions{Notify: disp.Notify, Interval: 50 * time.Millisecond})
	svc, _ := service(t, st, th, r.cat, poster)
	ad, err := slack.New(opts, poster, svc)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = disp.Run(ctx) }()
	go func() { _ = ad.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	require.NoError(t, fake.WaitConnections(wctx, 1))

	w, err := watch.New(watch.Options{Key: watchKey, Mailbox: "postmaster@contoso.com", Source: r.src, Store: st, Thread: th,
		Channel: alertChannel, Playbooks: watch.CatalogPlaybooks(func() *playbooks.Catalog { return r.cat }),
		Threshold: 20, Window: 5 * time.Minute, Cooldown: 30 * time.Minute, Now: time.Now})
	require.NoError(t, err)
	r.src.Deliver(storm(t, "s", 37, 12, time.Now().Add(-4*time.Minute), 6*time.Second)...)
	res, err := w.Poll(ctx)
	require.NoError(t, err)
	require.Len(t, res.Alerts, 1)
	_, err = w.Poll(ctx) // a quiet round posts nothing more
	require.NoError(t, err)

	var alert slackfake.Message
	var value string
	require.NoError(t, fake.WaitFor(wctx, func() bool {
		for _, m := range fake.Messages(alertChannel) {
			if v := button(m.Blocks, commands.ActionRunDiagnosis); v != "" {
				alert, value = m, v
				return true
			}
		}
		return false
	}), "the alert reaches Slack with its button")
	assert.Equal(t, "5.5.4", value)
	assert.Contains(t, alert.Text, "NDR 5.5.4 spike: 37 in 5 min across 12 domains")
	assert.Empty(t, alert.ThreadTS, "top level in the alert channel")

	_, err = fake.Click(wctx, slackfake.Click{UserID: responder, UserName: "req", ChannelID: alertChannel, MessageTS: alert.TS,
		ActionID: commands.ActionRunDiagnosis, Value: value})
	require.NoError(t, err)
	require.NoError(t, fake.WaitFor(wctx, func() bool {
		for _, r := range fake.Responses() {
			if strings.Contains(r.Text, "Started ndr-5.5.4") {
				return true
			}
		}
		return false
	}), "the responder is told the run started: %+v", fake.Responses())
	require.NoError(t, fake.WaitFor(wctx, func() bool {
		m, ok := fake.Message(alertChannel, alert.TS)
		return ok && button(m.Blocks, commands.ActionRunDiagnosis) == "" && strings.Contains(string(m.Blocks), "started by")
	}), "the alert loses its button and says who started the diagnosis")
	require.NoError(t, fake.WaitFor(wctx, func() bool {
		for _, m := range fake.Messages(alertChannel) {
			if m.TS != alert.TS && strings.Contains(string(m.Blocks), "ndr-5.5.4") && len(fake.Thread(alertChannel, m.TS)) > 1 {
				return true
			}
		}
		return false
	}), "the run's thread is in the alert channel")

	alerts := 0
	for _, m := range fake.Messages(alertChannel) {
		if strings.Contains(m.Text, "spike") {
			alerts++
		}
	}
	assert.Equal(t, 1, alerts, "one alert in Slack")
}

// button returns the value of the button with actionID in Block Kit blocks.
func button(blocks json.RawMessage, actionID string) string {
	var bs []struct {
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	_ = json.Unmarshal(blocks, &bs)
	for _, b := range bs {
		for _, e := range b.Elements {
			if e.ActionID == actionID {
				return e.Value
			}
		}
	}
	return ""
}
