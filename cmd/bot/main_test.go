package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type result struct {
	code     int
	out, err string
}

// storeFile is where the configured store of an in-process run is, relative to
// the test's working directory: testEnv points XDG_DATA_HOME there, and the
// store's default is $XDG_DATA_HOME/ndrbot/ndrbot.db. A test that wants a lab
// run's records there passes "--lab-store", storeFile.
var storeFile = filepath.Join("ndrbot", "ndrbot.db")

// testEnv is env with XDG_DATA_HOME set to the working directory unless env sets
// it: the store then defaults to ./ndrbot/ndrbot.db (storeFile), in the test's
// own directory, and never under the home directory of whoever runs the tests.
// env itself is not changed.
func testEnv(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "XDG_DATA_HOME=") {
			return env
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		panic(err) // a test without a working directory cannot run the bot
	}
	return append(slices.Clip(env), "XDG_DATA_HOME="+wd)
}

// bot runs the command tree in-process with its own environment and stdin.
func bot(t *testing.T, env []string, stdin string, interactive bool, args ...string) result {
	t.Helper()
	return botDial(t, env, nil, stdin, interactive, args...)
}

// botDial is bot with the executors' dialer (nil: the system's).
func botDial(t *testing.T, env []string, dial func(ctx context.Context, network, addr string) (net.Conn, error), stdin string, interactive bool, args ...string) result {
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
	code := run(context.Background(), args, stdio{
		in: strings.NewReader(stdin), out: &out, err: &errb, interactive: interactive,
		getenv: lookup, environ: func() []string { return env }, dial: dial, osUser: testOSUser,
	})
	return result{code: code, out: out.String(), err: errb.String()}
}

// testOSUser is the operating-system account in-process runs see: a fixed one
// (cli:tester), so outputs and golden files do not depend on who runs the tests.
// TestCLIUserIsTheOSAccount runs the system's lookup; subprocesses (the crash
// test) run as whoever runs the tests.
func testOSUser() (*user.User, error) {
	return &user.User{Uid: "4242", Gid: "4242", Username: "tester", Name: "Test Operator", HomeDir: "/home/tester"}, nil
}

func TestDiagnoseLabScenarios(t *testing.T) {
	// Run from a directory without ndrbot.yaml so the embedded defaults apply.
	t.Chdir(t.TempDir())
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"overloaded queue is named and restart proposed", []string{"diagnose", "5.5.4", "--lab", "overloaded-queue"}, exitFindings,
			[]string{`Queue EX01\7 toward Exchange Online holds 1523 messages (> 1000): connector overloaded`, "Proposed relief: restart-transport", "Restart-Service -Name MSExchangeTransport", "restart-transport not approved: nothing was changed"}},
		{"Microsoft's open incident: follow it, no support case", []string{"diagnose", "5.5.4", "--lab", "eop-side"}, exitEscalation,
			[]string{"ESCALATE to Microsoft (an open incident) — follow it; no support case needed", "Microsoft reports an open Exchange Online mail-flow incident: EX1093441"}},
		{"healthy exits 0", []string{"diagnose", "4.4.0", "--lab", "healthy"}, exitHealthy,
			[]string{"All 2 delivery queues are below 500 messages", "result: healthy (exit 0)"}},
		{"network down escalates to the network team", []string{"diagnose", "5.5.4", "--lab", "network-down"}, exitEscalation,
			[]string{"ESCALATE to Network team"}},
		{"approved relief runs and verifies", []string{"diagnose", "5.5.4", "--lab", "overloaded-queue", "--approve", "restart-transport"}, exitFindings,
			[]string{"restart-transport approved by cli:tester", "✓ restart-transport ran on ex01.lab.contoso.com", "✓ verified: restart-transport worked"}},
		{"relief that does not help escalates", []string{"diagnose", "5.5.4", "--lab", "relief-fails", "--approve", "restart-transport"}, exitEscalation,
			[]string{"not verified", "5.5.4 persists after the transport restart"}},
		{"throttled sender gets a two-approver relief", []string{"diagnose", "5.5.4", "--lab", "throttled-sender"}, exitFindings,
			[]string{"alice@contoso.com sends under low throttling limits: RecipientRateLimit 100 recipients per 24 hours (set by LowVolumeSenders)", "Proposed relief: adjust-throttling", "approval: 2 approver(s)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(t.TempDir()) // a store of its own: no cooldown from another case
			r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, "", false, tc.args...)
			assert.Equal(t, tc.code, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
			for _, w := range tc.want {
				assert.Contains(t, r.out, w)
			}
		})
	}
}

func TestDiagnosePromptsOnlyOnATerminal(t *testing.T) {
	env := []string{"NDRBOT_LAB_TIME_SCALE=3000"}
	t.Chdir(t.TempDir())
	yes := bot(t, env, "y\n", true, "diagnose", "5.5.4", "--lab", "overloaded-queue")
	assert.Contains(t, yes.out, "Run restart-transport on ex01.lab.contoso.com now? [y/N]")
	assert.Contains(t, yes.out, "✓ verified: restart-transport worked")

	t.Chdir(t.TempDir())
	no := bot(t, env, "\n", true, "diagnose", "5.5.4", "--lab", "overloaded-queue")
	assert.Contains(t, no.out, "restart-transport not approved: nothing was changed")

	t.Chdir(t.TempDir())
	piped := bot(t, env, "y\n", false, "diagnose", "5.5.4", "--lab", "overloaded-queue")
	assert.NotContains(t, piped.out, "[y/N]")
	assert.NotContains(t, piped.out, "ran on")
}

