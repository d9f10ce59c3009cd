package krbtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/crypto/etype"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
)

// [MS-WSMV] 2.2.9.1.1 names; spelled out here rather than imported so the
// server's reading of the format stays independent of the client's.
const (
	encryptedType    = "multipart/encrypted"
	protocolKerberos = "application/HTTP-Kerberos-session-encrypted"
	protocolSPNEGO   = "application/HTTP-SPNEGO-session-encrypted"
)

// open is the acceptor's own reading of [MS-WSMV] framing and RFC 4121 §4.2.4:
// split the parts, take the signature length, undo the rotation, decrypt with
// KG-USAGE-INITIATOR-SEAL and check the inner header. It accepts only the layout
// Windows clients send (EC 0, RRC 28, 60-byte signature), so a client that
// drifts from it fails here before it fails against a real server. It returns
// the envelope and its original content type.
func open(cs *connState, body []byte) ([]byte, string, error) {
	const octet = "\tContent-Type: application/octet-stream\r\n"
	i := bytes.Index(body, []byte(octet))
	j := bytes.LastIndex(body, []byte("--Encrypted Boundary--\r\n"))
	if i < 0 || j < i {
		return nil, "", errors.New("framing: no octet-stream part or closing boundary")
	}
	const typeKey, lengthKey = "OriginalContent: type=", ";Length="
	ti := bytes.Index(body[:i], []byte(typeKey))
	li := bytes.Index(body[:i], []byte(lengthKey))
	if ti < 0 || li < ti {
		return nil, "", errors.New("framing: no OriginalContent type and length")
	}
	ctype := string(body[ti+len(typeKey) : li])
	var length int
	if _, err := fmt.Sscanf(string(body[li+len(lengthKey):i]), "%d", &length); err != nil {
		return nil, "", fmt.Errorf("OriginalContent length: %w", err)
	}
	p := body[i+len(octet) : j]
	if len(p) < 4+16 {
		return nil, "", errors.New("token too short")
	}
	sigLen := int(binary.LittleEndian.Uint32(p))
	tok := p[4:]
	if len(tok)-sigLen != length {
		return nil, "", fmt.Errorf("encrypted data is %d bytes, plaintext %d", len(tok)-sigLen, length)
	}
	hdr := tok[:16]
	if hdr[0] != 5 || hdr[1] != 4 || hdr[2] != 0x06 || hdr[3] != 0xff { // sealed | acceptor subkey, from initiator
		return nil, "", fmt.Errorf("header % x", hdr)
	}
	ec := int(binary.BigEndian.Uint16(hdr[4:6]))
	rrc := int(binary.BigEndian.Uint16(hdr[6:8]))
	if ec != 0 || rrc != 28 || sigLen != 16+28+16 {
		return nil, "", fmt.Errorf("not the Windows layout: EC %d RRC %d signature %d", ec, rrc, sigLen)
	}
	if seq := binary.BigEndian.Uint64(hdr[8:]); seq != cs.recvSeq {
		return nil, "", fmt.Errorf("sequence %d, want %d", seq, cs.recvSeq)
	}
	cs.recvSeq++
	rest := tok[16:]
	if len(rest) < rrc {
		return nil, "", errors.New("token shorter than its rotation")
	}
	rest = append(append([]byte{}, rest[rrc:]...), rest[:rrc]...)
	pt, err := crypto.DecryptMessage(rest, cs.key, keyusage.GSSAPI_INITIATOR_SEAL)
	if err != nil {
		return nil, "", err
	}
	if len(pt) < 16+ec {
		return nil, "", errors.New("plaintext shorter than its header")
	}
	inner := pt[len(pt)-16:]
	want := append([]byte{}, hdr...)
	want[6], want[7] = 0, 0
	if !bytes.Equal(inner, want) {
		return nil, "", fmt.Errorf("inner header % x", inner)
	}
	return pt[:len(pt)-16-ec], strings.TrimSpace(ctype), nil
}

// seal is the acceptor's sealing: KG-USAGE-ACCEPTOR-SEAL, flags SentByAcceptor
// | Sealed | AcceptorSubkey, with the given filler and rotation.
func seal(cs *connState, msg []byte, rrc, ec int, spaced bool, proto string) ([]byte, error) {
	hdr := []byte{5, 4, 0x07, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(hdr[4:6], uint16(ec))
	binary.BigEndian.PutUint64(hdr[8:], cs.sendSeq)
	cs.sendSeq++
	pt := append(append(append([]byte{}, msg...), bytes.Repeat([]byte{0xff}, ec)...), hdr...)
	et, err := crypto.GetEtype(cs.key.KeyType)
	if err != nil {
		return nil, err
	}
	_, ct, err := et.EncryptMessage(cs.key.KeyValue, pt, keyusage.GSSAPI_ACCEPTOR_SEAL)
	if err != nil {
		return nil, err
	}
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
	return out.Bytes(), nil
}

// mustEtype returns the implementation of a supported encryption type; the
// only caller asks for the realm's one, which gokrb5 always has.
func mustEtype(id int32) etype.EType {
	et, err := crypto.GetEtype(id)
	if err != nil {
		panic("krbtest: gokrb5 lacks etype " + fmt.Sprint(id) + ": " + err.Error())
	}
	return et
}
