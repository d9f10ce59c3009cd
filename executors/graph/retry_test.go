package graph

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
	"github.com/ndrbot/ndrbot/incident"
)

func TestBackoffEqualJitter(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{MaxAttempts: 8, BaseDelay: time.Second, MaxDelay: 8 * time.Second}
	tests := []struct {
		retry    int
		min, max time.Duration // [d/2, d)
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{4, 4 * time.Second, 8 * time.Second},
		{5, 4 * time.Second, 8 * time.Second}, // capped at MaxDelay
		{9, 4 * time.Second, 8 * time.Second},
	}
	for _, tt := range tests {
		lo, hi := p.wait(tt.retry, func() float64 { return 0 }), p.wait(tt.retry, func() float64 { return 0.999999 })
		assert.Equal(t, tt.min, lo, "retry %d, no jitter", tt.retry)
		assert.InDelta(t, float64(tt.max), float64(hi), float64(time.Millisecond), "retry %d, full jitter", tt.retry)
	}
	// Each range starts where the previous one ends: waits never shrink before the cap.
	for n := 1; n < 4; n++ {
		assert.GreaterOrEqual(t, p.wait(n+1, func() float64 { return 0 }), p.wait(n, func() float64 { return 0.999999 }))
	}
	// The real jitter source spreads waits.
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[p.wait(3, defaultRand)] = true
	}
	assert.Greater(t, len(seen), 10, "jitter does not vary")
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 15, 0, 5, 19, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"2", 2 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"1.5", 1500 * time.Millisecond},
		{"0", 0},
		{"-3", 0},
		{"Fri, 15 May 2026 00:05:29 GMT", 10 * time.Second},
		{"Friday, 15-May-26 00:05:24 GMT", 5 * time.Second},
		{"Fri, 15 May 2026 00:00:00 GMT", 0}, // in the past
		{"soon", 0},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, parseRetryAfter(tt.in, now), "Retry-After %q", tt.in)
	}
}

func TestSameClockUTC(t *testing.T) {
	t.Parallel()
	// innerError.date "2026-05-15T00:05:19" parsed by kiota in a UTC+5 process.
	local := time.Date(2026, 5, 15, 0, 5, 19, 0, time.FixedZone("UTC+5", 5*3600))
	assert.Equal(t, "2026-05-15T00:05:19Z", sameClockUTC(local).Format(time.RFC3339))
}

// gaps returns the intervals between consecutive requests.
func gaps(reqs []graphfake.Request) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(reqs); i++ {
		out = append(out, reqs[i].Time.Sub(reqs[i-1].Time))
	}
	return out
}

// A 503 storm without Retry-After that clears after N failures: the step succeeds,
// and the attempts are spaced by growing waits (75, 150, 300 ms at jitter 0.5).
func TestStormThatClears(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 4} {
		t.Run(strings.Repeat("503,", n)+"200", func(t *testing.T) {
			t.Parallel()
			var retried []int
			h := newHarness(t, nil, nil, WithRetried(func(status int) { retried = append(retried, status) }))
			require.NoError(t, h.fake.SetIssues(issuesPage(t)))
			h.fake.AddFault(graphfake.Fault{Path: "/admin/serviceAnnouncement/issues", Times: n})

			out, err := h.run(t, CheckServiceHealth, nil, 10*time.Second)
			require.NoError(t, err)
			var rows []ServiceHealthIssue
			decode(t, out, &rows)
			assert.Len(t, rows, 3)

			attempts := h.fake.GraphRequests(http.MethodGet, "/admin/serviceAnnouncement/issues")[:n+1]
			g := gaps(attempts)
			require.Len(t, g, n)
			for i, gap := range g {
				want := fastRetry.wait(i+1, func() float64 { return 0.5 })
				assert.GreaterOrEqual(t, gap, want, "wait before retry %d", i+1)
				if i > 0 {
					assert.Greater(t, gap, g[i-1], "wait %d did not grow: %v", i+1, g)
				}
			}
			// Every attempt is a new request with its own client-request-id.
			ids := map[string]bool{}
			for _, r := range attempts {
				ids[r.Header.Get("client-request-id")] = true
			}
			assert.Len(t, ids, n+1)
			assert.Contains(t, h.logs.String(), "graph request retried")
			assert.Equal(t, slices.Repeat([]int{http.StatusServiceUnavailable}, n), retried, "each retry is told (the metrics)")
		})
	}
}

