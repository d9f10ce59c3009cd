// Package storetest is the one test suite every store.Store backend must pass:
// runs, results, approvals and votes (including 100 racing voters), relief claims,
// recovery, the outbox and its dispatcher, the audit chain and its tamper
// detection, schema-version refusal, the NDR watch (messages once, counts,
// cursor, one alert per cooldown, button claims, subscription record), and the
// replay cache of signed Slack requests (one first sighting across replicas), and
// named leases (one holder at a time, hand-over on expiry or release, signals).
// store/sqlite and store/postgres run it against real databases.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/outbox"
)

// Instance is one store on a fresh database, plus raw access to that database.
type Instance struct {
	Store store.Store
	// Exec runs raw SQL ('?' placeholders) on the same database, bypassing the
	// store: how the tamper tests edit the audit trail.
	Exec func(t testing.TB, sql string, args ...any)
	// Reopen opens another store on the same database: a restart, or a second
	// replica. The caller closes it.
	Reopen func(t testing.TB, opt store.Options) (store.Store, error)
	// FillDisk makes every later insert of an audit event of kind fail the way a
	// full disk fails it on this backend (a trigger: neither test machine's disk
	// can be filled safely).
	FillDisk func(t testing.TB, kind audit.Kind)
}

// Opener opens a store on a fresh database for t and registers its cleanup.
type Opener func(t testing.TB, opt store.Options) Instance

// Run runs the whole suite against one backend.
func Run(t *testing.T, open Opener) {
	t.Run("Runs", func(t *testing.T) { testRuns(t, open) })
	t.Run("RunFilter", func(t *testing.T) { testRunFilter(t, open) })
	t.Run("RunStateMachine", func(t *testing.T) { testRunStateMachine(t, open) })
	t.Run("Results", func(t *testing.T) { testResults(t, open) })
	t.Run("Approvals", func(t *testing.T) { testApprovals(t, open) })
	t.Run("VoteRace", func(t *testing.T) { testVoteRace(t, open) })
	t.Run("Claims", func(t *testing.T) { testClaims(t, open) })
	t.Run("ClaimGuards", func(t *testing.T) { testClaimGuards(t, open) })
	t.Run("Roles", func(t *testing.T) { testRoles(t, open) })
	t.Run("Recovery", func(t *testing.T) { testRecovery(t, open) })
	t.Run("Outbox", func(t *testing.T) { testOutbox(t, open) })
	t.Run("Dispatcher", func(t *testing.T) { testDispatcher(t, open) })
	t.Run("Fairness", func(t *testing.T) { testFairness(t, open) })
	t.Run("Stats", func(t *testing.T) { testStats(t, open) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, open) })
	t.Run("Tamper", func(t *testing.T) { testTamper(t, open) })
	t.Run("Anchors", func(t *testing.T) { testAnchors(t, open) })
	t.Run("UnwritableAudit", func(t *testing.T) { testUnwritableAudit(t, open) })
	t.Run("Schema", func(t *testing.T) { testSchema(t, open) })
	t.Run("Watch", func(t *testing.T) { testWatch(t, open) })
	t.Run("Replay", func(t *testing.T) { testReplay(t, open) })
	t.Run("Leases", func(t *testing.T) { testLeases(t, open) })
}

var (
	alice = incident.Actor{ID: "U0ALICE", Name: "alice"}
	bob   = incident.Actor{ID: "U0BOB", Name: "bob"}
	carol = incident.Actor{ID: "U0CAROL", Name: "carol"}
	t0    = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
)

const digest = "9f2c4b1e0d7a6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170605f4e3"

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newRun(t testing.TB, s store.Store, owner string) store.Run {
	t.Helper()
	r, err := s.CreateRun(ctxT(t), store.NewRun{Playbook: "ndr-5.5.4", PlaybookVersion: "sha256:abc",
		Params: json.RawMessage(`{"sender":"alice@contoso.com"}`), Requester: alice, Origin: "slack",
		Chat: store.ChatRef{Channel: "C0INC"}, Owner: owner})
	require.NoError(t, err)
	return r
}

func newApproval(t testing.TB, s store.Store, runID string, required int, fourEyes bool, expires time.Time) store.Approval {
	t.Helper()
	a, err := s.RequestApproval(ctxT(t), store.NewApproval{RunID: runID, ProposalID: "restart-transport", ReliefID: "restart-transport",
		Hosts: []string{"ex01.contoso.com", "ex02.contoso.com"}, Digest: digest, Required: required, FourEyes: fourEyes,
		Requester: alice, ExpiresAt: expires})
	require.NoError(t, err)
	return a
}

