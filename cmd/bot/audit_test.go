package main

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

// TestMain lets a test start this binary as `bot` in a subprocess (the crash test).
func TestMain(m *testing.M) {
	if os.Getenv("NDRBOT_TEST_AS_BOT") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], stdio{
			in: os.Stdin, out: os.Stdout, err: os.Stderr,
			getenv: os.LookupEnv, environ: func() []string { return withoutTestVars(os.Environ()) },
		}))
	}
	os.Exit(m.Run())
}

// withoutTestVars drops the variables of the test harness itself, which the
// configuration loader would reject as unknown NDRBOT_* names.
func withoutTestVars(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "NDRBOT_TEST_") {
			out = append(out, kv)
		}
	}
	return out
}

var (
	runIDRE = regexp.MustCompile(`run (r-[0-9a-f-]+)`)
	kindRE  = regexp.MustCompile(`(?m)#\d+\s+(\S+)`)
)

func TestAuditTimelineAndVerify(t *testing.T) {
	t.Chdir(t.TempDir())
	env := []string{"NDRBOT_LAB_TIME_SCALE=3000"}
	// The lab run's records go to the configured store, which audit reads.
	r := bot(t, env, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--approve", "restart-transport", "--lab-store", storeFile)
	require.Equal(t, exitFindings, r.code, r.err)
	id := runIDRE.FindStringSubmatch(r.out)[1]

	show := bot(t, env, "", false, "audit", "show", id)
	require.Equal(t, 0, show.code, show.err)
	// The whole timeline, in order: command, run, steps, findings, proposal,
	// approval request, approval, relief, verification, final state.
	order := []string{"run", "command", "step", "finding", "proposal", "approval-request", "approved", "relief", "verification", "state"}
	var kinds []string
	for _, m := range kindRE.FindAllStringSubmatch(show.out, -1) {
		kinds = append(kinds, m[1])
	}
	next := 0
	for _, k := range kinds {
		if next < len(order) && k == order[next] {
			next++
		}
	}
	assert.Equal(t, len(order), next, "timeline lacks %q in order; kinds: %v", order[min(next, len(order)-1)], kinds)
	assert.Contains(t, show.out, "cli:tester")

	v := bot(t, env, "", false, "audit", "verify")
	assert.Equal(t, 0, v.code, v.out+v.err)
	assert.Contains(t, v.out, "audit chain OK")

	exp := bot(t, env, "", false, "audit", "export", "--run", id, "--format", "csv")
	assert.Equal(t, 0, exp.code, exp.err)
	assert.Contains(t, exp.out, id)

	// Hand-edit one row of the SQLite file: verify names it and exits 1.
	db, err := sql.Open("sqlite", storeFile)
	require.NoError(t, err)
	var seq int64
	require.NoError(t, db.QueryRow(`SELECT seq FROM audit_events WHERE kind = 'approved'`).Scan(&seq))
	_, err = db.Exec(`UPDATE audit_events SET actor_id = 'cli:mallory' WHERE seq = ?`, seq)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	v = bot(t, env, "", false, "audit", "verify")
	assert.Equal(t, 1, v.code)
	assert.Contains(t, v.out, "BROKEN at seq "+strconv.FormatInt(seq, 10))
}

func TestSecondRestartIsBlockedByCooldown(t *testing.T) {
	t.Chdir(t.TempDir())
	// Unscaled: the 30-minute cooldown holds between two runs that keep their lab
	// store (each would otherwise have a throw-away one of its own).
	env := testEnv([]string{"NDRBOT_LAB_TIME_SCALE=1"})
	first := bot(t, env, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--lab-store", storeFile)
	require.Equal(t, exitFindings, first.code)
	// Record a restart without waiting 5 minutes for its verification: cut the run
	// short once the relief ran. The cut follows the output, not a clock, so a slow
	// machine (race detector, shared cores) only makes the test slower.
	const ran = "✓ restart-transport ran on ex01.lab.contoso.com"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := &lockedBuffer{}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for ctx.Err() == nil && !strings.Contains(out.String(), ran) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	run(ctx, []string{"diagnose", "5.5.4", "--lab", "overloaded-queue", "--approve", "restart-transport", "--lab-store", storeFile}, stdio{
		in: strings.NewReader(""), out: out, err: out, getenv: func(string) (string, bool) { return "", false },
		environ: func() []string { return env }, osUser: testOSUser})
	cancel()
	<-watched
	require.Contains(t, out.String(), ran)

	again := bot(t, env, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--approve", "restart-transport", "--lab-store", storeFile)
	assert.Contains(t, again.out, "restart-transport is blocked: restart-transport already ran on ex01.lab.contoso.com")
	assert.NotContains(t, again.out, "✓ restart-transport ran")
}

// A subprocess diagnosing with an approved relief is killed at random points;
// after every restart the audit chain verifies, no relief has run twice, and in
// the end every run is finished or visibly recovered.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 20 subprocesses")
	}
	dir := t.TempDir()
	t.Chdir(dir)
	const lease = "3s"
	// XDG_DATA_HOME last, so it wins over the one of whoever runs the tests; each
	// process keeps its lab runs in the store of its working directory, where the
	// next one recovers them.
	env := append(os.Environ(), "NDRBOT_TEST_AS_BOT=1", "NDRBOT_LAB_LATENCY=30ms", "NDRBOT_LAB_TIME_SCALE=600", "XDG_DATA_HOME="+dir)
	args := []string{"diagnose", "5.5.4", "--lab", "overloaded-queue", "--approve", "restart-transport", "--lease", lease, "--lab-store", storeFile}
	// Kill points spread over a whole run's life as this machine runs it (the
	// race detector and a loaded CI host stretch start-up several-fold): time one
	// run left alone, in a directory of its own, first.
	calibration := exec.Command(os.Args[0], args...)
	calibration.Env, calibration.Dir = env, t.TempDir()
	began := time.Now()
	_ = calibration.Run() // exit 1: findings
	life := time.Since(began)
	t.Logf("one run takes %s here", life.Round(time.Millisecond))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	killed := 0
	for trial := range 20 {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = env
		cmd.Dir = dir
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(rng.Int64N(int64(life))))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait() // a run that ends by itself exits 1 (findings)
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			killed++
		}

		v := bot(t, nil, "", false, "audit", "verify")
		// The first process may die before its database has a schema (or exists):
		// verify, which creates and migrates nothing, then finds no trail to check.
		// From then on there is one (assertNoReliefTwice opens it read-write).
		noTrailYet := trial == 0 && v.code == 1 &&
			(strings.Contains(v.err, "is empty: created, never written") || strings.Contains(v.err, "no database at"))
		if !noTrailYet {
			require.Equal(t, 0, v.code, "trial %d: %s%s", trial, v.out, v.err)
		}
		assertNoReliefTwice(t)
	}
	t.Logf("%d of 20 subprocesses killed mid-run", killed)
	assert.Positive(t, killed, "no trial was killed mid-run: the test proved nothing")

	// Once the dead processes' leases lapse, a restart recovers their work.
	time.Sleep(3500 * time.Millisecond)
	r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=600"}, "", false, "diagnose", "5.5.4", "--lab", "healthy", "--lab-store", storeFile)
	require.Equal(t, 0, r.code, r.out+r.err)
	v := bot(t, nil, "", false, "audit", "verify")
	require.Equal(t, 0, v.code, v.out)

	st, err := sqlite.Open(context.Background(), storeFile, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	runs, err := st.ListRuns(context.Background(), store.RunFilter{Limit: 1000})
	require.NoError(t, err)
	// A process killed before it created its run leaves none: at most 20 + 1.
	require.LessOrEqual(t, len(runs), 21)
	require.Greater(t, len(runs), 1)
	for _, run := range runs {
		assert.True(t, run.State.Terminal(), "run %s left in %s", run.ID, run.State)
		xs, err := st.Executions(context.Background(), run.ID)
		require.NoError(t, err)
		for _, x := range xs {
			assert.NotEqual(t, incident.ExecRunning, x.State, "execution %s still running", x.ID)
			if x.State == incident.ExecUnknown {
				assert.Equal(t, incident.RunInterrupted, run.State)
			}
		}
	}
}

