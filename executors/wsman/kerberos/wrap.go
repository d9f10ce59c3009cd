package kerberos

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/crypto/common"
	"github.com/jcmturner/gokrb5/v8/crypto/etype"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/types"
)

// RFC 4121 §2 key usages for Wrap tokens with confidentiality.
const (
	usageAcceptorSeal  = 22 // KG-USAGE-ACCEPTOR-SEAL
	usageInitiatorSeal = 24 // KG-USAGE-INITIATOR-SEAL
)

// RFC 4121 §4.2.2 token flags.
const (
	flagSentByAcceptor = 0x01
	flagSealed         = 0x02
	flagAcceptorSubkey = 0x04
)

// wrapHeaderLen is the fixed Wrap token header of RFC 4121 §4.2.6.2.
const wrapHeaderLen = 16

// ErrIntegrity marks a sealed message that failed to decrypt or verify: the reply
// was altered on the way, or comes from someone without the session key.
var ErrIntegrity = errors.New("kerberos message integrity check failed")

// gssContext is one established Kerberos security context (RFC 4121): the key
// both sides protect messages with and the sequence numbers. It is used from one
// goroutine at a time (its session's lock), because a sequence number must go out
// in the order it was taken.
type gssContext struct {
	initiator      bool
	key            types.EncryptionKey
	acceptorSubkey bool   // RFC 4121 §2: the acceptor's AP-REP subkey is the key
	sendSeq        uint64 // next sequence number we send
	recvSeq        uint64 // next sequence number we expect
	// confounder is where the random confounder comes from; tests pin it for the
	// known-answer vector.
	confounder io.Reader
}

// checkEtype refuses encryption types whose Wrap token layout this package does
// not build. RC4-HMAC uses RFC 4757's different token format; DES is long dead;
// the RFC 8009 (SHA-2) types compute the integrity hash over the ciphertext, and
// Windows does not offer them for service tickets.
func checkEtype(keyType int32) (etype.EType, error) {
	switch keyType {
	case etypeID.AES128_CTS_HMAC_SHA1_96, etypeID.AES256_CTS_HMAC_SHA1_96:
		return crypto.GetEtype(keyType)
	default:
		return nil, fmt.Errorf("session key type %d is not supported for WS-Management message encryption: "+
			"only aes128/aes256-cts-hmac-sha1-96 are (allow AES for the service account, msDS-SupportedEncryptionTypes, "+
			"or use https)", keyType)
	}
}

// rfc3962Encrypt is the RFC 3961 §5.3 simplified-profile encryption with the
// RFC 3962 AES-CTS cipher: ciphertext = E(Ke, confounder|plain) | H(Ki, confounder|plain).
// It is gokrb5's EncryptMessage with the confounder passed in, so a test can pin it;
// decryption stays gokrb5's own DecryptMessage, which cross-checks this.
func rfc3962Encrypt(et etype.EType, key []byte, usage uint32, confounder, plain []byte) ([]byte, error) {
	ke, err := et.DeriveKey(key, common.GetUsageKe(usage))
	if err != nil {
		return nil, fmt.Errorf("deriving the encryption key: %w", err)
	}
	pt := append(append(make([]byte, 0, len(confounder)+len(plain)), confounder...), plain...)
	_, ct, err := et.EncryptData(ke, pt)
	if err != nil {
		return nil, fmt.Errorf("encrypting: %w", err)
	}
	mac, err := common.GetIntegrityHash(pt, key, usage, et)
	if err != nil {
		return nil, fmt.Errorf("integrity hash: %w", err)
	}
	return append(ct, mac...), nil
}

