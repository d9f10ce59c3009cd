package observe

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

// Metrics counts what this process did. Names follow Prometheus' conventions:
// ndrbot_ prefix, _total for counters, base units (_seconds).
type Metrics struct {
	steps       *prometheus.HistogramVec
	stepErrors  *prometheus.CounterVec
	findings    *prometheus.CounterVec
	reliefs     *prometheus.CounterVec
	escalations prometheus.Counter
	slackErrors *prometheus.CounterVec
	slack429s   *prometheus.CounterVec
	leader      *prometheus.GaugeVec
	retries     *prometheus.CounterVec
	watchPolls  *prometheus.CounterVec
	watchNDRs   *prometheus.CounterVec
	watchLag    prometheus.Gauge
	watchLast   prometheus.Gauge
}

// NewMetrics registers the process's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ndrbot_step_duration_seconds", Help: "Diagnostic and verification steps by executor kind, step and outcome.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"executor", "step", "status"}),
		stepErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ndrbot_executor_errors_total", Help: "Steps that did not complete (failed or timed out), by executor kind and outcome.",
		}, []string{"executor", "status"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ndrbot_findings_total", Help: "Findings raised, by severity.",
		}, []string{"severity"}),
		reliefs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ndrbot_reliefs_total", Help: "Reliefs run by this process, by relief and outcome (ok, failed).",
		}, []string{"relief", "outcome"}),
		escalations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ndrbot_escalations_total", Help: "Escalation summaries raised.",
		}),
		slackErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ndrbot_slack_api_errors_total", Help: "Slack Web API calls that failed, by method (rate limits included).",
		}, []string{"method"}),
		slack429s: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ndrbot_slack_ratelimited_total", Help: "Slack Web API calls answered 429, by method.",
		}, []string{"method"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ndrbot_keeper_leader", Help: "1 while this process holds the lease of a once-per-deployment work and runs it, else 0 (sum over replicas: 1).",
		}, []string{"work"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ndrbot_executor_retries_total", Help: "Requests an executor sent again after a transient answer (Graph, Exchange Online), by executor kind and HTTP status (0: the connection dropped).",
		}, []string{"executor", "status"}),
		watchPolls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ndrbot_watch_polls_total", Help: "Delta rounds of the NDR watch on this process, by outcome (ok, failed).",
		}, []string{"outcome"}),
		watchNDRs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ndrbot_watch_ndr_failures_total", Help: "Failed recipients of the NDRs the watch counted, by enhanced status code.",
		}, []string{"code"}),
		watchLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ndrbot_watch_lag_seconds", Help: "How long the oldest new message of the last round that found any waited in the mailbox before the watch read it.",
		}),
		watchLast: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ndrbot_watch_last_success_timestamp_seconds", Help: "When the NDR watch last completed a delta round (Unix time); alert on time() minus it.",
		}),
	}
	reg.MustRegister(m.steps, m.stepErrors, m.findings, m.reliefs, m.escalations, m.slackErrors, m.slack429s, m.leader,
		m.retries, m.watchPolls, m.watchNDRs, m.watchLag, m.watchLast)
	return m
}

// Observe counts one engine event; it is a playbooks.Observer.
func (m *Metrics) Observe(_ context.Context, ev incident.Event) {
	switch ev.Kind {
	case incident.EventStepFinished:
		s := ev.Step
		m.steps.WithLabelValues(s.Executor, s.Step, string(s.Status)).Observe(s.Duration.Seconds())
		if s.Status == incident.StepFailed || s.Status == incident.StepTimeout {
			m.stepErrors.WithLabelValues(s.Executor, string(s.Status)).Inc()
		}
	case incident.EventFinding:
		m.findings.WithLabelValues(string(ev.Finding.Severity)).Inc()
	case incident.EventReliefFinished:
		outcome := "ok"
		if !ev.Relief.OK {
			outcome = "failed"
		}
		m.reliefs.WithLabelValues(ev.Relief.Relief, outcome).Inc()
	case incident.EventEscalation:
		m.escalations.Inc()
	}
}

