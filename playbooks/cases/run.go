package cases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
)

// Resolver finds the playbook a case names; *playbooks.Catalog is one.
type Resolver interface {
	Resolve(code string) (*playbooks.Playbook, error)
}

// Defaults for Options.
const (
	// DefaultWaitScale makes a 5-minute verify wait last 300µs: a case checks
	// the decisions, not the clock.
	DefaultWaitScale = 1e6
	// DefaultTimeout bounds one case, so a hung step cannot hang a test run.
	DefaultTimeout = 2 * time.Minute
)

// Options tune Run and Validate.
type Options struct {
	// Kinds maps target names to their kind (the CLI passes cfg.TargetKinds()).
	// A target the playbook uses that is missing here but is named after a
	// kind (exchange, jea, probe …) is taken to be of that kind.
	Kinds map[string]string
	// WaitScale divides the playbook's waits and cooldowns; DefaultWaitScale when 0.
	WaitScale float64
	// Timeout bounds one case; DefaultTimeout when 0.
	Timeout time.Duration
	// Observer, when set, receives the engine's events (a verbose CLI prints them).
	Observer playbooks.Observer
}

// Result is the outcome of one case.
type Result struct {
	Case   Case
	Passed bool
	// Failures are the mismatches, each "file:line: key: what was expected, what
	// was got".
	Failures []string
	Duration time.Duration
	// Run is the run the case made, for a verbose report; nil when the case
	// could not start (an unknown playbook, an org that does not load …).
	Run *playbooks.Run
}

// kinds of target the lab stands in for; a target named after one needs no
// entry in Options.Kinds.
var knownKinds = []string{"exchange", "jea", "winrm", "exo", "graph", "probe", "lab"}

// Findings the engine itself raises, besides the playbook's rules.
var engineFindings = []string{"step-failed", "step-skipped"}

// prepared is what a case needs to run, checked against its playbook.
type prepared struct {
	pb     *playbooks.Playbook
	params map[string]any
	kinds  map[string]string
	lab    *lab.Lab
}

// Validate checks a case against the catalog without running it: the playbook
// resolves, the params are valid, every rule, relief and escalation it names
// exists in the playbook, every target has a kind and the organisation loads.
// The error is playbooks.Problems.
func Validate(c Case, cat Resolver, opts Options) error {
	if _, ps := prepare(c, cat, opts); len(ps) > 0 {
		return ps
	}
	return nil
}

