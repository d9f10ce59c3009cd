package exo

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/internal/entra"
)

// exoBase maps a target's cloud key to the Exchange Online host its Admin API
// and InvokeCommand live on: "Supported environments and base URLs" in Learn's
// "Get started with the Exchange Online Admin API"
// (https://learn.microsoft.com/exchange/reference/admin-api-get-started).
// GCC (moderate) uses the commercial host.
var exoBase = map[string]string{
	config.CloudGlobal:   "https://outlook.office365.com",
	config.CloudUSGov:    "https://outlook.office365.us",
	config.CloudUSGovDoD: "https://outlook-dod.office365.us",
	config.CloudChina:    "https://outlook.office365.cn",
}

// Endpoints is where one exo target talks to.
type Endpoints struct {
	Cloud string
	// BaseURL is the Exchange Online origin (https://outlook.office365.us); both
	// routes hang below it, and it is the only origin bearer tokens go to.
	BaseURL string
	// Scope is the app-only scope: the Exchange Online resource's /.default
	// (Learn, "Authentication and authorization for the Exchange Online Admin
	// API", Step 4).
	Scope string
	// AuthorityURL is the Microsoft Entra authority host; InstanceDiscovery is
	// true only for the global one.
	AuthorityURL      string
	InstanceDiscovery bool
}

// ResolveEndpoints derives a target's endpoints from cloud and authority_url.
func ResolveEndpoints(t config.Target) (Endpoints, error) {
	key := t.Cloud
	if key == "" {
		key = config.CloudGlobal
	}
	base, ok := exoBase[key]
	authority, _ := entra.Authority(key)
	if !ok {
		return Endpoints{}, fmt.Errorf("cloud: %q is not one of %s", t.Cloud, strings.Join(config.GraphClouds(), ", "))
	}
	ep := Endpoints{Cloud: key, BaseURL: base, Scope: base + "/.default", AuthorityURL: authority}
	if t.AuthorityURL != "" {
		u, err := url.Parse(t.AuthorityURL)
		switch {
		case err != nil || u.Host == "":
			return Endpoints{}, fmt.Errorf("authority_url: %q is not a URL", t.AuthorityURL)
		case u.Scheme != "https":
			return Endpoints{}, fmt.Errorf("authority_url: %q must be https", t.AuthorityURL)
		case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil:
			return Endpoints{}, fmt.Errorf("authority_url: %q: give the authority host only; the tenant comes from tenant_id", u.Redacted())
		}
		u.Path = "/"
		ep.AuthorityURL = u.String()
	}
	ep.InstanceDiscovery = ep.AuthorityURL == entra.AuthorityGlobal
	return ep, nil
}
