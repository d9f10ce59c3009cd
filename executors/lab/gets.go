package lab

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/executors/psobj"
)

// The read-only simulated cmdlets.

// runspaceID is the RunspaceId remote PowerShell stamps on every object.
const runspaceID = "5a8f0c3e-7b1d-4e2a-9c6f-0d4b3a2e1f70"

const typeADObjectID = "Microsoft.Exchange.Data.Directory.ADObjectId"

// adChain is the type chain of Exchange configuration objects.
func adChain(t string) []string {
	return chain(t, "Microsoft.Exchange.Data.Directory.ADLegacyVersionableObject",
		"Microsoft.Exchange.Data.Directory.ADConfigurationObject", "Microsoft.Exchange.Data.Directory.ADObject",
		"Microsoft.Exchange.Data.Directory.ADRawEntry", "Microsoft.Exchange.Data.ConfigurableObject")
}

// queueOn resolves a queue identity, Server\Queue or a queue of the local
// server, to its server and its identity as Exchange writes it.
func (c *call) queueOn(id string) (*server, string, error) {
	s, rest, err := c.onServer(id)
	if err != nil {
		return nil, "", err
	}
	return s, s.name + `\` + rest, nil
}

// onServer splits an identity Server\Name, or Name on the local server, into
// its server and the rest.
func (c *call) onServer(id string) (*server, string, error) {
	srv, rest, ok := strings.Cut(id, `\`)
	if !ok {
		return c.local, id, nil
	}
	s := c.o.serverByID(srv)
	if s == nil {
		return nil, "", c.notFound(id)
	}
	return s, rest, nil
}

// server resolves -Server.
func (c *call) server() (*server, error) {
	s := c.o.serverByID(c.str("Server"))
	if s == nil {
		return nil, c.notFound(c.str("Server"))
	}
	return s, nil
}

func getQueue(c *call) ([]any, error) {
	servers := []*server{c.local}
	var want string
	switch {
	case c.has("Identity"):
		s, id, err := c.queueOn(c.str("Identity"))
		if err != nil {
			return nil, err
		}
		servers, want = []*server{s}, id
	case c.has("Server"):
		s, err := c.server()
		if err != nil {
			return nil, err
		}
		servers = []*server{s}
	}
	var out []any
	for _, s := range servers {
		if st := s.transport().status; st != "Running" {
			return nil, cmdletErr(c.cmd.name, "NotSpecified: (:) [Get-Queue], QueueViewerException", "[Server="+s.name+"],Microsoft.Exchange.Management.QueueViewerTasks.GetQueue",
				"Failed to connect to the Microsoft Exchange Transport service on computer \"%s\". Verify that a valid computer name was used and the Microsoft Exchange Transport service is started.", s.host)
		}
		for _, q := range s.queues {
			if want != "" && !queueMatches(q, s, want) {
				continue
			}
			out = append(out, queueObj(q))
		}
	}
	if want != "" && len(out) == 0 {
		return nil, cmdletErr(c.cmd.name, "NotSpecified: (:) [Get-Queue], LocalizedException", "Microsoft.Exchange.Management.QueueViewerTasks.GetQueue",
			"The queue \"%s\" couldn't be found.", c.str("Identity"))
	}
	return c.limit(out), nil
}

// queueMatches: a queue identity is Server\Id or Server\NextHopDomain.
func queueMatches(q *queue, s *server, want string) bool {
	return strings.EqualFold(q.Identity, want) || strings.EqualFold(s.name+`\`+q.NextHopDomain, want)
}

func queueObj(q *queue) *psobj.Object {
	cat := q.NextHopCategory
	if cat == "" {
		cat = "Internal"
		if q.DeliveryType == "DnsConnectorDelivery" || q.DeliveryType == "SmartHostConnectorDelivery" {
			cat = "External"
		}
	}
	risk := q.RiskLevel
	if risk == "" {
		risk = "Normal"
	}
	ints := func(n ...int) *psobj.Object {
		l := make([]any, len(n))
		for i, v := range n {
			l[i] = int64(v)
		}
		return &psobj.Object{TypeNames: []string{"System.Int32[]", "System.Array", "System.Object"}, List: l}
	}
	id := ident("Microsoft.Exchange.Data.QueueViewer.QueueIdentity", q.Identity)
	return obj(chain("Microsoft.Exchange.Data.QueueViewer.ExtensibleQueueInfo", "Microsoft.Exchange.Data.QueueViewer.PagedDataObject"), q.Identity,
		p("RunspaceId", runspaceID),
		p("DeliveryType", enum("Microsoft.Exchange.Data.DeliveryType", q.DeliveryType)),
		p("NextHopDomain", q.NextHopDomain),
		p("TlsDomain", str(q.TlsDomain)),
		p("NextHopConnector", guid(q.NextHopConnector)),
		p("Status", enum("Microsoft.Exchange.Data.QueueViewer.QueueStatus", q.Status)),
		p("MessageCount", int64(q.MessageCount)),
		p("LastError", str(q.LastError)),
		p("RetryCount", int64(q.RetryCount)),
		p("LastRetryTime", date(q.LastRetryTime)),
		p("NextRetryTime", date(q.NextRetryTime)),
		p("FirstRetryTime", date(q.FirstRetryTime)),
		p("DeferredMessageCount", int64(q.DeferredMessageCount)),
		p("LockedMessageCount", int64(q.LockedMessageCount)),
		p("MessageCountsPerPriority", ints(0, q.MessageCount, 0, 0)),
		p("DeferredMessageCountsPerPriority", ints(0, q.DeferredMessageCount, 0, 0)),
		p("RiskLevel", enum("Microsoft.Exchange.Data.RiskLevel", risk)),
		p("OutboundIPPool", int64(q.OutboundIPPool)),
		p("NextHopCategory", enum("Microsoft.Exchange.Data.QueueViewer.NextHopCategory", cat)),
		p("IncomingRate", q.IncomingRate),
		p("OutgoingRate", q.OutgoingRate),
		p("Velocity", q.Velocity),
		p("QueueIdentity", id),
		p("PriorityDescriptions", strArray([]string{"High", "Normal", "Low", "None"})),
		p("Identity", id),
		p("IsValid", true),
		p("ObjectState", objectState()),
	)
}

// trackingEvents lists a server's message tracking log: its recorded events and
// the failures that recur while the incident lasts, oldest first.
func (o *org) trackingEvents(s *server, now time.Time) []*trackingEvent {
	out := slices.Clone(s.tracking)
	until := now
	if !o.stoppedAt.IsZero() && o.stoppedAt.Before(until) {
		until = o.stoppedAt
	}
	// A failure that has not stopped has just happened again: the lab's clock
	// is real while playbook waits are scaled down, so a re-check after a
	// "5-minute" wait would otherwise find nothing new in its window.
	// At the clock's own precision: a query's now is rounded to the
	// millisecond, and a re-check right after a relief must still see it.
	// Only the server's first stream (in the organisation file's order) recurs,
	// so which failure came last depends neither on which query (FAIL or DEFER,
	// run concurrently) came last nor on where the clock falls in each stream's
	// period.
	var recurring *stream
	var latest time.Time
	for _, st := range o.streams {
		if !strings.EqualFold(st.server, s.name) {
			continue
		}
		evs := st.events(until)
		if len(evs) > 0 && recurring == nil {
			recurring = st
		}
		for _, ev := range evs {
			latest = maxTime(latest, ev.Timestamp)
		}
		out = append(out, evs...)
	}
	if at := o.now().UTC(); recurring != nil && o.stoppedAt.IsZero() && latest.Before(at) {
		// At least a second after the latest event: tracking times reach the
		// playbook in whole seconds, and two streams of a server may both fall
		// on the second the lab started (EX02's FAIL and DEFER in
		// throttled-sender), which made "the last reply" a coin toss.
		if next := latest.Truncate(time.Second).Add(time.Second); at.Before(next) {
			at = next
		}
		out = append(out, recurring.at(at))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Timestamp.Before(out[j].Timestamp) })
	return out
}

func getMessageTrackingLog(c *call) ([]any, error) {
	s := c.local
	if c.has("Server") {
		var err error
		if s, err = c.server(); err != nil {
			return nil, err
		}
	}
	start, _ := c.args["Start"].(time.Time)
	end, _ := c.args["End"].(time.Time)
	recipients, _ := c.args["Recipients"].([]string)
	var out []any
	for _, ev := range c.o.trackingEvents(s, c.now) {
		switch {
		case !start.IsZero() && ev.Timestamp.Before(start), !end.IsZero() && ev.Timestamp.After(end),
			c.has("EventId") && !strings.EqualFold(ev.EventId, c.str("EventId")),
			c.has("Sender") && !strings.EqualFold(ev.Sender, c.str("Sender")),
			c.has("MessageId") && !strings.EqualFold(strings.Trim(ev.MessageId, "<>"), strings.Trim(c.str("MessageId"), "<>")),
			c.has("MessageSubject") && !strings.Contains(strings.ToLower(ev.MessageSubject), strings.ToLower(c.str("MessageSubject"))),
			len(recipients) > 0 && !slices.ContainsFunc(ev.Recipients, func(r string) bool {
				return slices.ContainsFunc(recipients, func(w string) bool { return strings.EqualFold(r, w) })
			}):
			continue
		}
		out = append(out, trackingObj(s, ev))
	}
	return c.limit(out), nil
}

func trackingObj(s *server, ev *trackingEvent) *psobj.Object {
	host := ev.ServerHostname
	if host == "" {
		host = s.name
	}
	dir := ev.Directionality
	if dir == "" {
		dir = "Originating"
	}
	return obj(chain("Microsoft.Exchange.Management.TransportLogSearchTasks.MessageTrackingEvent"),
		"Microsoft.Exchange.Management.TransportLogSearchTasks.MessageTrackingEvent",
		p("RunspaceId", runspaceID),
		p("Timestamp", ev.Timestamp),
		p("ClientIp", str(ev.ClientIp)),
		p("ClientHostname", str(ev.ClientHostname)),
		p("ServerIp", str(ev.ServerIp)),
		p("ServerHostname", host),
		p("SourceContext", str(ev.SourceContext)),
		p("ConnectorId", str(ev.ConnectorId)),
		p("Source", ev.Source),
		p("EventId", ev.EventId),
		p("InternalMessageId", int64(ev.Timestamp.Unix()%1000000)),
		p("MessageId", ev.MessageId),
		p("Recipients", strArray(ev.Recipients)),
		p("RecipientStatus", strArray(ev.RecipientStatus)),
		p("TotalBytes", ev.TotalBytes),
		p("RecipientCount", int64(len(ev.Recipients))),
		p("RelatedRecipientAddress", nil),
		p("Reference", strArray(ev.Reference)),
		p("MessageSubject", ev.MessageSubject),
		p("Sender", ev.Sender),
		p("ReturnPath", ev.Sender),
		p("Directionality", dir),
		p("MessageInfo", nil),
		p("MessageLatency", nil),
		p("MessageLatencyType", enum("Microsoft.Exchange.Data.MessageLatencyType", "None")),
	)
}

func getServerComponentState(c *call) ([]any, error) {
	s := c.o.serverByID(c.str("Identity"))
	if s == nil {
		return nil, c.notFound(c.str("Identity"))
	}
	s.ensureComponents()
	var out []any
	for _, comp := range s.components {
		if c.has("Component") && !strings.EqualFold(comp.name, c.str("Component")) {
			continue
		}
		out = append(out, componentObj(s, comp))
	}
	if c.has("Component") && len(out) == 0 {
		return nil, cmdletErr(c.cmd.name, "InvalidArgument: (:) [Get-ServerComponentState], ArgumentException", "Microsoft.Exchange.Management.SystemConfigurationTasks.GetServerComponentState",
			"The component '%s' is not a valid server component.", c.str("Component"))
	}
	return out, nil
}

func componentObj(s *server, comp *component) *psobj.Object {
	var entries []any
	for _, r := range comp.requesters {
		entries = append(entries, &psobj.Object{TypeNames: chain("Microsoft.Exchange.Data.ServerComponentStates+ItemEntry"),
			Props: []psobj.Prop{p("Requester", r.requester), p("State", enum("Microsoft.Exchange.Data.ServerComponentStates.ServiceState", r.state)), p("Timestamp", date(r.at))}})
	}
	if entries == nil {
		entries = []any{}
	}
	return obj(chain("Microsoft.Exchange.Management.SystemConfigurationTasks.ServerComponentStatePresentationObject", "Microsoft.Exchange.Data.ConfigurableObject"), s.host,
		p("RunspaceId", runspaceID),
		p("ServerFqdn", s.host),
		p("Component", comp.name),
		p("State", enum("Microsoft.Exchange.Data.ServerComponentStates.ServiceState", comp.state())),
		p("LocalStates", &psobj.Object{TypeNames: []string{ds + "System.Collections.Generic.List`1[[Microsoft.Exchange.Data.ServerComponentStates+ItemEntry]]", ds + "System.Object"}, List: entries}),
		p("RemoteStates", &psobj.Object{TypeNames: []string{ds + "System.Collections.Generic.List`1[[Microsoft.Exchange.Data.ServerComponentStates+ItemEntry]]", ds + "System.Object"}, List: slices.Clone(entries)}),
		p("Identity", ident(typeADObjectID, s.host)),
		p("IsValid", true),
		p("ObjectState", objectState()),
	)
}

