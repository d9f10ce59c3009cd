// Package krbtest is for tests only: an in-process Kerberos realm on loopback
// (a minimal KDC answering AS-REQ and TGS-REQ over TCP, RFC 4120 §7.2.2 framing,
// built from gokrb5's message types) and the server side of Kerberos for
// WS-Management endpoints: an http.Handler that verifies AP-REQs with gokrb5's
// service package, answers with mutual-authentication tokens like Windows, and
// on http unseals and seals [MS-WSMV] multipart/encrypted messages with its own
// RFC 4121 Wrap token code — written apart from executors/wsman/kerberos, so a
// mistake in the client's wrap.go is not mirrored by the server.
//
//	realm := krbtest.NewRealm(t, "CORP.EXAMPLE.COM")
//	realm.AddUser("svc-ndrbot", "password")
//	realm.AddService("HTTP/ex01.corp.example.com")
//	acc := realm.Handler("HTTP/ex01.corp.example.com", soapHandler)
//	srv := acc.NewServer(false) // http: every envelope sealed
//	// client: krb5.conf at realm.Krb5Conf(), keytabs from realm.KeytabFile(name)
//
// Nothing here is hardened or complete: no pre-authentication, no PAC, AES256
// only, one realm. It must never serve real traffic.
package krbtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// encType is the only encryption type the realm issues: what AD uses for accounts
// with AES enabled, and the one the client's message sealing supports best.
const encType = etypeID.AES256_CTS_HMAC_SHA1_96

// Realm is a running fake KDC with its principals. Its methods may be called
// while clients talk to it.
type Realm struct {
	t    testing.TB
	name string
	ln   net.Listener
	dir  string
	conf string

	mu        sync.RWMutex
	keys      *keytab.Keytab    // the KDC's database: every principal's long-term key
	passwords map[string]string // principal (without realm) → password, to write keytabs

	as, tgs atomic.Int32 // requests answered
}

