package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
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

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/executors/psrp/psrpfake"
)

// The 5.5.4 playbook end to end through `ndrbot diagnose` with the real psrp, probe and
// graph executors, the way the bot reaches a real estate: a PSRP fake answers as
// Exchange's /PowerShell on EX01 and EX02 of a lab organisation (kind exchange), a
// second one as their JEA endpoint (kind jea, where the transport service is read
// and restarted), a fake SMTP listener stands in for EOP, and a fake Microsoft
// Graph over HTTPS answers service health. The bot addresses the servers by the
// lab's real names; the site's dialer sends port 443 to the exchange fake and 5986
// to the jea fake.

const (
	ex01Host = "ex01.lab.contoso.com"
	ex02Host = "ex02.lab.contoso.com"
)

// psrpSite is one simulated site: its endpoints, and the working directory holding
// the ndrbot.yaml that points at them (and the run store).
type psrpSite struct {
	lab *lab.Lab
	// exchange answers https://exNN.lab.contoso.com/PowerShell, jea
	// https://exNN.lab.contoso.com:5986/wsman.
	exchange, jea *psrpEndpoint
	eop           *fakeEOP
	// graph is Microsoft Graph (service health); nil when the site has no app
	// registration configured.
	graph *graphfake.Server
	env   []string
	dials atomic.Int64
}

// psrpEndpoint is a PSRP fake with the lab behind it that records every command
// its handler ran, with the host it was addressed as.
type psrpEndpoint struct {
	*psrpfake.Server
	mu   sync.Mutex
	cmds []psrpCommand
}

type psrpCommand struct {
	Host string
	psrpfake.Command
}

func newPSRPEndpoint(t *testing.T, inv psrpfake.Invoker) *psrpEndpoint {
	t.Helper()
	e := &psrpEndpoint{}
	answer := psrpfake.Lab(inv)
	e.Server = psrpfake.New(func(ctx context.Context, host string, cmd psrpfake.Command) psrpfake.Result {
		e.mu.Lock()
		e.cmds = append(e.cmds, psrpCommand{Host: host, Command: cmd})
		e.mu.Unlock()
		return answer(ctx, host, cmd)
	})
	t.Cleanup(e.Close)
	return e
}

// commands returns what the endpoint's handler ran on host.
func (e *psrpEndpoint) commands(host string) []psrpCommand {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []psrpCommand
	for _, c := range e.cmds {
		if c.Host == host {
			out = append(out, c)
		}
	}
	return out
}

// newPSRPSite builds the site and changes into its directory. With fastVerify the
// configuration adds a copy of the built-in ndr-5.5.4 playbook whose only change is
// restart-transport's verify wait (5m → 10ms): outside the lab waits are not scaled.
func newPSRPSite(t *testing.T, fastVerify bool) *psrpSite {
	t.Helper()
	return newPSRPSiteIn(t, "overloaded-queue", fastVerify)
}

// newPSRPSiteIn is newPSRPSite for another lab scenario.
func newPSRPSiteIn(t *testing.T, scenario string, fastVerify bool) *psrpSite {
	t.Helper()
	return newPSRPSiteWith(t, scenario, fastVerify, true)
}

// newPSRPSiteWith is newPSRPSiteIn with or without a graph target: without one,
// the default graph target (no app registration) applies.
func newPSRPSiteWith(t *testing.T, scenario string, fastVerify, withGraph bool) *psrpSite {
	t.Helper()
	l, err := lab.New(scenario, lab.Options{})
	require.NoError(t, err)
	s := &psrpSite{
		lab:      l,
		exchange: newPSRPEndpoint(t, l.Target("exchange", "exchange", nil)),
		jea:      newPSRPEndpoint(t, l.Target("jea", "jea", nil)),
		eop:      newFakeEOP(t),
		env:      []string{"NDRBOT_TARGETS_EXCHANGE_PASSWORD=" + psrpfake.Password, "NDRBOT_TARGETS_JEA_PASSWORD=" + psrpfake.Password},
	}

	dir := t.TempDir()
	// The fakes' certificates are httptest's (for example.com), so the lab's names
	// cannot verify against them.
	cfg := fmt.Sprintf(`targets:
  exchange:
    kind: exchange
    endpoints: [https://%[1]s/PowerShell, https://%[2]s/PowerShell]
    auth: basic
    username: '%[3]s'
    insecure_skip_verify: true
  jea:
    kind: jea
    endpoints: ['https://%[1]s:5986/wsman', 'https://%[2]s:5986/wsman']
    configuration_name: ndrbot
    auth: basic
    username: '%[3]s'
    insecure_skip_verify: true
  eop:
    kind: probe
    endpoints: ["%[4]s"]
    timeout: 5s
`, ex01Host, ex02Host, psrpfake.User, s.eop.addr())
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
		require.Less(t, bytes.Index(pb, []byte("  restart-transport:\n")), bytes.Index(pb, []byte(wait)), "the 5m verify wait is not restart-transport's")
		require.Greater(t, bytes.Index(pb, []byte("  adjust-throttling:\n")), bytes.Index(pb, []byte(wait)), "the 5m verify wait is not restart-transport's")
		pb = bytes.Replace(pb, []byte(wait), []byte("    verify:\n      after: 10ms\n"), 1)
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "playbooks"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "playbooks", "ndr-5.5.4.yaml"), pb, 0o600))
		cfg += "playbooks:\n  dir: playbooks\n"
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ndrbot.yaml"), []byte(cfg), 0o600))
	t.Chdir(dir)
	return s
}

