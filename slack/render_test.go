package slack_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/slack"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the renderer")

var (
	t0        = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	renderer  = slack.Renderer{Now: func() time.Time { return t0.Add(3 * time.Minute) }}
	alice     = commands.Actor{ID: "U01ALICE", Name: "alice"}
	bob       = commands.Actor{ID: "U02BOB", Name: "bob"}
	carol     = commands.Actor{ID: "U03CAROL", Name: "carol"}
	boolPtr   = func(b bool) *bool { return &b }
	queueJSON = `[
  {"Identity":"EX01\\3","DeliveryType":"SmtpRelayToRemoteAdSite","Status":"Retry","MessageCount":1450,"NextHopDomain":"outbound.protection.outlook.com","LastError":"451 4.4.0 Primary target IP address responded with: \"421 4.3.2 Service not available.\""},
  {"Identity":"EX02\\3","DeliveryType":"SmtpRelayToRemoteAdSite","Status":"Active","MessageCount":12,"NextHopDomain":"outbound.protection.outlook.com","LastError":""}
]`
)

func runView(state string, steps []incident.StepResult, planned ...string) *commands.RunView {
	return &commands.RunView{
		RunID: "r-7f3a", Playbook: "ndr-5.5.4", Title: "NDR 5.5.4 Service Unavailable",
		Requester: alice, Params: []commands.Param{{Name: "sender", Value: "alice@contoso.com"}},
		State: state, Started: t0, Steps: steps, PlannedIDs: planned,
	}
}

var stepsRunning = []incident.StepResult{
	{Step: "tracking", Title: "5.5.4 still happening (message tracking)", Status: incident.StepOK, Hosts: []string{"EX01", "EX02"}, Duration: 2300 * time.Millisecond},
	{Step: "queues", Title: "Connector queue depth", Status: incident.StepOK, Hosts: []string{"EX01", "EX02"}, Duration: 1200 * time.Millisecond},
	{Step: "throttling", Title: "Sender throttling policy", Status: incident.StepRunning, Hosts: []string{"EX01"}},
	{Step: "eop-25", Title: "SMTP reachability of EOP on port 25", Status: incident.StepFailed, Hosts: []string{"probe"}, Duration: 10 * time.Second,
		Error: "dial tcp 52.101.68.20:25: i/o timeout"},
	{Step: "connector", Title: "Connector and transport health", Status: incident.StepTimeout, Hosts: []string{"EX01", "EX02", "EX03", "EX04", "EX05"}, Duration: 2 * time.Minute},
}

var queueFinding = incident.Finding{Rule: "queue-overloaded", Severity: incident.SeverityCritical,
	Text: "Queue EX01\\3 holds 1450 messages: connector overloaded", Step: "queues", Host: "EX01", Evidence: queueJSON, Phase: "diagnose"}

func proposal() incident.Proposal {
	return incident.Proposal{
		ID: "restart-transport", Relief: "restart-transport", Title: "Restart MSExchangeTransport",
		Target: "exchange", Hosts: []string{"EX01"},
		Command:  "Restart-Service -Name MSExchangeTransport -Force",
		Risk:     "Mail flow on the server pauses for 1–2 minutes.",
		Rollback: "None needed: the service starts again by itself; if it does not, Start-Service MSExchangeTransport.",
		Preview:  "Status  Name               DisplayName\n------  ----               -----------\nRunning MSExchangeTransport Microsoft Exchange Transport",
		Approval: incident.ApprovalPolicy{Role: "approver", Approvers: 2, FourEyes: true, Expires: 30 * time.Minute},
		Because:  []incident.Finding{queueFinding},
	}
}

func approval(state string, votes []commands.Vote, res *incident.ReliefResult) *commands.ApprovalView {
	return &commands.ApprovalView{
		RunID: "r-7f3a", ApprovalID: "apr-01HV3", Proposal: proposal(), Requester: alice,
		ExpiresAt: t0.Add(30 * time.Minute), State: state, Votes: votes, Result: res,
	}
}

