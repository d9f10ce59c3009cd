// Package exofake is a fake Exchange Online (Admin API and the PowerShell V3
// module's InvokeCommand endpoint) and Microsoft Entra token service over HTTPS,
// for tests that drive the real exo executor and azidentity.
//
// One httptest TLS server answers every host name: the authority routes
// (/{tenant}/oauth2/v2.0/token, the OpenID configuration, instance discovery),
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
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"context"
)

// Hosts the certificate is valid for, besides localhost and the loopback addresses.
var Hosts = []string{
	"outlook.office365.com", "login.microsoftonline.com",
	"outlook.office365.us", "outlook-dod.office365.us", "login.microsoftonline.us",
	"outlook.office365.cn", "login.chinacloudapi.cn",
}

// Default identity of the fake tenant and app.
const (
	DefaultTenant   = "contoso.onmicrosoft.com"
	DefaultClientID = "00000000-1111-2222-3333-444444444444"
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

// Request is one request the fake received.
type Request struct {
	Method   string
	Host     string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
	Time     time.Time
}

// IsToken reports a token request.
func (r Request) IsToken() bool { return strings.HasSuffix(r.Path, "/oauth2/v2.0/token") }

// IsEXO reports an Admin API or InvokeCommand request.
func (r Request) IsEXO() bool { return strings.HasPrefix(r.Path, "/adminapi/") }

// Scope is the resource scope a token request asked for.
func (r Request) Scope() string {
	form, _ := url.ParseQuery(string(r.Body))
	for _, sc := range strings.Fields(form.Get("scope")) {
		if strings.HasSuffix(sc, "/.default") {
			return sc
		}
	}
	return ""
}

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
	*httptest.Server

	Tenant       string
	ClientID     string
	ClientSecret string
	// ClientCert, when set, is the certificate whose key must sign client
	// assertions (and no secret is accepted).
	ClientCert *x509.Certificate
	// PageSize is how many objects a page holds (default 2, to exercise paging).
	PageSize int
	// NextLinkHost, when set, is the host the nextLinks name instead of the
	// request's own (a link to elsewhere, which the client must not follow).
	NextLinkHost string

	caPEM  []byte
	caFile string

	mu       sync.Mutex
	requests []Request
	faults   []*Fault
	tokens   map[string]bool
	objects  map[string][]json.RawMessage // by lower-case cmdlet
	counter  int
}

// New starts a fake for t; it stops when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{Tenant: DefaultTenant, ClientID: DefaultClientID, ClientSecret: "fake-client-secret",
		PageSize: 2, tokens: map[string]bool{}, objects: map[string][]json.RawMessage{}}
	cert, err := selfSigned(append([]string{"localhost"}, Hosts...))
	if err != nil {
		t.Fatalf("exofake: certificate: %v", err)
	}
	s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	s.caFile = filepath.Join(t.TempDir(), "exofake-ca.pem")
	if err := os.WriteFile(s.caFile, s.caPEM, 0o600); err != nil {
		t.Fatalf("exofake: %v", err)
	}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Server.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// CAFile is a PEM file holding the fake's CA, for a target's ca_file.
func (s *Server) CAFile() string { return s.caFile }

// DialContext sends every connection to the fake, whatever the address; TLS
// still checks the name the client asked for against the fake's certificate.
func (s *Server) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, s.Listener.Addr().String())
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

// Requests returns every request so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
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

