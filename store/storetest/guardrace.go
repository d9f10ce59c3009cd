package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

// Environment of a guard-race child (besides EnvChild and envApproval).
const (
	envMode    = "NDRBOT_STORETEST_MODE"    // modeGuard: ProcessRaceChild runs guardChild
	envBarrier = "NDRBOT_STORETEST_BARRIER" // the start barrier's directory
	envVoter   = "NDRBOT_STORETEST_VOTER"   // the approver's user id
	modeGuard  = "guard"
)

// GuardResult is what a guard-race child reports on stdout.
type GuardResult struct {
	Approval  string `json:"approval"`
	Vote      string `json:"vote"`                // the vote's outcome kind
	Execution string `json:"execution,omitempty"` // the execution its claim started
	// The guard's refusal of its claim, if any.
	GuardHost  string    `json:"guard_host,omitempty"`
	GuardOther string    `json:"guard_other,omitempty"`
	GuardUntil time.Time `json:"guard_until,omitzero"`
	Refusal    string    `json:"refusal,omitempty"`
	Err        string    `json:"err,omitempty"` // anything else
	// When its claim started and ended, to show how close the two were.
	ClaimStart int64 `json:"claim_start_ns"`
	ClaimEnd   int64 `json:"claim_end_ns"`
}

// ProcessGuardRace: one outage diagnosed in two channels, two runs, each with
// its own approval of restart-transport on the same host (30-minute cooldown).
// Two processes (spawn starts one with the extra env and returns its stdout)
// each approve one of them, then both claim at the same moment, past a start
// barrier: exactly one execution starts; the other claim is refused by the
// claim-time guard, and the audit trail holds one relief start and one
// claim-refused. Once the winner has finished, the loser is still refused, by
// the cooldown.
func ProcessGuardRace(t *testing.T, inst Instance, spawn func(env []string) ([]byte, error)) {
	s, ctx := inst.Store, ctxT(t)
	const host = "ex01.contoso.com"
	const cooldown = 30 * time.Minute
	var approvals [2]store.Approval
	for i, ch := range []string{"C0INC", "C0INC2"} {
		r, err := s.CreateRun(ctx, store.NewRun{Playbook: "ndr-5.5.4", PlaybookVersion: "sha256:abc", Requester: alice,
			Origin: "slack", Chat: store.ChatRef{Channel: ch}, Owner: "parent"})
		require.NoError(t, err)
		approvals[i], err = s.RequestApproval(ctx, store.NewApproval{RunID: r.ID, ReliefID: "restart-transport", Hosts: []string{host},
			Digest: digest, Required: 1, FourEyes: true, Requester: alice, ExpiresAt: time.Now().Add(time.Hour), Cooldown: cooldown})
		require.NoError(t, err)
	}

	barrier := t.TempDir()
	voters := []incident.Actor{bob, carol}
	results := make([]GuardResult, 2)
	var wg sync.WaitGroup
	var failed sync.Map
	for i := range 2 {
		wg.Go(func() {
			out, err := spawn([]string{EnvChild + "=" + strconv.Itoa(i), envMode + "=" + modeGuard, envApproval + "=" + approvals[i].ID,
				envBarrier + "=" + barrier, envVoter + "=" + voters[i].ID})
			if !assert.NoError(t, err, "child %d: %s", i, out) {
				failed.Store(i, true)
				return
			}
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if r, ok := strings.CutPrefix(l, "RESULT "); ok {
					assert.NoError(t, json.Unmarshal([]byte(r), &results[i]))
				}
			}
		})
	}
	// Start barrier: once both children have opened the store and approved,
	// "go" names a moment just ahead; both claim at that moment.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err0 := os.Stat(filepath.Join(barrier, "ready-0"))
		_, err1 := os.Stat(filepath.Join(barrier, "ready-1"))
		if err0 == nil && err1 == nil {
			break
		}
		n := 0
		failed.Range(func(any, any) bool { n++; return true })
		if n > 0 || time.Now().After(deadline) {
			t.Errorf("the children did not reach the start barrier (%d failed)", n)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	at := time.Now().Add(200 * time.Millisecond)
	tmp := filepath.Join(barrier, "go.tmp")
	require.NoError(t, os.WriteFile(tmp, []byte(strconv.FormatInt(at.UnixNano(), 10)), 0o600))
	require.NoError(t, os.Rename(tmp, filepath.Join(barrier, "go")))
	wg.Wait()
	t.Logf("children: %+v", results)
	if t.Failed() {
		return
	}

	t.Logf("the two claims started %s apart and took %s and %s",
		time.Duration(results[0].ClaimStart-results[1].ClaimStart).Abs(),
		time.Duration(results[0].ClaimEnd-results[0].ClaimStart), time.Duration(results[1].ClaimEnd-results[1].ClaimStart))
	var winner, loser *GuardResult
	for i := range results {
		r := &results[i]
		require.Empty(t, r.Err, "child %d", i)
		require.Equal(t, string(store.OutcomeApproved), r.Vote, "child %d approved its run's relief", i)
		if r.Execution != "" {
			require.Nil(t, winner, "two executions on %s: %+v", host, results)
			winner = r
		} else {
			loser = r
		}
	}
	require.NotNil(t, winner, "no claim won: %+v", results)
	require.NotNil(t, loser)
	assert.Equal(t, host, loser.GuardHost, "the loser met the guard on %s", host)
	assert.Equal(t, winner.Execution, loser.GuardOther, "the guard names the winner's execution")
	assert.Contains(t, loser.Refusal, "restart-transport not run:")

	// The audit trail: one relief start, one claim refused, and a sound chain.
	var starts, refused []audit.Event
	for _, a := range approvals {
		starts = append(starts, events(t, s, audit.KindRelief, "approval_id", a.ID)...)
		refused = append(refused, events(t, s, audit.KindClaimRefused, "approval_id", a.ID)...)
	}
	require.Len(t, starts, 1, "one relief started")
	assert.Contains(t, string(starts[0].Payload), winner.Execution)
	require.Len(t, refused, 1, "one claim refused")
	assert.Contains(t, string(refused[0].Payload), loser.Approval)
	assert.Contains(t, string(refused[0].Payload), host)
	for _, a := range approvals {
		xs, err := s.Executions(ctx, a.RunID)
		require.NoError(t, err)
		if a.ID == winner.Approval {
			assert.Len(t, xs, 1)
		} else {
			assert.Empty(t, xs, "nothing ran for the losing run")
		}
	}
	rep := verify(t, s, nil)
	assert.True(t, rep.OK, rep.String())

	// The restart finishes; the losing run is still refused, by the cooldown.
	x, err := s.FinishRelief(ctx, winner.Execution, store.ReliefOutcome{OK: true})
	require.NoError(t, err)
	_, err = s.ClaimRelief(ctx, loser.Approval, "parent", digest)
	var ge *store.GuardError
	require.ErrorAs(t, err, &ge)
	assert.WithinDuration(t, x.StartedAt.Add(cooldown), ge.Until, time.Millisecond)
	assert.Contains(t, err.Error(), "its cooldown lasts until")
}