// events returns the stored events of kind whose payload field key equals value
// (all of kind when key is empty).
func events(t testing.TB, s store.Store, kind audit.Kind, key, value string) []audit.Event {
	t.Helper()
	var out []audit.Event
	for e, err := range s.Events(ctxT(t), audit.Filter{Kinds: []audit.Kind{kind}}) {
		require.NoError(t, err)
		if key != "" {
			var p map[string]any
			require.NoError(t, json.Unmarshal(e.Payload, &p))
			if fmt.Sprint(p[key]) != value {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

func verify(t testing.TB, s store.Store, key []byte) audit.Report {
	t.Helper()
	r, err := audit.Verify(ctxT(t), s, key)
	require.NoError(t, err)
	return r
}

func testRuns(t *testing.T, open Opener) {
	inst := open(t, store.Options{})
	s, ctx := inst.Store, ctxT(t)

	r := newRun(t, s, "bot-1")
	assert.Regexp(t, `^r-\d{8}-[0-9a-f]{10}$`, r.ID)
	assert.Equal(t, incident.RunDiagnosing, r.State)

	got, err := s.GetRun(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, r.ID, got.ID)
	assert.Equal(t, alice, got.Requester)
	assert.Equal(t, "C0INC", got.Chat.Channel)
	assert.Empty(t, got.Chat.ThreadTS)
	assert.JSONEq(t, `{"sender":"alice@contoso.com"}`, string(got.Params))

	_, err = s.GetRun(ctx, "r-nope")
	assert.ErrorIs(t, err, incident.ErrNotFound)

	require.NoError(t, s.SetRunChat(ctx, r.ID, store.ChatRef{Channel: "C0INC", ThreadTS: "1732356000.000100"}))
	assert.ErrorIs(t, s.SetRunChat(ctx, "r-nope", store.ChatRef{}), incident.ErrNotFound)

	steps := []struct {
		from, to incident.RunState
		wantErr  error
	}{
		{incident.RunDiagnosing, incident.RunAwaitingApproval, nil},
		{incident.RunDiagnosing, incident.RunRelieving, incident.ErrConflict}, // stale from
		{"", incident.RunRelieving, nil},
		{incident.RunRelieving, incident.RunVerifying, nil},
		{incident.RunVerifying, incident.RunState("bogus"), incident.ErrInvalidInput},
	}
	for _, st := range steps {
		_, err := s.SetRunState(ctx, r.ID, st.from, st.to)
		if st.wantErr != nil {
			assert.ErrorIs(t, err, st.wantErr, "%s → %s", st.from, st.to)
		} else {
			assert.NoError(t, err, "%s → %s", st.from, st.to)
		}
	}
	esc := audit.Record{Actor: incident.BotActor, Kind: audit.KindEscalation,
		Payload: incident.Escalation{Rule: "persists", Reason: "5.5.4 persists after relief", Owner: "Microsoft support"}}
	run, err := s.SetRunState(ctx, r.ID, incident.RunVerifying, incident.RunEscalated, esc)
	require.NoError(t, err)
	assert.Equal(t, incident.RunEscalated, run.State)
	_, err = s.SetRunState(ctx, "r-nope", "", incident.RunFinished)
	assert.ErrorIs(t, err, incident.ErrNotFound)

	r2 := newRun(t, s, "bot-1")
	list, err := s.ListRuns(ctx, store.RunFilter{Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, r2.ID, list[0].ID, "most recent first")
	list, err = s.ListRuns(ctx, store.RunFilter{States: []incident.RunState{incident.RunEscalated}})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, r.ID, list[0].ID)

	var kinds []audit.Kind
	for e, err := range s.Events(ctx, audit.Filter{RunID: r.ID}) {
		require.NoError(t, err)
		kinds = append(kinds, e.Kind)
	}
	assert.Equal(t, []audit.Kind{audit.KindRun, audit.KindState, audit.KindState, audit.KindState, audit.KindState, audit.KindEscalation}, kinds)
	assert.True(t, verify(t, s, nil).OK)
}

func testResults(t *testing.T, open Opener) {
	inst := open(t, store.Options{})
	s, ctx := inst.Store, ctxT(t)
	r := newRun(t, s, "bot-1")

	step := incident.StepResult{Step: "queues", Title: "Connector queue depth", Target: "exchange", Executor: "winrm",
		Hosts: []string{"ex01"}, Status: incident.StepRunning, Started: t0}
	require.NoError(t, s.PutStep(ctx, r.ID, "diagnose", step))
	step.Status, step.ExitCode, step.Duration, step.Digest = incident.StepOK, 0, 1500*time.Millisecond, "sha256:1234"
	step.Rows = []map[string]any{{"Host": "ex01", "Identity": "ex01\\Submission", "MessageCount": 1532.0}}
	require.NoError(t, s.PutStep(ctx, r.ID, "diagnose", step))
	require.NoError(t, s.PutStep(ctx, r.ID, "diagnose", step)) // replay: no second event
	require.NoError(t, s.PutStep(ctx, r.ID, "verify-1", step))
	assert.ErrorIs(t, s.PutStep(ctx, "r-nope", "diagnose", step), incident.ErrNotFound)

	got, err := s.Steps(ctx, r.ID)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, incident.StepOK, got[0].Result.Status)
	assert.Equal(t, 1532.0, got[0].Result.Rows[0]["MessageCount"])
	assert.Len(t, events(t, s, audit.KindStep, "", ""), 2, "one step event per final result and phase")
	stepEv := events(t, s, audit.KindStep, "phase", "diagnose")
	require.Len(t, stepEv, 1)
	assert.JSONEq(t, `{"step":"queues","phase":"diagnose","title":"Connector queue depth","target":"exchange","executor":"winrm",
		"hosts":["ex01"],"status":"ok","exit_code":0,"script_digest":"sha256:1234","duration":"1.5s","duration_ms":1500,
		"error":"","rows":1,"verifying":false}`, string(stepEv[0].Payload))

	fs := []incident.Finding{
		{Rule: "queue-high", Severity: incident.SeverityCritical, Text: "Queue ex01\\Submission holds 1532 messages", Step: "queues", Host: "ex01"},
		{Rule: "throttling", Severity: incident.SeverityWarning, Text: "sender throttled"},
	}
	require.NoError(t, s.AddFindings(ctx, r.ID, fs...))
	gotF, err := s.Findings(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, fs, gotF)
	assert.Len(t, events(t, s, audit.KindFinding, "", ""), 2)

	p := incident.Proposal{ID: "restart-transport", Relief: "restart-transport", Title: "Restart MSExchangeTransport",
		Target: "exchange", Hosts: []string{"ex01"}, Command: "Restart-Service MSExchangeTransport", Risk: "Mail flow pauses",
		Approval: incident.ApprovalPolicy{Role: "approver", Approvers: 1, FourEyes: true, Expires: 30 * time.Minute}, Because: fs[:1]}
	require.NoError(t, s.PutProposal(ctx, r.ID, p))
	require.NoError(t, s.PutProposal(ctx, r.ID, p)) // same: no second event
	p.Blocked = "cooldown until 10:30"
	require.NoError(t, s.PutProposal(ctx, r.ID, p))
	gotP, err := s.Proposals(ctx, r.ID)
	require.NoError(t, err)
	require.Len(t, gotP, 1)
	assert.Equal(t, p, gotP[0])
	assert.Len(t, events(t, s, audit.KindProposal, "", ""), 2)
}

func testApprovals(t *testing.T, open Opener) {
	inst := open(t, store.Options{})
	s := inst.Store
	type vote struct {
		voter    incident.Actor
		d        incident.Decision
		digest   string
		at       time.Duration // after t0
		want     store.OutcomeKind
		wantErr  []error
		wantVote int
	}
	cases := []struct {
		name      string
		required  int
		fourEyes  bool
		votes     []vote
		want      incident.ApprovalStatus
		decidedBy incident.Actor
	}{
		{name: "one approver approves", required: 1, votes: []vote{
			{voter: bob, d: incident.Approve, want: store.OutcomeApproved, wantVote: 1},
		}, want: incident.ApprovalApproved, decidedBy: bob},
		{name: "two approvers need two distinct voters", required: 2, votes: []vote{
			{voter: bob, d: incident.Approve, want: store.OutcomeWaiting, wantVote: 1},
			{voter: bob, d: incident.Approve, wantErr: []error{store.ErrAlreadyVoted, incident.ErrConflict}},
			{voter: carol, d: incident.Approve, want: store.OutcomeApproved, wantVote: 2},
			{voter: alice, d: incident.Approve, wantErr: []error{incident.ErrConflict}},
		}, want: incident.ApprovalApproved, decidedBy: carol},
		{name: "four-eyes refuses the requester", required: 1, fourEyes: true, votes: []vote{
			{voter: alice, d: incident.Approve, wantErr: []error{store.ErrFourEyes, incident.ErrNotAllowed}},
			{voter: bob, d: incident.Approve, want: store.OutcomeApproved, wantVote: 1},
		}, want: incident.ApprovalApproved, decidedBy: bob},
		{name: "without four-eyes the requester may approve", required: 1, votes: []vote{
			{voter: alice, d: incident.Approve, want: store.OutcomeApproved, wantVote: 1},
		}, want: incident.ApprovalApproved, decidedBy: alice},
		{name: "four-eyes lets the requester reject", required: 1, fourEyes: true, votes: []vote{
			{voter: alice, d: incident.Reject, want: store.OutcomeRejected},
		}, want: incident.ApprovalRejected, decidedBy: alice},
		{name: "a reject decides at once", required: 2, votes: []vote{
			{voter: bob, d: incident.Approve, want: store.OutcomeWaiting, wantVote: 1},
			{voter: carol, d: incident.Reject, want: store.OutcomeRejected, wantVote: 1},
			{voter: alice, d: incident.Approve, wantErr: []error{incident.ErrConflict}},
		}, want: incident.ApprovalRejected, decidedBy: carol},
		{name: "expired", required: 1, votes: []vote{
			{voter: bob, d: incident.Approve, at: 31 * time.Minute, wantErr: []error{store.ErrExpired, incident.ErrConflict}},
			{voter: carol, d: incident.Approve, at: 32 * time.Minute, wantErr: []error{incident.ErrConflict}},
		}, want: incident.ApprovalExpired, decidedBy: incident.BotActor},
		{name: "expiry is exact", required: 1, votes: []vote{
			{voter: bob, d: incident.Approve, at: 30 * time.Minute, wantErr: []error{store.ErrExpired}},
		}, want: incident.ApprovalExpired, decidedBy: incident.BotActor},
		// Votes are cast at t0+1m+at; the approval expires at t0+30m.
		{name: "a vote at the very instant of expiry is refused", required: 1, votes: []vote{
			{voter: bob, d: incident.Approve, at: 29 * time.Minute, wantErr: []error{store.ErrExpired, incident.ErrConflict}},
		}, want: incident.ApprovalExpired, decidedBy: incident.BotActor},
		{name: "a vote a microsecond before expiry counts", required: 1, votes: []vote{
			{voter: bob, d: incident.Approve, at: 29*time.Minute - time.Microsecond, want: store.OutcomeApproved, wantVote: 1},
		}, want: incident.ApprovalApproved, decidedBy: bob},
		{name: "a vote without a voter", required: 1, votes: []vote{
			{voter: incident.Actor{}, d: incident.Approve, wantErr: []error{incident.ErrInvalidInput}},
		}, want: incident.ApprovalPending},
		{name: "digest mismatch voids", required: 2, votes: []vote{
			{voter: bob, d: incident.Approve, want: store.OutcomeWaiting, wantVote: 1},
			{voter: carol, d: incident.Approve, digest: "0000changed", wantErr: []error{store.ErrVoid, incident.ErrConflict}},
			{voter: carol, d: incident.Approve, wantErr: []error{incident.ErrConflict}},
		}, want: incident.ApprovalVoid, decidedBy: incident.BotActor},
		{name: "unknown decision", required: 1, votes: []vote{
			{voter: bob, d: "maybe", wantErr: []error{incident.ErrInvalidInput}},
		}, want: incident.ApprovalPending},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			r := newRun(t, s, "bot-1")
			a := newApproval(t, s, r.ID, tc.required, tc.fourEyes, t0.Add(30*time.Minute))
			for i, v := range tc.votes {
				d := v.digest
				if d == "" {
					d = digest
				}
				out, err := s.Vote(ctx, a.ID, v.voter, store.RoleApprover, v.d, d, t0.Add(time.Minute+v.at))
				if len(v.wantErr) > 0 {
					for _, want := range v.wantErr {
						assert.ErrorIs(t, err, want, "vote %d by %s", i, v.voter.Name)
					}
					continue
				}
				require.NoError(t, err, "vote %d by %s", i, v.voter.Name)
				assert.Equal(t, v.want, out.Kind, "vote %d", i)
				assert.Equal(t, v.wantVote, out.Votes, "vote %d", i)
				assert.Equal(t, tc.required, out.Required)
			}
			got, err := s.GetApproval(ctx, a.ID)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got.Status)
			assert.Equal(t, tc.decidedBy, got.DecidedBy)
			if tc.want.Decided() {
				assert.False(t, got.DecidedAt.IsZero())
				// A loser is told who won and when.
				_, err := s.Vote(ctx, a.ID, incident.Actor{ID: "U0LATE", Name: "late"}, store.RoleApprover, incident.Approve, digest, t0.Add(2*time.Minute))
				var ve *store.VoteError
				require.ErrorAs(t, err, &ve)
				assert.Equal(t, tc.decidedBy, ve.Approval.DecidedBy)
				assert.Equal(t, got.DecidedAt, ve.Approval.DecidedAt)
				assert.Contains(t, err.Error(), string(tc.want))
			}
		})
	}

	t.Run("refused four-eyes vote is audited", func(t *testing.T) {
		r := newRun(t, s, "bot-1")
		a := newApproval(t, s, r.ID, 1, true, t0.Add(time.Hour))
		_, err := s.Vote(ctxT(t), a.ID, alice, store.RoleApprover, incident.Approve, digest, t0)
		require.ErrorIs(t, err, store.ErrFourEyes)
		ev := events(t, s, audit.KindVoteRefused, "approval_id", a.ID)
		require.Len(t, ev, 1)
		assert.Equal(t, alice, ev[0].Actor)
	})

	t.Run("unknown approval", func(t *testing.T) {
		_, err := s.Vote(ctxT(t), "a-nope", bob, store.RoleApprover, incident.Approve, digest, t0)
		assert.ErrorIs(t, err, incident.ErrNotFound)
		_, err = s.GetApproval(ctxT(t), "a-nope")
		assert.ErrorIs(t, err, incident.ErrNotFound)
	})

	t.Run("sweeper expires pending approvals only", func(t *testing.T) {
		ctx := ctxT(t)
		r := newRun(t, s, "bot-1")
		due := newApproval(t, s, r.ID, 1, false, t0.Add(5*time.Minute))
		later := newApproval(t, s, r.ID, 1, false, t0.Add(50*time.Minute))
		decided := newApproval(t, s, r.ID, 1, false, t0.Add(5*time.Minute))
		_, err := s.Vote(ctx, decided.ID, bob, store.RoleApprover, incident.Approve, digest, t0)
		require.NoError(t, err)
		expired, err := s.ExpireApprovals(ctx, t0.Add(10*time.Minute))
		require.NoError(t, err)
		var ids []string
		for _, a := range expired {
			if a.RunID == r.ID {
				ids = append(ids, a.ID)
			}
		}
		assert.Equal(t, []string{due.ID}, ids)
		got, err := s.GetApproval(ctx, later.ID)
		require.NoError(t, err)
		assert.Equal(t, incident.ApprovalPending, got.Status)
		all, err := s.Approvals(ctx, r.ID)
		require.NoError(t, err)
		require.Len(t, all, 3)
		assert.Equal(t, []incident.Actor{bob}, all[2].Approvers())
		assert.Len(t, events(t, s, audit.KindExpired, "approval_id", due.ID), 1)
	})
	assert.True(t, verify(t, s, nil).OK)
}

