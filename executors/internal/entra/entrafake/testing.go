package entrafake

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ndrbot/ndrbot/executors/internal/entra"
)

// FastRetry is the retry policy of the executors' tests: storms stay short,
// with waits of 75, 150, 300 … ms when the jitter source returns 0.5.
func FastRetry() entra.RetryPolicy {
	return entra.RetryPolicy{MaxAttempts: 5, BaseDelay: 100 * time.Millisecond, MaxDelay: 2 * time.Second, MinAttemptTime: 50 * time.Millisecond}
}

// Logs collects what an executor logs, at debug level and as text, for a test
// to search (for a leaked secret, or a retry that was logged).
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Logger writes into l.
func (l *Logs) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Write implements io.Writer; the executor logs from several goroutines.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// AppCert is an app registration's certificate credential, made for a test.
type AppCert struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
	// File holds the certificate and its unencrypted PKCS#8 key, PEM: a
	// target's certificate_file.
	File string
}

// NewAppCert makes an RSA 2048 certificate for the app and writes File. The
// Authority checks client assertions against it once ClientCert is Cert.
func NewAppCert(t testing.TB) AppCert {
	t.Helper()
	fatal := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("entrafake: app certificate: %v", err)
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	fatal(err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ndrbot-app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	fatal(err)
	cert, err := x509.ParseCertificate(der)
	fatal(err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	fatal(err)
	file := filepath.Join(t.TempDir(), "app.pem")
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	fatal(os.WriteFile(file, data, 0o600))
	return AppCert{Cert: cert, Key: key, File: file}
}
