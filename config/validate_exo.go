package config

import "strings"

// exo checks an Exchange Online target: it signs in as an app registration the
// way a graph target does (tenant, application, exactly one credential, cloud,
// authority_url — the same keys, checked by the same rules, and like graph only
// once one of them is set), and has no endpoints: cloud says which Exchange
// Online it reaches.
func (v *validator) exo(prefix string, t Target) {
	if len(t.Endpoints) > 0 {
		v.add(prefix+".endpoints", "not used by kind exo: cloud (%s) says where Exchange Online is",
			strings.Join(GraphClouds(), "|"))
	}
	if t.Timeout < 0 {
		v.add(prefix+".timeout", "%s must not be negative", t.Timeout)
	}
	v.tls(prefix, t)
	// With no app registration at all (the default exo target) the identity is
	// not configured yet: RequireApp speaks when a playbook uses the target.
	if !t.AppUnset() {
		v.graphIdentity(prefix, t)
	}
	v.graphEndpoints(prefix, t)
}
