package kerberos

// Test fakes: a minimal KDC on loopback TCP (AS-REQ and TGS-REQ, RFC 4120 §7.2.2
// framing) built from gokrb5's message types, and an HTTP acceptor that verifies
// AP-REQs with gokrb5's service package and seals and unseals WS-Management
// messages with its own, independent Wrap token code (below), so a mistake in
// wrap.go is not mirrored by the server.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gasn1 "github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/crypto/etype"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/service"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"
)

const (
	testRealm    = "CORP.EXAMPLE.COM"
	testUser     = "svc-ndrbot"
	testPassword = "Tr0ub4dor&3-never-print-me"
	testHost     = "ex01.corp.example.com"
	testSPN      = "HTTP/" + testHost
	aes256       = etypeID.AES256_CTS_HMAC_SHA1_96
)

// kdc is the fake KDC. keys holds every principal's long-term key.
type kdc struct {
	t    *testing.T
	ln   net.Listener
	keys *keytab.Keytab
	tgs  atomic.Int32 // TGS-REQs answered
	as   atomic.Int32
}

func newKDC(t *testing.T) *kdc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &kdc{t: t, ln: ln, keys: keytab.New()}
	now := time.Now()
	must(t, k.keys.AddEntry(testUser, testRealm, testPassword, now, 1, aes256))
	must(t, k.keys.AddEntry("krbtgt/"+testRealm, testRealm, randString(t), now, 1, aes256))
	must(t, k.keys.AddEntry(testSPN, testRealm, "service-account-password", now, 1, aes256))
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); k.serve(c) }()
		}
	}()
	return k
}

// serviceKeytab is what the server holds: its own key only.
func (k *kdc) serviceKeytab(t *testing.T, password string) *keytab.Keytab {
	kt := keytab.New()
	must(t, kt.AddEntry(testSPN, testRealm, password, time.Now(), 1, aes256))
	return kt
}

// krb5conf writes a krb5.conf pointing at this KDC over TCP.
func (k *kdc) krb5conf(t *testing.T) string {
	conf := fmt.Sprintf(`[libdefaults]
  default_realm = %[1]s
  dns_lookup_kdc = false
  dns_lookup_realm = false
  udp_preference_limit = 1
  default_tkt_enctypes = aes256-cts-hmac-sha1-96
  default_tgs_enctypes = aes256-cts-hmac-sha1-96
  permitted_enctypes = aes256-cts-hmac-sha1-96

[realms]
  %[1]s = {
    kdc = %[2]s
  }

[domain_realm]
  .corp.example.com = %[1]s
`, testRealm, k.ln.Addr().String())
	p := filepath.Join(t.TempDir(), "krb5.conf")
	must(t, os.WriteFile(p, []byte(conf), 0o600))
	return p
}

func (k *kdc) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return
	}
	req := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(c, req); err != nil {
		return
	}
	rep, err := k.answer(req)
	if err != nil {
		k.t.Logf("fake KDC: %v", err)
		return
	}
	out := make([]byte, 4+len(rep))
	binary.BigEndian.PutUint32(out, uint32(len(rep)))
	copy(out[4:], rep)
	_, _ = c.Write(out)
}

