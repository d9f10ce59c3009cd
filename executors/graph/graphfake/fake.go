// Package graphfake is a fake Microsoft Graph and Microsoft Entra token service over
// HTTPS, for tests that drive the real msgraph-sdk-go and azidentity clients.
//
// One httptest TLS server answers every host name: the authority routes
// (/{tenant}/oauth2/v2.0/token, the OpenID configuration, instance discovery: the
// fake authority exofake signs in at too, entrafake.Authority) and
// Graph's v1.0 routes used by ndrbot — service health issues, subscriptions (list,
// get, create, renew), Exchange message trace and mail folder message delta. Its
// certificate is valid for the Graph and login hosts of every national cloud and
// for localhost; a client trusts it through CAFile (as ca_file) or CertPool, and
// reaches the national-cloud names through DialContext, which sends any address to
// the fake while TLS still verifies the name.
//
// Faults are programmable (a 503 storm without Retry-After that clears after N
// failures or never, 429 with Retry-After, connection resets), and every request is
// recorded (method, host, path, query, headers, body, time) for assertions on
// backoff timing, hosts and bodies.
package graphfake

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ndrbot/ndrbot/executors/internal/entra/entrafake"
)

// Hosts the certificate is valid for, besides localhost and the loopback addresses.
var Hosts = []string{
	"graph.microsoft.com", "login.microsoftonline.com",
	"graph.microsoft.us", "dod-graph.microsoft.us", "login.microsoftonline.us",
	"microsoftgraph.chinacloudapi.cn", "login.chinacloudapi.cn",
}

// Default identity of the fake tenant and app.
const (
	DefaultTenant   = entrafake.DefaultTenant
	DefaultClientID = entrafake.DefaultClientID
)

// Request is one request the fake received (method, host, path, query, headers,
// body, time; IsToken, Scope and Query are entrafake.Request's).
type Request struct{ entrafake.Request }

// IsGraph reports a request to a Graph route.
func (r Request) IsGraph() bool {
	return strings.HasPrefix(r.Path, "/v1.0/") || strings.HasPrefix(r.Path, "/beta/")
}

// GraphPath is the path after the API version: /subscriptions/abc.
func (r Request) GraphPath() string {
	_, rest, _ := strings.Cut(strings.TrimPrefix(r.Path, "/"), "/")
	return "/" + rest
}

// Fault makes matching Graph requests fail.
type Fault struct {
	Method string // "" matches any method
	// Path is a prefix of the Graph path after the version ("/subscriptions");
	// "" matches every Graph route. Token requests are never faulted.
	Path string
	// Times is how many matching requests fail before the fault clears; negative
	// never clears.
	Times int
	// Status and the OData error: 503 ExtensionError (the seed's answer) when zero.
	Status  int
	Code    string
	Message string
	// RetryAfter is the Retry-After header value ("2", or an HTTP date); "" sends none.
	RetryAfter string
	// OmitHeaders sends no request-id, client-request-id or Date headers — as in the
	// seed incident — so the ids are only in the body's innerError.
	OmitHeaders bool
	// Reset drops the connection (TCP RST) instead of answering.
	Reset bool
	// AfterProcessing serves the request first — a POST /subscriptions creates its
	// subscription — and only then answers with the fault or drops the connection:
	// a gateway that timed out (504) or a connection lost after the backend acted,
	// so the client cannot tell whether its request took effect.
	AfterProcessing bool

	hits int
}

// Subscription is a change-notification subscription held by the fake.
type Subscription struct {
	ID                       string
	Resource                 string
	ChangeType               string
	NotificationURL          string
	LifecycleNotificationURL string
	ClientState              string
	Expiration               time.Time
	ApplicationID            string
}

// Message is a mail message in a folder of the fake.
type Message struct {
	ID       string
	Received time.Time
	// Fields are further message properties as Graph names them ("subject",
	// "from", "bodyPreview", "internetMessageHeaders" …), returned by delta when
	// $select asks for them (all of them without $select).
	Fields map[string]any

	seq     int
	removed bool
}

// TraceRow is an exchangeMessageTrace.
type TraceRow struct {
	ID, MessageID, Sender, Recipient, Status, FromIP, ToIP, Subject string
	Received                                                        time.Time
	Size                                                            int64
}

