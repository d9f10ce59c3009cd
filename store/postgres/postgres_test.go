package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/postgres"
	"github.com/ndrbot/ndrbot/store/storetest"
)

// Tests run when NDRBOT_TEST_POSTGRES_DSN is set, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. With
// NDRBOT_TEST_REQUIRE_POSTGRES=1 (CI) a missing or unreachable server fails the
// tests instead of skipping them. Each test gets a schema of its own.
const (
	envDSN     = "NDRBOT_TEST_POSTGRES_DSN"
	envRequire = "NDRBOT_TEST_REQUIRE_POSTGRES"
)

var (
	adminOnce sync.Once
	admin     *pgxpool.Pool
	adminErr  error
)

func baseDSN(t testing.TB) string {
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

// withSearchPath adds search_path to a URL or key=value DSN.
func withSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			panic(err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// freshSchema creates an empty schema for t and returns a DSN that uses it.
func freshSchema(t testing.TB) string {
	dsn := baseDSN(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "ndrbot_test_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	_, err := admin.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	return withSearchPath(dsn, schema)
}

func instance(t testing.TB, dsn string, opt store.Options) storetest.Instance {
	s, err := postgres.Open(context.Background(), dsn, opt)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return storetest.Instance{
		Store: s,
		Exec: func(t testing.TB, q string, args ...any) {
			t.Helper()
			_, err := s.Pool().Exec(context.Background(), rebind(q), args...)
			require.NoError(t, err, q)
		},
		Reopen: func(t testing.TB, opt store.Options) (store.Store, error) {
			s, err := postgres.Open(context.Background(), dsn, opt)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	}
}

func rebind(q string) string {
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fresh(t testing.TB, opt store.Options) storetest.Instance {
	return instance(t, freshSchema(t), opt)
}

func TestSuite(t *testing.T) {
	storetest.Run(t, fresh)
}

// TestProcessRace: two processes (this test binary re-executed) approve and claim
// the same relief against one database.
func TestProcessRace(t *testing.T) {
	if os.Getenv(storetest.EnvChild) != "" {
		t.Skip("child")
	}
	dsn := freshSchema(t)
	inst := instance(t, dsn, store.Options{})
	storetest.ProcessRace(t, inst, func(env []string) ([]byte, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestProcessRaceChild$", "-test.count=1")
		cmd.Env = append(append(os.Environ(), env...), "NDRBOT_STORETEST_PG_DSN="+dsn)
		cmd.Stderr = os.Stderr
		return cmd.Output()
	})
}

func TestProcessRaceChild(t *testing.T) {
	ok := storetest.ProcessRaceChild(t, func() (store.Store, error) {
		return postgres.Open(context.Background(), os.Getenv("NDRBOT_STORETEST_PG_DSN"), store.Options{})
	})
	if !ok {
		t.Skip("only runs as a child of TestProcessRace")
	}
}

func TestConcurrentMigrations(t *testing.T) {
	dsn := freshSchema(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), dsn, store.Options{})
			errs[i] = err
			if err == nil {
				s.Close()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err, "replicas starting together migrate once")
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := postgres.Open(context.Background(), "", store.Options{})
	require.Error(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = postgres.Open(ctx, "postgres://ndrbot:s3cretpw@127.0.0.1:1/none?sslmode=disable&connect_timeout=1", store.Options{})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cretpw")
}

func BenchmarkStore(b *testing.B) { storetest.Bench(b, fresh) }