// selectServers: -Identity names one server, else all of them.
func (c *call) selectServers() ([]*server, error) {
	if !c.has("Identity") {
		return c.o.servers, nil
	}
	s := c.o.serverByID(c.str("Identity"))
	if s == nil {
		return nil, c.notFound(c.str("Identity"))
	}
	return []*server{s}, nil
}

func getTransportService(c *call) ([]any, error) {
	servers, err := c.selectServers()
	if err != nil {
		return nil, err
	}
	var out []any
	for _, s := range servers {
		out = append(out, transportObj(s))
	}
	return out, nil
}

func transportObj(s *server) *psobj.Object {
	st := s.settings
	return obj(adChain("Microsoft.Exchange.Data.Directory.SystemConfiguration.TransportServer"), s.name,
		p("RunspaceId", runspaceID),
		p("Name", s.name),
		p("MaxOutboundConnections", unlimitedInt(s.maxOutbound, "System.Int32")),
		p("MaxPerDomainOutboundConnections", unlimitedInt(s.maxPerDomain, "System.Int32")),
		p("MessageRetryInterval", span(st.MessageRetryInterval)),
		p("TransientFailureRetryInterval", span(st.TransientFailureRetryInterval)),
		p("TransientFailureRetryCount", int64(st.TransientFailureRetryCount)),
		p("OutboundConnectionFailureRetryInterval", span(st.OutboundConnectionFailureRetryInterval)),
		p("MessageExpirationTimeout", span(st.MessageExpirationTimeout)),
		p("DelayNotificationTimeout", span(st.DelayNotificationTimeout)),
		p("MaxConcurrentMailboxDeliveries", int64(st.MaxConcurrentMailboxDeliveries)),
		p("MaxConcurrentMailboxSubmissions", int64(st.MaxConcurrentMailboxSubmissions)),
		p("MaxConnectionRatePerMinute", int64(st.MaxConnectionRatePerMinute)),
		p("MessageTrackingLogEnabled", st.MessageTrackingLogEnabled),
		p("MessageTrackingLogMaxAge", span(st.MessageTrackingLogMaxAge)),
		p("Identity", ident(typeADObjectID, s.name)),
		p("IsValid", true),
		p("ObjectState", objectState()),
	)
}

