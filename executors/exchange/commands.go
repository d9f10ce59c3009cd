// Package exchange describes the commands the playbooks run on Exchange servers:
// the Exchange Management Shell cmdlets reached over remote PowerShell (exchange
// targets, and a plain WinRM shell), and the few commands the JEA endpoint of
// deploy/jea exposes (jea targets) — each with its parameters and the properties
// of the objects it writes. It is data only: the psrp, winrm and lab executors
// put it in their kind descriptions, and the playbook linter reads it there.
//
// Sources. Parameters are Microsoft Learn's syntax blocks for each cmdlet
// (learn.microsoft.com/powershell/module/exchange/<cmdlet>); the lab simulates
// the same parameters (executors/lab/cmdlets.go, listing those it does not
// simulate). Properties are those of the objects the lab builds, which
// executors/lab/SOURCES.md traces to Learn's pages and to the Exchange
// Management Shell's Format-List output; a list is complete (AllFields) only
// where that source is the whole object. The JEA commands come from
// deploy/jea/NdrBot.psrc, which is the endpoint's definition.
//
// A lab test checks that every property the lab writes is described here, and
// that the lab takes no parameter a complete list lacks.
package exchange

import "github.com/ndrbot/ndrbot/executors"

// Exchange describes the Exchange cmdlets the playbooks use. The Exchange
// runspace has hundreds more; those are not described, and not checked.
func Exchange() []executors.Command {
	const learn = "Microsoft Learn, Exchange Server PowerShell reference: "
	return []executors.Command{
		{
			Name: "Get-Queue",
			Params: params(s("Identity"), s("Server"), s("Filter"), u("ResultSize"), s("BookmarkIndex"), s("BookmarkObject"),
				s("Exclude"), s("Include"), b("IncludeBookmark"), b("ReturnPageInfo"), b("SearchForward"), s("SortOrder")),
			AllParams: true,
			// Get-Queue | Format-List on Exchange 2013 and later: the whole
			// ExtensibleQueueInfo object (executors/lab/SOURCES.md).
			Fields: []string{"RunspaceId", "DeliveryType", "NextHopDomain", "TlsDomain", "NextHopConnector", "Status",
				"MessageCount", "LastError", "RetryCount", "LastRetryTime", "NextRetryTime", "FirstRetryTime",
				"DeferredMessageCount", "LockedMessageCount", "MessageCountsPerPriority", "DeferredMessageCountsPerPriority",
				"RiskLevel", "OutboundIPPool", "NextHopCategory", "IncomingRate", "OutgoingRate", "Velocity", "QueueIdentity",
				"PriorityDescriptions", "Identity", "IsValid", "ObjectState"},
			AllFields: true,
			Source:    learn + "Get-Queue",
		},
		{
			Name: "Get-Message",
			Params: params(s("Identity"), s("Queue"), s("Server"), s("Filter"), u("ResultSize"), b("IncludeRecipientInfo"),
				b("IncludeComponentLatencyInfo"), s("BookmarkIndex"), s("BookmarkObject"), b("IncludeBookmark"), b("ReturnPageInfo"),
				b("SearchForward"), s("SortOrder")),
			AllParams: true,
			// The ExtensibleMessageInfo properties the lab writes (executors/lab/
			// SOURCES.md); a real message carries more (Recipients, latencies …).
			Fields: []string{"RunspaceId", "FromAddress", "Status", "Size", "MessageSourceName", "SourceIP", "SCL",
				"DateReceived", "ExpirationTime", "LastError", "RetryCount", "Subject", "InternetMessageId", "Queue",
				"Identity", "IsValid", "ObjectState"},
			Source: learn + "Get-Message; Find messages in queues",
		},
		{
			Name: "Get-MessageTrackingLog",
			Params: params(s("Server"), t("Start"), t("End"), s("EventId"), s("Sender"), l("Recipients"), s("MessageId"),
				s("MessageSubject"), s("InternalMessageId"), s("NetworkMessageId"), s("Reference"), s("Source"),
				s("TransportTrafficType"), u("ResultSize"), s("DomainController")),
			AllParams: true,
			// The event's fields as "Search message tracking logs" lists them; a
			// real event carries a few more (NetworkMessageId, TenantId, …).
			Fields: []string{"RunspaceId", "Timestamp", "ClientIp", "ClientHostname", "ServerIp", "ServerHostname",
				"SourceContext", "ConnectorId", "Source", "EventId", "InternalMessageId", "MessageId", "Recipients",
				"RecipientStatus", "TotalBytes", "RecipientCount", "RelatedRecipientAddress", "Reference", "MessageSubject",
				"Sender", "ReturnPath", "Directionality", "MessageInfo", "MessageLatency", "MessageLatencyType"},
			Source: learn + "Get-MessageTrackingLog; Search message tracking logs",
		},
		{
			Name:      "Get-ServerComponentState",
			Params:    params(req(s("Identity")), s("Component"), s("DomainController")),
			AllParams: true,
			Fields: []string{"RunspaceId", "ServerFqdn", "Component", "State", "LocalStates", "RemoteStates", "Identity",
				"IsValid", "ObjectState"},
			AllFields: true,
			Source:    learn + "Get-ServerComponentState",
		},
		{
			Name:      "Get-TransportService",
			Params:    params(s("Identity"), s("DomainController")),
			AllParams: true,
			// A TransportServer has about a hundred properties; these are the
			// connection, retry and tracking settings the playbooks read.
			Fields: []string{"RunspaceId", "Name", "MaxOutboundConnections", "MaxPerDomainOutboundConnections",
				"MessageRetryInterval", "TransientFailureRetryInterval", "TransientFailureRetryCount",
				"OutboundConnectionFailureRetryInterval", "MessageExpirationTimeout", "DelayNotificationTimeout",
				"MaxConcurrentMailboxDeliveries", "MaxConcurrentMailboxSubmissions", "MaxConnectionRatePerMinute",
				"MessageTrackingLogEnabled", "MessageTrackingLogMaxAge", "Identity", "IsValid", "ObjectState"},
			Source: learn + "Get-TransportService, Set-TransportService",
		},
		{
			Name:      "Get-SendConnector",
			Params:    params(s("Identity"), s("DomainController")),
			AllParams: true,
			Fields: []string{"RunspaceId", "AddressSpaces", "CloudServicesMailEnabled", "ConnectionInactivityTimeOut",
				"DNSRoutingEnabled", "DomainSecureEnabled", "Enabled", "Fqdn", "FrontendProxyEnabled", "IgnoreSTARTTLS",
				"IsScopedConnector", "IsSmtpConnector", "MaxMessageSize", "Port", "RequireTLS", "SmartHostAuthMechanism",
				"SmartHosts", "SmartHostsString", "SmtpMaxMessagesPerConnection", "SourceIPAddress", "SourceTransportServers",
				"TlsAuthLevel", "TlsCertificateName", "TlsDomain", "UseExternalDNSServersEnabled", "Name", "Identity",
				"IsValid", "ObjectState"},
			Source: learn + "Get-SendConnector, Set-SendConnector",
		},
		{
			Name:      "Get-ReceiveConnector",
			Params:    params(s("Identity"), s("Server"), s("DomainController")),
			AllParams: true,
			Fields: []string{"RunspaceId", "AuthMechanism", "Bindings", "Enabled", "Fqdn", "MaxInboundConnectionPerSource",
				"MaxMessageSize", "MaxRecipientsPerMessage", "PermissionGroups", "RemoteIPRanges", "RequireTLS", "Server",
				"TlsCertificateName", "TransportRole", "Name", "Identity", "IsValid", "ObjectState"},
			Source: learn + "Get-ReceiveConnector",
		},
		{
			Name: "Get-Mailbox",
			Params: params(s("Identity"), u("ResultSize"), s("Filter"), s("Anr"), s("Database"), s("Server"),
				s("RecipientTypeDetails"), s("DomainController")),
			Fields: []string{"RunspaceId", "Database", "ServerName", "ThrottlingPolicy", "RecipientLimits", "MaxSendSize",
				"Alias", "DisplayName", "EmailAddresses", "PrimarySmtpAddress", "RecipientTypeDetails", "Name", "Identity",
				"IsValid", "ObjectState"},
			Source: learn + "Get-Mailbox",
		},
		{
			Name:   "Get-ThrottlingPolicy",
			Params: params(s("Identity"), s("DomainController")),
			Fields: []string{"RunspaceId", "IsLegacyDefault", "ThrottlingPolicyScope", "IsServiceAccount", "RecipientRateLimit",
				"MessageRateLimit", "ForwardeeLimit", "Diagnostics", "Name", "Identity", "IsValid", "ObjectState"},
			Source: learn + "Get-ThrottlingPolicy; New-ThrottlingPolicy (scopes)",
		},
		{
			Name:   "Get-ThrottlingPolicyAssociation",
			Params: params(s("Identity"), u("ResultSize"), s("DomainController")),
			Fields: []string{"RunspaceId", "ObjectId", "ThrottlingPolicyId", "Name", "Identity", "IsValid", "ObjectState"},
			Source: learn + "Get-ThrottlingPolicyAssociation",
		},
		{
			Name:   "Get-AcceptedDomain",
			Params: params(s("Identity"), s("DomainController")),
			Fields: []string{"RunspaceId", "DomainName", "DomainType", "Default", "AddressBookEnabled", "MatchSubDomains",
				"Name", "Identity", "IsValid", "ObjectState"},
			Source: learn + "Get-AcceptedDomain",
		},
		{
			Name: "Get-ExchangeCertificate",
			Params: params(s("Identity"), s("Thumbprint"), s("Server"), l("DomainName"), s("Instance"),
				s("DomainController")),
			AllParams: true,
			// The properties Learn lists for | Format-List (and Identity,
			// FriendlyName of | Format-List *): the ones the lab writes.
			Fields: []string{"RunspaceId", "AccessRules", "CertificateDomains", "HasPrivateKey", "IsSelfSigned", "Issuer",
				"NotAfter", "NotBefore", "PublicKeySize", "RootCAType", "SerialNumber", "Services", "Status", "Subject",
				"Thumbprint", "FriendlyName", "Identity"},
			Source: learn + "Get-ExchangeCertificate",
		},
		{
			Name:      "Get-ExchangeServer",
			Params:    params(s("Identity"), s("Domain"), b("Status"), s("DomainController")),
			AllParams: true,
			Fields: []string{"RunspaceId", "Name", "Fqdn", "Domain", "Site", "ServerRole", "Edition", "AdminDisplayVersion",
				"IsHubTransportServer", "IsMailboxServer", "IsEdgeServer", "IsExchangeTrialEdition", "Identity", "IsValid",
				"ObjectState"},
			Source: learn + "Get-ExchangeServer",
		},
		{
			Name: "Test-Mailflow",
			Params: params(s("Identity"), s("TargetEmailAddress"), i("ExecutionTimeout"), s("TargetMailboxServer"),
				s("TargetDatabase"), b("AutoDiscoverTargetMailboxServer"), b("CrossPremises"), i("CrossPremisesExpirationTimeout"),
				i("CrossPremisesPendingErrorCount"), i("ErrorLatency"), i("ActiveDirectoryTimeout"), b("MonitoringContext"),
				s("TargetEmailAddressDisplayName"), s("DomainController")),
			AllParams: true,
			// Exchange 2013 SDK reference, TestMailflowOutput class.
			Fields: []string{"RunspaceId", "TestMailflowResult", "MessageLatencyTime", "IsRemoteTest", "Identity", "IsValid",
				"ObjectState"},
			Source: learn + "Test-Mailflow; Exchange 2013 SDK, TestMailflowOutput",
		},

		// Reliefs. Each writes nothing (a readback reads the result).
		{
			Name:      "Retry-Queue",
			Params:    params(s("Identity"), s("Filter"), s("Server"), b("Resubmit")),
			AllParams: true,
			OneOf:     [][]string{{"Identity", "Filter"}},
			Source:    learn + "Retry-Queue",
		},
		{
			Name:      "Suspend-Queue",
			Params:    params(s("Identity"), s("Filter"), s("Server")),
			AllParams: true,
			OneOf:     [][]string{{"Identity", "Filter"}},
			Source:    learn + "Suspend-Queue",
		},
		{
			Name:      "Resume-Queue",
			Params:    params(s("Identity"), s("Filter"), s("Server")),
			AllParams: true,
			OneOf:     [][]string{{"Identity", "Filter"}},
			Source:    learn + "Resume-Queue",
		},
		{
			Name: "Set-ServerComponentState",
			Params: params(req(s("Identity")), req(s("Component")), req(s("State")), req(s("Requester")), ts("Duration"),
				b("LocalOnly"), b("RemoteOnly"), s("DomainController")),
			AllParams: true,
			Source:    learn + "Set-ServerComponentState",
		},
		{
			// Set-ThrottlingPolicy and Set-TransportService take far more
			// parameters than are listed: only Identity is checked.
			Name: "Set-ThrottlingPolicy",
			Params: params(req(s("Identity")), u("RecipientRateLimit"), u("MessageRateLimit"), u("ForwardeeLimit"),
				s("DomainController")),
			Source: learn + "Set-ThrottlingPolicy",
		},
		{
			// Set-SendConnector takes far more parameters: only those a
			// playbook sets are listed.
			Name:   "Set-SendConnector",
			Params: params(req(s("Identity")), s("TlsCertificateName"), s("DomainController")),
			Source: learn + "Set-SendConnector",
		},
		{
			// Set-ReceiveConnector likewise: only what a playbook sets.
			Name:   "Set-ReceiveConnector",
			Params: params(req(s("Identity")), s("TlsCertificateName"), s("DomainController")),
			Source: learn + "Set-ReceiveConnector",
		},
		{
			Name: "Set-TransportService",
			Params: params(req(s("Identity")), u("MaxOutboundConnections"), u("MaxPerDomainOutboundConnections"),
				ts("MessageRetryInterval"), ts("TransientFailureRetryInterval"), i("TransientFailureRetryCount"),
				ts("OutboundConnectionFailureRetryInterval"), ts("MessageExpirationTimeout"), ts("DelayNotificationTimeout"),
				i("MaxConcurrentMailboxDeliveries"), i("MaxConcurrentMailboxSubmissions"), i("MaxConnectionRatePerMinute"),
				s("DomainController")),
			Source: learn + "Set-TransportService",
		},
	}
}

