package kerberos

import (
	"encoding/binary"
	"fmt"

	gasn1 "github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"
)

// GSS-API context flags (RFC 4121 §4.1.1.1) we request. Confidentiality and
// integrity make the acceptor agree to seal; mutual makes it answer with an AP-REP
// (and, on Windows, an acceptor subkey); replay and sequence detection ask both
// sides to check the sequence numbers of Wrap tokens.
const requestedFlags = gssapi.ContextFlagMutual | gssapi.ContextFlagReplay | gssapi.ContextFlagSequence |
	gssapi.ContextFlagConf | gssapi.ContextFlagInteg

// initiator is the client half of one security context while it is being
// established: what we sent in the AP-REQ, needed to check the AP-REP.
type initiator struct {
	sessionKey types.EncryptionKey // the ticket's
	auth       types.Authenticator
}

// newAPReq builds an AP-REQ for a service ticket. The authenticator carries the
// RFC 4121 §4.1.1 GSS checksum (flags, no channel bindings), a random subkey and
// an initial sequence number for Wrap tokens.
func newAPReq(creds *credentials.Credentials, tkt messages.Ticket, sessionKey types.EncryptionKey) (*initiator, messages.APReq, error) {
	auth, err := types.NewAuthenticator(creds.Domain(), creds.CName())
	if err != nil {
		return nil, messages.APReq{}, fmt.Errorf("building authenticator: %w", err)
	}
	et, err := crypto.GetEtype(sessionKey.KeyType)
	if err != nil {
		return nil, messages.APReq{}, fmt.Errorf("session key type %d: %w", sessionKey.KeyType, err)
	}
	if err := auth.GenerateSeqNumberAndSubKey(sessionKey.KeyType, et.GetKeyByteSize()); err != nil {
		return nil, messages.APReq{}, fmt.Errorf("generating subkey: %w", err)
	}
	// RFC 4121 §4.1.1: Lgth (16, little-endian), Bnd (16 zero bytes: no channel
	// bindings), Flags (little-endian).
	cksum := make([]byte, 24)
	binary.LittleEndian.PutUint32(cksum[0:4], 16)
	binary.LittleEndian.PutUint32(cksum[20:24], requestedFlags)
	auth.Cksum = types.Checksum{CksumType: chksumtype.GSSAPI, Checksum: cksum}

	apreq, err := messages.NewAPReq(tkt, sessionKey, auth)
	if err != nil {
		return nil, messages.APReq{}, fmt.Errorf("building AP-REQ: %w", err)
	}
	types.SetFlag(&apreq.APOptions, flags.APOptionMutualRequired)
	return &initiator{sessionKey: sessionKey, auth: auth}, apreq, nil
}

// krb5TokenID values of RFC 4121 §4.1.
var (
	tokAPReq    = []byte{0x01, 0x00}
	tokAPRep    = []byte{0x02, 0x00}
	tokKRBError = []byte{0x03, 0x00}
)

// krb5Token frames an AP-REQ as the initial context token of RFC 2743 §3.1 /
// RFC 4121 §4.1: [APPLICATION 0] { mech OID, TOK_ID 01 00, AP-REQ }.
func krb5Token(apreq messages.APReq) ([]byte, error) {
	oid, err := gasn1.Marshal(gssapi.OIDKRB5.OID())
	if err != nil {
		return nil, err
	}
	ab, err := apreq.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshalling AP-REQ: %w", err)
	}
	b := append(append(oid, tokAPReq...), ab...)
	return asn1tools.AddASNAppTag(b, 0), nil
}

// spnegoInit wraps a Kerberos token in an RFC 4178 §4.2.1 NegTokenInit offering
// Kerberos only, for "Authorization: Negotiate".
func spnegoInit(krbTok []byte) ([]byte, error) {
	st := spnego.SPNEGOToken{
		Init: true,
		NegTokenInit: spnego.NegTokenInit{
			MechTypes:      []gasn1.ObjectIdentifier{gssapi.OIDKRB5.OID()},
			MechTokenBytes: krbTok,
		},
	}
	return st.Marshal()
}

// mechTypesDER is the DER of the MechTypeList we offered, which an RFC 4178 §5
// mechListMIC covers.
func mechTypesDER() ([]byte, error) {
	return gasn1.Marshal([]gasn1.ObjectIdentifier{gssapi.OIDKRB5.OID()})
}

// replyToken is the acceptor's answer in a WWW-Authenticate header, unwrapped.
type replyToken struct {
	apRep    *messages.APRep
	krbError *messages.KRBError
	mic      []byte // SPNEGO mechListMIC, if any
	rejected bool   // SPNEGO negState reject
}

