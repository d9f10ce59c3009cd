package lab

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/psobj"
)

// The cmdlet path: a playbook step names one command and typed arguments; the
// lab binds them as PowerShell does (case-insensitive names, unambiguous
// prefixes, type conversion, mandatory parameters) and answers from the
// organisation with objects shaped as Exchange's arrive over remote PowerShell.
// A typo in a playbook fails here as it would on a server.

// CmdletError is a PowerShell error record as the lab raises it.
type CmdletError struct {
	Command string
	Message string
	// Category and ErrorID are the record's CategoryInfo reason and
	// FullyQualifiedErrorId, as a real server reports them.
	Category string
	ErrorID  string
}

func (e *CmdletError) Error() string { return e.Message }

// CategoryName is the error record's category ("ObjectNotFound").
func (e *CmdletError) CategoryName() string {
	name, _, _ := strings.Cut(e.Category, ":")
	return strings.TrimSpace(name)
}

// Record prints the error as PowerShell's console host does.
func (e *CmdletError) Record() string {
	return fmt.Sprintf("%s : %s\n    + CategoryInfo          : %s\n    + FullyQualifiedErrorId : %s",
		e.Command, e.Message, e.Category, e.ErrorID)
}

func cmdletErr(cmd, category, id, format string, args ...any) *CmdletError {
	return &CmdletError{Command: cmd, Message: fmt.Sprintf(format, args...), Category: category, ErrorID: id}
}

// notFound is Exchange's ManagementObjectNotFoundException.
func (c *call) notFound(id string) *CmdletError {
	return cmdletErr(c.cmd.name, "NotSpecified: (:) [], ManagementObjectNotFoundException", "[Server="+c.local.name+"]",
		"The operation couldn't be performed because object '%s' couldn't be found on '%s'.", id, c.o.dc)
}

// kindOf is what a parameter takes.
type kindOf int

const (
	kString kindOf = iota
	kStrings
	kInt
	kUnlimited // Unlimited<int>: a number, "Unlimited" or $null
	kTime
	kSpan // EnhancedTimeSpan: "00:05:00"
	kBool // also switches
)

var kindType = map[kindOf]string{kString: "System.String", kStrings: "System.String[]", kInt: "System.Int32",
	kUnlimited: "Microsoft.Exchange.Data.Unlimited`1[System.Int32]", kTime: "System.DateTime",
	kSpan: "Microsoft.Exchange.Data.EnhancedTimeSpan", kBool: "System.Management.Automation.SwitchParameter"}

type param struct {
	name      string
	kind      kindOf
	mandatory bool
}

// cmdlet is one simulated command.
type cmdlet struct {
	name string
	// jea: the command lives on the JEA endpoint, not in Exchange's runspace.
	jea    bool
	params []param
	// unsimulated are real parameters the lab does not simulate: refused with a
	// message saying so rather than PowerShell's "cannot be found".
	unsimulated []string
	run         func(c *call) ([]any, error)
}

// commonParams are PowerShell's common parameters: accepted and ignored.
var commonParams = []string{"Verbose", "Debug", "ErrorAction", "WarningAction", "InformationAction", "ErrorVariable",
	"WarningVariable", "InformationVariable", "OutVariable", "OutBuffer", "PipelineVariable", "Confirm", "WhatIf",
	"DomainController"}

// call is one cmdlet invocation.
type call struct {
	o     *org
	cmd   *cmdlet
	local *server // the server the command runs on
	args  map[string]any
	now   time.Time
	warn  []string
}

func (c *call) str(name string) string { s, _ := c.args[name].(string); return s }
func (c *call) has(name string) bool   { _, ok := c.args[name]; return ok }

