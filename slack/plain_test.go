package slack_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/bounce"
	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/slack"
	"github.com/ndrbot/ndrbot/slack/slackfake"
)

func TestPlainText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"mailto glued in angle brackets", "From: Alice &lt;<mailto:alice@contoso.com|alice@contoso.com>&gt;", "From: Alice <alice@contoso.com>"},
		{"host glued to its address", "host <http://mx1.fabrikam.com|mx1.fabrikam.com>[203.0.113.5] said:", "host mx1.fabrikam.com[203.0.113.5] said:"},
		{"a link as a word", "Generating server: <http://EX01.contoso.com|EX01.contoso.com>", "Generating server: EX01.contoso.com"},
		{"a label with spaces is not quoted", "<http://x.test|two words>", "two words"},
		{"mailto without label", "<mailto:bob@fabrikam.com>", "bob@fabrikam.com"},
		{"entities undone once", "a &amp;lt; b &amp; c &gt; d", "a &lt; b & c > d"},
		{"entities in a label", "<http://x.test/?a=1&amp;b=2|x.test/?a=1&amp;b=2>", "x.test/?a=1&b=2"},
		{"mention kept", "<@U0123ABC> and <#C0123|ops> and <!channel>", "<@U0123ABC> and <#C0123|ops> and <!channel>"},
		{"no link across lines", "<http://a.test\n|b>", "<http://a.test\n|b>"},
		{"lines kept", "line one\n\tline two\r\n", "line one\n\tline two\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, slack.PlainText(tt.in))
		})
	}
}

// slackify writes text as Slack sends a slash command's text: &, < and >
// as entities, addresses and host names as links
// (api.slack.com/reference/surfaces/formatting, "Escaping text", "Linking to
// URLs"). Which host names Slack links is its own heuristic; every name with a
// common top-level domain stands in for it here.
var slackLinkable = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}|\b[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:com|net|org|example)\b`)

func slackify(s string) string {
	s = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
	return slackLinkable.ReplaceAllStringFunc(s, func(m string) string {
		if strings.Contains(m, "@") {
			return "<mailto:" + m + "|" + m + ">"
		}
		return "<http://" + m + "|" + m + ">"
	})
}

// Every bounce sample reads the same through Slack's markup and PlainText as
// it does raw: the codes, the recipient, the servers and the sender.
func TestPlainTextKeepsBounces(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "bounce", "testdata", "*"))
	require.NoError(t, err)
	type read struct {
		Err                                                         string
		Status, Reply, Recipient, Domain, Sender, Reporting, Remote string
	}
	of := func(text string) read {
		b, err := bounce.Parse([]byte(text))
		r := read{}
		if err != nil {
			r.Err = err.Error()
		}
		if b != nil {
			r.Status, r.Reply, r.Recipient, r.Domain, r.Sender, r.Reporting, r.Remote =
				b.Status, b.Reply, b.Recipient, b.RecipientDomain, b.Sender, b.ReportingMTA, b.RemoteMTA
		}
		return r
	}
	marked := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".md") {
			continue
		}
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		sent := slackify(string(data))
		if sent != string(data) {
			marked++
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			assert.Equal(t, of(string(data)), of(slack.PlainText(sent)))
		})
	}
	assert.GreaterOrEqual(t, marked, 10, "samples Slack's markup changes")
}

// A pasted bounce reaches the handler with its prose decoded in Plain; a
// typed command has no Plain (its Text is plain).
func TestSocketIntakePlain(t *testing.T) {
	fake := newFake(t)
	got := make(chan commands.Request, 2)
	startAdapter(t, fakeOptions(t, fake, slack.ModeSocket), handlerFunc{
		command: func(_ context.Context, r commands.Request) commands.Reply { got <- r; return commands.Reply{} },
	})
	ctx := waitCtx(t)
	paste := "diagnose\nFrom: Alice &lt;<mailto:alice@contoso.com|alice@contoso.com>&gt;\nRemote Server returned '550 5.5.4 Service unavailable'"
	_, err := fake.SlashCommand(ctx, slackfake.SlashCommand{UserID: "U1", ChannelID: "C1", Text: paste})
	require.NoError(t, err)
	r := recv(t, got)
	assert.Equal(t, "diagnose\nFrom: Alice <<mailto:alice@contoso.com|alice@contoso.com>>\nRemote Server returned '550 5.5.4 Service unavailable'", r.Text)
	assert.Equal(t, "diagnose\nFrom: Alice <alice@contoso.com>\nRemote Server returned '550 5.5.4 Service unavailable'", r.Plain)

	_, err = fake.SlashCommand(ctx, slackfake.SlashCommand{UserID: "U1", ChannelID: "C1", Text: "diagnose 5.5.4 sender=<mailto:a@contoso.com|a@contoso.com>"})
	require.NoError(t, err)
	r = recv(t, got)
	assert.Equal(t, "diagnose 5.5.4 sender=a@contoso.com", r.Text)
	assert.Empty(t, r.Plain)
}
