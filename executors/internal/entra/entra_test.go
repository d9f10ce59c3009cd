package entra

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
)

// Current builds once per reading of the material: again after the secret file
// is rotated, not while it stays the same, and keeps what it had when a build
// or a reading fails.
func TestCurrentRebuildsOnRotation(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "client-secret")
	write := func(s string) { require.NoError(t, os.WriteFile(file, []byte(s), 0o600)) }
	write("first\n")
	src, err := NewSource(config.Target{ClientSecretFile: file})
	require.NoError(t, err)

	var c Current[string]
	builds := 0
	build := func(m Material) (string, error) {
		builds++
		if m.secret == "broken" {
			return "", errors.New("cannot build")
		}
		return m.secret, nil
	}
	steps := []struct {
		name, secret string
		want         string
		wantErr      bool
		builds       int
	}{
		{name: "first reading builds", secret: "first\n", want: "first", builds: 1},
		{name: "same material: kept", secret: "first\n", want: "first", builds: 1},
		{name: "rotated: built again", secret: "second\n", want: "second", builds: 2},
		{name: "a failed build is an error", secret: "broken\n", wantErr: true, builds: 3},
		{name: "an unreadable file is an error", secret: "", wantErr: true, builds: 3},
		{name: "back to the kept material: not built again", secret: "second\n", want: "second", builds: 3},
		{name: "rotated once more", secret: "third\n", want: "third", builds: 4},
	}
	for _, st := range steps {
		write(st.secret)
		got, err := c.Get(src, build)
		if st.wantErr {
			assert.Error(t, err, st.name)
		} else {
			require.NoError(t, err, st.name)
			assert.Equal(t, st.want, got, st.name)
		}
		assert.Equal(t, st.builds, builds, st.name)
	}
}
