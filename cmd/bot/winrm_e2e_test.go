package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/executors/winrm/winrmfake"
)

// The 5.5.4 playbook end to end through `bot diagnose` with the real winrm, probe and
// graph executors: two fake WinRM servers answer as EX01 and EX02 of the lab's
// overloaded-queue organisation, a fake SMTP listener stands in for EOP, and a fake
// Microsoft Graph over HTTPS answers service health.

// winrmSite is one simulated site: its servers, and the working directory holding
// the ndrbot.yaml that points at them (and the run store).
type winrmSite struct {
	lab        *lab.Lab
	ex01, ex02 *winrmfake.Server
	// The endpoints' host names: the names the bot reports. Two endpoints of a
	// target need two names, so ex02 is reached as localhost.
	host01, host02 string
	eop            *fakeEOP
	// graph is Microsoft Graph (service health); nil when the site has no app
	// registration configured.
	graph *graphfake.Server
	env   []string
}

// newWinRMSite builds the site and changes into its directory. With fastVerify the
// configuration adds a copy of the built-in ndr-5.5.4 playbook whose only change is
// restart-transport's verify wait (5m → 10ms): outside the lab waits are not scaled.
func newWinRMSite(t *testing.T, fastVerify bool) *winrmSite {
	t.Helper()
	return newWinRMSiteIn(t, "overloaded-queue", fastVerify)
}

// newWinRMSiteIn is newWinRMSite for another lab scenario.
func newWinRMSiteIn(t *testing.T, scenario string, fastVerify bool) *winrmSite {
	t.Helper()
	return newWinRMSiteWith(t, scenario, fastVerify, true)
}

// newWinRMSiteWith is newWinRMSiteIn with or without a graph target: without one,
// the default graph target (no app registration) applies.
func newWinRMSiteWith(t *testing.T, scenario string, fastVerify, withGraph bool) *winrmSite {
	t.Helper()
	l, err := lab.New(scenario, lab.Options{})
	require.NoError(t, err)
	exchange := l.Target("exchange", "winrm", nil)
	s := &winrmSite{
		lab:  l,
		ex01: winrmfake.New(t, winrmfake.Lab(t, exchange, "ex01.lab.contoso.com")),
		ex02: winrmfake.New(t, winrmfake.Lab(t, exchange, "ex02.lab.contoso.com")),
		eop:  newFakeEOP(t),
		env:  []string{"USER=tester", "NDRBOT_TARGETS_EXCHANGE_PASSWORD=" + winrmfake.Password},
	}
	u1, err := url.Parse(s.ex01.URL())
	require.NoError(t, err)
	u2, err := url.Parse(s.ex02.URL())
	require.NoError(t, err)
	u2.Host = net.JoinHostPort("localhost", u2.Port())
	s.host01, s.host02 = u1.Hostname(), u2.Hostname()

	dir := t.TempDir()
	cfg := fmt.Sprintf(`targets:
  exchange:
    kind: winrm
    endpoints: [%s, %s]
    auth: basic
    allow_unencrypted: true
    username: '%s'
  eop:
    kind: probe
    endpoints: ["%s"]
    timeout: 5s
`, u1, u2, winrmfake.User, s.eop.addr())
	if withGraph {
		s.graph = graphfake.New(t)
		cfg += graphTarget(s.graph)
		s.env = append(s.env, "NDRBOT_TARGETS_GRAPH_CLIENT_SECRET="+s.graph.ClientSecret)
	}
	if fastVerify {
		pb, err := os.ReadFile(filepath.Join("..", "..", "playbooks", "builtin", "ndr-5.5.4.yaml"))
		require.NoError(t, err)
		const wait = "    verify:\n      after: 5m\n"
		require.Equal(t, 1, bytes.Count(pb, []byte(wait)), "restart-transport's verify wait moved")
		pb = bytes.Replace(pb, []byte(wait), []byte("    verify:\n      after: 10ms\n"), 1)
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "playbooks"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "playbooks", "ndr-5.5.4.yaml"), pb, 0o600))
		cfg += "playbooks:\n  dir: playbooks\n"
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ndrbot.yaml"), []byte(cfg), 0o600))
	t.Chdir(dir)
	return s
}

// calling returns the commands srv ran whose script contains marker.
func calling(srv *winrmfake.Server, marker string) []winrmfake.Call {
	var out []winrmfake.Call
	for _, c := range srv.Calls() {
		if strings.Contains(c.Script, marker) {
			out = append(out, c)
		}
	}
	return out
}

