package commands

import (
	"fmt"
	"time"

	"github.com/ndrbot/ndrbot/incident"
)

// Actor is who asked or clicked (incident.Actor: a chat user or "cli:USER").
type Actor = incident.Actor

// Request is one `/ndr …` command, whatever chat platform it came from.
type Request struct {
	// Text is everything after `/ndr` ("diagnose 5.5.4 sender=alice@contoso.com").
	Text string
	// Plain is the same text as prose, for reading a pasted bounce: every link
	// the platform wrote stands for its visible text wherever it is (Text
	// keeps a link glued to other text as it came, since as an argument it is
	// no value of its own). Empty: Text is plain already.
	Plain       string
	User        Actor
	ChannelID   string
	ChannelName string
}

// Click is one button press on a message the bot posted.
type Click struct {
	// Action is the button's action id: ActionApprove, ActionReject,
	// ActionRunDiagnosis or ActionChoosePlaybook.
	Action string
	// Value is the button's value (an approval id, a playbook code for
	// run-diagnosis, a stored choice and playbook for choose-playbook). It is
	// never trusted alone: it is looked up in the store.
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

// WatchAlertKey is the key of an NDR watch alert (a top-level message of no run).
func WatchAlertKey(alertID string) string { return "watch-alert:" + alertID }

// Message is one message of a run's thread, described without any platform's
// wire format. Exactly one view is set.
type Message struct {
	RunID string
	// Channel is the run's channel. The message goes into the run's thread, or, with
	// TopLevel, to the channel itself (the escalation channel's copy, a watch alert).
	Channel    string
	TopLevel   bool
	Key        string
	Root       *RunView
	Findings   *FindingsView
	Approval   *ApprovalView
	Escalation *EscalationView
	// Alert is an NDR spike the watch noticed (RunID empty, TopLevel set).
	Alert *AlertView `json:",omitempty"`
	// Notice is something else the watch must tell the channel by itself (its
	// change-notification subscription keeps failing to renew; RunID empty, TopLevel set).
	Notice *NoticeView `json:",omitempty"`
	// Choice asks which playbook to run when several fit a pasted bounce
	// (RunID empty, TopLevel set).
	Choice *ChoiceView `json:",omitempty"`
}

// NoticeView is a short message the watch posts about itself.
type NoticeView struct {
	Severity string // critical | warning | info
	Title    string
	Text     string
	At       time.Time
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

// AlertView is an NDR spike the watch noticed in the NDR mailbox, posted by itself:
// "NDR 5.5.4 spike: 37 in 5 min across 12 domains", with a Run diagnosis button
// when a playbook matches the code.
type AlertView struct {
	AlertID   string
	Code      string // the status code counted: 5.5.4, or a reply code such as 421
	Messages  int    // NDR messages carrying Code in the window
	Domains   int    // distinct remote domains among them
	Window    time.Duration
	Threshold int
	Mailbox   string // where the NDRs arrive
	First     time.Time
	Last      time.Time
	// TopDomains are the busiest remote domains, busiest first.
	TopDomains []DomainCount
	// Sample is one status line as an NDR showed it.
	Sample string
	// Playbook and PlaybookTitle name the playbook that diagnoses Code ("" when none).
	Playbook      string
	PlaybookTitle string
	// Button is the Run diagnosis button's value: the code, plus parameters the
	// playbook requires ("4.3.2 domain=fabrikam.com"). Empty: no button.
	Button string
	// Hint says how to diagnose by hand when there is no button.
	Hint string
	At   time.Time
	// DiagnosisBy started the diagnosis (the button is gone then), at DiagnosisAt.
	DiagnosisBy Actor
	DiagnosisAt time.Time
}

// DomainCount is how many NDRs named one remote domain.
type DomainCount struct {
	Domain   string
	Messages int
}

// Headline is the alert's one line: "NDR 5.5.4 spike: 37 in 5 min across 12 domains".
func (v AlertView) Headline() string {
	s := fmt.Sprintf("NDR %s spike: %d in %s", v.Code, v.Messages, humanWindow(v.Window))
	switch v.Domains {
	case 0:
	case 1:
		s += " across 1 domain"
	default:
		s += fmt.Sprintf(" across %d domains", v.Domains)
	}
	return s
}

func humanWindow(d time.Duration) string {
	switch {
	case d >= 2*time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	default:
		return d.String()
	}
}

// ChoiceKey is the key of the message that asks which playbook fits a bounce.
func ChoiceKey(choiceID string) string { return "ndr-choice:" + choiceID }

// ChoiceView asks which playbook to run when several fit a pasted bounce: one
// option per playbook, best first, each with a button until one is chosen.
type ChoiceView struct {
	ChoiceID string
	// Read is what was read from the bounce (NDR.Summary).
	Read      string
	Requester Actor
	Options   []ChoiceOption
	At        time.Time
	// ExpiresAt ends the buttons: a later click starts nothing.
	ExpiresAt time.Time
	// Chosen is set once a responder chose: the buttons are gone then.
	Chosen *ChoiceMade `json:",omitempty"`
}

// ChoiceOption is one playbook that fits.
type ChoiceOption struct {
	Playbook string
	Title    string
	// Reason says why it fits (bounce.Choice.Reason).
	Reason string
	// Params are the values read from the bounce, in the playbook's order.
	Params []Param
	// Missing are required parameters the bounce does not give: no button
	// then; Command says how to start it by hand.
	Missing []string
	// Command starts the same diagnosis by hand: /ndr diagnose PLAYBOOK key=value….
	Command string
	// Button is the button's value; empty: no button. A click is checked
	// against the choice the bot stored, never taken at its word.
	Button string `json:",omitempty"`
}

// ChoiceMade is who chose which playbook, and the run it started.
type ChoiceMade struct {
	Playbook string
	By       Actor
	At       time.Time
	RunID    string
}
