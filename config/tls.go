package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ClientTLS is the TLS client configuration of a target: ca_file's certificates
// as the trusted roots — alone for a private PKI (WinRM), or added to the system
// roots (which Go reads from SSL_CERT_FILE / SSL_CERT_DIR) for a public service
// behind a TLS-inspecting proxy (Graph) — or, only when set explicitly,
// insecure_skip_verify.
func (t Target) ClientTLS(withSystemRoots bool) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" && t.InsecureSkipVerify {
		return nil, errors.New("ca_file and insecure_skip_verify: set one, not both")
	}
	conf.InsecureSkipVerify = t.InsecureSkipVerify //nolint:gosec // only when configured explicitly
	if t.CAFile == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if withSystemRoots {
		if sys, err := x509.SystemCertPool(); err == nil {
			pool = sys
		}
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", t.CAFile)
	}
	conf.RootCAs = pool
	return conf, nil
}