// NewRealm starts a KDC for realm name (upper case, as AD spells it) on a
// loopback port and writes a krb5.conf naming it into t.TempDir(). Hosts under
// the realm's name in lower case (ex01.corp.example.com for CORP.EXAMPLE.COM)
// map to the realm. Everything stops when the test ends.
func NewRealm(t testing.TB, name string) *Realm {
	t.Helper()
	if name == "" || name != strings.ToUpper(name) {
		t.Fatalf("krbtest: realm %q must be non-empty and upper case", name)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("krbtest: KDC listener: %v", err)
	}
	r := &Realm{t: t, name: name, ln: ln, dir: t.TempDir(), keys: keytab.New(), passwords: map[string]string{}}
	r.add("krbtgt/"+name, randomPassword(t))
	r.conf = filepath.Join(r.dir, "krb5.conf")
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
  .%[3]s = %[1]s
`, name, ln.Addr().String(), strings.ToLower(name))
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatalf("krbtest: writing krb5.conf: %v", err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { r.serve(c) })
		}
	})
	return r
}

// Name is the realm's name.
func (r *Realm) Name() string { return r.name }

// Krb5Conf is the path of a krb5.conf that points clients at this KDC over TCP.
func (r *Realm) Krb5Conf() string { return r.conf }

// KDCAddr is the KDC's host:port.
func (r *Realm) KDCAddr() string { return r.ln.Addr().String() }

// AddUser creates (or re-keys) a user principal, e.g. "svc-ndrbot".
func (r *Realm) AddUser(name, password string) {
	r.t.Helper()
	r.add(name, password)
}

// AddService creates a service principal, e.g. "HTTP/ex01.corp.example.com",
// with a random key — what setspn on the server's account amounts to. A handler
// for it holds the same key (its keytab).
func (r *Realm) AddService(spn string) {
	r.t.Helper()
	if !strings.Contains(spn, "/") {
		r.t.Fatalf("krbtest: SPN %q must look like HTTP/host", spn)
	}
	r.add(spn, randomPassword(r.t))
}

func (r *Realm) add(principal, password string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.passwords[principal] = password
	// A re-keyed principal's old key must stop working, so the database is
	// rebuilt from the passwords rather than appended to.
	kt := keytab.New()
	for p, pw := range r.passwords {
		if err := kt.AddEntry(p, r.name, pw, time.Now(), 1, encType); err != nil {
			r.t.Fatalf("krbtest: key for %s: %v", p, err)
		}
	}
	r.keys = kt
}

// keytabOf returns a keytab with the key of principal, or of password when
// password is not empty (a stale or foreign key).
func (r *Realm) keytabOf(principal, password string) (*keytab.Keytab, error) {
	if password == "" {
		r.mu.RLock()
		pw, ok := r.passwords[principal]
		r.mu.RUnlock()
		if !ok {
			return nil, fmt.Errorf("krbtest: no principal %s in realm %s (AddUser or AddService first)", principal, r.name)
		}
		password = pw
	}
	kt := keytab.New()
	if err := kt.AddEntry(principal, r.name, password, time.Now(), 1, encType); err != nil {
		return nil, err
	}
	return kt, nil
}

// KeytabFile writes a keytab holding the key of principal (a user or a
// service) into the test's temporary directory and returns its path.
func (r *Realm) KeytabFile(principal string) string {
	r.t.Helper()
	kt, err := r.keytabOf(principal, "")
	if err != nil {
		r.t.Fatal(err)
	}
	b, err := kt.Marshal()
	if err != nil {
		r.t.Fatalf("krbtest: keytab of %s: %v", principal, err)
	}
	p := filepath.Join(r.t.TempDir(), strings.ReplaceAll(principal, "/", "_")+".keytab")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		r.t.Fatalf("krbtest: writing keytab: %v", err)
	}
	return p
}

// ASRequests counts the AS-REQs (logins) the KDC answered.
func (r *Realm) ASRequests() int { return int(r.as.Load()) }

// TGSRequests counts the TGS-REQs (service tickets) the KDC answered.
func (r *Realm) TGSRequests() int { return int(r.tgs.Load()) }

func (r *Realm) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > 1<<20 { // no real request is this large; do not allocate it
		return
	}
	req := make([]byte, size)
	if _, err := io.ReadFull(c, req); err != nil {
		return
	}
	rep, err := r.answer(req)
	if err != nil {
		r.t.Logf("krbtest KDC: %v", err)
		return
	}
	out := make([]byte, 4+len(rep))
	binary.BigEndian.PutUint32(out, uint32(len(rep)))
	copy(out[4:], rep)
	_, _ = c.Write(out)
}

func (r *Realm) answer(req []byte) ([]byte, error) {
	r.mu.RLock()
	keys := r.keys
	r.mu.RUnlock()
	now := time.Now().UTC().Truncate(time.Second)
	end := now.Add(10 * time.Hour)
	var as messages.ASReq
	if err := as.Unmarshal(req); err == nil {
		r.as.Add(1)
		// No pre-authentication: a wrong password shows as an AS-REP the client
		// cannot decrypt, which is what the client's error names.
		ckey, _, err := keys.GetEncryptionKey(as.ReqBody.CName, r.name, 0, encType)
		if err != nil {
			return r.krbError(as.ReqBody.SName, errorcode.KDC_ERR_C_PRINCIPAL_UNKNOWN)
		}
		tgt, skey, err := messages.NewTicket(as.ReqBody.CName, r.name, as.ReqBody.SName, r.name,
			types.NewKrbFlags(), keys, encType, 1, now, now, end, end)
		if err != nil {
			return nil, err
		}
		return r.kdcRep(msgtype.KRB_AS_REP, as.ReqBody, tgt, skey, ckey, keyusage.AS_REP_ENCPART, now, end)
	}
	var tgs messages.TGSReq
	if err := tgs.Unmarshal(req); err != nil {
		return nil, fmt.Errorf("neither AS-REQ nor TGS-REQ: %w", err)
	}
	r.tgs.Add(1)
	if len(tgs.PAData) == 0 {
		return nil, fmt.Errorf("TGS-REQ without PA-TGS-REQ")
	}
	var ap messages.APReq
	if err := ap.Unmarshal(tgs.PAData[0].PADataValue); err != nil {
		return nil, err
	}
	if err := ap.Ticket.DecryptEncPart(keys, nil); err != nil {
		return nil, fmt.Errorf("TGT: %w", err)
	}
	tgtKey := ap.Ticket.DecryptedEncPart.Key
	if _, _, err := keys.GetEncryptionKey(tgs.ReqBody.SName, r.name, 0, encType); err != nil {
		return r.krbError(tgs.ReqBody.SName, errorcode.KDC_ERR_S_PRINCIPAL_UNKNOWN)
	}
	st, skey, err := messages.NewTicket(ap.Ticket.DecryptedEncPart.CName, r.name, tgs.ReqBody.SName, r.name,
		types.NewKrbFlags(), keys, encType, 1, now, now, end, end)
	if err != nil {
		return nil, err
	}
	body := tgs.ReqBody
	body.CName = ap.Ticket.DecryptedEncPart.CName
	return r.kdcRep(msgtype.KRB_TGS_REP, body, st, skey, tgtKey, keyusage.TGS_REP_ENCPART_SESSION_KEY, now, end)
}

func (r *Realm) kdcRep(mt int, body messages.KDCReqBody, tkt messages.Ticket, skey, replyKey types.EncryptionKey, usage uint32, now, end time.Time) ([]byte, error) {
	part := messages.EncKDCRepPart{
		Key:       skey,
		LastReqs:  []messages.LastReq{{LRType: 0, LRValue: now}},
		Nonce:     body.Nonce,
		Flags:     types.NewKrbFlags(),
		AuthTime:  now,
		StartTime: now,
		EndTime:   end,
		RenewTill: end,
		SRealm:    r.name,
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
	f := messages.KDCRepFields{PVNO: 5, MsgType: mt, CRealm: r.name, CName: body.CName, Ticket: tkt, EncPart: ed}
	if mt == msgtype.KRB_AS_REP {
		return (&messages.ASRep{KDCRepFields: f}).Marshal()
	}
	return (&messages.TGSRep{KDCRepFields: f}).Marshal()
}

func (r *Realm) krbError(sname types.PrincipalName, code int32) ([]byte, error) {
	e := messages.NewKRBError(sname, r.name, code, "")
	return e.Marshal()
}

func randomPassword(t testing.TB) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("krbtest: randomness: %v", err)
	}
	return base64.StdEncoding.EncodeToString(b)
}
