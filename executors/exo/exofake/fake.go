// Package exofake is a fake Exchange Online (Admin API and the PowerShell V3
// module's InvokeCommand endpoint) and Microsoft Entra token service over HTTPS,
// for tests that drive the real exo executor and azidentity.
//
// One httptest TLS server answers every host name: the authority routes
// (/{tenant}/oauth2/v2.0/token, the OpenID configuration, instance discovery:
// the fake authority graphfake serves too, entrafake.Authority),
// POST /adminapi/v2.0/{tenant}/{Endpoint} for the Admin API's six endpoints and
// POST /adminapi/beta/{tenant}/InvokeCommand. Its certificate is valid for the
// Exchange Online and login hosts of every national cloud and for localhost; a
// client trusts it through CAFile and reaches the cloud names through
// DialContext.
//
// Objects are set per cmdlet and served in pages of PageSize with an
// @odata.nextLink that is POSTed again with the same body, as Learn describes
// for the Admin API. Faults are programmable (status, Retry-After, an Exchange
// error body or x-ms-diagnostics, connection resets, a foreign nextLink), and
// every request is recorded.
package exofake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ndrbot/ndrbot/executors/internal/entra/entrafake"
)

// Hosts the certificate is valid for, besides localhost and the loopback addresses.
var Hosts = []string{
	"outlook.office365.com", "login.microsoftonline.com",
	"outlook.office365.us", "outlook-dod.office365.us", "login.microsoftonline.us",
	"outlook.office365.cn", "login.chinacloudapi.cn",
}

// Default identity of the fake tenant and app.
const (
	DefaultTenant   = entrafake.DefaultTenant
	DefaultClientID = entrafake.DefaultClientID
)

// Endpoints maps each Admin API endpoint to the one read cmdlet the fake
// accepts in its body (Learn: "Any other cmdlet in the body of this endpoint
// results in an error").
var Endpoints = map[string]string{
	"AcceptedDomain":                 "Get-AcceptedDomain",
	"OrganizationConfig":             "Get-OrganizationConfig",
	"Mailbox":                        "Get-Mailbox",
	"MailboxFolderPermission":        "Get-MailboxFolderPermission",
	"DistributionGroupMember":        "Get-DistributionGroupMember",
	"DynamicDistributionGroupMember": "Get-DynamicDistributionGroupMember",
}

// Request is one request the fake received (method, host, path, query, headers,
// body, time; IsToken, Scope and Query are entrafake.Request's).
type Request struct{ entrafake.Request }

// IsEXO reports an Admin API or InvokeCommand request.
func (r Request) IsEXO() bool { return strings.HasPrefix(r.Path, "/adminapi/") }

// CmdletInput is the body both routes take.
type CmdletInput struct {
	CmdletInput struct {
		CmdletName string         `json:"CmdletName"`
		Parameters map[string]any `json:"Parameters"`
	} `json:"CmdletInput"`
}

// Input decodes the request's CmdletInput.
func (r Request) Input() (CmdletInput, error) {
	var in CmdletInput
	err := json.Unmarshal(r.Body, &in)
	return in, err
}

// Fault makes matching requests fail.
type Fault struct {
	// Cmdlet matches the CmdletName of the body; "" matches every request.
	Cmdlet string
	// Times is how many matching requests fail before the fault clears; negative
	// never clears.
	Times int
	// Status of the answer (503 when zero).
	Status int
	// RetryAfter is the Retry-After header ("2", or an HTTP date); "" sends none.
	RetryAfter string
	// Body is the answer's body as is; empty sends none.
	Body string
	// Diagnostics is the x-ms-diagnostics header, "" none.
	Diagnostics string
	// Reset drops the connection instead of answering.
	Reset bool

	hits int
}

// Server is the fake. Its zero value is not usable: call New.
type Server struct {
	// Site is the TLS server (URL, CAFile, DialContext …).
	*entrafake.Site
	// Authority is the token service (Tenant, ClientID, ClientSecret, ClientCert).
	*entrafake.Authority
	// RequestLog records every request (Requests, TokenRequests, ResetRequests).
	entrafake.RequestLog[Request]
	// PageSize is how many objects a page holds (default 2, to exercise paging).
	PageSize int
	// NextLinkHost, when set, is the host the nextLinks name instead of the
	// request's own (a link to elsewhere, which the client must not follow).
	NextLinkHost string

	mu      sync.Mutex
	faults  []*Fault
	objects map[string][]json.RawMessage // by lower-case cmdlet
}

// New starts a fake for t; it stops when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{Authority: entrafake.NewAuthority("fake-exo-token"), PageSize: 2, objects: map[string][]json.RawMessage{}}
	s.Site = entrafake.StartSite(t, "exofake", Hosts, http.HandlerFunc(s.serve))
	return s
}

// SetObjects sets what cmdlet returns: each item one JSON object as Exchange
// Online writes it.
func (s *Server) SetObjects(cmdlet string, items ...json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[strings.ToLower(cmdlet)] = items
}

