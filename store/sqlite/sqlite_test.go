package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
	"github.com/ndrbot/ndrbot/store/storetest"
)

func openAt(t testing.TB, path string, opt store.Options) storetest.Instance {
	return instance(t, path, opt, sqlite.Open)
}

func instance(t testing.TB, path string, opt store.Options, open func(context.Context, string, store.Options) (*sqlite.Store, error)) storetest.Instance {
	s, err := open(context.Background(), path, opt)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	raw, err := sql.Open("sqlite", sqlite.DSN(path, false))
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	return withRaw(storetest.Instance{
		Store: s,
		Reopen: func(t testing.TB, opt store.Options) (store.Store, error) {
			s, err := sqlite.Open(context.Background(), path, opt)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	}, raw)
}

// withRaw is inst with its raw access (Exec, FillDisk) through raw, a
// connection to the same database.
func withRaw(inst storetest.Instance, raw *sql.DB) storetest.Instance {
	inst.Exec = func(t testing.TB, q string, args ...any) {
		t.Helper()
		_, err := raw.Exec(q, args...)
		require.NoError(t, err, q)
	}
	inst.FillDisk = func(t testing.TB, kind audit.Kind) {
		t.Helper()
		// SQLite's own words for SQLITE_FULL; a trigger raises them with
		// SQLITE_CONSTRAINT's code, which callers must not depend on anyway.
		_, err := raw.Exec(`CREATE TRIGGER disk_full BEFORE INSERT ON audit_events WHEN NEW.kind = '` + string(kind) + `'
			BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`)
		require.NoError(t, err)
	}
	return inst
}

func fresh(t testing.TB, opt store.Options) storetest.Instance {
	return openAt(t, filepath.Join(t.TempDir(), "ndrbot.db"), opt)
}

func TestSuite(t *testing.T) {
	storetest.Run(t, fresh)
}

func TestPragmas(t *testing.T) {
	inst := fresh(t, store.Options{})
	s := inst.Store.(*sqlite.Store)
	db, err := sql.Open("sqlite", sqlite.DSN(s.Path(), false))
	require.NoError(t, err)
	defer db.Close()
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "10000"} {
		var got string
		require.NoError(t, db.QueryRow("PRAGMA "+pragma).Scan(&got))
		assert.Equal(t, want, got, pragma)
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "ndrbot", "ndrbot.db")
	s, err := sqlite.Open(context.Background(), path, store.Options{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = os.Stat(path)
	assert.NoError(t, err)
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/var/lib/xdg")
	assert.Equal(t, "/var/lib/xdg/ndrbot/ndrbot.db", store.DefaultSQLitePath())
	t.Setenv("XDG_DATA_HOME", "")
	assert.Equal(t, "ndrbot.db", store.DefaultSQLitePath())
	t.Setenv("XDG_DATA_HOME", "relative/ignored")
	assert.Equal(t, "ndrbot.db", store.DefaultSQLitePath())
}

// TestProcessRace: two processes on one SQLite file approve and claim the same relief.
func TestProcessRace(t *testing.T) {
	if os.Getenv(storetest.EnvChild) != "" {
		t.Skip("child")
	}
	path := filepath.Join(t.TempDir(), "ndrbot.db")
	inst := openAt(t, path, store.Options{})
	storetest.ProcessRace(t, inst, spawnChild(path))
}

// TestProcessGuardRace: two runs in two channels approved at once, in two
// processes on one SQLite file: one restart, the other claim refused by the guard.
func TestProcessGuardRace(t *testing.T) {
	if os.Getenv(storetest.EnvChild) != "" {
		t.Skip("child")
	}
	path := filepath.Join(t.TempDir(), "ndrbot.db")
	inst := openAt(t, path, store.Options{})
	storetest.ProcessGuardRace(t, inst, spawnChild(path))
}

// spawnChild starts this test binary again as a race child on the file at path.
func spawnChild(path string) func(env []string) ([]byte, error) {
	return func(env []string) ([]byte, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestProcessRaceChild$", "-test.count=1")
		cmd.Env = append(append(os.Environ(), env...), "NDRBOT_STORETEST_SQLITE="+path)
		cmd.Stderr = os.Stderr
		return cmd.Output()
	}
}

func TestProcessRaceChild(t *testing.T) {
	ok := storetest.ProcessRaceChild(t, func() (store.Store, error) {
		return sqlite.Open(context.Background(), os.Getenv("NDRBOT_STORETEST_SQLITE"), store.Options{})
	})
	if !ok {
		t.Skip("only runs as a child of TestProcessRace or TestProcessGuardRace")
	}
}

func BenchmarkStore(b *testing.B) { storetest.Bench(b, fresh) }

// The database, its WAL and shared-memory files are readable by the owner only,
// in a directory only the owner can enter, whatever the umask.
func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ndrbot")
	path := filepath.Join(dir, "ndrbot.db")
	s, err := sqlite.Open(context.Background(), path, store.Options{})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Append(context.Background(), audit.Record{Kind: "command", Actor: incident.Actor{ID: "cli:alice"}})
	require.NoError(t, err)
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(f)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
	}
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm(), dir)
}

