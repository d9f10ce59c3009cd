package slack

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/incident"
)

// Per-item and per-block budgets: generous for a readable message, small enough
// that a view never comes near 50 blocks.
const (
	evidenceRunes = 600
	evidenceLines = 10
	codeRunes     = 2500
	codeLines     = 40
	proseRunes    = 2500
)

func stepIcon(s incident.StepStatus) string {
	switch s {
	case incident.StepRunning:
		return ":hourglass_flowing_sand:"
	case incident.StepOK:
		return ":white_check_mark:"
	case incident.StepFailed:
		return ":x:"
	case incident.StepTimeout:
		return ":alarm_clock:"
	case incident.StepSkipped:
		return ":fast_forward:"
	default:
		return ":white_circle:"
	}
}

func severityIcon(s incident.Severity) string {
	switch s {
	case incident.SeverityCritical:
		return ":red_circle:"
	case incident.SeverityWarning:
		return ":large_orange_circle:"
	default:
		return ":large_blue_circle:"
	}
}

func severityTitle(s incident.Severity) string {
	switch s {
	case incident.SeverityCritical:
		return "Critical"
	case incident.SeverityWarning:
		return "Warning"
	default:
		return "Info"
	}
}

func runStateIcon(state string) string {
	switch incident.RunState(state) {
	case incident.RunDiagnosing, incident.RunRelieving, incident.RunVerifying:
		return ":hourglass_flowing_sand: "
	case incident.RunFinished:
		return ":white_check_mark: "
	case incident.RunEscalated:
		return ":rotating_light: "
	case incident.RunAwaitingApproval:
		return ":raised_hand: "
	}
	return ""
}

// root: the thread's root message with its live checklist.
func (r Renderer) root(b *builder, v *commands.RunView) {
	title := v.Title
	if title == "" {
		title = v.Playbook
	}
	if full, cut := b.header(title); cut {
		b.section("*" + escape(full) + "*")
	}
	fs := []field{
		{"Run", code(v.RunID)},
		{"Playbook", code(v.Playbook)},
		{"Requested by", mention(v.Requester)},
		{"State", runStateIcon(v.State) + escape(v.State)},
	}
	if !v.Started.IsZero() {
		fs = append(fs, field{"Started", clock(v.Started)})
	}
	if v.Lab != "" {
		fs = append(fs, field{"Lab", ":test_tube: " + escape(v.Lab)})
	}
	b.fields(fs)

	if len(v.Params) > 0 {
		items := make([]item, 0, len(v.Params))
		for _, p := range v.Params {
			val, clipped := excerpt(p.Value, 300, code)
			items = append(items, item{
				md:      "• " + code(p.Name) + " = " + val,
				plain:   p.Name + " = " + p.Value,
				clipped: clipped,
			})
		}
		b.list("*Parameters*", items, 2, "parameters", "Parameters")
	}

	done := 0
	items := make([]item, 0, len(v.Steps)+len(v.PlannedIDs))
	for _, s := range v.Steps {
		if s.Status != incident.StepPending && s.Status != incident.StepRunning {
			done++
		}
		items = append(items, stepItem(s))
	}
	for _, id := range v.PlannedIDs {
		items = append(items, item{md: stepIcon(incident.StepPending) + " " + code(id) + " — pending", plain: "[pending] " + id})
	}
	total := len(v.Steps) + len(v.PlannedIDs)
	if total > 0 {
		b.list(fmt.Sprintf("*Checklist* (%d of %d done)", done, total), items, 8, "checklist", "Checklist")
	}
	b.text = fmt.Sprintf("Run %s · %s · %s · %d of %d steps done", escape(v.RunID), escape(title), escape(v.State), done, total)
}

func stepItem(s incident.StepResult) item {
	title := s.Title
	if title == "" {
		title = s.Step
	}
	var md, plain strings.Builder
	fmt.Fprintf(&md, "%s *%s* — %s", stepIcon(s.Status), escape(title), escape(string(s.Status)))
	fmt.Fprintf(&plain, "[%s] %s", s.Status, title)
	if s.Status != incident.StepPending && s.Status != incident.StepRunning && s.Duration > 0 {
		md.WriteString(" · " + duration(s.Duration))
		plain.WriteString(" · " + duration(s.Duration))
	}
	if len(s.Hosts) > 0 {
		md.WriteString(" · " + hostList(s.Hosts))
		plain.WriteString(" · " + strings.Join(s.Hosts, ", "))
	}
	if s.Verifying {
		md.WriteString(" · _verification_")
		plain.WriteString(" · verification")
	}
	clipped := false
	if s.Error != "" {
		e, cut := excerpt(s.Error, 300, escape)
		md.WriteString("\n> " + strings.ReplaceAll(e, "\n", "\n> "))
		plain.WriteString("\n  error: " + s.Error)
		clipped = cut
	}
	return item{md: md.String(), plain: plain.String(), clipped: clipped}
}