// cmdlets lists the simulated commands.
func cmdlets() []*cmdlet {
	s := func(name string) param { return param{name: name, kind: kString} }
	must := func(pr param) param { pr.mandatory = true; return pr }
	k := func(name string, kind kindOf) param { return param{name: name, kind: kind} }
	return []*cmdlet{
		{name: "Get-Queue", params: []param{s("Server"), s("Identity"), k("ResultSize", kUnlimited)},
			unsimulated: []string{"Filter", "Include", "Exclude", "BookmarkIndex", "BookmarkObject", "IncludeBookmark", "ReturnPageInfo", "SearchForward", "SortOrder"},
			run:         getQueue},
		{name: "Get-Message", params: []param{s("Server"), s("Queue"), s("Identity"), k("ResultSize", kUnlimited)},
			unsimulated: []string{"Filter", "IncludeRecipientInfo", "IncludeComponentLatencyInfo", "BookmarkIndex", "BookmarkObject",
				"IncludeBookmark", "ReturnPageInfo", "SearchForward", "SortOrder"},
			run: getMessage},
		{name: "Get-MessageTrackingLog", params: []param{s("Server"), k("Start", kTime), k("End", kTime), s("EventId"), s("Sender"),
			k("Recipients", kStrings), s("MessageId"), s("MessageSubject"), k("ResultSize", kUnlimited)},
			unsimulated: []string{"InternalMessageId", "NetworkMessageId", "Reference", "Source", "TransportTrafficType"},
			run:         getMessageTrackingLog},
		{name: "Get-ServerComponentState", params: []param{must(s("Identity")), s("Component")}, run: getServerComponentState},
		{name: "Get-TransportService", params: []param{s("Identity")}, run: getTransportService},
		{name: "Get-SendConnector", params: []param{s("Identity")}, run: getSendConnector},
		{name: "Get-ReceiveConnector", params: []param{s("Identity"), s("Server")}, run: getReceiveConnector},
		{name: "Get-Mailbox", params: []param{s("Identity"), k("ResultSize", kUnlimited)},
			unsimulated: []string{"Filter", "Anr", "Database", "Server", "RecipientTypeDetails"}, run: getMailbox},
		{name: "Get-ThrottlingPolicy", params: []param{s("Identity")}, run: getThrottlingPolicy},
		{name: "Get-ThrottlingPolicyAssociation", params: []param{s("Identity"), k("ResultSize", kUnlimited)}, run: getThrottlingPolicyAssociation},
		{name: "Get-AcceptedDomain", params: []param{s("Identity")}, run: getAcceptedDomain},
		{name: "Get-ExchangeCertificate", params: []param{s("Identity"), s("Thumbprint"), s("Server"), k("DomainName", kStrings)},
			unsimulated: []string{"Instance"}, run: getExchangeCertificate},
		{name: "Get-ExchangeServer", params: []param{s("Identity")}, unsimulated: []string{"Status", "Domain"}, run: getExchangeServer},
		{name: "Test-Mailflow", params: []param{s("Identity"), s("TargetEmailAddress"), k("ExecutionTimeout", kInt)},
			unsimulated: []string{"TargetMailboxServer", "TargetDatabase", "AutoDiscoverTargetMailboxServer", "CrossPremises",
				"CrossPremisesExpirationTimeout", "CrossPremisesPendingErrorCount", "ErrorLatency", "ActiveDirectoryTimeout",
				"MonitoringContext", "TargetEmailAddressDisplayName"},
			run: testMailflow},

		{name: "Get-Service", jea: true, params: []param{k("Name", kStrings)}, run: getService},
		{name: "Restart-Service", jea: true, params: []param{must(k("Name", kStrings)), k("Force", kBool), k("PassThru", kBool)}, run: restartService},
		{name: "Test-NdrSmtpPort", jea: true, params: []param{must(s("RemoteHost")), k("Port", kInt)}, run: testSmtpPort},

		{name: "Retry-Queue", params: []param{must(s("Identity")), k("Resubmit", kBool)}, unsimulated: []string{"Filter", "Server"}, run: retryQueue},
		{name: "Suspend-Queue", params: []param{must(s("Identity"))}, unsimulated: []string{"Filter", "Server"}, run: suspendQueue},
		{name: "Resume-Queue", params: []param{must(s("Identity"))}, unsimulated: []string{"Filter", "Server"}, run: resumeQueue},
		{name: "Set-ThrottlingPolicy", params: []param{must(s("Identity")), k("RecipientRateLimit", kUnlimited),
			k("MessageRateLimit", kUnlimited), k("ForwardeeLimit", kUnlimited)}, run: setThrottlingPolicy},
		{name: "Set-TransportService", params: []param{must(s("Identity")), k("MaxOutboundConnections", kUnlimited),
			k("MaxPerDomainOutboundConnections", kUnlimited), k("MessageRetryInterval", kSpan), k("TransientFailureRetryInterval", kSpan),
			k("TransientFailureRetryCount", kInt), k("OutboundConnectionFailureRetryInterval", kSpan), k("MessageExpirationTimeout", kSpan),
			k("DelayNotificationTimeout", kSpan), k("MaxConcurrentMailboxDeliveries", kInt), k("MaxConcurrentMailboxSubmissions", kInt),
			k("MaxConnectionRatePerMinute", kInt)}, run: setTransportService},
		{name: "Set-SendConnector", params: []param{must(s("Identity")), s("TlsCertificateName")}, run: setSendConnector},
		{name: "Set-ReceiveConnector", params: []param{must(s("Identity")), s("TlsCertificateName")}, run: setReceiveConnector},
		{name: "Set-ServerComponentState", params: []param{must(s("Identity")), must(s("Component")), must(s("State")), must(s("Requester")),
			k("Duration", kSpan), k("LocalOnly", kBool), k("RemoteOnly", kBool)}, run: setServerComponentState},
	}
}

