package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
)

// botAs runs the command tree as the operating-system account osUser returns
// (nil: the system's lookup), with env as the process environment.
func botAs(t *testing.T, osUser func() (*user.User, error), env []string, stdin string, interactive bool, args ...string) result {
	t.Helper()
	env = testEnv(env)
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) {
		for _, kv := range env {
			if name, v, ok := strings.Cut(kv, "="); ok && name == k {
				return v, true
			}
		}
		return "", false
	}
	code := run(context.Background(), args, stdio{in: strings.NewReader(stdin), out: &out, err: &errb, interactive: interactive,
		getenv: lookup, environ: func() []string { return env }, osUser: osUser})
	return result{code: code, out: out.String(), err: errb.String()}
}

// auditEvents reads the events of kind from the configured store (storeFile),
// where the lab runs of these tests keep their records (--lab-store).
func auditEvents(t *testing.T, kind audit.Kind) []audit.Event {
	t.Helper()
	st, err := sqlite.Open(context.Background(), storeFile, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	var out []audit.Event
	for e, err := range st.Events(context.Background(), audit.Filter{Kinds: []audit.Kind{kind}}) {
		require.NoError(t, err)
		out = append(out, e)
	}
	return out
}

// The terminal records the operating-system account that runs bot, by the
// system's user database, whatever $USER and $LOGNAME say.
func TestCLIUserIsTheOSAccount(t *testing.T) {
	t.Chdir(t.TempDir())
	env := []string{"USER=mallory", "LOGNAME=mallory", "NDRBOT_LAB_TIME_SCALE=3000"}
	t.Setenv("USER", "mallory") // os/user without cgo would fall back to it
	t.Setenv("LOGNAME", "mallory")
	me, lookupErr := currentOSUser()
	r := botAs(t, nil, env, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--lab-store", storeFile, "--approve", "restart-transport")
	if lookupErr != nil {
		// This machine cannot name its user: the terminal says so and runs nothing.
		assert.Equal(t, exitUsage, r.code)
		assert.Contains(t, r.err, "cannot tell which operating-system user runs bot")
		return
	}
	require.NotEqual(t, "mallory", me.Username, "run this test as an account other than mallory")
	require.Equal(t, exitFindings, r.code, r.out+r.err)
	assert.Contains(t, r.out, "restart-transport approved by cli:"+me.Username)
	assert.NotContains(t, r.out+r.err, "mallory")

	cmds := auditEvents(t, audit.KindCommand)
	require.Len(t, cmds, 1)
	assert.Equal(t, "cli:"+me.Username, cmds[0].Actor.ID)
	var p map[string]any
	require.NoError(t, json.Unmarshal(cmds[0].Payload, &p))
	assert.Equal(t, me.Uid, p["os_uid"], "the uid stays when the name changes")
	for _, e := range auditEvents(t, audit.KindApproved) {
		assert.Contains(t, string(e.Payload), "cli:"+me.Username)
	}
	assert.Len(t, auditEvents(t, audit.KindApproved), 1)
}

// An account the system cannot name is an error, not a fall back to $USER.
func TestCLIUserUnknownIsAnError(t *testing.T) {
	t.Chdir(t.TempDir())
	unknown := func() (*user.User, error) { return nil, errors.New("user: unknown userid 70001") }
	r := botAs(t, unknown, []string{"USER=alice", "NDRBOT_LAB_TIME_SCALE=3000"}, "", false,
		"diagnose", "5.5.4", "--lab", "overloaded-queue", "--lab-store", storeFile, "--approve", "restart-transport")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.err, "cannot tell which operating-system user runs bot (user: unknown userid 70001)")
	assert.Contains(t, r.err, "never under $USER")
	assert.NotContains(t, r.out, "ran on", "nothing ran")
	assert.Empty(t, auditEvents(t, audit.KindRun), "no run was recorded")
}

const refuseConfig = `access:
  approvers: [U02BOB, S0APPROVERS]
  admins: [U01ALICE]
  four_eyes: true
  cli_four_eyes: refuse
`

// With access.cli_four_eyes: refuse the terminal keeps the four-eyes floor: the
// person at it, who asked for the run, cannot approve a four-eyes relief alone.
// --approve is refused and audited (vote-refused) and nothing runs; on a
// terminal the question is not even asked.
func TestCLIFourEyesRefuse(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ndrbot.yaml"), []byte(refuseConfig), 0o600))
	env := []string{"NDRBOT_LAB_TIME_SCALE=3000"}

	r := bot(t, env, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--lab-store", storeFile, "--approve", "restart-transport")
	assert.Equal(t, exitFindings, r.code, r.out+r.err)
	for _, want := range []string{
		"restart-transport needs four eyes (access.cli_four_eyes: refuse): cli:tester asked for this run and may not approve it alone.",
		"Someone else in access.approvers (U02BOB, S0APPROVERS, U01ALICE) must approve it",
		"/ndr diagnose 5.5.4",
		"Your approval was refused and nothing was run",
	} {
		assert.Contains(t, r.out, want)
	}
	assert.NotContains(t, r.out, "ran on")
	assert.NotContains(t, r.out, "approved by cli:tester")
	refused := auditEvents(t, audit.KindVoteRefused)
	require.Len(t, refused, 1, "the lone approval is audited")
	assert.Equal(t, "cli:tester", refused[0].Actor.ID)
	assert.Contains(t, string(refused[0].Payload), "four-eyes")
	assert.Empty(t, auditEvents(t, audit.KindApproved))
	assert.Empty(t, auditEvents(t, audit.KindRelief), "nothing ran")
	reqs := auditEvents(t, audit.KindApprovalRequest)
	require.NotEmpty(t, reqs)
	assert.Contains(t, string(reqs[0].Payload), `"four_eyes":true`, "the terminal's approval is four-eyes")

	// On a terminal: not asked, told why.
	r = bot(t, env, "y\n", true, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--lab-store", storeFile)
	assert.NotContains(t, r.out, "[y/N]")
	assert.Contains(t, r.out, "restart-transport needs four eyes")
	assert.Contains(t, r.out, "Nothing was run.")
	assert.NotContains(t, r.out, "ran on")
	assert.Len(t, auditEvents(t, audit.KindVoteRefused), 1, "no approval was given, none refused")
}

// The setting's default, allow, keeps the single-operator terminal flow: the
// built-in reliefs are all four-eyes, and the terminal waives that.
func TestCLIFourEyesAllowIsTheDefault(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ndrbot.yaml"),
		[]byte(strings.Replace(refuseConfig, "cli_four_eyes: refuse", "cli_four_eyes: allow", 1)), 0o600))
	r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--lab-store", storeFile, "--approve", "restart-transport")
	assert.Equal(t, exitFindings, r.code, r.out+r.err)
	assert.Contains(t, r.out, "restart-transport approved by cli:tester")
	assert.Contains(t, r.out, "✓ restart-transport ran on ex01.lab.contoso.com")
	assert.Empty(t, auditEvents(t, audit.KindVoteRefused))

	// A bad value is a configuration error.
	bad := bot(t, []string{"NDRBOT_ACCESS_CLI_FOUR_EYES=sometimes"}, "", false, "diagnose", "5.5.4", "--lab", "healthy")
	assert.Equal(t, exitUsage, bad.code)
	assert.Contains(t, bad.err, `access.cli_four_eyes: "sometimes" must be refuse or allow`)
}

// With refuse, a relief that is not four-eyes (neither the configuration nor
// its playbook asks for it) is still approved at the terminal alone.
func TestCLIFourEyesRefuseLeavesOtherReliefs(t *testing.T) {
	builtin, err := os.ReadFile(filepath.Join("..", "..", "playbooks", "builtin", "ndr-5.5.4.yaml"))
	require.NoError(t, err)
	dir := t.TempDir()
	t.Chdir(dir)
	const asked = "approval: {role: approver, approvers: 1, four_eyes: true, expires: 30m}"
	require.Contains(t, string(builtin), asked, "restart-transport's policy moved: update this test")
	waived := strings.Replace(string(builtin), asked, strings.Replace(asked, "four_eyes: true", "four_eyes: false", 1), 1)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "pb"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pb", "ndr-5.5.4.yaml"), []byte(waived), 0o600))
	cfg := strings.Replace(refuseConfig, "four_eyes: true", "four_eyes: false", 1) + "playbooks:\n  dir: pb\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ndrbot.yaml"), []byte(cfg), 0o600))

	r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--lab-store", storeFile, "--approve", "restart-transport")
	assert.Equal(t, exitFindings, r.code, r.out+r.err)
	assert.Contains(t, r.out, "✓ restart-transport ran on ex01.lab.contoso.com")
	assert.Empty(t, auditEvents(t, audit.KindVoteRefused))
}
