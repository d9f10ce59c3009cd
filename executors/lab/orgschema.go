package lab

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ndrbot/ndrbot/executors/graph"
)

// The organisation file's schema (ORGFILE.md) and its translation into the
// lab's model. Pointer fields tell "not given" (the default or the base's
// value) from a zero.

type fileOrg struct {
	Extends            string                    `yaml:"extends"`
	About              string                    `yaml:"about"`
	Playbook           string                    `yaml:"playbook"`
	Organization       string                    `yaml:"organization"`
	DomainController   string                    `yaml:"domain_controller"`
	Servers            keyed[fileServer]         `yaml:"servers"`
	Mailboxes          keyed[fileMailbox]        `yaml:"mailboxes"`
	ThrottlingPolicies keyed[filePolicy]         `yaml:"throttling_policies"`
	SendConnectors     keyed[fileSendConnector]  `yaml:"send_connectors"`
	AcceptedDomains    keyed[fileAcceptedDomain] `yaml:"accepted_domains"`
	Failures           []fileStream              `yaml:"failures"`
	Behaviours         []fileBehaviour           `yaml:"behaviours"`
	World              fileWorld                 `yaml:"world"`
	Tenant             fileTenant                `yaml:"tenant"`
}

type fileServer struct {
	Fqdn              string                   `yaml:"fqdn"`
	Site              string                   `yaml:"site"`
	Version           string                   `yaml:"version"`
	Services          keyed[fileService]       `yaml:"services"`
	Components        keyed[map[string]string] `yaml:"components"`
	Transport         fileTransport            `yaml:"transport"`
	Queues            keyed[fileQueue]         `yaml:"queues"`
	Tracking          []fileEvent              `yaml:"tracking"`
	ReceiveConnectors keyed[fileReceive]       `yaml:"receive_connectors"`
	Ports             keyed[filePort]          `yaml:"ports"`
	Certificates      keyed[fileCertificate]   `yaml:"certificates"`
}

type fileService struct {
	DisplayName string `yaml:"DisplayName"`
	Status      string `yaml:"Status"`
	StartType   string `yaml:"StartType"`
}

type fileTransport struct {
	MaxOutboundConnections                 *unlimitedVal `yaml:"MaxOutboundConnections"`
	MaxPerDomainOutboundConnections        *unlimitedVal `yaml:"MaxPerDomainOutboundConnections"`
	MessageRetryInterval                   *spanVal      `yaml:"MessageRetryInterval"`
	TransientFailureRetryInterval          *spanVal      `yaml:"TransientFailureRetryInterval"`
	TransientFailureRetryCount             *int          `yaml:"TransientFailureRetryCount"`
	OutboundConnectionFailureRetryInterval *spanVal      `yaml:"OutboundConnectionFailureRetryInterval"`
	MessageExpirationTimeout               *spanVal      `yaml:"MessageExpirationTimeout"`
	DelayNotificationTimeout               *spanVal      `yaml:"DelayNotificationTimeout"`
	MaxConcurrentMailboxDeliveries         *int          `yaml:"MaxConcurrentMailboxDeliveries"`
	MaxConcurrentMailboxSubmissions        *int          `yaml:"MaxConcurrentMailboxSubmissions"`
	MaxConnectionRatePerMinute             *int          `yaml:"MaxConnectionRatePerMinute"`
	MessageTrackingLogEnabled              *bool         `yaml:"MessageTrackingLogEnabled"`
	MessageTrackingLogMaxAge               *spanVal      `yaml:"MessageTrackingLogMaxAge"`
}

// fileQueue is a queue, and in a behaviour a patch of one: only the given
// properties change.
type fileQueue struct {
	DeliveryType         *string  `yaml:"DeliveryType"`
	NextHopDomain        *string  `yaml:"NextHopDomain"`
	Status               *string  `yaml:"Status"`
	MessageCount         *int     `yaml:"MessageCount"`
	LastError            *string  `yaml:"LastError"`
	LastRetryTime        *when    `yaml:"LastRetryTime"`
	NextRetryTime        *when    `yaml:"NextRetryTime"`
	FirstRetryTime       *when    `yaml:"FirstRetryTime"`
	RetryCount           *int     `yaml:"RetryCount"`
	TlsDomain            *string  `yaml:"TlsDomain"`
	NextHopConnector     *string  `yaml:"NextHopConnector"`
	DeferredMessageCount *int     `yaml:"DeferredMessageCount"`
	LockedMessageCount   *int     `yaml:"LockedMessageCount"`
	RiskLevel            *string  `yaml:"RiskLevel"`
	OutboundIPPool       *int     `yaml:"OutboundIPPool"`
	NextHopCategory      *string  `yaml:"NextHopCategory"`
	IncomingRate         *float64 `yaml:"IncomingRate"`
	OutgoingRate         *float64 `yaml:"OutgoingRate"`
	Velocity             *float64 `yaml:"Velocity"`
	// Messages are what Get-Message lists in the queue (the oldest first); a
	// patch that gives them replaces the list.
	Messages []fileMessageInQueue `yaml:"messages"`
}

// fileMessageInQueue is one message of a queue, as Get-Message shows it.
type fileMessageInQueue struct {
	FromAddress       string   `yaml:"FromAddress"`
	Recipients        []string `yaml:"Recipients"`
	Subject           string   `yaml:"Subject"`
	InternetMessageId string   `yaml:"InternetMessageId"`
	Size              *size    `yaml:"Size"`
	DateReceived      when     `yaml:"DateReceived"`
	// ExpirationTime defaults to DateReceived + the server's MessageExpirationTimeout.
	ExpirationTime *when `yaml:"ExpirationTime"`
	// LastError and RetryCount default to the queue's.
	LastError  *string `yaml:"LastError"`
	RetryCount *int    `yaml:"RetryCount"`
}