// dial is the bot's way to the site: Exchange's /PowerShell (443) is the exchange
// fake, the JEA endpoint (5986) the jea fake, whatever host name is asked for.
func (s *psrpSite) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	s.dials.Add(1)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host != ex01Host && host != ex02Host {
		return nil, fmt.Errorf("site: no such host %q", host)
	}
	switch port {
	case "443":
		return s.exchange.DialContext(ctx, network, addr)
	case "5986":
		return s.jea.DialContext(ctx, network, addr)
	}
	return nil, fmt.Errorf("site: nothing listens on %s", addr)
}

// bot runs the command tree against the site.
func (s *psrpSite) bot(t *testing.T, args ...string) result {
	t.Helper()
	return botDial(t, s.env, s.dial, "", false, args...)
}

// calling returns the commands named cmdlet that e ran on host.
func calling(e *psrpEndpoint, host, cmdlet string) []psrpCommand {
	var out []psrpCommand
	for _, c := range e.commands(host) {
		if c.Name == cmdlet {
			out = append(out, c)
		}
	}
	return out
}

// paramsOf is a command's parameters as name=value, in the order they arrived.
func paramsOf(c psrpCommand) []string {
	var out []string
	for _, p := range c.Params {
		out = append(out, fmt.Sprintf("%s=%v", p.Name, p.Value))
	}
	return out
}

// param is the value of a command's named parameter, or nil.
func param(c psrpCommand, name string) any {
	for _, p := range c.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return nil
}

// assertOnlyCmdlets checks that every pipeline the site's endpoints received was a
// cmdlet the handler ran (no-language endpoints refuse script text before the
// handler, so a script would show as a pipeline the handler never saw), and that
// each reached the lab: the cmdlet and its values are never script text.
func (s *psrpSite) assertOnlyCmdlets(t *testing.T) {
	t.Helper()
	labCalls := map[string]int{}
	for _, c := range s.lab.Calls() {
		labCalls[c.Target+" "+c.Host]++
	}
	for name, e := range map[string]*psrpEndpoint{"exchange": s.exchange, "jea": s.jea} {
		for _, h := range []string{ex01Host, ex02Host} {
			cmds := e.commands(h)
			assert.Equal(t, e.Stats(h).Pipelines, len(cmds), "%s %s: a pipeline that was not a cmdlet", name, h)
			assert.Equal(t, labCalls[name+" "+h], len(cmds), "%s %s: commands the lab did not answer", name, h)
			for _, c := range cmds {
				assert.False(t, c.IsScript, "%s %s: %s sent as a script", name, h, c.Name)
				assert.Regexp(t, `^[A-Z][a-z]+-[A-Za-z]+$`, c.Name, "%s %s: not a cmdlet name", name, h)
				assert.Equal(t, psrpfake.User, c.User)
			}
		}
	}
}

