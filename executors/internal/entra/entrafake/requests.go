package entrafake

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Request is one request a fake received, for assertions on hosts, bodies and
// timing.
type Request struct {
	Method   string
	Host     string // the Host header: the name the client dialled
	Path     string // decoded, e.g. /v1.0/subscriptions/abc
	RawQuery string
	Header   http.Header
	Body     []byte
	Time     time.Time
}

// Received reads r, its body included, as a fake records it.
func Received(r *http.Request) Request {
	body, _ := io.ReadAll(r.Body)
	return Request{Method: r.Method, Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body, Time: time.Now()}
}

// Query returns a decoded query parameter.
func (r Request) Query(key string) string {
	v, _ := url.ParseQuery(r.RawQuery)
	return v.Get(key)
}

// IsToken reports a request to the token endpoint.
func (r Request) IsToken() bool { return IsTokenPath(r.Path) }

// Scope is the resource scope a token request asked for.
func (r Request) Scope() string { return Scope(r.Body) }

// RequestLog is every request a fake received, in arrival order, as the fake's
// own request type R. Its zero value is empty and ready.
type RequestLog[R interface{ IsToken() bool }] struct {
	mu   sync.Mutex
	reqs []R
}

// Record appends r.
func (l *RequestLog[R]) Record(r R) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r)
}

// Requests returns every request so far, in arrival order.
func (l *RequestLog[R]) Requests() []R {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs)
}

// TokenRequests returns the token endpoint requests.
func (l *RequestLog[R]) TokenRequests() []R {
	var out []R
	for _, r := range l.Requests() {
		if r.IsToken() {
			out = append(out, r)
		}
	}
	return out
}

// ResetRequests forgets the recorded requests.
func (l *RequestLog[R]) ResetRequests() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = nil
}