// JEA describes the commands the JEA endpoint of deploy/jea exposes
// (NdrBot.psrc: VisibleCmdlets with the only parameter each may take, and the
// Test-NdrSmtpPort function). An endpoint a site extends has more; those are not
// checked.
func JEA() []executors.Command {
	const psrc = "deploy/jea/NdrBot.psrc"
	return []executors.Command{
		{
			// VisibleCmdlets: Restart-Service with -Name only (ValidateSet
			// MSExchangeTransport); no -Force, no -PassThru.
			Name:      "Restart-Service",
			Params:    params(req(l("Name"))),
			AllParams: true,
			Source:    psrc,
		},
		{
			Name:      "Get-Service",
			Params:    params(l("Name")),
			AllParams: true,
			Fields:    serviceFields(),
			AllFields: true,
			Source:    psrc + "; System.ServiceProcess.ServiceController as Windows PowerShell 5.1 writes it",
		},
		{
			// The function's param() block and the [ordered] result it writes.
			Name:      "Test-NdrSmtpPort",
			Params:    params(req(s("RemoteHost")), i("Port"), i("TimeoutSeconds")),
			AllParams: true,
			Fields:    []string{"ComputerName", "RemoteHost", "RemotePort", "TcpSucceeded", "Banner", "LatencyMs", "Error"},
			AllFields: true,
			Source:    psrc + " (FunctionDefinitions)",
		},
	}
}