// Server is the fake. Its zero value is not usable: call New.
type Server struct {
	// Site is the TLS server (URL, CAFile, CertPool, DialContext …).
	*entrafake.Site
	// Authority is the token service (Tenant, ClientID, ClientSecret, ClientCert,
	// SetClientSecret).
	*entrafake.Authority
	// RequestLog records every request (Requests, TokenRequests, ResetRequests).
	entrafake.RequestLog[Request]

	mu       sync.Mutex
	now      func() time.Time
	faults   []*Fault
	issues   []map[string]any
	subs     map[string]*Subscription
	folders  map[string][]*Message // "user/folder", lower case
	seq      int
	trace    []TraceRow
	traceErr *Fault
	pageSize int
}

// Option configures New.
type Option func(*Server)

// WithClientSecret sets the secret the token endpoint accepts.
func WithClientSecret(secret string) Option { return func(s *Server) { s.ClientSecret = secret } }

// WithClientCert makes the token endpoint accept client assertions signed by cert's
// key (and no secret).
func WithClientCert(cert *x509.Certificate) Option { return func(s *Server) { s.ClientCert = cert } }

// WithClock sets the fake's clock (subscription expiry).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithPageSize sets how many items a collection page holds (default 2, to exercise
// paging).
func WithPageSize(n int) Option { return func(s *Server) { s.pageSize = n } }

// New starts a fake for t; it stops when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		Authority: entrafake.NewAuthority("fake-access-token"),
		now:       time.Now, subs: map[string]*Subscription{},
		folders: map[string][]*Message{}, pageSize: 2,
	}
	for _, o := range opts {
		o(s)
	}
	s.Site = entrafake.StartSite(t, "graphfake", Hosts, http.HandlerFunc(s.serve))
	return s
}

// AddFault installs a fault; faults are tried in the order added.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fc := f
	fc.hits = 0
	s.faults = append(s.faults, &fc)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// GraphRequests returns the Graph requests with the given method ("" any) whose path
// after the version starts with prefix.
func (s *Server) GraphRequests(method, prefix string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.IsGraph() && (method == "" || r.Method == method) && strings.HasPrefix(r.GraphPath(), prefix) {
			out = append(out, r)
		}
	}
	return out
}

// SetIssues replaces the service health issues with the "value" of a Graph
// serviceHealthIssue collection page (raw JSON).
func (s *Server) SetIssues(pageJSON []byte) error {
	var p struct {
		Value []map[string]any `json:"value"`
	}
	if err := json.Unmarshal(pageJSON, &p); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issues = p.Value
	return nil
}

// PutSubscription adds or replaces a subscription.
func (s *Server) PutSubscription(sub Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := sub
	s.subs[sub.ID] = &c
}

// Subscription returns a subscription as the fake holds it (clientState included).
func (s *Server) Subscription(id string) (Subscription, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.subs[id]
	if !ok {
		return Subscription{}, false
	}
	return *sub, true
}

// Subscriptions returns every subscription, expired ones included.
func (s *Server) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		out = append(out, *sub)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Deliver puts a message into user's folder ("inbox", case-insensitive).
func (s *Server) Deliver(user, folder, id string, received time.Time) {
	s.DeliverMessage(user, folder, Message{ID: id, Received: received})
}

// DeliverMessage puts m into user's folder.
func (s *Server) DeliverMessage(user, folder string, m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	key := strings.ToLower(user + "/" + folder)
	c := m
	c.Received, c.seq, c.removed = m.Received.UTC(), s.seq, false
	s.folders[key] = append(s.folders[key], &c)
}

// Remove deletes a message (delta reports it as @removed).
func (s *Server) Remove(user, folder, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	for _, m := range s.folders[strings.ToLower(user+"/"+folder)] {
		if m.ID == id {
			m.removed, m.seq = true, s.seq
		}
	}
}

// RemoveSubscription deletes a subscription as Graph does when it removes one on
// its own (the subscriptionRemoved lifecycle event): GET answers 404 from then on.
func (s *Server) RemoveSubscription(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs, id)
}