func TestDiagnoseOverWinRMFindsWhatTheLabFinds(t *testing.T) {
	s := newWinRMSite(t, false)
	r := bot(t, s.env, "", false, "diagnose", "5.5.4", "--json")
	require.Equal(t, exitFindings, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	var got runReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &got), r.out)

	t.Chdir(t.TempDir()) // no ndrbot.yaml: the lab with the embedded defaults
	r = bot(t, []string{"USER=tester"}, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--json")
	require.Equal(t, exitFindings, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	var want runReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &want), r.out)

	asLab := strings.NewReplacer(s.host01, "ex01.lab.contoso.com", s.host02, "ex02.lab.contoso.com")
	assert.Equal(t, findingsOf(want, nil), findingsOf(got, asLab))
	assert.Contains(t, findingsOf(got, nil),
		`diagnose critical queue-overloaded step="" host=`+s.host01+` | Queue EX01\7 holds 1523 messages (> 1000): connector overloaded | EX01\7 Active 1523 msgs, last error: `+
			`451 4.4.0 Primary target IP address responded with: "451 5.5.4 Service Unavailable" Attempted failover to alternate host, but that did not succeed.`)
	assert.Equal(t, stepsOf(want), stepsOf(got))

	require.Len(t, got.Proposals, 1)
	assert.Equal(t, "restart-transport", got.Proposals[0].Relief)
	assert.Equal(t, []string{s.host01}, got.Proposals[0].Hosts)
	assert.Equal(t, []string{"ex01.lab.contoso.com"}, want.Proposals[0].Hosts)
	assert.Contains(t, got.Proposals[0].Preview, `"TransportService":"Running"`)
	assert.Len(t, calling(s.ex01, "Measure-Object -Property MessageCount"), 1, "the preview runs on ex01")
	assert.Empty(t, calling(s.ex02, "Measure-Object -Property MessageCount"), "the preview runs on ex01 only")

	// Diagnosis and preview only: nothing was changed, every shell was closed.
	for _, srv := range []*winrmfake.Server{s.ex01, s.ex02} {
		assert.Empty(t, calling(srv, "Restart-Service"))
		assert.Len(t, calling(srv, "Get-MessageTrackingLog"), 1)
		assert.Zero(t, srv.OpenShells())
	}
	assert.Equal(t, int64(1), s.eop.sessions.Load(), "one SMTP probe of EOP")
	assert.Equal(t, []string{"EHLO", "QUIT"}, s.eop.verbs())
	health := s.graph.GraphRequests(http.MethodGet, "/admin/serviceAnnouncement/issues")
	require.Len(t, health, 1, "one service health read")
	assert.Equal(t, "service eq 'Exchange Online' and isResolved eq false", health[0].Query("$filter"))
}