// AddFault queues a fault.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// EXORequests returns the Admin API and InvokeCommand requests.
func (s *Server) EXORequests() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.IsEXO() {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rec := Request{entrafake.Received(r)}
	s.Record(rec)
	switch {
	case s.Handle(w, r, rec.Body):
	case rec.IsEXO():
		s.exo(w, r, rec)
	default:
		http.NotFound(w, r)
	}
}

// exoError writes an Exchange Online OData error with the response headers the
// Exchange front end adds (request-id, client-request-id when asked for).
func exoError(w http.ResponseWriter, r *http.Request, status int, code, message, detail string) {
	e := map[string]any{"code": code, "message": message,
		"innererror": map[string]any{"message": message, "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException", "stacktrace": ""}}
	if detail != "" {
		e["details"] = []map[string]any{{"code": "Client", "target": "", "message": detail}}
	}
	writeJSON(w, status, ids(r), map[string]any{"error": e})
}

// ids are the response headers that identify a request
// (Learn, "Instrumenting client requests for EWS and REST in Exchange").
func ids(r *http.Request) http.Header {
	h := http.Header{}
	h.Set("request-id", newGUID())
	if strings.EqualFold(r.Header.Get("return-client-request-id"), "true") {
		h.Set("client-request-id", r.Header.Get("client-request-id"))
	}
	h.Set("X-FEServer", "FAKEFE01")
	return h
}

func (s *Server) matchFault(cmdlet string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Cmdlet != "" && !strings.EqualFold(f.Cmdlet, cmdlet) {
			continue
		}
		f.hits++
		if f.Times >= 0 && f.hits >= f.Times {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return f
	}
	return nil
}

func (s *Server) exo(w http.ResponseWriter, r *http.Request, rec Request) {
	if r.Method != http.MethodPost {
		exoError(w, r, http.StatusMethodNotAllowed, "MethodNotAllowed", "The Admin API takes POST only.", "")
		return
	}
	if !s.Authorized(r.Header.Get("Authorization")) {
		h := ids(r)
		h.Set("WWW-Authenticate", `Bearer client_id="00000002-0000-0ff1-ce00-000000000000", trusted_issuers="00000001-0000-0000-c000-000000000000@*"`)
		h.Set("x-ms-diagnostics", `2000001;reason="The token is missing or not valid.";error_category="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, h, nil)
		return
	}
	// /adminapi/{version}/{tenant}/{endpoint}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 4 || !strings.EqualFold(parts[2], s.Tenant) {
		exoError(w, r, http.StatusNotFound, "NotFound", "No such route or tenant.", "")
		return
	}
	version, endpoint := parts[1], parts[3]
	in, err := rec.Input()
	if err != nil || in.CmdletInput.CmdletName == "" {
		exoError(w, r, http.StatusBadRequest, "BadRequest", "The body is not a CmdletInput.", "")
		return
	}
	cmdlet := in.CmdletInput.CmdletName
	switch {
	case version == "v2.0":
		want, ok := Endpoints[endpoint]
		if !ok || !strings.EqualFold(want, cmdlet) {
			exoError(w, r, http.StatusBadRequest, "BadRequest", "Invalid Operation", "")
			return
		}
	case version == "beta" && endpoint == "InvokeCommand":
		if !strings.EqualFold(r.Header.Get("X-CmdletName"), cmdlet) {
			exoError(w, r, http.StatusBadRequest, "BadRequest", "X-CmdletName does not name the cmdlet of the body.", "")
			return
		}
	default:
		exoError(w, r, http.StatusNotFound, "NotFound", "No such route.", "")
		return
	}
	if f := s.matchFault(cmdlet); f != nil {
		if f.Reset && entrafake.ResetConnection(w) {
			return
		}
		status := f.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		h := ids(r)
		if f.RetryAfter != "" {
			h.Set("Retry-After", f.RetryAfter)
		}
		if f.Diagnostics != "" {
			h.Set("x-ms-diagnostics", f.Diagnostics)
		}
		for k, v := range h {
			w.Header()[k] = v
		}
		if f.Body != "" {
			w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, f.Body)
		return
	}
	s.mu.Lock()
	items, known := s.objects[strings.ToLower(cmdlet)]
	s.mu.Unlock()
	if !known {
		exoError(w, r, http.StatusBadRequest, "BadRequest", "Invalid Operation", "")
		return
	}
	skip, _ := strconv.Atoi(r.URL.Query().Get("$skiptoken"))
	end := min(skip+s.PageSize, len(items))
	if skip > len(items) {
		skip = len(items)
	}
	page := map[string]any{
		"@odata.context": "https://" + r.Host + "/adminapi/" + version + "/$metadata#Collection(Exchange.GenericHashTable)",
		"value":          items[skip:end],
	}
	if end < len(items) {
		host := r.Host
		if s.NextLinkHost != "" {
			host = s.NextLinkHost
		}
		q := r.URL.Query()
		q.Set("$skiptoken", strconv.Itoa(end))
		page["@odata.nextLink"] = "https://" + host + r.URL.Path + "?" + q.Encode()
	}
	writeJSON(w, http.StatusOK, ids(r), page)
}

func writeJSON(w http.ResponseWriter, status int, h http.Header, v any) {
	for k, vs := range h {
		w.Header()[k] = vs
	}
	if v == nil {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
