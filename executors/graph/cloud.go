package graph

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/internal/entra"
)

// Cloud is one Microsoft 365 national cloud: where its Graph lives and where its
// tokens come from. See https://learn.microsoft.com/graph/deployments.
type Cloud struct {
	Name         string // config value: global, usgov, usgovdod, china
	GraphURL     string // Graph base URL, API version included
	AuthorityURL string // Microsoft Entra authority host
}

// clouds maps the cloud key to the endpoints Microsoft publishes for it. GCC
// (moderate) tenants use the global endpoints; GCC High is usgov, DoD is usgovdod.
var clouds = map[string]Cloud{
	config.CloudGlobal:   {config.CloudGlobal, "https://graph.microsoft.com/v1.0", entra.AuthorityGlobal},
	config.CloudUSGov:    {config.CloudUSGov, "https://graph.microsoft.us/v1.0", entra.AuthorityUSGov},
	config.CloudUSGovDoD: {config.CloudUSGovDoD, "https://dod-graph.microsoft.us/v1.0", entra.AuthorityUSGov},
	config.CloudChina:    {config.CloudChina, "https://microsoftgraph.chinacloudapi.cn/v1.0", entra.AuthorityChina},
}

// CloudByName returns the cloud a graph target's cloud key names ("" is global).
func CloudByName(name string) (Cloud, bool) {
	if name == "" {
		name = config.CloudGlobal
	}
	c, ok := clouds[name]
	return c, ok
}

// Endpoints is where one graph target talks to, resolved from cloud, graph_url and
// authority_url.
type Endpoints struct {
	// Cloud is the cloud key the defaults came from.
	Cloud string
	// GraphURL is the base every request starts with (…/v1.0).
	GraphURL string
	// GraphHost is the host name (no port) bearer tokens are sent to; the only entry of
	// the authentication provider's valid-hosts list.
	GraphHost string
	// AuthorityURL is the authority host the credential asks for tokens
	// (https://login.microsoftonline.us/); the tenant is appended by the library.
	AuthorityURL string
	// Scope is the app-only scope requested: the Graph resource's "/.default".
	Scope string
	// InstanceDiscovery is false for every authority but the global default, so the
	// identity library never calls the public cloud's discovery endpoint from a
	// national cloud, a proxy or a test.
	InstanceDiscovery bool
}

// ResolveEndpoints derives a target's endpoints: the cloud's defaults, each
// replaceable by graph_url / authority_url. A graph_url without a path gets /v1.0.
func ResolveEndpoints(t config.Target) (Endpoints, error) {
	c, ok := CloudByName(t.Cloud)
	if !ok {
		return Endpoints{}, fmt.Errorf("cloud: %q is not one of %s", t.Cloud, strings.Join(config.GraphClouds(), ", "))
	}
	ep := Endpoints{Cloud: c.Name, GraphURL: c.GraphURL, AuthorityURL: c.AuthorityURL}
	if t.GraphURL != "" {
		u, err := parseBaseURL(t.GraphURL, true)
		if err != nil {
			return Endpoints{}, fmt.Errorf("graph_url: %w", err)
		}
		if strings.Trim(u.Path, "/") == "" {
			u.Path = "/v1.0"
		}
		ep.GraphURL = strings.TrimSuffix(u.String(), "/")
	}
	if t.AuthorityURL != "" {
		u, err := parseBaseURL(t.AuthorityURL, false)
		if err != nil {
			return Endpoints{}, fmt.Errorf("authority_url: %w", err)
		}
		if strings.Trim(u.Path, "/") != "" {
			return Endpoints{}, fmt.Errorf("authority_url: %q: give the authority host only; the tenant comes from tenant_id", t.AuthorityURL)
		}
		u.Path = "/"
		ep.AuthorityURL = u.String()
	}
	g, err := url.Parse(ep.GraphURL)
	if err != nil {
		return Endpoints{}, fmt.Errorf("graph URL %q: %w", ep.GraphURL, err)
	}
	ep.GraphHost = strings.ToLower(g.Hostname())
	// The resource is the Graph origin: https://graph.microsoft.us/.default. Behind a
	// graph_url proxy the token is asked for the proxy's origin, which is what a test
	// double or a reverse proxy that validates its own audience expects.
	ep.Scope = g.Scheme + "://" + g.Host + "/.default"
	ep.InstanceDiscovery = ep.AuthorityURL == clouds[config.CloudGlobal].AuthorityURL
	return ep, nil
}

// parseBaseURL accepts an https URL, or plain http to a loopback host when
// allowLoopbackHTTP (a local proxy or a test; tokens only travel to https or
// localhost anyway).
func parseBaseURL(raw string, allowLoopbackHTTP bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL", raw)
	}
	switch {
	case u.Host == "":
		return nil, fmt.Errorf("%q has no host", raw)
	case u.User != nil:
		return nil, fmt.Errorf("%q carries credentials", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%q must not have a query or fragment", raw)
	case u.Scheme == "https":
	case u.Scheme == "http" && allowLoopbackHTTP && isLoopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("%q must be https", raw)
	}
	return u, nil
}

func isLoopback(host string) bool {
	switch strings.ToLower(host) {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}
