package lab

import (
	"fmt"
	"slices"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/exchange"
	"github.com/ndrbot/ndrbot/executors/graph"
	"github.com/ndrbot/ndrbot/executors/probe"
)

// Describe is the lab kind: a target that stands for any part of the simulated
// organisation. It answers cmdlet steps (Exchange's, Windows' and the JEA
// endpoint's) and the probe and graph checks, not scripts (runCmdlet). In a lab
// run every target is simulated whatever its kind (Lab.Target); outside one a
// lab target has nothing to run against.
func Describe() executors.Kind {
	cmds := slices.Concat(exchange.Exchange(), exchange.Windows())
	for _, c := range exchange.JEA() {
		if !slices.ContainsFunc(cmds, func(x executors.Command) bool { return x.Name == c.Name }) {
			cmds = append(cmds, c)
		}
	}
	return executors.Kind{
		Name: config.KindLab,
		// A lab target stands in for a target of any kind, so it accepts every
		// key and has no defaults of its own.
		Config:   config.KindSpec{Name: config.KindLab, AnyKey: true},
		Cmdlets:  true,
		Commands: cmds,
		Checks:   slices.Concat(probe.Describe().Checks, graph.Describe().Checks),
		New: func(name string, _ config.Target, _ executors.Env) (executors.Executor, error) {
			return nil, fmt.Errorf("targets.%s.kind: a lab target runs only in a lab run (--lab SCENARIO)", name)
		},
	}
}
