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

	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
	"github.com/ndrbot/ndrbot/store/storetest"
)

var update = flag.Bool("update", false, "rewrite scratch.sqlite from the migrations")

// The scratch store passes the conformance suite the configured one does: a lab
// run records as a real one.
func TestSuiteScratch(t *testing.T) {
	storetest.Run(t, func(t testing.TB, opt store.Options) storetest.Instance {
		return instance(t, filepath.Join(t.TempDir(), "ndrbot.db"), opt, sqlite.OpenScratch)
	})
}

// TestScratchTemplate holds the embedded template to what the migrations make
// of a new file: the same tables, indexes and triggers, the same versions, WAL.
func TestScratchTemplate(t *testing.T) {
	ctx := context.Background()
	migrated := filepath.Join(t.TempDir(), "migrated.db")
	s, err := sqlite.Open(ctx, migrated, store.Options{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	if *update {
		db, err := sql.Open("sqlite", sqlite.DSN(migrated, false))
		require.NoError(t, err)
		// When it was migrated says nothing about the copies made of it.
		_, err = db.Exec(`UPDATE schema_version SET applied_us = 0`)
		require.NoError(t, err)
		_, err = db.Exec(`VACUUM`)
		require.NoError(t, err)
		require.NoError(t, db.Close())
		b, err := os.ReadFile(migrated)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile("scratch.sqlite", b, 0o644))
	}

	scratch := filepath.Join(t.TempDir(), "scratch.db")
	s, err = sqlite.OpenScratch(ctx, scratch, store.Options{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	assert.Equal(t, schema(t, migrated), schema(t, scratch),
		"scratch.sqlite is not what the migrations make: go test ./store/sqlite -run TestScratchTemplate -update")

	template, err := os.ReadFile("scratch.sqlite")
	require.NoError(t, err)
	// Bytes 18 and 19 of the header: 2 is WAL, kept by the file, so opening a
	// copy does not switch it (the switch is most of a new file's cost).
	assert.Equal(t, []byte{2, 2}, template[18:20], "the template is not in WAL mode")
	var applied int64
	db := raw(t, scratch)
	require.NoError(t, db.QueryRow(`SELECT max(applied_us) FROM schema_version`).Scan(&applied))
	assert.Zero(t, applied, "the template says when it was migrated")
}

func TestScratchFileModeAndNoOverwrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ndrbot.db")
	s, err := sqlite.OpenScratch(ctx, path, store.Options{})
	require.NoError(t, err)
	defer s.Close()
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	_, err = sqlite.OpenScratch(ctx, path, store.Options{})
	assert.ErrorIs(t, err, os.ErrExist, "a scratch store never overwrites a file")
}

func schema(t *testing.T, path string) [][4]string {
	t.Helper()
	db := raw(t, path)
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
