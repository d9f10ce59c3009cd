package winrm

import (
	"slices"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/exchange"
)

// Describe is the winrm kind: a plain WinRM shell, kept for what needs a script.
// It runs script steps and cmdlet steps (the Exchange cmdlets once the shell has
// loaded them, and Windows' own), no checks.
func Describe() executors.Kind {
	return executors.Kind{
		Name:     config.KindWinRM,
		Config:   Config(),
		Scripts:  true,
		Cmdlets:  true,
		Commands: slices.Concat(exchange.Exchange(), exchange.Windows()),
		New: func(name string, t config.Target, env executors.Env) (executors.Executor, error) {
			if err := t.RequireEndpoints(name); err != nil {
				return nil, err
			}
			var opts []Option
			if env.Dial != nil {
				opts = append(opts, WithDialer(env.Dial))
			}
			return New(name, t, opts...)
		},
	}
}
