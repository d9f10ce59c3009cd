// Package core implements store.Store once, over a small database abstraction
// that store/sqlite (database/sql + modernc.org/sqlite) and store/postgres (pgx)
// provide. SQL is written with '?' placeholders; the PostgreSQL adapter rebinds.
package core

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/store"
)

// Rows is a result set.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is a single-row result; Scan returns ErrNoRows (see Dialect.IsNoRows) when empty.
type Row interface {
	Scan(dest ...any) error
}

// Q runs statements, inside or outside a transaction.
type Q interface {
	Exec(ctx context.Context, sql string, args ...any) (int64, error)
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) Row
}

// DB is a database: Q reads outside transactions; Write runs fn in a write
// transaction that commits when fn returns nil. Write transactions must be
// serialized against each other where the backend cannot lock rows (SQLite:
// BEGIN IMMEDIATE on one writer connection).
type DB interface {
	Q
	Write(ctx context.Context, fn func(tx Q) error) error
	Close() error
}

// Dialect holds what differs between the backends' SQL.
type Dialect struct {
	Name string
	// ForUpdate is appended to a SELECT that must lock its row until commit.
	ForUpdate string
	// LockOutbox serializes NextPosts across processes ("" when Write already does).
	LockOutbox string
	// LockMigrations serializes migrations across processes ("" when Write already does).
	LockMigrations string
	// AppendStatement, when set, appends one audit event and moves the head in
	// one statement, on the condition that the head is unchanged (see appendOne);
	// its arguments: new seq, new hash, old seq, old hash, key id, then the
	// event's ts_us, actor_id, actor_name, run_id, kind, payload, alg, prev_hash,
	// hash. Affects 1 row when it appended, 0 when the head had moved.
	AppendStatement string
	IsUnique        func(error) bool
	IsNoRows        func(error) bool
}

// Migrate applies the embedded migrations NNNN_name.sql of fsys that the database
// lacks, in one transaction, and refuses a database whose schema is newer than the
// newest migration known.
func Migrate(ctx context.Context, db DB, d Dialect, fsys fs.FS, now time.Time) error {
	type mig struct {
		version int
		name    string
	}
	var migs []mig
	err := fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".sql") {
			return err
		}
		base := path.Base(p)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with its version number", p)
		}
		migs = append(migs, mig{v, p})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(migs, func(a, b mig) int { return a.version - b.version })
	known := 0
	for i, m := range migs {
		if m.version != i+1 {
			return fmt.Errorf("migrations: expected version %d, found %s", i+1, m.name)
		}
		known = m.version
	}
	return db.Write(ctx, func(tx Q) error {
		if d.LockMigrations != "" {
			if _, err := tx.Exec(ctx, d.LockMigrations); err != nil {
				return fmt.Errorf("lock migrations: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_us BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
		var cur int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&cur); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if cur > known {
			return &store.SchemaTooNewError{DB: cur, Known: known}
		}
		for _, m := range migs[cur:] {
			sqlText, err := fs.ReadFile(fsys, m.name)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(sqlText)); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version, applied_us) VALUES (?, ?)`, m.version, now.UnixMicro()); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}
