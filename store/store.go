// Package store is ndrbot's durable state: runs, their step results, findings and
// proposals, approvals and votes, relief executions, the outbox of chat posts and
// the audit trail, behind one interface (Store) with two implementations:
// store/sqlite (embedded, the default) and store/postgres (several replicas
// against one database). store/backends opens either from configuration;
// store/storetest is the test suite both pass; store/outbox delivers the outbox.
//
// Exactly-once guarantees live here, in the database, not in process memory:
// Vote decides an approval once (row lock / serialized write transaction),
// ClaimRelief lets at most one process run an approved relief, and every state
// change the store makes is audited in the same transaction.
package store

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
)

// Store is the durable state of ndrbot. Every method takes a context first and
// returns errors wrapping incident.ErrNotFound, incident.ErrConflict,
// incident.ErrNotAllowed or incident.ErrInvalidInput where those apply.
//
// Audit events the store writes itself, in the same transaction as the change:
// run (CreateRun), state (SetRunState), step (PutStep, when the step is done),
// finding, proposal, approval-request, approval / approved / rejection / expired /
// void / vote-refused (Vote, ExpireApprovals, ClaimRelief), relief (ClaimRelief,
// FinishRelief), recovery (Recover), chat-post (MarkDelivered), watch-alert
// (ClaimWatchAlert), watch-diagnosis (ClaimAlertDiagnosis), watch-subscription
// (PutWatchSubscription). Callers append the rest (command, escalation, …) with Append.
type Store interface {
	audit.Source     // Events streams the audit trail in seq order.
	audit.HeadSource // AuditHead: last seq and hash written (for audit.Verify).
	WatchStore       // the NDR watch's messages, events, cursor, alerts and subscription.
	LeaseStore       // named leases: work that runs in one process of the deployment at a time.

	// Append redacts, seals and appends one audit event.
	Append(ctx context.Context, r audit.Record) (audit.Event, error)

	// CreateRun stores a new run in state diagnosing and returns it with its id.
	CreateRun(ctx context.Context, r NewRun) (Run, error)
	// GetRun returns one run or ErrNotFound.
	GetRun(ctx context.Context, id string) (Run, error)
	// ListRuns returns the most recent runs first.
	ListRuns(ctx context.Context, f RunFilter) ([]Run, error)
	// SetRunState moves a run to state to; when from is not empty the run must be
	// in from (else ErrConflict). also are appended in the same transaction (e.g.
	// the escalation event with the escalated state).
	SetRunState(ctx context.Context, id string, from, to incident.RunState, also ...audit.Record) (Run, error)
	// SetRunChat records where the run's thread lives once its root post is delivered.
	SetRunChat(ctx context.Context, id string, chat ChatRef) error

	// PutStep upserts a step result by (run, step, phase); phase is "diagnose",
	// "verify-1", …. A step in a final status is audited.
	PutStep(ctx context.Context, runID, phase string, r incident.StepResult) error
	// Steps returns a run's step results in the order they were first stored.
	Steps(ctx context.Context, runID string) ([]StepRecord, error)
	// AddFindings appends findings to a run.
	AddFindings(ctx context.Context, runID string, fs ...incident.Finding) error
	// Findings returns a run's findings in the order they were added.
	Findings(ctx context.Context, runID string) ([]incident.Finding, error)
	// PutProposal stores (or replaces, by proposal id) a proposal of a run.
	PutProposal(ctx context.Context, runID string, p incident.Proposal) error
	// Proposals returns a run's proposals in the order they were first stored.
	Proposals(ctx context.Context, runID string) ([]incident.Proposal, error)

	// RequestApproval opens a pending approval for one proposal.
	RequestApproval(ctx context.Context, a NewApproval) (Approval, error)
	// GetApproval returns one approval with its votes, or ErrNotFound.
	GetApproval(ctx context.Context, id string) (Approval, error)
	// Approvals returns a run's approvals, oldest first.
	Approvals(ctx context.Context, runID string) ([]Approval, error)
	// Vote records one approver's decision atomically. role is the role the
	// caller verified the voter holds (RoleApprover or RoleAdmin); a voter whose
	// role does not satisfy the approval's is refused (RoleError, audited). See
	// Outcome and VoteError.
	Vote(ctx context.Context, approvalID string, voter incident.Actor, role string, d incident.Decision, digestNow string, now time.Time) (Outcome, error)
	// ExpireApprovals marks every pending approval past its expiry expired and
	// returns them (a sweeper calls it so cards can be updated).
	ExpireApprovals(ctx context.Context, now time.Time) ([]Approval, error)

	// ClaimRelief atomically starts the execution of an approved relief: at most one
	// claim per approval succeeds, across goroutines and processes. digestNow must
	// equal the approved digest (else the approval becomes void). A second claim
	// returns *ClaimError (ErrConflict) naming the existing execution. The claim
	// is refused (and audited, claim-refused) when the approving votes of the
	// required role do not make the quorum (*RoleError), or when a guard holds
	// on one of its hosts (*GuardError); both match incident.ErrNotAllowed.
	ClaimRelief(ctx context.Context, approvalID, owner, digestNow string) (Execution, error)
	// FinishRelief records the outcome of a running execution (ErrConflict if it is
	// not running any more, e.g. recovery marked it outcome-unknown).
	FinishRelief(ctx context.Context, executionID string, r ReliefOutcome) (Execution, error)
	// GetExecution returns one execution or ErrNotFound.
	GetExecution(ctx context.Context, id string) (Execution, error)
	// Executions returns a run's relief executions, oldest first.
	Executions(ctx context.Context, runID string) ([]Execution, error)
	// LastRelief returns when the relief last started on host (any outcome), for cooldowns.
	LastRelief(ctx context.Context, reliefID, host string) (time.Time, bool, error)

	// Heartbeat extends owner's lease until the given time. Work owned by an owner
	// with a live lease is never taken over by another process's Recover.
	Heartbeat(ctx context.Context, owner string, until time.Time) error
	// Recover takes over interrupted work of owner itself and of owners whose lease
	// has lapsed (or who never held one): running relief executions become
	// outcome-unknown (never re-run) and their runs interrupted; runs left in
	// diagnosing, relieving or verifying — and a terminal's run awaiting
	// approval, which nobody is left to approve — are handed to owner to resume
	// or close. A chat run's pending approvals are untouched. Call it on start,
	// before serving.
	Recover(ctx context.Context, owner string, now time.Time) (Recovery, error)

	// EnqueuePost stores a chat post before it is sent. A post whose Key exists
	// already is not stored again; the stored one is returned.
	EnqueuePost(ctx context.Context, p Post) (Post, error)
	// NextPosts leases up to limit posts due at now to owner: per channel, in
	// enqueue order, never past a post of that channel that is waiting for a retry
	// or leased to someone else.
	NextPosts(ctx context.Context, owner string, limit int, now time.Time) ([]Post, error)
	// MarkDelivered records a delivery and its chat reference (message ts) and audits it.
	MarkDelivered(ctx context.Context, id int64, externalRef string) error
	// MarkFailed records a failed attempt; the post is due again at retryAt. A zero
	// retryAt gives up on the post (dead: it no longer holds up its channel).
	MarkFailed(ctx context.Context, id int64, retryAt time.Time, errText string) error
	// Posts returns a run's posts in enqueue order (all states).
	Posts(ctx context.Context, runID string) ([]Post, error)

	// FirstSighting records a signed chat request's signature until expires (the
	// end of its validity window) and reports whether this is its first sighting:
	// true once per signature while its entry lives, across replicas. Expired
	// entries are forgotten, so the table holds only the last minutes' requests.
	FirstSighting(ctx context.Context, signature string, expires time.Time) (bool, error)

	// Close releases the database.
	Close() error
}

