package playbooks

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/ndrbot/ndrbot/incident"
)

func runExpr(prog *vm.Program, env map[string]any) (any, error) {
	if prog == nil {
		return nil, nil
	}
	return expr.Run(prog, env)
}

// evaluateReady evaluates, during the diagnosis, every rule whose steps have all
// finished and that has not been evaluated yet.
func (e *Engine) evaluateReady(ctx context.Context, run *Run) {
	if run.Playbook.await(ctx) != nil {
		return // Diagnose returns the problems
	}
	run.mu.Lock()
	var ready []int
	for i, rule := range run.Playbook.Rules {
		if run.evaluated[rule.ID] || len(rule.reads) == 0 {
			continue
		}
		all := true
		for _, s := range rule.reads {
			if _, ok := run.steps[s]; !ok {
				all = false
				break
			}
		}
		if all {
			run.evaluated[rule.ID] = true
			ready = append(ready, i)
		}
	}
	run.mu.Unlock()
	for _, i := range ready {
		e.applyRule(ctx, run, i, PhaseDiagnose)
	}
}

// applyRule evaluates one rule and records (and reports) its findings.
func (e *Engine) applyRule(ctx context.Context, run *Run, idx int, phase string) {
	rule := run.Playbook.Rules[idx]
	env := run.env(phase, nil, nil)
	var items []any
	if rule.each != nil {
		v, err := runExpr(rule.each, env)
		if err != nil {
			e.ruleError(ctx, run, idx, phase, err)
			return
		}
		items = toList(v)
	} else {
		items = []any{nil}
	}
	var matched []map[string]any
	var found []incident.Finding
	for _, it := range items {
		env["it"] = it
		ok, err := runBool(rule.when, env)
		if err != nil {
			e.ruleError(ctx, run, idx, phase, err)
			continue
		}
		if !ok {
			continue
		}
		row, _ := it.(map[string]any)
		matched = append(matched, row)
		f := incident.Finding{Rule: rule.ID, Severity: rule.Severity, Text: rule.finding.render(env),
			Evidence: excerpt(rule.evidence.render(env), 300), Phase: phase}
		if row != nil {
			f.Host, _ = row["Host"].(string)
		}
		found = append(found, f)
	}
	run.mu.Lock()
	var fresh []incident.Finding
	for _, f := range found {
		if run.addRankedLocked(idx, f) {
			fresh = append(fresh, f)
		}
	}
	if phase == PhaseDiagnose && len(matched) > 0 {
		run.matches[rule.ID] = matched
	}
	run.mu.Unlock()
	for _, f := range fresh {
		e.emit(ctx, run, incident.Event{Kind: incident.EventFinding, Finding: &f})
	}
}

func (e *Engine) ruleError(ctx context.Context, run *Run, idx int, phase string, err error) {
	rule := run.Playbook.Rules[idx]
	f := incident.Finding{Rule: rule.ID, Severity: incident.SeverityWarning, Phase: phase,
		Text: fmt.Sprintf("Rule %q could not be evaluated: %s", rule.ID, firstLine(err.Error()))}
	run.mu.Lock()
	fresh := run.addRankedLocked(idx, f)
	run.mu.Unlock()
	if fresh {
		e.emit(ctx, run, incident.Event{Kind: incident.EventFinding, Finding: &f})
	}
}

func toList(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case []map[string]any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = x[i]
		}
		return out
	case nil:
		return nil
	default:
		return []any{x}
	}
}

func excerpt(s string, n int) string {
	s = strings.TrimSpace(s)
	if s == "" || s == "n/a" {
		return ""
	}
	return truncate(s, n)
}

// evaluate finishes a phase: the remaining rules, then (while diagnosing) the
// proposals, then the escalations.
func (e *Engine) evaluate(ctx context.Context, run *Run, phase string) {
	e.applyRules(ctx, run, phase)
	if phase == PhaseDiagnose {
		e.propose(ctx, run)
	}
	e.escalate(ctx, run, phase)
}

// applyRules evaluates every rule not yet evaluated in the phase.
func (e *Engine) applyRules(ctx context.Context, run *Run, phase string) {
	for i, rule := range run.Playbook.Rules {
		if phase == PhaseDiagnose {
			run.mu.Lock()
			seen := run.evaluated[rule.ID]
			run.evaluated[rule.ID] = true
			run.mu.Unlock()
			if seen {
				continue
			}
		}
		e.applyRule(ctx, run, i, phase)
	}
}

