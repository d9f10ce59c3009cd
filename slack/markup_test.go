package slack_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/slack"
)

func named(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// What Slack makes of typed text (links, addresses, entities) reads back as
// what the admin typed.
func TestCommandText(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  commands.Args
	}{
		{
			"slack mailto", "sender=<mailto:alice@contoso.com|alice@contoso.com>",
			commands.Args{Named: named("sender", "alice@contoso.com"), Order: []string{"sender"}},
		},
		{
			"slack mailto with apostrophe", "sender=<mailto:o'brien@contoso.com|o'brien@contoso.com>",
			commands.Args{Named: named("sender", "o'brien@contoso.com"), Order: []string{"sender"}},
		},
		{
			"slack link", "domain=<http://contoso.com|contoso.com>",
			commands.Args{Named: named("domain", "contoso.com"), Order: []string{"domain"}},
		},
		{
			"slack link positional", "<https://status.contoso.com|status.contoso.com> 5.5.4",
			commands.Args{Positional: []string{"status.contoso.com", "5.5.4"}, Named: named()},
		},
		{"slack link without label", "<http://contoso.com>", commands.Args{Positional: []string{"http://contoso.com"}, Named: named()}},
		{"slack mailto without label", "sender=<mailto:alice@contoso.com>", commands.Args{Named: named("sender", "alice@contoso.com"), Order: []string{"sender"}}},
		{"slack entities in link", "u=<http://x.test/?a=1&amp;b=2|x.test/?a=1&amp;b=2>", commands.Args{Named: named("u", "x.test/?a=1&b=2"), Order: []string{"u"}}},
		{"slack label with spaces", "note=<http://x.test|two words> z", commands.Args{Positional: []string{"z"}, Named: named("note", "two words"), Order: []string{"note"}}},
		{"slack user mention kept", "<@U0123ABC>", commands.Args{Positional: []string{"<@U0123ABC>"}, Named: named()}},
		{"slack channel kept", "<#C0123|ops>", commands.Args{Positional: []string{"<#C0123|ops>"}, Named: named()}},
		{"angle text that is no link", "<b>", commands.Args{Positional: []string{"<b>"}, Named: named()}},
		{"link glued to text is not unwrapped", "<http://a.test|a>b", commands.Args{Positional: []string{"<http://a.test|a>b"}, Named: named()}},
		{"entities outside links are undone", "sender=a&amp;b@contoso.com note=&lt;x&gt;", commands.Args{Named: named("sender", "a&b@contoso.com", "note", "<x>"), Order: []string{"sender", "note"}}},
		{"an entity is undone once", "x=&amp;lt;", commands.Args{Named: named("x", "&lt;"), Order: []string{"x"}}},
		{"a label with a quote", `note=<http://x.test|it's "here">`, commands.Args{Named: named("note", `it's "here"`), Order: []string{"note"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := commands.ParseArgs(slack.CommandText(tt.input))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
