package playbooks

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/incident"
)

// Run is one execution of a playbook: its parameters and everything found so far.
// The engine mutates it; readers take snapshots through its accessors.
type Run struct {
	ID       string
	Playbook *Playbook
	// Params are the validated, typed parameters (see params.Set.Resolve).
	Params   map[string]any
	Started  time.Time
	Observer Observer

	mu          sync.Mutex
	since       time.Time
	steps       map[string]incident.StepResult
	findings    []rankedFinding
	found       int             // findings ever added: the next one's sequence number
	evaluated   map[string]bool // rules evaluated in the diagnose phase
	matches     map[string][]map[string]any
	proposals   []incident.Proposal
	escalations []incident.Escalation
	raised      map[string]bool
	reliefs     []incident.ReliefResult
	reliefOK    map[string]bool
	reliefBad   map[string]bool
}

type rankedFinding struct {
	// rank is (rule or step index, sequence number): a rule's findings after
	// those of the rules before it, and among themselves in the order they
	// were found — a round's rows in row order, a later round's after them.
	// The store keeps findings in that same order, so a run read back from it
	// ranks them alike.
	rank [2]int
	f    incident.Finding
}

// NewRun prepares a run; Engine.Diagnose executes it.
func NewRun(id string, pb *Playbook, params map[string]any, started time.Time, obs Observer) *Run {
	return &Run{
		ID: id, Playbook: pb, Params: params, Started: started, Observer: obs,
		steps:     map[string]incident.StepResult{},
		evaluated: map[string]bool{},
		matches:   map[string][]map[string]any{},
		raised:    map[string]bool{},
		reliefOK:  map[string]bool{},
		reliefBad: map[string]bool{},
	}
}

// window is how far back the diagnosis looks: the `window` parameter when the
// playbook has one, else 15 minutes.
func (r *Run) window() time.Duration {
	if d, ok := r.Params["window"].(time.Duration); ok && d > 0 {
		return d
	}
	return 15 * time.Minute
}

func (r *Run) setStep(res incident.StepResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps[res.Step] = res
}

// addFinding records a finding unless an identical one exists in the same phase;
// it reports whether the finding is new.
func (r *Run) addFinding(f incident.Finding) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addRankedLocked(r.group(f), f)
}

// group is the first part of a finding's rank: a step's failure by its step,
// before every rule's findings; a rule's by the rule's place in the playbook.
func (r *Run) group(f incident.Finding) int {
	if f.Rule == "step-failed" || f.Rule == "step-skipped" {
		if idx := slices.IndexFunc(r.Playbook.Steps, func(s *Step) bool { return s.ID == f.Step }); idx >= 0 {
			return -1000 + idx
		}
	}
	if idx := slices.IndexFunc(r.Playbook.Rules, func(rule *Rule) bool { return rule.ID == f.Rule }); idx >= 0 {
		return idx
	}
	return -1
}

func (r *Run) addRankedLocked(group int, f incident.Finding) bool {
	for _, have := range r.findings {
		if have.f.Rule == f.Rule && have.f.Text == f.Text && have.f.Phase == f.Phase {
			return false
		}
	}
	r.findings = append(r.findings, rankedFinding{rank: [2]int{group, r.found}, f: f})
	r.found++
	return true
}

// Steps returns the latest result of every step that has run, in playbook order.
func (r *Run) Steps() []incident.StepResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []incident.StepResult
	for _, s := range r.Playbook.Steps {
		if res, ok := r.steps[s.ID]; ok {
			out = append(out, res)
		}
	}
	return out
}

// Findings returns the findings in a deterministic order: step failures first,
// then by rule and matched row; after-relief findings last.
func (r *Run) Findings() []incident.Finding {
	r.mu.Lock()
	defer r.mu.Unlock()
	sorted := slices.Clone(r.findings)
	slices.SortStableFunc(sorted, func(a, b rankedFinding) int {
		if pa, pb := a.f.Phase == PhaseVerify, b.f.Phase == PhaseVerify; pa != pb {
			if pa {
				return 1
			}
			return -1
		}
		if a.rank[0] != b.rank[0] {
			return a.rank[0] - b.rank[0]
		}
		return a.rank[1] - b.rank[1]
	})
	out := make([]incident.Finding, len(sorted))
	for i, rf := range sorted {
		out[i] = rf.f
	}
	return out
}

// Proposals returns the proposed reliefs in playbook order.
func (r *Run) Proposals() []incident.Proposal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.proposals)
}