// Options configure either backend.
type Options struct {
	// AuditKey, when set, seals audit events with HMAC-SHA256 instead of SHA-256.
	AuditKey []byte
	// Redactor removes secrets from audit payloads; nil applies the built-in
	// credential patterns only.
	Redactor *audit.Redactor
	// Now is the clock (default time.Now).
	Now func() time.Time
	// PostLease is how long NextPosts leases a post to its owner (default 2m).
	PostLease time.Duration
}

// WithDefaults fills unset fields.
func (o Options) WithDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PostLease <= 0 {
		o.PostLease = 2 * time.Minute
	}
	if o.Redactor == nil {
		o.Redactor = audit.NewRedactor()
	}
	return o
}

// ChatRef says where a run's thread lives; empty fields are stored as NULL.
type ChatRef struct {
	Channel  string `json:"channel,omitempty"`
	ThreadTS string `json:"thread_ts,omitempty"`
}

// NewRun is what CreateRun needs.
type NewRun struct {
	Playbook        string          // playbook id, e.g. "ndr-5.5.4"
	PlaybookVersion string          // digest of the playbook as loaded
	Params          json.RawMessage // validated parameters as JSON (nil: {})
	Requester       incident.Actor
	Origin          string // "cli", "slack", …
	Chat            ChatRef
	Owner           string // the process driving the run (see Heartbeat)
}

