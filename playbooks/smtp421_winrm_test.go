package playbooks_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/executors/winrm"
	"github.com/ndrbot/ndrbot/executors/winrm/winrmfake"
)

// overWinRM is a lab organisation behind the real winrm executor: each Exchange
// server of the lab is a WS-Management fake that hands the decoded script and $P to
// the lab; the net target is the lab's probe side.
type overWinRM struct {
	lab      *lab.Lab
	exchange executors.Executor
	servers  []*winrmfake.Server
}

func (o overWinRM) Executor(name string) (executors.Executor, error) {
	if name == "exchange" {
		return o.exchange, nil
	}
	return labTargetsFor(o.lab).Executor(name)
}

// The executor addresses each fake by its lab host name (the dialer takes it
// there), as it would address a real server: cmdlet arguments such as
// -Server {{ host }} carry the name Exchange knows.
var winrmHost = map[string]string{ex01: ex01, ex02: ex02}

func newOverWinRM(t *testing.T, scenario string) overWinRM {
	t.Helper()
	l, err := lab.New(scenario, lab.Options{Playbook: "smtp-421"})
	require.NoError(t, err)
	exchange := l.Target("exchange", "winrm", nil)
	s1 := winrmfake.New(t, winrmfake.Lab(t, exchange, ex01))
	s2 := winrmfake.New(t, winrmfake.Lab(t, exchange, ex02))
	byHost := map[string]*winrmfake.Server{ex01: s1, ex02: s2}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		srv, ok := byHost[host]
		if !ok {
			return nil, fmt.Errorf("no fake for %s", addr)
		}
		return srv.DialContext(ctx, network, addr)
	}
	rename := func(srv *winrmfake.Server, host string) string {
		u, err := url.Parse(srv.URL())
		require.NoError(t, err)
		u.Host = net.JoinHostPort(host, u.Port())
		return u.String()
	}
	e, err := winrm.New("exchange", config.Target{
		Kind:             "winrm",
		Endpoints:        []string{rename(s1, ex01), rename(s2, ex02)},
		Auth:             "basic",
		Username:         winrmfake.User,
		Password:         config.Secret(winrmfake.Password),
		AllowUnencrypted: true,
		OperationTimeout: 10 * time.Second,
	}, winrm.WithDialer(dial))
	require.NoError(t, err)
	require.Equal(t, []string{winrmHost[ex01], winrmHost[ex02]}, e.Hosts())
	return overWinRM{lab: l, exchange: e, servers: []*winrmfake.Server{s1, s2}}
}

func diagnoseOverWinRM(t *testing.T, scenario string, params map[string]string) (labRun, overWinRM) {
	t.Helper()
	o := newOverWinRM(t, scenario)
	return diagnose421On(t, o.lab, o, params), o
}

// Every branch again, with the Exchange steps run by the winrm executor over
// WS-Management.
func TestSMTP421BranchesOverWinRM(t *testing.T) {
	for _, tc := range branches421() {
		t.Run(tc.name, func(t *testing.T) {
			r, o := diagnoseOverWinRM(t, tc.scenario, tc.params)
			checkBranch421(t, tc, r, func(h string) string { return winrmHost[h] })
			for _, s := range o.servers {
				assert.Zero(t, s.OpenShells(), "every shell is deleted")
			}
		})
	}
}

func TestSMTP421ReliefsOverWinRM(t *testing.T) {
	for _, tc := range reliefs421() {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := diagnoseOverWinRM(t, tc.scenario, tc.params)
			checkRelief421(t, tc, r)
		})
	}
}

// On the wire the scripts are the playbook's text and every value — the domain, the
// queue identities, the new limit — travels only inside the base64 parameter blob.
func TestSMTP421ArgsAreDataOnTheWire(t *testing.T) {
	r, o := diagnoseOverWinRM(t, "concurrency-too-high", nil)
	for _, id := range []string{"lower-per-domain-connections", "retry-queue"} {
		res, err := r.eng.Relieve(t.Context(), r.run, id)
		require.NoError(t, err)
		require.True(t, res.OK, res.Error)
	}
	cmdlets := map[string]bool{}
	for _, perm := range r.run.Playbook.Permissions() {
		cmdlets[perm.Cmdlet] = true
	}
	scripts := map[string]bool{}
	seen := map[string]bool{}
	for _, s := range o.servers {
		for _, c := range s.Calls() {
			scripts[c.Script] = true
			name, _ := c.Params["@cmdlet"].(string)
			assert.True(t, cmdlets[name], "%q is a cmdlet the playbook names", name)
			for _, v := range []string{"fabrikam.com", `EX01\18`, name} {
				assert.NotContains(t, c.Raw, v, "only inside the base64 parameter blob")
			}
			if name == "Retry-Queue" {
				assert.Contains(t, c.Params["@args"], map[string]any{"n": "Identity", "v": `EX01\18`})
				seen["Retry-Queue"] = true
			}
		}
	}
	assert.Len(t, scripts, 1, "every call runs the one fixed cmdlet script")
	assert.True(t, seen["Retry-Queue"], "the queue identity did arrive, as data")
}
