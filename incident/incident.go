// Package incident holds the domain of ndrbot: what a run found, what it proposes,
// what it escalated and the error kinds callers branch on. It imports nothing of
// Slack, WinRM or SQL so every adapter can depend on it.
package incident

import (
	"errors"
	"time"
)

// Severity orders findings; the zero value is the mildest.
type Severity string

const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Rank makes severities comparable (info < warning < critical).
func (s Severity) Rank() int {
	switch s {
	case SeverityCritical:
		return 2
	case SeverityWarning:
		return 1
	default:
		return 0
	}
}

// StepStatus is the outcome of one diagnostic step on one run.
type StepStatus string

const (
	StepPending StepStatus = "pending"
	StepRunning StepStatus = "running"
	StepOK      StepStatus = "ok"
	StepFailed  StepStatus = "failed"
	StepTimeout StepStatus = "timeout"
	StepSkipped StepStatus = "skipped"
)

// StepResult is what a diagnostic (or verification) step produced across all hosts
// of its target. Rows is the normalised JSON output: always a list of objects, each
// carrying the host it came from under the key "Host".
//
// Its fields are in the order of their JSON names, so that json.Marshal writes
// it in the audit trail's canonical key order and the store redacts it without
// decoding it again (TestStepResultMarshalsCanonical).
type StepResult struct {
	Duration  time.Duration    `json:"duration"`
	Error     string           `json:"error,omitempty"`
	Executor  string           `json:"executor"`
	ExitCode  int              `json:"exit_code"`
	Hosts     []string         `json:"hosts"`
	Rows      []map[string]any `json:"rows,omitempty"`
	Digest    string           `json:"script_digest,omitempty"`
	Started   time.Time        `json:"started"`
	Status    StepStatus       `json:"status"`
	Step      string           `json:"step"`
	Target    string           `json:"target"`
	Title     string           `json:"title"`
	Verifying bool             `json:"verifying,omitempty"`
}

// Finding is one conclusion drawn from step results by a playbook rule.
//
// Its fields are in the order of their JSON names, as StepResult's are.
type Finding struct {
	// Evidence is a short excerpt of the step output that led to the finding.
	Evidence string `json:"evidence,omitempty"`
	Host     string `json:"host,omitempty"`
	// Phase is "diagnose", or "verify" for what was found after a relief.
	Phase    string   `json:"phase,omitempty"`
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Step     string   `json:"step,omitempty"`
	Text     string   `json:"text"`
}

// ApprovalPolicy says who must approve a relief before it runs.
type ApprovalPolicy struct {
	Role      string        `json:"role" yaml:"role"`
	Approvers int           `json:"approvers" yaml:"approvers"`
	FourEyes  bool          `json:"four_eyes" yaml:"four_eyes"`
	Expires   time.Duration `json:"expires" yaml:"expires"`
}

// Proposal is a relief the playbook suggests, bound to concrete hosts and arguments.
type Proposal struct {
	ID       string         `json:"id"` // stable within a run: relief id
	Relief   string         `json:"relief"`
	Title    string         `json:"title"`
	Target   string         `json:"target"`
	Hosts    []string       `json:"hosts"`
	Command  string         `json:"command"` // exactly what will run, for humans
	Args     map[string]any `json:"args,omitempty"`
	Risk     string         `json:"risk"`
	Rollback string         `json:"rollback,omitempty"`
	Preview  string         `json:"preview,omitempty"` // read-only output shown before approval
	Approval ApprovalPolicy `json:"approval"`
	Because  []Finding      `json:"because"`
	// Blocked explains why the relief may not run now (e.g. a cooldown); empty when it may.
	Blocked string `json:"blocked,omitempty"`
	// Cooldown is the relief's cooldown per host, as this run applies it (the lab
	// scales it); the claim enforces it again across runs.
	Cooldown time.Duration `json:"cooldown,omitempty"`
}

// ReliefResult is the outcome of an approved relief and of its verification.
type ReliefResult struct {
	Relief   string        `json:"relief"`
	Hosts    []string      `json:"hosts"`
	OK       bool          `json:"ok"`
	Error    string        `json:"error,omitempty"`
	Output   string        `json:"output,omitempty"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	Verified *bool         `json:"verified,omitempty"`
}

// Escalation is raised when a playbook's escalation criteria hold.
//
// Its fields are in the order of their JSON names, as StepResult's are.
type Escalation struct {
	Next   string `json:"next,omitempty"`
	Owner  string `json:"owner"`
	Reason string `json:"reason"`
	Rule   string `json:"rule"`
}

// Errors callers branch on. Messages of wrapped ErrInvalidInput, ErrNotAllowed and
// ErrNotFound are safe to show to the user as they are.
var (
	ErrInvalidInput = errors.New("invalid input")
	ErrNotAllowed   = errors.New("not allowed")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("already decided")
	ErrUnavailable  = errors.New("unavailable")
)