// wrap seals plain into an RFC 4121 §4.2.4 Wrap token with confidentiality and
// returns it split the way [MS-WSMV] 3.1.4.1.30.1 (the Kerberos/SPNEGO encrypted
// message body) frames it: the "signature" (token header plus the rotated
// trailer and the confounder) and the encrypted data, which is exactly as long
// as plain.
//
// The layout is the one Windows SSPI produces and expects (EncryptMessage with a
// TOKEN and a DATA buffer):
//   - EC (filler length) is 0: with AES-CTS no padding is needed, and Windows
//     rejects sealed AES tokens with filler.
//   - RRC (right rotation count, §4.2.5) is 16 + the HMAC length (28 for the
//     SHA1-96 types): the encrypted copy of the header and the checksum, which
//     come last, are rotated to the front, so the token header, the trailer and
//     the 16-byte encrypted confounder make one fixed-size prefix and the rest
//     of the token is the ciphertext of the message alone.
func (c *gssContext) wrap(plain []byte) (signature, data []byte, err error) {
	et, err := checkEtype(c.key.KeyType)
	if err != nil {
		return nil, nil, err
	}
	flags := byte(flagSealed)
	usage := uint32(usageInitiatorSeal)
	if !c.initiator {
		flags |= flagSentByAcceptor
		usage = usageAcceptorSeal
	}
	if c.acceptorSubkey {
		flags |= flagAcceptorSubkey
	}
	const ec = 0
	hdr := make([]byte, wrapHeaderLen)
	hdr[0], hdr[1], hdr[2], hdr[3] = 0x05, 0x04, flags, 0xFF
	binary.BigEndian.PutUint16(hdr[4:6], ec)
	// RRC stays 0 in the copy of the header that is encrypted (§4.2.4).
	binary.BigEndian.PutUint64(hdr[8:16], c.sendSeq)

	src := c.confounder
	if src == nil {
		src = rand.Reader
	}
	conf := make([]byte, et.GetConfounderByteSize())
	if _, err := io.ReadFull(src, conf); err != nil {
		return nil, nil, fmt.Errorf("confounder: %w", err)
	}
	// §4.2.4: encrypt(plaintext | filler | header).
	ct, err := rfc3962Encrypt(et, c.key.KeyValue, usage, conf, append(append([]byte{}, plain...), hdr...))
	if err != nil {
		return nil, nil, err
	}
	rrc := ec + wrapHeaderLen + et.GetHMACBitLength()/8
	binary.BigEndian.PutUint16(hdr[6:8], uint16(rrc))
	token := append(hdr, rotateRight(ct, rrc)...)
	c.sendSeq++

	split := wrapHeaderLen + rrc + len(conf)
	return token[:split], token[split:], nil
}

