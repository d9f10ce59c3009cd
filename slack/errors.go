package slack

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	slackgo "github.com/slack-go/slack"
)

// RetryAfterError is an error that says when to try again. The store's outbox can
// declare the same one-method interface and find it with errors.As.
type RetryAfterError interface {
	error
	RetryAfter() time.Duration
}

// DefaultRetryAfter is assumed when Slack answers 429 without a Retry-After header.
const DefaultRetryAfter = time.Second

// RateLimitError is Slack's HTTP 429 on one Web API call. It wraps slack-go's
// *slack.RateLimitedError (or its StatusCodeError when Retry-After was missing).
type RateLimitError struct {
	Method string
	Wait   time.Duration
	Err    error
}

var _ RetryAfterError = (*RateLimitError)(nil)

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("slack %s: rate limited, retry after %s", e.Method, e.Wait)
}

// RetryAfter is how long Slack asked us to wait.
func (e *RateLimitError) RetryAfter() time.Duration { return e.Wait }

func (e *RateLimitError) Unwrap() error { return e.Err }

// apiError names the Web API method in err and turns a 429 into a *RateLimitError.
// It never retries: the outbox owns retries so nothing is lost across restarts.
func apiError(method string, err error) error {
	if err == nil {
		return nil
	}
	var rl *slackgo.RateLimitedError
	if errors.As(err, &rl) {
		return &RateLimitError{Method: method, Wait: rl.RetryAfter, Err: err}
	}
	var sc slackgo.StatusCodeError
	if errors.As(err, &sc) && sc.Code == http.StatusTooManyRequests {
		return &RateLimitError{Method: method, Wait: DefaultRetryAfter, Err: err}
	}
	return fmt.Errorf("slack %s: %w", method, err)
}

// Permanent reports whether retrying err cannot help: Slack understood the call and
// refused it (channel_not_found, not_in_channel, invalid_blocks, msg_too_long, …).
// Rate limits, server errors and network errors are not permanent.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	var ra RetryAfterError
	if errors.As(err, &ra) {
		return false
	}
	var se slackgo.SlackErrorResponse
	if !errors.As(err, &se) {
		return false
	}
	switch se.Err {
	case "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org":
		return false
	}
	return true
}
