// Package sqlite is the embedded store backend: one SQLite file (pure Go,
// modernc.org/sqlite) in WAL mode with synchronous=FULL, so a committed vote,
// claim or audit event survives a crash or power loss — all but a lab run's
// throw-away store (OpenScratch), which is held in memory and never written out.
//
// Writes go through one connection and start with BEGIN IMMEDIATE, so goroutines
// queue in-process instead of failing with SQLITE_BUSY, and another process on the
// same file (ndrbot serve and ndrbot diagnose) waits up to the busy timeout. Reads use a
// separate read-only pool and do not block on writers (WAL).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/internal/core"
)

//go:embed migrations/*.sql
var migrations embed.FS

// BusyTimeout is how long a write waits for another process holding the database.
const BusyTimeout = 10 * time.Second

// Store is a store.Store on a SQLite file, or in memory (OpenScratch).
type Store struct {
	*core.Store
	path string
	// memory is a scratch store's one connection; nil for a file.
	memory *sql.DB
}

var _ store.Store = (*Store)(nil)

// Path is the database file; empty for a store in memory.
func (s *Store) Path() string { return s.path }

// DSN returns the modernc.org/sqlite data source name ndrbot uses for path;
// readOnly selects the read pool's settings.
func DSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(BusyTimeout.Milliseconds()))
	q.Set("_foreign_keys", "1")
	q.Set("_synchronous", "FULL")
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		q.Set("_journal_mode", "WAL")
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Open opens (creating it and its directory when missing) and migrates the
// database at path. A database migrated by a newer ndrbot is refused with
// *store.SchemaTooNewError.
func Open(ctx context.Context, path string, opt store.Options) (*Store, error) {
	if path == "" {
		path = store.DefaultSQLitePath()
	}
	s, err := open(ctx, path, opt)
	if err != nil && !errors.Is(err, ErrCorrupt) && damaged(err) {
		// SQLite may find the damage before quick_check does (reading the
		// schema, setting the journal mode): the verdict is the same.
		return nil, fmt.Errorf("%w (%w); restore it from a backup (the audit trail is in it)", ErrCorrupt, err)
	}
	return s, err
}

// scratchTemplate is an empty database at this build's schema, written by
// `go test ./store/sqlite -run TestScratchTemplate -update`; the test holds it
// to what the migrations make.
//
//go:embed scratch.sqlite
var scratchTemplate []byte

// OpenScratch opens the store of one process's throw-away work (a lab run's):
// the store Open makes — same schema, same statements, same audit chain — held
// in this process's memory and gone when it is closed. Nothing touches the
// disk: it starts from a copy of an empty database already at this build's
// schema (creating the tables costs more than the diagnosis it records), and
// every read and write goes through its one connection, since an in-memory
// database is its connection's alone (SQLite has no WAL in memory, so readers
// beside a writer would wait on its locks anyway).
func OpenScratch(ctx context.Context, opt store.Options) (*Store, error) {
	d, err := scratchDB(ctx)
	if err != nil {
		return nil, err
	}
	return scratchStore(d, opt), nil
}

// scratchStore is the store on a scratch database, which it then owns.
func scratchStore(d *sqlDB, opt store.Options) *Store {
	return &Store{Store: core.New(d, Dialect, opt), memory: d.w}
}

// scratchDB is OpenScratch's database: the template copied into its one
// connection, and its schema checked as a file's would be.
func scratchDB(ctx context.Context) (*sqlDB, error) {
	db, err := sql.Open("sqlite", "file::memory:?_foreign_keys=1&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite scratch store: %w", err)
	}
	// The database lives as long as its connection: database/sql must never
	// close it while idle nor open a second one (which would be empty).
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := deserialize(ctx, db, scratchTemplate); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite scratch store: %w", err)
	}
	d := &sqlDB{w: db, r: db}
	if err := core.Migrate(ctx, d, Dialect, mustSub(migrations, "migrations"), time.Now()); err != nil {
		d.Close()
		return nil, fmt.Errorf("sqlite scratch store: %w", err)
	}
	return d, nil
}

