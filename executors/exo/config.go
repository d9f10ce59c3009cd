package exo

import (
	"strings"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/internal/entra"
)

// Config is the exo kind's share of the configuration: it signs in as an app
// registration the way a graph target does (entra's keys, checked by the same
// rules, and like graph only once one of them is set), has no endpoints (cloud
// says which Exchange Online it reaches), and may open the InvokeCommand route
// (allow_module_endpoint).
func Config() config.KindSpec {
	return config.KindSpec{
		Name:     config.KindEXO,
		Defaults: config.Target{Cloud: config.CloudGlobal},
		Keys:     append(entra.AppKeys(), "allow_module_endpoint"),
		Validate: validate,
	}
}

func validate(prefix string, t config.Target, report config.Report) {
	if len(t.Endpoints) > 0 {
		report(prefix+".endpoints", "not used by kind exo: cloud (%s) says where Exchange Online is",
			strings.Join(config.GraphClouds(), "|"))
	}
	if t.Timeout < 0 {
		report(prefix+".timeout", "%s must not be negative", t.Timeout)
	}
	config.CheckTLS(prefix, t, report)
	// With no app registration at all (the default exo target) the identity is
	// not configured yet: RequireApp speaks when a playbook uses the target.
	if !t.AppUnset() {
		entra.CheckIdentity(prefix, t, report)
	}
	entra.CheckEndpoints(prefix, t, report)
}
