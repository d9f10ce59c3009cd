package slackfake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ndrbot/ndrbot/slack/slackfake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func client(t *testing.T, fake *slackfake.Server, token string) *slackgo.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return slackgo.New(token, slackgo.OptionAPIURL(fake.APIURL()), slackgo.OptionHTTPClient(&http.Client{Transport: tr}),
		slackgo.OptionAppLevelToken(fake.AppToken()))
}

func TestTimestampsAreUniqueAndIncreasing(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	api := client(t, fake, fake.BotToken())
	var last string
	for i := range 50 {
		_, ts, err := api.PostMessage("C1", slackgo.MsgOptionText(fmt.Sprint(i), false))
		require.NoError(t, err)
		assert.Greater(t, ts, last)
		last = ts
	}
	assert.Len(t, fake.Messages("C1"), 50)
}

func TestWebAPIChecks(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	api := client(t, fake, fake.BotToken())
	bad := client(t, fake, "xoxb-wrong")

	_, err := bad.AuthTest()
	require.EqualError(t, err, "invalid_auth")
	_, _, err = api.StartSocketModeContext(context.Background())
	require.NoError(t, err, "the app token opens a connection")

	tooMany := make([]slackgo.Block, 51)
	for i := range tooMany {
		tooMany[i] = slackgo.NewDividerBlock()
	}
	_, _, err = api.PostMessage("C1", slackgo.MsgOptionBlocks(tooMany...))
	require.EqualError(t, err, "invalid_blocks")
	long := slackgo.NewSectionBlock(slackgo.NewTextBlockObject("mrkdwn", strings.Repeat("x", 3001), false, false), nil, nil)
	_, _, err = api.PostMessage("C1", slackgo.MsgOptionBlocks(long))
	require.EqualError(t, err, "invalid_blocks")

	fake.RateLimit("chat.postMessage", 2, 4*time.Second)
	for range 2 {
		_, _, err = api.PostMessage("C1", slackgo.MsgOptionText("x", false))
		var rl *slackgo.RateLimitedError
		require.ErrorAs(t, err, &rl)
		assert.Equal(t, 4*time.Second, rl.RetryAfter)
	}
	_, _, err = api.PostMessage("C1", slackgo.MsgOptionText("x", false))
	require.NoError(t, err)

	calls := fake.Calls("chat.postMessage")
	require.NotEmpty(t, calls)
	assert.Empty(t, calls[0].Params.Get("token"), "tokens are not recorded")
}

func TestClickPayloadParsesWithSlackGo(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	form, err := fake.ClickForm(slackfake.Click{UserID: "U1", UserName: "al", ChannelID: "C1", MessageTS: "1.000001", ActionID: "approve", Value: "a-1"})
	require.NoError(t, err)
	var cb slackgo.InteractionCallback
	require.NoError(t, json.Unmarshal([]byte(form.Get("payload")), &cb))
	assert.Equal(t, slackgo.InteractionTypeBlockActions, cb.Type)
	require.Len(t, cb.ActionCallback.BlockActions, 1)
	assert.Equal(t, "approve", cb.ActionCallback.BlockActions[0].ActionID)
	assert.Equal(t, "a-1", cb.ActionCallback.BlockActions[0].Value)
	assert.Equal(t, "1.000001", cb.Container.MessageTs)
	assert.Equal(t, "U1", cb.User.ID)
}