func TestDiagnoseJSON(t *testing.T) {
	t.Chdir(t.TempDir())
	r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, "", true, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--json")
	require.Equal(t, exitFindings, r.code, r.err)
	var rep runReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &rep), r.out)
	assert.Equal(t, "ndr-5.5.4", rep.Playbook)
	assert.Equal(t, "restart-transport", rep.Proposals[0].Relief)
	assert.Equal(t, exitFindings, rep.ExitCode)
	assert.Len(t, rep.Steps, 20)
}

// Bad input is refused with exit 2 before any executor is called, whatever the
// playbook: the WinRM endpoint below counts every request it gets.
func TestDiagnoseRefusesBadInputWithoutCallingExecutors(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "unexpected", http.StatusInternalServerError)
	}))
	defer srv.Close()
	dir := t.TempDir()
	t.Chdir(dir)
	cfg := fmt.Sprintf(`targets:
  exchange:
    kind: winrm
    endpoints: [%s/wsman]
    auth: basic
    allow_unencrypted: true
    username: svc-ndrbot
`, srv.URL)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ndrbot.yaml"), []byte(cfg), 0o600))
	env := []string{"NDRBOT_TARGETS_EXCHANGE_PASSWORD=s3cret"}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"injection in sender", []string{"diagnose", "5.5.4", "sender=x'; Remove-Mailbox ceo"}, "is not an email address"},
		{"unknown code", []string{"diagnose", "5.9.9"}, `no playbook for "5.9.9"`},
		{"unknown parameter", []string{"diagnose", "5.5.4", "sendr=alice@contoso.com"}, "sendr: unknown parameter"},
		{"bad duration", []string{"diagnose", "5.5.4", "window=forever"}, "window:"},
		{"unknown relief", []string{"diagnose", "5.5.4", "--approve", "Remove-Mailbox"}, `--approve "Remove-Mailbox": playbook ndr-5.5.4 has no such relief`},
		{"bare word", []string{"diagnose", "5.5.4", "alice@contoso.com"}, "parameters are key=value"},
		{"unknown lab scenario", []string{"diagnose", "5.5.4", "--lab", "nope"}, `unknown scenario "nope"`},
		{"no code", []string{"diagnose"}, "requires at least 1 arg"},
		// smtp-421: the destination domain, our IP and sending domain are typed too.
		{"injection in domain", []string{"diagnose", "4.3.2", "domain=x; Remove-Item"}, "is not a domain name"},
		{"subexpression in domain", []string{"diagnose", "4.3.2", "domain=$(Remove-Item C:\\)"}, "domain:"},
		{"missing domain", []string{"diagnose", "4.3.2"}, "domain: missing"},
		{"not an IP", []string{"diagnose", "4.3.2", "domain=fabrikam.com", "ip=203.0.113.25;whoami"}, "ip:"},
		{"connections below 1", []string{"diagnose", "4.3.2", "domain=fabrikam.com", "connections=0"}, "connections:"},
		{"injection in sending domain", []string{"diagnose", "4.3.2", "domain=fabrikam.com", "sending_domain=contoso.com'|iex"}, "sending_domain:"},
		{"unknown relief", []string{"diagnose", "4.3.2", "domain=fabrikam.com", "--approve", "Set-TransportService"},
			`--approve "Set-TransportService": playbook smtp-421 has no such relief`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bot(t, env, "", false, tc.args...)
			assert.Equal(t, exitUsage, r.code, "stdout:\n%s", r.out)
			assert.Contains(t, r.err, tc.want)
			assert.NotContains(t, r.out+r.err, "s3cret")
		})
	}
	assert.Zero(t, calls.Load(), "no executor may run for refused input")
}

func TestDiagnoseWithoutEndpointsIsAConfigError(t *testing.T) {
	t.Chdir(t.TempDir())
	r := bot(t, nil, "", false, "diagnose", "5.5.4")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.err, "targets.exchange.endpoints")
}

func TestPlaybooksLintAndList(t *testing.T) {
	t.Chdir(t.TempDir())
	r := bot(t, nil, "", false, "playbooks", "lint")
	assert.Equal(t, 0, r.code, r.err)
	assert.Contains(t, r.out, "playbooks OK")

	r = bot(t, nil, "", false, "playbooks", "list")
	assert.Equal(t, 0, r.code, r.err)
	assert.Contains(t, r.out, "ndr-5.5.4")

}

func TestPlaybooksLintDirNamesFileAndLine(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "playbooks", "testdata", "lint"))
	require.NoError(t, err)
	t.Chdir(t.TempDir())
	r := bot(t, nil, "", false, "playbooks", "lint", dir)
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.err, filepath.Join(dir, "cycle.yaml")+":4: steps: needs form a cycle")
}

func TestConfigCheckRedactsSecrets(t *testing.T) {
	t.Chdir(t.TempDir())
	r := bot(t, []string{"NDRBOT_TARGETS_EXCHANGE_PASSWORD=hunter2-very-secret"}, "", false, "config", "check")
	assert.Equal(t, 0, r.code, r.err)
	assert.Contains(t, r.out, "configuration OK")
	assert.NotContains(t, r.out, "hunter2-very-secret")
	assert.Contains(t, r.out, "[redacted]")
}

func TestHelpHasExamples(t *testing.T) {
	for _, args := range [][]string{{"diagnose", "--help"}, {"playbooks", "lint", "--help"}, {"config", "check", "--help"}, {"version", "--help"}} {
		r := bot(t, nil, "", false, args...)
		assert.Equal(t, 0, r.code)
		assert.Contains(t, r.out, "Examples:", strings.Join(args, " "))
	}
}

// lockedBuffer is a bytes.Buffer safe for a goroutine writing while a test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func lookupIn(env []string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		for _, kv := range env {
			if name, v, ok := strings.Cut(kv, "="); ok && name == k {
				return v, true
			}
		}
		return "", false
	}
}