// Windows describes the Windows cmdlets a plain WinRM shell runs for the
// playbooks, with every parameter of their Windows PowerShell 5.1 syntax.
func Windows() []executors.Command {
	const learn = "Microsoft Learn, Microsoft.PowerShell.Management 5.1: "
	return []executors.Command{
		{
			Name: "Restart-Service",
			Params: params(l("Name"), l("DisplayName"), s("InputObject"), l("Include"), l("Exclude"), b("Force"),
				b("PassThru")),
			AllParams: true,
			OneOf:     [][]string{{"Name", "DisplayName", "InputObject"}},
			Source:    learn + "Restart-Service",
		},
		{
			Name: "Get-Service",
			Params: params(l("Name"), l("DisplayName"), s("InputObject"), l("ComputerName"), b("DependentServices"),
				b("RequiredServices"), l("Include"), l("Exclude")),
			AllParams: true,
			Fields:    serviceFields(),
			AllFields: true,
			Source:    learn + "Get-Service",
		},
	}
}

// serviceFields are a ServiceController's properties with the alias properties
// Windows PowerShell 5.1 adds (Name, RequiredServices): Get-Service | Get-Member.
func serviceFields() []string {
	return []string{"Name", "RequiredServices", "CanPauseAndContinue", "CanShutdown", "CanStop", "Container",
		"DependentServices", "DisplayName", "MachineName", "ServiceHandle", "ServiceName", "ServicesDependedOn",
		"ServiceType", "Site", "StartType", "Status"}
}

func params(ps ...executors.Param) []executors.Param { return ps }

func req(p executors.Param) executors.Param { p.Required = true; return p }

func s(name string) executors.Param  { return executors.Param{Name: name, Type: "string"} }
func l(name string) executors.Param  { return executors.Param{Name: name, Type: "list"} }
func i(name string) executors.Param  { return executors.Param{Name: name, Type: "int"} }
func b(name string) executors.Param  { return executors.Param{Name: name, Type: "bool"} }
func t(name string) executors.Param  { return executors.Param{Name: name, Type: "time"} }
func u(name string) executors.Param  { return executors.Param{Name: name, Type: "unlimited"} }
func ts(name string) executors.Param { return executors.Param{Name: name, Type: "timespan"} }
