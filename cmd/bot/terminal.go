package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

// terminal prints a run for a person: live step progress with durations, then the
// findings, proposals and escalations. It is the engine's observer for the CLI.
type terminal struct {
	w     io.Writer
	quiet bool // --json: the report is the only output

	mu         sync.Mutex
	summarised bool
}

func (t *terminal) printf(format string, args ...any) {
	if t.quiet {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, format, args...)
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

func (t *terminal) header(run *playbooks.Run, scenario string) {
	where := "live servers"
	if scenario != "" {
		where = "lab scenario " + scenario
	}
	var ps []string
	for k, v := range run.Params {
		ps = append(ps, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(ps)
	t.printf("%s — %s\nrun %s · %s · params: %s\n\n", run.Playbook.ID, run.Playbook.Title, run.ID, where, strings.Join(ps, " "))
}

// Observe prints progress as it happens.
func (t *terminal) Observe(_ context.Context, ev incident.Event) {
	switch ev.Kind {
	case incident.EventStepFinished:
		s := ev.Step
		label := s.Step
		if s.Verifying {
			label = "verify " + s.Step
		}
		line := fmt.Sprintf("  %s %-18s %-55s %6s", stepMark[s.Status], label, s.Title, s.Duration.Round(time.Millisecond))
		if s.Status == incident.StepSkipped {
			line = fmt.Sprintf("  %s %-18s %-55s %6s", stepMark[s.Status], label, s.Title, "skipped")
		}
		if s.Error != "" {
			line += "\n      " + firstLines(s.Error, 3)
		}
		t.printf("%s\n", line)
	case incident.EventReliefFinished:
		r := ev.Relief
		if r.OK {
			t.printf("  ✓ %s ran on %s in %s\n", r.Relief, strings.Join(r.Hosts, ", "), r.Duration.Round(time.Millisecond))
		} else {
			t.printf("  ✖ %s failed: %s\n", r.Relief, r.Error)
		}
	case incident.EventVerifyStarted:
		t.printf("  … waiting, then re-checking to verify %s\n", ev.Relief.Relief)
	case incident.EventReliefVerified:
		if *ev.Relief.Verified {
			t.printf("  ✓ verified: %s worked\n", ev.Relief.Relief)
		} else {
			t.printf("  ✖ not verified: %s did not clear the problem\n", ev.Relief.Relief)
		}
	case incident.EventFinding:
		if ev.Finding.Phase == playbooks.PhaseVerify {
			t.printf("    after relief: %s %s\n", severityMark[ev.Finding.Severity], ev.Finding.Text)
		}
	case incident.EventEscalation:
		// Escalations of the diagnosis are printed with its summary; those raised
		// after a relief, as they happen.
		t.mu.Lock()
		live := t.summarised
		t.mu.Unlock()
		if live {
			t.printEscalation(*ev.Escalation)
		}
	}
}

func (t *terminal) summary(run *playbooks.Run) {
	t.printf("\nFindings\n")
	fs := run.Findings()
	if len(fs) == 0 {
		t.printf("  none\n")
	}
	for _, f := range fs {
		t.printf("  %s %s\n", severityMark[f.Severity], f.Text)
		if f.Evidence != "" {
			t.printf("               evidence: %s\n", f.Evidence)
		}
	}
	for _, p := range run.Proposals() {
		t.printf("\nProposed relief: %s — %s\n", p.Relief, p.Title)
		t.printf("  hosts:    %s\n", strings.Join(p.Hosts, ", "))
		t.printf("  command:\n%s\n", indent(p.Command, "    "))
		if len(p.Args) > 0 {
			var as []string
			for k, v := range p.Args {
				as = append(as, fmt.Sprintf("%s=%v", k, v))
			}
			sort.Strings(as)
			t.printf("  data:     %s (passed as values, never spliced into the command)\n", strings.Join(as, " "))
		}
		if p.Preview != "" {
			t.printf("  preview:\n%s\n", indent(p.Preview, "    "))
		}
		t.printf("  risk:     %s\n", p.Risk)
		if p.Rollback != "" {
			t.printf("  rollback: %s\n", p.Rollback)
		}
		t.printf("  approval: %d approver(s) with role %s, four-eyes %v, expires after %s\n",
			p.Approval.Approvers, p.Approval.Role, p.Approval.FourEyes, p.Approval.Expires)
	}
	for _, e := range run.Escalations() {
		t.printEscalation(e)
	}
	t.mu.Lock()
	t.summarised = true
	t.mu.Unlock()
}

func (t *terminal) printEscalation(e incident.Escalation) {
	t.printf("\n⚠ ESCALATE to %s\n  why:  %s\n", e.Owner, e.Reason)
	if e.Next != "" {
		t.printf("  next: %s\n", e.Next)
	}
}

func (t *terminal) footer(run *playbooks.Run, code int) {
	verdict := map[int]string{exitHealthy: "healthy", exitFindings: "findings", exitEscalation: "escalated"}[code]
	t.printf("\nresult: %s (exit %d) · %s\n", verdict, code, time.Since(run.Started).Round(time.Millisecond))
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
