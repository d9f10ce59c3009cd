package exo

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// Route says which Exchange Online surface a cmdlet ran through. It is named on
// every result (each row's RouteField, Output.Stderr) and every failure.
type Route string

const (
	// RouteAdminAPI is the Exchange Online Admin API: documented by Microsoft, in
	// preview, permission Exchange.ManageAsAppV2.
	RouteAdminAPI Route = "AdminAPI"
	// RouteInvokeCommand is the InvokeCommand endpoint the Exchange Online
	// PowerShell V3 module calls. Microsoft does not document it for direct use;
	// a target uses it only with allow_module_endpoint: true.
	RouteInvokeCommand Route = "InvokeCommand"
)

// RouteField is the field every exo row carries with its Route, so a finding
// can say which surface its evidence came from.
const RouteField = "ExoRoute"

func (r Route) describe() string {
	if r == RouteAdminAPI {
		return "Exchange Online Admin API (documented, preview)"
	}
	return "InvokeCommand endpoint of the Exchange Online PowerShell V3 module (undocumented for direct use)"
}

// systemMailbox is the organization's system mailbox whose address app-only
// callers give as X-AnchorMailbox when no particular mailbox is the target: the
// same GUID in every tenant, "APP:SystemMailbox{…}@<tenant>", as public clients
// of both routes send it (see testdata/README.md).
const systemMailbox = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}"

// adminEndpoint is one Admin API endpoint and the parameters it accepts for its
// read cmdlet (the "Supported cmdlets and parameters" of its Learn page). A
// cmdlet step with any other parameter goes to InvokeCommand, or is refused.
type adminEndpoint struct {
	Endpoint string
	Params   []string
	// Mailbox: the request targets the mailbox its Identity names, which is the
	// X-AnchorMailbox routing hint (UPN:<address>).
	Mailbox bool
}

// adminRoutes are the read cmdlets of the Admin API's six endpoints
// (https://learn.microsoft.com/exchange/reference/admin-api-endpoints-reference).
// Its write cmdlets (Set-Mailbox, Add-/Set-/Remove-MailboxFolderPermission) are
// not routed: no relief uses them yet.
var adminRoutes = map[string]adminEndpoint{
	"get-accepteddomain":                 {Endpoint: "AcceptedDomain", Params: []string{"Identity", "ResultSize"}},
	"get-organizationconfig":             {Endpoint: "OrganizationConfig"},
	"get-mailbox":                        {Endpoint: "Mailbox", Params: []string{"Identity", "ResultSize", "IncludeGrantSendOnBehalfToWithDisplayNames"}, Mailbox: true},
	"get-mailboxfolderpermission":        {Endpoint: "MailboxFolderPermission", Params: []string{"Identity", "User"}, Mailbox: true},
	"get-distributiongroupmember":        {Endpoint: "DistributionGroupMember", Params: []string{"Identity", "ResultSize"}},
	"get-dynamicdistributiongroupmember": {Endpoint: "DynamicDistributionGroupMember", Params: []string{"Identity", "ResultSize"}},
}

// plan is one cmdlet call resolved to a route: where it goes and what it sends.
type plan struct {
	Cmdlet string
	Route  Route
	URL    string // first page
	Params map[string]any
	Anchor string
	Select []string
	// Idempotent: a read, which may be sent again after an answer that leaves its
	// effect unknown (a reset, a 5xx).
	Idempotent bool
}

var (
	// cmdletRE: Verb-Noun, letters and digits, as Exchange's cmdlets are named.
	cmdletRE = lazyre.New(`^[A-Za-z]+-[A-Za-z0-9]+$`)
	paramRE  = lazyre.New(`^[A-Za-z][A-Za-z0-9_]{0,127}$`)
	// smtpRE finds the address an Identity names ("alex@contoso.com",
	// "alex@contoso.com:\Calendar").
	smtpRE = lazyre.New(`^([A-Za-z0-9.!#$%&'*+=?^_{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::\\.*)?$`)
)

// ErrModuleEndpointOff: the cmdlet needs the InvokeCommand endpoint and the target
// has not opted in.
var ErrModuleEndpointOff = fmt.Errorf("the module's InvokeCommand endpoint is off for this target: %w", executors.ErrUnsupported)

