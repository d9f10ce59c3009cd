package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

// terminal prints a run for a person. It is the engine's observer for the CLI.
//
// Steps finish concurrently, in no fixed order. While they run, a person sees
// progress: on a terminal (live) one status line rewritten in place, elsewhere
// one line per finished step on the progress writer (stderr), in the order they
// finish. The report on w is tidy and the same from run to run: the header, then
// the headline (the likely cause and the next step), the steps in the playbook's
// order with aligned durations, the findings by severity, the proposals and the
// escalations. A relief's verification is printed the same way, as one block once
// it is done; only the wait before it counts down live.
type terminal struct {
	w     io.Writer
	quiet bool // --json: the report is the only output
	// live: w is a person's terminal; progress and countdowns rewrite one line.
	live bool
	// progress, when set and not live, gets a line per finished step as it finishes.
	progress io.Writer
	// scale is the engine's WaitScale (the lab shortens waits), so a countdown
	// counts the playbook's time in step with the real wait.
	scale float64

	mu         sync.Mutex
	summarised bool
	run        *playbooks.Run
	done       int    // diagnosis steps finished
	status     bool   // a live status line is on screen
	stopCount  func() // ends the countdown under way
	verifying  *verification
}

// verification buffers what a relief's verification produced until it is over.
type verification struct {
	relief   string
	steps    []incident.StepResult
	findings []incident.Finding
}

// elapsedText formats a measured duration. Tests replace it: measured durations
// differ from run to run.
var elapsedText = durationText

// durationText writes a duration as a person would: 15m, 1h30m, 24h, 2.5s, 12ms.
func durationText(d time.Duration) string {
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	var s string
	switch {
	case d < time.Second:
		s = fmt.Sprintf("%dms", d.Round(time.Millisecond)/time.Millisecond)
	case d < 10*time.Second:
		s = strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.1f", d.Seconds()), "0"), ".") + "s"
	default:
		s = d.Round(time.Second).String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
	}
	return neg + s
}

