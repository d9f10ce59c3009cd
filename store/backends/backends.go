// Package backends opens the configured store backend: the one place that knows
// both store/sqlite and store/postgres, so cmd/bot imports this and not them.
package backends

import (
	"context"
	"fmt"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/postgres"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

// Config selects and locates the store (config keys store.driver, store.path,
// store.dsn / store.dsn_file).
type Config struct {
	Driver string // "sqlite" (default) or "postgres"
	Path   string // sqlite: database file, required (config.Load resolves store.path's default)
	DSN    string // postgres: connection string (a secret: from env or file)
	// Scratch, when set, is a SQLite store in memory for one process's
	// throw-away work, gone when it ends (sqlite.OpenScratch), as
	// StartScratch began it; Path is not used.
	Scratch *Scratch
}

// Scratch is a scratch store's database made ready in the background.
type Scratch = sqlite.Scratch

// StartScratch begins making a scratch store's database ready while the
// caller reads its configuration (sqlite.StartScratch); Config.Scratch hands
// it to Open, and its Discard closes it if Open never took it.
func StartScratch(ctx context.Context) *Scratch { return sqlite.StartScratch(ctx) }

// Validate checks the configuration without opening anything.
func (c Config) Validate() error {
	switch c.Driver {
	case "", "sqlite":
		// No fallback to a default here: the sqlite package's own would be the
		// working directory, where a database moves with cd.
		if c.Path == "" && c.Scratch == nil {
			return fmt.Errorf("%w: store.driver sqlite needs store.path (or NDRBOT_STORE_PATH)", incident.ErrInvalidInput)
		}
		return nil
	case "postgres", "postgresql":
		if c.DSN == "" {
			return fmt.Errorf("%w: store.driver postgres needs store.dsn (or NDRBOT_STORE_DSN / store.dsn_file)", incident.ErrInvalidInput)
		}
		return nil
	default:
		return fmt.Errorf("%w: store.driver %q: want sqlite or postgres", incident.ErrInvalidInput, c.Driver)
	}
}

// Open opens and migrates the configured store.
func Open(ctx context.Context, c Config, opt store.Options) (store.Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch c.Driver {
	case "postgres", "postgresql":
		return postgres.Open(ctx, c.DSN, opt)
	default:
		if c.Scratch != nil {
			return c.Scratch.Open(opt)
		}
		return sqlite.Open(ctx, c.Path, opt)
	}
}

// ErrEmpty: the SQLite file is there but holds nothing (see sqlite.ErrEmpty).
var ErrEmpty = sqlite.ErrEmpty

// OpenReadOnly opens the configured store for a command that only reads it, and
// never creates a database that is not there: SQLite opens the existing file
// read-only (sqlite.OpenReadOnly: a missing file wraps fs.ErrNotExist, one with
// nothing in it ErrEmpty).
// PostgreSQL has no read-only open here yet: it is opened as Open does, whose
// migrations change nothing on a database that is already current.
func OpenReadOnly(ctx context.Context, c Config, opt store.Options) (store.Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch c.Driver {
	case "postgres", "postgresql":
		return postgres.Open(ctx, c.DSN, opt)
	default:
		return sqlite.OpenReadOnly(ctx, c.Path, opt)
	}
}
