package sqlite_test

import (
	"context"
	"database/sql"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
	"github.com/ndrbot/ndrbot/store/storetest"
)

var update = flag.Bool("update", false, "rewrite scratch.sqlite from the migrations")

// The scratch store passes the conformance suite the configured one does: a lab
// run records as a real one.
func TestSuiteScratch(t *testing.T) { storetest.Run(t, scratchInstance) }

// BenchmarkScratch is the store benchmark on a scratch store: what a lab run's
// recording costs without a disk.
//
//	go test ./store/sqlite -run '^$' -bench Scratch/Append/vs-insert
func BenchmarkScratch(b *testing.B) { storetest.Bench(b, scratchInstance) }

// scratchInstance is a scratch store with raw access to its database.
func scratchInstance(t testing.TB, opt store.Options) storetest.Instance {
	s, err := sqlite.OpenScratch(context.Background(), opt)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return withRaw(storetest.Instance{
		// Closed, an in-memory database is gone: the suite's restarts
		// reopen it, so the connection is closed by the cleanup only.
		Store: sharedStore{s},
		Reopen: func(t testing.TB, opt store.Options) (store.Store, error) {
			other, err := sqlite.ShareMemory(context.Background(), s, opt)
			if err != nil {
				return nil, err
			}
			return sharedStore{other}, nil
		},
	}, sqlite.MemoryDB(s))
}

// sharedStore is a store on a scratch store's database whose connection the
// test's cleanup closes.
type sharedStore struct{ *sqlite.Store }

func (sharedStore) Close() error { return nil }

// TestScratchTemplate holds the embedded template to what the migrations make
// of a new file: the same tables, indexes and triggers, the same versions.
func TestScratchTemplate(t *testing.T) {
	ctx := context.Background()
	migrated := filepath.Join(t.TempDir(), "migrated.db")
	s, err := sqlite.Open(ctx, migrated, store.Options{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	if *update {
		db, err := sql.Open("sqlite", "file:"+migrated)
		require.NoError(t, err)
		db.SetMaxOpenConns(1)
		// When it was migrated says nothing about the copies made of it.
		_, err = db.Exec(`UPDATE schema_version SET applied_us = 0`)
		require.NoError(t, err)
		// SQLite opens no WAL database in memory.
		_, err = db.Exec(`PRAGMA journal_mode = DELETE`)
		require.NoError(t, err)
		_, err = db.Exec(`VACUUM`)
		require.NoError(t, err)
		require.NoError(t, db.Close())
		b, err := os.ReadFile(migrated)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile("scratch.sqlite", b, 0o644))
	}

	s, err = sqlite.OpenScratch(ctx, store.Options{})
	require.NoError(t, err)
	defer s.Close()
	scratch := sqlite.MemoryDB(s)
	assert.Equal(t, schema(t, raw(t, migrated)), schema(t, scratch),
		"scratch.sqlite is not what the migrations make: go test ./store/sqlite -run TestScratchTemplate -update")
	template, err := os.ReadFile("scratch.sqlite")
	require.NoError(t, err)
	// Bytes 18 and 19 of the header, the file format's write and read versions:
	// 1 is a rollback journal, 2 WAL, which SQLite refuses in memory.
	assert.Equal(t, []byte{1, 1}, template[18:20], "the template is in WAL mode")
	var applied int64
	require.NoError(t, scratch.QueryRow(`SELECT max(applied_us) FROM schema_version`).Scan(&applied))
	assert.Zero(t, applied, "the template says when it was migrated")
	var mode string
	require.NoError(t, scratch.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	assert.Equal(t, "memory", mode, "the scratch store is held in memory")
	var fk bool
	require.NoError(t, scratch.QueryRow(`PRAGMA foreign_keys`).Scan(&fk))
	assert.True(t, fk, "foreign keys are enforced, as in a file store")
}

func schema(t *testing.T, db *sql.DB) [][4]string {
	t.Helper()
	rows, err := db.Query(`SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name`)
	require.NoError(t, err)
	defer rows.Close()
	var out [][4]string
	for rows.Next() {
		var r [4]string
		require.NoError(t, rows.Scan(&r[0], &r[1], &r[2], &r[3]))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	var versions string
	require.NoError(t, db.QueryRow(`SELECT group_concat(version) FROM schema_version`).Scan(&versions))
	return append(out, [4]string{"versions", versions})
}

func raw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", sqlite.DSN(path, true))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// A scratch database begun in the background is handed to one store, closed by
// Discard when no store took it, and never handed twice.
func TestStartScratch(t *testing.T) {
	ctx := context.Background()
	t.Run("opened", func(t *testing.T) {
		sc := sqlite.StartScratch(ctx)
		s, err := sc.Open(store.Options{})
		require.NoError(t, err)
		_, err = sc.Open(store.Options{})
		require.ErrorContains(t, err, "already opened or discarded")
		sc.Discard() // the store owns the database: it stays open
		require.NoError(t, sqlite.MemoryDB(s).Ping())
		var tables int
		require.NoError(t, sqlite.MemoryDB(s).QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table'`).Scan(&tables))
		assert.Positive(t, tables, "the template's schema is there")
		require.NoError(t, s.Close())
	})
	t.Run("discarded", func(t *testing.T) {
		before := goleak.IgnoreCurrent()
		sc := sqlite.StartScratch(ctx)
		sc.Discard()
		// Closed: database/sql's connection opener is gone with it.
		goleak.VerifyNone(t, before)
		sc.Discard()
		_, err := sc.Open(store.Options{})
		require.ErrorContains(t, err, "already opened or discarded")
	})
	t.Run("canceled", func(t *testing.T) {
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		sc := sqlite.StartScratch(canceled)
		_, err := sc.Open(store.Options{})
		require.ErrorIs(t, err, context.Canceled)
		sc.Discard()
	})
}