// SetTrace sets the message trace rows.
func (s *Server) SetTrace(rows []TraceRow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trace, s.traceErr = rows, nil
}

// SetTraceUnavailable makes message trace answer with status/code/message, as a
// tenant without the API or the permission does.
func (s *Server) SetTraceUnavailable(status int, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.traceErr = &Fault{Status: status, Code: code, Message: message}
}

// ---- serving ----

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rec := Request{entrafake.Received(r)}
	s.Record(rec)
	switch {
	case s.Handle(w, r, rec.Body):
	case rec.IsGraph():
		s.graph(w, r, rec)
	default:
		http.NotFound(w, r)
	}
}

// graphError writes an OData error the way Graph does: headers request-id,
// client-request-id (echoed) and Date, and the same ids in innerError, whose date
// has no zone.
func graphError(w http.ResponseWriter, r *http.Request, status int, code, message string, omitHeaders bool, extra http.Header) {
	reqID := newGUID()
	crid := r.Header.Get("client-request-id")
	h := w.Header()
	for k, v := range extra {
		h[k] = v
	}
	if omitHeaders {
		h["Date"] = nil // suppress the server's automatic Date
	} else {
		h.Set("request-id", reqID)
		h.Set("client-request-id", crid)
	}
	writeJSON(w, status, nil, map[string]any{"error": map[string]any{
		"code": code, "message": message,
		"innerError": map[string]any{
			"date":              time.Now().UTC().Format("2006-01-02T15:04:05"),
			"request-id":        reqID,
			"client-request-id": crid,
		},
	}})
}

func (s *Server) matchFault(r *http.Request, graphPath string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if f.Method != "" && f.Method != r.Method || !strings.HasPrefix(graphPath, f.Path) {
			continue
		}
		if f.Times >= 0 && f.hits >= f.Times {
			continue
		}
		f.hits++
		c := *f
		return &c
	}
	return nil
}

func (s *Server) graph(w http.ResponseWriter, r *http.Request, rec Request) {
	path := rec.GraphPath()
	if f := s.matchFault(r, path); f != nil {
		if f.AfterProcessing {
			s.route(httptest.NewRecorder(), r, rec)
		}
		if f.Reset {
			if !entrafake.ResetConnection(w) {
				panic("graphfake: cannot hijack to reset")
			}
			return
		}
		status, code, msg := f.Status, f.Code, f.Message
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		if code == "" && status == http.StatusServiceUnavailable {
			code, msg = "ExtensionError", "Operation: Update; Exception: [Status Code: ServiceUnavailable; Reason: ]"
		} else if code == "" {
			code, msg = http.StatusText(status), http.StatusText(status)
		}
		extra := http.Header{}
		if f.RetryAfter != "" {
			extra.Set("Retry-After", f.RetryAfter)
		}
		graphError(w, r, status, code, msg, f.OmitHeaders, extra)
		return
	}
	s.route(w, r, rec)
}

// route serves an authorised Graph request.
func (s *Server) route(w http.ResponseWriter, r *http.Request, rec Request) {
	path := rec.GraphPath()
	if !s.Authorized(r.Header.Get("Authorization")) {
		graphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.", false, nil)
		return
	}
	ok := func(v any) { writeJSON(w, http.StatusOK, r, v) }
	switch {
	case r.Method == http.MethodGet && path == "/admin/serviceAnnouncement/issues":
		ok(s.issuesPage(r))
	case r.Method == http.MethodGet && path == "/subscriptions":
		ok(s.subscriptionsPage(r))
	case strings.HasPrefix(path, "/subscriptions/"):
		s.subscription(w, r, strings.TrimPrefix(path, "/subscriptions/"), rec.Body)
	case r.Method == http.MethodPost && path == "/subscriptions":
		s.createSubscription(w, r, rec.Body)
	case r.Method == http.MethodGet && path == "/admin/exchange/tracing/messageTraces":
		s.messageTraces(w, r)
	case r.Method == http.MethodGet && mailboxMessagesRE.MatchString(path):
		s.mailboxMessages(w, r, mailboxMessagesRE.FindStringSubmatch(path)[1])
	case r.Method == http.MethodGet && deltaRE.MatchString(path):
		m := deltaRE.FindStringSubmatch(path)
		s.delta(w, r, m[1], m[2])
	default:
		graphError(w, r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+strings.Trim(path, "/")+"'.", false, nil)
	}
}

