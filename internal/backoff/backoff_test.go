package backoff_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/ndrbot/ndrbot/internal/backoff"
)

func fixed(r float64) func() float64 { return func() float64 { return r } }

// top is a random value as close to 1 as rand's [0, 1) allows.
const top = 1 - 1.0/(1<<53)

func TestStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    backoff.Policy
		n    int
		want time.Duration
	}{
		{"first retry is Base", backoff.Policy{Base: time.Second, Max: time.Minute}, 1, time.Second},
		{"n below 1 counts as 1", backoff.Policy{Base: time.Second, Max: time.Minute}, 0, time.Second},
		{"negative n", backoff.Policy{Base: time.Second, Max: time.Minute}, -3, time.Second},
		{"doubles", backoff.Policy{Base: time.Second, Max: time.Minute}, 2, 2 * time.Second},
		{"doubles again", backoff.Policy{Base: time.Second, Max: time.Minute}, 4, 8 * time.Second},
		{"capped", backoff.Policy{Base: time.Second, Max: time.Minute}, 7, time.Minute},
		{"capped for good", backoff.Policy{Base: time.Second, Max: time.Minute}, 1000, time.Minute},
		{"cap not a power of two", backoff.Policy{Base: time.Second, Max: 5 * time.Second}, 3, 4 * time.Second},
		{"cap not a power of two, reached", backoff.Policy{Base: time.Second, Max: 5 * time.Second}, 4, 5 * time.Second},
		{"Base above Max", backoff.Policy{Base: time.Hour, Max: time.Minute}, 1, time.Minute},
		{"graphmail defaults, 3 failures", backoff.Policy{Base: time.Minute, Max: 15 * time.Minute}, 3, 4 * time.Minute},
		{"graphmail defaults, 5 failures", backoff.Policy{Base: time.Minute, Max: 15 * time.Minute}, 5, 15 * time.Minute},
		{"no cap", backoff.Policy{Base: time.Second}, 11, 1024 * time.Second},
		{"no cap never overflows", backoff.Policy{Base: time.Second}, 1 << 20, math.MaxInt64},
		{"cap near the top never overflows", backoff.Policy{Base: 3, Max: math.MaxInt64 - 1}, 100, math.MaxInt64 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, tt.p.Step(tt.n))
			assert.Equal(t, tt.want, tt.p.Wait(tt.n, fixed(0.7)), "no jitter: Wait is Step")
		})
	}
}

// The three policies the bot uses: every wait within [floor, ceiling] of its step,
// the range's ends reached, no wait below the first step's floor or above the
// capped step's ceiling, and waits that grow with n until the cap.
func TestWaitBoundsAndGrowth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		p      backoff.Policy
		lo, hi float64 // the jitter factors
	}{
		{"watch and outbox: ±20 %", backoff.Policy{Base: time.Second, Max: 5 * time.Minute, Jitter: backoff.Spread20}, 0.8, 1.2},
		{"graph: equal jitter", backoff.Policy{Base: 2 * time.Second, Max: 30 * time.Second, Jitter: backoff.Equal}, 0.5, 1},
		{"graphmail: none", backoff.Policy{Base: time.Minute, Max: 15 * time.Minute}, 1, 1},
		{"odd durations", backoff.Policy{Base: 333 * time.Millisecond, Max: 7777 * time.Millisecond, Jitter: backoff.Equal}, 0.5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			floor := time.Duration(float64(tt.p.Base) * tt.lo)
			ceiling := time.Duration(float64(tt.p.Max) * tt.hi)
			prevStep := time.Duration(0)
			for n := 1; n <= 30; n++ {
				step := tt.p.Step(n)
				assert.LessOrEqual(t, step, tt.p.Max, "n=%d: step above the cap", n)
				if step < tt.p.Max {
					assert.Equal(t, tt.p.Base<<(n-1), step, "n=%d: not Base·2^(n-1)", n)
				}
				if n > 1 {
					assert.GreaterOrEqual(t, step, prevStep, "n=%d: step shrank", n)
					if prevStep < tt.p.Max {
						assert.Greater(t, step, prevStep, "n=%d: step did not grow below the cap", n)
					}
				}
				prevStep = step

				lo, hi := tt.p.Wait(n, fixed(0)), tt.p.Wait(n, fixed(top))
				assert.Equal(t, time.Duration(float64(step)*tt.lo), lo, "n=%d: lowest wait", n)
				assert.InDelta(t, float64(step)*tt.hi, float64(hi), float64(time.Microsecond), "n=%d: highest wait", n)
				for _, r := range []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, top} {
					w := tt.p.Wait(n, fixed(r))
					assert.GreaterOrEqual(t, w, lo, "n=%d r=%v", n, r)
					assert.LessOrEqual(t, w, hi, "n=%d r=%v", n, r)
					assert.GreaterOrEqual(t, w, floor, "n=%d r=%v: below the floor", n, r)
					assert.LessOrEqual(t, w, ceiling, "n=%d r=%v: above the cap", n, r)
				}
				// The real source stays in range too.
				for range 50 {
					w := tt.p.Wait(n, nil)
					assert.True(t, w >= lo && w <= hi, "n=%d: %v outside [%v, %v]", n, w, lo, hi)
				}
			}
		})
	}
}

// Equal jitter: each range starts where the previous one ends, so until the cap a
// later wait is never shorter than an earlier one, whatever the draws.
func TestEqualJitterNeverShrinks(t *testing.T) {
	t.Parallel()
	p := backoff.Policy{Base: time.Second, Max: 8 * time.Second, Jitter: backoff.Equal}
	for n := 1; p.Step(n) < p.Max; n++ {
		assert.GreaterOrEqual(t, p.Wait(n+1, fixed(0)), p.Wait(n, fixed(top)), "n=%d", n)
	}
}

func TestNilSourceSpreads(t *testing.T) {
	t.Parallel()
	p := backoff.Policy{Base: time.Second, Max: time.Minute, Jitter: backoff.Spread20}
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[p.Wait(3, nil)] = true
	}
	assert.Greater(t, len(seen), 10, "jitter does not vary")
}
