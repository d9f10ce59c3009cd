package commands_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

const alertChannel = "C0ESC" // not in access.channels (inc-*): the alert's own channel

// postAlert records an alert as the watch does and returns it.
func (f *fixture) postAlert(t *testing.T, code, button string) store.WatchAlert {
	t.Helper()
	v := commands.AlertView{Code: code, Messages: 37, Domains: 12, Window: 5 * time.Minute, Threshold: 20,
		Mailbox: "postmaster@contoso.com", Button: button, Playbook: "ndr-5.5.4"}
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	a, created, err := f.st.ClaimWatchAlert(context.Background(), store.NewWatchAlert{Watch: "postmaster@contoso.com/inbox", Code: code,
		Channel: alertChannel, Button: button, Messages: 37, Domains: 12, View: raw, At: time.Now()}, time.Minute)
	require.NoError(t, err)
	require.True(t, created)
	return a
}

func TestRunDiagnosisButton(t *testing.T) {
	f := newFixture(t, "overloaded-queue", time.Now)
	ctx := context.Background()
	a := f.postAlert(t, "5.5.4", "5.5.4")

	// Refusals start nothing and are audited.
	refusals := []struct {
		name, value, user, channel, want string
	}{
		{"forged value", "5.1.1", requester, alertChannel, "does not match any NDR alert"},
		{"another channel", "5.5.4", requester, "C0OTHER", "does not match any NDR alert"},
		{"not a responder", "5.5.4", stranger, alertChannel, "Only responders"},
	}
	for _, r := range refusals {
		reply := f.click(commands.ActionRunDiagnosis, r.value, r.user, r.channel)
		assert.Contains(t, reply.Text, r.want, r.name)
	}
	runs, err := f.st.ListRuns(ctx, store.RunFilter{})
	require.NoError(t, err)
	assert.Empty(t, runs, "no refused click started a run")
	var refused int
	for e, err := range f.st.Events(ctx, audit.Filter{Kinds: []audit.Kind{"refused"}}) {
		require.NoError(t, err)
		refused++
		_ = e
	}
	assert.Equal(t, len(refusals), refused)

	// A responder's click starts ndr-5.5.4 in the alert's channel.
	reply := f.svc.Click(ctx, commands.Click{Action: commands.ActionRunDiagnosis, Value: "5.5.4",
		User: incident.Actor{ID: requester, Name: "req"}, ChannelID: alertChannel})
	require.Contains(t, reply.Text, "Started ndr-5.5.4", reply.Text)
	f.svc.Wait()
	runs, err = f.st.ListRuns(ctx, store.RunFilter{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, "ndr-5.5.4", runs[0].Playbook)
	assert.Equal(t, alertChannel, runs[0].Chat.Channel)
	assert.Equal(t, requester, runs[0].Requester.ID)
	_, ok := f.thread.last(alertChannel + "/" + commands.KeyRoot)
	assert.True(t, ok, "the run's thread is in the alert channel")

	// The alert card now says who started it (and loses its button when rendered).
	card, ok := f.thread.last(alertChannel + "/" + commands.WatchAlertKey(a.ID))
	require.True(t, ok, "the alert card is edited")
	require.NotNil(t, card.Alert)
	assert.Equal(t, requester, card.Alert.DiagnosisBy.ID)
	assert.True(t, card.TopLevel)

	// A second click (a double click, or a second replica's) starts nothing more.
	reply = f.click(commands.ActionRunDiagnosis, "5.5.4", requester, alertChannel)
	assert.Contains(t, reply.Text, "already started the diagnosis")
	f.svc.Wait()
	runs, err = f.st.ListRuns(ctx, store.RunFilter{})
	require.NoError(t, err)
	assert.Len(t, runs, 1)
}

func TestRunDiagnosisButtonWithParameters(t *testing.T) {
	f := newFixture(t, "concurrency-too-high", time.Now)
	f.postAlert(t, "4.3.2", "4.3.2 domain=fabrikam.com")
	reply := f.svc.Click(context.Background(), commands.Click{Action: commands.ActionRunDiagnosis, Value: "4.3.2 domain=fabrikam.com",
		User: incident.Actor{ID: requester}, ChannelID: alertChannel})
	require.Contains(t, reply.Text, "Started smtp-421", reply.Text)
	f.svc.Wait()
	runs, err := f.st.ListRuns(context.Background(), store.RunFilter{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	var params map[string]string
	require.NoError(t, json.Unmarshal(runs[0].Params, &params))
	assert.Equal(t, "fabrikam.com", params["domain"], "the button's parameter reaches the run")
}

func TestAlertHeadline(t *testing.T) {
	v := commands.AlertView{Code: "5.5.4", Messages: 37, Domains: 12, Window: 5 * time.Minute}
	assert.Equal(t, "NDR 5.5.4 spike: 37 in 5 min across 12 domains", v.Headline())
	v.Domains, v.Window = 1, 2*time.Hour
	assert.Equal(t, "NDR 5.5.4 spike: 37 in 2 h across 1 domain", v.Headline())
	v.Domains, v.Window = 0, 90*time.Second
	assert.Equal(t, "NDR 5.5.4 spike: 37 in 1m30s", v.Headline())
}