// A storm that never clears ends in a RequestError that carries the ids support
// asks for, inside the action's deadline — also when Graph sends the ids only in
// the body, as in the seed incident.
func TestStormThatNeverClears(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		timeout      time.Duration
		omitHeaders  bool
		wantDeadline bool
	}{
		{"deadline stops the retries", time.Second, false, true},
		{"seed: no headers, ids in innerError", time.Second, true, true},
		{"attempts run out first", 5 * time.Second, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil, nil)
			h.fake.AddFault(graphfake.Fault{Path: "/subscriptions", Times: -1, OmitHeaders: tt.omitHeaders})
			start := time.Now()
			out, err := h.run(t, CheckSubscriptions, nil, tt.timeout)
			elapsed := time.Since(start)
			require.Error(t, err)
			assert.Less(t, elapsed, tt.timeout, "returned after the deadline")

			var re *RequestError
			require.ErrorAs(t, err, &re)
			sent := h.fake.GraphRequests(http.MethodGet, "/subscriptions")
			assert.Equal(t, http.StatusServiceUnavailable, re.Status)
			assert.Equal(t, "ExtensionError", re.Code)
			assert.Contains(t, re.Message, "ServiceUnavailable")
			assert.Equal(t, len(sent), re.Attempts)
			assert.Equal(t, tt.wantDeadline, re.Deadline)
			if !tt.wantDeadline {
				assert.Equal(t, fastRetry.MaxAttempts, re.Attempts)
			} else {
				assert.GreaterOrEqual(t, re.Attempts, 3)
			}
			assert.Regexp(t, `^[0-9a-f-]{36}$`, re.RequestID)
			assert.Equal(t, sent[len(sent)-1].Header.Get("client-request-id"), re.ClientRequestID, "the last attempt's client-request-id")
			assert.WithinDuration(t, time.Now().UTC(), re.Date, time.Minute)
			assert.True(t, errors.Is(err, incident.ErrUnavailable))
			for _, want := range []string{"503", "ExtensionError", "request-id " + re.RequestID, "client-request-id " + re.ClientRequestID, "date " + re.Date.Format(time.RFC3339)} {
				assert.Contains(t, err.Error(), want)
			}
			assert.Equal(t, err.Error(), out.Stderr)
		})
	}
}

// 429 with Retry-After: 2 — no retry before 2 s.
func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil)
	h.fake.AddFault(graphfake.Fault{Path: "/subscriptions", Status: http.StatusTooManyRequests, Code: "TooManyRequests",
		Message: "Too many requests.", RetryAfter: "2", Times: 1})
	_, err := h.run(t, CheckSubscriptions, nil, 10*time.Second)
	require.NoError(t, err)
	sent := h.fake.GraphRequests(http.MethodGet, "/subscriptions")
	require.Len(t, sent, 2)
	assert.GreaterOrEqual(t, sent[1].Time.Sub(sent[0].Time), 2*time.Second)
}

// A Retry-After longer than the time left is not waited for.
func TestRetryAfterBeyondDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil)
	h.fake.AddFault(graphfake.Fault{Path: "/subscriptions", Status: http.StatusTooManyRequests, Code: "TooManyRequests",
		Message: "Too many requests.", RetryAfter: "30", Times: -1})
	start := time.Now()
	_, err := h.run(t, CheckSubscriptions, nil, 3*time.Second)
	assert.Less(t, time.Since(start), time.Second, "waited for a Retry-After past the deadline")
	var re *RequestError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusTooManyRequests, re.Status)
	assert.Equal(t, 1, re.Attempts)
	assert.True(t, re.Deadline)
	assert.Contains(t, err.Error(), "stopped by the step deadline")
}

func TestConnectionResets(t *testing.T) {
	t.Parallel()
	t.Run("a read is retried", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, nil)
		h.fake.AddFault(graphfake.Fault{Method: http.MethodGet, Path: "/subscriptions", Reset: true, Times: 2})
		_, err := h.run(t, CheckSubscriptions, nil, 10*time.Second)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, len(h.fake.GraphRequests(http.MethodGet, "/subscriptions")), 3)
	})
	// A reset POST may have been processed: it is repeated only after listing the
	// subscriptions shows Graph did not create it (each POST after the first follows
	// a GET /subscriptions), never straight away.
	t.Run("a create is not repeated without looking", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, nil)
		h.fake.AddFault(graphfake.Fault{Method: http.MethodPost, Path: "/subscriptions", Reset: true, Times: -1})
		_, err := h.run(t, CheckRecreateSubscription, map[string]any{
			"resource": "users/postmaster@contoso.com/mailFolders('Inbox')/messages", "change_type": "created",
			"notification_url": "https://hooks.contoso.com/notify", "client_state": "fresh", "reconcile": false,
		}, 10*time.Second)
		var re *RequestError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, 0, re.Status)
		assert.Equal(t, "ConnectionReset", re.Code)
		assert.NotEmpty(t, re.ClientRequestID)
		assert.True(t, errors.Is(err, executors.ErrUnreachable))
		assert.Contains(t, err.Error(), "Graph lists no subscription it created")
		var seq []string
		for _, r := range h.fake.GraphRequests("", "/subscriptions") {
			seq = append(seq, r.Method)
		}
		require.NotEmpty(t, seq)
		assert.Equal(t, "GET", seq[0], "looked before the first create")
		for i := 1; i < len(seq); i++ {
			if seq[i] == "POST" {
				assert.Equal(t, "GET", seq[i-1], "a POST straight after a POST: %v", seq)
			}
		}
		assert.Empty(t, h.fake.Subscriptions())
	})
}

// Answers that retrying cannot change are not retried.
func TestNotRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		code   string
		is     error
	}{
		{http.StatusBadRequest, "BadRequest", nil},
		{http.StatusForbidden, "Authorization_RequestDenied", incident.ErrNotAllowed},
		{http.StatusNotFound, "ResourceNotFound", incident.ErrNotFound},
		{http.StatusInternalServerError, "InternalServerError", nil},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil, nil)
			h.fake.AddFault(graphfake.Fault{Path: "/subscriptions", Status: tt.status, Code: tt.code, Message: "no", Times: -1})
			_, err := h.run(t, CheckSubscriptions, nil, 10*time.Second)
			var re *RequestError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tt.status, re.Status)
			assert.Equal(t, 1, re.Attempts)
			assert.Len(t, h.fake.GraphRequests("", "/subscriptions"), 1)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
		})
	}
}
