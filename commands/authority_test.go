package commands_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/slack"
	"github.com/ndrbot/ndrbot/slack/slackfake"
)

// A member removed from the approvers' user group is refused at the next click,
// although the group's members are cached for display: decisions read Slack's
// usergroups.users.list live (the fake Slack answers it).
func TestRevokedGroupMemberCannotDecide(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	t.Cleanup(fake.Close)
	fake.SetUserGroup("S0APPROVERS", "U0BOB", "U0CAROL")
	poster, err := slack.NewPoster(slack.Options{BotToken: fake.BotToken(), AppToken: fake.AppToken(), APIURL: fake.APIURL(),
		GroupTTL: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)

	f := newFixtureWith(t, "overloaded-queue", time.Now, func(o *commands.Options) {
		o.Groups = poster
		o.Access.Approvers = []string{"S0APPROVERS"}
	})
	// Warm the cache the way a display would, while Carol is still a member.
	members, err := poster.GroupMembers(t.Context(), "S0APPROVERS")
	require.NoError(t, err)
	require.Contains(t, members, "U0CAROL")

	f.diagnose(t, "diagnose 5.5.4")
	card := f.card(t, "restart-transport")

	fake.SetUserGroup("S0APPROVERS", "U0BOB") // Carol leaves the group
	assert.Contains(t, f.click("approve", card.ApprovalID, "U0CAROL", channel).Text, "Only approvers")
	assert.Contains(t, f.click("reject", card.ApprovalID, "U0CAROL", channel).Text, "Only approvers")
	assert.Zero(t, f.reliefCalls("restart-transport"))
	assert.Equal(t, commands.ApprovalPending, f.card(t, "restart-transport").State)

	assert.Contains(t, f.click("approve", card.ApprovalID, "U0BOB", channel).Text, "Approved: running restart-transport")
	f.svc.Wait()
	assert.Equal(t, 1, f.reliefCalls("restart-transport"))
}

// access.four_eyes is a floor: a playbook may ask for four eyes where the
// configuration does not, and may not waive them where it does.
func TestFourEyesIsAFloor(t *testing.T) {
	builtin, err := os.ReadFile(filepath.Join("..", "playbooks", "builtin", "ndr-5.5.4.yaml"))
	require.NoError(t, err)
	const asked = "approval: {role: approver, approvers: 1, four_eyes: true, expires: 30m}"
	require.Contains(t, string(builtin), asked, "restart-transport's policy moved: update this test")
	waived := strings.Replace(string(builtin), asked, strings.Replace(asked, "four_eyes: true", "four_eyes: false", 1), 1)

	tests := []struct {
		name            string
		config          bool
		playbook        string
		requesterMayRun bool
	}{
		{"configured on, playbook waives", true, waived, false},
		{"configured off, playbook asks", false, string(builtin), false},
		{"both off", false, waived, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "ndr-5.5.4.yaml"), []byte(tt.playbook), 0o600))
			cat, err := playbooks.Load(dir, kinds)
			require.NoError(t, err)
			f := newFixtureWith(t, "overloaded-queue", time.Now, func(o *commands.Options) {
				o.Catalog = func() *playbooks.Catalog { return cat }
				o.Access.FourEyes = tt.config
			})
			f.diagnose(t, "diagnose 5.5.4")
			card := f.card(t, "restart-transport")
			reply := f.click("approve", card.ApprovalID, requester, channel).Text
			f.svc.Wait()
			if tt.requesterMayRun {
				assert.Contains(t, reply, "Approved: running restart-transport")
				assert.Equal(t, 1, f.reliefCalls("restart-transport"))
			} else {
				assert.Contains(t, reply, "Four-eyes")
				assert.Zero(t, f.reliefCalls("restart-transport"))
			}
		})
	}
}

// Two diagnoses of one outage in two channels, approved by two people: one
// restart runs; the other click is told who ran what, where, and nothing runs.
func TestTwoChannelsOneRestart(t *testing.T) {
	f := newFixture(t, "overloaded-queue", time.Now)
	const other = "C0INC2"
	for _, ch := range []struct{ id, name string }{{channel, "inc-mail"}, {other, "inc-mail-2"}} {
		r := f.svc.Command(t.Context(), commands.Request{Text: "diagnose 5.5.4", User: incident.Actor{ID: requester, Name: "req"},
			ChannelID: ch.id, ChannelName: ch.name})
		require.Contains(t, r.Text, "Started", r.Text)
	}
	f.svc.Wait()
	first, ok := f.thread.last(channel + "/" + commands.ApprovalKey("restart-transport"))
	require.True(t, ok)
	second, ok := f.thread.last(other + "/" + commands.ApprovalKey("restart-transport"))
	require.True(t, ok)

	assert.Contains(t, f.click("approve", first.Approval.ApprovalID, approver, channel).Text, "Approved: running restart-transport")
	reply := f.click("approve", second.Approval.ApprovalID, approver2, other).Text
	f.svc.Wait()
	assert.Contains(t, reply, "restart-transport not run:")
	assert.Contains(t, reply, "ex01.lab.contoso.com")
	assert.Contains(t, reply, "nothing was run")
	assert.Equal(t, 1, f.reliefCalls("restart-transport"), "one restart of ex01")

	card, ok := f.thread.last(other + "/" + commands.ApprovalKey("restart-transport"))
	require.True(t, ok)
	assert.Equal(t, commands.ApprovalFailed, card.Approval.State)
	require.NotNil(t, card.Approval.Result)
	assert.Contains(t, card.Approval.Result.Error, "restart-transport not run:")
}