func findCmdlet(name string) *cmdlet {
	for _, c := range cmdlets() {
		if strings.EqualFold(c.name, name) {
			return c
		}
	}
	return nil
}

// available reports whether a target kind's runspace exposes the command: the
// Exchange runspace has Exchange's cmdlets, the JEA endpoint only its own; the
// lab's own kinds (winrm, lab) have both.
func (c *cmdlet) available(kind string) bool {
	switch kind {
	case "exchange":
		return !c.jea
	case "jea":
		return c.jea
	}
	return true
}

// notRecognized is PowerShell's CommandNotFoundException.
func notRecognized(name string) *CmdletError {
	return cmdletErr(name, fmt.Sprintf("ObjectNotFound: (%s:String) [], CommandNotFoundException", name), "CommandNotFoundException",
		"The term '%s' is not recognized as the name of a cmdlet, function, script file, or operable program. "+
			"Check the spelling of the name, or if a path was included, verify that the path is correct and try again.", name)
}

// noLanguage is what a no-language runspace (Exchange's, a JEA endpoint) says
// to script text.
func noLanguage() *CmdletError {
	return cmdletErr("", "ParserError: (:) [], ParseException", "ScriptsNotAllowed",
		"The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode.")
}

// bind maps the action's arguments onto the command's parameters.
func (c *cmdlet) bind(args []executors.Arg) (map[string]any, error) {
	out := map[string]any{}
	names := make([]string, 0, len(c.params)+len(commonParams)+len(c.unsimulated))
	for _, pr := range c.params {
		names = append(names, pr.name)
	}
	names = append(names, c.unsimulated...)
	names = append(names, commonParams...)
	for _, a := range args {
		name := strings.TrimPrefix(a.Name, "-")
		matched, err := c.resolve(name, names)
		if err != nil {
			return nil, err
		}
		if _, dup := out[matched]; dup {
			return nil, cmdletErr(c.name, "InvalidArgument: (:) [], ParameterBindingException", "ParameterAlreadyBound,"+c.name,
				"Cannot bind parameter because parameter '%s' is specified more than once.", matched)
		}
		if slices.Contains(c.unsimulated, matched) {
			return nil, cmdletErr(c.name, "NotImplemented: (:) [], NotSupportedException", "LabUnsimulatedParameter,"+c.name,
				"The lab does not simulate parameter '%s' of %s; select and filter rows in the playbook's rules instead.", matched, c.name)
		}
		i := slices.IndexFunc(c.params, func(pr param) bool { return pr.name == matched })
		if i < 0 { // a common parameter
			out[matched] = a.Value
			continue
		}
		v, err := convert(c.name, c.params[i], a.Value)
		if err != nil {
			return nil, err
		}
		out[matched] = v
	}
	var missing []string
	for _, pr := range c.params {
		if _, ok := out[pr.name]; pr.mandatory && !ok {
			missing = append(missing, pr.name)
		}
	}
	if len(missing) > 0 {
		return nil, cmdletErr(c.name, "InvalidArgument: (:) [], ParameterBindingException", "MissingMandatoryParameter,"+c.name,
			"Cannot process command because of one or more missing mandatory parameters: %s.", strings.Join(missing, " "))
	}
	return out, nil
}

// resolve finds a parameter by its name or an unambiguous prefix, ignoring case.
func (c *cmdlet) resolve(name string, names []string) (string, error) {
	var prefixed []string
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return n, nil
		}
		if name != "" && len(name) < len(n) && strings.EqualFold(n[:len(name)], name) {
			prefixed = append(prefixed, n)
		}
	}
	switch len(prefixed) {
	case 1:
		return prefixed[0], nil
	case 0:
		return "", cmdletErr(c.name, "InvalidArgument: (:) [], ParameterBindingException", "NamedParameterNotFound,"+c.name,
			"A parameter cannot be found that matches parameter name '%s'.", name)
	}
	return "", cmdletErr(c.name, "InvalidArgument: (:) [], ParameterBindingException", "AmbiguousParameter,"+c.name,
		"Parameter cannot be processed because the parameter name '%s' is ambiguous. Possible matches include: -%s.",
		name, strings.Join(prefixed, " -"))
}

