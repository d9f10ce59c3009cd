package entra

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestNext(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{MaxAttempts: 5, BaseDelay: time.Second, MaxDelay: 8 * time.Second, MinAttemptTime: time.Second}
	half := func() float64 { return 0.5 }
	tests := []struct {
		name       string
		left       time.Duration // 0: no deadline
		n          int
		retryAfter time.Duration
		want       time.Duration
		ok         bool
	}{
		{name: "backoff without Retry-After", n: 3, retryAfter: -1, want: 3 * time.Second, ok: true},
		{name: "Retry-After wins over the backoff", n: 3, retryAfter: 7 * time.Second, want: 7 * time.Second, ok: true},
		{name: "Retry-After: 0", n: 1, retryAfter: 0, want: 0, ok: true},
		{name: "room for the wait and an attempt", left: time.Minute, n: 1, retryAfter: -1, want: 750 * time.Millisecond, ok: true},
		{name: "the wait would leave less than MinAttemptTime", left: 5 * time.Second, n: 1, retryAfter: 4500 * time.Millisecond,
			want: 4500 * time.Millisecond, ok: false},
		{name: "the wait would pass the deadline", left: 2 * time.Second, n: 4, retryAfter: -1, want: 6 * time.Second, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if tt.left > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.left)
				defer cancel()
			}
			wait, ok := p.Next(ctx, tt.n, tt.retryAfter, half)
			assert.Equal(t, tt.want, wait)
			assert.Equal(t, tt.ok, ok)
		})
	}
}

func TestPause(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	t.Cleanup(cancel2)
	tests := []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want error
	}{
		{"the wait ends", context.Background(), 10 * time.Millisecond, nil},
		{"canceled first", canceled, time.Hour, context.Canceled},
		{"deadline first", expired, time.Hour, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			assert.ErrorIs(t, Pause(tt.ctx, tt.d), tt.want)
			assert.Less(t, time.Since(start), 10*time.Second, "never the hour")
		})
	}
}
