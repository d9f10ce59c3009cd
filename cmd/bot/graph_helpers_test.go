package main

import (
	"fmt"

	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
)

// graphTarget is the ndrbot.yaml entry of a graph target served by fake: Graph and
// the authority are the fake's https://127.0.0.1:port (graph_url and
// authority_url), and its CA is trusted through ca_file. The client secret comes
// from NDRBOT_TARGETS_GRAPH_CLIENT_SECRET, as the README says.
func graphTarget(fake *graphfake.Server) string {
	return fmt.Sprintf(`  graph:
    kind: graph
    tenant_id: %s
    client_id: %s
    graph_url: %s
    authority_url: %s
    ca_file: %s
`, fake.Tenant, fake.ClientID, fake.URL, fake.URL, fake.CAFile())
}