// Scratch is a scratch store's database made ready in the background
// (StartScratch), while its caller reads what the store's options come from.
// Its owner calls Open at most once and then Discard, from one goroutine.
type Scratch struct {
	done chan struct{}
	d    *sqlDB // until Open hands it to a store, or Discard closes it
	err  error
}

// StartScratch begins what OpenScratch does before it needs its options.
func StartScratch(ctx context.Context) *Scratch {
	s := &Scratch{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.d, s.err = scratchDB(ctx)
	}()
	return s
}

// Open waits for the database and returns the store on it, which then owns it.
func (s *Scratch) Open(opt store.Options) (*Store, error) {
	<-s.done
	if s.err != nil {
		return nil, s.err
	}
	if s.d == nil {
		return nil, errors.New("sqlite scratch store: already opened or discarded")
	}
	d := s.d
	s.d = nil
	return scratchStore(d, opt), nil
}

// Discard waits for the background work and closes the database unless a
// store owns it.
func (s *Scratch) Discard() {
	<-s.done
	if s.d != nil {
		_ = s.d.Close()
		s.d = nil
	}
}

// deserialize makes the database of db's one connection a copy of file, a
// database file's bytes (not in WAL mode, which SQLite refuses in memory).
func deserialize(ctx context.Context, db *sql.DB, file []byte) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		d, ok := dc.(interface{ Deserialize([]byte) error })
		if !ok {
			return fmt.Errorf("driver connection %T cannot load a database from memory", dc)
		}
		return d.Deserialize(file) // copied: the template is not changed
	})
}

func open(ctx context.Context, path string, opt store.Options) (*Store, error) {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite store: %w", err)
		}
	}
	// The database holds the audit trail and what the reliefs ran: created
	// readable by its owner only. SQLite gives the -wal and -shm files the
	// database file's mode, so they follow.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	} else if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	w, err := sql.Open("sqlite", DSN(path, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		w.Close()
		return nil, fmt.Errorf("sqlite store %s: journal mode is %s, want wal", path, mode)
	}
	// A damaged file is refused before anything is diagnosed or approved on it.
	if err := check(ctx, w, "quick_check"); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", DSN(path, true))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	db := &sqlDB{w: w, r: r}
	if err := core.Migrate(ctx, db, Dialect, mustSub(migrations, "migrations"), time.Now()); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	return &Store{Store: core.New(db, Dialect, opt), path: path}, nil
}

