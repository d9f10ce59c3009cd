package krbtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	gasn1 "github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/service"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Option adjusts an Acceptor: the quirks of real servers the client must cope
// with, and the failures it must report.
type Option func(*Acceptor)

// WithScheme sets the scheme the 401 offers and the acceptor expects:
// "Kerberos" (the default; Exchange's /PowerShell with its kerbauth module) or
// "Negotiate" (WinRM's /wsman, SPNEGO-wrapped).
func WithScheme(scheme string) Option {
	return func(a *Acceptor) { a.scheme = scheme }
}

// WithWrongServiceKey gives the server a key the KDC did not encrypt tickets
// with: an SPN registered on the wrong account, or a stale keytab.
func WithWrongServiceKey() Option {
	return func(a *Acceptor) { a.wrongKey = true }
}

// WithSealLayout sets how sealed replies are laid out: the RRC rotation
// (Windows: 28), the EC filler (Windows: 0), and whether the boundary is written
// "-- Encrypted Boundary" with a space, as Exchange does.
func WithSealLayout(rrc, ec int, spaced bool) Option {
	return func(a *Acceptor) { a.rrc, a.ec, a.spaced = rrc, ec, spaced }
}

// WithClearReplies answers sealed requests in clear text — what an attacker on
// the path could send; a client must refuse it.
func WithClearReplies() Option {
	return func(a *Acceptor) { a.clear = true }
}

// WithoutMutualToken accepts AP-REQs without sending an AP-REP back.
func WithoutMutualToken() Option {
	return func(a *Acceptor) { a.noToken = true }
}

// WithStaleAPRep answers with an AP-REP that does not echo the authenticator's
// time, as a replayed one from an earlier exchange would.
func WithStaleAPRep() Option {
	return func(a *Acceptor) { a.oldRep = true }
}

// Acceptor is the server side of Kerberos for one SPN: an http.Handler in front
// of a WS-Management handler. It must be attached to its server (Attach or
// NewServer), because Windows binds the security context of http message
// encryption to the TCP connection, and so does the acceptor.
//
//   - A request without Authorization is answered 401 with the scheme — unless
//     it is multipart/encrypted on a connection that completed a handshake: then
//     it is unsealed, passed to next as a plain SOAP request, and next's reply
//     (any status) is sealed back.
//   - A request with an AP-REQ is verified with the service key; a bad one gets
//     401 with a KRB-ERROR token. A good one gets the AP-REP (with an acceptor
//     subkey and sequence number, like Windows) in WWW-Authenticate; an empty
//     body is the http handshake (200), a body goes to next as is (https).
type Acceptor struct {
	realm *Realm
	spn   string
	next  http.Handler
	kt    *keytab.Keytab

	scheme   string
	wrongKey bool
	rrc, ec  int
	spaced   bool
	clear    bool
	noToken  bool
	oldRep   bool

	wire *wireLog

	mu         sync.Mutex
	handshakes int      // AP-REQs accepted
	received   [][]byte // SOAP bodies handed to next, decrypted
	tamper     bool     // flip a bit in the next sealed reply
}

// Handler returns the acceptor for spn in front of next. The SPN must exist
// (AddService) unless WithWrongServiceKey is given.
func (r *Realm) Handler(spn string, next http.Handler, opts ...Option) *Acceptor {
	r.t.Helper()
	a := &Acceptor{realm: r, spn: spn, next: next, scheme: "Kerberos", rrc: 28, wire: &wireLog{}}
	for _, o := range opts {
		o(a)
	}
	if a.scheme != "Kerberos" && a.scheme != "Negotiate" {
		r.t.Fatalf("krbtest: scheme %q is neither Kerberos nor Negotiate", a.scheme)
	}
	pw := ""
	if a.wrongKey {
		pw = randomPassword(r.t)
	}
	kt, err := r.keytabOf(spn, pw)
	if err != nil {
		r.t.Fatal(err)
	}
	a.kt = kt
	return a
}