// TokenRequests returns the token requests.
func (s *Server) TokenRequests() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.IsToken() {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := Request{Method: r.Method, Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body, Time: time.Now()}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	switch {
	case rec.IsToken() && r.Method == http.MethodPost:
		s.token(w, r, body)
	case strings.HasSuffix(r.URL.Path, "/v2.0/.well-known/openid-configuration"):
		tenant := tenantOf(r.URL.Path)
		base := "https://" + r.Host + "/" + tenant
		writeJSON(w, http.StatusOK, nil, map[string]any{
			"token_endpoint": base + "/oauth2/v2.0/token", "authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"issuer": base + "/v2.0", "token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt"},
		})
	case r.URL.Path == "/common/discovery/instance":
		writeJSON(w, http.StatusOK, nil, map[string]any{
			"tenant_discovery_endpoint": "https://" + r.Host + "/" + s.Tenant + "/v2.0/.well-known/openid-configuration",
			"api-version":               "1.1",
			"metadata":                  []map[string]any{{"preferred_network": r.Host, "preferred_cache": r.Host, "aliases": []string{r.Host}}},
		})
	case rec.IsEXO():
		s.exo(w, r, rec)
	default:
		http.NotFound(w, r)
	}
}

func tenantOf(path string) string {
	t, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return t
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, nil, map[string]any{
		"error": code, "error_description": desc + "\r\nTrace ID: 0000\r\nCorrelation ID: 0000\r\nTimestamp: 2026-05-15 00:05:19Z",
		"error_codes": []int{0}, "trace_id": "0000", "correlation_id": "0000",
	})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: malformed body")
		return
	}
	switch {
	case !strings.EqualFold(tenantOf(r.URL.Path), s.Tenant):
		tokenError(w, http.StatusBadRequest, "invalid_request", "AADSTS90002: Tenant '"+tenantOf(r.URL.Path)+"' not found.")
		return
	case form.Get("grant_type") != "client_credentials":
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: grant type not supported")
		return
	case form.Get("client_id") != s.ClientID:
		tokenError(w, http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application with identifier '"+form.Get("client_id")+"' was not found in the directory.")
		return
	}
	if s.ClientCert != nil {
		if err := s.verifyAssertion(form, "https://"+r.Host+r.URL.Path); err != nil {
			tokenError(w, http.StatusUnauthorized, "invalid_client", "AADSTS700027: Client assertion failed signature validation: "+err.Error())
			return
		}
	} else if form.Get("client_secret") != s.ClientSecret || s.ClientSecret == "" {
		tokenError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		return
	}
	s.mu.Lock()
	s.counter++
	tok := fmt.Sprintf("fake-exo-token-%d-%s", s.counter, randomHex(8))
	s.tokens[tok] = true
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, nil, map[string]any{"token_type": "Bearer", "expires_in": 3599, "access_token": tok})
}

// verifyAssertion checks a client_assertion JWT (PS256 or RS256) against the
// configured certificate's key, and its audience, issuer and subject.
func (s *Server) verifyAssertion(form url.Values, tokenURL string) error {
	if form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		return fmt.Errorf("no client assertion")
	}
	parts := strings.Split(form.Get("client_assertion"), ".")
	if len(parts) != 3 {
		return fmt.Errorf("assertion is not a JWT")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Aud, Iss, Sub string
	}
	for i, v := range []any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, v); err != nil {
			return err
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	pub, ok := s.ClientCert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("configured certificate is not RSA")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch hdr.Alg {
	case "PS256":
		err = rsa.VerifyPSS(pub, crypto.SHA256, sum[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	case "RS256":
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
	default:
		err = fmt.Errorf("alg %q", hdr.Alg)
	}
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	if claims.Iss != s.ClientID || claims.Sub != s.ClientID || !strings.EqualFold(claims.Aud, tokenURL) {
		return fmt.Errorf("claims iss=%q sub=%q aud=%q", claims.Iss, claims.Sub, claims.Aud)
	}
	return nil
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
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	known := s.tokens[tok]
	s.mu.Unlock()
	if !ok || !known {
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
		if f.Reset {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					if tc, ok := conn.(*net.TCPConn); ok {
						_ = tc.SetLinger(0)
					} else if tc, ok := conn.(*tls.Conn); ok {
						if raw, ok := tc.NetConn().(*net.TCPConn); ok {
							_ = raw.SetLinger(0)
						}
					}
					_ = conn.Close()
					return
				}
			}
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

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func selfSigned(hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "exofake"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:        true, BasicConstraintsValid: true,
		DNSNames:    hosts,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