var mailboxMessagesRE = regexp.MustCompile(`(?i)^/users/([^/]+)/messages$`)

var deltaRE = regexp.MustCompile(`(?i)^/users/([^/]+)/mailFolders/([^/]+)/messages/delta\(\)$`)

func (s *Server) nextLink(r *http.Request, skip int) string {
	q := r.URL.Query()
	q.Set("$skiptoken", strconv.Itoa(skip))
	return "https://" + r.Host + r.URL.Path + "?" + q.Encode()
}

func skipOf(r *http.Request) int {
	n, _ := strconv.Atoi(r.URL.Query().Get("$skiptoken"))
	return n
}

var (
	serviceEqRE  = regexp.MustCompile(`service eq '((?:[^']|'')*)'`)
	unresolvedRE = regexp.MustCompile(`isResolved eq false`)
)

func (s *Server) issuesPage(r *http.Request) map[string]any {
	filter := r.URL.Query().Get("$filter")
	s.mu.Lock()
	var items []any
	for _, it := range s.issues {
		if m := serviceEqRE.FindStringSubmatch(filter); m != nil && it["service"] != strings.ReplaceAll(m[1], "''", "'") {
			continue
		}
		if unresolvedRE.MatchString(filter) && it["isResolved"] == true {
			continue
		}
		items = append(items, it)
	}
	s.mu.Unlock()
	return s.pageOf(r, "https://graph.microsoft.com/v1.0/$metadata#admin/serviceAnnouncement/issues", items)
}

func (s *Server) pageOf(r *http.Request, context string, items []any) map[string]any {
	skip := skipOf(r)
	end := min(skip+s.pageSize, len(items))
	if skip > len(items) {
		skip = len(items)
	}
	page := map[string]any{"@odata.context": context, "value": nonNil(items[skip:end])}
	if end < len(items) {
		page["@odata.nextLink"] = s.nextLink(r, end)
	}
	return page
}