// OpenReadOnly opens the existing database at path for reading only, for the
// commands that look at it (ndrbot runs list): nothing is created, migrated or
// written, and a write through the store fails with SQLITE_READONLY. A missing
// file is an error wrapping fs.ErrNotExist, not an empty database. A database
// migrated by another version of ndrbot is refused (*store.SchemaTooNewError when
// newer; when older, opening it once with Open migrates it), since its tables
// could be read wrongly.
func OpenReadOnly(ctx context.Context, path string, opt store.Options) (*Store, error) {
	if path == "" {
		path = store.DefaultSQLitePath()
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	// mode=ro is SQLite's own: it refuses to create the file and every write.
	db, err := sql.Open("sqlite", DSN(path, true)+"&mode=ro")
	if err != nil {
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	if err := schemaIsCurrent(ctx, db); err != nil {
		db.Close()
		if damaged(err) {
			return nil, fmt.Errorf("sqlite store %s: %w (%w)", path, ErrCorrupt, err)
		}
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	return &Store{Store: core.New(&sqlDB{w: db, r: db}, Dialect, opt), path: path}, nil
}

// schemaIsCurrent checks, without writing, that the database is at the schema
// version of this build's migrations.
func schemaIsCurrent(ctx context.Context, db *sql.DB) error {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	known := len(files) // Migrate holds them to 1…n without gaps
	var cur int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&cur); err != nil {
		if strings.Contains(err.Error(), "no such table") {
			var tables int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&tables); err == nil && tables == 0 {
				return ErrEmpty
			}
			return errors.New("not an ndrbot database (it has no schema_version table)")
		}
		return fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case cur > known:
		return &store.SchemaTooNewError{DB: cur, Known: known}
	case cur < known:
		return fmt.Errorf("its schema is version %d and this ndrbot reads version %d: open it read-write once (the store check command does) to migrate it first", cur, known)
	}
	return nil
}

// ErrEmpty says the database holds nothing at all: Open creates the file before it
// migrates it, so a process stopped in between (killed at start) leaves one —
// as does someone who emptied it. A reader has no trail in it to check.
var ErrEmpty = errors.New("not an ndrbot database yet: it is empty (created, never written)")

// ErrCorrupt says the database file failed SQLite's own integrity check.
var ErrCorrupt = errors.New("database file is damaged")

// Check runs SQLite's full integrity_check (every index against its table),
// slower than the quick_check Open runs.
func (s *Store) Check(ctx context.Context) error {
	if s.memory != nil {
		return check(ctx, s.memory, "integrity_check")
	}
	db, err := sql.Open("sqlite", DSN(s.path, true))
	if err != nil {
		return fmt.Errorf("sqlite store %s: %w", s.path, err)
	}
	defer db.Close()
	if err := check(ctx, db, "integrity_check"); err != nil {
		return fmt.Errorf("sqlite store %s: %w", s.path, err)
	}
	return nil
}

// check runs an integrity pragma; SQLite answers the single row "ok", or one
// row per problem found.
func check(ctx context.Context, db *sql.DB, pragma string) error {
	rows, err := db.QueryContext(ctx, "PRAGMA "+pragma)
	if err != nil {
		if damaged(err) {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, pragma, err)
		}
		return fmt.Errorf("%s: %w", pragma, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("%s: %w", pragma, err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, pragma, err)
	}
	if len(problems) > 0 {
		if len(problems) > 5 {
			problems = append(problems[:5], fmt.Sprintf("… %d more", len(problems)-5))
		}
		return fmt.Errorf("%w: %s: %s; restore it from a backup (the audit trail is in it)", ErrCorrupt, pragma, strings.Join(problems, "; "))
	}
	return nil
}

// damaged reports SQLite's own words for a damaged file: SQLITE_CORRUPT
// ("database disk image is malformed") and SQLITE_NOTADB.
func damaged(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "malformed") || strings.Contains(msg, "not a database")
}

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Dialect is SQLite's: no row locks (the write transaction holds the database).
var Dialect = core.Dialect{
	Name: "sqlite",
	IsUnique: func(err error) bool {
		var e *sqlite.Error
		if errors.As(err, &e) {
			return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
		}
		return false
	},
	IsNoRows: func(err error) bool { return errors.Is(err, sql.ErrNoRows) },
}

// sqlDB adapts database/sql to core.DB: w is the single writer connection, r the
// read-only pool.
type sqlDB struct {
	mu   sync.Mutex // held by Write: one transaction at a time on w
	w, r *sql.DB
	// ws and rs keep statements prepared, by their text: SQLite's parsing and
	// planning cost more than most of the writes they run (an audit append is
	// a handful of statements).
	ws, rs stmtCache
}

// maxPrepared bounds each cache: the store's statements are a fixed set, and
// a text built at run time (a LIMIT) has few values.
const maxPrepared = 256

type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
	// pending are texts a transaction ran unprepared: the writer's only
	// connection is the transaction's until it ends, so they are prepared after.
	pending []string
}

