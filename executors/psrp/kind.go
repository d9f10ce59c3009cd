package psrp

import (
	"fmt"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/exchange"
)

// DescribeExchange is the exchange kind: Exchange cmdlets over remote PowerShell
// to /PowerShell, a no-language endpoint — cmdlet steps, no scripts, no checks.
func DescribeExchange() executors.Kind {
	return executors.Kind{
		Name:     config.KindExchange,
		Config:   ExchangeConfig(),
		Cmdlets:  true,
		Commands: exchange.Exchange(),
		New: func(name string, t config.Target, env executors.Env) (executors.Executor, error) {
			if err := t.RequireEndpoints(name); err != nil {
				return nil, err
			}
			return New(name, t, options(env)...)
		},
	}
}

// DescribeJEA is the jea kind: the JEA endpoint of deploy/jea, over remote
// PowerShell — the few commands it exposes. Optional: without endpoints its
// steps are skipped with a note and a restart cannot be proposed, but the
// Exchange diagnosis still runs.
func DescribeJEA() executors.Kind {
	return executors.Kind{
		Name:     config.KindJEA,
		Config:   JEAConfig(),
		Cmdlets:  true,
		Commands: exchange.JEA(),
		New: func(name string, t config.Target, env executors.Env) (executors.Executor, error) {
			if len(t.Endpoints) == 0 {
				return nil, executors.NotConfigured(fmt.Errorf("JEA endpoint %q not set up: service state and restarts need it (deploy/jea, then set %s)",
					name, config.EnvName("targets."+name+".endpoints")))
			}
			return New(name, t, options(env)...)
		},
	}
}

func options(env executors.Env) []Option {
	var opts []Option
	if env.Log != nil {
		opts = append(opts, WithLogger(env.Log))
	}
	if env.Dial != nil {
		opts = append(opts, WithDialer(env.Dial))
	}
	return opts
}
