package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/slack/slackfake"
)

var opsAddrRE = regexp.MustCompile(`health and metrics listening.*addr=(\S+)`)

// ndrbot serve answers /healthz, /readyz (store and Slack) and /metrics in Socket
// Mode; after a diagnosis the metrics count its steps and the store's runs.
func TestServeHealthAndMetrics(t *testing.T) {
	t.Chdir(t.TempDir())
	fake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	defer fake.Close()
	s := startServe(t, fake, "--lab", "healthy")
	var addr string
	// Polled: the fake's WaitFor re-checks only when Slack traffic happens.
	require.Eventually(t, func() bool {
		m := opsAddrRE.FindStringSubmatch(s.out.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, 30*time.Second, 20*time.Millisecond, "the operations endpoint never listened:\n%s", s.out.String())
	get := func(path string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	code, body := get("/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)

	require.Eventually(t, func() bool { c, _ := get("/readyz"); return c == http.StatusOK }, 20*time.Second, 50*time.Millisecond)
	_, body = get("/readyz")
	var ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &ready))
	assert.Equal(t, map[string]string{"store": "ok", "slack": "ok"}, ready.Checks)

	s.diagnose(t)
	var metrics string
	require.Eventually(t, func() bool {
		_, metrics = get("/metrics")
		return strings.Contains(metrics, `ndrbot_runs{playbook="ndr-5.5.4",state="finished"} 1`)
	}, 30*time.Second, 100*time.Millisecond, "no finished run in /metrics:\n%s", metrics)
	for _, want := range []string{
		`ndrbot_step_duration_seconds_count{executor="lab",status="ok",step="queues"} 1`,
		`ndrbot_store_up 1`,
		`ndrbot_outbox_pending `,
		`go_goroutines `,
	} {
		assert.Contains(t, metrics, want)
	}
	assert.Equal(t, 0, s.stop(t))
	// Every part names itself once: a key given twice confuses log pipelines.
	for _, line := range strings.Split(s.out.String(), "\n") {
		assert.LessOrEqual(t, strings.Count(line, " component="), 1, "component twice: %s", line)
	}
}
