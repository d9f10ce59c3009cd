package winrmfake

import (
	"errors"
	"testing"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/psobj"
)

// Invoker answers one cmdlet with PowerShell objects. A target of
// executors/lab is one.
type Invoker interface {
	Invoke(host string, a executors.Action) (items []any, warnings []string, err error)
}

// Lab answers the winrm executor's cmdlet steps as the lab host host would.
// The executor runs a cmdlet in a plain shell as a fixed script with the cmdlet
// and its arguments in $P ('@cmdlet', '@args'); the lab's objects come back
// serialized as that script serializes them (one array, PSSerializer depth 2).
// Give each fake server its own lab host and all of them the same lab, so that
// a relief run through one server changes what the others report:
//
//	l, _ := lab.New("overloaded-queue", lab.Options{})
//	exchange := l.Target("exchange", "winrm", nil)
//	ex01 := winrmfake.New(t, winrmfake.Lab(t, exchange, "ex01.lab.contoso.com"))
//
// An error the organisation raises exits 1 with the error on stderr, as
// PowerShell under $ErrorActionPreference = 'Stop' would. A script that is not a
// cmdlet step, or a host the lab does not have, fails the test.
func Lab(t testing.TB, inv Invoker, host string) func(Call) Reply {
	return func(c Call) Reply {
		name, _ := c.Params["@cmdlet"].(string)
		if name == "" {
			t.Errorf("winrmfake: lab host %s: not a cmdlet step: %q", host, c.Script)
			return Reply{Stderr: "not a cmdlet step", Exit: 1}
		}
		a := executors.Action{Step: name, Cmdlet: name}
		args, _ := c.Params["@args"].([]any)
		for _, raw := range args {
			arg, _ := raw.(map[string]any)
			n, _ := arg["n"].(string)
			a.Args = append(a.Args, executors.Arg{Name: n, Value: arg["v"]})
		}
		// Warnings are not returned: the executor's script silences them, since
		// a plain shell would print them into stdout among the CLIXML.
		items, _, err := inv.Invoke(host, a)
		if err != nil {
			if errors.Is(err, executors.ErrUnreachable) {
				t.Errorf("winrmfake: lab host %s: %v", host, err)
			}
			return Reply{Stderr: err.Error(), Exit: 1}
		}
		doc, err := psobj.EncodeDocument([]any{&psobj.Object{TypeNames: []string{"System.Object[]", "System.Array", "System.Object"}, List: items}})
		if err != nil {
			t.Errorf("winrmfake: lab host %s: %s: %v", host, name, err)
			return Reply{Stderr: err.Error(), Exit: 1}
		}
		return Reply{Stdout: string(doc)}
	}
}
