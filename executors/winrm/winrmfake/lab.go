package winrmfake

import (
	"cmp"
	"context"
	"errors"
	"testing"

	"github.com/ndrbot/ndrbot/executors"
)

// Lab answers every command as the lab host host would: target is an Exchange
// target of a lab (lab.New(…).Target("exchange", "winrm", nil)), which recognises a
// script by the cmdlets it calls and reads $P from the action's parameters. Give
// each fake server its own lab host and all of them the same lab, so that a relief
// run through one server changes what the others report:
//
//	l, _ := lab.New("overloaded-queue", lab.Options{})
//	exchange := l.Target("exchange", "winrm", nil)
//	ex01 := winrmfake.New(t, winrmfake.Lab(t, exchange, "ex01.lab.contoso.com"))
//	ex02 := winrmfake.New(t, winrmfake.Lab(t, exchange, "ex02.lab.contoso.com"))
//
// The lab's JSON becomes stdout; a script the lab answers with an error (an
// unknown mailbox, a script it has no simulation for) exits 1 with the error on
// stderr, as PowerShell under $ErrorActionPreference = 'Stop' would. Any other
// error (a host the lab does not have) fails the test.
func Lab(t testing.TB, target executors.Executor, host string) func(Call) Reply {
	return func(c Call) Reply {
		out, err := target.Run(context.Background(), host, executors.Action{Script: c.Script, Params: c.Params})
		rep := Reply{Stdout: string(out.Stdout), Stderr: out.Stderr, Exit: out.ExitCode}
		switch {
		case err == nil:
		case errors.Is(err, executors.ErrExit):
			rep.Stderr, rep.Exit = cmp.Or(rep.Stderr, err.Error()), cmp.Or(rep.Exit, 1)
		default:
			t.Errorf("winrmfake: lab host %s: %v", host, err)
			rep.Stderr, rep.Exit = err.Error(), 1
		}
		return rep
	}
}
