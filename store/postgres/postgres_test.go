package postgres_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/pgtest"
	"github.com/ndrbot/ndrbot/store/postgres"
	"github.com/ndrbot/ndrbot/store/storetest"
)

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
		FillDisk: func(t testing.TB, kind audit.Kind) {
			t.Helper()
			// SQLSTATE 53100 disk_full, with the message PostgreSQL gives when
			// extending a relation meets ENOSPC.
			_, err := s.Pool().Exec(context.Background(), `CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN RAISE EXCEPTION 'could not extend file "base/16384/16385": No space left on device' USING ERRCODE = 'disk_full'; END $$`)
			require.NoError(t, err)
			_, err = s.Pool().Exec(context.Background(), `CREATE TRIGGER disk_full BEFORE INSERT ON audit_events FOR EACH ROW
				WHEN (NEW.kind = '`+string(kind)+`') EXECUTE FUNCTION disk_full()`)
			require.NoError(t, err)
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
	return instance(t, pgtest.FreshSchema(t), opt)
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
	dsn := pgtest.FreshSchema(t)
	inst := instance(t, dsn, store.Options{})
	storetest.ProcessRace(t, inst, spawnChild(dsn))
}

// TestProcessGuardRace: two runs in two channels approved at once, in two
// processes on one database: one restart, the other claim refused by the guard.
func TestProcessGuardRace(t *testing.T) {
	if os.Getenv(storetest.EnvChild) != "" {
		t.Skip("child")
	}
	dsn := pgtest.FreshSchema(t)
	inst := instance(t, dsn, store.Options{})
	storetest.ProcessGuardRace(t, inst, spawnChild(dsn))
}

// spawnChild starts this test binary again as a race child on the schema dsn names.
func spawnChild(dsn string) func(env []string) ([]byte, error) {
	return func(env []string) ([]byte, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestProcessRaceChild$", "-test.count=1")
		cmd.Env = append(append(os.Environ(), env...), "NDRBOT_STORETEST_PG_DSN="+dsn)
		cmd.Stderr = os.Stderr
		return cmd.Output()
	}
}

func TestProcessRaceChild(t *testing.T) {
	ok := storetest.ProcessRaceChild(t, func() (store.Store, error) {
		return postgres.Open(context.Background(), os.Getenv("NDRBOT_STORETEST_PG_DSN"), store.Options{})
	})
	if !ok {
		t.Skip("only runs as a child of TestProcessRace or TestProcessGuardRace")
	}
}

func TestConcurrentMigrations(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
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
