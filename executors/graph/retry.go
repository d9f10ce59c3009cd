package graph

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	khttp "github.com/microsoft/kiota-http-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/ndrbot/ndrbot/executors/internal/entra"
)

// Why the retry loop is ours, around each SDK call, and not kiota's RetryHandler in
// the middleware chain:
//   - the deadline: RetryHandler's ShouldRetry sees the delay accumulated so far,
//     not the wait it is about to start, so it cannot refuse a sleep that would run
//     past the step's deadline; it also sleeps Retry-After or whole seconds plus up to
//     1 s of jitter, with no say on the spread;
//   - connection resets: RetryHandler returns transport errors as they are;
//   - bodies: a retried PATCH/POST is replayed from the first attempt's body (with a
//     compression handler outside it that is kiota-http-go#183), while a retry here
//     rebuilds the request from the model;
//   - the record: each attempt's status and ids are ours to report, so the error
//     Microsoft support asks for names the attempt count and the last request-id.
//
// The middleware chain therefore has no retry and no compression handler (request
// bodies are a few hundred bytes); see middlewares.

// RetryPolicy bounds retries of transient failures: 429, 503, 504 and connection
// resets. Every wait also ends before the action's deadline: a wait that would not
// leave MinAttemptTime for the next attempt is not started, and the last failure is
// returned at once. It is the policy the Microsoft REST executors share
// (entra.RetryPolicy): its fields and defaults are documented there.
type RetryPolicy entra.RetryPolicy

// DefaultRetryPolicy: 5 attempts, 2 s doubling to 30 s (waits of 1–2, 2–4, 4–8 and
// 8–16 s: 15–30 s in all, inside a 60 s step with room for the attempts).
func DefaultRetryPolicy() RetryPolicy { return RetryPolicy(entra.DefaultRetryPolicy()) }

func (p RetryPolicy) valid() error { return entra.RetryPolicy(p).Valid() }

// wait is the wait before retry n without Retry-After (entra.RetryPolicy.Wait).
func (p RetryPolicy) wait(n int, rnd func() float64) time.Duration {
	return entra.RetryPolicy(p).Wait(n, rnd)
}

// next is the wait before retry n, and whether the deadline leaves time for it
// (entra.RetryPolicy.Next).
func (p RetryPolicy) next(ctx context.Context, n int, retryAfter time.Duration, rnd func() float64) (time.Duration, bool) {
	return entra.RetryPolicy(p).Next(ctx, n, retryAfter, rnd)
}

// RequestError is a Graph request that failed for good: a non-retriable answer, or a
// transient one that outlasted the retries or the deadline. It carries what Microsoft
// support asks for: request-id, client-request-id and the date of the failure.
type RequestError struct {
	Op              string    // "PATCH /subscriptions/{id}"
	Status          int       // HTTP status; 0 when no response arrived (connection reset)
	Code            string    // Graph's error code (ExtensionError, ErrorAccessDenied …)
	Message         string    // Graph's message, or the transport error
	RequestID       string    // request-id (response header or innerError)
	ClientRequestID string    // client-request-id: the response's, else the one we sent
	Date            time.Time // innerError.date (UTC) or the Date header
	Attempts        int
	// Deadline: the retries stopped because the action's deadline left no time for
	// another attempt, or ran out during one.
	Deadline bool

	cause error
}

func (e *RequestError) Error() string {
	var b strings.Builder
	b.WriteString("graph " + e.Op + ": ")
	switch {
	case e.Status == 0:
		b.WriteString("no response")
	default:
		b.WriteString(strconv.Itoa(e.Status) + " " + http.StatusText(e.Status))
	}
	if e.Code != "" || e.Message != "" {
		b.WriteString(" (")
		b.WriteString(strings.TrimSpace(e.Code + ": " + e.Message))
		b.WriteString(")")
	}
	fmt.Fprintf(&b, " after %d attempt%s", e.Attempts, plural(e.Attempts))
	if e.Deadline {
		b.WriteString(", stopped by the step deadline")
	}
	ids := []string{}
	if e.RequestID != "" {
		ids = append(ids, "request-id "+e.RequestID)
	}
	if e.ClientRequestID != "" {
		ids = append(ids, "client-request-id "+e.ClientRequestID)
	}
	if !e.Date.IsZero() {
		ids = append(ids, "date "+e.Date.UTC().Format(time.RFC3339))
	}
	if len(ids) > 0 {
		b.WriteString("; " + strings.Join(ids, ", "))
	}
	return b.String()
}