// testVoteRace: 100 goroutines approve the same one-approver relief, then 100
// goroutines claim it.
func testVoteRace(t *testing.T, open Opener) {
	inst := open(t, store.Options{})
	s, ctx := inst.Store, ctxT(t)
	r := newRun(t, s, "bot-1")
	a := newApproval(t, s, r.ID, 1, true, t0.Add(time.Hour))

	const n = 100
	type result struct {
		voter incident.Actor
		out   store.Outcome
		err   error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			v := incident.Actor{ID: fmt.Sprintf("U%03d", i), Name: fmt.Sprintf("user%03d", i)}
			out, err := s.Vote(ctx, a.ID, v, store.RoleApprover, incident.Approve, digest, t0.Add(time.Minute))
			results[i] = result{v, out, err}
		})
	}
	close(start)
	wg.Wait()

	var winner incident.Actor
	approved := 0
	for _, r := range results {
		if r.err == nil {
			require.Equal(t, store.OutcomeApproved, r.out.Kind)
			approved++
			winner = r.voter
		}
	}
	require.Equal(t, 1, approved, "exactly one vote approves")
	for _, r := range results {
		if r.err != nil {
			var ve *store.VoteError
			require.ErrorAs(t, r.err, &ve)
			assert.ErrorIs(t, r.err, incident.ErrConflict)
			assert.Equal(t, store.RefusedDecided, ve.Refusal)
			assert.Equal(t, winner, ve.Approval.DecidedBy, "the loser is told who won")
			assert.Contains(t, r.err.Error(), winner.String())
		}
	}
	assert.Len(t, events(t, s, audit.KindApproved, "approval_id", a.ID), 1, "one approved event")
	assert.Len(t, events(t, s, audit.KindApproval, "approval_id", a.ID), 1, "one recorded vote")

	var claimed atomic.Int32
	var winnerOwner atomic.Value
	errs := make([]error, n)
	start = make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			x, err := s.ClaimRelief(ctx, a.ID, fmt.Sprintf("replica-%d", i), digest)
			errs[i] = err
			if err == nil {
				claimed.Add(1)
				winnerOwner.Store(x.Owner)
			}
		})
	}
	close(start)
	wg.Wait()
	require.EqualValues(t, 1, claimed.Load(), "exactly one claim")
	for _, err := range errs {
		if err != nil {
			var ce *store.ClaimError
			require.ErrorAs(t, err, &ce)
			assert.ErrorIs(t, err, incident.ErrConflict)
			assert.Equal(t, winnerOwner.Load(), ce.Existing.Owner, "the loser is told who runs it")
		}
	}
	xs, err := s.Executions(ctx, r.ID)
	require.NoError(t, err)
	require.Len(t, xs, 1)
	assert.Len(t, events(t, s, audit.KindRelief, "approval_id", a.ID), 1)
	assert.True(t, verify(t, s, nil).OK)
}