var (
	twoApprovals = []commands.Vote{
		{By: bob, Decision: "approve", At: t0.Add(2 * time.Minute)},
		{By: carol, Decision: "approve", At: t0.Add(3 * time.Minute)},
	}
	restartOK = &incident.ReliefResult{Relief: "restart-transport", Hosts: []string{"EX01"}, OK: true,
		Output:  "WARNING: Waiting for service 'Microsoft Exchange Transport (MSExchangeTransport)' to stop...\nRestarted.",
		Started: t0.Add(4 * time.Minute), Duration: 62 * time.Second}
)

func goldenCases() map[string]commands.Message {
	msg := func(key string) commands.Message { return commands.Message{RunID: "r-7f3a", Key: key} }
	with := func(m commands.Message, f func(*commands.Message)) commands.Message { f(&m); return m }
	ak := commands.ApprovalKey("restart-transport")
	cases := map[string]commands.Message{
		"root-running": with(msg(commands.KeyRoot), func(m *commands.Message) {
			m.Root = runView(string(incident.RunDiagnosing), stepsRunning, "m365-health")
		}),
		"root-done-lab": with(msg(commands.KeyRoot), func(m *commands.Message) {
			m.Root = runView(string(incident.RunFinished), stepsRunning[:2])
			m.Root.Lab = "lab-ex2019"
		}),
		"findings": with(msg(commands.KeyFindings), func(m *commands.Message) {
			m.Findings = &commands.FindingsView{RunID: "r-7f3a", Findings: []incident.Finding{
				{Severity: incident.SeverityInfo, Text: "Microsoft 365 service health: Exchange Online healthy", Step: "m365-health"},
				queueFinding,
				{Severity: incident.SeverityWarning, Text: "Sender alice@contoso.com uses throttling policy Strict-Senders (RecipientRateLimit 100)", Step: "throttling", Host: "EX01",
					Evidence: `{"Name":"Strict-Senders","RecipientRateLimit":100,"MessageRateLimit":30}`},
				{Severity: incident.SeverityCritical, Text: "5.5.4 still returned after the relief", Step: "tracking", Phase: "verify"},
			}}
		}),
		"findings-none": with(msg(commands.KeyFindings), func(m *commands.Message) {
			m.Findings = &commands.FindingsView{RunID: "r-7f3a"}
		}),
		"approval-pending": with(msg(ak), func(m *commands.Message) {
			m.Approval = approval(commands.ApprovalPending, twoApprovals[:1], nil)
		}),
		"approval-approved": with(msg(ak), func(m *commands.Message) {
			m.Approval = approval(commands.ApprovalApproved, twoApprovals, nil)
		}),
		"approval-rejected": with(msg(ak), func(m *commands.Message) {
			m.Approval = approval(commands.ApprovalRejected, []commands.Vote{{By: bob, Decision: "reject", At: t0.Add(2 * time.Minute)}}, nil)
		}),
		"approval-expired": with(msg(ak), func(m *commands.Message) {
			m.Approval = approval(commands.ApprovalExpired, twoApprovals[:1], nil)
		}),
		"approval-void": with(msg(ak), func(m *commands.Message) {
			m.Approval = approval(commands.ApprovalVoid, nil, nil)
		}),
		"approval-blocked": with(msg(ak), func(m *commands.Message) {
			m.Approval = approval(commands.ApprovalPending, nil, nil)
			m.Approval.Proposal.Blocked = "restart-transport ran on EX01 9 minutes ago; cooldown 30m"
		}),
		"approval-running": with(msg(ak), func(m *commands.Message) {
			m.Approval = approval(commands.ApprovalRunning, twoApprovals, &incident.ReliefResult{Relief: "restart-transport", Hosts: []string{"EX01"}, Started: t0.Add(4 * time.Minute)})
		}),
		"approval-succeeded": with(msg(ak), func(m *commands.Message) {
			m.Approval = approval(commands.ApprovalSucceeded, twoApprovals, restartOK)
		}),
		"approval-succeeded-verified": with(msg(ak), func(m *commands.Message) {
			res := *restartOK
			res.Verified = boolPtr(true)
			m.Approval = approval(commands.ApprovalSucceeded, twoApprovals, &res)
		}),
		"approval-succeeded-not-verified": with(msg(ak), func(m *commands.Message) {
			res := *restartOK
			res.Verified = boolPtr(false)
			m.Approval = approval(commands.ApprovalSucceeded, twoApprovals, &res)
		}),
		"approval-failed": with(msg(ak), func(m *commands.Message) {
			m.Approval = approval(commands.ApprovalFailed, twoApprovals, &incident.ReliefResult{Relief: "restart-transport", Hosts: []string{"EX01"},
				Error:   "Restart-Service : Service 'Microsoft Exchange Transport (MSExchangeTransport)' cannot be stopped due to the following error: Cannot open MSExchangeTransport service on computer 'EX01'.",
				Started: t0.Add(4 * time.Minute), Duration: 12 * time.Second})
		}),
		"approval-outcome-unknown": with(msg(ak), func(m *commands.Message) {
			m.Approval = approval(commands.ApprovalOutcomeUnknown, twoApprovals, &incident.ReliefResult{Relief: "restart-transport", Hosts: []string{"EX01"}, Started: t0.Add(4 * time.Minute)})
		}),
		"escalation": with(msg(commands.KeyEscalation), func(m *commands.Message) {
			res := *restartOK
			res.Verified = boolPtr(false)
			m.Escalation = &commands.EscalationView{
				RunID: "r-7f3a", Playbook: "ndr-5.5.4", Title: "NDR 5.5.4 Service Unavailable",
				Symptom:   "Senders get 550 5.5.4 Service Unavailable for mail to external recipients since 11:40 UTC.",
				Requester: alice,
				Escalation: incident.Escalation{Rule: "persists-after-restart",
					Reason: "5.5.4 persists after the queue was cleared and the service restarted",
					Owner:  "Microsoft support (EOP side)",
					Next:   "Open a Microsoft support case for EOP with the message trace IDs from the timeline; keep the queue under watch."},
				Findings: []incident.Finding{queueFinding, {Severity: incident.SeverityCritical, Text: "5.5.4 still returned after the relief", Step: "tracking", Phase: "verify"}},
				Actions:  []commands.ActionView{{Relief: "restart-transport", Hosts: []string{"EX01"}, ApprovedBy: []commands.Actor{bob, carol}, Result: res}},
				Timeline: []commands.TimelineEntry{
					{At: t0, Text: "alice ran /ndr diagnose 5.5.4 sender=alice@contoso.com"},
					{At: t0.Add(90 * time.Second), Text: "Diagnosis done: 2 critical, 1 warning"},
					{At: t0.Add(3 * time.Minute), Text: "restart-transport approved by bob and carol"},
					{At: t0.Add(10 * time.Minute), Text: "Verification failed: 5.5.4 still returned"},
				},
				ThreadLink: "https://contoso.slack.com/archives/C0INC/p1741953600000100",
			}
		}),
	}
	for name, v := range alertCases() {
		cases[name] = commands.Message{Channel: "C0ESC", TopLevel: true, Key: commands.WatchAlertKey(v.AlertID), Alert: &v}
	}
	for name, m := range choiceCases() {
		cases[name] = m
	}
	// The watch's notice about its subscription (watch/graphmail).
	cases["notice-renewal-failing"] = commands.Message{Channel: "C0ESC", TopLevel: true, Key: "watch-notice:x", Notice: &commands.NoticeView{
		Severity: "critical", Title: "NDR watch: Graph subscription renewal keeps failing", At: time.Date(2026, 11, 29, 16, 0, 0, 0, time.UTC),
		Text: "14 renewals of subscription 7f105c7d-2dc5-4530-97cd-4e7ae6534c07 failed; it expires at 2026-11-30 10:00 UTC (in 18h0m0s). " +
			"The bot keeps retrying, then recreates it and reconciles by delta; the watch keeps polling meanwhile. " +
			"Last error: graph PATCH /subscriptions/7f105c7d-2dc5-4530-97cd-4e7ae6534c07: 503 ExtensionError: Operation: Update; Exception: [Status Code: ServiceUnavailable; Reason: ] (request-id <none>)"}}
	return cases
}

