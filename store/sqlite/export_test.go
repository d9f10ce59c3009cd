package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/internal/core"
)

// MemoryDB is a scratch store's one connection, for the conformance suite's raw
// access to its database.
func MemoryDB(s *Store) *sql.DB { return s.memory }

// ShareMemory opens another store on s's in-memory database, as Open does on a
// file: what a second process, or a restart, is to a file. Closing it would
// close s's database.
func ShareMemory(ctx context.Context, s *Store, opt store.Options) (*Store, error) {
	d := &sqlDB{w: s.memory, r: s.memory}
	if err := core.Migrate(ctx, d, Dialect, mustSub(migrations, "migrations"), time.Now()); err != nil {
		return nil, err
	}
	return scratchStore(d, opt), nil
}