// Run is one diagnosis of one incident.
type Run struct {
	ID              string            `json:"id"`
	Playbook        string            `json:"playbook"`
	PlaybookVersion string            `json:"playbook_version"`
	Params          json.RawMessage   `json:"params"`
	Requester       incident.Actor    `json:"requester"`
	Origin          string            `json:"origin"`
	Chat            ChatRef           `json:"chat"`
	State           incident.RunState `json:"state"`
	Owner           string            `json:"owner"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
}

// RunFilter selects runs for ListRuns.
type RunFilter struct {
	Limit  int                 // default 50
	States []incident.RunState // any state when empty
	Since  time.Time           // only runs created at or after it; any time when zero
}

// StepRecord is a stored step result.
type StepRecord struct {
	RunID     string              `json:"run_id"`
	Phase     string              `json:"phase"`
	Result    incident.StepResult `json:"result"`
	UpdatedAt time.Time           `json:"updated_at"`
}

// NewApproval is what RequestApproval needs.
type NewApproval struct {
	RunID      string
	ProposalID string // the proposal (relief id within the run)
	ReliefID   string
	Hosts      []string
	// Digest is SHA-256 over exactly what will run (playbook version, relief,
	// rendered command, parameters, hosts), computed by the caller.
	Digest    string
	Required  int // distinct approvers needed (minimum 1)
	FourEyes  bool
	Requester incident.Actor
	ExpiresAt time.Time
	// Cooldown forbids claiming this relief on a host where it started less
	// than this long ago, from any run (0: none).
	Cooldown time.Duration
	// Role is the role each approving vote must hold (the playbook's
	// approval.role): RoleApprover (the default when empty) or RoleAdmin.
	Role string
}

// Roles a vote is cast under, and an approval requires. An admin satisfies an
// approval that asks for an approver.
const (
	RoleApprover = "approver"
	RoleAdmin    = "admin"
)

// ValidRole reports whether role is one the store records.
func ValidRole(role string) bool { return role == RoleApprover || role == RoleAdmin }

// RoleSatisfies reports whether a vote cast under role have meets an approval
// that requires role need. An unknown role satisfies nothing.
func RoleSatisfies(have, need string) bool {
	switch need {
	case RoleApprover:
		return have == RoleApprover || have == RoleAdmin
	case RoleAdmin:
		return have == RoleAdmin
	}
	return false
}

// StricterRole is the stronger of two required roles (an empty or unknown one
// counts as RoleApprover).
func StricterRole(a, b string) string {
	if a == RoleAdmin || b == RoleAdmin {
		return RoleAdmin
	}
	return RoleApprover
}

// Vote is one recorded vote.
type Vote struct {
	Voter    incident.Actor    `json:"voter"`
	Decision incident.Decision `json:"decision"`
	At       time.Time         `json:"at"`
	// Role is the role the voter was authorised under when they voted (votes
	// written before schema v4 read as RoleApprover).
	Role string `json:"role"`
}

// Approval is an approval request and where it stands.
type Approval struct {
	ID         string                  `json:"id"`
	RunID      string                  `json:"run_id"`
	ProposalID string                  `json:"proposal_id"`
	ReliefID   string                  `json:"relief_id"`
	Hosts      []string                `json:"hosts"`
	Digest     string                  `json:"digest"`
	Required   int                     `json:"required"`
	FourEyes   bool                    `json:"four_eyes"`
	Requester  incident.Actor          `json:"requester"`
	ExpiresAt  time.Time               `json:"expires_at"`
	Status     incident.ApprovalStatus `json:"status"`
	DecidedBy  incident.Actor          `json:"decided_by"` // zero while pending; BotActor for expired/void
	DecidedAt  time.Time               `json:"decided_at"`
	Reason     string                  `json:"reason,omitempty"` // why void/expired
	Votes      []Vote                  `json:"votes"`
	CreatedAt  time.Time               `json:"created_at"`
	Cooldown   time.Duration           `json:"cooldown,omitempty"`
	// Role is the role every approving vote must hold (RoleApprover or RoleAdmin).
	Role string `json:"role"`
}

// Approvers returns the distinct actors who voted approve, in vote order.
func (a Approval) Approvers() []incident.Actor {
	var out []incident.Actor
	for _, v := range a.Votes {
		if v.Decision == incident.Approve {
			out = append(out, v.Voter)
		}
	}
	return out
}

// Qualified counts the approving votes whose role satisfies need (the
// approval's role, or a stricter one): what the quorum counts.
func (a Approval) Qualified(need string) int {
	n := 0
	for _, v := range a.Votes {
		if v.Decision == incident.Approve && RoleSatisfies(v.Role, need) {
			n++
		}
	}
	return n
}

// OutcomeKind is what a successful Vote did.
type OutcomeKind string

const (
	// OutcomeWaiting: the approve vote was recorded; more approvers are needed.
	OutcomeWaiting OutcomeKind = "waiting"
	// OutcomeApproved: this vote completed the quorum; the relief may be claimed.
	OutcomeApproved OutcomeKind = "approved"
	// OutcomeRejected: this vote rejected the relief.
	OutcomeRejected OutcomeKind = "rejected"
)

// Outcome is the result of a vote. On a refused vote (error), Approval still holds
// the approval as stored, so a loser can be told who decided and when.
type Outcome struct {
	Kind     OutcomeKind
	Votes    int // distinct approve votes so far that hold the approval's role
	Required int
	Approval Approval
}

// Refusal is why a vote or claim was refused.
type Refusal string

const (
	RefusedDecided      Refusal = "already decided"
	RefusedExpired      Refusal = "expired"
	RefusedVoid         Refusal = "void: what would run has changed"
	RefusedAlreadyVoted Refusal = "already voted"
	RefusedFourEyes     Refusal = "four-eyes: the requester cannot approve"
	RefusedNotApproved  Refusal = "not approved"
)

// Sentinels for refusals, besides the incident error kinds they also match.
var (
	ErrExpired      = errors.New("approval expired")
	ErrVoid         = errors.New("approval void")
	ErrAlreadyVoted = errors.New("already voted")
	ErrFourEyes     = errors.New("four-eyes violation")
	ErrRole         = errors.New("role not held")
)

// ErrAuditKeyMissing: the trail is sealed with an HMAC key but this store was
// opened without one, so it refuses to write (unkeyed events would read as
// forged). Nothing that needs an audit event — a vote, a relief — happens.
var ErrAuditKeyMissing = errors.New("audit key missing")

// VoteError is a refused vote (or claim). errors.Is matches incident.ErrConflict
// (decided, expired, void, already voted) or incident.ErrNotAllowed (four-eyes,
// not approved), and the specific sentinel. Approval is the approval as stored
// afterwards: DecidedBy and DecidedAt say who won and when.
type VoteError struct {
	Refusal  Refusal
	Approval Approval
}

func (e *VoteError) Error() string {
	a := e.Approval
	switch e.Refusal {
	case RefusedDecided:
		return fmt.Sprintf("approval %s already %s by %s at %s", a.ID, a.Status, a.DecidedBy, a.DecidedAt.UTC().Format(time.RFC3339))
	case RefusedExpired:
		return fmt.Sprintf("approval %s expired at %s", a.ID, a.ExpiresAt.UTC().Format(time.RFC3339))
	case RefusedVoid:
		return fmt.Sprintf("approval %s is void: %s; ask for approval again", a.ID, a.Reason)
	default:
		return fmt.Sprintf("approval %s: %s", a.ID, e.Refusal)
	}
}

// Unwrap lets errors.Is match the sentinels.
func (e *VoteError) Unwrap() []error {
	switch e.Refusal {
	case RefusedExpired:
		return []error{incident.ErrConflict, ErrExpired}
	case RefusedVoid:
		return []error{incident.ErrConflict, ErrVoid}
	case RefusedAlreadyVoted:
		return []error{incident.ErrConflict, ErrAlreadyVoted}
	case RefusedFourEyes:
		return []error{incident.ErrNotAllowed, ErrFourEyes}
	case RefusedNotApproved:
		return []error{incident.ErrNotAllowed}
	default:
		return []error{incident.ErrConflict}
	}
}

// RoleError is a vote or a claim refused because of the approval's role
// (Approval.Role, or the stricter role of its proposal): at a vote, the voter's
// role does not satisfy it (Vote is the refused vote); at a claim, the approving
// votes that hold it do not make the quorum — votes cast by an older ndrbot, or
// written by a path that skipped the check at the click (Vote is nil).
// errors.Is(err, incident.ErrNotAllowed) and ErrRole.
type RoleError struct {
	Approval Approval
	Role     string // the role required
	Vote     *Vote  // the refused vote; nil at a claim
}

func (e *RoleError) Error() string {
	a := e.Approval
	if e.Vote != nil {
		return fmt.Sprintf("%s needs the %s role: %s is authorised as %s; the vote on approval %s was refused",
			a.ReliefID, e.Role, e.Vote.Voter, e.Vote.Role, a.ID)
	}
	var voted []string
	for _, v := range a.Votes {
		if v.Decision == incident.Approve {
			voted = append(voted, fmt.Sprintf("%s as %s", v.Voter, v.Role))
		}
	}
	by := "nobody"
	if len(voted) > 0 {
		by = strings.Join(voted, ", ")
	}
	return fmt.Sprintf("%s not run: approval %s needs %d approving vote(s) from the %s role, and it was approved by %s; ask for approval again",
		a.ReliefID, a.ID, a.Required, e.Role, by)
}

// Unwrap lets errors.Is match incident.ErrNotAllowed and ErrRole.
func (e *RoleError) Unwrap() []error { return []error{incident.ErrNotAllowed, ErrRole} }

// Execution is one claimed run of an approved relief.
type Execution struct {
	ID         string             `json:"id"`
	ApprovalID string             `json:"approval_id"`
	RunID      string             `json:"run_id"`
	ReliefID   string             `json:"relief_id"`
	Hosts      []string           `json:"hosts"`
	Digest     string             `json:"digest"`
	Owner      string             `json:"owner"`
	State      incident.ExecState `json:"state"`
	Output     string             `json:"output,omitempty"`
	Error      string             `json:"error,omitempty"`
	StartedAt  time.Time          `json:"started_at"`
	FinishedAt time.Time          `json:"finished_at"` // zero while running
}

// ClaimError is a refused claim because the relief was claimed already:
// errors.Is(err, incident.ErrConflict). Existing is the winning execution.
type ClaimError struct {
	Existing Execution
}

func (e *ClaimError) Error() string {
	x := e.Existing
	return fmt.Sprintf("relief %s of approval %s already claimed by %s at %s (execution %s, %s)",
		x.ReliefID, x.ApprovalID, x.Owner, x.StartedAt.UTC().Format(time.RFC3339), x.ID, x.State)
}

// Unwrap lets errors.Is match incident.ErrConflict.
func (e *ClaimError) Unwrap() error { return incident.ErrConflict }

// GuardError is a claim refused because of another execution on one of its
// hosts, from any run or replica: a relief still running there (Until is zero),
// or this relief's cooldown since it last started there (until Until).
// errors.Is(err, incident.ErrNotAllowed).
type GuardError struct {
	Relief string
	Host   string
	Other  Execution
	Until  time.Time
}

func (e *GuardError) Error() string {
	x := e.Other
	if e.Until.IsZero() {
		return fmt.Sprintf("%s not run: %s is running on %s since %s (run %s, %s)", e.Relief, x.ReliefID, e.Host,
			x.StartedAt.UTC().Format("15:04:05Z"), x.RunID, x.Owner)
	}
	return fmt.Sprintf("%s not run: it ran on %s at %s (run %s, %s); its cooldown lasts until %s", e.Relief, e.Host,
		x.StartedAt.UTC().Format("15:04:05Z"), x.RunID, x.Owner, e.Until.UTC().Format("15:04:05Z"))
}

// Unwrap lets errors.Is match incident.ErrNotAllowed.
func (e *GuardError) Unwrap() error { return incident.ErrNotAllowed }

// ReliefOutcome is what FinishRelief records.
type ReliefOutcome struct {
	OK     bool
	Output string // redacted before storing and auditing
	Error  string
}

// Recovery is what Recover found and took over.
type Recovery struct {
	// Unknown are executions that were running: now outcome-unknown. Surface them
	// to a human; never re-run them.
	Unknown []Execution
	// Interrupted are the runs of Unknown executions, now in state interrupted.
	Interrupted []Run
	// Resume are runs left in diagnosing, relieving or verifying, now owned by the
	// caller: re-run their read-only steps (and, in relieving, claim approved
	// reliefs — the claim keeps that at most once).
	Resume []Run
}

// PostKind is what a chat post does.
type PostKind string

const (
	PostNew    PostKind = "post"   // a new message (in the thread of Ref when set)
	PostUpdate PostKind = "update" // edit the message of the post keyed Ref
)

// PostState is where a post is in the outbox.
type PostState string

const (
	PostPending   PostState = "pending"
	PostDelivered PostState = "delivered"
	PostDead      PostState = "dead" // given up (MarkFailed with zero retryAt)
)

// Post is one chat message waiting in (or delivered from) the outbox.
type Post struct {
	ID      int64    `json:"id"`
	RunID   string   `json:"run_id,omitempty"`
	Channel string   `json:"channel"`
	Key     string   `json:"key"` // idempotency key, unique
	Kind    PostKind `json:"kind"`
	// Ref is the key of the post this one refers to: for PostNew the thread's root
	// post (reply in its thread), for PostUpdate the post to edit. NextPosts fills
	// RefExternal with that post's delivered external reference.
	Ref         string          `json:"ref,omitempty"`
	RefExternal string          `json:"ref_external,omitempty"`
	Payload     json.RawMessage `json:"payload"`

	State       PostState `json:"state"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error,omitempty"`
	ExternalRef string    `json:"external_ref,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	NextAt      time.Time `json:"next_at"`
}

// SchemaTooNewError refuses a database migrated by a newer ndrbot.
type SchemaTooNewError struct {
	DB, Known int
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("database schema v%d is newer than this ndrbot (knows v%d); upgrade ndrbot", e.DB, e.Known)
}

// DefaultSQLitePath is $XDG_DATA_HOME/ndrbot/ndrbot.db when XDG_DATA_HOME is set
// (to an absolute path), else ./ndrbot.db. The sqlite backend creates the directory.
func DefaultSQLitePath() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "ndrbot", "ndrbot.db")
	}
	return "ndrbot.db"
}

// NewID returns a short, unique id that sorts by creation second:
// prefix-YYYYMMDD-SSSSSRRRRR, SSSSS the second of the day and RRRRR random (hex),
// e.g. "r-20261123-1517f9c3a2". Callers retry on the (rare) collision.
func NewID(prefix string, now time.Time) string {
	now = now.UTC()
	y, m, d := now.Date()
	sec := now.Hour()*3600 + now.Minute()*60 + now.Second()
	var r [3]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s-%04d%02d%02d-%05x%05x", prefix, y, m, d, sec, (int(r[0])<<16|int(r[1])<<8|int(r[2]))>>4)
}

// KeepAlive renews owner's lease every ttl/3 until ctx ends; run it in the
// background of any process that drives runs or reliefs. On return the lease is
// left to lapse. It returns ErrLeaseLost when renewals failed until the lease ran
// out: the process must then stop, since its work may be taken over.
func KeepAlive(ctx context.Context, s Store, owner string, ttl time.Duration, now func() time.Time) error {
	if now == nil {
		now = time.Now
	}
	if ttl < 3*time.Second {
		ttl = 3 * time.Second
	}
	if err := s.Heartbeat(ctx, owner, now().Add(ttl)); err != nil {
		return err
	}
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	held := now().Add(ttl) // the lease as last renewed
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			// A missed beat is not fatal while the lease lasts; the next tick
			// retries. Once it has lapsed, another process may be taking this
			// one's work over: carrying on would run it twice.
			at := now()
			err := s.Heartbeat(ctx, owner, at.Add(ttl))
			switch {
			case err == nil:
				held = at.Add(ttl)
			case ctx.Err() != nil:
				return nil
			case !at.Before(held):
				return fmt.Errorf("%w: lease of %s lapsed at %s (heartbeats failing: %w)", ErrLeaseLost, owner, held.UTC().Format(time.RFC3339), err)
			}
		}
	}
}

// ErrLeaseLost: a process could not renew its lease before it ran out, so its
// work may be recovered by another; it must stop.
var ErrLeaseLost = errors.New("lease lost")

// ReliefHistory adapts a Store to the engine's cooldown history
// (playbooks.ReliefHistory): LastRelief reads the hosts and start times that
// ClaimRelief recorded; RecordRelief does nothing, because the claim already
// recorded them — so every relief must be claimed before it runs.
type ReliefHistory struct{ Store Store }

// LastRelief returns when relief last started on host.
func (h ReliefHistory) LastRelief(ctx context.Context, relief, host string) (time.Time, bool, error) {
	return h.Store.LastRelief(ctx, relief, host)
}

// RecordRelief is a no-op: ClaimRelief recorded the execution.
func (h ReliefHistory) RecordRelief(context.Context, string, []string, time.Time) error { return nil }
