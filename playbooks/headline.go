package playbooks

import (
	"slices"

	"github.com/ndrbot/ndrbot/incident"
)

// Headline is what a run comes to, in its own words: the most severe finding (the
// likely cause, quoted, never paraphrased) and what follows from it — the
// escalation, the proposed relief, or nothing because the run is healthy. Every
// front end leads with it; it is derived here once so they agree.
type Headline struct {
	// Cause is the most severe finding of warning or worse; nil when there is none.
	// Among equally severe findings, the one the first proposal cites wins, else
	// the first in the run's order.
	Cause *incident.Finding
	// Escalation is the latest escalation raised, if any: the next step is to
	// hand the incident over.
	Escalation *incident.Escalation
	// Relief is the first proposal, if any (it may be Blocked).
	Relief *incident.Proposal
}

// Healthy reports a run that found nothing of warning or worse and handed
// nothing over.
func (h Headline) Healthy() bool { return h.Cause == nil && h.Escalation == nil && h.Relief == nil }

// HeadlineOf derives the headline from what a run found. Findings of the verify
// phase, when there are any, describe the state after a relief and take the place
// of the diagnosis's.
func HeadlineOf(findings []incident.Finding, proposals []incident.Proposal, escalations []incident.Escalation) Headline {
	var h Headline
	phase := PhaseDiagnose
	if slices.ContainsFunc(findings, func(f incident.Finding) bool { return f.Phase == PhaseVerify }) {
		phase = PhaseVerify
	}
	var cited []incident.Finding
	if len(proposals) > 0 {
		p := proposals[0]
		h.Relief = &p
		cited = p.Because
	}
	if len(escalations) > 0 {
		e := escalations[len(escalations)-1]
		h.Escalation = &e
	}
	best, bestCited := -1, false
	for i, f := range findings {
		if (f.Phase == PhaseVerify) != (phase == PhaseVerify) || f.Severity.Rank() < incident.SeverityWarning.Rank() {
			continue
		}
		isCited := slices.ContainsFunc(cited, func(c incident.Finding) bool { return c.Rule == f.Rule && c.Text == f.Text })
		switch {
		case best < 0, f.Severity.Rank() > findings[best].Severity.Rank():
		case f.Severity.Rank() == findings[best].Severity.Rank() && isCited && !bestCited:
		default:
			continue
		}
		best, bestCited = i, isCited
	}
	if best >= 0 {
		f := findings[best]
		h.Cause = &f
	}
	return h
}

// Headline is HeadlineOf the run as it stands.
func (r *Run) Headline() Headline {
	return HeadlineOf(r.Findings(), r.Proposals(), r.Escalations())
}

// FindingStep names the step a finding rests on alone: the step of a step-failed
// or step-skipped finding, or the only step its rule reads. "" when the finding
// rests on several steps (or none).
func (p *Playbook) FindingStep(f incident.Finding) string {
	if f.Step != "" {
		return f.Step
	}
	for _, rule := range p.Rules {
		if rule.ID == f.Rule {
			if len(rule.reads) == 1 {
				return rule.reads[0]
			}
			return ""
		}
	}
	return ""
}

// StepVerdict is how a step is shown: its own status, unless it ran (ok) and what
// it found is a problem. A probe that answered "timeout" ran fine, but its result
// is a critical finding: the step is failed in what it found, and says so.
type StepVerdict struct {
	// Status is the step's status, or StepFailed when a critical finding rests on
	// it alone.
	Status incident.StepStatus
	// Worst is the severity of the most severe finding resting on the step alone;
	// "" when none does.
	Worst incident.Severity
}

// StepVerdicts gives the verdict of every step in steps, reading the findings of
// phase (PhaseDiagnose or PhaseVerify). It is the one place that decides whether a
// step that ran is shown as failed.
func (p *Playbook) StepVerdicts(steps []incident.StepResult, findings []incident.Finding, phase string) map[string]StepVerdict {
	out := make(map[string]StepVerdict, len(steps))
	for _, s := range steps {
		out[s.Step] = StepVerdict{Status: s.Status}
	}
	for _, f := range findings {
		if (f.Phase == PhaseVerify) != (phase == PhaseVerify) {
			continue
		}
		id := p.FindingStep(f)
		v, ok := out[id]
		if !ok || f.Rule == "step-skipped" {
			continue
		}
		if v.Worst == "" || f.Severity.Rank() > v.Worst.Rank() {
			v.Worst = f.Severity
		}
		if v.Status == incident.StepOK && f.Severity == incident.SeverityCritical {
			v.Status = incident.StepFailed
		}
		out[id] = v
	}
	return out
}