func getSendConnector(c *call) ([]any, error) {
	return byIdentity(c, c.o.connectors, func(sc *sendConnector, id string) bool { return strings.EqualFold(sc.identity, id) },
		sendConnectorObj)
}

// byIdentity answers a Get- cmdlet over items: all of them, or the ones its
// -Identity names; naming none is the cmdlet's not-found error, as in Exchange.
func byIdentity[T any](c *call, items []T, named func(T, string) bool, obj func(T) *psobj.Object) ([]any, error) {
	var out []any
	for _, it := range items {
		if c.has("Identity") && !named(it, c.str("Identity")) {
			continue
		}
		out = append(out, obj(it))
	}
	if c.has("Identity") && len(out) == 0 {
		return nil, c.notFound(c.str("Identity"))
	}
	return out, nil
}

func sendConnectorObj(sc *sendConnector) *psobj.Object {
	spaces := make([]any, 0, len(sc.addressSpaces))
	for _, a := range sc.addressSpaces {
		spaces = append(spaces, ident("Microsoft.Exchange.Data.AddressSpace", "SMTP:"+a+";1"))
	}
	hosts := make([]any, 0, len(sc.smartHosts))
	for _, h := range sc.smartHosts {
		hosts = append(hosts, ident("Microsoft.Exchange.Data.SmartHost", h))
	}
	size := sc.maxMessageSize
	if size == 0 {
		size = 35 << 20
	}
	port := sc.port
	if port == 0 {
		port = 25
	}
	auth := sc.smartHostAuth
	if auth == "" {
		auth = "None"
	}
	var tlsLevel any
	if sc.tlsAuthLevel != "" {
		tlsLevel = enum("Microsoft.Exchange.Data.Directory.SystemConfiguration.TlsAuthLevel", sc.tlsAuthLevel)
	}
	inactivity, _ := psobj.ParseTimeSpan(sc.inactivity)
	if sc.inactivity == "" {
		inactivity = 10 * time.Minute
	}
	perConn := sc.perConnection
	if perConn == 0 {
		perConn = 20
	}
	return obj(adChain("Microsoft.Exchange.Data.Directory.SystemConfiguration.SmtpSendConnectorConfig"), sc.identity,
		p("RunspaceId", runspaceID),
		p("AddressSpaces", list("Microsoft.Exchange.Data.AddressSpace", spaces)),
		p("CloudServicesMailEnabled", sc.cloudMail),
		p("ConnectionInactivityTimeOut", span(inactivity)),
		p("DNSRoutingEnabled", sc.dnsRouting),
		p("DomainSecureEnabled", false),
		p("Enabled", !sc.disabled),
		p("Fqdn", str(sc.fqdn)),
		p("FrontendProxyEnabled", false),
		p("IgnoreSTARTTLS", false),
		p("IsScopedConnector", false),
		p("IsSmtpConnector", true),
		p("MaxMessageSize", unlimitedSize(size)),
		p("Port", int64(port)),
		p("RequireTLS", sc.requireTLS),
		p("SmartHostAuthMechanism", enum("Microsoft.Exchange.Data.Directory.SystemConfiguration.SmtpSendConnectorConfig+AuthMechanisms", auth)),
		p("SmartHosts", list("Microsoft.Exchange.Data.SmartHost", hosts)),
		p("SmartHostsString", strings.Join(sc.smartHosts, ",")),
		p("SmtpMaxMessagesPerConnection", int64(perConn)),
		p("SourceIPAddress", ident("System.Net.IPAddress", either(sc.sourceIP, "0.0.0.0"))),
		p("SourceTransportServers", identList(typeADObjectID, sc.sourceServers)),
		p("TlsAuthLevel", tlsLevel),
		p("TlsCertificateName", ident("Microsoft.Exchange.Data.SmtpX509Identifier", sc.tlsCertName)),
		p("TlsDomain", str(sc.tlsDomain)),
		p("UseExternalDNSServersEnabled", false),
		p("Name", sc.identity),
		p("Identity", ident(typeADObjectID, sc.identity)),
		p("IsValid", true),
		p("ObjectState", objectState()),
	)
}

