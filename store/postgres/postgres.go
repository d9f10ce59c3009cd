// Package postgres is the store backend for several bot replicas against one
// PostgreSQL database (pgx/v5, pgxpool). Decisions are serialized with row locks
// (SELECT … FOR UPDATE on the approval), audit appends with the audit_head row
// lock, outbox leasing and migrations with transaction-scoped advisory locks, so
// replicas can vote, claim and append concurrently and still agree.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/internal/core"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Advisory lock keys (transaction scope).
const (
	lockMigrations = 0x6e6472626f7401 // "ndrbot" 01
	lockOutbox     = 0x6e6472626f7402
)

// Store is a store.Store on PostgreSQL.
type Store struct {
	*core.Store
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Pool exposes the connection pool (tests, health checks).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Open connects with dsn (a postgres:// URL or key=value string; search_path may
// be given as a parameter) and migrates the database. A database migrated by a
// newer ndrbot is refused with *store.SchemaTooNewError.
func Open(ctx context.Context, dsn string, opt store.Options) (*Store, error) {
	if dsn == "" {
		return nil, errors.New("postgres store: empty DSN")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err) // pgx masks the password
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: connect %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	db := &pgDB{pool: pool}
	sub, _ := fs.Sub(migrations, "migrations")
	if err := core.Migrate(ctx, db, Dialect, sub, time.Now()); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	return &Store{Store: core.New(db, Dialect, opt), pool: pool}, nil
}

// Dialect is PostgreSQL's.
var Dialect = core.Dialect{
	Name:           "postgres",
	ForUpdate:      " FOR UPDATE",
	LockOutbox:     "SELECT pg_advisory_xact_lock(" + strconv.FormatInt(lockOutbox, 10) + ")",
	LockMigrations: "SELECT pg_advisory_xact_lock(" + strconv.FormatInt(lockMigrations, 10) + ")",
	AppendStatement: `WITH head AS (
		UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1 AND seq = ? AND hash = ? AND key_id = ? RETURNING seq)
		INSERT INTO audit_events (seq, ts_us, actor_id, actor_name, run_id, kind, payload, alg, prev_hash, hash)
		SELECT head.seq, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM head`,
	IsUnique: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	},
	IsNoRows: func(err error) bool { return errors.Is(err, pgx.ErrNoRows) },
}

type pgDB struct {
	pool *pgxpool.Pool
}

// pgQ is anything that runs statements: the pool or a transaction.
type pgQ struct {
	q interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
		Query(context.Context, string, ...any) (pgx.Rows, error)
		QueryRow(context.Context, string, ...any) pgx.Row
	}
}

type pgRows struct{ pgx.Rows }

func (r pgRows) Close() { r.Rows.Close() }

func (q pgQ) Exec(ctx context.Context, s string, args ...any) (int64, error) {
	tag, err := q.q.Exec(ctx, rebind(s), args...)
	return tag.RowsAffected(), err
}

func (q pgQ) Query(ctx context.Context, s string, args ...any) (core.Rows, error) {
	rows, err := q.q.Query(ctx, rebind(s), args...)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
}

func (q pgQ) QueryRow(ctx context.Context, s string, args ...any) core.Row {
	return q.q.QueryRow(ctx, rebind(s), args...)
}

func (d *pgDB) Exec(ctx context.Context, s string, args ...any) (int64, error) {
	return pgQ{d.pool}.Exec(ctx, s, args...)
}

func (d *pgDB) Query(ctx context.Context, s string, args ...any) (core.Rows, error) {
	return pgQ{d.pool}.Query(ctx, s, args...)
}

func (d *pgDB) QueryRow(ctx context.Context, s string, args ...any) core.Row {
	return pgQ{d.pool}.QueryRow(ctx, s, args...)
}

// Write runs fn in a READ COMMITTED transaction (rows it must decide on are locked
// with FOR UPDATE), retrying on serialization failure or deadlock.
func (d *pgDB) Write(ctx context.Context, fn func(core.Q) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = d.write(ctx, fn)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || (pe.Code != "40001" && pe.Code != "40P01") {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 10 * time.Millisecond):
		}
	}
	return err
}

func (d *pgDB) write(ctx context.Context, fn func(core.Q) error) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(pgQ{tx}); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}

func (d *pgDB) Close() error {
	d.pool.Close()
	return nil
}

var rebound sync.Map // '?' SQL → '$n' SQL

// rebind turns '?' placeholders into $1, $2, …; the store's SQL has no '?' inside
// string literals.
func rebind(s string) string {
	if !strings.Contains(s, "?") {
		return s
	}
	if v, ok := rebound.Load(s); ok {
		return v.(string)
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(s[i])
	}
	out := b.String()
	rebound.Store(s, out)
	return out
}
