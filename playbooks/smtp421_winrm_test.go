package playbooks_test

import (
	"strings"
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

// Both fakes listen on 127.0.0.1; the second is addressed as localhost so the
// executor sees two hosts.
var winrmHost = map[string]string{ex01: "127.0.0.1", ex02: "localhost"}

func newOverWinRM(t *testing.T, scenario string) overWinRM {
	t.Helper()
	l, err := lab.New(scenario, lab.Options{Playbook: "smtp-421"})
	require.NoError(t, err)
	exchange := l.Target("exchange", "winrm", nil)
	s1 := winrmfake.New(t, winrmfake.Lab(t, exchange, ex01))
	s2 := winrmfake.New(t, winrmfake.Lab(t, exchange, ex02))
	e, err := winrm.New("exchange", config.Target{
		Kind:             "winrm",
		Endpoints:        []string{s1.URL(), strings.Replace(s2.URL(), "127.0.0.1", "localhost", 1)},
		Auth:             "basic",
		Username:         winrmfake.User,
		Password:         config.Secret(winrmfake.Password),
		AllowUnencrypted: true,
		OperationTimeout: 10 * time.Second,
	})
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
	pb := r.run.Playbook
	scripts := map[string]bool{}
	for _, s := range pb.Steps {
		scripts[strings.TrimSpace(s.PowerShell)] = true
	}
	for _, rel := range pb.Reliefs {
		scripts[strings.TrimSpace(rel.PowerShell)] = true
		scripts[strings.TrimSpace(rel.Preview)] = true
	}
	seen := map[string]bool{}
	for _, s := range o.servers {
		for _, c := range s.Calls() {
			assert.True(t, scripts[strings.TrimSpace(c.Script)], "the script on the wire is a playbook script verbatim:\n%s", c.Script)
			for _, v := range []string{"fabrikam.com", `EX01\18`} {
				assert.NotContains(t, c.Raw, v, "only inside the base64 parameter blob")
			}
			if d, ok := c.Params["domain"]; ok {
				assert.Equal(t, "fabrikam.com", d)
				seen["domain"] = true
			}
			if q, ok := c.Params["queues"]; ok {
				assert.Equal(t, []any{`EX01\18`}, q)
				seen["queues"] = true
			}
		}
	}
	assert.True(t, seen["domain"] && seen["queues"], "the values did arrive, as data: %v", seen)
}