type fileEvent struct {
	Timestamp       when     `yaml:"Timestamp"`
	EventId         string   `yaml:"EventId"`
	Source          string   `yaml:"Source"`
	SourceContext   string   `yaml:"SourceContext"`
	ConnectorId     string   `yaml:"ConnectorId"`
	Sender          string   `yaml:"Sender"`
	Recipients      []string `yaml:"Recipients"`
	RecipientStatus []string `yaml:"RecipientStatus"`
	MessageId       string   `yaml:"MessageId"`
	MessageSubject  string   `yaml:"MessageSubject"`
	ServerIp        string   `yaml:"ServerIp"`
	ClientHostname  string   `yaml:"ClientHostname"`
	ClientIp        string   `yaml:"ClientIp"`
	TotalBytes      int64    `yaml:"TotalBytes"`
	Directionality  string   `yaml:"Directionality"`
	Reference       []string `yaml:"Reference"`
}

type fileStream struct {
	Server string    `yaml:"server"`
	Since  when      `yaml:"since"`
	Every  spanVal   `yaml:"every"`
	Event  fileEvent `yaml:"event"`
}

type fileReceive struct {
	TransportRole      string   `yaml:"TransportRole"`
	Bindings           []string `yaml:"Bindings"`
	RemoteIPRanges     []string `yaml:"RemoteIPRanges"`
	AuthMechanism      string   `yaml:"AuthMechanism"`
	PermissionGroups   string   `yaml:"PermissionGroups"`
	Enabled            *bool    `yaml:"Enabled"`
	Fqdn               string   `yaml:"Fqdn"`
	MaxMessageSize     *size    `yaml:"MaxMessageSize"`
	RequireTLS         bool     `yaml:"RequireTLS"`
	TlsCertificateName string   `yaml:"TlsCertificateName"`
}

type filePort struct {
	TcpSucceeded bool   `yaml:"TcpSucceeded"`
	Banner       string `yaml:"Banner"`
	LatencyMs    int64  `yaml:"LatencyMs"`
	Error        string `yaml:"Error"`
}

type fileMailbox struct {
	Name             string `yaml:"Name"`
	Alias            string `yaml:"Alias"`
	DisplayName      string `yaml:"DisplayName"`
	ThrottlingPolicy string `yaml:"ThrottlingPolicy"`
	Database         string `yaml:"Database"`
	ServerName       string `yaml:"ServerName"`
}

type filePolicy struct {
	ThrottlingPolicyScope string        `yaml:"ThrottlingPolicyScope"`
	RecipientRateLimit    *unlimitedVal `yaml:"RecipientRateLimit"`
	MessageRateLimit      *unlimitedVal `yaml:"MessageRateLimit"`
	ForwardeeLimit        *unlimitedVal `yaml:"ForwardeeLimit"`
}

type fileSendConnector struct {
	AddressSpaces                []string `yaml:"AddressSpaces"`
	SmartHosts                   []string `yaml:"SmartHosts"`
	DNSRoutingEnabled            bool     `yaml:"DNSRoutingEnabled"`
	SourceTransportServers       []string `yaml:"SourceTransportServers"`
	TlsCertificateName           string   `yaml:"TlsCertificateName"`
	TlsAuthLevel                 string   `yaml:"TlsAuthLevel"`
	TlsDomain                    string   `yaml:"TlsDomain"`
	RequireTLS                   bool     `yaml:"RequireTLS"`
	Enabled                      *bool    `yaml:"Enabled"`
	CloudServicesMailEnabled     bool     `yaml:"CloudServicesMailEnabled"`
	MaxMessageSize               *size    `yaml:"MaxMessageSize"`
	Port                         int      `yaml:"Port"`
	Fqdn                         string   `yaml:"Fqdn"`
	SourceIPAddress              string   `yaml:"SourceIPAddress"`
	SmtpMaxMessagesPerConnection int      `yaml:"SmtpMaxMessagesPerConnection"`
	ConnectionInactivityTimeOut  *spanVal `yaml:"ConnectionInactivityTimeOut"`
	SmartHostAuthMechanism       string   `yaml:"SmartHostAuthMechanism"`
}

type fileAcceptedDomain struct {
	DomainName string `yaml:"DomainName"`
	DomainType string `yaml:"DomainType"`
	Default    bool   `yaml:"Default"`
}

type fileBehaviour struct {
	After    string            `yaml:"after"`
	Server   string            `yaml:"server"`
	Identity string            `yaml:"identity"`
	When     map[string]string `yaml:"when"`
	Then     fileEffect        `yaml:"then"`
}

type fileEffect struct {
	Queues keyed[fileQueue] `yaml:"queues"`
	// Components: server → component → requester → state, as Managed
	// Availability sets its HealthAPI entry back once a server recovers.
	Components map[string]map[string]map[string]string `yaml:"components"`
	Failures   string                                  `yaml:"failures"`
}

type fileWorld struct {
	EOP          *fileSMTP        `yaml:"eop"`
	Destinations keyed[fileDest]  `yaml:"destinations"`
	DNS          keyed[fileZone]  `yaml:"dns"`
	DNSBL        keyed[fileDNSBL] `yaml:"dnsbl"`
}

type fileSMTP struct {
	Status   string `yaml:"status"`
	Code     int    `yaml:"code"`
	Enhanced string `yaml:"enhanced"`
	Text     string `yaml:"text"`
	Error    string `yaml:"error"`
}

type fileDest struct {
	MX            string   `yaml:"mx"`
	IP            string   `yaml:"ip"`
	Probe         fileSMTP `yaml:"probe"`
	Accepts       int64    `yaml:"accepts"`
	RefusesListed bool     `yaml:"refuses_listed"`
	Refusal       string   `yaml:"refusal"`
}

type fileZone struct {
	A     []string `yaml:"a"`
	SPF   []string `yaml:"spf"`
	TXT   []string `yaml:"txt"`
	CNAME string   `yaml:"cname"`
	Fail  string   `yaml:"fail"`
}

type fileDNSBL struct {
	Code   string `yaml:"code"`
	Reason string `yaml:"reason"`
	Down   string `yaml:"down"`
}

