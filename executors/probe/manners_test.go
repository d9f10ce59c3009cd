package probe

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
)

func TestSMTPMX(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		params    map[string]any
		exchanges []string
		prefs     []uint16
		status    string
		accepted  int64
	}{
		{name: "best MX only by default", params: map[string]any{"domain": "contoso.test"},
			exchanges: []string{"mx1.contoso.test"}, prefs: []uint16{10}, status: "ok", accepted: 1},
		{name: "max_hosts 2", params: map[string]any{"domain": "contoso.test", "max_hosts": 2},
			exchanges: []string{"mx1.contoso.test", "mx2.contoso.test"}, prefs: []uint16{10, 20}, status: "ok", accepted: 2},
		{name: "max_hosts above the MX count", params: map[string]any{"domain": "contoso.test", "max_hosts": "5"},
			exchanges: []string{"mx1.contoso.test", "mx2.contoso.test"}, prefs: []uint16{10, 20}, status: "ok", accepted: 2},
		{name: "no MX: the domain is its own MX (RFC 5321 §5.1)", params: map[string]any{"domain": "nomx.test"},
			exchanges: []string{"nomx.test"}, prefs: []uint16{0}, status: "ok", accepted: 1},
		{name: "nxdomain", params: map[string]any{"domain": "nx.test"}, exchanges: []string{""}, prefs: []uint16{0}, status: "dns-error"},
		{name: "MX lookup times out", params: map[string]any{"domain": "slow.test"}, exchanges: []string{""}, prefs: []uint16{0}, status: "dns-error"},
		{name: "null MX", params: map[string]any{"domain": "nullmx.test"}, exchanges: []string{""}, prefs: []uint16{0}, status: "null-mx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeSMTP(t, modeNoTLS)
			e := newTestExec(t, newTestDNS(t), nil, WithSMTPPort(f.port()), WithDNSTimeout(500*time.Millisecond))
			rows := decode[[]MXProbe](t, runCheck(t, e, "", "smtp-mx", tt.params))
			require.Len(t, rows, len(tt.exchanges))
			for i, r := range rows {
				assert.Equal(t, tt.exchanges[i], r.Exchange)
				assert.Equal(t, tt.prefs[i], r.Preference)
				assert.NotEmpty(t, r.Domain)
				assert.Equal(t, tt.status, r.Status, r.Error)
				assert.Equal(t, f.port(), r.Port)
				if tt.status == "ok" {
					assert.Equal(t, tt.exchanges[i], r.Host)
					assert.Equal(t, 220, r.Code)
					assert.Equal(t, f.addr(), r.Address)
				} else {
					assert.NotEmpty(t, r.Error)
				}
			}
			assert.Equal(t, tt.accepted, f.accepted.Load())
		})
	}
}

// The seed's point: diagnosing "421 too many connections" must not add connections.
// Fifty concurrent diagnoses of the same domain open at most burst connections, one
// at a time, and all get an answer. In waves, later runs arrive after the first
// probe finished: only the rate limit and the cache keep them off the server.
func TestConcurrentRunsShareOneConnection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  []Option
		waves int
		burst int64
	}{
		{name: "defaults: one connection per 10s", waves: 1, burst: 1},
		{name: "defaults, five waves of ten", waves: 5, burst: 1},
		{name: "burst 3, five waves", opts: []Option{WithRateLimit(time.Hour, 3)}, waves: 5, burst: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// hold keeps a connection open while concurrent runs arrive.
			f := newFakeSMTP(t, modeNoTLS, func(f *fakeSMTP) { f.hold = 50 * time.Millisecond })
			e := newTestExec(t, newTestDNS(t), nil, append([]Option{WithSMTPPort(f.port())}, tt.opts...)...)

			const runs = 50
			outs := make([]executors.Output, runs)
			errs := make([]error, runs)
			perWave := runs / tt.waves
			for w := range tt.waves {
				var wg sync.WaitGroup
				for i := w * perWave; i < (w+1)*perWave; i++ {
					wg.Go(func() {
						outs[i], errs[i] = e.Run(context.Background(), "", executors.Action{Check: "smtp-mx", Params: map[string]any{"domain": "contoso.test"}})
					})
				}
				wg.Wait()
			}
			rows := make([][]MXProbe, runs)
			for i := range runs {
				require.NoError(t, errs[i])
				rows[i] = decode[[]MXProbe](t, outs[i])
			}

			accepted := f.accepted.Load()
			assert.GreaterOrEqual(t, accepted, int64(1))
			assert.LessOrEqual(t, accepted, tt.burst, "connections opened to the MX")
			assert.Equal(t, int64(1), f.peak.Load(), "never two connections at once")
			fresh, statuses := 0, map[string]int{}
			for i := range runs {
				require.Len(t, rows[i], 1)
				statuses[rows[i][0].Status]++
				if !rows[i][0].Cached {
					fresh++
				}
			}
			assert.Equal(t, map[string]int{"ok": runs}, statuses, "every run gets the observation")
			assert.Equal(t, int(accepted), fresh, "exactly the runs that connected report Cached=false")
		})
	}
}