func assertNoReliefTwice(t *testing.T) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), storeFile, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	runs, err := st.ListRuns(context.Background(), store.RunFilter{Limit: 1000})
	require.NoError(t, err)
	for _, run := range runs {
		xs, err := st.Executions(context.Background(), run.ID)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(xs), 1, "run %s ran its relief %d times", run.ID, len(xs))
	}
}

// Checkpoints written by the CLI after each run anchor the trail: a tail deleted
// together with a rewritten head row passes a plain verify and fails one given
// the checkpoint file; a deleted head row is a verdict, not a SQL error.
func TestAuditCheckpointsCLI(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	keyFile := filepath.Join(dir, "audit.key")
	require.NoError(t, os.WriteFile(keyFile, []byte("cli-checkpoint-test-key-32-bytes"), 0o600))
	cpFile := filepath.Join(dir, "log", "checkpoints.log")
	env := []string{"NDRBOT_LAB_TIME_SCALE=3000", "NDRBOT_STORE_AUDIT_KEY_FILE=" + keyFile, "NDRBOT_STORE_CHECKPOINTS_FILE=" + cpFile}

	// Kept lab stores are anchored as configured (a throw-away one writes no checkpoint).
	r := bot(t, env, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--approve", "restart-transport", "--lab-store", storeFile)
	require.Equal(t, exitFindings, r.code, r.out+r.err)
	r = bot(t, env, "", false, "diagnose", "5.5.4", "--lab", "healthy", "--lab-store", storeFile)
	require.Equal(t, 0, r.code, r.out+r.err)
	lines, err := os.ReadFile(cpFile)
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(string(lines), "ndrbot-audit-checkpoint v1"), string(lines))
	firstSeq, err := strconv.ParseInt(regexp.MustCompile(`seq=(\d+)`).FindStringSubmatch(string(lines))[1], 10, 64)
	require.NoError(t, err)

	v := bot(t, env, "", false, "audit", "verify", "--checkpoints", cpFile)
	require.Equal(t, 0, v.code, v.out+v.err)
	assert.Contains(t, v.out, "matches 2 checkpoint(s)")

	// Cut the trail back to the first checkpoint and make the head row agree.
	db, err := sql.Open("sqlite", storeFile)
	require.NoError(t, err)
	defer db.Close()
	var hash string
	require.NoError(t, db.QueryRow(`SELECT hash FROM audit_events WHERE seq = ?`, firstSeq).Scan(&hash))
	_, err = db.Exec(`DELETE FROM audit_events WHERE seq > ?`, firstSeq)
	require.NoError(t, err)
	_, err = db.Exec(`UPDATE audit_head SET seq = ?, hash = ?`, firstSeq, hash)
	require.NoError(t, err)

	v = bot(t, env, "", false, "audit", "verify")
	assert.Equal(t, 0, v.code, "the database alone agrees with itself: %s", v.out)
	v = bot(t, env, "", false, "audit", "verify", "--checkpoints", cpFile)
	assert.Equal(t, 1, v.code, v.out+v.err)
	assert.Contains(t, v.out, "(truncated)")

	_, err = db.Exec(`DELETE FROM audit_head`)
	require.NoError(t, err)
	v = bot(t, env, "", false, "audit", "verify")
	assert.Equal(t, 1, v.code, v.out+v.err)
	assert.Contains(t, v.out, "(head-missing)")
	assert.Empty(t, v.err)
}

