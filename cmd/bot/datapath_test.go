package main

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/slack/slackfake"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

// The store goes to systemd's state directory or the XDG data directory, in a
// directory made 0700 — never to the working directory — and config check
// prints the file and what chose it. With no such directory known the bot
// refuses instead of guessing.
func TestStoreDefaultsToTheDataDirectory(t *testing.T) {
	tests := []struct {
		name string
		env  func(data string) []string
		file func(data string) string
		via  string
	}{
		{"XDG_DATA_HOME", func(data string) []string { return []string{"XDG_DATA_HOME=" + data, "HOME=/nonexistent"} },
			func(data string) string { return filepath.Join(data, "ndrbot", "ndrbot.db") }, "$XDG_DATA_HOME"},
		{"~/.local/share", func(data string) []string { return []string{"HOME=" + data, "XDG_DATA_HOME="} },
			func(data string) string { return filepath.Join(data, ".local", "share", "ndrbot", "ndrbot.db") }, "~/.local/share"},
		{"systemd StateDirectory=", func(data string) []string {
			return []string{"STATE_DIRECTORY=" + filepath.Join(data, "ndrbot"), "XDG_DATA_HOME=/nonexistent"}
		}, func(data string) string { return filepath.Join(data, "ndrbot", "ndrbot.db") }, "$STATE_DIRECTORY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work, data := t.TempDir(), t.TempDir()
			t.Chdir(work)
			env, file := tc.env(data), tc.file(data)

			c := bot(t, env, "", false, "config", "check")
			require.Equal(t, 0, c.code, c.err)
			assert.Contains(t, c.out, "path: "+file+" # default from "+tc.via)

			r := bot(t, env, "", false, "store", "check")
			require.Equal(t, 0, r.code, r.out+r.err)
			fi, err := os.Stat(file)
			require.NoError(t, err, "the store is not at %s", file)
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "database file")
			dir, err := os.Stat(filepath.Dir(file))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o700), dir.Mode().Perm(), "the store's directory")
			assertEmptyDirs(t, work)
		})
	}

	t.Run("no directory known", func(t *testing.T) {
		work := t.TempDir()
		t.Chdir(work)
		// XDG_DATA_HOME empty keeps testEnv from setting it; no HOME, no STATE_DIRECTORY.
		r := bot(t, []string{"XDG_DATA_HOME="}, "", false, "store", "check")
		assert.Equal(t, exitUsage, r.code, r.out+r.err)
		assert.Contains(t, r.err, "store.path: no place for the SQLite database")
		assertEmptyDirs(t, work)
	})
}

// Kubernetes sets NDRBOT_PORT, NDRBOT_SERVICE_HOST, … for a Service named
// ndrbot: the bot warns about each and starts.
func TestServiceLinkVariablesWarnAndRun(t *testing.T) {
	t.Chdir(t.TempDir())
	links := []string{"NDRBOT_PORT=tcp://10.0.0.1:8080", "NDRBOT_SERVICE_HOST=10.0.0.1", "NDRBOT_SERVICE_PORT=8080",
		"NDRBOT_PORT_8080_TCP=tcp://10.0.0.1:8080", "NDRBOT_PORT_8080_TCP_ADDR=10.0.0.1"}

	c := bot(t, links, "", false, "config", "check")
	require.Equal(t, 0, c.code, c.err)
	for _, kv := range links {
		name, _, _ := strings.Cut(kv, "=")
		assert.Contains(t, c.err, "warning: "+name+": not a setting, ignored")
	}

	fake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	defer fake.Close()
	// startServeEnv returns once the bot has connected to Slack.
	s := startServeEnv(t, fake, 1, links, "--lab", "healthy")
	require.Equal(t, 0, s.stop(t), s.out.String())
	assert.Contains(t, s.out.String(), "warning: NDRBOT_PORT: not a setting, ignored")
}

