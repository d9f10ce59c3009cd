package commands_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
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