func nonNil(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

func (sub *Subscription) json() map[string]any {
	m := map[string]any{
		"id": sub.ID, "resource": sub.Resource, "changeType": sub.ChangeType,
		"notificationUrl": sub.NotificationURL, "clientState": sub.ClientState,
		"expirationDateTime": sub.Expiration.UTC().Format("2006-01-02T15:04:05.0000000Z"),
		"applicationId":      sub.ApplicationID, "creatorId": "bc6a4f9d-0000-0000-0000-000000000000",
		"includeResourceData": false, "latestSupportedTlsVersion": "v1_2",
		"encryptionCertificate": nil, "encryptionCertificateId": nil, "notificationQueryOptions": nil,
		"notificationUrlAppId": nil, "lifecycleNotificationUrl": nil,
	}
	if sub.LifecycleNotificationURL != "" {
		m["lifecycleNotificationUrl"] = sub.LifecycleNotificationURL
	}
	return m
}

// live drops subscriptions that expired, as Graph does; callers hold s.mu.
func (s *Server) live() []*Subscription {
	now := s.now()
	var out []*Subscription
	for id, sub := range s.subs {
		if !sub.Expiration.After(now) {
			delete(s.subs, id)
			continue
		}
		out = append(out, sub)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *Server) subscriptionsPage(r *http.Request) map[string]any {
	s.mu.Lock()
	var items []any
	for _, sub := range s.live() {
		items = append(items, sub.json())
	}
	s.mu.Unlock()
	return s.pageOf(r, "https://graph.microsoft.com/v1.0/$metadata#subscriptions", items)
}

// maxMinutes mirrors Graph's lifetime limits for the resources the tests use.
func maxMinutes(resource string) int {
	r := strings.ToLower(resource)
	if strings.Contains(r, "/messages") || strings.Contains(r, "/events") || strings.Contains(r, "/contacts") {
		return 10070
	}
	return 4230
}

func (s *Server) subscription(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	s.mu.Lock()
	s.live()
	sub, ok := s.subs[id]
	s.mu.Unlock()
	if !ok {
		graphError(w, r, http.StatusNotFound, "ResourceNotFound", "The object was not found.", false, nil)
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		v := sub.json()
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, r, v)
	case http.MethodPatch:
		var in struct {
			ExpirationDateTime *time.Time `json:"expirationDateTime"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.ExpirationDateTime == nil {
			graphError(w, r, http.StatusBadRequest, "InvalidRequest", "expirationDateTime is required.", false, nil)
			return
		}
		if msg := s.checkExpiry(sub.Resource, *in.ExpirationDateTime); msg != "" {
			graphError(w, r, http.StatusBadRequest, "ExtensionError", msg, false, nil)
			return
		}
		s.mu.Lock()
		sub.Expiration = in.ExpirationDateTime.UTC()
		v := sub.json()
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, r, v)
	case http.MethodDelete:
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		graphError(w, r, http.StatusMethodNotAllowed, "BadRequest", "method not allowed", false, nil)
	}
}

func (s *Server) checkExpiry(resource string, exp time.Time) string {
	now := s.now()
	limit := maxMinutes(resource)
	switch {
	case !exp.After(now):
		return "Subscription expiration must be in the future."
	case exp.After(now.Add(time.Duration(limit) * time.Minute)):
		return fmt.Sprintf("Subscription expiration can only be %d minutes in the future.", limit)
	}
	return ""
}

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		Resource                 string     `json:"resource"`
		ChangeType               string     `json:"changeType"`
		NotificationURL          string     `json:"notificationUrl"`
		LifecycleNotificationURL string     `json:"lifecycleNotificationUrl"`
		ClientState              string     `json:"clientState"`
		ExpirationDateTime       *time.Time `json:"expirationDateTime"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		graphError(w, r, http.StatusBadRequest, "InvalidRequest", "Could not process subscription creation payload.", false, nil)
		return
	}
	switch {
	case in.Resource == "" || in.ChangeType == "" || in.ExpirationDateTime == nil:
		graphError(w, r, http.StatusBadRequest, "InvalidRequest", "resource, changeType and expirationDateTime are required.", false, nil)
		return
	case !strings.HasPrefix(in.NotificationURL, "https://"):
		graphError(w, r, http.StatusBadRequest, "InvalidRequest", "The Notification Url must be https.", false, nil)
		return
	}
	if msg := s.checkExpiry(in.Resource, *in.ExpirationDateTime); msg != "" {
		graphError(w, r, http.StatusBadRequest, "ExtensionError", msg, false, nil)
		return
	}
	sub := &Subscription{ID: newGUID(), Resource: in.Resource, ChangeType: in.ChangeType, NotificationURL: in.NotificationURL,
		LifecycleNotificationURL: in.LifecycleNotificationURL, ClientState: in.ClientState,
		Expiration: in.ExpirationDateTime.UTC(), ApplicationID: s.ClientID}
	s.mu.Lock()
	s.subs[sub.ID] = sub
	v := sub.json()
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, r, v)
}

var (
	traceSenderRE    = regexp.MustCompile(`senderAddress eq '((?:[^']|'')*)'`)
	traceRecipientRE = regexp.MustCompile(`recipientAddress eq '((?:[^']|'')*)'`)
	traceGeRE        = regexp.MustCompile(`receivedDateTime ge (\S+)`)
	traceLeRE        = regexp.MustCompile(`receivedDateTime le (\S+)`)
)

func (s *Server) messageTraces(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	terr, rows := s.traceErr, slices.Clone(s.trace)
	s.mu.Unlock()
	if terr != nil {
		graphError(w, r, terr.Status, terr.Code, terr.Message, false, nil)
		return
	}
	filter := r.URL.Query().Get("$filter")
	ge, le := traceGeRE.FindStringSubmatch(filter), traceLeRE.FindStringSubmatch(filter)
	if ge == nil || le == nil {
		graphError(w, r, http.StatusBadRequest, "BadRequest", "receivedDateTime range must be specified using ge and le.", false, nil)
		return
	}
	from, err1 := time.Parse(time.RFC3339, ge[1])
	to, err2 := time.Parse(time.RFC3339, le[1])
	if err1 != nil || err2 != nil || to.Sub(from) > 10*24*time.Hour {
		graphError(w, r, http.StatusBadRequest, "BadRequest", "The time interval must not exceed 10 days.", false, nil)
		return
	}
	var items []any
	for _, t := range rows {
		if m := traceSenderRE.FindStringSubmatch(filter); m != nil && !strings.EqualFold(t.Sender, m[1]) {
			continue
		}
		if m := traceRecipientRE.FindStringSubmatch(filter); m != nil && !strings.EqualFold(t.Recipient, m[1]) {
			continue
		}
		if t.Received.Before(from) || t.Received.After(to) {
			continue
		}
		items = append(items, map[string]any{
			"id": t.ID, "messageId": t.MessageID, "receivedDateTime": t.Received.UTC().Format(time.RFC3339),
			"senderAddress": t.Sender, "recipientAddress": t.Recipient, "subject": t.Subject, "status": t.Status,
			"size": t.Size, "fromIP": t.FromIP, "toIP": t.ToIP,
		})
	}
	writeJSON(w, http.StatusOK, r, s.pageOf(r, "https://graph.microsoft.com/v1.0/$metadata#admin/exchange/tracing/messageTraces", items))
}

var (
	listGeRE = regexp.MustCompile(`receivedDateTime ge (\S+)`)
	listLtRE = regexp.MustCompile(`receivedDateTime lt (\S+)`)
)

// mailboxMessages serves GET /users/{id}/messages: the messages of every folder of
// the mailbox (Deleted Items included, as Graph's "List messages" does), filtered on
// receivedDateTime ge / lt, newest first, with parentFolderId set to the folder.
func (s *Server) mailboxMessages(w http.ResponseWriter, r *http.Request, user string) {
	filter := r.URL.Query().Get("$filter")
	var ge, lt time.Time
	if m := listGeRE.FindStringSubmatch(filter); m != nil {
		t, err := time.Parse(time.RFC3339, m[1])
		if err != nil {
			graphError(w, r, http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "bad date", false, nil)
			return
		}
		ge = t
	}
	if m := listLtRE.FindStringSubmatch(filter); m != nil {
		t, err := time.Parse(time.RFC3339, m[1])
		if err != nil {
			graphError(w, r, http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "bad date", false, nil)
			return
		}
		lt = t
	}
	type found struct {
		m      *Message
		folder string
	}
	var all []found
	s.mu.Lock()
	prefix := strings.ToLower(user) + "/"
	for key, box := range s.folders {
		folder, ok := strings.CutPrefix(key, prefix)
		if !ok {
			continue
		}
		for _, m := range box {
			if m.removed || (!ge.IsZero() && m.Received.Before(ge)) || (!lt.IsZero() && !m.Received.Before(lt)) {
				continue
			}
			all = append(all, found{m, folder})
		}
	}
	s.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].m.seq > all[j].m.seq })
	items := make([]any, 0, len(all))
	for _, f := range all {
		items = append(items, map[string]any{
			"@odata.type": "#microsoft.graph.message", "id": f.m.ID,
			"receivedDateTime": f.m.Received.Format(time.RFC3339), "parentFolderId": f.folder,
		})
	}
	writeJSON(w, http.StatusOK, r, s.pageOf(r, "https://graph.microsoft.com/v1.0/$metadata#users('"+user+"')/messages", items))
}

