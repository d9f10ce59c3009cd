package commands_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

// sample reads a bounce an admin might paste: bounce/testdata (sources in its
// README) or the NDR watch's watch/testdata/ndr.
func sample(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", path))
	require.NoError(t, err)
	return string(data)
}

// glued is what Slack's markup leaves of a paste once CommandText ran: links
// glued to other text are kept as Slack wrote them (api.slack.com/reference/surfaces/formatting).
func glued(s string) string {
	return strings.NewReplacer(
		"<alice@contoso.com>", "<<mailto:alice@contoso.com|alice@contoso.com>>",
		"<bob@fabrikam.com>", "<<mailto:bob@fabrikam.com|bob@fabrikam.com>>",
	).Replace(s)
}

func (f *fixture) command(text, plain, user string) commands.Reply {
	return f.svc.Command(context.Background(), commands.Request{Text: text, Plain: plain, User: incident.Actor{ID: user, Name: "req"},
		ChannelID: channel, ChannelName: "inc-mail"})
}

// A bounce pasted after /ndr diagnose picks its playbook: one fit starts like
// a typed diagnose, with what the bounce says as parameters; several are
// offered with buttons; none gets the closest; a paste without a code is told
// what to paste. Typed commands stay commands.
func TestPastedBounce(t *testing.T) {
	eml := sample(t, "bounce/testdata/exchange2019-5.5.4.eml")
	tests := []struct {
		name    string
		text    string // after /ndr
		plain   string // Request.Plain ("" when Text is plain)
		want    []string
		started string            // the playbook run, "" for none
		params  map[string]string // some of the run's parameters
		offered []string          // the choice message's playbooks
	}{
		{name: "an Exchange 2019 report starts ndr-5.5.4 for its sender", text: "diagnose\n" + eml,
			want:    []string{"Read 550 5.5.4 for bob@fabrikam.com from ex01.contoso.com, recipient domain fabrikam.com, sender alice@contoso.com.", "Started ndr-5.5.4"},
			started: "ndr-5.5.4", params: map[string]string{"sender": "alice@contoso.com"}},
		{name: "links Slack glued to the text are read from Plain", text: "diagnose\n" + glued(eml), plain: "diagnose\n" + eml,
			want: []string{"Started ndr-5.5.4"}, started: "ndr-5.5.4", params: map[string]string{"sender": "alice@contoso.com"}},
		{name: "a Postfix report starts smtp-421 for the recipient domain", text: "diagnose\n" + sample(t, "bounce/testdata/postfix-4.3.2.eml"),
			want: []string{"Read 421 4.3.2 for carol@fabrikam.com", "Started smtp-421"}, started: "smtp-421",
			params: map[string]string{"domain": "fabrikam.com", "sending_domain": "contoso.com"}},
		{name: "one line that reads as a bounce", text: "diagnose Remote Server returned '550 5.5.4 Service unavailable'",
			want: []string{"Read 550 5.5.4.", "Started ndr-5.5.4"}, started: "ndr-5.5.4"},
		{name: "several fitting are offered", text: "diagnose\n" + sample(t, "watch/testdata/ndr/ex2019-440.txt"),
			want:    []string{"Read 451 4.4.0 for carol@northwind.example from ex02.contoso.com", "2 playbooks fit (ndr-5.5.4, smtp-421): choose one"},
			offered: []string{"ndr-5.5.4", "smtp-421"}},
		{name: "a tenant block starts its playbook", text: "diagnose\n" + sample(t, "bounce/testdata/exo-5.7.708.eml"),
			want: []string{"Read 550 5.7.708", "Started ndr-5.7.708"}, started: "ndr-5.7.708",
			params: map[string]string{"sender": "alice@contoso.com"}},
		// 5.0.0 (an RFC 3464 report's generic failure) is no playbook's code:
		// the closest share its class, their commands filled from the bounce.
		{name: "none fitting names the closest", text: "diagnose\n" + sample(t, "bounce/testdata/rfc3464-multi.eml"),
			want: []string{"Read 550 5.0.0", "No playbook handles 550 5.0.0. The closest:",
				"• ndr-4.4.7 — no playbook lists 550 5.0.0", "/ndr diagnose ndr-4.4.7 domain=fabrikam.com sender=owner-sales@contoso.com"}},
		// smtp-auth-432 lists "432 4.3.2" and comes first; smtp-421's bare 4.3.2
		// still fits (typed "4.3.2" names it), so both are offered.
		{name: "an SMTP AUTH thread limit offers its playbook first", text: "diagnose\n" + sample(t, "bounce/testdata/smtp-auth-432.txt"),
			want:    []string{"Read 432 4.3.2", "2 playbooks fit (smtp-auth-432, smtp-421): choose one"},
			offered: []string{"smtp-auth-432", "smtp-421"}},
		// One playbook fits, and the bounce does not say a value it requires:
		// asked for, nothing started.
		{name: "a required value the bounce lacks is asked for", text: "diagnose Remote Server returned '550 5.4.7 QUEUE.Expired; message expired'",
			want: []string{"Read 550 5.4.7", "It fits ndr-4.4.7", "does not say domain", "/ndr diagnose ndr-4.4.7 domain=<domain>"}},
		{name: "text without a status code", text: "diagnose\n" + sample(t, "bounce/testdata/ndr-headers-only.txt"),
			want: []string{"does not read as a bounce: No SMTP status code", "Remote Server returned"}},
		{name: "a lone unknown code stays a command", text: "diagnose 5.9.9", want: []string{`no playbook for "5.9.9"`}},
		{name: "arguments after an unknown code stay a command", text: "diagnose 5.9.9 sender=alice@contoso.com", want: []string{`no playbook for "5.9.9"`}},
		{name: "a typed code with arguments is not a paste", text: "diagnose 4.3.2 domain=fabrikam.com", want: []string{"Started smtp-421"},
			started: "smtp-421", params: map[string]string{"domain": "fabrikam.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "healthy", time.Now)
			reply := f.command(tt.text, tt.plain, requester)
			for _, w := range tt.want {
				assert.Contains(t, reply.Text, w)
			}
			f.svc.Wait()
			runs, err := f.st.ListRuns(context.Background(), store.RunFilter{})
			require.NoError(t, err)
			if tt.started == "" {
				assert.Empty(t, runs, "nothing started")
			} else if assert.Len(t, runs, 1) {
				assert.Equal(t, tt.started, runs[0].Playbook)
				var got map[string]string
				require.NoError(t, json.Unmarshal(runs[0].Params, &got))
				for k, v := range tt.params {
					assert.Equal(t, v, got[k], k)
				}
			}
			var offered []string
			for k, ms := range f.thread.msgs {
				if strings.Contains(k, "ndr-choice:") {
					for _, o := range ms[len(ms)-1].Choice.Options {
						offered = append(offered, o.Playbook)
					}
				}
			}
			assert.Equal(t, tt.offered, offered)
		})
	}
}