type fileTenant struct {
	Renewal       string               `yaml:"renewal"`
	Issues        []fileIssue          `yaml:"issues"`
	Subscriptions []fileSubscription   `yaml:"subscriptions"`
	Mail          keyed[[]fileMessage] `yaml:"mail"`

	// Exchange Online, as exo targets read it (exo.go).
	AllowModuleEndpoint  *bool                        `yaml:"allow_module_endpoint"`
	AcceptedDomains      keyed[fileEXODomain]         `yaml:"accepted_domains"`
	OutboundSpamPolicies keyed[fileOutboundPolicy]    `yaml:"outbound_spam_policies"`
	BlockedSenders       keyed[fileBlockedSender]     `yaml:"blocked_senders"`
	Mailboxes            keyed[fileCloudMailbox]      `yaml:"mailboxes"`
	InboundConnectors    keyed[fileInboundConnector]  `yaml:"inbound_connectors"`
	OutboundConnectors   keyed[fileOutboundConnector] `yaml:"outbound_connectors"`
	MessageTrace         []fileTrace                  `yaml:"message_trace"`
	TransportConfig      fileTransportConfig          `yaml:"transport_config"`
}

// fileTransportConfig is the tenant's Get-TransportConfig, the setting that
// turns SMTP AUTH client submission off for every mailbox that does not say
// otherwise.
type fileTransportConfig struct {
	SmtpClientAuthenticationDisabled bool `yaml:"SmtpClientAuthenticationDisabled"`
}

type fileEXODomain struct {
	DomainName                string `yaml:"DomainName"`
	DomainType                string `yaml:"DomainType"`
	Default                   bool   `yaml:"Default"`
	MatchSubDomains           bool   `yaml:"MatchSubDomains"`
	SendingFromDomainDisabled bool   `yaml:"SendingFromDomainDisabled"`
	EmailOnly                 bool   `yaml:"EmailOnly"`
}

type fileOutboundPolicy struct {
	IsDefault                     *bool  `yaml:"IsDefault"`
	RecipientLimitExternalPerHour int64  `yaml:"RecipientLimitExternalPerHour"`
	RecipientLimitInternalPerHour int64  `yaml:"RecipientLimitInternalPerHour"`
	RecipientLimitPerDay          int64  `yaml:"RecipientLimitPerDay"`
	ActionWhenThresholdReached    string `yaml:"ActionWhenThresholdReached"`
	AutoForwardingMode            string `yaml:"AutoForwardingMode"`
	BccSuspiciousOutboundMail     bool   `yaml:"BccSuspiciousOutboundMail"`
	NotifyOutboundSpam            bool   `yaml:"NotifyOutboundSpam"`
	WhenChanged                   *when  `yaml:"WhenChanged"`
}

type fileBlockedSender struct {
	Reason          string `yaml:"Reason"`
	BlockType       string `yaml:"BlockType"`
	CreatedDatetime when   `yaml:"CreatedDatetime"`
	ChangedDatetime *when  `yaml:"ChangedDatetime"`
	TemporaryBlock  bool   `yaml:"TemporaryBlock"`
	ExpireDatetime  *when  `yaml:"ExpireDatetime"`
}

type fileCloudMailbox struct {
	Alias                      string `yaml:"Alias"`
	DisplayName                string `yaml:"DisplayName"`
	RecipientTypeDetails       string `yaml:"RecipientTypeDetails"`
	ForwardingSmtpAddress      string `yaml:"ForwardingSmtpAddress"`
	DeliverToMailboxAndForward bool   `yaml:"DeliverToMailboxAndForward"`
	AccountDisabled            bool   `yaml:"AccountDisabled"`
	WhenChanged                *when  `yaml:"WhenChanged"`
	// Get-CASMailbox's SmtpClientAuthenticationDisabled: unset ($null) follows
	// the tenant's transport_config, true or false overrides it.
	SmtpClientAuthenticationDisabled *bool `yaml:"SmtpClientAuthenticationDisabled"`
}

type fileInboundConnector struct {
	ConnectorType                string   `yaml:"ConnectorType"`
	ConnectorSource              string   `yaml:"ConnectorSource"`
	Enabled                      *bool    `yaml:"Enabled"`
	SenderDomains                []string `yaml:"SenderDomains"`
	SenderIPAddresses            []string `yaml:"SenderIPAddresses"`
	RequireTls                   *bool    `yaml:"RequireTls"`
	RestrictDomainsToCertificate bool     `yaml:"RestrictDomainsToCertificate"`
	RestrictDomainsToIPAddresses bool     `yaml:"RestrictDomainsToIPAddresses"`
	TlsSenderCertificateName     string   `yaml:"TlsSenderCertificateName"`
	CloudServicesMailEnabled     bool     `yaml:"CloudServicesMailEnabled"`
	TreatMessagesAsInternal      bool     `yaml:"TreatMessagesAsInternal"`
	WhenChanged                  *when    `yaml:"WhenChanged"`
}

type fileOutboundConnector struct {
	ConnectorType                 string   `yaml:"ConnectorType"`
	ConnectorSource               string   `yaml:"ConnectorSource"`
	Enabled                       *bool    `yaml:"Enabled"`
	RecipientDomains              []string `yaml:"RecipientDomains"`
	SmartHosts                    []string `yaml:"SmartHosts"`
	UseMXRecord                   bool     `yaml:"UseMXRecord"`
	TlsSettings                   string   `yaml:"TlsSettings"`
	TlsDomain                     string   `yaml:"TlsDomain"`
	IsTransportRuleScoped         bool     `yaml:"IsTransportRuleScoped"`
	RouteAllMessagesViaOnPremises bool     `yaml:"RouteAllMessagesViaOnPremises"`
	CloudServicesMailEnabled      bool     `yaml:"CloudServicesMailEnabled"`
	AllAcceptedDomains            bool     `yaml:"AllAcceptedDomains"`
	WhenChanged                   *when    `yaml:"WhenChanged"`
}

// fileTrace is one message trace row, or with count a run of them: count
// messages, the first at Received and one every every after it, "{n}" in
// RecipientAddress, MessageId and Subject numbering them from 1.
type fileTrace struct {
	Received         when     `yaml:"Received"`
	SenderAddress    string   `yaml:"SenderAddress"`
	RecipientAddress string   `yaml:"RecipientAddress"`
	Subject          string   `yaml:"Subject"`
	Status           string   `yaml:"Status"`
	FromIP           string   `yaml:"FromIP"`
	ToIP             string   `yaml:"ToIP"`
	Size             int64    `yaml:"Size"`
	MessageId        string   `yaml:"MessageId"`
	Count            int      `yaml:"count"`
	Every            *spanVal `yaml:"every"`
}