// alertCases are the NDR watch's alerts: pending with its button, after a responder
// started the diagnosis, and for a code no playbook handles.
func alertCases() map[string]commands.AlertView {
	at := time.Date(2026, 11, 23, 10, 4, 0, 0, time.UTC)
	base := commands.AlertView{AlertID: "wa-20261123-0e1049f3a2", Code: "5.5.4", Messages: 37, Domains: 12, Window: 5 * time.Minute,
		Threshold: 20, Mailbox: "postmaster@contoso.com", First: at.Add(-4 * time.Minute), Last: at,
		TopDomains: []commands.DomainCount{{Domain: "fabrikam.com", Messages: 9}, {Domain: "northwind.example", Messages: 6},
			{Domain: "tailspin.example", Messages: 4}, {Domain: "wingtip.example", Messages: 3}, {Domain: "adatum.example", Messages: 3}},
		Sample:   "Remote Server returned '550 5.5.4 Service Unavailable'",
		Playbook: "ndr-5.5.4", PlaybookTitle: "NDR 5.5.4 Service Unavailable", Button: "5.5.4", At: at}
	started := base
	started.DiagnosisBy, started.DiagnosisAt = commands.Actor{ID: "U0REQ", Name: "req"}, at.Add(2*time.Minute)
	noPlaybook := base
	noPlaybook.Code, noPlaybook.Playbook, noPlaybook.PlaybookTitle, noPlaybook.Button = "5.7.1", "", "", ""
	noPlaybook.Hint = "No playbook matches 5.7.1 (/ndr playbooks lists them)."
	noPlaybook.Sample = "Remote Server returned '550 5.7.1 <!channel> relay denied'"
	return map[string]commands.AlertView{"alert-pending": base, "alert-diagnosis-started": started, "alert-no-playbook": noPlaybook}
}