func (k *kdc) answer(req []byte) ([]byte, error) {
	now := time.Now().UTC().Truncate(time.Second)
	end := now.Add(10 * time.Hour)
	var as messages.ASReq
	if err := as.Unmarshal(req); err == nil {
		k.as.Add(1)
		ckey, _, err := k.keys.GetEncryptionKey(as.ReqBody.CName, testRealm, 0, aes256)
		if err != nil {
			return krbError(as.ReqBody.SName, errorcode.KDC_ERR_C_PRINCIPAL_UNKNOWN)
		}
		tgt, skey, err := messages.NewTicket(as.ReqBody.CName, testRealm, as.ReqBody.SName, testRealm,
			types.NewKrbFlags(), k.keys, aes256, 1, now, now, end, end)
		if err != nil {
			return nil, err
		}
		return kdcRep(msgtype.KRB_AS_REP, as.ReqBody, tgt, skey, ckey, keyusage.AS_REP_ENCPART, now, end)
	}
	var tgs messages.TGSReq
	if err := tgs.Unmarshal(req); err != nil {
		return nil, fmt.Errorf("neither AS-REQ nor TGS-REQ: %w", err)
	}
	k.tgs.Add(1)
	var ap messages.APReq
	if err := ap.Unmarshal(tgs.PAData[0].PADataValue); err != nil {
		return nil, err
	}
	if err := ap.Ticket.DecryptEncPart(k.keys, nil); err != nil {
		return nil, fmt.Errorf("TGT: %w", err)
	}
	tgtKey := ap.Ticket.DecryptedEncPart.Key
	if _, _, err := k.keys.GetEncryptionKey(tgs.ReqBody.SName, testRealm, 0, aes256); err != nil {
		return krbError(tgs.ReqBody.SName, errorcode.KDC_ERR_S_PRINCIPAL_UNKNOWN)
	}
	st, skey, err := messages.NewTicket(ap.Ticket.DecryptedEncPart.CName, testRealm, tgs.ReqBody.SName, testRealm,
		types.NewKrbFlags(), k.keys, aes256, 1, now, now, end, end)
	if err != nil {
		return nil, err
	}
	body := tgs.ReqBody
	body.CName = ap.Ticket.DecryptedEncPart.CName
	return kdcRep(msgtype.KRB_TGS_REP, body, st, skey, tgtKey, keyusage.TGS_REP_ENCPART_SESSION_KEY, now, end)
}

func kdcRep(mt int, body messages.KDCReqBody, tkt messages.Ticket, skey, replyKey types.EncryptionKey, usage uint32, now, end time.Time) ([]byte, error) {
	part := messages.EncKDCRepPart{
		Key:       skey,
		LastReqs:  []messages.LastReq{{LRType: 0, LRValue: now}},
		Nonce:     body.Nonce,
		Flags:     types.NewKrbFlags(),
		AuthTime:  now,
		StartTime: now,
		EndTime:   end,
		RenewTill: end,
		SRealm:    testRealm,
		SName:     body.SName,
	}
	pb, err := part.Marshal()
	if err != nil {
		return nil, err
	}
	ed, err := crypto.GetEncryptedData(pb, replyKey, usage, 1)
	if err != nil {
		return nil, err
	}
	f := messages.KDCRepFields{PVNO: 5, MsgType: mt, CRealm: testRealm, CName: body.CName, Ticket: tkt, EncPart: ed}
	if mt == msgtype.KRB_AS_REP {
		return (&messages.ASRep{KDCRepFields: f}).Marshal()
	}
	return (&messages.TGSRep{KDCRepFields: f}).Marshal()
}

func krbError(sname types.PrincipalName, code int32) ([]byte, error) {
	e := messages.NewKRBError(sname, testRealm, code, "")
	return e.Marshal()
}

// acceptor is the fake WinRM/Exchange endpoint.
type acceptor struct {
	t       *testing.T
	scheme  string // what the 401 offers: "Kerberos" or "Negotiate"
	kt      *keytab.Keytab
	srv     *httptest.Server
	wire    *wireLog
	mu      sync.Mutex
	plain   [][]byte // envelopes the server decrypted
	auths   int      // AP-REQs accepted
	tamper  bool     // flip a bit in the next sealed reply
	clear   bool     // answer sealed requests in clear text
	rrc     int      // RRC for sealed replies (exercises the client's unrotation)
	ec      int      // filler for sealed replies
	spaced  bool     // write "-- Encrypted Boundary" like Exchange
	fault   bool     // answer HTTP 500 with a SOAP fault
	noToken bool     // accept without a mutual-authentication token
	oldRep  bool     // AP-REP that does not echo the authenticator's time
}

