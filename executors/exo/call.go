package exo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/internal/entra"
)

// RequestError is a cmdlet call that failed for good: a non-retriable answer, or
// a transient one that outlasted the retries or the deadline. It carries what
// Microsoft support asks for: the request-id of the answer, the
// client-request-id sent, and the reason Exchange gave.
type RequestError struct {
	Cmdlet string
	Route  Route
	Op     string // "POST /adminapi/v2.0/{tenant}/AcceptedDomain"
	Status int    // 0: no response (reset, deadline)
	// Code and Message are the body's error.code and the most specific message
	// it holds (details, inner exception), or x-ms-diagnostics' reason.
	Code            string
	Message         string
	RequestID       string // request-id (else x-ms-request-id) of the answer
	ClientRequestID string // the one sent, echoed when the service returns it
	Attempts        int
	// Deadline: the retries stopped because the step's deadline left no time for
	// another attempt, or ran out during one.
	Deadline bool

	cause error
}

func (e *RequestError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exo %s via %s (%s): ", e.Cmdlet, e.Route, e.Op)
	if e.Status == 0 {
		b.WriteString("no response")
	} else {
		b.WriteString(strconv.Itoa(e.Status) + " " + http.StatusText(e.Status))
	}
	switch {
	case e.Code != "" && e.Message != "":
		b.WriteString(" (" + e.Code + ": " + e.Message + ")")
	case e.Code != "" || e.Message != "":
		b.WriteString(" (" + e.Code + e.Message + ")")
	}
	if e.Attempts == 1 {
		b.WriteString(" after 1 attempt")
	} else {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	if e.Deadline {
		b.WriteString(", stopped by the step deadline")
	}
	var ids []string
	if e.RequestID != "" {
		ids = append(ids, "request-id "+e.RequestID)
	}
	if e.ClientRequestID != "" {
		ids = append(ids, "client-request-id "+e.ClientRequestID)
	}
	if len(ids) > 0 {
		b.WriteString("; " + strings.Join(ids, ", "))
	}
	if e.Status == http.StatusForbidden {
		b.WriteString("; the app's service principal lacks the Exchange Online RBAC role for this cmdlet (Exchange.ManageAsAppV2 alone is not enough)")
	}
	return b.String()
}

// Unwrap exposes the kind of failure for the engine (entra.Kind: a 429 or any
// 5xx is Exchange Online being unavailable) and the cause.
func (e *RequestError) Unwrap() []error {
	transient := e.Status == http.StatusTooManyRequests || e.Status >= 500
	return entra.Chain(entra.Kind(e.Status, e.Deadline, transient), e.cause)
}

// errTooBig is an answer longer than the executor reads.
var errTooBig = errors.New("answer too large")

// post sends one page request of p to link under the retry policy and returns
// the answer's body.
func (e *Executor) post(ctx context.Context, s *session, p plan, link string, body []byte) ([]byte, int, error) {
	op := "POST " + e.opPath(link)
	var last *RequestError
	for attempt := 1; ; attempt++ {
		crid := newGUID()
		status, respBody, hdr, err := e.once(ctx, s, p, link, body, crid)
		if err == nil && status >= 200 && status < 300 {
			return respBody, attempt, nil
		}
		if ctx.Err() != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil, attempt, fmt.Errorf("exo %s via %s: %w", p.Cmdlet, p.Route, ctx.Err())
			}
			if last == nil {
				last = &RequestError{Cmdlet: p.Cmdlet, Route: p.Route, Op: op, Message: "no answer before the deadline",
					ClientRequestID: crid, cause: ctx.Err()}
			}
			last.Attempts, last.Deadline = attempt, true
			return nil, attempt, last
		}
		var re *RequestError
		retriable := false
		retryAfter := time.Duration(-1)
		switch {
		case err != nil && errors.Is(err, errTooBig):
			return nil, attempt, fmt.Errorf("exo %s via %s (%s): %w: %w", p.Cmdlet, p.Route, op, executors.ErrOutputTooBig, err)
		case err != nil:
			if te := entra.TokenFailure("exo "+p.Cmdlet, e.ep.AuthorityURL, e.tenant, err); te != nil {
				return nil, attempt, te
			}
			if !entra.IsConnReset(err) {
				return nil, attempt, fmt.Errorf("exo %s via %s (%s): %w: %w", p.Cmdlet, p.Route, op, executors.ErrUnreachable, err)
			}
			re = &RequestError{Cmdlet: p.Cmdlet, Route: p.Route, Op: op, Code: "ConnectionReset",
				Message: "the connection was reset before a response arrived", ClientRequestID: crid, cause: err}
			retriable = p.Idempotent
		default:
			re = errorFrom(p, op, status, respBody, hdr, crid)
			// A 429 was refused before any work; a 5xx of a write may have been
			// acted on, so only reads are sent again after one.
			retriable = status == http.StatusTooManyRequests || (status >= 500 && p.Idempotent)
			if v := hdr.Get("Retry-After"); v != "" {
				retryAfter = entra.ParseRetryAfter(v, time.Now())
			}
		}
		re.Attempts = attempt
		last = re
		if !retriable {
			return nil, attempt, re
		}
		if attempt >= e.retry.MaxAttempts {
			e.log.Warn("exo request failed after retries", "cmdlet", p.Cmdlet, "route", p.Route, "status", re.Status,
				"code", re.Code, "attempts", attempt, "request_id", re.RequestID, "client_request_id", re.ClientRequestID)
			return nil, attempt, re
		}
		wait, ok := e.retry.Next(ctx, attempt, retryAfter, e.rand)
		if !ok {
			re.Deadline = true
			e.log.Warn("exo request not retried: the wait would pass the step deadline", "cmdlet", p.Cmdlet,
				"route", p.Route, "status", re.Status, "wait", wait, "attempts", attempt, "request_id", re.RequestID)
			return nil, attempt, re
		}
		if e.retried != nil {
			e.retried(re.Status)
		}
		e.log.Debug("exo request retried", "cmdlet", p.Cmdlet, "route", p.Route, "status", re.Status, "attempt", attempt,
			"wait", wait, "retry_after", retryAfter >= 0, "request_id", re.RequestID, "client_request_id", re.ClientRequestID)
		if err := entra.Pause(ctx, wait); err != nil {
			last.Deadline = true
			if errors.Is(err, context.Canceled) {
				return nil, attempt, fmt.Errorf("exo %s via %s: %w", p.Cmdlet, p.Route, err)
			}
			return nil, attempt, last
		}
	}
}

