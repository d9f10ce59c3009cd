package entra

import (
	"net/http"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
)

// Kind is the engine's kind of a Microsoft REST call that failed for good, from
// the status of its last answer (0: none came) and whether the step's deadline
// stopped it: executors.ErrTimeout, executors.ErrUnreachable, executors.ErrAuth
// (401), incident.ErrNotAllowed (403), incident.ErrNotFound (404), or
// incident.ErrUnavailable when transient — the caller's reading of the status
// as a passing refusal, by its own service's retry rules (429 and the 5xx it
// retries). Any other status has no kind: nil.
func Kind(status int, deadline, transient bool) error {
	switch {
	case status == 0 && deadline:
		return executors.ErrTimeout
	case status == 0:
		return executors.ErrUnreachable
	case status == http.StatusUnauthorized:
		return executors.ErrAuth
	case status == http.StatusForbidden:
		return incident.ErrNotAllowed
	case status == http.StatusNotFound:
		return incident.ErrNotFound
	case transient:
		return incident.ErrUnavailable
	}
	return nil
}

// Chain is what a request error unwraps to: its kind and its cause, leaving out
// whichever is nil.
func Chain(kind, cause error) []error {
	out := []error{}
	for _, err := range []error{kind, cause} {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}