// convert turns an argument into the parameter's type as PowerShell's binder
// would: numbers from strings, "Unlimited", times from ISO 8601 text.
func convert(cmd string, pr param, v any) (any, error) {
	bad := func() error {
		return cmdletErr(cmd, "InvalidArgument: (:) [], ParameterBindingException", "CannotConvertArgumentNoMessage,"+cmd,
			"Cannot bind parameter '%s'. Cannot convert value \"%v\" to type \"%s\".", pr.name, v, kindType[pr.kind])
	}
	switch pr.kind {
	case kString:
		switch x := v.(type) {
		case string:
			return x, nil
		case int64, float64, bool:
			return fmt.Sprint(x), nil
		case []any:
			if len(x) == 1 {
				return convert(cmd, pr, x[0])
			}
		}
		return nil, bad()
	case kStrings:
		switch x := v.(type) {
		case string:
			return []string{x}, nil
		case []any:
			var out []string
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, bad()
				}
				out = append(out, s)
			}
			return out, nil
		}
		return nil, bad()
	case kInt:
		if n, ok := integer(v); ok {
			return n, nil
		}
		return nil, bad()
	case kUnlimited:
		if v == nil {
			return (*int64)(nil), nil
		}
		if s, ok := v.(string); ok && strings.EqualFold(s, "Unlimited") {
			return (*int64)(nil), nil
		}
		if n, ok := integer(v); ok && n >= 0 {
			return &n, nil
		}
		return nil, bad()
	case kTime:
		switch x := v.(type) {
		case time.Time:
			return x, nil
		case string:
			for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
				if t, err := time.Parse(layout, x); err == nil {
					return t, nil
				}
			}
		}
		return nil, bad()
	case kSpan:
		if s, ok := v.(string); ok {
			if d, ok := psobj.ParseTimeSpan(s); ok {
				return d, nil
			}
		}
		return nil, bad()
	case kBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, bad()
	}
	return nil, bad()
}

func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case float64:
		if x == float64(int64(x)) {
			return int64(x), true
		}
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// limit applies -ResultSize: Exchange's default page is 1000 items, with a
// warning when more exist.
func (c *call) limit(items []any) []any {
	size, explicit := c.args["ResultSize"]
	n := int64(1000)
	if explicit {
		p, _ := size.(*int64)
		if p == nil {
			return items
		}
		n = *p
	}
	if int64(len(items)) <= n {
		return items
	}
	if !explicit {
		c.warn = append(c.warn, "WARNING: By default, only the first 1000 items are returned. Use the ResultSize parameter to specify the number of items returned. To return all items, specify \"-ResultSize Unlimited\".")
	}
	return items[:n]
}

// serverByID finds a server by name or FQDN.
func (o *org) serverByID(id string) *server {
	for _, s := range o.servers {
		if strings.EqualFold(s.name, id) || strings.EqualFold(s.host, id) {
			return s
		}
	}
	return nil
}

// run answers one cmdlet on the server host.
func (o *org) runCmdlet(host, kind string, a executors.Action) (items []any, warnings []string, err error) {
	cmd := findCmdlet(a.Cmdlet)
	if cmd == nil || !cmd.available(kind) {
		return nil, nil, notRecognized(a.Cmdlet)
	}
	s := o.server(host)
	if s == nil {
		return nil, nil, fmt.Errorf("%s is not an Exchange server of the lab", host)
	}
	args, err := cmd.bind(a.Args)
	if err != nil {
		return nil, nil, err
	}
	c := &call{o: o, cmd: cmd, local: s, args: args, now: o.now().UTC().Truncate(time.Millisecond)}
	if b, _ := args["WhatIf"].(bool); b && strings.Contains("Set-Retry-Suspend-Resume-Restart-", strings.SplitN(cmd.name, "-", 2)[0]+"-") {
		return nil, []string{"What if: " + cmd.name + " (the lab changed nothing)"}, nil
	}
	items, err = cmd.run(c)
	return items, c.warn, err
}
