package slack_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
)

// choiceCases are the message that asks which playbook fits a pasted bounce:
// pending with a button per playbook, and after a responder chose. The bounce
// is watch/testdata/ndr/ex2019-440.txt as commands reads it; its recipient
// domain is given a "<!channel>" to show that the bounce's text is escaped.
func choiceCases() map[string]commands.Message {
	at := time.Date(2026, 11, 23, 9, 45, 0, 0, time.UTC)
	v := commands.ChoiceView{ChoiceID: "6f1c0a9e52d4b7a3",
		Read:      "451 4.4.0 for carol@northwind.example from ex02.contoso.com, recipient domain northwind.example <!channel>",
		Requester: alice, At: at, ExpiresAt: at.Add(commands.ChoiceTTL),
		Options: []commands.ChoiceOption{
			{Playbook: "ndr-5.5.4", Title: "NDR 5.5.4 Service Unavailable",
				Reason:  `matches "451 4.4.0": the status for carol@northwind.example is 451 4.4.0`,
				Command: "/ndr diagnose ndr-5.5.4", Button: "41:6f1c0a9e52d4b7a3:ndr-5.5.4"},
			{Playbook: "smtp-421", Title: "SMTP 421 too many connections",
				Reason:  `matches "421 4.3.2": the reply behind the report's 451 4.4.0 for carol@northwind.example is 421 4.3.2`,
				Params:  []commands.Param{{Name: "domain", Value: "northwind.example"}},
				Command: "/ndr diagnose smtp-421 domain=northwind.example", Button: "41:6f1c0a9e52d4b7a3:smtp-421"},
			{Playbook: "hybrid-tls", Title: "Hybrid certificate trouble", Reason: `matches "4.4.317": the status is 450 4.4.317`,
				Missing: []string{"connector"}, Command: "/ndr diagnose hybrid-tls connector=<identity>"},
		}}
	chosen := v
	chosen.Options = append([]commands.ChoiceOption(nil), v.Options...)
	chosen.Chosen = &commands.ChoiceMade{Playbook: "smtp-421", By: bob, At: at.Add(2 * time.Minute), RunID: "r-20261123-0e10"}
	msg := func(v commands.ChoiceView) commands.Message {
		return commands.Message{Channel: "C0INC", TopLevel: true, Key: commands.ChoiceKey(v.ChoiceID), Choice: &v}
	}
	return map[string]commands.Message{"choice-pending": msg(v), "choice-chosen": msg(chosen)}
}

// A button per playbook that can start (its value the stored choice's, for
// the store to check), none once one was chosen; the bounce's text escaped.
func TestRenderChoice(t *testing.T) {
	for name, m := range choiceCases() {
		t.Run(name, func(t *testing.T) {
			r, err := renderer.Render(m)
			require.NoError(t, err)
			raw := prettyJSON(t, r)
			assert.NotContains(t, raw, "<!channel>", "bounce text is escaped")
			assert.Contains(t, raw, "&lt;!channel&gt;")
			assert.Contains(t, raw, "/ndr diagnose hybrid-tls connector=&lt;identity&gt;", "a playbook that needs more says how to start it")
			if m.Choice.Chosen == nil {
				assert.Equal(t, 2, strings.Count(raw, `"action_id": "`+commands.ActionChoosePlaybook+`"`))
				assert.Contains(t, raw, `"value": "41:6f1c0a9e52d4b7a3:smtp-421"`)
				assert.Contains(t, r.Text, "Several playbooks fit this bounce")
			} else {
				assert.NotContains(t, raw, `"action_id"`, "no buttons once chosen")
				assert.Contains(t, raw, "`smtp-421` by <@U02BOB> at 09:47 UTC")
				assert.Contains(t, raw, "To run it as well: `/ndr diagnose ndr-5.5.4`")
			}
			assertWithinLimits(t, r)
		})
	}
}