// parseReplyToken reads a raw Kerberos token (scheme "Kerberos", or a Negotiate
// server answering in kind) or an RFC 4178 NegTokenResp.
func parseReplyToken(b []byte) (*replyToken, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("empty authentication token")
	}
	out := &replyToken{}
	if b[0] == 0xa1 { // NegTokenResp, [1] CONSTRUCTED
		var st spnego.SPNEGOToken
		if err := st.Unmarshal(b); err != nil {
			return nil, fmt.Errorf("parsing SPNEGO reply: %w", err)
		}
		if !st.Resp {
			return nil, fmt.Errorf("SPNEGO reply is not a NegTokenResp")
		}
		r := st.NegTokenResp
		out.mic = r.MechListMIC
		if r.NegState == gasn1.Enumerated(spnego.NegStateReject) {
			out.rejected = true
		}
		if len(r.ResponseToken) == 0 {
			return out, nil
		}
		b = r.ResponseToken
	}
	var oid gasn1.ObjectIdentifier
	rest, err := gasn1.UnmarshalWithParams(b, &oid, "application,explicit,tag:0")
	if err != nil {
		return nil, fmt.Errorf("parsing Kerberos token: %w", err)
	}
	if !oid.Equal(gssapi.OIDKRB5.OID()) && !oid.Equal(gssapi.OIDMSLegacyKRB5.OID()) {
		return nil, fmt.Errorf("reply token is for mechanism %s, not Kerberos", oid)
	}
	if len(rest) < 2 {
		return nil, fmt.Errorf("Kerberos token too short")
	}
	id, body := rest[:2], rest[2:]
	switch {
	case id[0] == tokAPRep[0] && id[1] == tokAPRep[1]:
		var rep messages.APRep
		if err := rep.Unmarshal(body); err != nil {
			return nil, fmt.Errorf("parsing AP-REP: %w", err)
		}
		out.apRep = &rep
	case id[0] == tokKRBError[0] && id[1] == tokKRBError[1]:
		var ke messages.KRBError
		if err := ke.Unmarshal(body); err != nil {
			return nil, fmt.Errorf("parsing KRB-ERROR: %w", err)
		}
		out.krbError = &ke
	default:
		return nil, fmt.Errorf("unexpected Kerberos token id % x", id)
	}
	return out, nil
}

// finish checks the AP-REP (RFC 4120 §3.2.5: it must decrypt with the session
// key and echo our authenticator's time) and returns the established context.
func (in *initiator) finish(rep *messages.APRep) (*gssContext, error) {
	b, err := crypto.DecryptEncPart(rep.EncPart, in.sessionKey, keyusage.AP_REP_ENCPART)
	if err != nil {
		return nil, fmt.Errorf("mutual authentication failed: the server's AP-REP does not decrypt with our session key: %w", err)
	}
	var part messages.EncAPRepPart
	if err := part.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("mutual authentication failed: %w", err)
	}
	if part.CTime.Unix() != in.auth.CTime.Unix() || part.Cusec != in.auth.Cusec {
		return nil, fmt.Errorf("mutual authentication failed: AP-REP does not answer our authenticator")
	}
	ctx := &gssContext{
		initiator: true,
		key:       in.sessionKey,
		sendSeq:   uint64(in.auth.SeqNumber),
		recvSeq:   uint64(part.SequenceNumber),
	}
	// RFC 4121 §2: the acceptor's subkey wins, then ours, then the ticket's.
	switch {
	case len(part.Subkey.KeyValue) > 0:
		ctx.key = part.Subkey
		ctx.acceptorSubkey = true
	case len(in.auth.SubKey.KeyValue) > 0:
		ctx.key = in.auth.SubKey
	}
	return ctx, nil
}

// verifyMIC checks an RFC 4178 §5 mechListMIC from the acceptor: a MIC token
// (RFC 4121 §4.2.6.1) over the mechanism list we sent, with the context key.
func verifyMIC(ctx *gssContext, mic []byte) error {
	der, err := mechTypesDER()
	if err != nil {
		return err
	}
	var mt gssapi.MICToken
	if err := mt.Unmarshal(mic, true); err != nil {
		return fmt.Errorf("SPNEGO mechListMIC: %w", err)
	}
	mt.Payload = der
	if ok, err := mt.Verify(ctx.key, keyusage.GSSAPI_ACCEPTOR_SIGN); !ok {
		return fmt.Errorf("SPNEGO mechListMIC does not verify: %w", err)
	}
	return nil
}

// krbErrorReason turns a KRB-ERROR into advice an operator can act on.
func krbErrorReason(ke *messages.KRBError) string {
	name := errorcode.Lookup(ke.ErrorCode)
	switch ke.ErrorCode {
	case errorcode.KRB_AP_ERR_SKEW:
		return name + ": clock skew between this host and the server exceeds 5 minutes; fix time sync (NTP)"
	case errorcode.KRB_AP_ERR_MODIFIED, errorcode.KRB_AP_ERR_BAD_INTEGRITY:
		return name + ": the server cannot decrypt the ticket; the SPN belongs to a different account than the one " +
			"running the service, or its key changed (check with setspn -Q)"
	case errorcode.KRB_AP_ERR_BADKEYVER, errorcode.KRB_AP_ERR_NOKEY:
		return name + ": the server has no key for this ticket's version; its keytab or password is stale"
	case errorcode.KRB_AP_ERR_REPEAT:
		return name + ": the server saw this authenticator before (replay)"
	case errorcode.KRB_AP_ERR_TKT_EXPIRED:
		return name + ": the service ticket expired"
	}
	if ke.EText != "" {
		return name + ": " + ke.EText
	}
	return name
}