// A lab run, from the terminal or through ndrbot serve, leaves the configured store
// as it was — same bytes, same audit head — and does not see its cooldowns; its
// throw-away trail writes no checkpoint beside the real one's.
func TestLabRunLeavesTheRealStoreUntouched(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	keyFile := filepath.Join(dir, "audit.key")
	require.NoError(t, os.WriteFile(keyFile, []byte("lab-isolation-test-key-32-bytes!"), 0o600))
	cpFile := filepath.Join(dir, "checkpoints.log")
	config := []string{"NDRBOT_STORE_AUDIT_KEY_FILE=" + keyFile, "NDRBOT_STORE_CHECKPOINTS_FILE=" + cpFile}
	// Waits scaled down for runs that go to the end; unscaled (a 30-minute
	// cooldown that holds) for those that look for a cooldown.
	fast := testEnv(append([]string{"NDRBOT_LAB_TIME_SCALE=3000"}, config...))
	unscaled := testEnv(append([]string{"NDRBOT_LAB_TIME_SCALE=1"}, config...))
	const ran = "✓ restart-transport ran on ex01.lab.contoso.com"

	// The real store: a restart on ex01 recorded there, under its cooldown.
	r := bot(t, fast, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--approve", "restart-transport", "--lab-store", storeFile)
	require.Equal(t, exitFindings, r.code, r.out+r.err)
	require.Contains(t, r.out, ran)
	blocked := bot(t, unscaled, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--approve", "restart-transport", "--lab-store", storeFile)
	require.Contains(t, blocked.out, "restart-transport is blocked", "the real store holds no cooldown: the test proves nothing")

	before := snapshot(t, storeFile, cpFile)
	// The throw-away stores are held in memory: nothing of them reaches the
	// temporary directory (where they were files once, ndrbot-lab-*), which
	// the subtests' own t.TempDir shares.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	labStores := func() []string {
		found, err := filepath.Glob(filepath.Join(tmp, "ndrbot*"))
		require.NoError(t, err)
		return found
	}

	t.Run("ndrbot diagnose --lab", func(t *testing.T) {
		for i := range 2 { // twice: the first run's restart does not block the second either
			// Unscaled, the restart's verification would wait 5 minutes: the run is
			// stopped once the restart ran.
			out := runUntil(t, unscaled, ran, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--approve", "restart-transport")
			assert.Contains(t, out, ran, "lab run %d saw a cooldown", i+1)
			assert.NotContains(t, out, "is blocked")
			assert.Equal(t, before, snapshot(t, storeFile, cpFile))
			assert.Empty(t, labStores(), "the lab store outlived its run")
		}
	})

	t.Run("ndrbot serve --lab", func(t *testing.T) {
		fake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
		defer fake.Close()
		s := startServeEnv(t, fake, 1, fast, "--lab", "overloaded-queue")
		s.diagnose(t)
		card, approval := s.card(t)
		s.approve(t, card, approval)
		// The first response answered the slash command.
		assert.Contains(t, s.responseTo(t, 1), "Approved: running restart-transport")
		s.waitFor(t, "the relief's outcome on the card", func() bool {
			m, ok := fake.Message(incChannel, card.TS)
			return ok && strings.Contains(strings.ToLower(string(m.Blocks)), "verified")
		})
		// Its runs are in a store of its own, in memory: not in the real one,
		// and not on disk.
		assert.Equal(t, before, snapshot(t, storeFile, cpFile))
		assert.Empty(t, labStores(), "ndrbot serve --lab wrote its store to disk")
		require.Equal(t, 0, s.stop(t), s.out.String())
		assert.Equal(t, before, snapshot(t, storeFile, cpFile))
	})

	v := bot(t, fast, "", false, "audit", "verify", "--checkpoints", cpFile)
	assert.Equal(t, 0, v.code, v.out+v.err)
}

// runUntil runs bot in-process and stops it once its output holds marker (or
// when it ends by itself), returning the output. The stop follows the output,
// not a clock, so a slow machine only makes the test slower.
func runUntil(t *testing.T, env []string, marker string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := &lockedBuffer{}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for ctx.Err() == nil && !strings.Contains(out.String(), marker) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	run(ctx, args, stdio{in: strings.NewReader(""), out: out, err: out, getenv: lookupIn(env),
		environ: func() []string { return env }, osUser: testOSUser})
	cancel()
	<-watched
	return out.String()
}

// storeState is what a lab run must not change about the real store.
type storeState struct {
	DB          [sha256.Size]byte // the file's digest
	Companions  []string          // -wal and -shm files present
	Head        audit.Head
	Runs        int
	Checkpoints string
}

// snapshot reads the store without opening it where it is (even a read-only
// open of a WAL database leaves -wal and -shm files): the head and the runs are
// read from a copy.
func snapshot(t *testing.T, db, checkpoints string) storeState {
	t.Helper()
	var s storeState
	data, err := os.ReadFile(db)
	require.NoError(t, err)
	s.DB = sha256.Sum256(data)
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(db + suffix); err == nil {
			s.Companions = append(s.Companions, suffix)
		}
	}
	cps, err := os.ReadFile(checkpoints)
	require.NoError(t, err)
	s.Checkpoints = string(cps)

	cp := filepath.Join(t.TempDir(), "copy.db")
	require.NoError(t, os.WriteFile(cp, data, 0o600))
	st, err := sqlite.OpenReadOnly(context.Background(), cp, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	s.Head, err = st.AuditHead(context.Background())
	require.NoError(t, err)
	runs, err := st.ListRuns(context.Background(), store.RunFilter{Limit: 1000})
	require.NoError(t, err)
	s.Runs = len(runs)
	return s
}

// A lab run refused for bad input leaves nothing behind either.
func TestRefusedLabRunLeavesNoStore(t *testing.T) {
	t.Chdir(t.TempDir())
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	for _, args := range [][]string{
		{"diagnose", "9.9.9", "--lab", "healthy"},                      // no playbook
		{"diagnose", "5.5.4", "nosuch=1", "--lab", "healthy"},          // no such parameter
		{"diagnose", "5.5.4", "--lab", "no-such-scenario"},             // no such scenario
		{"diagnose", "5.5.4", "--lab", "healthy", "--approve", "nope"}, // no such relief
	} {
		r := bot(t, testEnv(nil), "", false, args...)
		assert.Equal(t, exitUsage, r.code, "%v: %s%s", args, r.out, r.err)
		left, err := os.ReadDir(tmp)
		require.NoError(t, err)
		assert.Empty(t, left, "%v left its lab store", args)
	}
}