// Attach binds the acceptor to an unstarted test server: per-connection
// security contexts, and a log of every byte clients send (Wire). The server's
// handler must be the acceptor (or lead to it).
func (a *Acceptor) Attach(srv *httptest.Server) {
	prev := srv.Config.ConnContext
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prev != nil {
			ctx = prev(ctx, c)
		}
		return context.WithValue(ctx, connKey{}, &connState{})
	}
	srv.Listener = &recordingListener{Listener: srv.Listener, log: a.wire}
}

// NewServer starts a test server for the acceptor, with TLS when tlsOn (https:
// Kerberos per request, no message encryption) or without (http: sealed
// messages). It is closed when the test ends.
func (a *Acceptor) NewServer(tlsOn bool) *httptest.Server {
	srv := httptest.NewUnstartedServer(a)
	a.Attach(srv)
	if tlsOn {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	a.realm.t.Cleanup(srv.Close)
	return srv
}

// TamperNextReply flips one bit of the next sealed reply's ciphertext.
func (a *Acceptor) TamperNextReply() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tamper = true
}

// Handshakes counts the AP-REQs the acceptor accepted.
func (a *Acceptor) Handshakes() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.handshakes
}

// Received returns the SOAP bodies handed to next, in order, after unsealing.
func (a *Acceptor) Received() [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([][]byte, len(a.received))
	for i, b := range a.received {
		out[i] = bytes.Clone(b)
	}
	return out
}

// Wire returns every byte clients sent to the attached server, as sent (TLS
// records on https), one connection after the other.
func (a *Acceptor) Wire() []byte { return bytes.Join(a.wire.conns(), nil) }

// WireConns returns the bytes clients sent, one slice per connection, so a
// test can parse them as HTTP requests.
func (a *Acceptor) WireConns() [][]byte { return a.wire.conns() }

type principalKey struct{}

// ClientPrincipal is the authenticated client ("svc-ndrbot@CORP.EXAMPLE.COM") of
// a request next receives from an Acceptor, or "".
func ClientPrincipal(ctx context.Context) string {
	s, _ := ctx.Value(principalKey{}).(string)
	return s
}

type connKey struct{}

// connState is the security context of one connection.
type connState struct {
	key       types.EncryptionKey
	sendSeq   uint64
	recvSeq   uint64
	principal string
}