// The alert's Run diagnosis button is there until a responder starts the diagnosis,
// and NDR text is escaped; the notice escapes Graph's error text.
func TestRenderWatchAlertsAndNotice(t *testing.T) {
	for name, v := range alertCases() {
		t.Run(name, func(t *testing.T) {
			r, err := renderer.Render(goldenCases()[name])
			require.NoError(t, err)
			raw := prettyJSON(t, r)
			assert.Contains(t, r.Text, "NDR "+v.Code+" spike: 37 in 5 min across 12 domains")
			switch {
			case v.Button != "" && v.DiagnosisBy.IsZero():
				assert.Equal(t, 1, strings.Count(raw, `"action_id": "run-diagnosis"`))
				assert.Contains(t, raw, `"value": "5.5.4"`, "the button carries the playbook code")
			default:
				assert.NotContains(t, raw, `"type": "actions"`, "no button")
			}
			assert.NotContains(t, raw, "<!channel>", "NDR text is escaped")
		})
	}
	r, err := renderer.Render(goldenCases()["notice-renewal-failing"])
	require.NoError(t, err)
	assert.Contains(t, prettyJSON(t, r), "&lt;none&gt;", "escaped")
}

func TestRenderGolden(t *testing.T) {
	for name, m := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			r, err := renderer.Render(m)
			require.NoError(t, err)
			got := []byte(prettyJSON(t, r))
			path := filepath.Join("testdata", "golden", name+".json")
			if *update {
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./slack -update to create it")
			assert.JSONEq(t, string(want), string(got))
			assertWithinLimits(t, r)

			// An outbox may store it as JSON and read it back unchanged.
			var back slack.Rendered
			require.NoError(t, json.Unmarshal(got, &back))
			assert.JSONEq(t, string(got), prettyJSON(t, back))
		})
	}
}

