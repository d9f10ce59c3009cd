package commands

import (
	"time"

	"github.com/ndrbot/ndrbot/incident"
)

// Actor is who asked or clicked (incident.Actor: a chat user or "cli:USER").
type Actor = incident.Actor

// Request is one `/ndr …` command, whatever chat platform it came from.
type Request struct {
	// Text is everything after `/ndr` ("diagnose 5.5.4 sender=alice@contoso.com").
	Text        string
	User        Actor
	ChannelID   string
	ChannelName string
}

// Click is one button press on a message the bot posted.
type Click struct {
	// Action is the button's action id: "approve", "reject" or "run-diagnosis".
	Action string
	// Value is the button's value (an approval id, or a playbook code for
	// run-diagnosis). It is never trusted alone: it is looked up in the store.
	Value     string
	User      Actor
	ChannelID string
	// MessageKey identifies the message the button was on (platform reference).
	MessageKey string
}

// Reply is what the user who typed or clicked sees at once, only to them.
type Reply struct {
	Text string
}

// Message keys name the messages of one run's thread; the chat adapter maps
// each key to the platform's message so an update edits in place.
const (
	KeyRoot       = "root"
	KeyFindings   = "findings"
	KeyEscalation = "escalation"
)

// ApprovalKey is the key of a relief's approval card.
func ApprovalKey(relief string) string { return "approval:" + relief }

// Message is one message of a run's thread, described without any platform's
// wire format. Exactly one view is set.
type Message struct {
	RunID string
	// Channel is the run's channel. The message goes into the run's thread, or, with
	// TopLevel, to the channel itself (the escalation channel's copy).
	Channel    string
	TopLevel   bool
	Key        string
	Root       *RunView
	Findings   *FindingsView
	Approval   *ApprovalView
	Escalation *EscalationView
}

// RunView is the thread's root message: the run and its live checklist.
type RunView struct {
	RunID      string
	Playbook   string
	Title      string
	Requester  Actor
	Params     []Param
	Lab        string
	State      string
	Started    time.Time
	Steps      []incident.StepResult
	PlannedIDs []string // steps not started yet, shown as pending
}

// Param is one parameter as given, for display.
type Param struct {
	Name  string
	Value string
}

// FindingsView lists what the diagnosis found.
type FindingsView struct {
	RunID    string
	Findings []incident.Finding
}

// Approval states as the card shows them.
const (
	ApprovalPending        = "pending"
	ApprovalApproved       = "approved"
	ApprovalRejected       = "rejected"
	ApprovalExpired        = "expired"
	ApprovalVoid           = "void"
	ApprovalRunning        = "running"
	ApprovalSucceeded      = "succeeded"
	ApprovalFailed         = "failed"
	ApprovalOutcomeUnknown = "outcome-unknown"
)

// Vote is one approver's decision.
type Vote struct {
	By       Actor
	Decision string // approve | reject
	At       time.Time
}

// ApprovalView is one proposed relief's approval card.
type ApprovalView struct {
	RunID      string
	ApprovalID string
	Proposal   incident.Proposal
	Requester  Actor
	ExpiresAt  time.Time
	State      string
	Votes      []Vote
	// Result is set once the relief ran; Result.Verified once it was verified.
	Result *incident.ReliefResult
}

// EscalationView is the summary handed to whoever takes the incident next.
type EscalationView struct {
	RunID      string
	Playbook   string
	Title      string
	Symptom    string
	Requester  Actor
	Escalation incident.Escalation
	Findings   []incident.Finding
	Actions    []ActionView
	Timeline   []TimelineEntry
	// ThreadLink is a permalink to the run's thread (for the escalation channel).
	ThreadLink string
}

// ActionView is a relief that ran, with who approved it.
type ActionView struct {
	Relief     string
	Hosts      []string
	ApprovedBy []Actor
	Result     incident.ReliefResult
}

// TimelineEntry is one moment of the run.
type TimelineEntry struct {
	At   time.Time
	Text string
}