// SlackCall counts one failed Slack Web API call (the Poster's observer).
func (m *Metrics) SlackCall(method string, rateLimited bool) {
	method, _, _ = strings.Cut(method, " (") // "files upload v2 (name)": the method, not the file
	m.slackErrors.WithLabelValues(method).Inc()
	if rateLimited {
		m.slack429s.WithLabelValues(method).Inc()
	}
}

// Leader records whether this process holds work's lease (a keeper's OnChange).
// Call it with false when the keeper starts, so every replica reports the work.
func (m *Metrics) Leader(work string, held bool) {
	v := 0.0
	if held {
		v = 1
	}
	m.leader.WithLabelValues(work).Set(v)
}

// Retried counts one request an executor sent again (executors.Env.Retried).
func (m *Metrics) Retried(kind string, status int) {
	m.retries.WithLabelValues(kind, strconv.Itoa(status)).Inc()
}

// WatchPoll records one delta round of the NDR watch: whether it failed, the
// failures it counted by code, and, when it found new messages, their lag.
func (m *Metrics) WatchPoll(failed bool, codes map[string]int, fresh bool, lag time.Duration, at time.Time) {
	if failed {
		m.watchPolls.WithLabelValues("failed").Inc()
	} else {
		m.watchPolls.WithLabelValues("ok").Inc()
		m.watchLast.Set(float64(at.UnixNano()) / 1e9)
	}
	for code, n := range codes {
		m.watchNDRs.WithLabelValues(code).Add(float64(n))
	}
	if fresh {
		m.watchLag.Set(lag.Seconds())
	}
}

// StatsSource is the part of the store the deployment-wide gauges read.
type StatsSource interface {
	Stats(ctx context.Context) (store.Stats, error)
}

// StoreCollector reads the store at each scrape: runs by playbook and state,
// approvals by status, relief executions by relief and state, the outbox's
// backlog and the age of its oldest post. Every replica reports the same
// figures (they share the database): aggregate with max, not sum.
type StoreCollector struct {
	src     StatsSource
	log     *slog.Logger
	timeout time.Duration
	now     func() time.Time

	runs, approvals, executions, pending, oldest, up *prometheus.Desc
}

// NewStoreCollector reads src; register it with the registry /metrics serves.
func NewStoreCollector(src StatsSource, log *slog.Logger) *StoreCollector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &StoreCollector{src: src, log: log, timeout: 5 * time.Second, now: time.Now,
		runs:       prometheus.NewDesc("ndrbot_runs", "Runs in the store by playbook and state.", []string{"playbook", "state"}, nil),
		approvals:  prometheus.NewDesc("ndrbot_approvals", "Approval requests in the store by status.", []string{"status"}, nil),
		executions: prometheus.NewDesc("ndrbot_relief_executions", "Relief executions in the store by relief and state.", []string{"relief", "state"}, nil),
		pending:    prometheus.NewDesc("ndrbot_outbox_pending", "Chat posts stored and not yet delivered.", nil, nil),
		oldest:     prometheus.NewDesc("ndrbot_outbox_oldest_pending_seconds", "Age of the oldest undelivered chat post (0 when none).", nil, nil),
		up:         prometheus.NewDesc("ndrbot_store_up", "1 when the store answered the last scrape.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *StoreCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.runs, c.approvals, c.executions, c.pending, c.oldest, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *StoreCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.src.Stats(ctx)
	if err != nil {
		c.log.Warn("metrics: reading the store", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for k, n := range st.Runs {
		ch <- prometheus.MustNewConstMetric(c.runs, prometheus.GaugeValue, float64(n), k.Playbook, k.State)
	}
	for s, n := range st.Approvals {
		ch <- prometheus.MustNewConstMetric(c.approvals, prometheus.GaugeValue, float64(n), s)
	}
	for k, n := range st.Executions {
		ch <- prometheus.MustNewConstMetric(c.executions, prometheus.GaugeValue, float64(n), k.Relief, k.State)
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.OutboxPending))
	age := 0.0
	if !st.OldestPending.IsZero() {
		age = c.now().Sub(st.OldestPending).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