func prepare(c Case, cat Resolver, opts Options) (prepared, playbooks.Problems) {
	var ps playbooks.Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, playbooks.Problem{File: c.File, Line: c.line(key), Msg: key + ": " + fmt.Sprintf(format, args...)})
	}
	pb, err := cat.Resolve(c.Playbook)
	if err != nil {
		add("playbook", "%v", err)
		return prepared{}, ps
	}
	p := prepared{pb: pb, kinds: map[string]string{}}
	if p.params, err = pb.Params.Resolve(c.Params); err != nil {
		add("params", "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}

	rules := slices.Clone(engineFindings)
	for _, r := range pb.Rules {
		rules = append(rules, r.ID)
	}
	var reliefs, escalations []string
	for _, r := range pb.Reliefs {
		reliefs = append(reliefs, r.ID)
	}
	for _, e := range pb.Escalate {
		escalations = append(escalations, e.ID)
	}
	known := func(key string, ids, in []string, what string) {
		for i, id := range ids {
			if !slices.Contains(in, id) {
				add(fmt.Sprintf("%s[%d]", key, i), "%s has no %s %q (its %ss: %s)", pb.ID, what, id, what, orNone(in))
			}
		}
	}
	check := func(key string, e *Expect) {
		known(key+".findings", e.Findings, rules, "rule")
		known(key+".not_findings", e.NotFindings, rules, "rule")
		known(key+".not_proposals", e.NotProposals, reliefs, "relief")
		known(key+".escalations", e.Escalations, escalations, "escalation")
		known(key+".not_escalations", e.NotEscalations, escalations, "escalation")
		for i, pe := range e.Proposals {
			if !slices.Contains(reliefs, pe.Relief) {
				add(fmt.Sprintf("%s.proposals[%d]", key, i), "%s has no relief %q (its reliefs: %s)", pb.ID, pe.Relief, orNone(reliefs))
			}
		}
	}
	check("expect", &c.Expect)
	known("approve", c.Approve, reliefs, "relief")
	if c.After != nil {
		check("after", c.After)
		if c.After.Verified != nil {
			for i, id := range c.Approve {
				if r := pb.Relief(id); r != nil && r.Verify == nil {
					add(fmt.Sprintf("approve[%d]", i), "relief %q has no verify:, so after.verified cannot be checked", id)
				}
			}
		}
	}

	for _, t := range pb.Targets() {
		kind := opts.Kinds[t]
		if kind == "" && slices.Contains(knownKinds, t) {
			kind = t
		}
		if kind == "" {
			add("playbook", "%s uses target %q, which has no kind (configure it, or pass its kind)", pb.ID, t)
			continue
		}
		p.kinds[t] = kind
	}

	if p.lab, err = c.newLab(pb.ID); err != nil {
		add("org", "%v", err)
	}
	return p, ps
}

// newLab builds a fresh lab from the case's organisation: a run's reliefs
// change it, so no two runs share one.
func (c Case) newLab(playbook string) (*lab.Lab, error) {
	opts := lab.Options{Playbook: playbook}
	if name, ok := strings.CutPrefix(c.Org, BuiltinPrefix); ok {
		return lab.NewOrg(name, opts)
	}
	path := c.orgPath
	if path == "" {
		// A Case built by hand: its Org is relative to its File.
		path = filepath.Join(filepath.Dir(c.File), filepath.FromSlash(c.Org))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read organisation file: %w", err)
	}
	opts.Bases = os.DirFS(filepath.Dir(path))
	return lab.ParseOrg(path, data, opts)
}

// Run runs one case against a fresh lab built from its organisation: the
// diagnosis, then each relief in approve: and its verification. Every
// mismatch is a failure; Run itself does not fail.
func Run(ctx context.Context, c Case, cat Resolver, opts Options) (res Result) {
	start := time.Now()
	res.Case = c
	defer func() {
		res.Duration = time.Since(start)
		res.Passed = len(res.Failures) == 0
	}()
	p, ps := prepare(c, cat, opts)
	for _, pr := range ps {
		res.Failures = append(res.Failures, pr.String())
	}
	if len(ps) > 0 {
		return res
	}
	if opts.WaitScale == 0 {
		opts.WaitScale = DefaultWaitScale
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	eng := playbooks.NewEngine(p.lab.Targets(p.kinds), playbooks.Options{WaitScale: opts.WaitScale})
	run := playbooks.NewRun("case:"+c.Name, p.pb, p.params, time.Now(), opts.Observer)
	res.Run = run
	if err := eng.Diagnose(ctx, run); err != nil {
		res.Failures = append(res.Failures, c.at("playbook", "diagnosis did not finish: %v", err))
		return res
	}
	diag := observed{findings: phase(run.Findings(), playbooks.PhaseDiagnose), proposals: run.Proposals(), escalations: run.Escalations()}
	res.Failures = append(res.Failures, c.check("expect", c.Expect, diag)...)
	if len(c.Approve) == 0 {
		return res
	}

	raised := len(diag.escalations)
	var relieved []incident.ReliefResult
	for i, id := range c.Approve {
		key := fmt.Sprintf("approve[%d]", i)
		rr, err := eng.Relieve(ctx, run, id)
		switch {
		case errors.Is(err, incident.ErrNotFound):
			res.Failures = append(res.Failures, c.at(key, "%s not proposed, so it cannot be approved (proposed: %s; findings: %s)",
				id, proposedList(diag.proposals), summary(diag.findings)))
			continue
		case err != nil:
			res.Failures = append(res.Failures, c.at(key, "%s: %v", id, err))
			continue
		}
		relieved = append(relieved, rr)
	}
	after := Expect{}
	if c.After != nil {
		after = *c.After
	}
	for _, rr := range relieved {
		key := fmt.Sprintf("approve[%d]", slices.Index(c.Approve, rr.Relief))
		switch {
		case !rr.OK && !after.Failed:
			res.Failures = append(res.Failures, c.at(key, "%s failed to run: %s", rr.Relief, rr.Error))
		case rr.OK && after.Failed:
			res.Failures = append(res.Failures, c.at("after.failed", "%s ran on %s, expected it to fail", rr.Relief, strings.Join(rr.Hosts, ", ")))
		}
		if after.Verified != nil && rr.OK && rr.Verified != nil && *rr.Verified != *after.Verified {
			res.Failures = append(res.Failures, c.at("after.verified", "%s verification: expected %s, got %s (after: findings: %s)",
				rr.Relief, verdict(*after.Verified), verdict(*rr.Verified), summary(phase(run.Findings(), playbooks.PhaseVerify))))
		}
	}
	if c.After != nil {
		ver := observed{findings: phase(run.Findings(), playbooks.PhaseVerify), escalations: run.Escalations()[raised:]}
		res.Failures = append(res.Failures, c.check("after", *c.After, ver)...)
	}
	return res
}

func verdict(ok bool) string {
	if ok {
		return "verified"
	}
	return "not verified"
}

// observed is what one phase of a run showed.
type observed struct {
	findings    []incident.Finding
	proposals   []incident.Proposal
	escalations []incident.Escalation
}

func phase(fs []incident.Finding, ph string) []incident.Finding {
	var out []incident.Finding
	for _, f := range fs {
		if f.Phase == ph || (f.Phase == "" && ph == playbooks.PhaseDiagnose) {
			out = append(out, f)
		}
	}
	return out
}

// ruleError reports whether a finding is the engine's note that its rule
// could not be evaluated: it carries the rule's id but is not a match, and a
// case expecting the rule must not pass on it.
func ruleError(f incident.Finding) bool {
	return strings.HasPrefix(f.Text, fmt.Sprintf("Rule %q could not be evaluated:", f.Rule))
}

// counts tallies matched findings by rule, in order of first appearance.
func counts(fs []incident.Finding) ([]string, map[string]int) {
	var order []string
	n := map[string]int{}
	for _, f := range fs {
		if ruleError(f) {
			continue
		}
		if n[f.Rule] == 0 {
			order = append(order, f.Rule)
		}
		n[f.Rule]++
	}
	return order, n
}

// summary lists findings as "still-failing ×2, queue-elevated", rule errors
// marked as such.
func summary(fs []incident.Finding) string {
	order, n := counts(fs)
	var parts []string
	for _, id := range order {
		if n[id] > 1 {
			parts = append(parts, fmt.Sprintf("%s ×%d", id, n[id]))
		} else {
			parts = append(parts, id)
		}
	}
	for _, f := range fs {
		if ruleError(f) {
			parts = append(parts, f.Rule+" (rule error: "+strings.TrimPrefix(f.Text, fmt.Sprintf("Rule %q could not be evaluated: ", f.Rule))+")")
		}
	}
	return orNone(parts)
}

func proposedList(ps []incident.Proposal) string {
	var parts []string
	for _, p := range ps {
		s := p.Relief + " on " + orNone(p.Hosts)
		if p.Blocked != "" {
			s += " (blocked)"
		}
		parts = append(parts, s)
	}
	return orNone(parts)
}

func raisedList(es []incident.Escalation) string {
	var ids []string
	for _, e := range es {
		ids = append(ids, e.Rule)
	}
	return orNone(ids)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// check compares one phase with its expectations; key is "expect" or "after".
func (c Case) check(key string, e Expect, got observed) []string {
	var out []string
	fail := func(k, format string, args ...any) { out = append(out, c.at(k, format, args...)) }
	order, n := counts(got.findings)
	findings := summary(got.findings)

	if e.Findings != nil {
		want := map[string]int{}
		var wantOrder []string
		for _, id := range e.Findings {
			if want[id] == 0 {
				wantOrder = append(wantOrder, id)
			}
			want[id]++
		}
		for _, id := range wantOrder {
			switch {
			case n[id] == 0:
				fail(key+".findings", "%s not found (findings: %s)", id, findings)
			case n[id] < want[id]:
				fail(key+".findings", "%s found ×%d, expected ×%d (findings: %s)", id, n[id], want[id], findings)
			case e.Only && n[id] > want[id]:
				fail(key+".findings", "%s found ×%d, expected exactly ×%d (only: true)", id, n[id], want[id])
			}
		}
		if e.Only {
			for _, id := range order {
				if want[id] == 0 {
					fail(key+".findings", "unexpected %s ×%d (only: true; findings: %s)", id, n[id], findings)
				}
			}
		}
	}
	for _, id := range e.NotFindings {
		for _, f := range got.findings {
			if f.Rule == id && !ruleError(f) {
				fail(key+".not_findings", "%s found: %q", id, clip(f.Text, 160))
				break
			}
		}
	}

	if e.Proposals != nil {
		for i, pe := range e.Proposals {
			k := fmt.Sprintf("%s.proposals[%d]", key, i)
			idx := slices.IndexFunc(got.proposals, func(p incident.Proposal) bool { return p.Relief == pe.Relief })
			if idx < 0 {
				fail(k, "%s not proposed (proposed: %s; findings: %s)", pe.Relief, proposedList(got.proposals), findings)
				continue
			}
			out = append(out, c.checkProposal(k, pe, got.proposals[idx])...)
		}
		if e.Only {
			for _, p := range got.proposals {
				if !slices.ContainsFunc(e.Proposals, func(pe ProposalExpect) bool { return pe.Relief == p.Relief }) {
					fail(key+".proposals", "unexpected %s on %s (only: true; because: %s)", p.Relief, orNone(p.Hosts), summary(p.Because))
				}
			}
		}
	}
	for _, id := range e.NotProposals {
		if p, ok := findProposal(got.proposals, id); ok {
			fail(key+".not_proposals", "%s proposed on %s (because: %s)", id, orNone(p.Hosts), summary(p.Because))
		}
	}

	if e.Escalations != nil {
		for _, id := range e.Escalations {
			if !slices.ContainsFunc(got.escalations, func(x incident.Escalation) bool { return x.Rule == id }) {
				fail(key+".escalations", "%s not raised (raised: %s; findings: %s)", id, raisedList(got.escalations), findings)
			}
		}
		if e.Only {
			for _, x := range got.escalations {
				if !slices.Contains(e.Escalations, x.Rule) {
					fail(key+".escalations", "unexpected %s (only: true): %s", x.Rule, clip(x.Reason, 160))
				}
			}
		}
	}
	for _, id := range e.NotEscalations {
		for _, x := range got.escalations {
			if x.Rule == id {
				fail(key+".not_escalations", "%s raised: %s", id, clip(x.Reason, 160))
			}
		}
	}

	for i, s := range e.Text {
		if !slices.ContainsFunc(got.findings, func(f incident.Finding) bool { return strings.Contains(f.Text, s) }) {
			var texts []string
			for _, f := range got.findings {
				texts = append(texts, fmt.Sprintf("%q", clip(f.Text, 100)))
			}
			fail(fmt.Sprintf("%s.text[%d]", key, i), "no finding says %q (finding texts: %s)", s, orNone(texts))
		}
	}
	return out
}

func findProposal(ps []incident.Proposal, relief string) (incident.Proposal, bool) {
	for _, p := range ps {
		if p.Relief == relief {
			return p, true
		}
	}
	return incident.Proposal{}, false
}

func (c Case) checkProposal(key string, pe ProposalExpect, p incident.Proposal) []string {
	var out []string
	if pe.Hosts != nil {
		want, got := slices.Sorted(slices.Values(pe.Hosts)), slices.Sorted(slices.Values(p.Hosts))
		if !slices.Equal(want, got) {
			out = append(out, c.at(key+".hosts", "%s on %s, expected on %s", p.Relief, orNone(p.Hosts), orNone(pe.Hosts)))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pe.Args)) {
		want, _ := json.Marshal(pe.Args[name])
		v, ok := p.Args[name]
		got, _ := json.Marshal(v)
		switch {
		case !ok:
			out = append(out, c.at(key+".args."+name, "%s has no argument %s (args: %s)", p.Relief, name, argsText(p.Args)))
		case string(want) != string(got):
			out = append(out, c.at(key+".args."+name, "%s: expected %s, got %s", p.Relief, want, got))
		}
	}
	if pe.Blocked != nil && *pe.Blocked != (p.Blocked != "") {
		if *pe.Blocked {
			out = append(out, c.at(key+".blocked", "%s may run, expected it blocked", p.Relief))
		} else {
			out = append(out, c.at(key+".blocked", "%s is blocked: %s", p.Relief, p.Blocked))
		}
	}
	return out
}

func argsText(args map[string]any) string {
	if len(args) == 0 {
		return "none"
	}
	b, _ := json.Marshal(args)
	return string(b)
}
