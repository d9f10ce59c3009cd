package lab

import (
	"fmt"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/executors/probe"
)

// org is the simulated organisation's state.
type org struct {
	now     func() time.Time
	servers []*server
	// failing: 5.5.4 / 4.4.0 FAIL and DEFER events keep appearing in tracking.
	failing   bool
	failures  int
	deferrals int
	topSender string
	// restartHelps: a transport restart drains the queues and stops the failures
	// (false in relief-fails).
	restartHelps bool
	// throttlingHelps: raising the sender's policy stops the failures.
	throttlingHelps bool
	mailboxes       []*userMailbox
	policies        []*policy
	// eop is the SMTP outcome of the EOP endpoint.
	eop smtpOutcome

	// The smtp-421 side (see smtp421.go).
	connectors      []*sendConnector
	acceptedDomains []*acceptedDomain
	destinations    map[string]*destination // destination domain → its MX and manners
	zones           map[string]dnsZone      // sending-domain DNS
	listings        map[string]listing      // "ip zone" → DNSBL listing
	dnsblDown       map[string]string       // "ip zone" → the probe status of a zone that does not answer

	// The Microsoft 365 tenant (see graph.go).
	m365 *m365

	// What the cmdlet path adds (see cmdlets.go, reliefs.go): the events that keep
	// arriving in message tracking while the incident lasts, and how the world
	// answers a relief.
	streams    []*stream
	behaviours []*behaviour
	// stoppedAt is when a relief ended the failures (zero while they continue).
	stoppedAt time.Time
	// org-wide names objects are rendered with.
	orgName string
	dc      string
}

type server struct {
	host string
	name string
	// site is the Active Directory site; version the AdminDisplayVersion.
	site, version string
	// services are what Get-Service shows through the JEA endpoint
	// (MSExchangeTransport first); nil is the default set.
	services []*service
	// components are the server component states, each with its requesters.
	components []*component
	queues     []*queue
	// Get-TransportService limits; nil is Unlimited.
	maxOutbound  *int64
	maxPerDomain *int64
	// settings are the rest of Get-TransportService.
	settings transportSettings
	tracking []*trackingEvent
	receive  []*receiveConnector
	// ports are what Test-NdrSmtpPort from this server finds, by "host:port".
	ports map[string]*portView
}

// queue mirrors Get-Queue's ExtensibleQueueInfo.
type queue struct {
	Identity      string
	DeliveryType  string
	NextHopDomain string
	Status        string
	MessageCount  int
	LastError     string
	// Retry times; zero is $null.
	LastRetryTime  time.Time
	NextRetryTime  time.Time
	FirstRetryTime time.Time
	RetryCount     int
	TlsDomain      string
	// NextHopConnector is the connector's Guid; empty is the all-zero Guid.
	NextHopConnector     string
	DeferredMessageCount int
	LockedMessageCount   int
	RiskLevel            string // Normal by default
	OutboundIPPool       int
	NextHopCategory      string // Internal or External; derived from DeliveryType when empty
	IncomingRate         float64
	OutgoingRate         float64
	Velocity             float64
}

type policy struct {
	name      string
	scope     string // Regular, Organization, Global
	recipient *int64
	message   *int64
	forwardee *int64
}

type userMailbox struct {
	address, name, alias, displayName string
	policy                            string // policy name; "" = the default policy
	database, serverName              string
}

type acceptedDomain struct {
	name, domain, kind string // kind: Authoritative, InternalRelay, ExternalRelay
	isDefault          bool
}

type smtpOutcome struct {
	status   string
	code     int
	enhanced string
	text     string
	err      string
}

func i64(v int64) *int64 { return &v }

// nilIfEmpty renders an empty string as the $null the playbooks' projections write.
func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// timeOrNil renders a time as RFC 3339 UTC, zero as $null.
func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return utc(t)
}

func (o *org) mailbox(address string) *userMailbox {
	for _, m := range o.mailboxes {
		if strings.EqualFold(m.address, address) || strings.EqualFold(m.name, address) || strings.EqualFold(m.alias, address) {
			return m
		}
	}
	return nil
}

// findPolicy finds a throttling policy by name or by the name without its
// generated suffix ("GlobalThrottlingPolicy" for "GlobalThrottlingPolicy_3c1b…").
func (o *org) findPolicy(id string) *policy {
	for _, p := range o.policies {
		if strings.EqualFold(p.name, id) {
			return p
		}
	}
	for _, p := range o.policies {
		if base, _, ok := strings.Cut(p.name, "_"); ok && strings.EqualFold(base, id) {
			return p
		}
	}
	return nil
}

// defaultPolicy is the policy of a mailbox without one: the Organization-scope
// policy when there is one, else the Global one.
func (o *org) defaultPolicy() *policy {
	var global *policy
	for _, p := range o.policies {
		switch p.scope {
		case "Organization":
			return p
		case "Global":
			global = p
		}
	}
	return global
}

