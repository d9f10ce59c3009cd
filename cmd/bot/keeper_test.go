package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
	"github.com/ndrbot/ndrbot/slack/slackfake"
	"github.com/ndrbot/ndrbot/store/pgtest"
)

const watchClientState = "keeper-test-client-state"

// watchReplica is one `ndrbot serve` replica with the NDR watch in notifications
// mode, seen through its log.
type watchReplica struct {
	name string
	out  *lockedBuffer
}

// addr finds the address a part of the replica logged it listens on.
func (r *watchReplica) addr(t *testing.T, msg, key string) string {
	t.Helper()
	re := regexp.MustCompile(`msg="` + regexp.QuoteMeta(msg) + `".* ` + key + `=(\S+)`)
	var addr string
	require.Eventually(t, func() bool {
		m := re.FindStringSubmatch(r.out.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, 10*time.Second, 10*time.Millisecond, "%s did not log %q:\n%s", r.name, msg, r.out.String())
	return addr
}

// notify posts a lifecycle notification about subscription id to the replica's
// notification endpoint, shaped as Graph sends them ("Reduce missing
// subscriptions and change notifications", learn.microsoft.com/graph/change-notifications-lifecycle-events).
func (r *watchReplica) notify(t *testing.T, event, id string) {
	t.Helper()
	body := fmt.Sprintf(`{"value":[{"subscriptionId":%q,"subscriptionExpirationDateTime":"2026-12-10T10:00:00.0000000Z",`+
		`"resource":"users/postmaster@contoso.com/mailFolders('inbox')/messages","clientState":%q,"tenantId":%q,"lifecycleEvent":%q}]}`,
		id, watchClientState, graphfake.DefaultTenant, event)
	resp, err := http.Post("http://"+r.addr(t, "serving change notifications", "listen")+"/graph/notify", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
}

// leader reads the replica's ndrbot_keeper_leader for work from /metrics.
func (r *watchReplica) leader(t *testing.T, work string) string {
	t.Helper()
	resp, err := http.Get("http://" + r.addr(t, "health and metrics listening", "addr") + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^ndrbot_keeper_leader\{work="` + work + `"\} (\S+)$`).FindSubmatch(body)
	require.NotNil(t, m, "no ndrbot_keeper_leader for %s:\n%s", work, body)
	return string(m[1])
}

func (r *watchReplica) logged(what string) int { return strings.Count(r.out.String(), what) }

const (
	watchAcquired = `msg="lease acquired; running the work" component=keeper work=ndr-watch`
	watchStandby  = `msg="lease held by another process; standing by" component=keeper work=ndr-watch`
	watching      = `msg=watching component=watch`
	subCreated    = `msg="subscription created"`
)

// startServeProcess runs `ndrbot serve` as a process of its own (this test binary,
// see TestMain), so that it can be killed.
func startServeProcess(t *testing.T, fake *slackfake.Server, nth int, dir string, env []string, args ...string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	out := &lockedBuffer{}
	cmd := exec.Command(os.Args[0], append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(append(append(os.Environ(), serveEnv(fake)...), env...), "NDRBOT_TEST_AS_BOT=1")
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, fake.WaitConnections(ctx, nth), "ndrbot serve did not connect:\n%s", out.String())
	return cmd, out
}

// Two replicas on one PostgreSQL with the NDR watch in notifications mode: the
// one holding the watch's lease alone creates the Graph subscription and polls;
// a lifecycle notification that lands on the other reaches it through the
// store; when it is killed (no release), the other takes the watch over once the
// lease expires and keeps the same subscription.
func TestServeTwoReplicasOneWatchKeeper(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	slackFake := slackfake.New(slackfake.Options{PingInterval: 200 * time.Millisecond})
	defer slackFake.Close()
	graph := graphfake.New(t)
	dir := t.TempDir()
	t.Chdir(dir)
	cfg := "targets:\n" + graphTarget(graph) + `watch:
  enabled: true
  mailbox: postmaster@contoso.com
  target: graph
  mode: notifications
  notification_url: https://ndrbot.contoso.com/graph/notify
  listen: 127.0.0.1:0
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ndrbot.yaml"), []byte(cfg), 0o600))
	env := []string{"NDRBOT_STORE_DRIVER=postgres", "NDRBOT_STORE_DSN=" + dsn,
		"NDRBOT_TARGETS_GRAPH_CLIENT_SECRET=" + graph.ClientSecret, "NDRBOT_WATCH_CLIENT_STATE=" + watchClientState}
	const lease = 600 * time.Millisecond
	args := []string{"--config", filepath.Join(dir, "ndrbot.yaml"), "--lease", lease.String()}

	// a, a process of its own, starts first and takes the watch; b starts once
	// a holds it.
	aCmd, aOut := startServeProcess(t, slackFake, 1, dir, env, args...)
	a, b := &watchReplica{"a", aOut}, &watchReplica{"b", &lockedBuffer{}}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		require.Eventually(t, cond, 20*time.Second, 20*time.Millisecond, "waiting for %s\n--- a:\n%s\n--- b:\n%s", what, a.out.String(), b.out.String())
	}
	waitFor("a to hold the watch", func() bool { return a.logged(watchAcquired) == 1 })
	bServed := startServeEnv(t, slackFake, 2, env, args...)
	b.out = bServed.out
	posts := func() int { return len(graph.GraphRequests(http.MethodPost, "/subscriptions")) }
	waitFor("a subscription", func() bool { return len(graph.Subscriptions()) == 1 })
	waitFor("b to stand by", func() bool { return b.logged(watchStandby) == 1 })
	time.Sleep(4 * lease) // several renewals: nothing changes hands, nobody else subscribes
	assert.Equal(t, 1, posts(), "one subscription created, by one replica")
	assert.Len(t, graph.Subscriptions(), 1)
	assert.Equal(t, 1, a.logged(watchAcquired))
	assert.Zero(t, b.logged(watchAcquired), "the lease stayed with its holder")
	assert.Equal(t, 1, a.logged(watching))
	assert.Zero(t, b.logged(watching), "only the holder polls")
	assert.Zero(t, b.logged(subCreated), "only the holder keeps the subscription")
	assert.Equal(t, "1", a.leader(t, "ndr-watch"))
	assert.Equal(t, "0", b.leader(t, "ndr-watch"))
	for _, r := range []*watchReplica{a, b} {
		assert.Contains(t, r.out.String(), "component=keeper work=approval-sweeper", "the sweeper runs under its lease too")
	}

	// Graph removes the subscription and says so to the replica that does not
	// hold the watch: the holder hears of it through the store and recreates it.
	first := graph.Subscriptions()[0].ID
	graph.RemoveSubscription(first)
	b.notify(t, "subscriptionRemoved", first)
	waitFor("the holder to recreate the subscription", func() bool { return a.logged(subCreated) == 2 })
	subs := graph.Subscriptions()
	require.Len(t, subs, 1)
	assert.NotEqual(t, first, subs[0].ID)
	assert.Equal(t, 2, posts())
	assert.Zero(t, b.logged(subCreated))

	// a is killed: it releases nothing. b takes the watch over once a's lease
	// expires, naming a as the holder before it.
	require.NoError(t, aCmd.Process.Kill())
	_ = aCmd.Wait()
	waitFor("b to take the watch over", func() bool { return b.logged(watchAcquired) == 1 })
	waitFor("b to poll", func() bool { return b.logged(watching) == 1 })
	assert.Regexp(t, regexp.QuoteMeta(watchAcquired)+` holder=serve@\S+ previous=serve@\S+`, b.out.String(), "taken over from a, not released by it")
	assert.Equal(t, "1", b.leader(t, "ndr-watch"))
	// It keeps the subscription it found (no new one), and renews it when Graph asks.
	patches := len(graph.GraphRequests(http.MethodPatch, "/subscriptions/"))
	b.notify(t, "reauthorizationRequired", subs[0].ID)
	waitFor("b to renew the subscription", func() bool {
		return len(graph.GraphRequests(http.MethodPatch, "/subscriptions/"+subs[0].ID)) > patches
	})
	assert.Equal(t, 2, posts(), "taken over, not subscribed again")
	assert.Len(t, graph.Subscriptions(), 1)

	assert.Equal(t, 0, bServed.stop(t))
	assert.Contains(t, b.out.String(), `msg="stopped; lease released for another process to take over" component=keeper work=ndr-watch`)
}