// planFor resolves a cmdlet step to its route: the Admin API when one of its
// endpoints takes the cmdlet with every argument given, else InvokeCommand when
// the target allows it, else a refusal that says why and what would allow it.
func (e *Executor) planFor(a executors.Action) (plan, error) {
	if a.Cmdlet == "" {
		return plan{}, fmt.Errorf("step %q: %w: exo targets take cmdlet steps (cmdlet: with args:), not scripts or checks", a.Step, executors.ErrUnsupported)
	}
	if !cmdletRE().MatchString(a.Cmdlet) {
		return plan{}, fmt.Errorf("%q is not a cmdlet name (Verb-Noun, letters and digits): %w", a.Cmdlet, executors.ErrUnsupported)
	}
	params := make(map[string]any, len(a.Args))
	for _, arg := range a.Args {
		if !paramRE().MatchString(arg.Name) {
			return plan{}, fmt.Errorf("%s: %q is not a parameter name: %w", a.Cmdlet, arg.Name, executors.ErrUnsupported)
		}
		v, err := argValue(arg.Value, 0)
		if err != nil {
			return plan{}, fmt.Errorf("%s -%s: %w", a.Cmdlet, arg.Name, err)
		}
		for k := range params {
			if strings.EqualFold(k, arg.Name) {
				return plan{}, fmt.Errorf("%s: parameter %s given twice: %w", a.Cmdlet, arg.Name, executors.ErrUnsupported)
			}
		}
		params[arg.Name] = v
	}
	verb, _, _ := strings.Cut(strings.ToLower(a.Cmdlet), "-")
	p := plan{Cmdlet: a.Cmdlet, Params: params, Select: a.Select,
		Idempotent: verb == "get" || verb == "test"}
	tenant := url.PathEscape(e.tenant)

	ep, covered := adminRoutes[strings.ToLower(a.Cmdlet)]
	var outside []string
	if covered {
		canon := make(map[string]any, len(params))
		for name, v := range params {
			i := indexFold(ep.Params, name)
			if i < 0 {
				outside = append(outside, name)
				continue
			}
			canon[ep.Params[i]] = v
		}
		if len(outside) == 0 {
			p.Route, p.Params = RouteAdminAPI, canon
			p.URL = e.ep.BaseURL + "/adminapi/v2.0/" + tenant + "/" + ep.Endpoint
			if len(a.Select) > 0 {
				// Property selection is documented for the Admin API; the rows
				// are still cut to the selection here, as on every route.
				p.URL += "?$select=" + url.QueryEscape(strings.Join(a.Select, ","))
			}
			p.Anchor = e.anchor(ep.Mailbox, canon["Identity"])
			return p, nil
		}
	}
	if !e.allowModule {
		why := "the Exchange Online Admin API has no endpoint for it"
		if covered {
			why = fmt.Sprintf("the Exchange Online Admin API's %s endpoint does not take %s", ep.Endpoint, strings.Join(outside, ", "))
		}
		return plan{}, fmt.Errorf("%s: %s; it needs the InvokeCommand endpoint of the Exchange Online PowerShell V3 module, "+
			"which Microsoft does not document for direct use: set targets.%s.allow_module_endpoint: true to allow it: %w",
			a.Cmdlet, why, e.name, ErrModuleEndpointOff)
	}
	p.Route = RouteInvokeCommand
	p.URL = e.ep.BaseURL + "/adminapi/beta/" + tenant + "/InvokeCommand"
	p.Anchor = e.anchor(false, nil)
	return p, nil
}

// anchor is the X-AnchorMailbox routing hint: the mailbox a mailbox request
// targets, else the organization's system mailbox.
func (e *Executor) anchor(mailbox bool, identity any) string {
	if id, ok := identity.(string); ok && mailbox {
		if m := smtpRE().FindStringSubmatch(id); m != nil {
			return "UPN:" + m[1]
		}
	}
	return "APP:" + systemMailbox + "@" + e.tenant
}

func indexFold(list []string, s string) int {
	for i, x := range list {
		if strings.EqualFold(x, s) {
			return i
		}
	}
	return -1
}

// argValue turns an argument into its JSON form: strings, numbers, booleans,
// null, lists, and times as ISO 8601 in UTC (how the parameter binder reads a
// DateTime given as text).
func argValue(v any, depth int) (any, error) {
	if depth > 4 {
		return nil, fmt.Errorf("nested too deeply: %w", executors.ErrUnsupported)
	}
	switch x := v.(type) {
	case nil, string, int64, float64, bool:
		return x, nil
	case int:
		return int64(x), nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	case []any:
		out := make([]any, len(x))
		for i, it := range x {
			var err error
			if out[i], err = argValue(it, depth+1); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("values of type %T cannot be passed: %w", v, executors.ErrUnsupported)
}