func testClaims(t *testing.T, open Opener) {
	inst := open(t, store.Options{})
	s, ctx := inst.Store, ctxT(t)
	r := newRun(t, s, "bot-1")

	pending := newApproval(t, s, r.ID, 1, false, t0.Add(time.Hour))
	_, err := s.ClaimRelief(ctx, pending.ID, "bot-1", digest)
	assert.ErrorIs(t, err, incident.ErrNotAllowed, "a pending approval cannot be claimed")
	var notApproved *store.VoteError
	if assert.ErrorAs(t, err, &notApproved, "refused as not approved (not for its missing votes' role)") {
		assert.Equal(t, store.RefusedNotApproved, notApproved.Refusal)
	}

	rejected := newApproval(t, s, r.ID, 1, false, t0.Add(time.Hour))
	_, err = s.Vote(ctx, rejected.ID, bob, store.RoleApprover, incident.Reject, digest, t0)
	require.NoError(t, err)
	_, err = s.ClaimRelief(ctx, rejected.ID, "bot-1", digest)
	assert.ErrorIs(t, err, incident.ErrNotAllowed)
	if assert.ErrorAs(t, err, &notApproved) {
		assert.Equal(t, store.RefusedNotApproved, notApproved.Refusal)
	}

	// Approved, then the playbook changed before it ran: void, never claimed.
	changed := newApproval(t, s, r.ID, 1, false, t0.Add(time.Hour))
	_, err = s.Vote(ctx, changed.ID, bob, store.RoleApprover, incident.Approve, digest, t0)
	require.NoError(t, err)
	_, err = s.ClaimRelief(ctx, changed.ID, "bot-1", "digest-after-reload")
	assert.ErrorIs(t, err, store.ErrVoid)
	got, err := s.GetApproval(ctx, changed.ID)
	require.NoError(t, err)
	assert.Equal(t, incident.ApprovalVoid, got.Status)
	_, err = s.ClaimRelief(ctx, changed.ID, "bot-1", digest)
	assert.ErrorIs(t, err, store.ErrVoid, "void stays void")

	_, err = s.ClaimRelief(ctx, "a-nope", "bot-1", digest)
	assert.ErrorIs(t, err, incident.ErrNotFound)

	// A claim names its owner: recovery tells a live owner's relief from a dead one's.
	anon := newApproval(t, s, r.ID, 1, false, t0.Add(time.Hour))
	_, err = s.Vote(ctx, anon.ID, bob, store.RoleApprover, incident.Approve, digest, t0)
	require.NoError(t, err)
	_, err = s.ClaimRelief(ctx, anon.ID, "", digest)
	assert.ErrorIs(t, err, incident.ErrInvalidInput, "a claim without an owner")
	xs, err := s.Executions(ctx, r.ID)
	require.NoError(t, err)
	assert.Empty(t, xs, "nothing claimed")

	ok := newApproval(t, s, r.ID, 1, false, t0.Add(time.Hour))
	_, err = s.Vote(ctx, ok.ID, bob, store.RoleApprover, incident.Approve, digest, t0)
	require.NoError(t, err)
	_, found, err := s.LastRelief(ctx, "restart-transport", "ex01.contoso.com")
	require.NoError(t, err)
	assert.False(t, found)

	x, err := s.ClaimRelief(ctx, ok.ID, "bot-1", digest)
	require.NoError(t, err)
	assert.Equal(t, incident.ExecRunning, x.State)
	assert.Equal(t, []string{"ex01.contoso.com", "ex02.contoso.com"}, x.Hosts)

	_, err = s.ClaimRelief(ctx, ok.ID, "bot-2", digest)
	var ce *store.ClaimError
	require.ErrorAs(t, err, &ce, "a replayed click claims nothing")
	assert.Equal(t, x.ID, ce.Existing.ID)

	last, found, err := s.LastRelief(ctx, "restart-transport", "ex02.contoso.com")
	require.NoError(t, err)
	assert.True(t, found)
	assert.WithinDuration(t, x.StartedAt, last, time.Microsecond)
	_, found, err = s.LastRelief(ctx, "restart-transport", "ex99.contoso.com")
	require.NoError(t, err)
	assert.False(t, found)

	done, err := s.FinishRelief(ctx, x.ID, store.ReliefOutcome{OK: true, Output: "Restarted. token=s3cr3tvalue"})
	require.NoError(t, err)
	assert.Equal(t, incident.ExecOK, done.State)
	assert.NotContains(t, done.Output, "s3cr3tvalue", "relief output is redacted")
	_, err = s.FinishRelief(ctx, x.ID, store.ReliefOutcome{OK: false})
	assert.ErrorIs(t, err, incident.ErrConflict, "finished once")
	_, err = s.FinishRelief(ctx, "x-nope", store.ReliefOutcome{})
	assert.ErrorIs(t, err, incident.ErrNotFound)

	got2, err := s.GetExecution(ctx, x.ID)
	require.NoError(t, err)
	assert.Equal(t, incident.ExecOK, got2.State)
	assert.False(t, got2.FinishedAt.IsZero())
	relief := events(t, s, audit.KindRelief, "execution_id", x.ID)
	require.Len(t, relief, 2, "started and finished")
	assert.NotContains(t, string(relief[1].Payload), "s3cr3tvalue")
	assert.True(t, verify(t, s, nil).OK)
}