func (o *org) defaultDomain() string {
	for _, d := range o.acceptedDomains {
		if d.isDefault {
			return d.domain
		}
	}
	return ""
}

// complete fills what a scenario left out with Exchange 2019's defaults, and
// turns a Go scenario's failure counts into tracking events over the last hour,
// so the cmdlet path has the same incident to show.
func (o *org) complete() {
	o.dc = either(o.dc, "dc01.lab.contoso.com")
	o.orgName = either(o.orgName, "contoso.com")
	for _, s := range o.servers {
		if s.settings == (transportSettings{}) {
			s.settings = defaultSettings()
		}
		s.ensureComponents()
		s.transport()
	}
	if !o.failing || len(o.streams) > 0 || len(o.servers) == 0 {
		return
	}
	now := o.now().UTC().Truncate(time.Second)
	add := func(total int, id, status string) {
		for i, s := range o.servers {
			share := total/len(o.servers) + boolInt(i < total%len(o.servers))
			if share == 0 {
				continue
			}
			every := time.Hour / time.Duration(share)
			o.streams = append(o.streams, &stream{server: s.name, since: now.Add(-time.Hour).Add(every), every: every,
				event: trackingEvent{EventId: id, Source: "SMTP", Sender: o.topSender, Recipients: []string{"user@fabrikam.com"},
					RecipientStatus: []string{status}, MessageSubject: "Invoice", ServerHostname: s.name,
					ConnectorId: "Outbound to Office 365 - 5e6f7a8b"}})
		}
	}
	add(o.failures, "FAIL", "550 5.5.4 Service Unavailable")
	add(o.deferrals, "DEFER", "451 4.4.0 Service Temporarily Unavailable")
}

func (o *org) server(host string) *server {
	for _, s := range o.servers {
		if s.host == host {
			return s
		}
	}
	return nil
}

func (o *org) answer(host, cmdlet string, p map[string]any) (any, error) {
	switch cmdlet {
	case probe.CheckSMTP, probe.CheckTCP:
		return o.probe(host, cmdlet), nil
	case probe.CheckSMTPMX, probe.CheckMX, probe.CheckDNS, probe.CheckDNSBL:
		return o.network(cmdlet, p)
	}
	if host == Tenant {
		return o.answerGraph(cmdlet, p)
	}
	s := o.server(host)
	if s == nil {
		return nil, fmt.Errorf("%s is not an Exchange server of the lab", host)
	}
	if out, ok, err := o.answer421(s, cmdlet, p); ok {
		return out, err
	}
	switch cmdlet {
	case "Get-Queue":
		var rows []map[string]any
		for _, q := range s.queues {
			rows = append(rows, map[string]any{"Identity": q.Identity, "DeliveryType": q.DeliveryType,
				"NextHopDomain": q.NextHopDomain, "Status": q.Status, "MessageCount": q.MessageCount, "LastError": nilIfEmpty(q.LastError)})
		}
		return rows, nil
	case "Get-ServerComponentState":
		retry := 0
		var lastErr any
		for _, q := range s.queues {
			if q.Status == "Retry" {
				retry++
				if lastErr == nil {
					lastErr = nilIfEmpty(q.LastError)
				}
			}
		}
		return map[string]any{"Server": s.name, "TransportService": s.transport().status, "HubTransport": s.component("HubTransport").state(), "RetryQueues": retry, "LastError": lastErr}, nil
	case "Get-MessageTrackingLog":
		return o.tracking(s, p), nil
	case "Get-Mailbox -Identity":
		return o.throttling(p)
	case "Get-ThrottlingPolicy":
		pol, err := o.policy(p)
		if err != nil {
			return nil, err
		}
		return map[string]any{"ThrottlingPolicy": pol.name, "RecipientRateLimit": limit(pol.recipient), "MessageRateLimit": limit(pol.message), "Mailboxes": o.onPolicy(pol.name)}, nil
	case "Get-Service":
		total := 0
		for _, q := range s.queues {
			total += q.MessageCount
		}
		return map[string]any{"Server": s.name, "TransportService": s.transport().status, "StartType": "Automatic", "Queued": total}, nil
	case "Restart-Service":
		o.restart(s)
		return map[string]any{"Server": s.name, "TransportService": s.transport().status}, nil
	case "Set-ThrottlingPolicy":
		pol, err := o.policy(p)
		if err != nil {
			return nil, err
		}
		pol.recipient = number(p["recipient_rate_limit"])
		pol.message = number(p["message_rate_limit"])
		if o.throttlingHelps {
			o.failing = false
		}
		return map[string]any{"ThrottlingPolicy": pol.name, "RecipientRateLimit": limit(pol.recipient), "MessageRateLimit": limit(pol.message)}, nil
	}
	return nil, fmt.Errorf("the lab has no simulation for this script (%s)", cmdlet)
}