func TestRenderApprovalButtons(t *testing.T) {
	tests := []struct {
		state       string
		wantButtons bool
		wantText    []string
	}{
		{commands.ApprovalPending, true, []string{"1 of 2 approvals", "expires in 27 min (12:30 UTC)", "Approved by <@U02BOB> at 12:02 UTC"}},
		{commands.ApprovalApproved, false, []string{"Approved by <@U02BOB> at 12:02 UTC", "Approved by <@U03CAROL> at 12:03 UTC"}},
		{commands.ApprovalRejected, false, []string{"Rejected by <@U02BOB> at 12:02 UTC"}},
		{commands.ApprovalExpired, false, []string{"Expired* at 12:30 UTC"}},
		{commands.ApprovalRunning, false, []string{"Running* on `EX01`"}},
		{commands.ApprovalSucceeded, false, []string{"Succeeded* in 1m 02s", "Verified"}},
		{commands.ApprovalFailed, false, []string{"Failed*"}},
		{commands.ApprovalOutcomeUnknown, false, []string{"Outcome unknown"}},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			votes := twoApprovals
			if tt.state == commands.ApprovalPending || tt.state == commands.ApprovalExpired {
				votes = twoApprovals[:1]
			}
			if tt.state == commands.ApprovalRejected {
				votes = []commands.Vote{{By: bob, Decision: "reject", At: t0.Add(2 * time.Minute)}}
			}
			var res *incident.ReliefResult
			if tt.state == commands.ApprovalSucceeded {
				r := *restartOK
				r.Verified = boolPtr(true)
				res = &r
			}
			r, err := renderer.Render(commands.Message{RunID: "r-7f3a", Key: "approval:x", Approval: approval(tt.state, votes, res)})
			require.NoError(t, err)
			raw := mustJSON(t, r)
			if tt.wantButtons {
				require.Contains(t, raw, `"action_id":"approve"`)
				assert.Contains(t, raw, `"action_id":"reject"`)
				assert.Contains(t, raw, `"style":"primary"`)
				assert.Contains(t, raw, `"style":"danger"`)
				assert.Equal(t, 2, strings.Count(raw, `"value":"apr-01HV3"`), "both buttons carry the approval id")
			} else {
				assert.NotContains(t, raw, `"type":"actions"`, "no buttons after a decision")
			}
			for _, w := range tt.wantText {
				assert.Contains(t, raw, w)
			}
		})
	}
}

// A relief that needs an admin says so where the approver looks first.
func TestRenderApprovalNamesAdminRole(t *testing.T) {
	v := approval(commands.ApprovalPending, nil, nil)
	v.Proposal.Approval.Role = commands.RoleAdmin
	r, err := renderer.Render(commands.Message{RunID: "r-7f3a", Key: "approval:x", Approval: v})
	require.NoError(t, err)
	assert.Contains(t, mustJSON(t, r), "of 2 approvals from an admin")

	v.Proposal.Approval.Role = "approver"
	r, err = renderer.Render(commands.Message{RunID: "r-7f3a", Key: "approval:x", Approval: v})
	require.NoError(t, err)
	assert.NotContains(t, mustJSON(t, r), "from an admin")
}

