package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/store"
)

// Load returns a run for more work — a vote, a relief, an expiry — held for the
// caller (Release it): from memory while another holder works on it, else
// rebuilt from the store with everything it had in memory: steps, findings,
// proposals, approval requests, relief executions with their outcomes and
// verifications, and escalations raised. A click may land on another replica,
// or after a restart, and must find the same run.
func (rs *Runs) Load(ctx context.Context, stored store.Run) (*Run, error) {
	if r, ok := rs.lookup(stored.ID); ok {
		return r, nil
	}
	pb, params, err := rs.playbookOf(stored)
	if err != nil {
		return nil, err
	}
	rec, approvals, err := rs.record(ctx, stored.ID)
	if err != nil {
		return nil, fmt.Errorf("loading run %s: %w", stored.ID, err)
	}
	run := playbooks.RestoreRun(stored.ID, pb, params, stored.CreatedAt, rec, nil)
	return rs.hold(rs.wire(run, stored.Requester, stored.Origin, stored.Chat.Channel, false, approvals)), nil
}

// record reads back what the store kept of a run.
func (rs *Runs) record(ctx context.Context, id string) (playbooks.Record, []store.Approval, error) {
	st := rs.opts.Store
	var rec playbooks.Record
	steps, err := st.Steps(ctx, id)
	if err != nil {
		return rec, nil, err
	}
	for _, s := range steps {
		rec.Steps = append(rec.Steps, s.Result) // later phases overwrite earlier ones
	}
	if rec.Findings, err = st.Findings(ctx, id); err != nil {
		return rec, nil, err
	}
	if rec.Proposals, err = st.Proposals(ctx, id); err != nil {
		return rec, nil, err
	}
	for _, p := range rec.Proposals {
		wholeNumbers(p.Args)
	}
	approvals, err := st.Approvals(ctx, id)
	if err != nil {
		return rec, nil, err
	}
	verified := map[string]incident.ReliefResult{} // relief → its latest verification
	for e, err := range st.Events(ctx, audit.Filter{RunID: id, Kinds: []audit.Kind{audit.KindEscalation, audit.KindVerification}}) {
		if err != nil {
			return rec, nil, err
		}
		switch e.Kind {
		case audit.KindEscalation:
			var esc incident.Escalation
			if err := json.Unmarshal(e.Payload, &esc); err != nil {
				return rec, nil, fmt.Errorf("escalation event %d: %w", e.Seq, err)
			}
			rec.Escalations = append(rec.Escalations, esc)
		case audit.KindVerification:
			var res incident.ReliefResult
			if err := json.Unmarshal(e.Payload, &res); err != nil {
				return rec, nil, fmt.Errorf("verification event %d: %w", e.Seq, err)
			}
			verified[res.Relief] = res
		}
	}
	execs, err := st.Executions(ctx, id)
	if err != nil {
		return rec, nil, err
	}
	for _, x := range execs {
		rec.Reliefs = append(rec.Reliefs, reliefResult(x, verified))
	}
	return rec, approvals, nil
}

// reliefResult is an execution as the engine reported it. Its verdict comes
// from its verification event; the rest from its row, since the event's copy
// went through the audit trail's redaction. One still running, or whose
// outcome is unknown, is not OK: it is never run again.
func reliefResult(x store.Execution, verified map[string]incident.ReliefResult) incident.ReliefResult {
	res := incident.ReliefResult{Relief: x.ReliefID, Hosts: x.Hosts, OK: x.State == incident.ExecOK,
		Error: x.Error, Output: x.Output, Started: x.StartedAt}
	if !x.FinishedAt.IsZero() {
		res.Duration = x.FinishedAt.Sub(x.StartedAt)
	}
	if v, ok := verified[x.ReliefID]; ok {
		res.Verified = v.Verified
		res.Started, res.Duration = v.Started, v.Duration
	}
	switch x.State {
	case incident.ExecRunning:
		if res.Error == "" {
			res.Error = "still running under " + x.Owner
		}
	case incident.ExecUnknown:
		if res.Error == "" {
			res.Error = "outcome unknown: the process running it stopped"
		}
	}
	return res
}

// wholeNumbers turns the float64 a JSON round trip makes of every number back
// into the int the engine computed, where the value is whole: a relief's
// arguments read back from the store render as they did when proposed
// (30, not 30.0 or 3e+01).
func wholeNumbers(v any) any {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int(x)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = wholeNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = wholeNumbers(e)
		}
	}
	return v
}