// The audit trail keeps a pasted bounce's digest and what was read from it,
// never its text.
func TestPastedBounceAuditsItsDigest(t *testing.T) {
	f := newFixture(t, "healthy", time.Now)
	paste := sample(t, "bounce/testdata/exchange2019-5.5.4.eml")
	require.Contains(t, f.command("diagnose\n"+paste, "", requester).Text, "Started ndr-5.5.4")
	f.svc.Wait()
	sum := sha256.Sum256([]byte(paste))
	var found bool
	for e, err := range f.st.Events(context.Background(), audit.Filter{}) {
		require.NoError(t, err)
		assert.NotContains(t, string(e.Payload), "Delivery has failed", "no bounce text in %s", e.Kind)
		assert.NotContains(t, string(e.Payload), "Weekly report", "no subject in %s", e.Kind)
		if e.Kind != audit.KindCommand {
			continue
		}
		found = true
		var p struct {
			Text string         `json:"text"`
			NDR  map[string]any `json:"ndr"`
		}
		require.NoError(t, json.Unmarshal(e.Payload, &p))
		assert.Empty(t, p.Text)
		assert.Equal(t, hex.EncodeToString(sum[:]), p.NDR["sha256"])
		assert.Equal(t, "5.5.4", p.NDR["status"])
		assert.Equal(t, "550", p.NDR["reply"])
	}
	assert.True(t, found, "the command is audited")
}