func getReceiveConnector(c *call) ([]any, error) {
	servers := c.o.servers
	if c.has("Server") {
		s, err := c.server()
		if err != nil {
			return nil, err
		}
		servers = []*server{s}
	}
	var out []any
	for _, s := range servers {
		for _, rc := range s.receiveConnectors() {
			id := s.name + `\` + rc.name
			if c.has("Identity") && !strings.EqualFold(id, c.str("Identity")) && !strings.EqualFold(rc.name, c.str("Identity")) {
				continue
			}
			out = append(out, receiveConnectorObj(s, rc))
		}
	}
	if c.has("Identity") && len(out) == 0 {
		return nil, c.notFound(c.str("Identity"))
	}
	return out, nil
}

func (s *server) receiveConnectors() []*receiveConnector {
	if s.receive == nil {
		s.receive = defaultReceiveConnectors(s.name, s.host)
	}
	return s.receive
}

func receiveConnectorObj(s *server, rc *receiveConnector) *psobj.Object {
	id := s.name + `\` + rc.name
	return obj(adChain("Microsoft.Exchange.Data.Directory.SystemConfiguration.ReceiveConnector"), id,
		p("RunspaceId", runspaceID),
		p("AuthMechanism", enum("Microsoft.Exchange.Data.Directory.SystemConfiguration.AuthMechanisms", rc.authMechanism)),
		p("Bindings", identList("Microsoft.Exchange.Data.IPBinding", rc.bindings)),
		p("Enabled", rc.enabled),
		p("Fqdn", rc.fqdn),
		p("MaxInboundConnectionPerSource", unlimitedInt(i64(20), "System.Int32")),
		p("MaxMessageSize", byteSize(rc.maxMessageSize)),
		p("MaxRecipientsPerMessage", int64(200)),
		p("PermissionGroups", enum("Microsoft.Exchange.Data.Directory.SystemConfiguration.PermissionGroups", rc.permissionGroups)),
		p("RemoteIPRanges", identList("Microsoft.Exchange.Data.IPRange", rc.remoteIPRanges)),
		p("RequireTLS", rc.requireTLS),
		p("Server", ident(typeADObjectID, s.name)),
		p("TlsCertificateName", ident("Microsoft.Exchange.Data.SmtpX509Identifier", rc.tlsCertName)),
		p("TransportRole", enum("Microsoft.Exchange.Data.Directory.SystemConfiguration.ReceiveConnector+TransportRole", rc.role)),
		p("Name", rc.name),
		p("Identity", ident(typeADObjectID, id)),
		p("IsValid", true),
		p("ObjectState", objectState()),
	)
}

func getMailbox(c *call) ([]any, error) {
	out, err := byIdentity(c, c.o.mailboxes, func(m *userMailbox, id string) bool { return c.o.mailbox(id) == m }, c.o.mailboxObj)
	if err != nil {
		return nil, err
	}
	return c.limit(out), nil
}

func (o *org) mailboxObj(m *userMailbox) *psobj.Object {
	name := either(m.name, strings.Split(m.address, "@")[0])
	alias := either(m.alias, strings.Split(m.address, "@")[0])
	id := o.orgName + "/Users/" + name
	var policy any
	if m.policy != "" {
		policy = ident(typeADObjectID, m.policy)
	}
	return obj(chain("Microsoft.Exchange.Data.Directory.Management.Mailbox", "Microsoft.Exchange.Data.Directory.Management.MailEnabledOrgPerson",
		"Microsoft.Exchange.Data.Directory.Management.MailEnabledRecipient", "Microsoft.Exchange.Data.Directory.ADPresentationObject",
		"Microsoft.Exchange.Data.ConfigurableObject"), name,
		p("RunspaceId", runspaceID),
		p("Database", ident(typeADObjectID, either(m.database, "DB01"))),
		p("ServerName", strings.ToLower(either(m.serverName, o.servers[0].name))),
		p("ThrottlingPolicy", policy),
		p("RecipientLimits", unlimitedInt(nil, "System.Int32")),
		p("MaxSendSize", unlimitedSize(sizeUnlimited)),
		p("Alias", alias),
		p("DisplayName", either(m.displayName, name)),
		p("EmailAddresses", identList("Microsoft.Exchange.Data.ProxyAddress", []string{"SMTP:" + m.address})),
		p("PrimarySmtpAddress", ident("Microsoft.Exchange.Data.SmtpAddress", m.address)),
		p("RecipientTypeDetails", enum("Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails", "UserMailbox")),
		p("Name", name),
		p("Identity", ident(typeADObjectID, id)),
		p("IsValid", true),
		p("ObjectState", objectState()),
	)
}

func getThrottlingPolicy(c *call) ([]any, error) {
	return byIdentity(c, c.o.policies, func(pol *policy, id string) bool { return c.o.findPolicy(id) == pol }, policyObj)
}

func policyObj(pol *policy) *psobj.Object {
	const u32 = "System.UInt32"
	return obj(adChain("Microsoft.Exchange.Data.Directory.Management.ThrottlingPolicy"), pol.name,
		p("RunspaceId", runspaceID),
		p("IsLegacyDefault", false),
		p("ThrottlingPolicyScope", enum("Microsoft.Exchange.Data.Directory.ThrottlingPolicyScopeType", pol.scope)),
		p("IsServiceAccount", false),
		p("RecipientRateLimit", pol.limit("RecipientRateLimit", pol.recipient)),
		p("MessageRateLimit", pol.limit("MessageRateLimit", pol.message)),
		p("ForwardeeLimit", pol.limit("ForwardeeLimit", pol.forwardee)),
		p("Diagnostics", false),
		p("Name", pol.name),
		p("Identity", ident(typeADObjectID, pol.name)),
		p("IsValid", true),
		p("ObjectState", objectState()),
	)
}

func getThrottlingPolicyAssociation(c *call) ([]any, error) {
	var out []any
	for _, m := range c.o.mailboxes {
		if c.has("Identity") && c.o.mailbox(c.str("Identity")) != m {
			continue
		}
		name := either(m.name, strings.Split(m.address, "@")[0])
		var pol any
		if m.policy != "" {
			pol = ident(typeADObjectID, m.policy)
		}
		id := c.o.orgName + "/Users/" + name
		out = append(out, obj(chain("Microsoft.Exchange.Data.Directory.Management.ThrottlingPolicyAssociation",
			"Microsoft.Exchange.Data.Directory.ADPresentationObject", "Microsoft.Exchange.Data.ConfigurableObject"), name,
			p("RunspaceId", runspaceID),
			p("ObjectId", ident(typeADObjectID, id)),
			p("ThrottlingPolicyId", pol),
			p("Name", name),
			p("Identity", ident(typeADObjectID, id)),
			p("IsValid", true),
			p("ObjectState", objectState()),
		))
	}
	if c.has("Identity") && len(out) == 0 {
		return nil, c.notFound(c.str("Identity"))
	}
	return c.limit(out), nil
}

func getAcceptedDomain(c *call) ([]any, error) {
	var out []any
	for _, d := range c.o.acceptedDomains {
		if c.has("Identity") && !strings.EqualFold(d.name, c.str("Identity")) && !strings.EqualFold(d.domain, c.str("Identity")) {
			continue
		}
		out = append(out, obj(adChain("Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomain"), d.name,
			p("RunspaceId", runspaceID),
			p("DomainName", ident("Microsoft.Exchange.Data.SmtpDomainWithSubdomains", d.domain)),
			p("DomainType", enum("Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomainType", either(d.kind, "Authoritative"))),
			p("Default", d.isDefault),
			p("AddressBookEnabled", d.kind != "ExternalRelay"),
			p("MatchSubDomains", false),
			p("Name", d.name),
			p("Identity", ident(typeADObjectID, d.name)),
			p("IsValid", true),
			p("ObjectState", objectState()),
		))
	}
	if c.has("Identity") && len(out) == 0 {
		return nil, c.notFound(c.str("Identity"))
	}
	return out, nil
}

func getExchangeServer(c *call) ([]any, error) {
	servers, err := c.selectServers()
	if err != nil {
		return nil, err
	}
	var out []any
	for _, s := range servers {
		site := either(s.site, "Default-First-Site-Name")
		out = append(out, obj(chain("Microsoft.Exchange.Data.Directory.Management.ExchangeServer",
			"Microsoft.Exchange.Data.Directory.ADPresentationObject", "Microsoft.Exchange.Data.ConfigurableObject"), s.name,
			p("RunspaceId", runspaceID),
			p("Name", s.name),
			p("Fqdn", s.host),
			p("Domain", domainOf(s.host)),
			p("Site", ident(typeADObjectID, c.o.orgName+"/Configuration/Sites/"+site)),
			p("ServerRole", enum("Microsoft.Exchange.Data.Directory.ServerRole", "Mailbox")),
			p("Edition", enum("Microsoft.Exchange.Data.Directory.SystemConfiguration.ServerEditionType", "Enterprise")),
			p("AdminDisplayVersion", ident("Microsoft.Exchange.Data.ServerVersion", either(s.version, "Version 15.2 (Build 1544.4)"))),
			p("IsHubTransportServer", true),
			p("IsMailboxServer", true),
			p("IsEdgeServer", false),
			p("IsExchangeTrialEdition", false),
			p("Identity", ident(typeADObjectID, s.name)),
			p("IsValid", true),
			p("ObjectState", objectState()),
		))
	}
	return out, nil
}

func domainOf(fqdn string) string {
	_, d, _ := strings.Cut(fqdn, ".")
	return d
}

func getService(c *call) ([]any, error) {
	if c.local.services == nil {
		c.local.services = defaultServices()
	}
	names, _ := c.args["Name"].([]string)
	var out []any
	for _, n := range names {
		found := false
		for _, sv := range c.local.services {
			if ok, _ := path.Match(strings.ToLower(n), strings.ToLower(sv.name)); ok {
				out = append(out, serviceObj(c.local, sv))
				found = true
			}
		}
		if !found && !strings.ContainsAny(n, "*?[") {
			return nil, cmdletErr(c.cmd.name, fmt.Sprintf("ObjectNotFound: (%s:String) [Get-Service], ServiceCommandException", n),
				"NoServiceFoundForGivenName,Microsoft.PowerShell.Commands.GetServiceCommand", "Cannot find any service with service name '%s'.", n)
		}
	}
	if names == nil {
		for _, sv := range c.local.services {
			out = append(out, serviceObj(c.local, sv))
		}
	}
	return out, nil
}

func serviceObj(s *server, sv *service) *psobj.Object {
	return obj(chain("System.ServiceProcess.ServiceController", "System.ComponentModel.Component", "System.MarshalByRefObject"),
		"System.ServiceProcess.ServiceController",
		p("Name", sv.name),
		p("DisplayName", sv.displayName),
		p("ServiceName", sv.name),
		p("Status", enum("System.ServiceProcess.ServiceControllerStatus", sv.status)),
		p("StartType", enum("System.ServiceProcess.ServiceStartMode", either(sv.startType, "Automatic"))),
		p("MachineName", "."),
		p("CanStop", sv.status == "Running"),
		p("CanPauseAndContinue", false),
		p("CanShutdown", sv.status == "Running"),
	)
}

func testSmtpPort(c *call) ([]any, error) {
	remote := c.str("RemoteHost")
	port := int64(25)
	if n, ok := c.args["Port"].(int64); ok {
		port = n
	}
	v := c.o.portView(c.local, remote, port)
	return []any{&psobj.Object{TypeNames: []string{ds + "System.Management.Automation.PSCustomObject", ds + "System.Object"},
		Props: []psobj.Prop{p("ComputerName", c.local.name), p("RemoteHost", remote), p("RemotePort", port),
			p("TcpSucceeded", v.tcpSucceeded), p("Banner", str(v.banner)), p("LatencyMs", v.latencyMs), p("Error", str(v.err))}}}, nil
}

// portView is what port host:port looks like from server s: as the org file
// says, else a lab server's own SMTP listener (selfSMTP), else as the world
// answers the bot's own probes (the EOP endpoint, a destination's MX), else an
// unknown name.
func (o *org) portView(s *server, host string, port int64) portView {
	if v, ok := s.ports[strings.ToLower(fmt.Sprintf("%s:%d", host, port))]; ok {
		return *v
	}
	if self := o.serverByID(host); self != nil && port == 25 {
		return o.selfSMTP(self)
	}
	h := strings.ToLower(host)
	outcome := func(so smtpOutcome) portView {
		switch so.status {
		case "ok":
			return portView{tcpSucceeded: true, banner: fmt.Sprintf("%d %s", so.code, so.text), latencyMs: 38}
		case "timeout":
			return portView{latencyMs: 21000, err: "A connection attempt failed because the connected party did not properly respond after a period of time, or established connection failed because connected host has failed to respond"}
		case "refused":
			return portView{latencyMs: 2, err: "No connection could be made because the target machine actively refused it"}
		}
		if so.code != 0 {
			return portView{tcpSucceeded: true, banner: strings.TrimSpace(fmt.Sprintf("%d %s %s", so.code, so.enhanced, so.text)), latencyMs: 41}
		}
		return portView{err: either(so.err, so.text)}
	}
	if strings.HasSuffix(h, ".mail.protection.outlook.com") || h == "outlook.office365.com" {
		return outcome(o.eop)
	}
	for _, d := range o.destinations {
		if strings.EqualFold(d.mx, h) || d.ip == h {
			return outcome(d.probe)
		}
	}
	return portView{err: "No such host is known"}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// getMessage lists the messages of the queues (Get-Message): of one queue
// (-Queue), one message (-Identity Server\Queue\Id) or every queue of a server
// (-Server, default the local one). A queue lists the first MessageCount of the
// messages its organisation file gives, so a queue a retry drained lists none,
// and the lab invents none that the file does not describe.
func getMessage(c *call) ([]any, error) {
	servers := []*server{c.local}
	var wantQueue, wantID string
	switch {
	case c.has("Identity"):
		wantID = c.str("Identity")
		srv, rest, _ := strings.Cut(wantID, `\`)
		s := c.o.serverByID(srv)
		if s == nil || !strings.Contains(rest, `\`) {
			return nil, c.notFound(wantID)
		}
		servers = []*server{s}
	case c.has("Queue"):
		s, id, err := c.queueOn(c.str("Queue"))
		if err != nil {
			return nil, err
		}
		servers, wantQueue = []*server{s}, id
	case c.has("Server"):
		s, err := c.server()
		if err != nil {
			return nil, err
		}
		servers = []*server{s}
	}
	var out []any
	found := false
	for _, s := range servers {
		if st := s.transport().status; st != "Running" {
			return nil, cmdletErr(c.cmd.name, "NotSpecified: (:) [Get-Message], QueueViewerException", "[Server="+s.name+"],Microsoft.Exchange.Management.QueueViewerTasks.GetMessageInfo",
				"Failed to connect to the Microsoft Exchange Transport service on computer \"%s\". Verify that a valid computer name was used and the Microsoft Exchange Transport service is started.", s.host)
		}
		for _, q := range s.queues {
			if wantQueue != "" && !queueMatches(q, s, wantQueue) {
				continue
			}
			found = true
			for i, m := range q.messages {
				if i >= q.MessageCount {
					break
				}
				id := fmt.Sprintf(`%s\%d`, q.Identity, messageNumber(q, i))
				if wantID != "" && !strings.EqualFold(id, wantID) {
					continue
				}
				out = append(out, messageObj(s, q, m, id))
			}
		}
	}
	switch {
	case wantQueue != "" && !found:
		return nil, cmdletErr(c.cmd.name, "NotSpecified: (:) [Get-Message], LocalizedException", "Microsoft.Exchange.Management.QueueViewerTasks.GetMessageInfo",
			"The queue \"%s\" couldn't be found.", c.str("Queue"))
	case wantID != "" && len(out) == 0:
		return nil, cmdletErr(c.cmd.name, "NotSpecified: (:) [Get-Message], LocalizedException", "Microsoft.Exchange.Management.QueueViewerTasks.GetMessageInfo",
			"The message \"%s\" couldn't be found.", wantID)
	}
	return c.limit(out), nil
}

// messageNumber is a message's id within its queue: Exchange numbers them with
// a large integer (Learn's examples show Server\Queue\<number>); the lab's are
// stable per queue and position.
func messageNumber(q *queue, i int) int64 {
	var h int64 = 13563506262016
	for _, r := range q.Identity {
		h = h*31 + int64(r)
		h &= 1<<44 - 1
	}
	return h + int64(i) + 1
}

// messageStatus is what a message in a queue shows: Retry while its queue
// retries, Suspended with it, else Ready.
func messageStatus(q *queue) string {
	switch q.Status {
	case "Retry", "Suspended":
		return q.Status
	case "Active":
		return "Active"
	}
	return "Ready"
}

// defaultMessageSize is the lab's size of a message the file gives none.
const defaultMessageSize = 48213

func messageObj(s *server, q *queue, m *queuedMessage, id string) *psobj.Object {
	expires := m.ExpirationTime
	if expires.IsZero() {
		expires = m.DateReceived.Add(s.settings.MessageExpirationTimeout)
	}
	lastErr, retries := q.LastError, q.RetryCount
	if m.LastError != nil {
		lastErr = *m.LastError
	}
	if m.RetryCount != nil {
		retries = *m.RetryCount
	}
	size := m.Size
	if size == 0 {
		size = defaultMessageSize
	}
	return obj(chain("Microsoft.Exchange.Data.QueueViewer.ExtensibleMessageInfo", "Microsoft.Exchange.Data.QueueViewer.PagedDataObject"), id,
		p("RunspaceId", runspaceID),
		p("FromAddress", m.FromAddress),
		p("Status", enum("Microsoft.Exchange.Data.QueueViewer.MessageStatus", messageStatus(q))),
		p("Size", byteSize(size)),
		p("MessageSourceName", "SMTP:Default "+s.name),
		p("SourceIP", "127.0.0.1"),
		p("SCL", int64(-1)),
		p("DateReceived", date(m.DateReceived)),
		p("ExpirationTime", date(expires)),
		p("LastError", str(lastErr)),
		p("RetryCount", int64(retries)),
		p("Subject", m.Subject),
		p("InternetMessageId", m.InternetMessageId),
		p("Queue", ident("Microsoft.Exchange.Data.QueueViewer.QueueIdentity", q.Identity)),
		p("Identity", ident("Microsoft.Exchange.Data.QueueViewer.MessageIdentity", id)),
		p("IsValid", true),
		p("ObjectState", objectState()),
	)
}