// findingItem is one finding with its evidence excerpt.
func findingItem(f incident.Finding, icon bool) item {
	var md, plain strings.Builder
	md.WriteString("• ")
	if icon {
		md.WriteString(severityIcon(f.Severity) + " ")
	}
	md.WriteString("*" + escape(f.Text) + "*")
	fmt.Fprintf(&plain, "[%s] %s", f.Severity, f.Text)
	if f.Step != "" {
		md.WriteString(" — " + code(f.Step))
		plain.WriteString(" — step " + f.Step)
	}
	if f.Host != "" {
		md.WriteString(" on " + code(f.Host))
		plain.WriteString(" on " + f.Host)
	}
	if f.Phase == "verify" {
		md.WriteString(" _(after the relief)_")
		plain.WriteString(" (after the relief)")
	}
	clipped := false
	if f.Evidence != "" {
		e, cut := excerptLines(f.Evidence, evidenceRunes, evidenceLines, escapeCode)
		md.WriteString("\n" + codeBlock(e))
		plain.WriteString("\n" + f.Evidence)
		clipped = cut
	}
	return item{md: md.String(), plain: plain.String(), clipped: clipped}
}

// severities lists the severities most severe first.
func severities() [3]incident.Severity {
	return [3]incident.Severity{incident.SeverityCritical, incident.SeverityWarning, incident.SeverityInfo}
}

// findings: grouped by severity, most severe first.
func (r Renderer) findings(b *builder, v *commands.FindingsView) {
	b.header(fmt.Sprintf("Findings (%d)", len(v.Findings)))
	if len(v.Findings) == 0 {
		b.section(":white_check_mark: No findings: every check passed.")
		b.text = "Run " + escape(v.RunID) + ": no findings"
		b.context("Run " + code(v.RunID))
		return
	}
	counts := make([]string, 0, 3)
	for _, sev := range severities() {
		var items []item
		for _, f := range v.Findings {
			if severityTitle(f.Severity) == severityTitle(sev) {
				items = append(items, findingItem(f, false))
			}
		}
		if len(items) == 0 {
			continue
		}
		counts = append(counts, fmt.Sprintf("%d %s", len(items), strings.ToLower(severityTitle(sev))))
		title := fmt.Sprintf("%s *%s (%d)*", severityIcon(sev), severityTitle(sev), len(items))
		b.list(title, items, 12, "findings-"+strings.ToLower(severityTitle(sev)), severityTitle(sev)+" findings")
	}
	b.context("Run " + code(v.RunID))
	b.text = "Run " + escape(v.RunID) + " findings: " + strings.Join(counts, ", ")
}