var deltaFilterRE = regexp.MustCompile(`^receivedDateTime (ge|gt) (\S+)$`)

// delta serves a mail folder's message delta: a first round filtered on
// receivedDateTime, paged by $skiptoken, ending with a $deltatoken that later rounds
// continue from (only what changed since).
func (s *Server) delta(w http.ResponseWriter, r *http.Request, user, folder string) {
	q := r.URL.Query()
	var since time.Time
	after, snapshot := 0, 0
	if tok := q.Get("$deltatoken"); tok != "" {
		a, b, _ := strings.Cut(tok, ".")
		after, _ = strconv.Atoi(a)
		if n, err := strconv.ParseInt(b, 10, 64); err == nil && n > 0 {
			since = time.Unix(n, 0).UTC()
		}
	} else if tok := q.Get("$skiptoken"); tok != "" {
		parts := strings.Split(tok, ".")
		if len(parts) == 4 {
			after, _ = strconv.Atoi(parts[1])
			snapshot, _ = strconv.Atoi(parts[2])
			if n, err := strconv.ParseInt(parts[3], 10, 64); err == nil && n > 0 {
				since = time.Unix(n, 0).UTC()
			}
		}
	} else if f := q.Get("$filter"); f != "" {
		m := deltaFilterRE.FindStringSubmatch(f)
		if m == nil {
			graphError(w, r, http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.", false, nil)
			return
		}
		t, err := time.Parse(time.RFC3339, m[2])
		if err != nil {
			graphError(w, r, http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "bad date", false, nil)
			return
		}
		since = t
	}
	s.mu.Lock()
	if snapshot == 0 {
		snapshot = s.seq
	}
	var items []*Message
	for _, m := range s.folders[strings.ToLower(user+"/"+folder)] {
		if m.seq <= after || m.seq > snapshot || (!since.IsZero() && m.Received.Before(since)) {
			continue
		}
		if m.removed && after == 0 {
			continue // a first round lists what exists
		}
		items = append(items, m)
	}
	s.mu.Unlock()
	sort.Slice(items, func(i, j int) bool { return items[i].seq < items[j].seq })

	pageSize := s.pageSize
	if p := r.Header.Get("Prefer"); strings.HasPrefix(p, "odata.maxpagesize=") {
		if n, err := strconv.Atoi(strings.TrimPrefix(p, "odata.maxpagesize=")); err == nil && n > 0 {
			pageSize = min(n, s.pageSize) // the server may page smaller than asked
		}
	}
	var sel map[string]bool // nil: every field
	if v := q.Get("$select"); v != "" {
		sel = map[string]bool{}
		for _, f := range strings.Split(v, ",") {
			sel[strings.ToLower(strings.TrimSpace(f))] = true
		}
	}
	offset := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		offset, _ = strconv.Atoi(strings.Split(tok, ".")[0])
	}
	end := min(offset+pageSize, len(items))
	offset = min(offset, end)
	var value []any
	for _, m := range items[offset:end] {
		if m.removed {
			value = append(value, map[string]any{"@odata.type": "#microsoft.graph.message", "id": m.ID, "@removed": map[string]any{"reason": "deleted"}})
			continue
		}
		item := map[string]any{
			"@odata.type": "#microsoft.graph.message", "@odata.etag": "W/\"CQAAABYAAAB\"",
			"id": m.ID, "receivedDateTime": m.Received.Format(time.RFC3339),
		}
		for k, v := range m.Fields {
			if sel == nil || sel[strings.ToLower(k)] {
				item[k] = v
			}
		}
		value = append(value, item)
	}
	page := map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)", "value": nonNil(value)}
	sinceUnix := int64(0)
	if !since.IsZero() {
		sinceUnix = since.Unix()
	}
	base := "https://" + r.Host + "/v1.0/users/" + url.PathEscape(user) + "/mailFolders/" + url.PathEscape(folder) + "/messages/delta()"
	// Graph keeps the query's $select in its tokens; the fake keeps it in the link.
	keep := ""
	if v := q.Get("$select"); v != "" {
		keep = "&%24select=" + url.QueryEscape(v)
	}
	if end < len(items) {
		page["@odata.nextLink"] = base + "?$skiptoken=" + fmt.Sprintf("%d.%d.%d.%d", end, after, snapshot, sinceUnix) + keep
	} else {
		page["@odata.deltaLink"] = base + "?$deltatoken=" + fmt.Sprintf("%d.%d", snapshot, sinceUnix) + keep
	}
	writeJSON(w, http.StatusOK, r, page)
}

// ---- helpers ----

func writeJSON(w http.ResponseWriter, status int, r *http.Request, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	if r != nil {
		h.Set("request-id", newGUID())
		h.Set("client-request-id", r.Header.Get("client-request-id"))
		h.Set("x-ms-ags-diagnostic", `{"ServerInfo":{"DataCenter":"West Europe","Slice":"E","Ring":"5","ScaleUnit":"003","RoleInstance":"AM1PEPF00000000"}}`)
	}
	b, _ := json.Marshal(v)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func newGUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