// A damaged file is refused when the store opens, with a verdict that says so,
// and Check's full integrity check agrees.
func TestDamagedFileIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ndrbot.db")
	s, err := sqlite.Open(context.Background(), path, store.Options{})
	require.NoError(t, err)
	for i := range 300 {
		_, err = s.Append(context.Background(), audit.Record{Kind: "command", Actor: incident.Actor{ID: "cli:alice"},
			Payload: map[string]any{"n": i, "pad": strings.Repeat("x", 200)}})
		require.NoError(t, err)
	}
	require.NoError(t, s.Check(context.Background()))
	require.NoError(t, s.Close())

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Greater(t, len(data), 16*4096, "the events fill pages past the schema")
	for i := 8 * 4096; i < 12*4096; i++ { // four pages in the middle of the events
		data[i] = 0xA5
	}
	require.NoError(t, os.WriteFile(path, data, 0o600))

	_, err = sqlite.Open(context.Background(), path, store.Options{})
	require.ErrorIs(t, err, sqlite.ErrCorrupt)
	assert.Contains(t, err.Error(), path)
}

// OpenReadOnly reads what Open wrote and changes nothing: it creates no missing
// file, refuses writes, and refuses a database at another schema version or not
// ndrbot's at all.
func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	missing := filepath.Join(dir, "none", "ndrbot.db")
	_, err := sqlite.OpenReadOnly(ctx, missing, store.Options{})
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.NoDirExists(t, filepath.Dir(missing), "nothing created for a missing database")

	path := filepath.Join(dir, "ndrbot.db")
	rw, err := sqlite.Open(ctx, path, store.Options{})
	require.NoError(t, err)
	run, err := rw.CreateRun(ctx, store.NewRun{Playbook: "ndr-5.5.4", Requester: incident.CLIActor("tester"), Origin: "cli"})
	require.NoError(t, err)
	require.NoError(t, rw.Close())
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	ro, err := sqlite.OpenReadOnly(ctx, path, store.Options{})
	require.NoError(t, err)
	list, err := ro.ListRuns(ctx, store.RunFilter{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, run.ID, list[0].ID)
	_, err = ro.CreateRun(ctx, store.NewRun{Playbook: "ndr-5.5.4", Requester: incident.CLIActor("tester"), Origin: "cli"})
	assert.ErrorContains(t, err, "readonly", "a write through a read-only store fails")
	require.NoError(t, ro.Close())
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the database file is unchanged")

	raw, err := sql.Open("sqlite", sqlite.DSN(path, false))
	require.NoError(t, err)
	defer raw.Close()
	empty := filepath.Join(dir, "empty.db")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	// What Open leaves when stopped before migrating: WAL set, no table.
	unmigrated := filepath.Join(dir, "unmigrated.db")
	um, err := sql.Open("sqlite", sqlite.DSN(unmigrated, false))
	require.NoError(t, err)
	require.NoError(t, um.Ping())
	require.NoError(t, um.Close())
	foreign := filepath.Join(dir, "foreign.db")
	fdb, err := sql.Open("sqlite", sqlite.DSN(foreign, false))
	require.NoError(t, err)
	_, err = fdb.Exec(`CREATE TABLE notes (body TEXT)`)
	require.NoError(t, err)
	require.NoError(t, fdb.Close())
	tests := []struct {
		name, path, sql string
		want            string
		empty           bool // wraps ErrEmpty
	}{
		{"newer schema", path, `INSERT INTO schema_version (version, applied_us) VALUES (99, 0)`, "newer than this ndrbot", false},
		{"older schema", path, `DELETE FROM schema_version WHERE version > 1`, "to migrate it", false},
		{"an empty file", empty, "", "not an ndrbot database yet: it is empty", true},
		{"created, never migrated", unmigrated, "", "not an ndrbot database yet: it is empty", true},
		{"not ndrbot's", foreign, "", "not an ndrbot database (it has no schema_version table)", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.sql != "" {
				_, err := raw.Exec(tc.sql)
				require.NoError(t, err)
			}
			_, err := sqlite.OpenReadOnly(ctx, tc.path, store.Options{})
			assert.ErrorContains(t, err, tc.want)
			assert.Equal(t, tc.empty, errors.Is(err, sqlite.ErrEmpty), "%v", err)
		})
	}
}