func TestDiagnoseOverPSRPFindsWhatTheLabFinds(t *testing.T) {
	s := newPSRPSite(t, false)
	r := s.bot(t, "diagnose", "5.5.4", "--json")
	require.Equal(t, exitFindings, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	var got runReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &got), r.out)

	t.Chdir(t.TempDir()) // no ndrbot.yaml: the lab with the embedded defaults
	r = bot(t, nil, "", false, "diagnose", "5.5.4", "--lab", "overloaded-queue", "--json")
	require.Equal(t, exitFindings, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	var want runReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &want), r.out)

	assert.Equal(t, findingsOf(want), findingsOf(got))
	assert.Contains(t, findingsOf(got),
		`diagnose critical queue-overloaded step="" host=`+ex01Host+` | Queue EX01\7 toward Exchange Online holds 1523 messages (> 1000): connector overloaded | EX01\7 Active 1523 msgs to outbound to office 365, last error: `+
			`451 4.4.0 Primary target IP address responded with: "451 5.5.4 Service Unavailable" Attempted failover to alternate host, but that did not succeed.`)
	assert.Equal(t, stepsOf(want), stepsOf(got))

	require.Len(t, got.Proposals, 1)
	assert.Equal(t, "restart-transport", got.Proposals[0].Relief)
	assert.Equal(t, []string{ex01Host}, got.Proposals[0].Hosts)
	assert.Equal(t, want.Proposals[0].Hosts, got.Proposals[0].Hosts)
	assert.Contains(t, got.Proposals[0].Preview, `"Name":"MSExchangeTransport"`)
	assert.Contains(t, got.Proposals[0].Preview, `"Status":"Running"`)
	// The transport step reads the service on both servers; the preview reads it
	// again on ex01 only.
	assert.Len(t, calling(s.jea, ex01Host, "Get-Service"), 2, "the transport step and the preview on ex01")
	assert.Len(t, calling(s.jea, ex02Host, "Get-Service"), 1, "the preview runs on ex01 only")

	// Diagnosis and preview only: nothing was changed, every runspace pool was closed.
	for _, h := range []string{ex01Host, ex02Host} {
		assert.Empty(t, calling(s.jea, h, "Restart-Service"))
		assert.Empty(t, calling(s.exchange, h, "Restart-Service"))
		tracking := calling(s.exchange, h, "Get-MessageTrackingLog")
		require.Len(t, tracking, 2, "%s: the failures and the deferrals", h)
		for _, c := range tracking {
			assert.Contains(t, paramsOf(c), "Server="+h)
		}
		assert.ElementsMatch(t, []any{"FAIL", "DEFER"}, []any{param(tracking[0], "EventId"), param(tracking[1], "EventId")})
		for name, e := range map[string]*psrpEndpoint{"exchange": s.exchange, "jea": s.jea} {
			assert.Equal(t, 1, e.Stats(h).PoolsOpened, "%s %s: one runspace pool, reused by every step", name, h)
		}
	}
	assert.Zero(t, s.exchange.OpenPools())
	assert.Zero(t, s.jea.OpenPools())
	s.assertOnlyCmdlets(t)
	assert.Equal(t, int64(1), s.eop.sessions.Load(), "one SMTP probe of EOP")
	assert.Equal(t, []string{"EHLO", "QUIT"}, s.eop.verbs())
	health := s.graph.GraphRequests(http.MethodGet, "/admin/serviceAnnouncement/issues")
	require.Len(t, health, 1, "one service health read")
	assert.Equal(t, "service eq 'Exchange Online' and isResolved eq false", health[0].Query("$filter"))
}