// approval: one relief's card, from pending to verified.
func (r Renderer) approval(b *builder, v *commands.ApprovalView) {
	p := v.Proposal
	title := p.Title
	if title == "" {
		title = p.Relief
	}
	if full, cut := b.header("Relief: " + title); cut {
		b.section("*" + escape(full) + "*")
	}
	needed := max(p.Approval.Approvers, 1)
	var approves, rejects []commands.Vote
	for _, vote := range v.Votes {
		if vote.Decision == string(incident.Reject) {
			rejects = append(rejects, vote)
		} else {
			approves = append(approves, vote)
		}
	}
	tally := fmt.Sprintf("%d of %d approval", len(approves), needed)
	if needed != 1 {
		tally += "s"
	}
	if p.Approval.Role == commands.RoleAdmin {
		tally += " from an admin"
	}
	now := r.now()
	expires := ""
	if !v.ExpiresAt.IsZero() {
		expires = clock(v.ExpiresAt)
		if v.State == commands.ApprovalPending {
			if left := v.ExpiresAt.Sub(now); left > 0 {
				mins := int((left + time.Minute - 1) / time.Minute)
				expires = fmt.Sprintf("in %d min (%s)", mins, clock(v.ExpiresAt))
			} else {
				expires = "expired at " + clock(v.ExpiresAt)
			}
		}
	}
	hosts := hostList(p.Hosts)
	if hosts == "" {
		hosts = "_no hosts_"
	}

	// The state line: what this card is waiting for, or what happened.
	var state, fallback string
	switch v.State {
	case commands.ApprovalPending:
		state = ":raised_hand: *Approval needed* — " + tally
		if expires != "" {
			state += " · expires " + expires
		}
		fallback = "Approval needed"
	case commands.ApprovalApproved:
		state, fallback = ":white_check_mark: *Approved* — waiting to run", "Approved"
	case commands.ApprovalRejected:
		state, fallback = ":no_entry_sign: *Rejected* — nothing was run", "Rejected"
	case commands.ApprovalExpired:
		state = ":hourglass: *Expired*"
		if expires != "" {
			state += " at " + expires
		}
		state += " with " + tally + " — nothing was run"
		fallback = "Expired"
	case commands.ApprovalVoid:
		state, fallback = ":heavy_minus_sign: *Withdrawn* — no longer applicable; nothing was run", "Withdrawn"
	case commands.ApprovalRunning:
		state = ":hourglass_flowing_sand: *Running* on " + hosts
		if v.Result != nil && !v.Result.Started.IsZero() {
			state += " since " + clock(v.Result.Started)
		}
		fallback = "Running"
	case commands.ApprovalSucceeded:
		state, fallback = ":white_check_mark: *Succeeded*", "Succeeded"
		if v.Result != nil && v.Result.Duration > 0 {
			state += " in " + duration(v.Result.Duration)
		}
	case commands.ApprovalFailed:
		state, fallback = ":x: *Failed*", "Failed"
		if v.Result != nil && v.Result.Duration > 0 {
			state += " after " + duration(v.Result.Duration)
		}
	case commands.ApprovalOutcomeUnknown:
		state = ":question: *Outcome unknown* — the bot lost track of the relief while it ran. " +
			"Check the hosts before trying again; it will not be re-run automatically."
		fallback = "Outcome unknown"
	default:
		state, fallback = escape(v.State), v.State
	}
	b.section(state)

	if len(p.Because) > 0 {
		items := make([]item, 0, len(p.Because))
		for _, f := range p.Because {
			items = append(items, findingItem(f, true))
		}
		b.list("*Why* — the evidence", items, 2, "evidence", "Evidence")
	}

	verb := "Will run"
	switch v.State {
	case commands.ApprovalRejected, commands.ApprovalExpired, commands.ApprovalVoid:
		verb = "Would have run"
	case commands.ApprovalRunning:
		verb = "Running"
	case commands.ApprovalSucceeded, commands.ApprovalFailed, commands.ApprovalOutcomeUnknown:
		verb = "Ran"
	}
	run := "*" + verb + "* on " + hosts
	if p.Target != "" {
		run += " (target " + code(p.Target) + ")"
	}
	if len(p.Args) > 0 {
		keys := slices.Sorted(maps.Keys(p.Args))
		args := make([]string, 0, len(keys))
		plain := make([]string, 0, len(keys))
		for _, k := range keys {
			args = append(args, code(k)+" = "+code(fmt.Sprint(p.Args[k])))
			plain = append(plain, fmt.Sprintf("%s = %v", k, p.Args[k]))
		}
		line := strings.Join(args, ", ")
		if runes(line) > 500 {
			// The first argument, itself cut to fit, then the file with them all.
			first, _ := excerpt(fmt.Sprint(p.Args[keys[0]]), 300, code)
			line = code(keys[0]) + " = " + first
			if len(args) > 1 {
				line += fmt.Sprintf(", +%d more", len(args)-1)
			}
			line += " " + attachedNote(b.attach("arguments", "Arguments", strings.Join(plain, "\n")))
		}
		run += "\nArguments: " + line
	}
	b.section(b.longCode(run, p.Command, codeRunes, codeLines, "command", "Command"))

	if p.Preview != "" {
		b.section(b.longCode("*Preview* (read-only, before the change)", p.Preview, codeRunes, codeLines, "preview", "Preview"))
	}

	fs := []field{}
	if p.Risk != "" {
		fs = append(fs, field{"Risk", escape(p.Risk)})
	}
	if p.Rollback != "" {
		fs = append(fs, field{"Rollback", escape(p.Rollback)})
	}
	fs = append(fs, field{"Requested by", mention(v.Requester)})
	approvals := tally
	if p.Approval.FourEyes {
		approvals += " (four-eyes: not the requester)"
	}
	fs = append(fs, field{"Approvals", approvals})
	if expires != "" && (v.State == commands.ApprovalPending || v.State == commands.ApprovalExpired) {
		fs = append(fs, field{"Expires", expires})
	}
	b.fields(fs)

	if p.Blocked != "" {
		b.section(":no_entry: *Blocked:* " + escape(p.Blocked))
	}

	if len(v.Votes) > 0 {
		lines := make([]string, 0, len(v.Votes))
		for _, vote := range approves {
			lines = append(lines, ":white_check_mark: Approved by "+mention(vote.By)+" at "+clock(vote.At))
		}
		for _, vote := range rejects {
			lines = append(lines, ":no_entry_sign: Rejected by "+mention(vote.By)+" at "+clock(vote.At))
		}
		b.section(strings.Join(lines, "\n"))
	}

	if res := v.Result; res != nil {
		r.result(b, v.State, res)
	}

	if v.State == commands.ApprovalPending && p.Blocked == "" {
		approve := slackgo.NewButtonBlockElement(commands.ActionApprove, v.ApprovalID, plainText("Approve")).
			WithStyle(slackgo.StylePrimary).
			WithConfirm(slackgo.NewConfirmationBlockObject(
				plainText("Run this relief?"),
				plainText(cutRunes(fmt.Sprintf("%s on %s", title, strings.Join(p.Hosts, ", ")), 300)),
				plainText("Approve"), plainText("Cancel")))
		reject := slackgo.NewButtonBlockElement(commands.ActionReject, v.ApprovalID, plainText("Reject")).
			WithStyle(slackgo.StyleDanger)
		b.blocks = append(b.blocks, slackgo.NewActionBlock("approval", approve, reject))
	}

	b.context("Run "+code(v.RunID), "approval "+code(v.ApprovalID), "relief "+code(p.Relief))
	b.text = fmt.Sprintf("%s: %s on %s (run %s)", fallback, escape(title), escape(strings.Join(p.Hosts, ", ")), escape(v.RunID))
}