func testRecovery(t *testing.T, open Opener) {
	inst := open(t, store.Options{})
	s, ctx := inst.Store, ctxT(t)
	now := time.Now()

	// A crashed process "old" left: a relief running, a run diagnosing, a pending approval.
	crashed := newRun(t, s, "old")
	a := newApproval(t, s, crashed.ID, 1, false, now.Add(time.Hour))
	_, err := s.Vote(ctx, a.ID, bob, store.RoleApprover, incident.Approve, digest, now)
	require.NoError(t, err)
	x, err := s.ClaimRelief(ctx, a.ID, "old", digest)
	require.NoError(t, err)
	_, err = s.SetRunState(ctx, crashed.ID, "", incident.RunRelieving)
	require.NoError(t, err)
	diagnosing := newRun(t, s, "old")
	waiting := newRun(t, s, "old")
	_, err = s.SetRunState(ctx, waiting.ID, "", incident.RunAwaitingApproval)
	require.NoError(t, err)
	pending := newApproval(t, s, waiting.ID, 2, false, now.Add(time.Hour))
	// A live replica's work must not be taken over.
	require.NoError(t, s.Heartbeat(ctx, "live", now.Add(time.Minute)))
	liveRun := newRun(t, s, "live")
	// On another server: one relief at a time per host holds across replicas.
	liveA, err := s.RequestApproval(ctx, store.NewApproval{RunID: liveRun.ID, ReliefID: "restart-transport",
		Hosts: []string{"ex03.contoso.com"}, Digest: digest, Required: 1, Requester: alice, ExpiresAt: now.Add(time.Hour)})
	require.NoError(t, err)
	_, err = s.Vote(ctx, liveA.ID, bob, store.RoleApprover, incident.Approve, digest, now)
	require.NoError(t, err)
	liveX, err := s.ClaimRelief(ctx, liveA.ID, "live", digest)
	require.NoError(t, err)

	require.NoError(t, s.Close())
	s2, err := inst.Reopen(t, store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { s2.Close() })

	rec, err := s2.Recover(ctx, "new", now)
	require.NoError(t, err)
	require.Len(t, rec.Unknown, 1)
	assert.Equal(t, x.ID, rec.Unknown[0].ID)
	assert.Equal(t, incident.ExecUnknown, rec.Unknown[0].State)
	require.Len(t, rec.Interrupted, 1)
	assert.Equal(t, crashed.ID, rec.Interrupted[0].ID)
	assert.Equal(t, incident.RunInterrupted, rec.Interrupted[0].State)
	var resumed []string
	for _, r := range rec.Resume {
		resumed = append(resumed, r.ID)
		assert.Equal(t, "new", r.Owner)
	}
	assert.Equal(t, []string{diagnosing.ID}, resumed, "only the dead owner's diagnosing run resumes")

	// Never re-run: the claim stays taken and the old owner cannot finish it.
	_, err = s2.ClaimRelief(ctx, a.ID, "new", digest)
	var ce *store.ClaimError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, incident.ExecUnknown, ce.Existing.State)
	_, err = s2.FinishRelief(ctx, x.ID, store.ReliefOutcome{OK: true})
	assert.ErrorIs(t, err, incident.ErrConflict)

	// The live replica's relief is untouched.
	lx, err := s2.GetExecution(ctx, liveX.ID)
	require.NoError(t, err)
	assert.Equal(t, incident.ExecRunning, lx.State)

	// Recovery is audited and idempotent.
	assert.Len(t, events(t, s2, audit.KindRecovery, "id", x.ID), 1)
	again, err := s2.Recover(ctx, "new", now)
	require.NoError(t, err)
	assert.Empty(t, again.Unknown)
	assert.Empty(t, again.Interrupted)

	// Once the live replica's lease lapses, its work is recovered too.
	later, err := s2.Recover(ctx, "new", now.Add(2*time.Minute))
	require.NoError(t, err)
	require.Len(t, later.Unknown, 1)
	assert.Equal(t, liveX.ID, later.Unknown[0].ID)

	// Pending approvals keep working after the restart.
	out, err := s2.Vote(ctx, pending.ID, bob, store.RoleApprover, incident.Approve, digest, now.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, store.OutcomeWaiting, out.Kind)
	out, err = s2.Vote(ctx, pending.ID, carol, store.RoleApprover, incident.Approve, digest, now.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, store.OutcomeApproved, out.Kind)
	assert.True(t, verify(t, s2, nil).OK)
}

func testOutbox(t *testing.T, open Opener) {
	inst := open(t, store.Options{})
	s, ctx := inst.Store, ctxT(t)
	r := newRun(t, s, "bot-1")
	now := time.Now()

	enqueue := func(ch, key string, kind store.PostKind, ref string) store.Post {
		t.Helper()
		p, err := s.EnqueuePost(ctx, store.Post{RunID: r.ID, Channel: ch, Key: key, Kind: kind, Ref: ref,
			Payload: json.RawMessage(`{"text":"` + key + `"}`)})
		require.NoError(t, err)
		return p
	}
	root := enqueue("C1", "root", store.PostNew, "")
	dup := enqueue("C1", "root", store.PostNew, "")
	assert.Equal(t, root.ID, dup.ID, "an idempotency key is stored once")
	reply := enqueue("C1", "reply", store.PostNew, "root")
	enqueue("C2", "other", store.PostNew, "")
	upd := enqueue("C1", "update", store.PostUpdate, "root")

	_, err := s.EnqueuePost(ctx, store.Post{Channel: "C1", Key: "bad", Kind: store.PostUpdate})
	assert.ErrorIs(t, err, incident.ErrInvalidInput)
	_, err = s.EnqueuePost(ctx, store.Post{Channel: "C1", Key: "bad", Payload: json.RawMessage(`{`)})
	assert.ErrorIs(t, err, incident.ErrInvalidInput)

	keys := func(ps []store.Post) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Key)
		}
		return out
	}
	got, err := s.NextPosts(ctx, "d1", 10, now)
	require.NoError(t, err)
	assert.Equal(t, []string{"root", "reply", "other", "update"}, keys(got))

	// Leased to d1: another dispatcher gets nothing until the lease lapses.
	got2, err := s.NextPosts(ctx, "d2", 10, now)
	require.NoError(t, err)
	assert.Empty(t, got2)

	// The root fails: C1 is held back until its retry time, C2 is not.
	require.NoError(t, s.MarkFailed(ctx, root.ID, now.Add(time.Minute), "rate limited Bearer abcdefghijklmnop"))
	require.NoError(t, s.MarkDelivered(ctx, got[2].ID, "1700000000.000200"))
	got, err = s.NextPosts(ctx, "d1", 10, now.Add(time.Second))
	require.NoError(t, err)
	assert.Empty(t, got, "C1 waits for its head post")
	got, err = s.NextPosts(ctx, "d1", 10, now.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, []string{"root", "reply", "update"}, keys(got))
	assert.Equal(t, 1, got[0].Attempts)
	assert.NotContains(t, got[0].LastError, "abcdefghijklmnop", "errors are redacted")
	assert.Empty(t, got[1].RefExternal, "root not delivered yet")

	require.NoError(t, s.MarkDelivered(ctx, root.ID, "1700000000.000100"))
	require.NoError(t, s.MarkDelivered(ctx, root.ID, "1700000000.000100"), "a repeated ack is harmless")
	got, err = s.NextPosts(ctx, "d1", 10, now.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, []string{"reply", "update"}, keys(got))
	assert.Equal(t, "1700000000.000100", got[0].RefExternal, "reply goes to the root's thread")
	assert.Equal(t, "1700000000.000100", got[1].RefExternal, "update edits the root")

	// Give up on the reply: dead, audited, no longer holding up C1.
	require.NoError(t, s.MarkFailed(ctx, reply.ID, time.Time{}, "channel_not_found"))
	assert.ErrorIs(t, s.MarkFailed(ctx, reply.ID, time.Time{}, "again"), incident.ErrConflict)
	got, err = s.NextPosts(ctx, "d1", 10, now.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, []string{"update"}, keys(got))
	require.NoError(t, s.MarkDelivered(ctx, upd.ID, "1700000000.000100"))

	all, err := s.Posts(ctx, r.ID)
	require.NoError(t, err)
	states := map[string]store.PostState{}
	for _, p := range all {
		states[p.Key] = p.State
	}
	assert.Equal(t, map[string]store.PostState{"root": store.PostDelivered, "reply": store.PostDead,
		"other": store.PostDelivered, "update": store.PostDelivered}, states)
	assert.Len(t, events(t, s, audit.KindChatPost, "", ""), 4, "three deliveries and one dead post")
	assert.ErrorIs(t, s.MarkDelivered(ctx, 999999, "x"), incident.ErrNotFound)
}