func TestRenderLimits(t *testing.T) {
	huge := func(n int, line string) string {
		var b strings.Builder
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "%05d %s\n", i, line)
		}
		return b.String()[:n]
	}
	preview := huge(20000, "Identity=EX01\\Submission MessageCount=1450 Status=Retry")
	many := func(n int) []incident.Finding {
		fs := make([]incident.Finding, n)
		for i := range fs {
			fs[i] = incident.Finding{Severity: []incident.Severity{"critical", "warning", "info"}[i%3],
				Text: fmt.Sprintf("finding %d: queue on EX%02d is deep", i, i), Step: "queues", Host: fmt.Sprintf("EX%02d", i), Evidence: huge(900, "row")}
		}
		return fs
	}
	steps := make([]incident.StepResult, 200)
	for i := range steps {
		steps[i] = incident.StepResult{Step: fmt.Sprintf("s%d", i), Title: fmt.Sprintf("Step number %d checks something rather long to describe", i),
			Status: incident.StepFailed, Duration: time.Second, Hosts: []string{"EX01", "EX02"}, Error: huge(400, "err")}
	}

	tests := []struct {
		name      string
		msg       commands.Message
		wantFiles []string // files whose full content must be attached
	}{
		{name: "20000-char preview", msg: commands.Message{RunID: "r1", Key: "approval:x", Approval: func() *commands.ApprovalView {
			a := approval(commands.ApprovalPending, nil, nil)
			a.Proposal.Preview = preview
			return a
		}()}, wantFiles: []string{preview}},
		{name: "huge relief output, command, risk and title", msg: commands.Message{RunID: "r1", Key: "approval:x", Approval: func() *commands.ApprovalView {
			a := approval(commands.ApprovalSucceeded, twoApprovals, &incident.ReliefResult{OK: true, Output: huge(50000, "out"), Error: huge(3000, "e")})
			a.Proposal.Command = huge(6000, "Set-Thing")
			a.Proposal.Risk = huge(5000, "risky")
			a.Proposal.Title = strings.Repeat("Very long relief title ", 20)
			a.Proposal.Because = many(40)
			a.Proposal.Hosts = strings.Fields(strings.Repeat("EXH ", 60))
			return a
		}()}, wantFiles: []string{huge(50000, "out"), huge(6000, "Set-Thing")}},
		{name: "300 findings", msg: commands.Message{RunID: "r1", Key: "findings", Findings: &commands.FindingsView{RunID: "r1", Findings: many(300)}}},
		{name: "200-step checklist", msg: commands.Message{RunID: "r1", Key: "root", Root: runView(string(incident.RunDiagnosing), steps)}},
		{name: "escalation with everything long", msg: commands.Message{RunID: "r1", Key: "escalation", Escalation: &commands.EscalationView{
			RunID: "r1", Title: strings.Repeat("t", 400), Symptom: huge(9000, "sym"), Findings: many(100),
			Escalation: incident.Escalation{Reason: huge(4000, "why"), Next: huge(4000, "next"), Owner: "EOP"},
			Actions:    []commands.ActionView{{Relief: "r", Result: incident.ReliefResult{Error: huge(2000, "x")}}},
			Timeline: func() []commands.TimelineEntry {
				tl := make([]commands.TimelineEntry, 500)
				for i := range tl {
					tl[i] = commands.TimelineEntry{At: t0.Add(time.Duration(i) * time.Second), Text: huge(300, "event")}
				}
				return tl
			}(),
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := renderer.Render(tt.msg)
			require.NoError(t, err)
			assertWithinLimits(t, r)
			require.NotEmpty(t, r.Files, "what does not fit is attached")
			raw := mustJSON(t, r)
			assert.Contains(t, raw, "attached as", "the message says so")
			for _, want := range tt.wantFiles {
				found := false
				for _, f := range r.Files {
					found = found || f.Content == want
				}
				assert.True(t, found, "full text of %d chars attached", len(want))
			}
			for _, f := range r.Files {
				assert.Contains(t, raw, f.Name, "every attached file is named in the message")
			}
		})
	}
}