// tracking splits the organisation's 5.5.4 events over the servers.
func (o *org) tracking(s *server, p map[string]any) map[string]any {
	since, _ := p["since"].(string)
	row := map[string]any{"Server": s.name, "Since": since, "Failures": 0, "Deferrals": 0, "TopSender": nil, "LastSeen": nil, "Sample": nil}
	if o.failing {
		n := len(o.servers)
		idx := 0
		for i, x := range o.servers {
			if x == s {
				idx = i
			}
		}
		share := func(total int) int { return total/n + boolInt(idx < total%n) }
		row["Failures"], row["Deferrals"] = share(o.failures), share(o.deferrals)
		row["TopSender"] = o.topSender
		row["LastSeen"] = o.now().UTC().Format(time.RFC3339)
		row["Sample"] = "{[{LRT=};{LED=550 5.5.4 Service Unavailable};{FQDN=};{IP=}]}"
	}
	return row
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (o *org) throttling(p map[string]any) (any, error) {
	sender, _ := p["sender"].(string)
	mb := o.mailbox(sender)
	if mb == nil {
		return nil, fmt.Errorf("The operation couldn't be performed because object '%s' couldn't be found on '%s'.", sender, o.dc)
	}
	pol := o.findPolicy(mb.policy)
	if mb.policy == "" || pol == nil {
		pol = o.defaultPolicy()
	}
	return map[string]any{"Mailbox": sender, "ThrottlingPolicy": pol.name, "Scope": pol.scope, "Custom": mb.policy != "",
		"RecipientRateLimit": limit(pol.recipient), "MessageRateLimit": limit(pol.message)}, nil
}

func (o *org) policy(p map[string]any) (*policy, error) {
	name, _ := p["policy"].(string)
	pol := o.findPolicy(name)
	if pol == nil {
		return nil, fmt.Errorf("Couldn't find object \"%s\". Please make sure that it was spelled correctly or specify a different object.", name)
	}
	return pol, nil
}

func (o *org) onPolicy(name string) int {
	n := 0
	for _, m := range o.mailboxes {
		if p := o.findPolicy(m.policy); p != nil && p.name == name {
			n++
		}
	}
	return n
}

func (o *org) restart(s *server) {
	// The script path's restart (kept as the playbooks' scripts expect it): it
	// also brings HubTransport back and, when restartHelps, drains the queues.
	s.transport().status = "Running"
	for _, r := range s.component("HubTransport").requesters {
		r.state = "Active"
	}
	if !o.restartHelps {
		for _, q := range s.queues {
			q.MessageCount += 87 // mail kept arriving while it restarted
		}
		return
	}
	for _, q := range s.queues {
		if q.MessageCount > 50 {
			q.MessageCount = 3
		}
		q.Status, q.LastError = "Ready", ""
	}
	healthy := true
	for _, x := range o.servers {
		for _, q := range x.queues {
			healthy = healthy && q.MessageCount <= 1000 && q.Status != "Retry"
		}
	}
	if healthy {
		o.failing = false
	}
}

// probe answers the smtp and tcp checks of the EOP endpoint with the probe
// executor's own result types.
func (o *org) probe(host, check string) any {
	h, port := host, 25
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		h = host[:i]
		fmt.Sscan(host[i+1:], &port)
	}
	addr := "104.47.1.36:" + fmt.Sprint(port)
	if check == probe.CheckTCP {
		return probe.TCPResult{Host: h, Address: addr, Port: port, Status: o.eop.status, DurationMs: 38, Error: o.eop.err}
	}
	return o.eop.result(h, addr, port)
}

// result renders an SMTP outcome as the smtp check reports it.
func (so smtpOutcome) result(host, addr string, port int) probe.SMTPResult {
	r := probe.SMTPResult{Host: host, Address: addr, Port: port, Status: so.status, Code: so.code, Enhanced: so.enhanced,
		Text: so.text, Extensions: []string{}, DurationMs: 38, Error: so.err}
	if so.status == probe.StatusOK {
		r.StartTLS = true
		r.Extensions = []string{"SIZE 157286400", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES", "STARTTLS", "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"}
		r.BannerMs = 31
	}
	if so.code != 0 && so.status != probe.StatusOK {
		r.BannerMs = 29
	}
	return r
}

// limit renders an Exchange Unlimited<T> the way the playbook's projection does.
func limit(v *int64) any {
	if v == nil {
		return nil
	}
	return *v
}

func number(v any) *int64 {
	switch x := v.(type) {
	case float64:
		return i64(int64(x))
	case int:
		return i64(int64(x))
	case int64:
		return i64(x)
	}
	return nil
}