// unwrap opens a sealed Wrap token from the peer (signature and data
// concatenated, which is the whole token) and returns the message.
func (c *gssContext) unwrap(token []byte) ([]byte, error) {
	et, err := checkEtype(c.key.KeyType)
	if err != nil {
		return nil, err
	}
	if len(token) < wrapHeaderLen {
		return nil, fmt.Errorf("%w: wrap token of %d bytes is shorter than its header", ErrIntegrity, len(token))
	}
	hdr := token[:wrapHeaderLen]
	if hdr[0] != 0x05 || hdr[1] != 0x04 || hdr[3] != 0xFF {
		return nil, fmt.Errorf("%w: not an RFC 4121 wrap token (header % x)", ErrIntegrity, hdr[:4])
	}
	flags := hdr[2]
	wantFromAcceptor := c.initiator
	switch {
	case (flags&flagSentByAcceptor != 0) != wantFromAcceptor:
		return nil, fmt.Errorf("%w: wrap token has the wrong direction flag (reflected message?)", ErrIntegrity)
	case flags&flagSealed == 0:
		return nil, fmt.Errorf("%w: peer sent an unencrypted wrap token", ErrIntegrity)
	case (flags&flagAcceptorSubkey != 0) != c.acceptorSubkey:
		return nil, fmt.Errorf("%w: wrap token's AcceptorSubkey flag does not match the negotiated key", ErrIntegrity)
	}
	ec := int(binary.BigEndian.Uint16(hdr[4:6]))
	rrc := int(binary.BigEndian.Uint16(hdr[6:8]))
	seq := binary.BigEndian.Uint64(hdr[8:16])

	body := token[wrapHeaderLen:]
	minLen := et.GetConfounderByteSize() + ec + wrapHeaderLen + et.GetHMACBitLength()/8
	if len(body) < minLen {
		return nil, fmt.Errorf("%w: wrap token body of %d bytes is too short", ErrIntegrity, len(body))
	}
	body = rotateLeft(body, rrc)
	usage := uint32(usageAcceptorSeal)
	if !c.initiator {
		usage = usageInitiatorSeal
	}
	pt, err := et.DecryptMessage(c.key.KeyValue, body, usage)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	if len(pt) < ec+wrapHeaderLen {
		return nil, fmt.Errorf("%w: decrypted wrap token too short", ErrIntegrity)
	}
	// §4.2.4: the encrypted header must equal the clear one, except RRC which is 0
	// inside: this binds flags, EC and the sequence number to the ciphertext.
	inner := pt[len(pt)-wrapHeaderLen:]
	want := append([]byte{}, hdr...)
	want[6], want[7] = 0, 0
	if !hmac.Equal(inner, want) {
		return nil, fmt.Errorf("%w: encrypted header does not match the token header", ErrIntegrity)
	}
	// RFC 4121 §4.2.6.2 sequence numbers defend against replayed or reordered
	// replies. A session sends one request at a time, so replies come in order.
	if seq != c.recvSeq {
		return nil, fmt.Errorf("%w: sequence number %d, expected %d (replayed or reordered message)", ErrIntegrity, seq, c.recvSeq)
	}
	c.recvSeq++
	return pt[:len(pt)-ec-wrapHeaderLen], nil
}

// rotateRight moves the last n bytes of b to its front (RFC 4121 §4.2.5).
func rotateRight(b []byte, n int) []byte {
	if len(b) == 0 {
		return b
	}
	n %= len(b)
	return append(append(make([]byte, 0, len(b)), b[len(b)-n:]...), b[:len(b)-n]...)
}

// rotateLeft undoes rotateRight.
func rotateLeft(b []byte, n int) []byte {
	if len(b) == 0 {
		return b
	}
	n %= len(b)
	return append(append(make([]byte, 0, len(b)), b[n:]...), b[:n]...)
}

// [MS-WSMV] 2.2.9.1.1 / 3.1.4.1.30.1: the encrypted body is MIME-like, one pair of
// parts per encrypted message:
//
//	--Encrypted Boundary\r\n
//	\tContent-Type: application/HTTP-Kerberos-session-encrypted\r\n
//	\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=<n>\r\n
//	--Encrypted Boundary\r\n
//	\tContent-Type: application/octet-stream\r\n
//	<4-byte little-endian signature length><signature><encrypted data>
//	--Encrypted Boundary--\r\n
const (
	boundary          = "Encrypted Boundary"
	protocolKerberos  = "application/HTTP-Kerberos-session-encrypted"
	protocolSPNEGO    = "application/HTTP-SPNEGO-session-encrypted"
	encryptedTypeBase = "multipart/encrypted"
)

// contentType is the HTTP Content-Type of an encrypted request. The protocol names
// the HTTP authentication scheme the context came from ([MS-WSMV] 2.2.9.1.1):
// Kerberos for "Authorization: Kerberos", SPNEGO for "Negotiate".
func contentType(protocol string) string {
	return encryptedTypeBase + `;protocol="` + protocol + `";boundary="` + boundary + `"`
}

// seal builds the encrypted request body for one SOAP envelope.
func (c *gssContext) seal(protocol string, envelope []byte) ([]byte, error) {
	sig, data, err := c.wrap(envelope)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("--" + boundary + "\r\n")
	b.WriteString("\tContent-Type: " + protocol + "\r\n")
	fmt.Fprintf(&b, "\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=%d\r\n", len(envelope))
	b.WriteString("--" + boundary + "\r\n")
	b.WriteString("\tContent-Type: application/octet-stream\r\n")
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(sig)))
	b.Write(n[:])
	b.Write(sig)
	b.Write(data)
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