// Verifying an audit trail that is not there is an error, not "OK: 0 events":
// it names the database it looked for and creates nothing, neither in the
// working directory nor where the database would be. A lab run does not make
// one either; once there is one, verify names it.
func TestAuditVerifyWithoutDatabase(t *testing.T) {
	tests := []struct {
		name string
		env  func(data string) []string
		file func(data string) string // the database verify must name
	}{
		{"XDG data directory", func(data string) []string { return []string{"XDG_DATA_HOME=" + data} },
			func(data string) string { return filepath.Join(data, "ndrbot", "ndrbot.db") }},
		{"systemd state directory", func(data string) []string {
			return []string{"STATE_DIRECTORY=" + data, "XDG_DATA_HOME=" + data + "-unused"}
		},
			func(data string) string { return filepath.Join(data, "ndrbot.db") }},
		{"home directory", func(data string) []string { return []string{"HOME=" + data, "XDG_DATA_HOME=relative/is/ignored"} },
			func(data string) string { return filepath.Join(data, ".local", "share", "ndrbot", "ndrbot.db") }},
		{"store.path", func(data string) []string {
			return []string{"NDRBOT_STORE_PATH=" + filepath.Join(data, "state", "bot.db")}
		},
			func(data string) string { return filepath.Join(data, "state", "bot.db") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work, data := t.TempDir(), t.TempDir()
			t.Chdir(work)
			env, file := tc.env(data), tc.file(data)
			v := bot(t, env, "", false, "audit", "verify")
			assert.Equal(t, 1, v.code, v.out+v.err)
			assert.Contains(t, v.err, "no database at "+file)
			assert.Contains(t, v.err, "no audit trail to verify")
			assert.NotContains(t, v.out, "OK")
			assertEmptyDirs(t, work, data)

			lab := append(slices.Clip(env), "NDRBOT_LAB_TIME_SCALE=3000")
			r := bot(t, lab, "", false, "diagnose", "5.5.4", "--lab", "healthy")
			require.Equal(t, 0, r.code, r.out+r.err)
			v = bot(t, env, "", false, "audit", "verify")
			assert.Equal(t, 1, v.code, "a lab run made the database: %s%s", v.out, v.err)
			assertEmptyDirs(t, work, data)

			r = bot(t, lab, "", false, "diagnose", "5.5.4", "--lab", "healthy", "--lab-store", file)
			require.Equal(t, 0, r.code, r.out+r.err)
			v = bot(t, env, "", false, "audit", "verify")
			assert.Equal(t, 0, v.code, v.out+v.err)
			assert.Contains(t, v.out, "audit chain OK")
			assert.Contains(t, v.out, "database: "+file)
		})
	}
}

// assertEmptyDirs fails unless every dir is empty.
func assertEmptyDirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		assert.Empty(t, names, "files created in %s", dir)
	}
}