// flakySender fails the first failures attempts of every post, then delivers it.
type flakySender struct {
	mu        sync.Mutex
	failures  int
	attempts  map[string]int
	delivered map[string]int
	order     map[string][]string
}

func (f *flakySender) Send(_ context.Context, p store.Post) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts[p.Key]++
	if f.attempts[p.Key] <= f.failures {
		if f.attempts[p.Key]%2 == 0 {
			return "", outbox.RetryAfter(errors.New("ratelimited"), time.Millisecond)
		}
		return "", errors.New("chat unavailable")
	}
	f.delivered[p.Key]++
	f.order[p.Channel] = append(f.order[p.Channel], p.Key)
	return "ts-" + p.Key, nil
}

func testDispatcher(t *testing.T, open Opener) {
	inst := open(t, store.Options{})
	s := inst.Store
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := newRun(t, s, "bot-1")

	const perChannel = 15
	channels := []string{"C1", "C2", "C3"}
	want := map[string][]string{}
	for i := range perChannel {
		for _, ch := range channels {
			key := fmt.Sprintf("%s-%02d", ch, i)
			_, err := s.EnqueuePost(ctx, store.Post{RunID: r.ID, Channel: ch, Key: key, Payload: json.RawMessage(`{}`)})
			require.NoError(t, err)
			want[ch] = append(want[ch], key)
		}
	}
	snd := &flakySender{failures: 3, attempts: map[string]int{}, delivered: map[string]int{}, order: map[string][]string{}}
	// Two dispatchers (two replicas) on the same queue.
	s2, err := inst.Reopen(t, store.Options{})
	require.NoError(t, err)
	defer s2.Close()
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, q := range []store.Store{s, s2} {
		d := &outbox.Dispatcher{Queue: q, Sender: snd, Owner: fmt.Sprintf("replica-%d", i),
			Poll: 2 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}
		wg.Go(func() { assert.ErrorIs(t, d.Run(runCtx), context.Canceled) })
	}
	require.Eventually(t, func() bool {
		ps, err := s.Posts(ctx, r.ID)
		require.NoError(t, err)
		for _, p := range ps {
			if p.State != store.PostDelivered {
				return false
			}
		}
		return true
	}, 45*time.Second, 10*time.Millisecond)
	stop()
	wg.Wait()

	snd.mu.Lock()
	defer snd.mu.Unlock()
	for _, ch := range channels {
		assert.Equal(t, want[ch], snd.order[ch], "channel %s in order", ch)
		for _, k := range want[ch] {
			assert.Equal(t, 1, snd.delivered[k], "%s delivered once", k)
			assert.Equal(t, 4, snd.attempts[k], "%s: 3 failures then success", k)
		}
	}
}

