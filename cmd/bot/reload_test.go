package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/slack/slackfake"
)

// SIGHUP reloads the playbooks and the access lists after validating them: a
// new responder may start a run at once, a changed playbook is listed, and a
// broken reload changes nothing and says why in the log.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	builtin, err := os.ReadFile(filepath.Join("..", "..", "playbooks", "builtin", "graph-503.yaml"))
	require.NoError(t, err)
	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, os.Mkdir("pb", 0o700))
	writeConfig := func(title string, responders ...string) {
		pb := strings.Replace(string(builtin), "title: Microsoft Graph 503 on subscription renewal", "title: "+title, 1)
		require.NoError(t, os.WriteFile(filepath.Join("pb", "graph-503.yaml"), []byte(pb), 0o600))
		cfg := "playbooks:\n  dir: " + filepath.Join(dir, "pb") + "\naccess:\n  responders: [" + strings.Join(responders, ", ") + "]\n"
		require.NoError(t, os.WriteFile("ndrbot.yaml", []byte(cfg), 0o600))
	}
	writeConfig("Graph 503 (first)", requesterU)

	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	var env []string
	for _, kv := range serveEnv(fake) {
		if !strings.HasPrefix(kv, "NDRBOT_ACCESS_RESPONDERS=") {
			env = append(env, kv)
		}
	}
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", "ndrbot.yaml", "--lab", "healthy"}, stdio{in: strings.NewReader(""), out: out, err: out,
			getenv: lookupIn(env), environ: func() []string { return env }, reload: hup})
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("ndrbot serve did not stop:\n%s", out.String())
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	require.NoError(t, fake.WaitConnections(wctx, 1), out.String())

	const newcomer = "U0NEW"
	replies := 0
	ask := func(user, text string) string {
		t.Helper()
		_, err := fake.SlashCommand(ctx, slackfake.SlashCommand{UserID: user, UserName: "x", ChannelID: incChannel, ChannelName: "inc-mail", Text: text})
		require.NoError(t, err)
		var reply string
		require.Eventually(t, func() bool {
			rs := fake.Responses()
			if len(rs) > replies {
				reply = rs[replies].Text
				return true
			}
			return false
		}, 10*time.Second, 20*time.Millisecond, out.String())
		replies++
		return reply
	}
	logged := func(what string, n int) {
		t.Helper()
		require.Eventually(t, func() bool { return strings.Count(out.String(), what) >= n }, 10*time.Second, 20*time.Millisecond, out.String())
	}

	assert.Contains(t, ask(requesterU, "playbooks"), "Graph 503 (first)")
	assert.Contains(t, ask(newcomer, "diagnose 5.5.4"), "needs the responder role")

	writeConfig("Graph 503 (second)", requesterU, newcomer)
	hup <- syscall.SIGHUP
	logged(`msg="reloaded playbooks and access lists"`, 1)
	assert.Contains(t, out.String(), "playbooks_changed=[graph-503@")
	assert.Contains(t, ask(newcomer, "playbooks"), "Graph 503 (second)")
	assert.Contains(t, ask(newcomer, "diagnose 5.5.4"), "Started ndr-5.5.4")

	// A broken playbook: nothing changes, and the log says why.
	require.NoError(t, os.WriteFile(filepath.Join("pb", "graph-503.yaml"), []byte("id: graph-503\nsteps: [\n"), 0o600))
	hup <- syscall.SIGHUP
	logged(`msg="reload refused: keeping the running playbooks"`, 1)
	assert.Contains(t, ask(newcomer, "playbooks"), "Graph 503 (second)")
	assert.Contains(t, ask(newcomer, "diagnose 5.5.4"), "Started ndr-5.5.4", "the access lists stay too")
}
