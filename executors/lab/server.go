package lab

import (
	"slices"
	"strings"
	"time"
)

// The parts of a server the cmdlet path reads besides its queues: Windows
// services, server component states, Get-TransportService settings, message
// tracking, receive connectors and the port-25 view from the server.

type service struct {
	name, displayName string
	status            string // Running, Stopped, StartPending, StopPending
	startType         string // Automatic, Manual, Disabled
}

// component is one server component state with every requester's entry:
// Exchange keeps the component Inactive while any requester says so, which is
// why one requester's Set-ServerComponentState cannot undo another's.
type component struct {
	name       string
	requesters []*requesterState
}

type requesterState struct {
	requester string // HealthAPI, Maintenance, Sidelined, Functional, Deployment
	state     string // Active, Inactive, Draining
	at        time.Time
}

// Requesters Set-ServerComponentState accepts.
var requesterNames = []string{"HealthAPI", "Maintenance", "Sidelined", "Functional", "Deployment"}

// componentStates Set-ServerComponentState accepts.
var componentStates = []string{"Active", "Inactive", "Draining"}

// state is the component's effective state: Inactive if any requester has it
// Inactive, else Draining if any drains it, else Active.
func (c *component) state() string {
	st := "Active"
	for _, r := range c.requesters {
		switch r.state {
		case "Inactive":
			return "Inactive"
		case "Draining":
			st = "Draining"
		}
	}
	return st
}

// set changes one requester's entry, adding it when missing.
func (c *component) set(requester, state string, at time.Time) {
	for _, r := range c.requesters {
		if strings.EqualFold(r.requester, requester) {
			r.state, r.at = state, at
			return
		}
	}
	c.requesters = append(c.requesters, &requesterState{requester: requester, state: state, at: at})
}

// defaultComponents are the components of an Exchange 2019 Mailbox server,
// Active by the Functional requester (the first entries of
// Get-ServerComponentState on a fresh install).
var defaultComponents = []string{"ServerWideOffline", "HubTransport", "FrontendTransport", "Monitoring",
	"RecoveryActionsEnabled", "AutoDiscoverProxy", "ActiveSyncProxy", "EcpProxy", "EwsProxy", "ImapProxy",
	"OabProxy", "OwaProxy", "PopProxy", "PushNotificationsProxy", "RpsProxy", "RwsProxy", "RpcProxy",
	"UMCallRouter", "XropProxy", "HttpProxyAvailabilityGroup", "ForwardSyncDaemon", "ProvisioningRps",
	"MapiProxy", "EdgeTransport", "HighAvailability", "SharedCache", "MailboxDeliveryProxy", "RoutingUpdates",
	"RestProxy", "DefaultProxy", "Lsass", "RoutingService", "E4EProxy", "CafeLAMv2", "LogExportProvider"}

// component returns the named component, creating the default one (Active by
// Functional) on first use so scenarios built in Go need not list them all.
func (s *server) component(name string) *component {
	s.ensureComponents()
	for _, c := range s.components {
		if strings.EqualFold(c.name, name) {
			return c
		}
	}
	c := &component{name: name}
	s.components = append(s.components, c)
	return c
}

func (s *server) ensureComponents() {
	if s.components != nil {
		return
	}
	for _, name := range defaultComponents {
		s.components = append(s.components, &component{name: name,
			requesters: []*requesterState{{requester: "Functional", state: "Active"}}})
	}
}

func (s *server) findComponent(name string) *component {
	s.ensureComponents()
	for _, c := range s.components {
		if strings.EqualFold(c.name, name) {
			return c
		}
	}
	return nil
}

// defaultServices are the Exchange services the JEA endpoint lets Get-Service see.
func defaultServices() []*service {
	return []*service{
		{name: "MSExchangeTransport", displayName: "Microsoft Exchange Transport", status: "Running", startType: "Automatic"},
		{name: "MSExchangeFrontEndTransport", displayName: "Microsoft Exchange Frontend Transport", status: "Running", startType: "Automatic"},
		{name: "MSExchangeSubmission", displayName: "Microsoft Exchange Mailbox Transport Submission", status: "Running", startType: "Automatic"},
		{name: "MSExchangeDelivery", displayName: "Microsoft Exchange Mailbox Transport Delivery", status: "Running", startType: "Automatic"},
		{name: "MSExchangeIS", displayName: "Microsoft Exchange Information Store", status: "Running", startType: "Automatic"},
		{name: "MSExchangeADTopology", displayName: "Microsoft Exchange Active Directory Topology", status: "Running", startType: "Automatic"},
		{name: "MSExchangeServiceHost", displayName: "Microsoft Exchange Service Host", status: "Running", startType: "Automatic"},
	}
}

func (s *server) service(name string) *service {
	if s.services == nil {
		s.services = defaultServices()
	}
	for _, sv := range s.services {
		if strings.EqualFold(sv.name, name) || strings.EqualFold(sv.displayName, name) {
			return sv
		}
	}
	return nil
}

// transport is the MSExchangeTransport service, added when an org file left it out.
func (s *server) transport() *service {
	if sv := s.service("MSExchangeTransport"); sv != nil {
		return sv
	}
	sv := &service{name: "MSExchangeTransport", displayName: "Microsoft Exchange Transport", status: "Running", startType: "Automatic"}
	s.services = append([]*service{sv}, s.services...)
	return sv
}