func testAudit(t *testing.T, open Opener) {
	t.Run("concurrent appends form one chain", func(t *testing.T) {
		inst := open(t, store.Options{})
		s, ctx := inst.Store, ctxT(t)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := range 25 {
					_, err := s.Append(ctx, audit.Record{Actor: incident.CLIActor("ops"), Kind: audit.KindCommand,
						Payload: map[string]any{"writer": w, "i": i}})
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		rep := verify(t, s, nil)
		require.True(t, rep.OK, rep.String())
		assert.EqualValues(t, 200, rep.Events)
		head, err := s.AuditHead(ctx)
		require.NoError(t, err)
		assert.EqualValues(t, 200, head.Seq)
		assert.Equal(t, rep.LastHash, head.Hash)
	})

	// Each store remembers the head it last moved the trail to, and appends
	// after it without reading it; another writer on the same database moves
	// the head under it, whatever the kind of write.
	t.Run("two writers on one database form one chain", func(t *testing.T) {
		inst := open(t, store.Options{})
		s1, ctx := inst.Store, ctxT(t)
		s2, err := inst.Reopen(t, store.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { s2.Close() })
		r := newRun(t, s1, "bot-1")
		events := 1 // the run's
		for i := range 6 {
			for j, s := range []store.Store{s1, s2, s2, s1} {
				_, err := s.Append(ctx, audit.Record{Actor: incident.CLIActor("ops"), Kind: audit.KindCommand,
					Payload: map[string]any{"round": i, "writer": j}})
				require.NoError(t, err)
				step := incident.StepResult{Step: fmt.Sprintf("s%d-%d", i, j), Target: "exchange", Hosts: []string{"ex01"}, Status: incident.StepOK}
				require.NoError(t, s.PutStep(ctx, r.ID, "diagnose", step))
				require.NoError(t, s.AddFindings(ctx, r.ID, incident.Finding{Rule: fmt.Sprintf("f%d-%d", i, j), Severity: incident.SeverityInfo, Text: "x"}))
				events += 3
			}
		}
		for _, s := range []store.Store{s1, s2} {
			rep := verify(t, s, nil)
			require.True(t, rep.OK, rep.String())
			assert.EqualValues(t, events, rep.Events)
			head, err := s.AuditHead(ctx)
			require.NoError(t, err)
			assert.EqualValues(t, events, head.Seq)
			assert.Equal(t, rep.LastHash, head.Hash)
		}
	})

	t.Run("redaction before append", func(t *testing.T) {
		inst := open(t, store.Options{Redactor: audit.NewRedactor("hunter2-winrm-pw")})
		s, ctx := inst.Store, ctxT(t)
		e, err := s.Append(ctx, audit.Record{Actor: incident.CLIActor("ops"), Kind: audit.KindCommand,
			Payload: map[string]any{"text": "connect with hunter2-winrm-pw", "dsn": "postgres://bot:pgpass@db/ndr",
				"password": "p@ss", "header": "Authorization: Bearer eyJhbGciOi.eyJzdWIiOiIx.sig"}})
		require.NoError(t, err)
		for _, secret := range []string{"hunter2-winrm-pw", "pgpass", "p@ss", "eyJhbGciOi"} {
			assert.NotContains(t, string(e.Payload), secret)
		}
		var stored audit.Event
		for ev, err := range s.Events(ctx, audit.Filter{}) {
			require.NoError(t, err)
			stored = ev
		}
		assert.Equal(t, e.Payload, stored.Payload)
		assert.Contains(t, string(stored.Payload), audit.Redacted)
	})

	t.Run("hmac key", func(t *testing.T) {
		key := []byte("0123456789abcdef0123456789abcdef")
		inst := open(t, store.Options{AuditKey: key})
		s, ctx := inst.Store, ctxT(t)
		newRun(t, s, "bot-1")
		_, err := s.Append(ctx, audit.Record{Actor: alice, Kind: audit.KindCommand, Payload: map[string]any{"text": "/ndr help"}})
		require.NoError(t, err)
		rep := verify(t, s, key)
		assert.True(t, rep.OK, rep.String())
		assert.Zero(t, rep.Unkeyed)
		assert.Equal(t, audit.ReasonNeedKey, verify(t, s, nil).Reason)
		assert.Equal(t, audit.ReasonWrongKey, verify(t, s, []byte("wrong key")).Reason)
	})

	t.Run("filters and export", func(t *testing.T) {
		inst := open(t, store.Options{})
		s, ctx := inst.Store, ctxT(t)
		r1, r2 := newRun(t, s, "b"), newRun(t, s, "b")
		_, err := s.SetRunState(ctx, r1.ID, "", incident.RunFinished)
		require.NoError(t, err)
		var sb strings.Builder
		n, err := audit.Export(ctx, &sb, s, audit.Filter{RunID: r1.ID}, audit.FormatJSONL)
		require.NoError(t, err)
		assert.EqualValues(t, 2, n)
		assert.NotContains(t, sb.String(), r2.ID)
		sb.Reset()
		n, err = audit.Export(ctx, &sb, s, audit.Filter{}, audit.FormatCSV)
		require.NoError(t, err)
		assert.EqualValues(t, 3, n)
		assert.Equal(t, 4, strings.Count(sb.String(), "\n"))
		// The JSONL export of the whole trail verifies on its own.
		sb.Reset()
		_, err = audit.Export(ctx, &sb, s, audit.Filter{}, audit.FormatJSONL)
		require.NoError(t, err)
		rep, err := audit.Verify(ctx, audit.SeqSource{Seq: audit.ReadJSONL(strings.NewReader(sb.String()))}, nil)
		require.NoError(t, err)
		assert.True(t, rep.OK, rep.String())
	})
}

// testRunStateMachine: moves the state machine (incident's transitions) does not
// allow are refused in the store, with nothing written.
func testRunStateMachine(t *testing.T, open Opener) {
	s, ctx := open(t, store.Options{}).Store, ctxT(t)

	for _, bad := range []struct{ path []incident.RunState }{
		{[]incident.RunState{incident.RunEscalated, incident.RunDiagnosing}},
		{[]incident.RunState{incident.RunFinished, incident.RunAwaitingApproval}},
		{[]incident.RunState{incident.RunInterrupted, incident.RunRelieving}},
		{[]incident.RunState{incident.RunInterrupted, incident.RunRecovered, incident.RunFinished}},
		{[]incident.RunState{incident.RunAwaitingApproval, incident.RunVerifying}},
	} {
		rr := newRun(t, s, "bot-1")
		for _, to := range bad.path[:len(bad.path)-1] {
			_, err := s.SetRunState(ctx, rr.ID, "", to)
			require.NoError(t, err, "%s", to)
		}
		before, err := s.AuditHead(ctx)
		require.NoError(t, err)
		last := bad.path[len(bad.path)-1]
		_, err = s.SetRunState(ctx, rr.ID, "", last)
		assert.ErrorIs(t, err, incident.ErrConflict, "%v", bad.path)
		got, err := s.GetRun(ctx, rr.ID)
		require.NoError(t, err)
		assert.Equal(t, bad.path[len(bad.path)-2], got.State)
		after, err := s.AuditHead(ctx)
		require.NoError(t, err)
		assert.Equal(t, before, after, "a refused move writes nothing")
	}
}

// testTamper edits the stored trail with raw SQL and expects Verify to name the
// first bad sequence number.
func testTamper(t *testing.T, open Opener) {
	key := []byte("tamper-test-hmac-key-32-bytes!!!")
	cases := []struct {
		name     string
		key      []byte
		tamper   func(t *testing.T, inst Instance)
		wantSeq  int64
		wantWhy  audit.Reason
		wantText string
	}{
		{name: "edit a payload", tamper: func(t *testing.T, inst Instance) {
			inst.Exec(t, `UPDATE audit_events SET payload = ? WHERE seq = 5`, `{"text":"nothing to see here"}`)
		}, wantSeq: 5, wantWhy: audit.ReasonAltered},
		{name: "edit the actor", tamper: func(t *testing.T, inst Instance) {
			inst.Exec(t, `UPDATE audit_events SET actor_id = 'U0MALLORY' WHERE seq = 7`)
		}, wantSeq: 7, wantWhy: audit.ReasonAltered},
		{name: "delete an event", tamper: func(t *testing.T, inst Instance) {
			inst.Exec(t, `DELETE FROM audit_events WHERE seq = 4`)
		}, wantSeq: 4, wantWhy: audit.ReasonDeleted, wantText: "event 4 is missing"},
		{name: "delete the last events", tamper: func(t *testing.T, inst Instance) {
			inst.Exec(t, `DELETE FROM audit_events WHERE seq >= 9`)
		}, wantSeq: 9, wantWhy: audit.ReasonTruncated},
		{name: "swap two events", tamper: func(t *testing.T, inst Instance) {
			inst.Exec(t, `UPDATE audit_events SET seq = -6 WHERE seq = 6`)
			inst.Exec(t, `UPDATE audit_events SET seq = 6 WHERE seq = 5`)
			inst.Exec(t, `UPDATE audit_events SET seq = 5 WHERE seq = -6`)
		}, wantSeq: 5, wantWhy: audit.ReasonReordered},
		{name: "rewrite an event with a recomputed hash", tamper: func(t *testing.T, inst Instance) {
			e := storedEvent(t, inst.Store, 3)
			e.Payload = json.RawMessage(`{"text":"rewritten"}`)
			require.NoError(t, audit.Seal(&e, e.PrevHash, nil))
			inst.Exec(t, `UPDATE audit_events SET payload = ?, hash = ? WHERE seq = 3`, string(e.Payload), e.Hash)
		}, wantSeq: 3, wantWhy: audit.ReasonReplaced},
		{name: "append a forged event without the key", key: key, tamper: func(t *testing.T, inst Instance) {
			last := storedEvent(t, inst.Store, 11) // 10 commands after the key's epoch event
			forged := audit.Event{Seq: 12, Time: time.Now(), Actor: bob, Kind: audit.KindApproved,
				Payload: json.RawMessage(`{"approval_id":"a-x","approvers":["bob"]}`)}
			require.NoError(t, audit.Seal(&forged, last.Hash, nil))
			insertEvent(t, inst, forged)
		}, wantSeq: 12, wantWhy: audit.ReasonForged},
		{name: "insert a forged event labelled hmac", key: key, tamper: func(t *testing.T, inst Instance) {
			last := storedEvent(t, inst.Store, 11)
			forged := audit.Event{Seq: 12, Time: time.Now(), Actor: bob, Kind: audit.KindApproved,
				Payload: json.RawMessage(`{"approval_id":"a-x"}`)}
			require.NoError(t, audit.Seal(&forged, last.Hash, []byte("guessed key")))
			insertEvent(t, inst, forged)
			inst.Exec(t, `UPDATE audit_head SET seq = 12, hash = ?`, forged.Hash)
		}, wantSeq: 12, wantWhy: audit.ReasonAltered, wantText: "forged without the HMAC key"},
		{name: "untouched", tamper: func(*testing.T, Instance) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inst := open(t, store.Options{AuditKey: tc.key})
			for i := range 10 {
				_, err := inst.Store.Append(ctxT(t), audit.Record{Actor: alice, Kind: audit.KindCommand, RunID: "r-1",
					Payload: map[string]any{"text": fmt.Sprintf("/ndr status %d", i)}})
				require.NoError(t, err)
			}
			require.True(t, verify(t, inst.Store, tc.key).OK)
			tc.tamper(t, inst)
			rep := verify(t, inst.Store, tc.key)
			if tc.wantSeq == 0 {
				assert.True(t, rep.OK, rep.String())
				return
			}
			assert.False(t, rep.OK)
			assert.Equal(t, tc.wantSeq, rep.FirstBad, rep.String())
			assert.Equal(t, tc.wantWhy, rep.Reason, rep.String())
			assert.Contains(t, rep.String(), fmt.Sprintf("seq %d", tc.wantSeq))
			if tc.wantText != "" {
				assert.Contains(t, rep.Detail, tc.wantText)
			}
		})
	}
}