type fileIssue struct {
	ID             string `yaml:"id"`
	Title          string `yaml:"title"`
	Classification string `yaml:"classification"`
	Status         string `yaml:"status"`
	Service        string `yaml:"service"`
	Feature        string `yaml:"feature"`
	Impact         string `yaml:"impact"`
	Started        when   `yaml:"started"`
}

type fileSubscription struct {
	ID               string `yaml:"id"`
	Resource         string `yaml:"resource"`
	ChangeType       string `yaml:"change_type"`
	NotificationHost string `yaml:"notification_host"`
	Expires          when   `yaml:"expires"`
}

type fileMessage struct {
	ID       string `yaml:"id"`
	Received when   `yaml:"received"`
}

// Values the lab accepts for enum-typed keys, so a typo fails at load.
var (
	queueStatuses = enumValues["Microsoft.Exchange.Data.QueueViewer.QueueStatus"][1:]
	deliveryTypes = enumValues["Microsoft.Exchange.Data.DeliveryType"]
	policyScopes  = enumValues["Microsoft.Exchange.Data.Directory.ThrottlingPolicyScopeType"]
	serviceStates = []string{"Running", "Stopped", "StartPending", "StopPending", "Paused"}
	renewals      = map[string]renewal{"": renewalOK, "ok": renewalOK, "failing": renewalFailing, "recovering": renewalRecovering}
)

// oneOf refuses v, set at n, unless it is empty or one of allowed.
func (ld *loader) oneOf(n *yaml.Node, what, v string, allowed []string) error {
	if v != "" && !slices.Contains(allowed, v) {
		return fmt.Errorf("lab: %s: %s %q is not one of %s", ld.at(n), what, v, strings.Join(allowed, ", "))
	}
	return nil
}