// result shows the relief's outcome and its verification.
func (r Renderer) result(b *builder, state string, res *incident.ReliefResult) {
	var lines []string
	if res.Error != "" {
		e, cut := excerpt(res.Error, 500, escape)
		line := "*Error:* " + e
		if cut {
			line += " " + attachedNote(b.attach("relief-error", "Relief error", res.Error))
		}
		lines = append(lines, line)
	}
	switch {
	case res.Verified == nil && state == commands.ApprovalSucceeded:
		lines = append(lines, ":mag: *Verification* pending — the check runs again after the playbook's wait")
	case res.Verified != nil && *res.Verified:
		lines = append(lines, ":white_check_mark: *Verified* — the check passed after the relief")
	case res.Verified != nil:
		lines = append(lines, ":warning: *Not verified* — the problem persists after the relief")
	}
	if len(lines) > 0 {
		b.section(strings.Join(lines, "\n"))
	}
	if res.Output != "" {
		b.section(b.longCode("*Output*", res.Output, codeRunes, codeLines, "relief-output", "Relief output"))
	}
}

// escalation: the summary for whoever takes the incident next.
func (r Renderer) escalation(b *builder, v *commands.EscalationView) {
	title := v.Title
	if title == "" {
		title = v.Playbook
	}
	if full, cut := b.header(":rotating_light: Escalation: " + title); cut {
		b.section("*" + escape(full) + "*")
	}
	e := v.Escalation
	why, cut := excerpt(e.Reason, proseRunes, escape)
	why = "*Why it escalates:* " + why
	if cut {
		why += " " + attachedNote(b.attach("reason", "Reason", e.Reason))
	}
	if e.Rule != "" {
		why += " _(rule " + code(e.Rule) + ")_"
	}
	b.section(why)

	owner := escape(e.Owner)
	if owner == "" {
		owner = "_not set_"
	}
	b.fields([]field{
		{"Suggested owner", owner},
		{"Run", code(v.RunID)},
		{"Playbook", code(v.Playbook)},
		{"Requested by", mention(v.Requester)},
	})
	if v.Symptom != "" {
		s, cut := excerpt(v.Symptom, proseRunes, escape)
		md := "*Symptom*\n" + s
		if cut {
			md += "\n" + attachedNote(b.attach("symptom", "Symptom", v.Symptom))
		}
		b.section(md)
	}

	if len(v.Findings) > 0 {
		items := make([]item, 0, len(v.Findings))
		for _, sev := range severities() {
			for _, f := range v.Findings {
				if severityTitle(f.Severity) == severityTitle(sev) {
					items = append(items, findingItem(f, true))
				}
			}
		}
		b.list(fmt.Sprintf("*Findings* (%d)", len(items)), items, 6, "escalation-findings", "Findings")
	}

	if len(v.Actions) > 0 {
		items := make([]item, 0, len(v.Actions))
		for _, a := range v.Actions {
			items = append(items, actionItem(a))
		}
		b.list("*Actions taken*", items, 4, "escalation-actions", "Actions taken")
	} else {
		b.section("*Actions taken*\nNone.")
	}

	if len(v.Timeline) > 0 {
		items := make([]item, 0, len(v.Timeline))
		for _, t := range v.Timeline {
			txt, cut := excerpt(t.Text, 400, escape)
			items = append(items, item{
				md:      code(t.At.UTC().Format("15:04:05")) + " " + txt,
				plain:   t.At.UTC().Format("2006-01-02 15:04:05 UTC") + " " + t.Text,
				clipped: cut,
			})
		}
		b.list("*Timeline* (UTC)", items, 6, "timeline", "Timeline")
	}

	if e.Next != "" {
		n, cut := excerpt(e.Next, proseRunes, escape)
		md := "*Next steps*\n" + n
		if cut {
			md += "\n" + attachedNote(b.attach("next-steps", "Next steps", e.Next))
		}
		b.section(md)
	}
	if v.ThreadLink != "" {
		b.section(":thread: " + link(v.ThreadLink, "Open the incident thread"))
	}
	b.context("Run " + code(v.RunID))
	b.text = fmt.Sprintf("Escalation: %s — %s. Suggested owner: %s (run %s)",
		escape(title), escape(strings.TrimRight(strings.TrimSpace(cutRunes(e.Reason, 300)), ".")), owner, escape(v.RunID))
}