// transportSettings are the Get-TransportService properties besides the two
// connection limits (server fields of their own, as the script path reads them).
type transportSettings struct {
	MessageRetryInterval                   time.Duration
	TransientFailureRetryInterval          time.Duration
	TransientFailureRetryCount             int
	OutboundConnectionFailureRetryInterval time.Duration
	MessageExpirationTimeout               time.Duration
	DelayNotificationTimeout               time.Duration
	MaxConcurrentMailboxDeliveries         int
	MaxConcurrentMailboxSubmissions        int
	MaxConnectionRatePerMinute             int
	MessageTrackingLogEnabled              bool
	MessageTrackingLogMaxAge               time.Duration
}

// defaultSettings are Exchange 2019's defaults (Get-TransportService on a fresh
// install; see SOURCES.md).
func defaultSettings() transportSettings {
	return transportSettings{
		MessageRetryInterval:                   15 * time.Minute,
		TransientFailureRetryInterval:          5 * time.Minute,
		TransientFailureRetryCount:             6,
		OutboundConnectionFailureRetryInterval: 10 * time.Minute,
		MessageExpirationTimeout:               48 * time.Hour,
		DelayNotificationTimeout:               4 * time.Hour,
		MaxConcurrentMailboxDeliveries:         20,
		MaxConcurrentMailboxSubmissions:        20,
		MaxConnectionRatePerMinute:             1200,
		MessageTrackingLogEnabled:              true,
		MessageTrackingLogMaxAge:               30 * 24 * time.Hour,
	}
}

// trackingEvent is one message tracking log entry.
type trackingEvent struct {
	Timestamp       time.Time
	EventId         string
	Source          string
	SourceContext   string
	ConnectorId     string
	Sender          string
	Recipients      []string
	RecipientStatus []string
	MessageId       string
	MessageSubject  string
	ServerHostname  string
	ServerIp        string
	ClientHostname  string
	ClientIp        string
	TotalBytes      int64
	Directionality  string
	Reference       []string
}

// stream is a tracking event that recurs while the incident lasts: every `every`
// from `since` on, on one server, until a relief stops the failures.
type stream struct {
	server string
	since  time.Time
	every  time.Duration
	event  trackingEvent
}

// events lists a stream's occurrences up to until.
func (st *stream) events(until time.Time) []*trackingEvent {
	var out []*trackingEvent
	if st.every <= 0 {
		return nil
	}
	n := 0
	for t := st.since; !t.After(until); t = t.Add(st.every) {
		out = append(out, st.at(t))
		n++
		if n > 100000 { // a runaway "every" cannot exhaust memory
			break
		}
	}
	return out
}

// at is the stream's occurrence at t.
func (st *stream) at(t time.Time) *trackingEvent {
	ev := st.event
	ev.Timestamp = t
	ev.Recipients = slices.Clone(st.event.Recipients)
	ev.RecipientStatus = slices.Clone(st.event.RecipientStatus)
	if ev.MessageId == "" {
		ev.MessageId = "<lab-" + strings.ToLower(st.server) + "-" + t.UTC().Format("20060102T150405.000") + "@contoso.com>"
	}
	return &ev
}

type receiveConnector struct {
	name             string
	role             string // FrontendTransport, HubTransport
	bindings         []string
	remoteIPRanges   []string
	authMechanism    string
	permissionGroups string
	enabled          bool
	fqdn             string
	maxMessageSize   int64
	requireTLS       bool
	tlsCertName      string
}

// defaultReceiveConnectors are the five an Exchange 2019 Mailbox server is
// installed with.
func defaultReceiveConnectors(name, fqdn string) []*receiveConnector {
	all := []string{"0.0.0.0-255.255.255.255", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}
	mk := func(n, role string, port string, auth, perms string, size int64) *receiveConnector {
		return &receiveConnector{name: n + " " + name, role: role, bindings: []string{"[::]:" + port, "0.0.0.0:" + port},
			remoteIPRanges: all, authMechanism: auth, permissionGroups: perms, enabled: true, fqdn: fqdn, maxMessageSize: size}
	}
	const mb = 1 << 20
	return []*receiveConnector{
		mk("Default", "HubTransport", "2525", "Tls, Integrated, BasicAuth, BasicAuthRequireTLS, ExchangeServer", "ExchangeUsers, ExchangeServers, ExchangeLegacyServers", 35*mb),
		mk("Client Proxy", "HubTransport", "465", "Tls, Integrated, BasicAuth, BasicAuthRequireTLS, ExchangeServer", "ExchangeUsers, ExchangeServers", 35*mb),
		mk("Default Frontend", "FrontendTransport", "25", "Tls, Integrated, BasicAuth, BasicAuthRequireTLS, ExchangeServer", "AnonymousUsers, ExchangeServers, ExchangeLegacyServers", 36*mb),
		mk("Outbound Proxy Frontend", "FrontendTransport", "717", "Tls, Integrated, BasicAuth, BasicAuthRequireTLS, ExchangeServer", "ExchangeServers", 36*mb),
		mk("Client Frontend", "FrontendTransport", "587", "Tls, Integrated, BasicAuth, BasicAuthRequireTLS", "ExchangeUsers", 36*mb),
	}
}

// portView is what Test-NdrSmtpPort from a server finds at one host:port.
type portView struct {
	tcpSucceeded bool
	banner       string
	latencyMs    int64
	err          string
}
