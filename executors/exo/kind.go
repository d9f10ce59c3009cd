package exo

import (
	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
)

// Describe is the exo kind: Exchange Online cmdlet steps (no scripts, no
// checks), over the Admin API or, where a target allows it, the module's
// InvokeCommand endpoint.
func Describe() executors.Kind {
	return executors.Kind{
		Name:     config.KindEXO,
		Config:   Config(),
		Cmdlets:  true,
		Commands: Commands(),
		New: func(name string, t config.Target, env executors.Env) (executors.Executor, error) {
			var opts []Option
			if env.Log != nil {
				opts = append(opts, WithLogger(env.Log))
			}
			if env.Dial != nil {
				opts = append(opts, WithDialer(env.Dial))
			}
			if f := env.RetriedBy(config.KindEXO); f != nil {
				opts = append(opts, WithRetried(f))
			}
			return New(name, t, opts...)
		},
	}
}

// Commands describes the Exchange Online cmdlets the playbooks read. Parameters
// are Microsoft Learn's syntax for Exchange Online
// (learn.microsoft.com/powershell/module/exchangepowershell/<cmdlet>), the few
// the playbooks need (the set is open: AllParams is false). Fields are the
// properties known to exist — Learn's examples and the Admin API endpoint pages,
// and for message trace a row captured from a tenant (testdata/README.md) — plus
// RouteField, which every exo row carries. The cmdlets the Admin API covers say
// so in Source; the others need allow_module_endpoint.
func Commands() []executors.Command {
	const (
		learn = "Microsoft Learn, Exchange Online PowerShell: "
		admin = "; Admin API endpoint "
	)
	id := []string{"Identity", "Name", "Guid", "IsValid"}
	return []executors.Command{
		{
			Name:   "Get-AcceptedDomain",
			Params: params(s("Identity"), u("ResultSize")),
			Fields: fields([]string{"DomainName", "DomainType", "Default", "MatchSubDomains", "AddressBookEnabled",
				"AuthenticationType", "SendingFromDomainDisabled", "EmailOnly"}, id),
			Source: learn + "Get-AcceptedDomain" + admin + "AcceptedDomain (learn.microsoft.com/exchange/reference/admin-api-endpoints-accepted-domain)",
		},
		{
			Name:   "Get-OrganizationConfig",
			Params: nil,
			Fields: fields([]string{"Id", "MailTipsAllTipsEnabled", "MailTipsExternalRecipientsTipsEnabled",
				"MailTipsLargeAudienceThreshold", "MailTipsGroupMetricsEnabled", "MailTipsMailboxSourcedTipsEnabled"}, id),
			Source: learn + "Get-OrganizationConfig" + admin + "OrganizationConfig, response overview (learn.microsoft.com/exchange/reference/admin-api-endpoints-organization-config)",
		},
		{
			Name: "Get-Mailbox",
			Params: params(s("Identity"), u("ResultSize"), b("IncludeGrantSendOnBehalfToWithDisplayNames"), s("Filter"),
				s("Anr"), l("RecipientTypeDetails")),
			Fields: fields([]string{"Alias", "DisplayName", "PrimarySmtpAddress", "EmailAddresses", "RecipientTypeDetails",
				"UserPrincipalName", "GrantSendOnBehalfTo", "ForwardingSmtpAddress", "DeliverToMailboxAndForward",
				"ProhibitSendQuota", "ProhibitSendReceiveQuota", "IssueWarningQuota", "MaxSendSize", "MaxReceiveSize",
				"RecipientLimits", "ThrottlingPolicy", "AccountDisabled", "WhenCreated", "WhenChanged"}, id),
			Source: learn + "Get-Mailbox" + admin + "Mailbox (learn.microsoft.com/exchange/reference/admin-api-endpoints-mailbox): Identity, ResultSize, IncludeGrantSendOnBehalfToWithDisplayNames",
		},
		{
			Name:   "Get-MailboxFolderPermission",
			Params: params(req(s("Identity")), s("User")),
			Fields: fields([]string{"FolderName", "User", "AccessRights", "SharingPermissionFlags"}, []string{"Identity", "IsValid"}),
			Source: learn + "Get-MailboxFolderPermission" + admin + "MailboxFolderPermission",
		},
		{
			Name:   "Get-DistributionGroupMember",
			Params: params(req(s("Identity")), u("ResultSize")),
			Fields: fields([]string{"DisplayName", "PrimarySmtpAddress", "RecipientType", "RecipientTypeDetails", "Alias"}, id),
			Source: learn + "Get-DistributionGroupMember" + admin + "DistributionGroupMember",
		},
		{
			Name:   "Get-DynamicDistributionGroupMember",
			Params: params(req(s("Identity")), u("ResultSize")),
			Fields: fields([]string{"DisplayName", "PrimarySmtpAddress", "RecipientType", "RecipientTypeDetails", "Alias"}, id),
			Source: learn + "Get-DynamicDistributionGroupMember" + admin + "DynamicDistributionGroupMember",
		},

		// InvokeCommand only (allow_module_endpoint).
		{
			Name: "Get-MessageTraceV2",
			Params: params(t("StartDate"), t("EndDate"), s("SenderAddress"), l("RecipientAddress"), s("MessageId"),
				s("MessageTraceId"), l("Status"), s("FromIP"), s("ToIP"), s("Subject"), s("SubjectFilterType"), i("ResultSize"),
				s("StartingRecipientAddress")),
			// The twelve keys of a captured row, less its two type annotations.
			Fields:    fields([]string{"MessageTraceId", "MessageId", "Received", "SenderAddress", "RecipientAddress", "FromIP", "ToIP", "Subject", "Status", "Size"}, nil),
			AllFields: true,
			Source:    learn + "Get-MessageTraceV2; a captured InvokeCommand row (testdata/README.md)",
		},
		{
			Name:   "Get-MessageTraceDetailV2",
			Params: params(req(s("MessageTraceId")), req(s("RecipientAddress")), l("Action"), l("Event"), t("StartDate"), t("EndDate")),
			Fields: fields([]string{"Date", "Event", "Action", "Detail", "Data", "MessageTraceId", "MessageId"}, nil),
			Source: learn + "Get-MessageTraceDetailV2",
		},
		{
			Name:   "Get-InboundConnector",
			Params: params(s("Identity")),
			Fields: fields([]string{"Enabled", "ConnectorType", "ConnectorSource", "SenderDomains", "SenderIPAddresses",
				"RequireTls", "RestrictDomainsToCertificate", "RestrictDomainsToIPAddresses", "TlsSenderCertificateName",
				"CloudServicesMailEnabled", "TreatMessagesAsInternal", "WhenChanged"}, id),
			Source: learn + "Get-InboundConnector, New-InboundConnector",
		},
		{
			Name:   "Get-OutboundConnector",
			Params: params(s("Identity"), b("IncludeTestModeConnectors")),
			Fields: fields([]string{"Enabled", "ConnectorType", "ConnectorSource", "RecipientDomains", "SmartHosts", "UseMXRecord",
				"TlsSettings", "TlsDomain", "IsTransportRuleScoped", "RouteAllMessagesViaOnPremises", "CloudServicesMailEnabled",
				"AllAcceptedDomains", "WhenChanged"}, id),
			Source: learn + "Get-OutboundConnector, New-OutboundConnector",
		},
		{
			// SMTP AUTH client submission per mailbox: $null follows the tenant's
			// Get-TransportConfig (Learn "Enable or disable authenticated client
			// SMTP submission (SMTP AUTH) in Exchange Online").
			Name:   "Get-CASMailbox",
			Params: params(s("Identity"), u("ResultSize")),
			Fields: fields([]string{"PrimarySmtpAddress", "DisplayName", "SmtpClientAuthenticationDisabled"}, id),
			Source: learn + "Get-CASMailbox, Set-CASMailbox (SmtpClientAuthenticationDisabled)",
		},
		{
			Name:   "Get-TransportConfig",
			Params: nil,
			Fields: fields([]string{"SmtpClientAuthenticationDisabled"}, []string{"Identity", "Name", "IsValid"}),
			Source: learn + "Get-TransportConfig, Set-TransportConfig (SmtpClientAuthenticationDisabled)",
		},
		{
			Name:   "Get-BlockedSenderAddress",
			Params: params(s("SenderAddress")),
			Fields: fields([]string{"SenderAddress", "Reason", "BlockType", "CreatedDatetime", "ChangedDatetime", "TemporaryBlock", "ExpireDatetime"}, nil),
			Source: learn + "Get-BlockedSenderAddress",
		},
		{
			Name:   "Get-HostedOutboundSpamFilterPolicy",
			Params: params(s("Identity")),
			Fields: fields([]string{"RecipientLimitExternalPerHour", "RecipientLimitInternalPerHour", "RecipientLimitPerDay",
				"ActionWhenThresholdReached", "AutoForwardingMode", "BccSuspiciousOutboundMail", "NotifyOutboundSpam",
				"IsDefault", "WhenChanged"}, id),
			Source: learn + "Get-HostedOutboundSpamFilterPolicy, Set-HostedOutboundSpamFilterPolicy",
		},
		{
			Name:   "Get-DkimSigningConfig",
			Params: params(s("Identity")),
			Fields: fields([]string{"Domain", "Enabled", "Status", "Selector1CNAME", "Selector2CNAME", "Selector1KeySize",
				"Selector2KeySize", "KeyCreationTime", "LastChecked", "RotateOnDate", "SelectorBeforeRotateOnDate",
				"SelectorAfterRotateOnDate"}, id),
			Source: learn + "Get-DkimSigningConfig; a captured InvokeCommand row (testdata/README.md)",
		},
	}
}

// fields joins a command's own properties, the shared identity ones and RouteField.
func fields(own, shared []string) []string {
	out := append(append([]string{}, own...), shared...)
	return append(out, RouteField)
}

func params(ps ...executors.Param) []executors.Param { return ps }

func req(p executors.Param) executors.Param { p.Required = true; return p }

func s(name string) executors.Param { return executors.Param{Name: name, Type: "string"} }
func l(name string) executors.Param { return executors.Param{Name: name, Type: "list"} }
func i(name string) executors.Param { return executors.Param{Name: name, Type: "int"} }
func b(name string) executors.Param { return executors.Param{Name: name, Type: "bool"} }
func t(name string) executors.Param { return executors.Param{Name: name, Type: "time"} }
func u(name string) executors.Param { return executors.Param{Name: name, Type: "unlimited"} }
