package slack

import (
	"fmt"
	"strings"

	slackgo "github.com/slack-go/slack"

	"github.com/ndrbot/ndrbot/commands"
)

// choice renders the question which playbook to run for a pasted bounce: what
// was read, then one section per fitting playbook, best first — why it fits,
// the values read for its parameters, and its button (action_id
// "choose-playbook") — until a responder chooses; then who chose which and
// the run it started, with the command that starts each other one by hand.
// Everything read from the bounce is escaped.
func (r Renderer) choice(b *builder, v *commands.ChoiceView) {
	title, icon := "Several playbooks fit this bounce: which one?", ":mag: "
	if v.Chosen != nil {
		title, icon = "Playbook chosen for this bounce", ":white_check_mark: "
	}
	b.header(icon + title)
	b.section("*Read:* " + escape(v.Read))
	for i, o := range v.Options {
		var md strings.Builder
		fmt.Fprintf(&md, "*%d.* %s", i+1, code(o.Playbook))
		if o.Title != "" {
			md.WriteString(" — " + escape(o.Title))
		}
		if o.Reason != "" {
			md.WriteString("\n_" + escape(o.Reason) + "_")
		}
		if len(o.Params) > 0 {
			ps := make([]string, 0, len(o.Params))
			for _, p := range o.Params {
				val, _ := excerpt(p.Value, 200, code)
				ps = append(ps, code(p.Name)+" = "+val)
			}
			md.WriteString("\nFrom the bounce: " + strings.Join(ps, ", "))
		}
		chosen := v.Chosen != nil && v.Chosen.Playbook == o.Playbook
		switch {
		case len(o.Missing) > 0:
			names := make([]string, len(o.Missing))
			for j, m := range o.Missing {
				names[j] = code(m)
			}
			md.WriteString("\nThe bounce does not say " + strings.Join(names, ", ") + "; start it by hand: " + code(o.Command))
		case v.Chosen != nil && !chosen:
			md.WriteString("\nTo run it as well: " + code(o.Command))
		}
		b.section(md.String())
		if o.Button != "" && v.Chosen == nil {
			label := cutRunes("Run "+o.Playbook, 75)
			confirm := "Start " + o.Playbook + " in this channel with the values read from the bounce."
			btn := slackgo.NewButtonBlockElement(commands.ActionChoosePlaybook, o.Button, plainText(label)).
				WithConfirm(slackgo.NewConfirmationBlockObject(plainText("Run "+cutRunes(o.Playbook, 90)+"?"), plainText(cutRunes(confirm, 300)),
					plainText("Run it"), plainText("Cancel")))
			if i == 0 {
				btn = btn.WithStyle(slackgo.StylePrimary)
			}
			if s, ok := b.blocks[len(b.blocks)-1].(*slackgo.SectionBlock); ok {
				s.Accessory = slackgo.NewAccessory(btn)
			}
		}
	}
	if c := v.Chosen; c != nil {
		fs := []field{{"Chosen", code(c.Playbook) + " by " + mention(c.By) + " at " + clock(c.At)}}
		if c.RunID != "" {
			fs = append(fs, field{"Run", code(c.RunID) + " — follow its thread"})
		}
		b.fields(fs)
	}
	until := ""
	if v.Chosen == nil && !v.ExpiresAt.IsZero() {
		until = "buttons work until " + clock(v.ExpiresAt)
	}
	b.context("Pasted by "+mention(v.Requester), until, "choice "+code(v.ChoiceID))
	b.text = escape(title + " Read: " + v.Read)
}