func storedEvent(t *testing.T, s store.Store, seq int64) audit.Event {
	t.Helper()
	for e, err := range s.Events(ctxT(t), audit.Filter{AfterSeq: seq - 1, Limit: 1}) {
		require.NoError(t, err)
		return e
	}
	t.Fatalf("no event %d", seq)
	return audit.Event{}
}

func insertEvent(t *testing.T, inst Instance, e audit.Event) {
	inst.Exec(t, `INSERT INTO audit_events (seq, ts_us, actor_id, actor_name, run_id, kind, payload, alg, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.Seq, e.Time.UnixMicro(), e.Actor.ID, e.Actor.Name, e.RunID,
		string(e.Kind), string(e.Payload), string(e.Alg), e.PrevHash, e.Hash)
}

func testSchema(t *testing.T, open Opener) {
	inst := open(t, store.Options{})
	r := newRun(t, inst.Store, "bot-1")

	again, err := inst.Reopen(t, store.Options{})
	require.NoError(t, err, "reopening a current database migrates nothing")
	_, err = again.GetRun(ctxT(t), r.ID)
	require.NoError(t, err)
	require.NoError(t, again.Close())

	inst.Exec(t, `INSERT INTO schema_version (version, applied_us) VALUES (7, 0)`)
	s, err := inst.Reopen(t, store.Options{})
	if s != nil {
		s.Close()
	}
	var tooNew *store.SchemaTooNewError
	require.ErrorAs(t, err, &tooNew)
	assert.Equal(t, 7, tooNew.DB)
	assert.Contains(t, err.Error(), "database schema v7 is newer than this ndrbot (knows v5); upgrade ndrbot")
}

// ---- processes racing ---------------------------------------------------------

// Environment of a race child process.
const (
	EnvChild    = "NDRBOT_STORETEST_CHILD"
	envApproval = "NDRBOT_STORETEST_APPROVAL"
	envStart    = "NDRBOT_STORETEST_START"
)

// ChildResult is what a race child reports on stdout.
type ChildResult struct {
	Approved, VoteConflicts, Claimed, ClaimConflicts, Other int
}

// ProcessRace has two child processes (spawn starts one with the extra env and
// returns its stdout) vote 50 distinct voters each on one one-approver approval,
// every goroutine then trying to claim it. Exactly one approval, one claim and
// one approved event must come out.
func ProcessRace(t *testing.T, inst Instance, spawn func(env []string) ([]byte, error)) {
	s := inst.Store
	r := newRun(t, s, "parent")
	a := newApproval(t, s, r.ID, 1, false, time.Now().Add(time.Hour))
	start := time.Now().Add(3 * time.Second).UnixNano()
	var wg sync.WaitGroup
	results := make([]ChildResult, 2)
	for i := range 2 {
		wg.Go(func() {
			out, err := spawn([]string{EnvChild + "=" + fmt.Sprint(i), envApproval + "=" + a.ID, envStart + "=" + fmt.Sprint(start)})
			if !assert.NoError(t, err, "child %d: %s", i, out) {
				return
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			for _, l := range lines {
				if strings.HasPrefix(l, "RESULT ") {
					assert.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(l, "RESULT ")), &results[i]))
				}
			}
		})
	}
	wg.Wait()
	var total ChildResult
	for _, r := range results {
		total.Approved += r.Approved
		total.VoteConflicts += r.VoteConflicts
		total.Claimed += r.Claimed
		total.ClaimConflicts += r.ClaimConflicts
		total.Other += r.Other
	}
	t.Logf("children: %+v", results)
	assert.Equal(t, ChildResult{Approved: 1, VoteConflicts: 99, Claimed: 1, ClaimConflicts: 99}, total)
	assert.Len(t, events(t, s, audit.KindApproved, "approval_id", a.ID), 1)
	assert.Len(t, events(t, s, audit.KindRelief, "approval_id", a.ID), 1)
	xs, err := s.Executions(ctxT(t), r.ID)
	require.NoError(t, err)
	assert.Len(t, xs, 1)
	rep := verify(t, s, nil)
	assert.True(t, rep.OK, rep.String())
}

// ProcessRaceChild is the child side of ProcessRace and ProcessGuardRace; it
// returns false when this process is not a race child. It prints "RESULT {json}".
func ProcessRaceChild(t *testing.T, open func() (store.Store, error)) bool {
	who := os.Getenv(EnvChild)
	if who == "" {
		return false
	}
	s, err := open()
	require.NoError(t, err)
	defer s.Close()
	if os.Getenv(envMode) == modeGuard {
		guardChild(t, s, who)
		return true
	}
	var startNS int64
	fmt.Sscan(os.Getenv(envStart), &startNS)
	time.Sleep(time.Until(time.Unix(0, startNS)))
	id := os.Getenv(envApproval)
	ctx := context.Background()
	var res ChildResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			v := incident.Actor{ID: fmt.Sprintf("P%s-U%02d", who, i), Name: fmt.Sprintf("p%s-user%02d", who, i)}
			_, verr := s.Vote(ctx, id, v, store.RoleApprover, incident.Approve, digest, time.Now())
			_, cerr := s.ClaimRelief(ctx, id, "process-"+who, digest)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case verr == nil:
				res.Approved++
			case errors.Is(verr, incident.ErrConflict):
				res.VoteConflicts++
			default:
				res.Other++
				fmt.Fprintln(os.Stderr, "vote:", verr)
			}
			var ce *store.ClaimError
			switch {
			case cerr == nil:
				res.Claimed++
			case errors.As(cerr, &ce):
				res.ClaimConflicts++
			case errors.Is(cerr, incident.ErrNotAllowed):
				// Claimed before any vote committed: try again until decided.
				for errors.Is(cerr, incident.ErrNotAllowed) {
					time.Sleep(time.Millisecond)
					_, cerr = s.ClaimRelief(ctx, id, "process-"+who, digest)
				}
				if cerr == nil {
					res.Claimed++
				} else if errors.As(cerr, &ce) {
					res.ClaimConflicts++
				} else {
					res.Other++
				}
			default:
				res.Other++
				fmt.Fprintln(os.Stderr, "claim:", cerr)
			}
		})
	}
	wg.Wait()
	b, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", b)
	return true
}