// propose turns rule matches into one proposal per relief, bound to the hosts the
// evidence came from, with the relief's arguments, its preview and its cooldown.
func (e *Engine) propose(ctx context.Context, run *Run) {
	var props []incident.Proposal
	run.mu.Lock()
	for _, relief := range run.Playbook.Reliefs {
		var because []incident.Finding
		var first map[string]any
		var hostsFromRows []string
		matchedAny := false
		for _, rule := range run.Playbook.Rules {
			rows, ok := run.matches[rule.ID]
			if rule.Propose != relief.ID || !ok {
				continue
			}
			matchedAny = true
			for _, rf := range run.findings {
				if rf.f.Rule == rule.ID && rf.f.Phase == PhaseDiagnose {
					because = append(because, rf.f)
				}
			}
			for _, row := range rows {
				if first == nil {
					first = row
				}
				if h, ok := row["Host"].(string); ok && !slices.Contains(hostsFromRows, h) {
					hostsFromRows = append(hostsFromRows, h)
				}
			}
		}
		if !matchedAny {
			continue
		}
		env := run.envLocked(PhaseDiagnose, first, nil)
		p := incident.Proposal{ID: relief.ID, Relief: relief.ID, Title: relief.Title, Target: relief.Target,
			Command: strings.TrimSpace(relief.PowerShell), Risk: relief.Risk, Rollback: relief.Rollback,
			Approval: relief.Approval, Because: because}
		if relief.Check != "" {
			p.Command = "check: " + relief.Check
		}
		if relief.Cmdlet != nil {
			p.Command = relief.Cmdlet.Text()
		}
		args, err := evalArgs(relief.With, env)
		if err != nil {
			p.Blocked = "arguments could not be computed: " + err.Error()
		}
		p.Args = scriptData(nil, args)
		// A value the run did not have (an optional parameter left out) is no
		// argument: the card and the terminal show what is passed, nothing else.
		maps.DeleteFunc(p.Args, func(_ string, v any) bool { return v == nil })
		p.Hosts = hostsFromRows
		props = append(props, p)
	}
	run.mu.Unlock()

	// Hosts, previews and cooldowns need executors: do them concurrently.
	var wg sync.WaitGroup
	for i := range props {
		wg.Go(func() { e.prepareProposal(ctx, run, &props[i]) })
	}
	wg.Wait()

	run.mu.Lock()
	run.proposals = props
	run.mu.Unlock()
	for i := range props {
		e.emit(ctx, run, incident.Event{Kind: incident.EventProposal, Proposal: &props[i]})
	}
}

func (e *Engine) prepareProposal(ctx context.Context, run *Run, p *incident.Proposal) {
	relief := run.Playbook.Relief(p.Relief)
	exec, err := e.targets.Executor(relief.Target)
	if err != nil {
		p.Blocked = err.Error()
		return
	}
	// The relief runs where the evidence is, when the evidence names hosts of the
	// relief's own target; otherwise on every host of that target.
	var hosts []string
	for _, h := range p.Hosts {
		if slices.Contains(exec.Hosts(), h) {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		hosts = exec.Hosts()
	}
	p.Hosts = hosts
	if len(hosts) == 0 {
		p.Blocked = fmt.Sprintf("target %q has no endpoints", relief.Target)
		return
	}
	if b := relief.Block; b != nil {
		env := run.env(PhaseDiagnose, nil, p.Args)
		env["hosts"] = hosts
		blocked, err := runBool(b.when, env)
		switch {
		case err != nil:
			p.Blocked = "could not be checked: " + err.Error()
			return
		case blocked:
			p.Blocked = b.reason.render(env)
			return
		}
	}
	// The lab scales cooldowns like waits, so demos can be repeated.
	cooldown := time.Duration(float64(relief.Cooldown) / e.scale)
	p.Cooldown = cooldown
	for _, h := range hosts {
		last, ok, err := e.history.LastRelief(ctx, relief.ID, h)
		if err != nil {
			p.Blocked = "cooldown could not be checked: " + err.Error()
			break
		}
		if ok && cooldown > 0 && e.now().Sub(last) < cooldown {
			p.Blocked = fmt.Sprintf("%s already ran on %s at %s; cooldown %s lasts until %s", relief.ID, h,
				last.UTC().Format("15:04:05Z"), cooldown, last.Add(cooldown).UTC().Format("15:04:05Z"))
			break
		}
	}
	if relief.Preview != "" || relief.PreviewCmdlet != nil {
		a := newAction(relief.ID+".preview", relief.Preview, "", relief.PreviewCmdlet, scriptData(run.Params, p.Args), relief.Timeout,
			run.env(PhaseDiagnose, nil, p.Args))
		var lines []string
		for _, o := range e.onHosts(ctx, exec, hosts, false, a) {
			if o.err != nil {
				lines = append(lines, fmt.Sprintf("%s: preview failed: %v", o.host, o.err))
				continue
			}
			rows, err := Rows(o.host, o.out.Stdout)
			if err != nil {
				lines = append(lines, fmt.Sprintf("%s: preview unreadable: %v", o.host, err))
				continue
			}
			for _, row := range rows {
				b, _ := json.Marshal(row)
				lines = append(lines, string(b))
			}
		}
		p.Preview = strings.Join(lines, "\n")
	}
}

// escalate raises every escalation whose criterion holds and that was not raised
// before in this run.
func (e *Engine) escalate(ctx context.Context, run *Run, phase string) {
	env := run.env(phase, nil, nil)
	var raised []incident.Escalation
	for _, esc := range run.Playbook.Escalate {
		ok, err := runBool(esc.when, env)
		if err != nil {
			e.log.Warn("escalation criterion failed", "run", run.ID, "escalation", esc.ID, "err", err)
			continue
		}
		if !ok {
			continue
		}
		raised = append(raised, incident.Escalation{Rule: esc.ID, Reason: esc.reason.render(env), Owner: esc.Owner, Next: esc.Next})
	}
	run.mu.Lock()
	var fresh []incident.Escalation
	for _, x := range raised {
		if !run.raised[x.Rule] {
			run.raised[x.Rule] = true
			run.escalations = append(run.escalations, x)
			fresh = append(fresh, x)
		}
	}
	run.mu.Unlock()
	for _, x := range fresh {
		e.emit(ctx, run, incident.Event{Kind: incident.EventEscalation, Escalation: &x})
	}
}