// ServeHTTP implements http.Handler.
func (a *Acceptor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := a.realm.t
	cs, ok := r.Context().Value(connKey{}).(*connState)
	if !ok {
		t.Errorf("krbtest: the Acceptor for %s serves a server it was not attached to (call Attach before starting it)", a.spn)
		http.Error(w, "krbtest: acceptor not attached", http.StatusInternalServerError)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	authz := r.Header.Get("Authorization")
	if authz == "" && strings.HasPrefix(r.Header.Get("Content-Type"), encryptedType) && cs.key.KeyValue != nil {
		a.sealed(w, r, cs, body)
		return
	}
	if authz == "" {
		w.Header().Set("WWW-Authenticate", a.scheme)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	scheme, b64, _ := strings.Cut(authz, " ")
	tok, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || !strings.EqualFold(scheme, a.scheme) {
		http.Error(w, "bad authorization", http.StatusBadRequest)
		return
	}
	if a.scheme == "Negotiate" {
		var st spnego.SPNEGOToken
		if err := st.Unmarshal(tok); err != nil || !st.Init {
			http.Error(w, "bad spnego", http.StatusBadRequest)
			return
		}
		tok = st.NegTokenInit.MechTokenBytes
	}
	var oid gasn1.ObjectIdentifier
	rest, err := gasn1.UnmarshalWithParams(tok, &oid, "application,explicit,tag:0")
	if err != nil || len(rest) < 2 || rest[0] != 1 || rest[1] != 0 {
		http.Error(w, "bad krb5 token", http.StatusBadRequest)
		return
	}
	var ap messages.APReq
	if err := ap.Unmarshal(rest[2:]); err != nil {
		http.Error(w, "bad AP-REQ", http.StatusBadRequest)
		return
	}
	ok, _, err = service.VerifyAPREQ(&ap, service.NewSettings(a.kt, service.DecodePAC(false)))
	if !ok {
		code := int32(errorcode.KRB_AP_ERR_MODIFIED)
		var ke messages.KRBError
		if errors.As(err, &ke) {
			code = ke.ErrorCode
		}
		ke = messages.NewKRBError(ap.Ticket.SName, a.realm.name, code, "")
		kb, kerr := ke.Marshal()
		if kerr != nil {
			t.Errorf("krbtest: KRB-ERROR: %v", kerr)
		}
		w.Header().Set("WWW-Authenticate", a.scheme+" "+base64.StdEncoding.EncodeToString(a.frame(3, kb)))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	rep, fresh, err := a.apRep(&ap)
	if err != nil {
		t.Errorf("krbtest: building AP-REP: %v", err)
		http.Error(w, "krbtest: AP-REP", http.StatusInternalServerError)
		return
	}
	*cs = fresh
	a.mu.Lock()
	a.handshakes++
	a.mu.Unlock()
	if !a.noToken {
		w.Header().Set("WWW-Authenticate", a.scheme+" "+base64.StdEncoding.EncodeToString(a.frame(2, rep)))
	}
	if len(body) == 0 { // the http handshake
		w.WriteHeader(http.StatusOK)
		return
	}
	a.forward(w, r, cs.principal, body, r.Header.Get("Content-Type"))
}

// apRep answers a verified AP-REQ like Windows: with an acceptor subkey and a
// fresh sequence number, which the sealed messages that follow then use.
func (a *Acceptor) apRep(ap *messages.APReq) ([]byte, connState, error) {
	sub, err := types.GenerateEncryptionKey(mustEtype(encType))
	if err != nil {
		return nil, connState{}, err
	}
	var seqb [4]byte
	if _, err := rand.Read(seqb[:]); err != nil {
		return nil, connState{}, err
	}
	seq := int64(binary.BigEndian.Uint32(seqb[:]) & 0x3fffffff)
	part := messages.EncAPRepPart{CTime: ap.Authenticator.CTime, Cusec: ap.Authenticator.Cusec, Subkey: sub, SequenceNumber: seq}
	if a.oldRep {
		part.CTime = part.CTime.Add(-time.Minute)
	}
	pb, err := gasn1.Marshal(part)
	if err != nil {
		return nil, connState{}, err
	}
	ed, err := crypto.GetEncryptedData(asn1tools.AddASNAppTag(pb, 27), ap.Ticket.DecryptedEncPart.Key, keyusage.AP_REP_ENCPART, 0)
	if err != nil {
		return nil, connState{}, err
	}
	rb, err := gasn1.Marshal(messages.APRep{PVNO: 5, MsgType: msgtype.KRB_AP_REP, EncPart: ed})
	if err != nil {
		return nil, connState{}, err
	}
	cname := ap.Ticket.DecryptedEncPart.CName.PrincipalNameString() + "@" + ap.Ticket.DecryptedEncPart.CRealm
	return asn1tools.AddASNAppTag(rb, 15), connState{
		key:       sub,
		sendSeq:   uint64(seq),
		recvSeq:   uint64(ap.Authenticator.SeqNumber),
		principal: cname,
	}, nil
}

// frame wraps a Kerberos message as a krb5 token (tokID 0x0200 AP-REP, 0x0300
// KRB-ERROR), inside a NegTokenResp for Negotiate.
func (a *Acceptor) frame(id byte, msg []byte) []byte {
	oid, _ := gasn1.Marshal(gssapi.OIDKRB5.OID())
	tok := asn1tools.AddASNAppTag(append(append(oid, id, 0), msg...), 0)
	if a.scheme != "Negotiate" {
		return tok
	}
	state := gasn1.Enumerated(spnego.NegStateAcceptCompleted)
	if id == 3 {
		state = gasn1.Enumerated(spnego.NegStateReject)
	}
	resp := spnego.NegTokenResp{NegState: state, SupportedMech: gssapi.OIDKRB5.OID(), ResponseToken: tok}
	b, err := resp.Marshal()
	if err != nil {
		a.realm.t.Errorf("krbtest: NegTokenResp: %v", err)
	}
	return b
}

// forward hands an authenticated plain request to next, writing its reply as is.
func (a *Acceptor) forward(w http.ResponseWriter, r *http.Request, principal string, body []byte, ctype string) {
	a.record(body)
	a.next.ServeHTTP(w, plainRequest(r, principal, body, ctype))
}

// plainRequest is r as next sees it: the decrypted body, its original content
// type, and the authenticated principal in the context.
func plainRequest(r *http.Request, principal string, body []byte, ctype string) *http.Request {
	r2 := r.Clone(context.WithValue(r.Context(), principalKey{}, principal))
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	r2.Header.Set("Content-Length", strconv.Itoa(len(body)))
	r2.Header.Set("Content-Type", ctype)
	return r2
}

func (a *Acceptor) record(plain []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.received = append(a.received, bytes.Clone(plain))
}

// sealed handles one encrypted request with the connection's context.
func (a *Acceptor) sealed(w http.ResponseWriter, r *http.Request, cs *connState, body []byte) {
	t := a.realm.t
	wantProto := protocolKerberos
	if a.scheme == "Negotiate" {
		wantProto = protocolSPNEGO
	}
	if !strings.Contains(r.Header.Get("Content-Type"), `protocol="`+wantProto+`"`) {
		http.Error(w, "wrong protocol", http.StatusBadRequest)
		return
	}
	plain, ctype, err := open(cs, body)
	if err != nil {
		t.Errorf("krbtest: acceptor could not open the request: %v", err)
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	a.record(plain)
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	a.next.ServeHTTP(rec, plainRequest(r, cs.principal, plain, ctype))
	a.mu.Lock()
	tamper := a.tamper
	a.tamper = false
	a.mu.Unlock()
	for k, v := range rec.header {
		if k != "Content-Type" && k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	if a.clear {
		w.Header().Set("Content-Type", cmpStr(rec.header.Get("Content-Type"), "application/soap+xml;charset=UTF-8"))
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
		return
	}
	out, err := seal(cs, rec.body.Bytes(), a.rrc, a.ec, a.spaced, wantProto)
	if err != nil {
		t.Errorf("krbtest: sealing the reply: %v", err)
		http.Error(w, "krbtest: seal", http.StatusInternalServerError)
		return
	}
	if tamper {
		out[len(out)-len("--Encrypted Boundary--\r\n")-3] ^= 0x01
	}
	w.Header().Set("Content-Type", encryptedType+`;protocol="`+wantProto+`";boundary="Encrypted Boundary"`)
	w.WriteHeader(rec.status)
	_, _ = w.Write(out)
}

func cmpStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// recorder buffers next's reply so it can be sealed as a whole.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}

// wireLog keeps every byte clients sent to the server, per connection.
type wireLog struct {
	mu   sync.Mutex
	bufs []*bytes.Buffer
}

func (w *wireLog) conn() *bytes.Buffer {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := &bytes.Buffer{}
	w.bufs = append(w.bufs, b)
	return b
}

func (w *wireLog) conns() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([][]byte, len(w.bufs))
	for i, b := range w.bufs {
		out[i] = bytes.Clone(b.Bytes())
	}
	return out
}

type recordingListener struct {
	net.Listener
	log *wireLog
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, log: l.log, buf: l.log.conn()}, nil
}

type recordingConn struct {
	net.Conn
	log *wireLog
	buf *bytes.Buffer // guarded by log.mu
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.log.mu.Lock()
	c.buf.Write(p[:n])
	c.log.mu.Unlock()
	return n, err
}
