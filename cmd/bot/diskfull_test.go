package main

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/slack/slackfake"
)

// The disk fills between the approval and the relief's claim: nothing runs,
// the clicker and the thread are told why (directly: the thread's usual posts
// go through the store that is full), and the log has the error.
func TestServeDiskFullAtClaim(t *testing.T) {
	t.Chdir(t.TempDir())
	fake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	defer fake.Close()
	s := startServe(t, fake, "--lab", "overloaded-queue", "--lab-store", storeFile) // a store the test can reach

	s.diagnose(t)
	card, approval := s.card(t)

	// Only the relief's start event fails, as SQLite reports a full disk (a
	// trigger; see storetest's FillDisk): the vote before it is recorded.
	db, err := sql.Open("sqlite", storeFile+"?_pragma=busy_timeout(20000)") // the bot is writing too
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(`CREATE TRIGGER disk_full BEFORE INSERT ON audit_events WHEN NEW.kind = 'relief'
		BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`)
	require.NoError(t, err)

	s.approve(t, card, approval)
	reply := s.responseTo(t, 1)
	assert.Contains(t, reply, "restart-transport was not run")
	assert.Contains(t, reply, "database or disk is full")
	s.waitFor(t, "the alarm in the thread", func() bool {
		for _, m := range fake.Thread(incChannel, card.ThreadTS) {
			if strings.Contains(m.Text, "restart-transport was not run") && strings.Contains(m.Text, "database or disk is full") {
				return true
			}
		}
		return false
	})
	var executions int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM executions`).Scan(&executions))
	assert.Zero(t, executions, "no relief was claimed")
	require.Equal(t, 0, s.stop(t))
	assert.Contains(t, s.out.String(), "recording the relief's start")
	assert.NotContains(t, s.out.String(), "restart-transport ran on")
}

// A bot that cannot renew its lease must stop before another replica takes its
// work over, and say why: the lease keeper's failure stops intake and the
// process exits non-zero, instead of serving half alive.
func TestServeStopsWhenItsLeaseLapses(t *testing.T) {
	t.Chdir(t.TempDir())
	fake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	defer fake.Close()
	s := startServe(t, fake, "--lab", "healthy", "--lease", "3s", "--lab-store", storeFile)

	db, err := sql.Open("sqlite", storeFile+"?_pragma=busy_timeout(20000)")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(`CREATE TRIGGER lease_stuck BEFORE UPDATE ON leases BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`)
	require.NoError(t, err)

	select {
	case code := <-s.done:
		s.done <- code
		assert.NotZero(t, code, "a bot that lost its lease exits non-zero")
	case <-time.After(30 * time.Second):
		t.Fatalf("ndrbot serve kept serving without its lease:\n%s", s.out.String())
	}
	assert.Contains(t, s.out.String(), "lease keeper stopped: lease lost")
	assert.Contains(t, s.out.String(), "database or disk is full")
}
