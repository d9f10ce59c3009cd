package graph

import (
	"strings"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/internal/entra"
)

// Config is the graph kind's share of the configuration: an app registration
// (entra's keys), the cloud or graph_url Graph is reached at, no endpoints.
func Config() config.KindSpec {
	return config.KindSpec{
		Name:     Kind,
		Defaults: config.Target{Cloud: config.CloudGlobal},
		Keys:     append(entra.AppKeys(), "graph_url"),
		Validate: validate,
	}
}

// validate checks a graph target: who it signs in as (tenant, application,
// exactly one credential) and where it talks to (cloud, graph_url,
// authority_url).
func validate(prefix string, t config.Target, report config.Report) {
	if t.Timeout < 0 {
		report(prefix+".timeout", "%s must not be negative", t.Timeout)
	}
	config.CheckTLS(prefix, t, report)
	if len(t.Endpoints) > 0 {
		report(prefix+".endpoints", "not used by kind graph: cloud (%s) or graph_url says where Graph is",
			strings.Join(config.GraphClouds(), "|"))
	}
	// With no app registration at all (the default graph target) the identity is
	// not configured yet: RequireApp speaks when a playbook uses the target.
	if !t.AppUnset() {
		entra.CheckIdentity(prefix, t, report)
	}
	entra.CheckEndpoints(prefix, t, report)
}
