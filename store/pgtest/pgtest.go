// Package pgtest gives tests a PostgreSQL schema of their own.
//
// Tests run when NDRBOT_TEST_POSTGRES_DSN is set, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. With
// NDRBOT_TEST_REQUIRE_POSTGRES=1 (CI) a missing or unreachable server fails the
// tests instead of skipping them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	envDSN     = "NDRBOT_TEST_POSTGRES_DSN"
	envRequire = "NDRBOT_TEST_REQUIRE_POSTGRES"
)

var (
	adminOnce sync.Once
	admin     *pgxpool.Pool
	adminErr  error
)

// BaseDSN returns the server's DSN, or skips (fails, when required) the test.
func BaseDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(envDSN)
	if dsn == "" {
		if os.Getenv(envRequire) == "1" {
			t.Fatalf("%s=1 but %s is not set: PostgreSQL tests must run", envRequire, envDSN)
		}
		t.Skipf("%s not set: skipping PostgreSQL tests", envDSN)
	}
	adminOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin, adminErr = pgxpool.New(ctx, dsn)
		if adminErr == nil {
			adminErr = admin.Ping(ctx)
		}
	})
	if adminErr != nil {
		t.Fatalf("PostgreSQL at %s unreachable: %v", envDSN, adminErr)
	}
	return dsn
}

// WithSearchPath adds search_path to a URL or key=value DSN.
func WithSearchPath(dsn, schema string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// FreshSchema creates an empty schema for t (dropped at cleanup) and returns a DSN
// that uses it.
func FreshSchema(t testing.TB) string {
	t.Helper()
	dsn := BaseDSN(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "ndrbot_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	return WithSearchPath(dsn, schema)
}
