package lab

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/exchange"
	"github.com/ndrbot/ndrbot/executors/psobj"
)

// The lab and the commands' descriptions (executors/exchange) agree: every
// property an object the lab writes has is described, and a command whose
// parameters are all described takes none the lab simulates beyond them. What
// the lab builds and what lint knows rest on the same sources (SOURCES.md).
func TestLabShapesAreDescribed(t *testing.T) {
	l := orgLab(t, "base")
	described := map[string]executors.Command{}
	for _, c := range slices.Concat(exchange.Exchange(), exchange.JEA()) {
		described[c.Name] = c
	}
	// The arguments each command needs to answer in the base organisation.
	needs := map[string][]executors.Arg{
		"Get-ServerComponentState": args("Identity", "EX01"),
		"Get-ReceiveConnector":     args("Server", "EX01"),
		"Get-Service":              args("Name", "MSExchangeTransport"),
		"Test-NdrSmtpPort":         args("RemoteHost", "contoso-com.mail.protection.outlook.com", "Port", int64(25)),
		"Test-Mailflow":            args("TargetEmailAddress", "ap@fabrikam.com"),
	}
	// Commands the base organisation has nothing for: the scenario that does.
	orgs := map[string]*Lab{"Get-Message": orgLab(t, "nexthop-recovered")}
	for _, c := range cmdlets() {
		d, ok := described[c.name]
		if !assert.True(t, ok, "%s is simulated but not described", c.name) {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			if d.AllParams && !c.jea { // JEA narrows Windows' cmdlets to -Name
				var names []string
				for _, p := range c.params {
					names = append(names, p.name)
				}
				for _, n := range slices.Concat(names, c.unsimulated) {
					_, found, _ := d.Param(n)
					assert.True(t, found, "-%s is not described", n)
				}
				// Mandatory as described, or the mandatory parameter of the one
				// parameter set the lab simulates (Retry-Queue: Identity, not Filter).
				for _, p := range c.params {
					dp, _, _ := d.Param(p.name)
					inSet := slices.ContainsFunc(d.OneOf, func(g []string) bool { return slices.Contains(g, p.name) })
					assert.Equal(t, p.mandatory, dp.Required || inSet, "-%s mandatory", p.name)
				}
			}
			if !strings.HasPrefix(c.name, "Get-") && !strings.HasPrefix(c.name, "Test-") {
				return
			}
			kind := "exchange"
			if c.jea {
				kind = "jea"
			}
			from := l
			if o, ok := orgs[c.name]; ok {
				from = o
			}
			items := objects(t, from, kind, c.name, needs[c.name])
			require.NotEmpty(t, items)
			for _, it := range items {
				o, ok := it.(*psobj.Object)
				require.True(t, ok)
				for _, p := range o.Props {
					assert.Contains(t, d.Fields, p.Name, "%s writes %s", c.name, p.Name)
				}
			}
		})
	}
}