func TestRenderEscapesUserText(t *testing.T) {
	evil := "<!channel> <https://evil.example|your bank> & <@U0ADMIN>"
	m := commands.Message{RunID: "r1", Key: "root", Root: &commands.RunView{
		RunID: "r1", Playbook: "ndr-5.5.4", Title: evil, State: string(incident.RunDiagnosing),
		Requester: commands.Actor{ID: "cli:mallory", Name: "mallory <!here>"},
		Params:    []commands.Param{{Name: "sender", Value: evil}},
		Steps:     []incident.StepResult{{Step: "q", Title: evil, Status: incident.StepFailed, Error: evil}},
	}}
	r, err := renderer.Render(m)
	require.NoError(t, err)
	// mrkdwn is parsed by Slack; plain_text (the header) is not.
	md := strings.Join(append(mrkdwnTexts(t, r), r.Text), "\n")
	for _, bad := range []string{"<!channel>", "<!here>", "<https://evil", "<@U0ADMIN>"} {
		assert.NotContains(t, md, bad)
	}
	assert.Contains(t, md, "&lt;!channel&gt;")
	assert.Contains(t, md, "mallory &lt;!here&gt;", "a CLI user is a name, not a mention")
	assert.Contains(t, r.Text, "&lt;!channel&gt;", "fallback text is escaped too")

	// A code block cannot be closed from inside.
	a := approval(commands.ApprovalPending, nil, nil)
	a.Proposal.Command = "Get-Queue ```\n*bold* <!channel>"
	r, err = renderer.Render(commands.Message{RunID: "r1", Key: "approval:x", Approval: a})
	require.NoError(t, err)
	for _, b := range mrkdwnTexts(t, r) {
		if strings.Contains(b, "Get-Queue") {
			assert.Equal(t, 2, strings.Count(b, "```"), b)
			assert.NotContains(t, b, "<!channel>")
		}
	}
	// Every mrkdwn object is verbatim: no auto-linking of @channel or URLs.
	for _, obj := range textObjects(t, r) {
		if obj["type"] == "mrkdwn" {
			assert.Equal(t, true, obj["verbatim"], obj["text"])
		}
	}
}

func TestRenderNeedsExactlyOneView(t *testing.T) {
	_, err := renderer.Render(commands.Message{RunID: "r1"})
	require.Error(t, err)
	_, err = renderer.Render(commands.Message{RunID: "r1", Root: runView("x", nil), Findings: &commands.FindingsView{}})
	require.Error(t, err)
}

// assertWithinLimits checks Block Kit's limits on the JSON Slack would receive.
func assertWithinLimits(t *testing.T, r slack.Rendered) {
	t.Helper()
	var msg struct {
		Blocks []map[string]any `json:"blocks"`
	}
	require.NoError(t, json.Unmarshal([]byte(mustJSON(t, r)), &msg))
	assert.LessOrEqual(t, len(msg.Blocks), 50, "blocks")
	for i, b := range msg.Blocks {
		switch b["type"] {
		case "header":
			assert.LessOrEqual(t, utf8.RuneCountInString(b["text"].(map[string]any)["text"].(string)), 150, "header %d", i)
		case "section":
			fields, _ := b["fields"].([]any)
			assert.LessOrEqual(t, len(fields), 10, "fields of block %d", i)
			for _, f := range fields {
				assert.LessOrEqual(t, utf8.RuneCountInString(f.(map[string]any)["text"].(string)), 2000, "field of block %d", i)
			}
		}
	}
	for _, obj := range textObjects(t, r) {
		assert.LessOrEqual(t, utf8.RuneCountInString(obj["text"].(string)), 3000)
		assert.NotEmpty(t, obj["text"])
	}
}

// textObjects returns every text object (a map with "type" and "text") in r's blocks.
func textObjects(t *testing.T, r slack.Rendered) []map[string]any {
	var v any
	require.NoError(t, json.Unmarshal([]byte(mustJSON(t, r)), &v))
	var out []map[string]any
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["text"].(string); ok && (x["type"] == "mrkdwn" || x["type"] == "plain_text") {
				out = append(out, x)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v.(map[string]any)["blocks"])
	return out
}

func mrkdwnTexts(t *testing.T, r slack.Rendered) []string {
	var out []string
	for _, obj := range textObjects(t, r) {
		if obj["type"] == "mrkdwn" {
			out = append(out, obj["text"].(string))
		}
	}
	return out
}

// mustJSON marshals without HTML escaping, so "<" reads as "<".
func mustJSON(t *testing.T, v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	return strings.TrimSuffix(b.String(), "\n")
}

func prettyJSON(t *testing.T, v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(v))
	return b.String()
}