// open decrypts an encrypted body (one or more part pairs) and returns the
// concatenated envelopes. It checks each part's OriginalContent length, the only
// thing that tells a truncated message from a complete one.
func (c *gssContext) open(body []byte) ([]byte, error) {
	out := []byte{}
	parts := 0
	rest := body
	for {
		// Exchange writes "-- Encrypted Boundary" with a space (pypsrp notes the
		// same), so the dashes and the boundary are matched separately.
		_, after, ok := cutBoundary(rest)
		if !ok {
			break
		}
		if bytes.HasPrefix(after, []byte("--")) { // the closing boundary
			break
		}
		hdrs, payload, ok := cutBoundary(after)
		if !ok {
			return nil, fmt.Errorf("encrypted reply: second part missing")
		}
		length, err := originalLength(hdrs)
		if err != nil {
			return nil, err
		}
		const octet = "Content-Type: application/octet-stream\r\n"
		i := bytes.Index(payload, []byte(octet))
		if i < 0 {
			return nil, fmt.Errorf("encrypted reply: no application/octet-stream part")
		}
		payload = payload[i+len(octet):]
		if len(payload) < 4 {
			return nil, fmt.Errorf("encrypted reply: payload too short")
		}
		sigLen := int(binary.LittleEndian.Uint32(payload[:4]))
		// The token runs to the next boundary; the encrypted data is exactly as
		// long as the plaintext (EC=0, AES-CTS), which OriginalContent gives.
		end := 4 + sigLen + length
		if sigLen < wrapHeaderLen || end > len(payload) {
			return nil, fmt.Errorf("%w: encrypted reply: signature length %d and message length %d exceed the part (%d bytes)",
				ErrIntegrity, sigLen, length, len(payload)-4)
		}
		msg, err := c.unwrap(payload[4:end])
		if err != nil {
			return nil, err
		}
		if len(msg) != length {
			return nil, fmt.Errorf("%w: decrypted %d bytes, OriginalContent says %d", ErrIntegrity, len(msg), length)
		}
		out = append(out, msg...)
		parts++
		rest = payload[end:]
	}
	if parts == 0 {
		return nil, fmt.Errorf("encrypted reply carries no encrypted part")
	}
	return out, nil
}

// cutBoundary finds the next "--[ ]Encrypted Boundary" and returns what came
// before it and what follows it (after its line end, unless it is the closing one).
func cutBoundary(b []byte) (before, after []byte, ok bool) {
	i := bytes.Index(b, []byte(boundary))
	if i < 0 {
		return nil, nil, false
	}
	j := i
	for j > 0 && b[j-1] == ' ' {
		j--
	}
	if j < 2 || b[j-1] != '-' || b[j-2] != '-' {
		return nil, nil, false
	}
	after = b[i+len(boundary):]
	if bytes.HasPrefix(after, []byte("--")) {
		return b[:j-2], after, true
	}
	after = bytes.TrimPrefix(after, []byte("\r\n"))
	return b[:j-2], after, true
}

// originalLength reads Length=N from the OriginalContent header of a part.
func originalLength(hdrs []byte) (int, error) {
	const key = "Length="
	i := bytes.Index(hdrs, []byte(key))
	if i < 0 {
		return 0, fmt.Errorf("encrypted reply: no OriginalContent length")
	}
	n := 0
	digits := 0
	for _, ch := range hdrs[i+len(key):] {
		if ch < '0' || ch > '9' {
			break
		}
		n = n*10 + int(ch-'0')
		digits++
		if n > maxReply {
			return 0, fmt.Errorf("encrypted reply: OriginalContent length too large")
		}
	}
	if digits == 0 {
		return 0, fmt.Errorf("encrypted reply: bad OriginalContent length")
	}
	return n, nil
}