// paramText formats a parameter value: durations short, times in RFC 3339.
func paramText(v any) string {
	switch x := v.(type) {
	case time.Duration:
		return durationText(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	}
	return fmt.Sprint(v)
}

// printf prints a line of the report, replacing a live status line if one shows.
func (t *terminal) printf(format string, args ...any) {
	if t.quiet {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.printfLocked(format, args...)
}

func (t *terminal) printfLocked(format string, args ...any) {
	t.clearStatusLocked()
	fmt.Fprintf(t.w, format, args...)
}

// statusLocked shows s as the live status line (only on a terminal).
func (t *terminal) statusLocked(s string) {
	if !t.live || t.quiet {
		return
	}
	fmt.Fprintf(t.w, "\r\033[K%s", s)
	t.status = true
}

func (t *terminal) clearStatusLocked() {
	if t.status {
		fmt.Fprint(t.w, "\r\033[K")
		t.status = false
	}
}

var severityMark = map[incident.Severity]string{
	incident.SeverityCritical: "✖ CRITICAL",
	incident.SeverityWarning:  "▲ WARNING ",
	incident.SeverityInfo:     "• info    ",
}

var stepMark = map[incident.StepStatus]string{
	incident.StepOK:      "✓",
	incident.StepFailed:  "✖",
	incident.StepTimeout: "⏱",
	incident.StepSkipped: "–",
}

// verdictMark is a step's mark in a summary: ✖ when it failed or what it found is
// critical, ▲ when what it found is a warning.
func verdictMark(v playbooks.StepVerdict) string {
	if v.Status == incident.StepOK && v.Worst == incident.SeverityWarning {
		return "▲"
	}
	if m, ok := stepMark[v.Status]; ok {
		return m
	}
	return "?"
}

func (t *terminal) header(run *playbooks.Run, scenario string) {
	t.mu.Lock()
	t.run = run
	t.mu.Unlock()
	where := "live servers"
	if scenario != "" {
		where = "lab scenario " + scenario
	}
	var ps []string
	for k, v := range run.Params {
		ps = append(ps, fmt.Sprintf("%s=%s", k, paramText(v)))
	}
	sort.Strings(ps)
	t.printf("%s — %s\nrun %s · %s · params: %s\n", run.Playbook.ID, run.Playbook.Title, run.ID, where, strings.Join(ps, " "))
}

// Observe reports progress as it happens.
func (t *terminal) Observe(_ context.Context, ev incident.Event) {
	if t.quiet {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ev.Kind {
	case incident.EventStepFinished:
		s := *ev.Step
		if s.Verifying {
			if t.verifying != nil {
				t.verifying.steps = append(t.verifying.steps, s)
			}
			t.stopCountdownLocked()
			n := 0
			if t.verifying != nil {
				n = len(t.verifying.steps)
			}
			t.statusLocked(fmt.Sprintf("  re-checking: %d step(s) done, last %s %s", n, stepMark[s.Status], s.Step))
			return
		}
		t.done++
		total := 0
		if t.run != nil {
			total = len(t.run.Playbook.Steps)
		}
		if t.live {
			t.statusLocked(fmt.Sprintf("  running steps: %d of %d done, last %s %s (%s)", t.done, total, stepMark[s.Status], s.Step, elapsedText(s.Duration)))
		} else if t.progress != nil {
			took := elapsedText(s.Duration)
			if s.Status == incident.StepSkipped {
				took = "skipped"
			}
			fmt.Fprintf(t.progress, "  [%d/%d] %s %s %s\n", t.done, total, stepMark[s.Status], s.Step, took)
		}
	case incident.EventReliefFinished:
		r := ev.Relief
		if r.OK {
			t.printfLocked("  ✓ %s ran on %s in %s\n", r.Relief, strings.Join(r.Hosts, ", "), elapsedText(r.Duration))
		} else {
			t.printfLocked("  ✖ %s failed: %s\n", r.Relief, r.Error)
		}
	case incident.EventVerifyStarted:
		t.verifying = &verification{relief: ev.Relief.Relief}
		var after time.Duration
		var what []string
		if t.run != nil {
			if rl := t.run.Playbook.Relief(ev.Relief.Relief); rl != nil && rl.Verify != nil {
				after, what = rl.Verify.After, t.inPlaybookOrder(rl.Verify.Steps)
			}
		}
		line := fmt.Sprintf("  ⧗ verifying %s: waiting %s for it to take effect, then re-checking %s", ev.Relief.Relief, durationText(after), strings.Join(what, ", "))
		t.printfLocked("%s\n", line)
		t.countdownLocked(after, strings.Join(what, ", "))
	case incident.EventFinding:
		if ev.Finding.Phase == playbooks.PhaseVerify {
			if t.verifying != nil {
				t.verifying.findings = append(t.verifying.findings, *ev.Finding)
			} else {
				t.printfLocked("    after relief: %s %s\n", severityMark[ev.Finding.Severity], ev.Finding.Text)
			}
		}
	case incident.EventReliefVerified:
		t.flushVerificationLocked()
		if *ev.Relief.Verified {
			t.printfLocked("  ✓ verified: %s worked\n", ev.Relief.Relief)
		} else {
			t.printfLocked("  ✖ not verified: %s did not clear the problem\n", ev.Relief.Relief)
		}
	case incident.EventEscalation:
		// Escalations of the diagnosis are printed with its summary; those raised
		// after a relief, as they happen.
		if t.summarised {
			t.flushVerificationLocked()
			t.printEscalationLocked(*ev.Escalation)
		}
	}
}

// inPlaybookOrder sorts step ids as the playbook lists them.
func (t *terminal) inPlaybookOrder(ids []string) []string {
	var out []string
	for _, s := range t.run.Playbook.Steps {
		if slices.Contains(ids, s.ID) {
			out = append(out, s.ID)
		}
	}
	return out
}

// countdownLocked counts the wait before a verification down on the live line.
// It ends by itself when the wait is over, or when the re-check reports.
func (t *terminal) countdownLocked(wait time.Duration, what string) {
	t.stopCountdownLocked()
	if !t.live || wait <= 0 {
		return
	}
	scale := t.scale
	if scale <= 0 {
		scale = 1
	}
	real := time.Duration(float64(wait) / scale)
	tick := min(time.Second, max(real/20, 20*time.Millisecond))
	start := time.Now()
	stop := make(chan struct{})
	var once sync.Once
	t.stopCount = func() { once.Do(func() { close(stop) }) }
	go func() {
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for {
			left := max(0, wait-time.Duration(float64(time.Since(start))*scale)).Round(time.Second)
			t.mu.Lock()
			select {
			case <-stop:
				t.mu.Unlock()
				return
			default:
			}
			if left == 0 {
				t.statusLocked("  re-checking " + what)
				t.mu.Unlock()
				return
			}
			t.statusLocked(fmt.Sprintf("  ⧗ %s left, then re-checking %s", durationText(left), what))
			t.mu.Unlock()
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
}

func (t *terminal) stopCountdownLocked() {
	if t.stopCount != nil {
		t.stopCount()
		t.stopCount = nil
	}
}

// flushVerificationLocked prints a finished verification: the re-checked steps
// in the playbook's order, then what was found after the relief by severity.
func (t *terminal) flushVerificationLocked() {
	v := t.verifying
	if v == nil {
		return
	}
	t.verifying = nil
	t.stopCountdownLocked()
	var steps []incident.StepResult
	for _, s := range t.run.Playbook.Steps {
		for _, r := range v.steps {
			if r.Step == s.ID {
				steps = append(steps, r)
			}
		}
	}
	t.stepTableLocked(steps, v.findings, playbooks.PhaseVerify, "  ", "verify ")
	for _, f := range bySeverity(v.findings) {
		t.printfLocked("    after relief: %s %s\n", severityMark[f.Severity], f.Text)
	}
}

// stepTableLocked prints steps with their verdicts and durations in aligned columns.
func (t *terminal) stepTableLocked(steps []incident.StepResult, findings []incident.Finding, phase, indent, prefix string) {
	verdicts := t.run.Playbook.StepVerdicts(steps, findings, phase)
	idW, titleW, durW := 0, 0, 0
	for _, s := range t.run.Playbook.Steps {
		idW = max(idW, len([]rune(prefix+s.ID)))
		titleW = max(titleW, min(len([]rune(s.Title)), 72))
	}
	took := make([]string, len(steps))
	for i, s := range steps {
		took[i] = elapsedText(s.Duration)
		if s.Status == incident.StepSkipped {
			took[i] = "skipped"
		}
		durW = max(durW, len([]rune(took[i])))
	}
	for i, s := range steps {
		title := s.Title
		if r := []rune(title); len(r) > titleW {
			title = string(r[:titleW-1]) + "…"
		}
		t.printfLocked("%s%s %-*s  %-*s  %*s\n", indent, verdictMark(verdicts[s.Step]), idW, prefix+s.Step, titleW, title, durW, took[i])
		if s.Error != "" {
			t.printfLocked("%s    %s\n", indent, firstLines(s.Error, 3))
		}
	}
}

// bySeverity orders findings most severe first, keeping the run's order within
// a severity.
func bySeverity(fs []incident.Finding) []incident.Finding {
	out := slices.Clone(fs)
	slices.SortStableFunc(out, func(a, b incident.Finding) int { return b.Severity.Rank() - a.Severity.Rank() })
	return out
}

// headlineLocked prints the run's headline: the likely cause, quoted from its
// finding, and the next step.
func (t *terminal) headlineLocked(h playbooks.Headline) {
	switch {
	case h.Cause != nil:
		t.printfLocked("%s Likely cause: %s\n", strings.Fields(severityMark[h.Cause.Severity])[0], h.Cause.Text)
	case h.Escalation != nil:
		t.printfLocked("⚠ Escalated: %s\n", h.Escalation.Reason)
	default:
		t.printfLocked("✓ Healthy: no warning or critical finding\n")
	}
	var next []string
	if e := h.Escalation; e != nil {
		s := "escalate to " + e.Owner
		if e.Next != "" {
			s += " — " + e.Next
		}
		next = append(next, s)
	}
	if p := h.Relief; p != nil {
		s := fmt.Sprintf("approve relief %s on %s — %s", p.Relief, strings.Join(p.Hosts, ", "), p.Title)
		if p.Blocked != "" {
			s = fmt.Sprintf("relief %s is blocked: %s", p.Relief, p.Blocked)
		}
		if len(next) > 0 {
			s = "also proposed: " + s
		}
		next = append(next, s)
	}
	switch {
	case len(next) == 0 && h.Cause != nil:
		next = append(next, "no relief proposed and nothing escalated: read the findings")
	case len(next) == 0:
		next = append(next, "nothing to do")
	}
	for i, s := range next {
		label := "  Next:"
		if i > 0 {
			label = "       "
		}
		t.printfLocked("%s %s\n", label, s)
	}
}

func (t *terminal) summary(run *playbooks.Run) {
	if t.quiet {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.run = run
	t.clearStatusLocked()
	fs := run.Findings()
	t.printfLocked("\n")
	t.headlineLocked(run.Headline())

	t.printfLocked("\nSteps\n")
	t.stepTableLocked(run.Steps(), fs, playbooks.PhaseDiagnose, "  ", "")

	t.printfLocked("\nFindings\n")
	if len(fs) == 0 {
		t.printfLocked("  none\n")
	}
	for _, f := range bySeverity(fs) {
		t.printfLocked("  %s %s\n", severityMark[f.Severity], f.Text)
		if f.Evidence != "" {
			t.printfLocked("               evidence: %s\n", f.Evidence)
		}
	}
	for _, p := range run.Proposals() {
		t.printfLocked("\nProposed relief: %s — %s\n", p.Relief, p.Title)
		t.printfLocked("  hosts:    %s\n", strings.Join(p.Hosts, ", "))
		t.printfLocked("  command:\n%s\n", indent(p.Command, "    "))
		if len(p.Args) > 0 {
			var as []string
			for k, v := range p.Args {
				as = append(as, fmt.Sprintf("%s=%s", k, paramText(v)))
			}
			sort.Strings(as)
			t.printfLocked("  data:     %s (passed as values, never spliced into the command)\n", strings.Join(as, " "))
		}
		if p.Preview != "" {
			t.printfLocked("  preview:\n%s\n", indent(p.Preview, "    "))
		}
		t.printfLocked("  risk:     %s\n", p.Risk)
		if p.Rollback != "" {
			t.printfLocked("  rollback: %s\n", p.Rollback)
		}
		t.printfLocked("  approval: %d approver(s) with role %s, four-eyes %v, expires after %s\n",
			p.Approval.Approvers, p.Approval.Role, p.Approval.FourEyes, durationText(p.Approval.Expires))
	}
	for _, e := range run.Escalations() {
		t.printEscalationLocked(e)
	}
	t.summarised = true
}

func (t *terminal) printEscalationLocked(e incident.Escalation) {
	t.printfLocked("\n⚠ ESCALATE to %s\n  why:  %s\n", e.Owner, e.Reason)
	if e.Next != "" {
		t.printfLocked("  next: %s\n", e.Next)
	}
}

func (t *terminal) footer(run *playbooks.Run, code int) {
	if t.quiet {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flushVerificationLocked()
	t.stopCountdownLocked()
	verdict := map[int]string{exitHealthy: "healthy", exitFindings: "findings", exitEscalation: "escalated"}[code]
	t.printfLocked("\nresult: %s (exit %d) · %s\n", verdict, code, elapsedText(time.Since(run.Started)))
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, "\n      ")
}
