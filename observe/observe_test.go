package observe

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

type stats struct {
	st  store.Stats
	err error
}

func (s stats) Stats(context.Context) (store.Stats, error) { return s.st, s.err }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	return rec.Code, string(body)
}

func TestReadyzNamesWhatIsNotReady(t *testing.T) {
	reg := prometheus.NewRegistry()
	slackUp := false
	h := NewServer(reg, []Check{
		{Name: "store", Check: func(context.Context) error { return nil }},
		{Name: "slack", Check: func(context.Context) error {
			if !slackUp {
				return errors.New("not connected to Slack")
			}
			return nil
		}},
	}, nil).Handler()

	code, body := get(t, h, "/healthz")
	assert.Equal(t, http.StatusOK, code, "alive even when not ready")
	code, body = get(t, h, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.JSONEq(t, `{"ready":false,"checks":{"store":"ok","slack":"not connected to Slack"}}`, body)
	slackUp = true
	code, _ = get(t, h, "/readyz")
	assert.Equal(t, http.StatusOK, code)
}

func TestMetricsCountEventsAndReadTheStore(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	c := NewStoreCollector(stats{st: store.Stats{
		Runs:          map[store.RunKey]int{{Playbook: "ndr-5.5.4", State: "escalated"}: 2},
		Approvals:     map[string]int{"pending": 1},
		Executions:    map[store.ExecutionKey]int{{Relief: "restart-transport", State: "succeeded"}: 1},
		OutboxPending: 3, OldestPending: now.Add(-90 * time.Second),
	}}, nil)
	c.now = func() time.Time { return now }
	reg.MustRegister(c)
	ctx := context.Background()
	m.Observe(ctx, incident.Event{Kind: incident.EventStepFinished, Step: &incident.StepResult{Step: "queues", Executor: "psrp", Status: incident.StepTimeout, Duration: 2 * time.Second}})
	m.Observe(ctx, incident.Event{Kind: incident.EventReliefFinished, Relief: &incident.ReliefResult{Relief: "restart-transport", OK: false}})
	m.Observe(ctx, incident.Event{Kind: incident.EventEscalation, Escalation: &incident.Escalation{}})
	m.SlackCall("files upload v2 (output.txt)", true)
	m.Leader("ndr-watch", false)
	m.Leader("approval-sweeper", false)
	m.Leader("approval-sweeper", true)
	m.Retried("graph", 503)
	m.Retried("graph", 503)
	m.Retried("exo", 429)
	m.WatchPoll(false, map[string]int{"5.5.4": 3, "4.4.7": 1}, true, 95*time.Second, now)
	m.WatchPoll(false, map[string]int{"5.5.4": 2}, false, 0, now)
	m.WatchPoll(true, nil, false, 0, now.Add(time.Minute))

	_, body := get(t, NewServer(reg, nil, nil).Handler(), "/metrics")
	for _, want := range []string{
		`ndrbot_step_duration_seconds_count{executor="psrp",status="timeout",step="queues"} 1`,
		`ndrbot_executor_errors_total{executor="psrp",status="timeout"} 1`,
		`ndrbot_reliefs_total{outcome="failed",relief="restart-transport"} 1`,
		`ndrbot_escalations_total 1`,
		`ndrbot_slack_ratelimited_total{method="files upload v2"} 1`,
		`ndrbot_runs{playbook="ndr-5.5.4",state="escalated"} 2`,
		`ndrbot_approvals{status="pending"} 1`,
		`ndrbot_relief_executions{relief="restart-transport",state="succeeded"} 1`,
		`ndrbot_outbox_pending 3`,
		`ndrbot_outbox_oldest_pending_seconds 90`,
		`ndrbot_store_up 1`,
		`ndrbot_keeper_leader{work="ndr-watch"} 0`,
		`ndrbot_keeper_leader{work="approval-sweeper"} 1`,
		`ndrbot_executor_retries_total{executor="graph",status="503"} 2`,
		`ndrbot_executor_retries_total{executor="exo",status="429"} 1`,
		`ndrbot_watch_polls_total{outcome="ok"} 2`,
		`ndrbot_watch_polls_total{outcome="failed"} 1`,
		`ndrbot_watch_ndr_failures_total{code="5.5.4"} 5`,
		`ndrbot_watch_ndr_failures_total{code="4.4.7"} 1`,
		`ndrbot_watch_lag_seconds 95`,
		`ndrbot_watch_last_success_timestamp_seconds 1.7962992e+09`,
	} {
		assert.Contains(t, body, want)
	}
	assert.False(t, strings.Contains(body, "output.txt"), "a file name is not a label value")

	down := prometheus.NewRegistry()
	down.MustRegister(NewStoreCollector(stats{err: errors.New("connection refused")}, nil))
	_, body = get(t, NewServer(down, nil, nil).Handler(), "/metrics")
	assert.Contains(t, body, "ndrbot_store_up 0")
}