// Different probes of one destination (tcp, smtp, smtp+STARTTLS) are serialized: the
// fake answers 421 as soon as a second connection is open, and never has to.
func TestOneConnectionAtATimePerDestination(t *testing.T) {
	t.Parallel()
	f := newFakeSMTP(t, modeOK, func(f *fakeSMTP) { f.maxConc = 1; f.hold = 20 * time.Millisecond })
	e := newTestExec(t, newTestDNS(t), []string{f.addr()},
		WithRateLimit(time.Nanosecond, 1000), WithCacheTTL(0), WithTLSConfig(f.pair.client))

	actions := []executors.Action{
		{Check: "smtp"}, {Check: "tcp"}, {Check: "smtp", Params: map[string]any{"starttls": true}},
	}
	const rounds = 4
	var wg sync.WaitGroup
	outs := make([]executors.Output, rounds*len(actions))
	errs := make([]error, len(outs))
	for i := range outs {
		wg.Go(func() { outs[i], errs[i] = e.Run(context.Background(), f.addr(), actions[i%len(actions)]) })
	}
	wg.Wait()
	statuses := make([]string, len(outs))
	for i := range outs {
		require.NoError(t, errs[i])
		statuses[i] = decode[struct{ Status string }](t, outs[i]).Status
	}
	assert.Equal(t, int64(1), f.peak.Load(), "concurrent connections seen by the server")
	assert.NotContains(t, statuses, "421")
	assert.GreaterOrEqual(t, f.accepted.Load(), int64(len(actions)), "each kind of probe connected")
}

// Rate limit and freshness follow the injected clock.
func TestRateLimitAndCache(t *testing.T) {
	t.Parallel()
	type step struct {
		advance  time.Duration
		status   string
		cached   bool
		accepted int64
	}
	tests := []struct {
		name  string
		opts  []Option
		steps []step
	}{
		{name: "defaults: reuse within 10s, new probe after", steps: []step{
			{0, "ok", false, 1},
			{5 * time.Second, "ok", true, 1},  // limit exceeded, result 5s old: reused
			{6 * time.Second, "ok", false, 2}, // 11s: a token is back
			{29 * time.Second, "ok", false, 3},
		}},
		{name: "result older than the TTL and no token: throttled", opts: []Option{WithRateLimit(10*time.Second, 1), WithCacheTTL(5 * time.Second)}, steps: []step{
			{0, "ok", false, 1},
			{3 * time.Second, "ok", true, 1},
			{4 * time.Second, "throttled", false, 1}, // 7s: stale and limited; no connection
			{4 * time.Second, "ok", false, 2},        // 11s
		}},
		{name: "burst 2", opts: []Option{WithRateLimit(time.Minute, 2)}, steps: []step{
			{0, "ok", false, 1},
			{time.Second, "ok", false, 2},
			{time.Second, "ok", true, 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeSMTP(t, modeNoTLS)
			clock := newFakeClock()
			e := newTestExec(t, newTestDNS(t), []string{f.addr()}, append([]Option{WithClock(clock)}, tt.opts...)...)
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				r := decode[SMTPResult](t, runCheck(t, e, f.addr(), "smtp", nil))
				assert.Equal(t, s.status, r.Status, "step %d", i)
				assert.Equal(t, s.cached, r.Cached, "step %d", i)
				assert.Equal(t, s.accepted, f.accepted.Load(), "step %d: connections", i)
				if s.status == "throttled" {
					assert.Contains(t, r.Error, "limit")
				}
			}
		})
	}
}

// The limiter is per destination and per Executor: another host is not held back.
func TestLimitsArePerDestination(t *testing.T) {
	t.Parallel()
	a, b := newFakeSMTP(t, modeNoTLS), newFakeSMTP(t, modeNoTLS)
	e := newTestExec(t, newTestDNS(t), []string{a.addr(), b.addr()}, WithClock(newFakeClock()))
	for _, f := range []*fakeSMTP{a, b} {
		r := decode[SMTPResult](t, runCheck(t, e, f.addr(), "smtp", nil))
		assert.Equal(t, "ok", r.Status)
		assert.False(t, r.Cached)
		assert.Equal(t, int64(1), f.accepted.Load())
	}
	other := newTestExec(t, newTestDNS(t), []string{a.addr()})
	r := decode[SMTPResult](t, runCheck(t, other, a.addr(), "smtp", nil))
	assert.False(t, r.Cached, "no state shared between executors")
	assert.Equal(t, int64(2), a.accepted.Load())
}

func TestGuardPrunesIdleDestinations(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	g := newGuard(clock, time.Second, 1, 2*time.Second)
	probe := func(context.Context) (int, bool) { return 1, true }
	for i := range pruneAbove {
		_, _, err := guarded(context.Background(), g, fmt.Sprintf("mx%d.contoso.test:25", i), "v", probe)
		require.NoError(t, err)
	}
	require.Len(t, g.dests, pruneAbove)
	clock.Advance(time.Second) // not idle long enough yet
	_, _, err := guarded(context.Background(), g, "new-1", "v", probe)
	require.NoError(t, err)
	assert.Len(t, g.dests, pruneAbove+1)
	clock.Advance(5 * time.Second)
	_, _, err = guarded(context.Background(), g, "new-2", "v", probe)
	require.NoError(t, err)
	assert.Len(t, g.dests, 1, "idle destinations forgotten, the new one kept")
}
