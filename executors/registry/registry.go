// Package registry is the one list of the target kinds this build knows. Each
// executor package describes its own kind (executors.Kind: what it runs, its
// checks and cmdlets with their parameters and row fields, its constructor);
// this list hands those descriptions to the playbook linter and to the target
// wiring. A new kind is a new package and one line here.
package registry

import (
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/exo"
	"github.com/ndrbot/ndrbot/executors/graph"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/executors/probe"
	"github.com/ndrbot/ndrbot/executors/psrp"
	"github.com/ndrbot/ndrbot/executors/winrm"
)

// Kinds describes every target kind, built afresh on each call.
func Kinds() executors.Kinds {
	return executors.Kinds{
		psrp.DescribeExchange(),
		psrp.DescribeJEA(),
		winrm.Describe(),
		probe.Describe(),
		graph.Describe(),
		exo.Describe(),
		lab.Describe(),
	}
}