// Unwrap exposes the kind of failure for the engine (entra.Kind: the statuses
// Graph retries — 429, 503, 504 — are Graph being unavailable) and the SDK's own
// error.
func (e *RequestError) Unwrap() []error {
	return entra.Chain(entra.Kind(e.Status, e.Deadline, retriableStatus(e.Status)), e.cause)
}

// MaybeProcessed reports a failure that leaves the request's effect unknown: no
// answer arrived (a reset, or the deadline during the attempt), or the gateway gave
// up waiting for the backend (504). Graph may have acted on it.
func (e *RequestError) MaybeProcessed() bool {
	return e.Status == 0 || e.Status == http.StatusGatewayTimeout
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func retriableStatus(s int) bool {
	return s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable || s == http.StatusGatewayTimeout
}

// exchange is what the recorder middleware saw of one HTTP round trip.
type exchange struct {
	mu              sync.Mutex
	clientRequestID string
	status          int
	requestID       string
	date            string
	start, end      time.Time
}

type exchangeKey struct{}

// recorder is the innermost middleware: it notes the client-request-id the telemetry
// handler gave the request and the ids of the response, for the attempt the request
// belongs to (a context value set by call).
type recorder struct{}

func (recorder) Intercept(p khttp.Pipeline, i int, req *http.Request) (*http.Response, error) {
	ex, _ := req.Context().Value(exchangeKey{}).(*exchange)
	if ex == nil {
		return p.Next(req, i)
	}
	ex.mu.Lock()
	ex.clientRequestID = req.Header.Get("client-request-id")
	ex.start = time.Now()
	ex.mu.Unlock()
	resp, err := p.Next(req, i)
	ex.mu.Lock()
	ex.end = time.Now()
	if resp != nil {
		ex.status = resp.StatusCode
		ex.requestID = resp.Header.Get("request-id")
		ex.date = resp.Header.Get("Date")
	}
	ex.mu.Unlock()
	return resp, err
}

// callInfo describes the attempt that ended a call, successful or not.
type callInfo struct {
	Attempts        int
	Status          int
	Latency         time.Duration // of the last attempt
	RequestID       string
	ClientRequestID string
	Date            time.Time
}

// call runs fn, one Graph request, under the retry policy. idempotent says whether
// the request may be repeated after an answer that leaves its effect unknown: a
// connection reset or a 504 (a POST may have been processed; a 429/503 was not). The error is a *RequestError for every failure
// Graph or the network caused, or fn's own error otherwise (token acquisition,
// decoding, a cancelled context).
func (e *Executor) call(ctx context.Context, op string, idempotent bool, fn func(ctx context.Context) error) (callInfo, error) {
	var info callInfo
	var last *RequestError
	for attempt := 1; ; attempt++ {
		ex := &exchange{}
		err := fn(context.WithValue(ctx, exchangeKey{}, ex))
		info = ex.info(attempt)
		if err == nil {
			return info, nil
		}
		if ctx.Err() != nil {
			// The deadline (or the caller) ended this attempt. Report the last answer
			// Graph gave, if any: its ids are what support needs.
			if last == nil {
				last = &RequestError{Op: op, Message: "no answer before the deadline", ClientRequestID: info.ClientRequestID, cause: ctx.Err()}
			}
			last.Attempts, last.Deadline = attempt, true
			if errors.Is(ctx.Err(), context.Canceled) {
				return info, fmt.Errorf("graph %s: %w", op, ctx.Err())
			}
			return info, last
		}
		re, retriable, retryAfter := e.classify(op, err, ex, idempotent)
		if re == nil {
			if te := e.tokenFailure(op, err); te != nil {
				return info, te
			}
			return info, fmt.Errorf("graph %s: %w", op, err)
		}
		re.Attempts = attempt
		last = re
		if !retriable {
			return info, re
		}
		if attempt >= e.retry.MaxAttempts {
			e.log.Warn("graph request failed after retries", "op", op, "status", re.Status, "code", re.Code,
				"attempts", attempt, "request_id", re.RequestID, "client_request_id", re.ClientRequestID)
			return info, re
		}
		wait, ok := e.retry.next(ctx, attempt, retryAfter, e.rand)
		if !ok {
			dl, _ := ctx.Deadline()
			re.Deadline = true
			e.log.Warn("graph request not retried: the wait would pass the step deadline", "op", op,
				"status", re.Status, "wait", wait, "left", time.Until(dl).Round(time.Millisecond), "attempts", attempt,
				"request_id", re.RequestID, "client_request_id", re.ClientRequestID)
			return info, re
		}
		if e.retried != nil {
			e.retried(re.Status)
		}
		e.log.Debug("graph request retried", "op", op, "status", re.Status, "code", re.Code, "attempt", attempt,
			"wait", wait, "retry_after", retryAfter >= 0, "request_id", re.RequestID, "client_request_id", re.ClientRequestID)
		if err := entra.Pause(ctx, wait); err != nil {
			last.Deadline = true
			if errors.Is(err, context.Canceled) {
				return info, fmt.Errorf("graph %s: %w", op, err)
			}
			return info, last
		}
	}
}

func (ex *exchange) info(attempt int) callInfo {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ci := callInfo{Attempts: attempt, Status: ex.status, RequestID: ex.requestID, ClientRequestID: ex.clientRequestID}
	if !ex.start.IsZero() && !ex.end.IsZero() {
		ci.Latency = ex.end.Sub(ex.start)
	}
	if t, err := http.ParseTime(ex.date); err == nil {
		ci.Date = t.UTC()
	}
	return ci
}

// apiError is what kiota returns for an HTTP error: *odataerrors.ODataError when the
// body parsed, *abs.ApiError when it did not (an empty 503, as in the seed incident).
type apiError interface {
	error
	GetStatusCode() int
	GetResponseHeaders() *abs.ResponseHeaders
}

// classify turns a failed attempt into a RequestError, says whether it may be
// retried and, for a Retry-After, after how long (-1 when absent). It returns a nil
// RequestError for failures that are not Graph's or the network's.
func (e *Executor) classify(op string, err error, ex *exchange, idempotent bool) (*RequestError, bool, time.Duration) {
	sent := ex.info(0)
	var ae apiError
	if errors.As(err, &ae) {
		re := &RequestError{Op: op, Status: ae.GetStatusCode(), cause: err}
		h := ae.GetResponseHeaders()
		re.RequestID = header(h, "request-id")
		re.ClientRequestID = header(h, "client-request-id")
		if t, perr := http.ParseTime(header(h, "date")); perr == nil {
			re.Date = t.UTC()
		}
		var oe *odataerrors.ODataError
		if errors.As(err, &oe) && oe.GetErrorEscaped() != nil {
			me := oe.GetErrorEscaped()
			re.Code, re.Message = deref(me.GetCode()), deref(me.GetMessage())
			if in := me.GetInnerError(); in != nil {
				if re.RequestID == "" {
					re.RequestID = deref(in.GetRequestId())
				}
				if re.ClientRequestID == "" {
					re.ClientRequestID = deref(in.GetClientRequestId())
				}
				// innerError.date is the time of the failure as Graph logged it; it
				// has no zone and is UTC, but kiota parsed it as local time.
				if d := in.GetDate(); d != nil {
					re.Date = sameClockUTC(*d)
				}
			}
		}
		if re.Message == "" {
			re.Message = http.StatusText(re.Status)
		}
		re.Message = truncate(re.Message, 400)
		if re.ClientRequestID == "" {
			re.ClientRequestID = sent.ClientRequestID
		}
		retryAfter := time.Duration(-1)
		if v := header(h, "retry-after"); v != "" {
			retryAfter = parseRetryAfter(v, time.Now())
		}
		// A 504 is the gateway giving up on the backend, not the backend refusing:
		// a request that is not idempotent (POST /subscriptions) may have taken
		// effect, so its caller looks before it asks again.
		retriable := retriableStatus(re.Status) && (idempotent || re.Status != http.StatusGatewayTimeout)
		return re, retriable, retryAfter
	}
	if isConnReset(err) {
		re := &RequestError{Op: op, Code: "ConnectionReset", Message: "the connection was reset before a response arrived",
			ClientRequestID: sent.ClientRequestID, cause: err}
		return re, idempotent, -1
	}
	return nil, false, -1
}

func header(h *abs.ResponseHeaders, key string) string {
	if h == nil {
		return ""
	}
	for _, k := range h.ListKeys() {
		if strings.EqualFold(k, key) {
			if v := h.Get(k); len(v) > 0 {
				return v[0]
			}
		}
	}
	return ""
}

// parseRetryAfter reads delay-seconds or an HTTP-date (entra.ParseRetryAfter).
func parseRetryAfter(v string, now time.Time) time.Duration { return entra.ParseRetryAfter(v, now) }

// sameClockUTC reads t's wall clock as UTC: 2026-05-15T00:05:19 parsed in local time
// becomes 2026-05-15T00:05:19Z.
func sameClockUTC(t time.Time) time.Time {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, mo, d, h, mi, s, t.Nanosecond(), time.UTC)
}

// isConnReset reports a connection the peer dropped (entra.IsConnReset).
func isConnReset(err error) bool { return entra.IsConnReset(err) }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// defaultRand is the jitter source; tests replace it.
func defaultRand() float64 { return rand.Float64() }