// Escalations returns the escalations raised so far.
func (r *Run) Escalations() []incident.Escalation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.escalations)
}

// Reliefs returns the reliefs executed so far.
func (r *Run) Reliefs() []incident.ReliefResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reliefs)
}

// Proposal returns the proposal for a relief id.
func (r *Run) Proposal(relief string) (incident.Proposal, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.proposals {
		if p.Relief == relief {
			return p, true
		}
	}
	return incident.Proposal{}, false
}

// env builds the expression environment from a snapshot of the run.
func (r *Run) env(phase string, it any, args map[string]any) map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.envLocked(phase, it, args)
}

func (r *Run) envLocked(phase string, it any, args map[string]any) map[string]any {
	steps := make(map[string]any, len(r.Playbook.Steps))
	status := make(map[string]string, len(r.Playbook.Steps))
	for _, s := range r.Playbook.Steps {
		res, ok := r.steps[s.ID]
		if !ok {
			steps[s.ID] = []map[string]any{}
			status[s.ID] = string(incident.StepPending)
			continue
		}
		rows := res.Rows
		if rows == nil {
			rows = []map[string]any{}
		}
		steps[s.ID] = rows
		status[s.ID] = string(res.Status)
	}
	params := make(map[string]any, len(r.Params))
	for k, v := range r.Params {
		params[k] = v
	}
	found := map[string]bool{}
	for _, f := range r.findings {
		if f.f.Phase == phase {
			found[f.f.Rule] = true
		}
	}
	proposed := map[string]bool{}
	for _, p := range r.proposals {
		proposed[p.Relief] = true
	}
	for id := range r.matches {
		if rule := r.rule(id); rule != nil && rule.Propose != "" {
			proposed[rule.Propose] = true
		}
	}
	reliefOK, reliefBad := maps.Clone(r.reliefOK), maps.Clone(r.reliefBad)
	if args == nil {
		args = map[string]any{}
	}
	env := map[string]any{
		"params":   params,
		"steps":    steps,
		"status":   status,
		"it":       it,
		"args":     args,
		"phase":    phase,
		"since":    r.since,
		"ok":       func(id string) bool { return status[id] == string(incident.StepOK) },
		"done":     func(id string) bool { return reliefOK[id] },
		"failed":   func(id string) bool { return reliefBad[id] },
		"proposed": func(id string) bool { return proposed[id] },
		"found":    func(id string) bool { return found[id] },
	}
	maps.Copy(env, classifiers())
	return env
}

func (r *Run) rule(id string) *Rule {
	for _, rule := range r.Playbook.Rules {
		if rule.ID == id {
			return rule
		}
	}
	return nil
}

// Record is what a store kept of a run, enough to continue it in another process:
// a relief approved after a restart, or on another replica, runs and is verified
// against the same proposal.
type Record struct {
	Steps       []incident.StepResult
	Findings    []incident.Finding
	Proposals   []incident.Proposal
	Reliefs     []incident.ReliefResult
	Escalations []incident.Escalation
}

// RestoreRun rebuilds a diagnosed run from its record. Rules already evaluated stay
// evaluated; escalations already raised are not raised again.
func RestoreRun(id string, pb *Playbook, params map[string]any, started time.Time, rec Record, obs Observer) *Run {
	r := NewRun(id, pb, params, started, obs)
	r.since = started.Add(-r.window())
	for _, s := range rec.Steps {
		r.steps[s.Step] = s
	}
	for _, f := range rec.Findings {
		r.findings = append(r.findings, rankedFinding{rank: [2]int{r.group(f), r.found}, f: f})
		r.found++
	}
	for _, rule := range pb.Rules {
		r.evaluated[rule.ID] = true
	}
	// In playbook order, as the engine keeps them: the store keeps them in
	// the order they were proposed, which concurrent rules may interleave.
	r.proposals = slices.Clone(rec.Proposals)
	slices.SortStableFunc(r.proposals, func(a, b incident.Proposal) int {
		return pb.reliefIndex(a.Relief) - pb.reliefIndex(b.Relief)
	})
	for _, x := range rec.Reliefs {
		r.reliefs = append(r.reliefs, x)
		if x.OK {
			r.reliefOK[x.Relief] = true
		} else {
			r.reliefBad[x.Relief] = true
		}
	}
	for _, e := range rec.Escalations {
		r.escalations = append(r.escalations, e)
		r.raised[e.Rule] = true
	}
	return r
}
