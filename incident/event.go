package incident

import "time"

// EventKind names what happened during a run; observers (the chat thread, the audit
// trail, the terminal) switch on it.
type EventKind string

const (
	EventStepStarted    EventKind = "step-started"
	EventStepFinished   EventKind = "step-finished"
	EventFinding        EventKind = "finding"
	EventProposal       EventKind = "proposal"
	EventReliefStarted  EventKind = "relief-started"
	EventReliefFinished EventKind = "relief-finished"
	EventVerifyStarted  EventKind = "verify-started"
	EventReliefVerified EventKind = "relief-verified"
	EventEscalation     EventKind = "escalation"
	EventRunFinished    EventKind = "run-finished"
)

// Event is one progress report of the engine. Exactly one payload pointer matching
// Kind is set (none for run-finished).
type Event struct {
	Kind       EventKind     `json:"kind"`
	RunID      string        `json:"run_id"`
	Time       time.Time     `json:"time"`
	Step       *StepResult   `json:"step,omitempty"`
	Finding    *Finding      `json:"finding,omitempty"`
	Proposal   *Proposal     `json:"proposal,omitempty"`
	Relief     *ReliefResult `json:"relief,omitempty"`
	Escalation *Escalation   `json:"escalation,omitempty"`
}