// build translates a decoded file into the lab's model, checking references.
func (ld *loader) build(f *fileOrg, now time.Time) (*org, error) {
	o := &org{orgName: f.Organization, dc: f.DomainController, m365: &m365{mail: map[string][]*message{}},
		destinations: map[string]*destination{}, zones: map[string]dnsZone{}, listings: map[string]listing{}, dnsblDown: map[string]string{}}
	for _, it := range f.Servers.items {
		fs := it.val
		s := &server{name: it.key, host: strings.ToLower(either(fs.Fqdn, it.key+".lab.contoso.com")), site: fs.Site, version: fs.Version,
			settings: defaultSettings(), maxOutbound: i64(1000), maxPerDomain: i64(20), ports: map[string]*portView{}}
		if len(fs.Services.items) > 0 {
			s.services = defaultServices()
		}
		for _, sv := range fs.Services.items {
			if err := ld.oneOf(sv.node, "service Status", sv.val.Status, serviceStates); err != nil {
				return nil, err
			}
			if cur := s.service(sv.key); cur != nil {
				cur.status = either(sv.val.Status, cur.status)
				cur.startType = either(sv.val.StartType, cur.startType)
				cur.displayName = either(sv.val.DisplayName, cur.displayName)
				continue
			}
			s.services = append(s.services, &service{name: sv.key, displayName: either(sv.val.DisplayName, sv.key),
				status: either(sv.val.Status, "Running"), startType: either(sv.val.StartType, "Automatic")})
		}
		s.ensureComponents()
		for _, c := range fs.Components.items {
			comp := s.component(c.key)
			comp.requesters = nil
			names := make([]string, 0, len(c.val))
			for r := range c.val {
				names = append(names, r)
			}
			slices.Sort(names)
			for _, r := range names {
				if err := ld.oneOf(c.node, "requester", r, requesterNames); err != nil {
					return nil, err
				}
				if err := ld.oneOf(c.node, "component state", c.val[r], componentStates); err != nil {
					return nil, err
				}
				comp.requesters = append(comp.requesters, &requesterState{requester: r, state: c.val[r], at: now.Add(-time.Hour)})
			}
		}
		ld.transport(s, fs.Transport)
		for _, q := range fs.Queues.items {
			nq := &queue{Identity: q.key, Status: "Ready", DeliveryType: "Undefined"}
			if !strings.HasPrefix(strings.ToLower(q.key), strings.ToLower(s.name)+`\`) {
				return nil, fmt.Errorf(`lab: %s: queue %q of server %s: a queue identity is %s\<id>`, ld.at(q.node), q.key, s.name, s.name)
			}
			patchQueue(nq, q.val, now)
			if err := ld.oneOf(q.node, "DeliveryType", nq.DeliveryType, deliveryTypes); err != nil {
				return nil, err
			}
			if err := ld.oneOf(q.node, "Status", nq.Status, queueStatuses); err != nil {
				return nil, err
			}
			s.queues = append(s.queues, nq)
		}
		for _, ev := range fs.Tracking {
			e := ev.event()
			e.Timestamp = ev.Timestamp.at(now)
			s.tracking = append(s.tracking, &e)
		}
		if len(fs.ReceiveConnectors.items) > 0 {
			s.receive = defaultReceiveConnectors(s.name, s.host)
		}
		for _, rc := range fs.ReceiveConnectors.items {
			r := rc.val
			nr := &receiveConnector{name: rc.key, role: either(r.TransportRole, "FrontendTransport"), bindings: r.Bindings,
				remoteIPRanges: r.RemoteIPRanges, authMechanism: either(r.AuthMechanism, "Tls"), permissionGroups: either(r.PermissionGroups, "AnonymousUsers"),
				enabled: r.Enabled == nil || *r.Enabled, fqdn: either(r.Fqdn, s.host), maxMessageSize: 36 << 20, requireTLS: r.RequireTLS, tlsCertName: r.TlsCertificateName}
			if r.MaxMessageSize != nil {
				nr.maxMessageSize = r.MaxMessageSize.bytes
			}
			if i := slices.IndexFunc(s.receive, func(x *receiveConnector) bool { return strings.EqualFold(x.name, rc.key) }); i >= 0 {
				s.receive[i] = nr
			} else {
				s.receive = append(s.receive, nr)
			}
		}
		for _, pt := range fs.Ports.items {
			if !strings.Contains(pt.key, ":") {
				return nil, fmt.Errorf("lab: %s: port view %q: key is host:port (smtp.contoso.com:25)", ld.at(pt.node), pt.key)
			}
			s.ports[strings.ToLower(pt.key)] = &portView{tcpSucceeded: pt.val.TcpSucceeded, banner: pt.val.Banner, latencyMs: pt.val.LatencyMs, err: pt.val.Error}
		}
		if err := ld.certificates(s, fs.Certificates, now); err != nil {
			return nil, err
		}
		o.servers = append(o.servers, s)
	}
	if len(o.servers) == 0 {
		return nil, fmt.Errorf("lab: the organisation has no servers: add servers: {EX01: {fqdn: ex01.contoso.com}}")
	}
	for _, it := range f.ThrottlingPolicies.items {
		pv := it.val
		if err := ld.oneOf(it.node, "ThrottlingPolicyScope", pv.ThrottlingPolicyScope, policyScopes); err != nil {
			return nil, err
		}
		pol := &policy{name: it.key, scope: either(pv.ThrottlingPolicyScope, "Regular"), unset: map[string]bool{}}
		for _, l := range []struct {
			name string
			src  *unlimitedVal
			dst  **int64
		}{{"RecipientRateLimit", pv.RecipientRateLimit, &pol.recipient}, {"MessageRateLimit", pv.MessageRateLimit, &pol.message},
			{"ForwardeeLimit", pv.ForwardeeLimit, &pol.forwardee}} {
			switch {
			case l.src != nil:
				*l.dst = l.src.v
			case pol.scope != "Global":
				pol.unset[l.name] = true // left out: inherited from the next level
			}
		}
		o.policies = append(o.policies, pol)
	}
	for _, it := range f.Mailboxes.items {
		m := it.val
		if m.ThrottlingPolicy != "" && o.findPolicy(m.ThrottlingPolicy) == nil {
			return nil, fmt.Errorf("lab: %s: mailbox %s: ThrottlingPolicy %q is not under throttling_policies", ld.at(it.node), it.key, m.ThrottlingPolicy)
		}
		o.mailboxes = append(o.mailboxes, &userMailbox{address: it.key, name: m.Name, alias: m.Alias, displayName: m.DisplayName,
			policy: m.ThrottlingPolicy, database: m.Database, serverName: m.ServerName})
	}
	for _, it := range f.SendConnectors.items {
		c := it.val
		sc := &sendConnector{identity: it.key, addressSpaces: c.AddressSpaces, smartHosts: c.SmartHosts, dnsRouting: c.DNSRoutingEnabled,
			sourceServers: c.SourceTransportServers, perConnection: c.SmtpMaxMessagesPerConnection, sourceIP: either(c.SourceIPAddress, "0.0.0.0"),
			fqdn: c.Fqdn, disabled: c.Enabled != nil && !*c.Enabled, requireTLS: c.RequireTLS, tlsCertName: c.TlsCertificateName,
			tlsAuthLevel: c.TlsAuthLevel, tlsDomain: c.TlsDomain, cloudMail: c.CloudServicesMailEnabled, port: c.Port, smartHostAuth: c.SmartHostAuthMechanism}
		if c.MaxMessageSize != nil {
			sc.maxMessageSize = c.MaxMessageSize.bytes
		}
		if c.ConnectionInactivityTimeOut != nil {
			sc.inactivity = timeSpanString(time.Duration(*c.ConnectionInactivityTimeOut))
		}
		for _, srv := range c.SourceTransportServers {
			if o.serverByID(srv) == nil {
				return nil, fmt.Errorf("lab: %s: send connector %q: SourceTransportServers names %q, which is not under servers", ld.at(it.node), it.key, srv)
			}
		}
		o.connectors = append(o.connectors, sc)
	}
	for _, it := range f.AcceptedDomains.items {
		d := it.val
		o.acceptedDomains = append(o.acceptedDomains, &acceptedDomain{name: it.key, domain: either(d.DomainName, it.key),
			kind: either(d.DomainType, "Authoritative"), isDefault: d.Default})
	}
	for _, st := range f.Failures {
		if o.serverByID(st.Server) == nil {
			return nil, fmt.Errorf("lab: failures: server %q is not under servers", st.Server)
		}
		if st.Every <= 0 {
			return nil, fmt.Errorf("lab: failures on %s: every must be a positive time span (2m)", st.Server)
		}
		o.streams = append(o.streams, &stream{server: o.serverByID(st.Server).name, since: st.Since.at(now), every: time.Duration(st.Every), event: st.Event.event()})
		o.failing = true
	}
	if err := ld.behaviours(o, f.Behaviours); err != nil {
		return nil, err
	}
	if err := ld.world(o, &f.World); err != nil {
		return nil, err
	}
	return o, ld.tenant(o, &f.Tenant, now)
}

func (ev fileEvent) event() trackingEvent {
	return trackingEvent{EventId: ev.EventId, Source: ev.Source, SourceContext: ev.SourceContext, ConnectorId: ev.ConnectorId,
		Sender: ev.Sender, Recipients: ev.Recipients, RecipientStatus: ev.RecipientStatus, MessageId: ev.MessageId,
		MessageSubject: ev.MessageSubject, ServerIp: ev.ServerIp, ClientHostname: ev.ClientHostname, ClientIp: ev.ClientIp,
		TotalBytes: ev.TotalBytes, Directionality: ev.Directionality, Reference: ev.Reference}
}

func (ld *loader) transport(s *server, t fileTransport) {
	if t.MaxOutboundConnections != nil {
		s.maxOutbound = t.MaxOutboundConnections.v
	}
	if t.MaxPerDomainOutboundConnections != nil {
		s.maxPerDomain = t.MaxPerDomainOutboundConnections.v
	}
	st := &s.settings
	for _, sp := range []struct {
		src *spanVal
		dst *time.Duration
	}{{t.MessageRetryInterval, &st.MessageRetryInterval}, {t.TransientFailureRetryInterval, &st.TransientFailureRetryInterval},
		{t.OutboundConnectionFailureRetryInterval, &st.OutboundConnectionFailureRetryInterval}, {t.MessageExpirationTimeout, &st.MessageExpirationTimeout},
		{t.DelayNotificationTimeout, &st.DelayNotificationTimeout}, {t.MessageTrackingLogMaxAge, &st.MessageTrackingLogMaxAge}} {
		if sp.src != nil {
			*sp.dst = time.Duration(*sp.src)
		}
	}
	for _, n := range []struct {
		src *int
		dst *int
	}{{t.TransientFailureRetryCount, &st.TransientFailureRetryCount}, {t.MaxConcurrentMailboxDeliveries, &st.MaxConcurrentMailboxDeliveries},
		{t.MaxConcurrentMailboxSubmissions, &st.MaxConcurrentMailboxSubmissions}, {t.MaxConnectionRatePerMinute, &st.MaxConnectionRatePerMinute}} {
		if n.src != nil {
			*n.dst = *n.src
		}
	}
	if t.MessageTrackingLogEnabled != nil {
		st.MessageTrackingLogEnabled = *t.MessageTrackingLogEnabled
	}
}

// patchQueue sets the given properties of a queue.
func patchQueue(q *queue, f fileQueue, now time.Time) {
	setS := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	setI := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setF := func(dst *float64, v *float64) {
		if v != nil {
			*dst = *v
		}
	}
	setT := func(dst *time.Time, v *when) {
		if v != nil {
			*dst = v.at(now)
		}
	}
	setS(&q.DeliveryType, f.DeliveryType)
	setS(&q.NextHopDomain, f.NextHopDomain)
	setS(&q.Status, f.Status)
	setI(&q.MessageCount, f.MessageCount)
	setS(&q.LastError, f.LastError)
	setT(&q.LastRetryTime, f.LastRetryTime)
	setT(&q.NextRetryTime, f.NextRetryTime)
	setT(&q.FirstRetryTime, f.FirstRetryTime)
	setI(&q.RetryCount, f.RetryCount)
	setS(&q.TlsDomain, f.TlsDomain)
	setS(&q.NextHopConnector, f.NextHopConnector)
	setI(&q.DeferredMessageCount, f.DeferredMessageCount)
	setI(&q.LockedMessageCount, f.LockedMessageCount)
	setS(&q.RiskLevel, f.RiskLevel)
	setI(&q.OutboundIPPool, f.OutboundIPPool)
	setS(&q.NextHopCategory, f.NextHopCategory)
	setF(&q.IncomingRate, f.IncomingRate)
	setF(&q.OutgoingRate, f.OutgoingRate)
	setF(&q.Velocity, f.Velocity)
	if f.Messages != nil {
		q.messages = nil
		for _, m := range f.Messages {
			qm := &queuedMessage{FromAddress: m.FromAddress, Recipients: m.Recipients, Subject: m.Subject,
				InternetMessageId: m.InternetMessageId, DateReceived: m.DateReceived.at(now), LastError: m.LastError, RetryCount: m.RetryCount}
			if m.Size != nil {
				qm.Size = m.Size.bytes
			}
			if m.ExpirationTime != nil {
				qm.ExpirationTime = m.ExpirationTime.at(now)
			}
			q.messages = append(q.messages, qm)
		}
	}
}

var conditionOps = []string{">=", "<=", "!=", "==", ">", "<"}

// reliefCmdlets are the commands a behaviour can follow.
var reliefCmdlets = []string{"Restart-Service", "Retry-Queue", "Suspend-Queue", "Resume-Queue", "Set-ThrottlingPolicy",
	"Set-TransportService", "Set-ServerComponentState", "Set-SendConnector", "Set-ReceiveConnector"}

func (ld *loader) behaviours(o *org, fbs []fileBehaviour) error {
	for i, fb := range fbs {
		where := fmt.Sprintf("behaviours[%d]", i)
		if !slices.Contains(reliefCmdlets, fb.After) {
			return fmt.Errorf("lab: %s: after %q: a behaviour follows one of %s", where, fb.After, strings.Join(reliefCmdlets, ", "))
		}
		if fb.Server != "" && o.serverByID(fb.Server) == nil {
			return fmt.Errorf("lab: %s: server %q is not under servers", where, fb.Server)
		}
		b := &behaviour{where: where, after: fb.After, server: fb.Server, identity: fb.Identity}
		props := make([]string, 0, len(fb.When))
		for prop := range fb.When {
			props = append(props, prop)
		}
		slices.Sort(props)
		for _, prop := range props {
			expr := strings.TrimSpace(fb.When[prop])
			cond := condition{prop: prop, op: "==", value: expr}
			for _, op := range conditionOps {
				if rest, ok := strings.CutPrefix(expr, op); ok {
					cond.op, cond.value = op, strings.TrimSpace(rest)
					break
				}
			}
			b.when = append(b.when, cond)
		}
		for _, qp := range fb.Then.Queues.items {
			if q, _ := o.queueByID(qp.key); q == nil {
				return fmt.Errorf("lab: %s: behaviour queue %q is not a queue of the organisation", ld.at(qp.node), qp.key)
			}
			patch := qp.val
			b.queues = append(b.queues, queuePatch{identity: qp.key, apply: func(q *queue, now time.Time) { patchQueue(q, patch, now) }})
		}
		for srv, comps := range fb.Then.Components {
			s := o.serverByID(srv)
			if s == nil {
				return fmt.Errorf("lab: %s: then.components: server %q is not under servers", where, srv)
			}
			for comp, reqs := range comps {
				if s.findComponent(comp) == nil {
					return fmt.Errorf("lab: %s: then.components: %s has no component %q", where, srv, comp)
				}
				for r, st := range reqs {
					if !slices.Contains(requesterNames, r) || !slices.Contains(componentStates, st) {
						return fmt.Errorf("lab: %s: then.components: %s %s: requester %q / state %q (requesters: %s; states: %s)",
							where, srv, comp, r, st, strings.Join(requesterNames, ", "), strings.Join(componentStates, ", "))
					}
					b.components = append(b.components, componentPatch{server: s.name, component: comp, requester: r, state: st})
				}
			}
		}
		switch fb.Then.Failures {
		case "":
		case "stop":
			b.stopFailures = true
		default:
			return fmt.Errorf("lab: %s: then.failures %q: the one effect on failures is stop", where, fb.Then.Failures)
		}
		o.behaviours = append(o.behaviours, b)
	}
	return nil
}

func (f fileSMTP) outcome() smtpOutcome {
	return smtpOutcome{status: f.Status, code: f.Code, enhanced: f.Enhanced, text: f.Text, err: f.Error}
}

func (ld *loader) world(o *org, w *fileWorld) error {
	o.eop = smtpOutcome{status: "ok", code: 220, text: "BN8NAM12FT041.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready"}
	if w.EOP != nil {
		o.eop = w.EOP.outcome()
	}
	for _, it := range w.Destinations.items {
		d := it.val
		if d.MX == "" || d.IP == "" {
			return fmt.Errorf("lab: %s: destination %s needs mx and ip", ld.at(it.node), it.key)
		}
		o.destinations[strings.ToLower(it.key)] = &destination{mx: d.MX, ip: d.IP, probe: d.Probe.outcome(), accepts: d.Accepts,
			refusesListed: d.RefusesListed, refusal: d.Refusal}
	}
	for _, it := range w.DNS.items {
		z := it.val
		if z.CNAME != "" && (len(z.A) > 0 || len(z.SPF) > 0 || len(z.TXT) > 0) {
			// RFC 1034 §3.6.2: a name with a CNAME has no other data.
			return fmt.Errorf("lab: %s: dns %s has a cname and other records", ld.at(it.node), it.key)
		}
		if err := ld.oneOf(it.node, "dns "+it.key+": fail", z.Fail, dnsFailures); err != nil {
			return err
		}
		o.zones[strings.ToLower(strings.TrimSuffix(it.key, "."))] = dnsZone{a: z.A, spf: z.SPF, txt: z.TXT,
			cname: strings.ToLower(strings.TrimSuffix(z.CNAME, ".")), fail: z.Fail}
	}
	for _, it := range w.DNSBL.items {
		if len(strings.Fields(it.key)) != 2 {
			return fmt.Errorf("lab: %s: dnsbl key %q is \"<ip> <zone>\"", ld.at(it.node), it.key)
		}
		if it.val.Down != "" {
			if err := ld.oneOf(it.node, "dnsbl "+it.key+": down", it.val.Down, dnsFailures); err != nil {
				return err
			}
			o.dnsblDown[it.key] = it.val.Down
			continue
		}
		o.listings[it.key] = listing{code: it.val.Code, reason: it.val.Reason}
	}
	return nil
}

func (ld *loader) tenant(o *org, t *fileTenant, now time.Time) error {
	r, ok := renewals[t.Renewal]
	if !ok {
		return fmt.Errorf("lab: tenant.renewal %q is one of ok, failing, recovering", t.Renewal)
	}
	m := o.m365
	m.renewal = r
	for _, is := range t.Issues {
		m.issues = append(m.issues, &issue{startAgo: now.Sub(is.Started.at(now)), ServiceHealthIssue: graph.ServiceHealthIssue{
			ID: is.ID, Title: is.Title, Classification: either(is.Classification, "incident"), Status: either(is.Status, "serviceDegradation"),
			Service: either(is.Service, "Exchange Online"), Feature: is.Feature, ImpactDescription: is.Impact}})
	}
	for _, s := range t.Subscriptions {
		m.subs = append(m.subs, &subscription{id: s.ID, resource: s.Resource, changeType: either(s.ChangeType, "created"),
			notifyHost: s.NotificationHost, expiresIn: s.Expires.at(now).Sub(now)})
	}
	for _, box := range t.Mail.items {
		for _, msg := range box.val {
			m.mail[strings.ToLower(box.key)] = append(m.mail[strings.ToLower(box.key)], &message{id: msg.ID, receivedAgo: now.Sub(msg.Received.at(now))})
		}
	}
	return ld.exo(o, t, now)
}

// maxTraceRun bounds one message_trace entry's count: more than a message
// trace query can return (5000) is more than a scenario needs.
const maxTraceRun = 10000

// exo builds the Exchange Online side of the tenant.
func (ld *loader) exo(o *org, t *fileTenant, now time.Time) error {
	x := &exoTenant{allowModule: t.AllowModuleEndpoint == nil || *t.AllowModuleEndpoint}
	o.exo = x
	optTime := func(w *when) time.Time {
		if w == nil {
			return time.Time{}
		}
		return w.at(now)
	}
	for _, it := range t.AcceptedDomains.items {
		d := it.val
		if err := ld.oneOf(it.node, "DomainType", d.DomainType, exoDomainTypes); err != nil {
			return err
		}
		x.domains = append(x.domains, &exoDomain{name: it.key, domain: either(d.DomainName, it.key), kind: either(d.DomainType, "Authoritative"),
			isDefault: d.Default, matchSub: d.MatchSubDomains, sendingDisabled: d.SendingFromDomainDisabled, emailOnly: d.EmailOnly})
	}
	for _, it := range t.OutboundSpamPolicies.items {
		pv := it.val
		if err := ld.oneOf(it.node, "ActionWhenThresholdReached", pv.ActionWhenThresholdReached, thresholdActions); err != nil {
			return err
		}
		if err := ld.oneOf(it.node, "AutoForwardingMode", pv.AutoForwardingMode, forwardingModes); err != nil {
			return err
		}
		for _, l := range []int64{pv.RecipientLimitExternalPerHour, pv.RecipientLimitInternalPerHour, pv.RecipientLimitPerDay} {
			if l < 0 || l > 10000 {
				return fmt.Errorf("lab: %s: outbound spam policy %s: a recipient limit is 0 (the service's default) to 10000, not %d", ld.at(it.node), it.key, l)
			}
		}
		x.policies = append(x.policies, &outboundPolicy{name: it.key, isDefault: pv.IsDefault != nil && *pv.IsDefault || pv.IsDefault == nil && it.key == "Default",
			externalPerHour: pv.RecipientLimitExternalPerHour, internalPerHour: pv.RecipientLimitInternalPerHour, perDay: pv.RecipientLimitPerDay,
			action: either(pv.ActionWhenThresholdReached, "BlockUserForToday"), autoForwarding: either(pv.AutoForwardingMode, "Automatic"),
			bccSuspicious: pv.BccSuspiciousOutboundMail, notify: pv.NotifyOutboundSpam, whenChanged: optTime(pv.WhenChanged)})
	}
	for _, it := range t.BlockedSenders.items {
		b := it.val
		if !strings.Contains(it.key, "@") {
			return fmt.Errorf("lab: %s: blocked sender %q: the key is the sender's address", ld.at(it.node), it.key)
		}
		created := b.CreatedDatetime.at(now)
		changed := created
		if b.ChangedDatetime != nil {
			changed = b.ChangedDatetime.at(now)
		}
		x.blocked = append(x.blocked, &blockedSender{address: it.key, reason: b.Reason, blockType: b.BlockType, created: created,
			changed: changed, temporary: b.TemporaryBlock, expires: optTime(b.ExpireDatetime)})
	}
	for _, it := range t.Mailboxes.items {
		m := it.val
		if !strings.Contains(it.key, "@") {
			return fmt.Errorf("lab: %s: tenant mailbox %q: the key is its primary SMTP address", ld.at(it.node), it.key)
		}
		if err := ld.oneOf(it.node, "RecipientTypeDetails", m.RecipientTypeDetails, cloudMailboxTypes); err != nil {
			return err
		}
		if m.ForwardingSmtpAddress != "" && !strings.HasPrefix(strings.ToLower(m.ForwardingSmtpAddress), "smtp:") {
			return fmt.Errorf("lab: %s: tenant mailbox %s: ForwardingSmtpAddress is written smtp:<address>, as Get-Mailbox shows it", ld.at(it.node), it.key)
		}
		local, _, _ := strings.Cut(it.key, "@")
		x.mailboxes = append(x.mailboxes, &cloudMailbox{address: it.key, alias: either(m.Alias, local), displayName: either(m.DisplayName, local),
			kind: either(m.RecipientTypeDetails, "UserMailbox"), forwardingSMTP: m.ForwardingSmtpAddress, deliverAndForward: m.DeliverToMailboxAndForward,
			disabled: m.AccountDisabled, whenChanged: optTime(m.WhenChanged), smtpAuthDisabled: m.SmtpClientAuthenticationDisabled})
	}
	x.smtpAuthDisabled = t.TransportConfig.SmtpClientAuthenticationDisabled
	for _, it := range t.InboundConnectors.items {
		c := it.val
		if err := ld.oneOf(it.node, "ConnectorType", c.ConnectorType, connectorTypes); err != nil {
			return err
		}
		if err := ld.oneOf(it.node, "ConnectorSource", c.ConnectorSource, connectorSources); err != nil {
			return err
		}
		x.inbound = append(x.inbound, &inboundConnector{name: it.key, kind: either(c.ConnectorType, "Partner"), source: either(c.ConnectorSource, "Default"),
			tlsName: c.TlsSenderCertificateName, enabled: c.Enabled == nil || *c.Enabled, requireTLS: c.RequireTls == nil || *c.RequireTls,
			restrictCert: c.RestrictDomainsToCertificate, restrictIPs: c.RestrictDomainsToIPAddresses, cloudMail: c.CloudServicesMailEnabled,
			internal: c.TreatMessagesAsInternal, senderDomains: c.SenderDomains, senderIPs: c.SenderIPAddresses, whenChanged: optTime(c.WhenChanged)})
	}
	for _, it := range t.OutboundConnectors.items {
		c := it.val
		for _, e := range []struct {
			what, v string
			allowed []string
		}{{"ConnectorType", c.ConnectorType, connectorTypes},
			{"ConnectorSource", c.ConnectorSource, connectorSources}, {"TlsSettings", c.TlsSettings, tlsSettings}} {
			if err := ld.oneOf(it.node, e.what, e.v, e.allowed); err != nil {
				return err
			}
		}
		x.outbound = append(x.outbound, &outboundConnector{name: it.key, kind: either(c.ConnectorType, "Partner"), source: either(c.ConnectorSource, "Default"),
			tlsSettings: c.TlsSettings, tlsDomain: c.TlsDomain, enabled: c.Enabled == nil || *c.Enabled, useMX: c.UseMXRecord,
			ruleScoped: c.IsTransportRuleScoped, viaOnPrem: c.RouteAllMessagesViaOnPremises, cloudMail: c.CloudServicesMailEnabled,
			all: c.AllAcceptedDomains, recipientDomains: c.RecipientDomains, smartHosts: c.SmartHosts, whenChanged: optTime(c.WhenChanged)})
	}
	for i, tr := range t.MessageTrace {
		where := fmt.Sprintf("tenant.message_trace[%d]", i)
		if tr.SenderAddress == "" || tr.RecipientAddress == "" {
			return fmt.Errorf("lab: %s: SenderAddress and RecipientAddress are required", where)
		}
		if !slices.Contains(traceStatuses, either(tr.Status, "Delivered")) {
			return fmt.Errorf("lab: %s: Status %q is not one of %s", where, tr.Status, strings.Join(traceStatuses, ", "))
		}
		count := max(tr.Count, 1)
		switch {
		case count > maxTraceRun:
			return fmt.Errorf("lab: %s: count %d: at most %d rows an entry", where, count, maxTraceRun)
		case count > 1 && (tr.Every == nil || *tr.Every <= 0):
			return fmt.Errorf("lab: %s: count %d needs every: a positive time span (30s)", where, count)
		}
		first := tr.Received.at(now)
		for n := 1; n <= count; n++ {
			num := func(s string) string { return strings.ReplaceAll(s, "{n}", fmt.Sprint(n)) }
			at := first
			if n > 1 {
				at = first.Add(time.Duration(n-1) * time.Duration(*tr.Every))
			}
			if at.After(now) {
				break // a run ends at the lab's clock: message trace holds no future
			}
			id := labGUID(fmt.Sprintf("trace %d %d", i, n))
			x.trace = append(x.trace, &traceRow{id: id, messageID: either(num(tr.MessageId), "<"+id+"@"+addressDomain(tr.SenderAddress)+">"),
				sender: tr.SenderAddress, recipient: num(tr.RecipientAddress), fromIP: tr.FromIP, toIP: tr.ToIP, subject: num(tr.Subject),
				status: either(tr.Status, "Delivered"), received: at, size: max(tr.Size, 20488)})
		}
	}
	sortTrace(x.trace)
	return nil
}

// addressDomain is the part of an address after its @.
func addressDomain(addr string) string {
	_, d, _ := strings.Cut(addr, "@")
	return strings.ToLower(d)
}