// once sends one attempt. The bearer token is asked for on each attempt (the
// credential caches it) and goes only to the target's Exchange Online origin.
func (e *Executor) once(ctx context.Context, s *session, p plan, link string, body []byte, crid string) (int, []byte, http.Header, error) {
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{e.ep.Scope}})
	if err != nil {
		return 0, nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, link, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	h := req.Header
	h.Set("Authorization", "Bearer "+tok.Token)
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	h.Set("X-AnchorMailbox", p.Anchor)
	h.Set("client-request-id", crid)
	h.Set("return-client-request-id", "true")
	h.Set("User-Agent", "ndrbot")
	if p.Route == RouteInvokeCommand {
		h.Set("X-CmdletName", p.Cmdlet)
		h.Set("X-ResponseFormat", "json")
		h.Set("Prefer", "odata.maxpagesize="+strconv.Itoa(e.pageSize))
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(e.maxBody)+1))
	if err != nil {
		return resp.StatusCode, nil, resp.Header, err
	}
	if len(b) > e.maxBody {
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp.StatusCode, nil, resp.Header, fmt.Errorf("%w: more than %d bytes in one page", errTooBig, e.maxBody)
		}
		b = b[:e.maxBody]
	}
	return resp.StatusCode, b, resp.Header, nil
}

// errorFrom reads an error answer: the OData error Exchange writes
// ({"error":{"code","message","details":[{"message"}],"innererror":{…}}}), and
// for a body-less 401/403 the reason in x-ms-diagnostics.
func errorFrom(p plan, op string, status int, body []byte, h http.Header, crid string) *RequestError {
	re := &RequestError{Cmdlet: p.Cmdlet, Route: p.Route, Op: op, Status: status,
		RequestID: h.Get("request-id"), ClientRequestID: h.Get("client-request-id")}
	if re.RequestID == "" {
		re.RequestID = h.Get("x-ms-request-id")
	}
	if re.ClientRequestID == "" {
		re.ClientRequestID = crid
	}
	var doc struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Details []struct {
				Message string `json:"message"`
			} `json:"details"`
			Inner *inner `json:"innererror"`
		} `json:"error"`
	}
	if json.Unmarshal(bytes.TrimRight(body, "\x00"), &doc) == nil {
		re.Code = doc.Error.Code
		msg := doc.Error.Message
		for _, d := range doc.Error.Details {
			if d.Message != "" {
				msg = detail(d.Message)
				break
			}
		}
		if deep := doc.Error.Inner.deepest(); deep != "" && (len(doc.Error.Details) == 0 || msg == doc.Error.Message) {
			msg = deep
		}
		re.Message = msg
	}
	if re.Message == "" {
		if d := h.Get("x-ms-diagnostics"); d != "" {
			re.Message = "x-ms-diagnostics: " + d
		}
	}
	re.Message = entra.Truncate(strings.Join(strings.Fields(re.Message), " "), 400)
	return re
}

type inner struct {
	Message  string `json:"message"`
	Internal *inner `json:"internalexception"`
}

// deepest is the innermost exception's message, the one that names the cause.
func (in *inner) deepest() string {
	msg := ""
	for ; in != nil; in = in.Internal {
		if in.Message != "" {
			msg = in.Message
		}
	}
	return msg
}

// detail shortens "Ex6F9304|Microsoft.Exchange…ManagementObjectNotFoundException|The
// operation couldn't be performed …" to "ManagementObjectNotFoundException: The
// operation couldn't be performed …".
func detail(s string) string {
	parts := strings.Split(s, "|")
	if len(parts) < 3 {
		return s
	}
	typ := parts[1]
	if i := strings.LastIndexByte(typ, '.'); i >= 0 {
		typ = typ[i+1:]
	}
	return typ + ": " + strings.Join(parts[2:], "|")
}

// opPath is link without scheme, host and query, the tenant shown as {tenant}.
func (e *Executor) opPath(link string) string {
	path := strings.TrimPrefix(link, e.ep.BaseURL)
	path, _, _ = strings.Cut(path, "?")
	return strings.Replace(path, "/"+e.tenantPath+"/", "/{tenant}/", 1)
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