// guardChild approves its approval, waits at the start barrier, claims the
// relief, and prints "RESULT {json}".
func guardChild(t *testing.T, s store.Store, who string) {
	ctx := context.Background()
	barrier := os.Getenv(envBarrier)
	res := GuardResult{Approval: os.Getenv(envApproval)}
	defer func() {
		b, _ := json.Marshal(res)
		fmt.Printf("RESULT %s\n", b)
	}()
	voter := incident.Actor{ID: os.Getenv(envVoter), Name: strings.ToLower(os.Getenv(envVoter))}
	out, err := s.Vote(ctx, res.Approval, voter, store.RoleApprover, incident.Approve, digest, time.Now())
	res.Vote = string(out.Kind)
	require.NoError(t, os.WriteFile(filepath.Join(barrier, "ready-"+who), nil, 0o600))
	if err != nil {
		res.Err = "vote: " + err.Error()
		return
	}
	var at time.Time
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, err := os.ReadFile(filepath.Join(barrier, "go"))
		if err == nil {
			ns, err := strconv.ParseInt(string(b), 10, 64)
			require.NoError(t, err)
			at = time.Unix(0, ns)
			break
		}
		if time.Now().After(deadline) {
			res.Err = "no start signal"
			return
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Until(at))
	res.ClaimStart = time.Now().UnixNano()
	x, err := s.ClaimRelief(ctx, res.Approval, "process-"+who, digest)
	res.ClaimEnd = time.Now().UnixNano()
	var ge *store.GuardError
	switch {
	case err == nil:
		res.Execution = x.ID
	case errors.As(err, &ge):
		res.GuardHost, res.GuardOther, res.GuardUntil, res.Refusal = ge.Host, ge.Other.ID, ge.Until, err.Error()
	default:
		res.Err = "claim: " + err.Error()
	}
}