type connKey struct{}

// connState is the acceptor's security context of one connection.
type connState struct {
	key     types.EncryptionKey
	sendSeq uint64
	recvSeq uint64
}

func newAcceptor(t *testing.T, kt *keytab.Keytab, scheme string, tlsOn bool) *acceptor {
	a := &acceptor{t: t, scheme: scheme, kt: kt, wire: &wireLog{}}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(a.handle))
	a.srv.Listener = &recordingListener{Listener: a.srv.Listener, log: a.wire}
	a.srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, &connState{})
	}
	if tlsOn {
		a.srv.StartTLS()
	} else {
		a.srv.Start()
	}
	t.Cleanup(a.srv.Close)
	return a
}

// dialer sends every connection for the fake host names to the test server.
func (a *acceptor) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, a.srv.Listener.Addr().String())
	}
}

func (a *acceptor) handle(w http.ResponseWriter, r *http.Request) {
	cs := r.Context().Value(connKey{}).(*connState)
	body, _ := io.ReadAll(r.Body)
	authz := r.Header.Get("Authorization")
	if authz == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/encrypted") && cs.key.KeyValue != nil {
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
	if scheme == "Negotiate" {
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
	ok, _, err := service.VerifyAPREQ(&ap, service.NewSettings(a.kt, service.DecodePAC(false)))
	if !ok {
		code := int32(errorcode.KRB_AP_ERR_MODIFIED)
		if ke, isKE := err.(messages.KRBError); isKE {
			code = ke.ErrorCode
		}
		kb, _ := krbError(ap.Ticket.SName, code)
		w.Header().Set("WWW-Authenticate", scheme+" "+base64.StdEncoding.EncodeToString(a.frame(scheme, 3, kb)))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	// Like Windows: answer with an acceptor subkey and a fresh sequence number.
	sub, err := types.GenerateEncryptionKey(mustEtype(a.t, aes256))
	must(a.t, err)
	var seqb [4]byte
	_, _ = rand.Read(seqb[:])
	seq := int64(binary.BigEndian.Uint32(seqb[:]) & 0x3fffffff)
	part := messages.EncAPRepPart{CTime: ap.Authenticator.CTime, Cusec: ap.Authenticator.Cusec, Subkey: sub, SequenceNumber: seq}
	if a.oldRep { // a replayed AP-REP from an earlier exchange
		part.CTime = part.CTime.Add(-time.Minute)
	}
	pb, err := gasn1.Marshal(part)
	must(a.t, err)
	ed, err := crypto.GetEncryptedData(asn1tools.AddASNAppTag(pb, 27), ap.Ticket.DecryptedEncPart.Key, keyusage.AP_REP_ENCPART, 0)
	must(a.t, err)
	rb, err := gasn1.Marshal(messages.APRep{PVNO: 5, MsgType: msgtype.KRB_AP_REP, EncPart: ed})
	must(a.t, err)
	*cs = connState{key: sub, sendSeq: uint64(seq), recvSeq: uint64(ap.Authenticator.SeqNumber)}
	a.mu.Lock()
	a.auths++
	noToken := a.noToken
	a.mu.Unlock()
	if !noToken {
		w.Header().Set("WWW-Authenticate", scheme+" "+base64.StdEncoding.EncodeToString(a.frame(scheme, 2, asn1tools.AddASNAppTag(rb, 15))))
	}
	if len(body) == 0 { // the http handshake
		w.WriteHeader(http.StatusOK)
		return
	}
	a.record(body)
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	_, _ = w.Write(reply(body))
}

// frame wraps a Kerberos message as a krb5 token (tokID 0x0200 AP-REP, 0x0300
// KRB-ERROR), inside a NegTokenResp for Negotiate.
func (a *acceptor) frame(scheme string, id byte, msg []byte) []byte {
	oid, _ := gasn1.Marshal(gssapi.OIDKRB5.OID())
	tok := asn1tools.AddASNAppTag(append(append(oid, id, 0), msg...), 0)
	if scheme != "Negotiate" {
		return tok
	}
	state := gasn1.Enumerated(spnego.NegStateAcceptCompleted)
	if id == 3 {
		state = gasn1.Enumerated(spnego.NegStateReject)
	}
	resp := spnego.NegTokenResp{NegState: state, SupportedMech: gssapi.OIDKRB5.OID(), ResponseToken: tok}
	b, err := resp.Marshal()
	must(a.t, err)
	return b
}

func (a *acceptor) record(plain []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.plain = append(a.plain, plain)
}

// reply is the fake's answer to an envelope: it quotes the request's marker.
func reply(req []byte) []byte {
	marker := "none"
	if i := bytes.Index(req, []byte("MARK-")); i >= 0 {
		end := bytes.IndexByte(req[i:], '<')
		if end < 0 {
			end = len(req) - i
		}
		marker = string(req[i : i+end])
	}
	return []byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><Reply>REPLY-TO-` + marker + `</Reply></s:Body></s:Envelope>`)
}

const testFault = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value></s:Code>` +
	`<s:Reason><s:Text>The WS-Management service cannot complete the operation within the time specified in OperationTimeout.</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>`

// sealed handles one encrypted request with the connection's context.
func (a *acceptor) sealed(w http.ResponseWriter, r *http.Request, cs *connState, body []byte) {
	wantProto := protocolKerberos
	if a.scheme == "Negotiate" {
		wantProto = protocolSPNEGO
	}
	if !strings.Contains(r.Header.Get("Content-Type"), `protocol="`+wantProto+`"`) {
		http.Error(w, "wrong protocol", http.StatusBadRequest)
		return
	}
	plain, err := testOpen(cs, body)
	if err != nil {
		a.t.Errorf("acceptor could not open the request: %v", err)
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	a.record(plain)
	a.mu.Lock()
	tamper, clear, rrc, ec, spaced, fault := a.tamper, a.clear, a.rrc, a.ec, a.spaced, a.fault
	a.tamper = false
	a.mu.Unlock()
	out, status := reply(plain), http.StatusOK
	if fault {
		out, status = []byte(testFault), http.StatusInternalServerError
	}
	if clear {
		w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
		w.WriteHeader(status)
		_, _ = w.Write(out)
		return
	}
	sealedOut := testSeal(a.t, cs, out, rrc, ec, spaced, wantProto)
	if tamper {
		sealedOut[len(sealedOut)-len("--Encrypted Boundary--\r\n")-3] ^= 0x01
	}
	w.Header().Set("Content-Type", contentType(wantProto))
	w.WriteHeader(status)
	_, _ = w.Write(sealedOut)
}

// testOpen is the acceptor's own reading of [MS-WSMV] framing and RFC 4121 §4.2.4,
// written apart from wrap.go: split the parts, take the signature length, undo the
// rotation, decrypt with KG-USAGE-INITIATOR-SEAL and check the inner header.
func testOpen(cs *connState, body []byte) ([]byte, error) {
	const octet = "\tContent-Type: application/octet-stream\r\n"
	i := bytes.Index(body, []byte(octet))
	j := bytes.LastIndex(body, []byte("--Encrypted Boundary--\r\n"))
	if i < 0 || j < i {
		return nil, fmt.Errorf("framing")
	}
	var length int
	if _, err := fmt.Sscanf(string(body[bytes.Index(body, []byte("Length="))+7:]), "%d", &length); err != nil {
		return nil, err
	}
	p := body[i+len(octet) : j]
	sigLen := int(binary.LittleEndian.Uint32(p))
	tok := p[4:]
	if len(tok)-sigLen != length {
		return nil, fmt.Errorf("encrypted data is %d bytes, plaintext %d", len(tok)-sigLen, length)
	}
	hdr := tok[:16]
	if hdr[0] != 5 || hdr[1] != 4 || hdr[2] != 0x06 || hdr[3] != 0xff { // sealed | acceptor subkey, from initiator
		return nil, fmt.Errorf("header % x", hdr)
	}
	ec := int(binary.BigEndian.Uint16(hdr[4:6]))
	rrc := int(binary.BigEndian.Uint16(hdr[6:8]))
	if ec != 0 || rrc != 28 || sigLen != 16+28+16 {
		return nil, fmt.Errorf("not the Windows layout: EC %d RRC %d signature %d", ec, rrc, sigLen)
	}
	if seq := binary.BigEndian.Uint64(hdr[8:]); seq != cs.recvSeq {
		return nil, fmt.Errorf("sequence %d, want %d", seq, cs.recvSeq)
	}
	cs.recvSeq++
	rest := tok[16:]
	rest = append(append([]byte{}, rest[rrc:]...), rest[:rrc]...)
	pt, err := crypto.DecryptMessage(rest, cs.key, 24)
	if err != nil {
		return nil, err
	}
	inner := pt[len(pt)-16:]
	want := append([]byte{}, hdr...)
	want[6], want[7] = 0, 0
	if !bytes.Equal(inner, want) {
		return nil, fmt.Errorf("inner header % x", inner)
	}
	return pt[:len(pt)-16-ec], nil
}

// testSeal is the acceptor's sealing: KG-USAGE-ACCEPTOR-SEAL, flags SentByAcceptor
// | Sealed | AcceptorSubkey, with the given filler and rotation.
func testSeal(t *testing.T, cs *connState, msg []byte, rrc, ec int, spaced bool, proto string) []byte {
	hdr := []byte{5, 4, 0x07, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(hdr[4:6], uint16(ec))
	binary.BigEndian.PutUint64(hdr[8:], cs.sendSeq)
	cs.sendSeq++
	pt := append(append(append([]byte{}, msg...), bytes.Repeat([]byte{0xff}, ec)...), hdr...)
	et := mustEtype(t, cs.key.KeyType)
	_, ct, err := et.EncryptMessage(cs.key.KeyValue, pt, 22)
	must(t, err)
	binary.BigEndian.PutUint16(hdr[6:8], uint16(rrc))
	n := rrc % len(ct)
	tok := append(append(append([]byte{}, hdr...), ct[len(ct)-n:]...), ct[:len(ct)-n]...)
	// Split so the data part has len(msg) bytes, as Windows does; with filler the
	// "signature" grows by EC.
	sigLen := len(tok) - len(msg)
	b := "--"
	if spaced {
		b = "-- "
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%sEncrypted Boundary\r\n\tContent-Type: %s\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=%d\r\n", b, proto, len(msg))
	fmt.Fprintf(&out, "%sEncrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n", b)
	var l [4]byte
	binary.LittleEndian.PutUint32(l[:], uint32(sigLen))
	out.Write(l[:])
	out.Write(tok)
	fmt.Fprintf(&out, "%sEncrypted Boundary--\r\n", b)
	return out.Bytes()
}

// wireLog keeps every byte clients sent to the server.
type wireLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *wireLog) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]byte{}, w.buf.Bytes()...)
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
	return &recordingConn{Conn: c, log: l.log}, nil
}

type recordingConn struct {
	net.Conn
	log *wireLog
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.log.mu.Lock()
	c.log.buf.Write(p[:n])
	c.log.mu.Unlock()
	return n, err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustEtype(t *testing.T, id int32) etype.EType {
	et, err := crypto.GetEtype(id)
	must(t, err)
	return et
}

func randString(t *testing.T) string {
	b := make([]byte, 24)
	_, err := rand.Read(b)
	must(t, err)
	return base64.StdEncoding.EncodeToString(b)
}