// A choice's button starts only what the bot offered, in its channel, for a
// responder, before it expires — and only once.
func TestChoiceButton(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	f := newFixture(t, "healthy", now)
	ctx := context.Background()
	reply := f.command("diagnose\n"+sample(t, "watch/testdata/ndr/ex2019-440.txt"), "", requester)
	require.Contains(t, reply.Text, "2 playbooks fit")
	var choice *commands.ChoiceView
	for k, ms := range f.thread.msgs {
		if strings.HasPrefix(k, channel+"/ndr-choice:") {
			choice = ms[0].Choice
			assert.True(t, ms[0].TopLevel)
		}
	}
	require.NotNil(t, choice)
	require.Len(t, choice.Options, 2)
	smtp := choice.Options[1]
	require.Equal(t, "smtp-421", smtp.Playbook)
	require.NotEmpty(t, smtp.Button)
	assert.Equal(t, []commands.Param{{Name: "domain", Value: "northwind.example"}}, smtp.Params)

	parts := strings.SplitN(smtp.Button, ":", 3)
	require.Len(t, parts, 3)
	seq, err := strconv.ParseInt(parts[0], 10, 64)
	require.NoError(t, err)
	refusals := []struct {
		name, value, user, channel, want string
	}{
		{"malformed", "smtp-421", requester, channel, "does not match any choice"},
		{"forged id", parts[0] + ":0123456789abcdef:smtp-421", requester, channel, "does not match any choice"},
		{"another event", strconv.FormatInt(seq+1, 10) + ":" + parts[1] + ":smtp-421", requester, channel, "does not match any choice"},
		{"another channel", smtp.Button, requester, "C0OTHER", "does not match any choice"},
		{"a playbook not offered", parts[0] + ":" + parts[1] + ":graph-503", requester, channel, "was not offered"},
		{"not a responder", smtp.Button, stranger, channel, "Only responders"},
	}
	for _, r := range refusals {
		assert.Contains(t, f.click(commands.ActionChoosePlaybook, r.value, r.user, r.channel).Text, r.want, r.name)
	}
	runs, err := f.st.ListRuns(ctx, store.RunFilter{})
	require.NoError(t, err)
	assert.Empty(t, runs, "no refused click started a run")
	refused := 0
	for e, err := range f.st.Events(ctx, audit.Filter{Kinds: []audit.Kind{"refused"}}) {
		require.NoError(t, err)
		assert.Contains(t, string(e.Payload), commands.ActionChoosePlaybook)
		refused++
	}
	assert.Equal(t, len(refusals), refused, "every refusal is audited")

	// The responder's click starts smtp-421 with the stored domain.
	got := f.svc.Click(ctx, commands.Click{Action: commands.ActionChoosePlaybook, Value: smtp.Button,
		User: incident.Actor{ID: requester, Name: "req"}, ChannelID: channel})
	require.Contains(t, got.Text, "Started smtp-421", got.Text)
	f.svc.Wait()
	runs, err = f.st.ListRuns(ctx, store.RunFilter{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, "smtp-421", runs[0].Playbook)
	assert.JSONEq(t, `{"domain":"northwind.example","connections":"5"}`, string(runs[0].Params))

	// The message now says who chose what, and loses its buttons when rendered.
	m, ok := f.thread.last(channel + "/" + commands.ChoiceKey(choice.ChoiceID))
	require.True(t, ok)
	require.NotNil(t, m.Choice.Chosen)
	assert.Equal(t, "smtp-421", m.Choice.Chosen.Playbook)
	assert.Equal(t, requester, m.Choice.Chosen.By.ID)
	assert.Equal(t, runs[0].ID, m.Choice.Chosen.RunID)

	// A second click, on either button, starts nothing more.
	for _, o := range choice.Options {
		again := f.click(commands.ActionChoosePlaybook, o.Button, requester, channel)
		assert.Contains(t, again.Text, "already started", o.Playbook)
	}
	f.svc.Wait()
	runs, err = f.st.ListRuns(ctx, store.RunFilter{})
	require.NoError(t, err)
	assert.Len(t, runs, 1)
}

func TestChoiceExpires(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	f := newFixture(t, "healthy", now)
	f.command("diagnose\n"+sample(t, "watch/testdata/ndr/ex2019-440.txt"), "", requester)
	var button string
	for k, ms := range f.thread.msgs {
		if strings.HasPrefix(k, channel+"/ndr-choice:") {
			button = ms[0].Choice.Options[0].Button
		}
	}
	require.NotEmpty(t, button)
	mu.Lock()
	clock = clock.Add(commands.ChoiceTTL + time.Second)
	mu.Unlock()
	assert.Contains(t, f.click(commands.ActionChoosePlaybook, button, requester, channel).Text, "This choice expired")
	runs, err := f.st.ListRuns(context.Background(), store.RunFilter{})
	require.NoError(t, err)
	assert.Empty(t, runs)
}