func actionItem(a commands.ActionView) item {
	res := a.Result
	var md, plain strings.Builder
	md.WriteString("• *" + escape(a.Relief) + "*")
	plain.WriteString(a.Relief)
	if len(a.Hosts) > 0 {
		md.WriteString(" on " + hostList(a.Hosts))
		plain.WriteString(" on " + strings.Join(a.Hosts, ", "))
	}
	if len(a.ApprovedBy) > 0 {
		who := make([]string, 0, len(a.ApprovedBy))
		whoPlain := make([]string, 0, len(a.ApprovedBy))
		for _, by := range a.ApprovedBy {
			who = append(who, mention(by))
			whoPlain = append(whoPlain, firstNonEmpty(by.Name, by.ID))
		}
		md.WriteString(" — approved by " + strings.Join(who, ", "))
		plain.WriteString(" — approved by " + strings.Join(whoPlain, ", "))
	}
	if res.OK {
		md.WriteString(" — :white_check_mark: succeeded")
		plain.WriteString(" — succeeded")
	} else {
		md.WriteString(" — :x: failed")
		plain.WriteString(" — failed")
	}
	if res.Duration > 0 {
		md.WriteString(" in " + duration(res.Duration))
		plain.WriteString(" in " + duration(res.Duration))
	}
	switch {
	case res.Verified == nil:
		md.WriteString(", not verified yet")
		plain.WriteString(", not verified yet")
	case *res.Verified:
		md.WriteString(", verified :white_check_mark:")
		plain.WriteString(", verified")
	default:
		md.WriteString(", verification failed :warning:")
		plain.WriteString(", verification failed")
	}
	clipped := false
	if res.Error != "" {
		e, cut := excerpt(res.Error, 300, escape)
		md.WriteString("\n> " + strings.ReplaceAll(e, "\n", "\n> "))
		plain.WriteString("\n  error: " + res.Error)
		clipped = cut
	}
	return item{md: md.String(), plain: plain.String(), clipped: clipped}
}

// firstNonEmpty returns the first non-empty string.
func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