func TestDiagnoseOverPSRPRestartsOnlyEX01(t *testing.T) {
	s := newPSRPSite(t, true)
	r := s.bot(t, "diagnose", "5.5.4", "--approve", "restart-transport")
	require.Equal(t, exitFindings, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	for _, w := range []string{
		`Queue EX01\7 toward Exchange Online holds 1523 messages (> 1000): connector overloaded`,
		"restart-transport approved by cli:tester — running on " + ex01Host,
		"✓ restart-transport ran on " + ex01Host,
		"✓ verified: restart-transport worked",
	} {
		assert.Contains(t, r.out, w)
	}

	restarts := calling(s.jea, ex01Host, "Restart-Service")
	require.Len(t, restarts, 1, "Restart-Service on ex01's JEA endpoint")
	assert.Equal(t, []string{"Name=MSExchangeTransport"}, paramsOf(restarts[0]))
	assert.False(t, restarts[0].IsScript)
	assert.Empty(t, calling(s.jea, ex02Host, "Restart-Service"), "Restart-Service reached ex02")
	for _, h := range []string{ex01Host, ex02Host} {
		assert.Empty(t, calling(s.exchange, h, "Restart-Service"), "Restart-Service went to /PowerShell on %s", h)
	}
	var labRestarts []string
	for _, c := range s.lab.Calls() {
		if c.Cmdlet == "Restart-Service" {
			labRestarts = append(labRestarts, c.Target+" "+c.Host)
		}
	}
	assert.Equal(t, []string{"jea " + ex01Host}, labRestarts)
	// The verification read both servers again after the restart.
	for _, h := range []string{ex01Host, ex02Host} {
		assert.Len(t, calling(s.exchange, h, "Get-MessageTrackingLog"), 4, "%s: failures and deferrals, diagnosis and verification", h)
		assert.Len(t, calling(s.exchange, h, "Get-Queue"), 2, "%s: diagnosis and verification", h)
	}
	assert.Zero(t, s.exchange.OpenPools())
	assert.Zero(t, s.jea.OpenPools())
	s.assertOnlyCmdlets(t)
}

func TestDiagnoseOverPSRPRefusesHostileSenderBeforeAnyRequest(t *testing.T) {
	s := newPSRPSite(t, false)
	r := s.bot(t, "diagnose", "5.5.4", "sender=x'; Remove-Mailbox ceo")
	assert.Equal(t, exitUsage, r.code, "stdout:\n%s", r.out)
	assert.Contains(t, r.err, "is not an email address")
	assert.Zero(t, s.dials.Load(), "a connection was opened to a server")
	for _, h := range []string{ex01Host, ex02Host} {
		assert.Zero(t, s.exchange.Stats(h).PoolsOpened, "a request reached %s", h)
		assert.Zero(t, s.jea.Stats(h).PoolsOpened, "a request reached %s's JEA endpoint", h)
	}
	assert.Zero(t, s.eop.sessions.Load(), "a connection reached EOP")
	assert.Empty(t, s.graph.Requests(), "a request reached Graph")
	assert.Empty(t, s.lab.Calls())
}

// A sender with a quote reaches the sender's Get-Mailbox as one typed string
// parameter, byte for byte, and nowhere else: never in a cmdlet name, never as
// script text. The throttled-sender site has every queue below 500, so the
// throttling branch reads the mailbox.
func TestDiagnoseOverPSRPSendsQuotedSenderAsData(t *testing.T) {
	const sender = "o'brien@contoso.com"
	s := newPSRPSiteIn(t, "throttled-sender", false)
	r := s.bot(t, "diagnose", "5.5.4", "sender="+sender, "--json")
	// The lab has no such mailbox: the lookup fails on each server, and the site
	// reports that exactly as the lab does.
	require.Equal(t, exitEscalation, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	var got runReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &got), r.out)
	assert.Contains(t, r.out, "object 'o'brien@contoso.com' couldn't be found")

	var mailbox []psrpCommand
	for _, h := range []string{ex01Host, ex02Host} {
		for _, e := range []*psrpEndpoint{s.exchange, s.jea} {
			for _, c := range e.commands(h) {
				if c.Name == "Get-Mailbox" {
					mailbox = append(mailbox, c)
					continue
				}
				assert.NotContains(t, c.Name, "brien", "%s: the sender is in a cmdlet name", h)
				for _, p := range c.Params {
					assert.NotContains(t, string(p.Raw), "brien", "%s: the sender reached %s -%s", h, c.Name, p.Name)
				}
			}
		}
	}
	require.NotEmpty(t, mailbox, "the throttling branch reads the sender's mailbox")
	for _, c := range mailbox {
		assert.False(t, c.IsScript, "Get-Mailbox sent as a script")
		require.Len(t, c.Params, 1, "Get-Mailbox: one parameter")
		assert.Equal(t, "Identity", c.Params[0].Name)
		assert.Equal(t, sender, c.Params[0].Value, "-Identity: not the sender as a string")
		assert.Regexp(t, `^<S( N="[^"]*")?>o(&apos;|&#39;|')brien@contoso\.com</S>$`, string(c.Params[0].Raw), "-Identity: not one CLIXML string")
	}
	var labMailbox int
	for _, c := range s.lab.Calls() {
		if c.Cmdlet == "Get-Mailbox" {
			labMailbox++
			assert.Equal(t, []executors.Arg{{Name: "Identity", Value: sender}}, c.Args, "the lab read another sender")
		}
	}
	assert.Equal(t, len(mailbox), labMailbox)
	s.assertOnlyCmdlets(t)

	t.Chdir(t.TempDir())
	r = bot(t, nil, "", false, "diagnose", "5.5.4", "--lab", "throttled-sender", "sender="+sender, "--json")
	require.Equal(t, exitEscalation, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	var want runReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &want), r.out)
	// The site has no exo target set up, as an on-premises deployment: its
	// Exchange Online steps are skipped, where the lab, which simulates the
	// tenant, looks there too for a sender on-premises does not know.
	gotSteps, wantSteps := stepsOf(got), stepsOf(want)
	for step := range wantSteps {
		if strings.HasPrefix(step, "exo_") {
			assert.Equal(t, "skipped, 0 rows", gotSteps[step], step)
			delete(gotSteps, step)
			delete(wantSteps, step)
		}
	}
	assert.Equal(t, wantSteps, gotSteps)
}

var timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)

// findingsOf renders a run's findings for comparison, sorted, with times blanked.
func findingsOf(rep runReport) []string {
	var out []string
	for _, f := range rep.Findings {
		s := fmt.Sprintf("%s %s %s step=%q host=%s | %s | %s", f.Phase, f.Severity, f.Rule, f.Step, f.Host, f.Text, f.Evidence)
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