func TestDiagnoseOverWinRMRestartsOnlyEX01(t *testing.T) {
	s := newWinRMSite(t, true)
	r := bot(t, s.env, "", false, "diagnose", "5.5.4", "--approve", "restart-transport")
	require.Equal(t, exitFindings, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	for _, w := range []string{
		`Queue EX01\7 holds 1523 messages (> 1000): connector overloaded`,
		"restart-transport approved by cli:tester — running on " + s.host01,
		"✓ restart-transport ran on " + s.host01,
		"✓ verified: restart-transport worked",
	} {
		assert.Contains(t, r.out, w)
	}

	restarts := calling(s.ex01, "Restart-Service")
	require.Len(t, restarts, 1, "Restart-Service on ex01")
	assert.Equal(t, "Restart-Service -Name MSExchangeTransport", strings.SplitN(restarts[0].Script, "\n", 2)[0])
	assert.Empty(t, calling(s.ex02, "Restart-Service"), "Restart-Service reached ex02")
	var labRestarts []string
	for _, c := range s.lab.Calls() {
		if c.Cmdlet == "Restart-Service" {
			labRestarts = append(labRestarts, c.Host)
		}
	}
	assert.Equal(t, []string{"ex01.lab.contoso.com"}, labRestarts)
	// The verification read both servers again after the restart.
	for _, srv := range []*winrmfake.Server{s.ex01, s.ex02} {
		assert.Len(t, calling(srv, "Get-MessageTrackingLog"), 2)
		assert.Zero(t, srv.OpenShells())
	}
}

func TestDiagnoseOverWinRMRefusesHostileSenderBeforeAnyRequest(t *testing.T) {
	s := newWinRMSite(t, false)
	r := bot(t, s.env, "", false, "diagnose", "5.5.4", "sender=x'; Remove-Mailbox ceo")
	assert.Equal(t, exitUsage, r.code, "stdout:\n%s", r.out)
	assert.Contains(t, r.err, "is not an email address")
	assert.Empty(t, s.ex01.Log(), "a request reached ex01")
	assert.Empty(t, s.ex02.Log(), "a request reached ex02")
	assert.Zero(t, s.eop.sessions.Load(), "a connection reached EOP")
	assert.Empty(t, s.graph.Requests(), "a request reached Graph")
	assert.Empty(t, s.lab.Calls())
}

func TestDiagnoseOverWinRMSendsQuotedSenderAsData(t *testing.T) {
	const sender = "o'brien@contoso.com"
	s := newWinRMSite(t, false)
	r := bot(t, s.env, "", false, "diagnose", "5.5.4", "sender="+sender)
	require.Equal(t, exitFindings, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)

	for name, srv := range map[string]*winrmfake.Server{"ex01": s.ex01, "ex02": s.ex02} {
		calls := srv.Calls()
		require.NotEmpty(t, calls, name)
		for _, c := range calls {
			assert.Equal(t, sender, c.Params["sender"], "%s: $P.sender", name)
			assert.Contains(t, string(c.ParamsJSON), `"sender":"o'brien@contoso.com"`, "%s: $P bytes", name)
			assert.NotContains(t, c.Raw, "brien", "%s: the sender is in the script text", name)
		}
	}
	for _, c := range s.lab.Calls() {
		assert.Equal(t, sender, c.Params["sender"], "the lab read another sender from $P")
	}
}

var timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)

// findingsOf renders a run's findings for comparison, sorted, with times blanked
// and host names passed through hosts (when not nil).
func findingsOf(rep runReport, hosts *strings.Replacer) []string {
	var out []string
	for _, f := range rep.Findings {
		s := fmt.Sprintf("%s %s %s step=%q host=%s | %s | %s", f.Phase, f.Severity, f.Rule, f.Step, f.Host, f.Text, f.Evidence)
		if hosts != nil {
			s = hosts.Replace(s)
		}
		out = append(out, timestamp.ReplaceAllString(s, "<time>"))
	}
	slices.Sort(out)
	return out
}

// stepsOf is each step's status and row count.
func stepsOf(rep runReport) map[string]string {
	out := map[string]string{}
	for _, s := range rep.Steps {
		out[s.Step] = fmt.Sprintf("%s, %d rows", s.Status, len(s.Rows))
	}
	return out
}

// fakeEOP is an SMTP listener that greets and answers EHLO like Exchange Online
// Protection, on 127.0.0.1: an IP literal, so the probe needs no DNS.
type fakeEOP struct {
	ln       net.Listener
	sessions atomic.Int64
	wg       sync.WaitGroup

	mu    sync.Mutex
	cmds  []string
	conns map[net.Conn]bool
}

func newFakeEOP(t *testing.T) *fakeEOP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakeEOP{ln: ln, conns: map[net.Conn]bool{}}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.sessions.Add(1)
			f.mu.Lock()
			f.conns[c] = true
			f.mu.Unlock()
			f.wg.Go(func() { f.session(c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			_ = c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeEOP) addr() string { return f.ln.Addr().String() }

func (f *fakeEOP) verbs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

func (f *fakeEOP) session(c net.Conn) {
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
		_ = c.Close()
	}()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	const host = "BN8NAM12FT041.mail.protection.outlook.com"
	say := func(s string) bool { _, err := c.Write([]byte(s)); return err == nil }
	if !say("220 " + host + " Microsoft ESMTP MAIL Service ready\r\n") {
		return
	}
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		verb = strings.ToUpper(verb)
		f.mu.Lock()
		f.cmds = append(f.cmds, verb)
		f.mu.Unlock()
		switch verb {
		case "EHLO":
			say("250-" + host + " Hello [127.0.0.1]\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n")
		case "QUIT":
			say("221 2.0.0 Service closing transmission channel\r\n")
			return
		default:
			say("500 5.5.2 Command not recognized\r\n")
		}
	}
}