// get returns the prepared statement for s, preparing it on db when prepare is
// set; nil when it is not prepared (yet), or is not to be: several statements
// in one text (a migration) run as given. The lock is not held while preparing,
// which waits for a connection.
func (c *stmtCache) get(ctx context.Context, db *sql.DB, s string, prepare bool) *sql.Stmt {
	if strings.Contains(s, ";") {
		return nil
	}
	c.mu.Lock()
	st, ok := c.m[s]
	full := len(c.m)+len(c.pending) >= maxPrepared
	if !ok && !full && !prepare && !slices.Contains(c.pending, s) {
		c.pending = append(c.pending, s)
	}
	c.mu.Unlock()
	if ok || full || !prepare {
		return st
	}
	return c.add(ctx, db, s)
}

// add prepares s; one that does not prepare is run as given each time, and its
// error is the caller's then.
func (c *stmtCache) add(ctx context.Context, db *sql.DB, s string) *sql.Stmt {
	st, err := db.PrepareContext(ctx, s)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if had, ok := c.m[s]; ok {
		_ = st.Close()
		return had
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[s] = st
	return st
}

// preparePending prepares what the last transactions ran unprepared; db's
// connection is free.
func (c *stmtCache) preparePending(ctx context.Context, db *sql.DB) {
	c.mu.Lock()
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, s := range pending {
		c.add(ctx, db, s)
	}
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errors.Join(errs...)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

// sqlQ runs statements in tx when it is set, else on db.
type sqlQ struct {
	tx    *sql.Tx
	db    *sql.DB
	cache *stmtCache
}

// stmt returns s prepared for where q runs, or nil to run it as given.
func (q sqlQ) stmt(ctx context.Context, s string) *sql.Stmt {
	st := q.cache.get(ctx, q.db, s, q.tx == nil)
	if st != nil && q.tx != nil {
		return q.tx.StmtContext(ctx, st)
	}
	return st
}

func (q sqlQ) Exec(ctx context.Context, s string, args ...any) (int64, error) {
	var (
		res sql.Result
		err error
	)
	switch st := q.stmt(ctx, s); {
	case st != nil:
		res, err = st.ExecContext(ctx, args...)
	case q.tx != nil:
		res, err = q.tx.ExecContext(ctx, s, args...)
	default:
		res, err = q.db.ExecContext(ctx, s, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQ) Query(ctx context.Context, s string, args ...any) (core.Rows, error) {
	var (
		rows *sql.Rows
		err  error
	)
	switch st := q.stmt(ctx, s); {
	case st != nil:
		rows, err = st.QueryContext(ctx, args...)
	case q.tx != nil:
		rows, err = q.tx.QueryContext(ctx, s, args...)
	default:
		rows, err = q.db.QueryContext(ctx, s, args...)
	}
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q sqlQ) QueryRow(ctx context.Context, s string, args ...any) core.Row {
	switch st := q.stmt(ctx, s); {
	case st != nil:
		return st.QueryRowContext(ctx, args...)
	case q.tx != nil:
		return q.tx.QueryRowContext(ctx, s, args...)
	default:
		return q.db.QueryRowContext(ctx, s, args...)
	}
}

func (d *sqlDB) Exec(ctx context.Context, s string, args ...any) (int64, error) {
	return sqlQ{db: d.w, cache: &d.ws}.Exec(ctx, s, args...)
}

func (d *sqlDB) Query(ctx context.Context, s string, args ...any) (core.Rows, error) {
	return sqlQ{db: d.r, cache: &d.rs}.Query(ctx, s, args...)
}

func (d *sqlDB) QueryRow(ctx context.Context, s string, args ...any) core.Row {
	return sqlQ{db: d.r, cache: &d.rs}.QueryRow(ctx, s, args...)
}

// Write runs fn in a BEGIN IMMEDIATE transaction on the writer connection.
func (d *sqlDB) Write(ctx context.Context, fn func(core.Q) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.ws.preparePending(context.WithoutCancel(ctx), d.w)
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(sqlQ{tx: tx, db: d.w, cache: &d.ws}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (d *sqlDB) Close() error {
	errs := []error{d.ws.close(), d.rs.close(), d.w.Close()}
	if d.r != d.w {
		errs = append(errs, d.r.Close())
	}
	return errors.Join(errs...)
}
