package entra

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha1" //nolint:gosec // PBKDF2's default PRF, as written by older OpenSSL
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
)

// azidentity.ParseCertificates reads PEM only when the key is not encrypted (a
// password sends it to its PKCS#12 reader). certificate_file is PEM, and an
// encrypted key is the PKCS#8 PBES2 form OpenSSL writes (`openssl pkcs8 -topk8
// -v2 aes-256-cbc`, `openssl genpkey -aes-256-cbc`), so it is decrypted here and
// handed over as a plain PEM key.

var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

type encryptedPrivateKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Data      []byte
}

type pbes2Params struct {
	KDF pkix.AlgorithmIdentifier
	Enc pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt   []byte
	Iter   int
	KeyLen int                      `asn1:"optional"`
	PRF    pkix.AlgorithmIdentifier `asn1:"optional"`
}

// decryptPEMKeys returns data with every ENCRYPTED PRIVATE KEY block replaced by
// its decryption. Without encrypted blocks data comes back unchanged.
func decryptPEMKeys(data []byte, password string) ([]byte, error) {
	var out []byte
	found := false
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" {
			found = true
			if password == "" {
				return nil, errors.New("the private key is encrypted: set certificate_password")
			}
			der, err := decryptPKCS8(block.Bytes, password)
			if err != nil {
				return nil, err
			}
			block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
		} else if block.Headers["Proc-Type"] == "4,ENCRYPTED" {
			return nil, errors.New("legacy PEM key encryption is not supported: convert the key with `openssl pkcs8 -topk8 -v2 aes-256-cbc`")
		}
		out = append(out, pem.EncodeToMemory(block)...)
	}
	if !found {
		return data, nil
	}
	return out, nil
}

func decryptPKCS8(der []byte, password string) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, fmt.Errorf("encrypted private key: %w", err)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("encrypted private key: scheme %v is not PBES2: convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc`", info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("encrypted private key: PBES2 parameters: %w", err)
	}
	if !params.KDF.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("encrypted private key: key derivation %v is not PBKDF2", params.KDF.Algorithm)
	}
	var kdf pbkdf2Params
	if _, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &kdf); err != nil {
		return nil, fmt.Errorf("encrypted private key: PBKDF2 parameters: %w", err)
	}
	var prf func() hash.Hash
	switch {
	case len(kdf.PRF.Algorithm) == 0 || kdf.PRF.Algorithm.Equal(oidHMACSHA1):
		prf = sha1.New
	case kdf.PRF.Algorithm.Equal(oidHMACSHA256):
		prf = sha256.New
	case kdf.PRF.Algorithm.Equal(oidHMACSHA512):
		prf = sha512.New
	default:
		return nil, fmt.Errorf("encrypted private key: PRF %v not supported", kdf.PRF.Algorithm)
	}
	var keyLen int
	switch {
	case params.Enc.Algorithm.Equal(oidAES128CBC):
		keyLen = 16
	case params.Enc.Algorithm.Equal(oidAES192CBC):
		keyLen = 24
	case params.Enc.Algorithm.Equal(oidAES256CBC):
		keyLen = 32
	default:
		return nil, fmt.Errorf("encrypted private key: cipher %v not supported (AES-CBC only)", params.Enc.Algorithm)
	}
	var iv []byte
	if _, err := asn1.Unmarshal(params.Enc.Parameters.FullBytes, &iv); err != nil || len(iv) != aes.BlockSize {
		return nil, errors.New("encrypted private key: bad IV")
	}
	if kdf.Iter < 1 || kdf.Iter > 10_000_000 {
		return nil, fmt.Errorf("encrypted private key: %d PBKDF2 iterations", kdf.Iter)
	}
	key, err := pbkdf2.Key(prf, password, kdf.Salt, kdf.Iter, keyLen)
	if err != nil {
		return nil, fmt.Errorf("encrypted private key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if len(info.Data) == 0 || len(info.Data)%aes.BlockSize != 0 {
		return nil, errors.New("encrypted private key: ciphertext is not whole blocks")
	}
	plain := make([]byte, len(info.Data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, info.Data)
	// PKCS#7 padding; a wrong password almost always breaks it.
	n := int(plain[len(plain)-1])
	if n < 1 || n > aes.BlockSize || n > len(plain) {
		return nil, errors.New("encrypted private key: wrong certificate_password")
	}
	for _, b := range plain[len(plain)-n:] {
		if int(b) != n {
			return nil, errors.New("encrypted private key: wrong certificate_password")
		}
	}
	plain = plain[:len(plain)-n]
	var probe asn1.RawValue
	if _, err := asn1.Unmarshal(plain, &probe); err != nil {
		return nil, errors.New("encrypted private key: wrong certificate_password")
	}
	return plain, nil
}
