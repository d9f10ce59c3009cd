package incident

// Actor is who did something: a chat user (platform user id and display name), a
// terminal user ("cli:USER") or the bot itself.
type Actor struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// BotActor is the actor of what the bot does on its own: steps, reliefs it runs
// after approval, recovery, chat posts.
var BotActor = Actor{ID: "ndrbot", Name: "ndrbot"}

// CLIActor is the actor for a terminal user, e.g. CLIActor("alice") = {cli:alice, alice}.
func CLIActor(user string) Actor {
	if user == "" {
		user = "unknown"
	}
	return Actor{ID: "cli:" + user, Name: user}
}

// IsZero reports whether the actor is unset.
func (a Actor) IsZero() bool { return a.ID == "" && a.Name == "" }

// String renders "name (id)", or the id alone when the name adds nothing.
func (a Actor) String() string {
	if a.Name == "" || a.Name == a.ID || a.ID == "cli:"+a.Name {
		return a.ID
	}
	return a.Name + " (" + a.ID + ")"
}

// RunState is where a run is in its life:
// diagnosing → awaiting-approval → relieving → verifying → finished | escalated,
// or interrupted when a crash left a relief's outcome unknown, and recovered once a
// human has closed such a run.
type RunState string

const (
	RunDiagnosing       RunState = "diagnosing"
	RunAwaitingApproval RunState = "awaiting-approval"
	RunRelieving        RunState = "relieving"
	RunVerifying        RunState = "verifying"
	RunFinished         RunState = "finished"
	RunEscalated        RunState = "escalated"
	RunInterrupted      RunState = "interrupted"
	RunRecovered        RunState = "recovered"
)

// RunStates lists every run state, in the order a run passes them (for command
// lines that filter by state, and their completion).
func RunStates() []RunState {
	return []RunState{RunDiagnosing, RunAwaitingApproval, RunRelieving, RunVerifying,
		RunFinished, RunEscalated, RunInterrupted, RunRecovered}
}

// Terminal reports whether nothing more happens to a run in this state without a human.
func (s RunState) Terminal() bool {
	switch s {
	case RunFinished, RunEscalated, RunInterrupted, RunRecovered:
		return true
	}
	return false
}

// transitions is the run state machine: the states a run may move to from each
// state. The store refuses any other move (Store.SetRunState), so this table is
// the one place a transition is decided to be legal.
//
// A finished or escalated run may still move to relieving: a relief it proposed
// can be approved after the diagnosis ended (escalated with a relief pending),
// or a second relief after the first; a claimed approval is what lets it.
// Interrupted is reached by recovery from any live state; recovered only from
// interrupted (a human closed it).
var transitions = map[RunState][]RunState{
	RunDiagnosing:       {RunAwaitingApproval, RunRelieving, RunFinished, RunEscalated, RunInterrupted},
	RunAwaitingApproval: {RunRelieving, RunFinished, RunEscalated, RunInterrupted},
	RunRelieving:        {RunVerifying, RunFinished, RunEscalated, RunInterrupted},
	RunVerifying:        {RunRelieving, RunFinished, RunEscalated, RunInterrupted},
	RunFinished:         {RunRelieving},
	RunEscalated:        {RunRelieving},
	RunInterrupted:      {RunRecovered},
	RunRecovered:        {},
}

// CanBecome reports whether a run in state s may move to state to. Staying in
// the same state is always allowed (a repeated write changes nothing).
func (s RunState) CanBecome(to RunState) bool {
	if s == to {
		return true
	}
	for _, next := range transitions[s] {
		if next == to {
			return true
		}
	}
	return false
}

// Valid reports whether s is one of the known states.
func (s RunState) Valid() bool {
	switch s {
	case RunDiagnosing, RunAwaitingApproval, RunRelieving, RunVerifying,
		RunFinished, RunEscalated, RunInterrupted, RunRecovered:
		return true
	}
	return false
}

// ApprovalStatus is the state of one approval request.
type ApprovalStatus string

const (
	ApprovalPending  ApprovalStatus = "pending"
	ApprovalApproved ApprovalStatus = "approved"
	ApprovalRejected ApprovalStatus = "rejected"
	ApprovalExpired  ApprovalStatus = "expired"
	// ApprovalVoid means what would run changed after the request was made
	// (digest mismatch): the approval must be asked again.
	ApprovalVoid ApprovalStatus = "void"
)

// Decided reports whether no vote can change the status any more.
func (s ApprovalStatus) Decided() bool { return s != ApprovalPending && s != "" }

// Decision is one approver's vote.
type Decision string

const (
	Approve Decision = "approve"
	Reject  Decision = "reject"
)

// ExecState is the state of one relief execution.
type ExecState string

const (
	ExecRunning ExecState = "running"
	ExecOK      ExecState = "ok"
	ExecFailed  ExecState = "failed"
	// ExecUnknown marks a relief that was in flight when its process died: it may or
	// may not have changed the target. It is never re-run automatically.
	ExecUnknown ExecState = "outcome-unknown"
)
