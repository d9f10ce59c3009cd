package backends_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/backends"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		c       backends.Config
		wantErr bool
	}{
		{backends.Config{Path: "x.db"}, false},
		{backends.Config{Driver: "sqlite", Path: "x.db"}, false},
		{backends.Config{}, true},                 // no path: never ./ndrbot.db
		{backends.Config{Driver: "sqlite"}, true}, // likewise
		{backends.Config{Driver: "postgres", DSN: "postgres://localhost/ndr"}, false},
		{backends.Config{Driver: "postgres"}, true},
		{backends.Config{Driver: "mysql"}, true},
	}
	for _, tc := range cases {
		err := tc.c.Validate()
		if tc.wantErr {
			assert.ErrorIs(t, err, incident.ErrInvalidInput, "%+v", tc.c)
		} else {
			assert.NoError(t, err, "%+v", tc.c)
		}
	}
}

func TestOpenSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ndrbot.db")
	s, err := backends.Open(context.Background(), backends.Config{Driver: "sqlite", Path: path}, store.Options{})
	require.NoError(t, err)
	defer s.Close()
	assert.IsType(t, &sqlite.Store{}, s)
	_, err = backends.Open(context.Background(), backends.Config{Driver: "postgres"}, store.Options{})
	assert.Error(t, err)
}

// Without a path nothing is opened, and nothing is created in the working
// directory, read-write or read-only.
func TestOpenSQLiteNeedsAPath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	_, err := backends.Open(context.Background(), backends.Config{Driver: "sqlite"}, store.Options{})
	assert.ErrorIs(t, err, incident.ErrInvalidInput)
	_, err = backends.OpenReadOnly(context.Background(), backends.Config{}, store.Options{})
	assert.ErrorIs(t, err, incident.ErrInvalidInput)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}
