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
	// throttlingHelps: raising the sender's policy stops the failures.
	mailboxes []*userMailbox
	policies  []*policy
	// eop is the SMTP outcome of the EOP endpoint.
	eop smtpOutcome

	// The smtp-421 side (see smtp421.go).
	connectors      []*sendConnector
	acceptedDomains []*acceptedDomain
	destinations    map[string]*destination // destination domain → its MX and manners
	zones           map[string]dnsZone      // sending-domain DNS
	listings        map[string]listing      // "ip zone" → DNSBL listing
	dnsblDown       map[string]string       // "ip zone" → the probe status of a zone that does not answer

	// The Microsoft 365 tenant (see graph.go) and its Exchange Online side (exo.go).
	m365 *m365
	exo  *exoTenant

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
	// certs are Get-ExchangeCertificate's: the defaults Exchange setup
	// leaves, then the file's (certs.go).
	certs []*exchangeCertificate
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
	// messages are what Get-Message lists, the oldest first: the first
	// MessageCount of them (a queue a retry drained lists none).
	messages []*queuedMessage
}

// queuedMessage mirrors Get-Message's ExtensibleMessageInfo.
type queuedMessage struct {
	FromAddress       string
	Recipients        []string
	Subject           string
	InternetMessageId string
	Size              int64 // bytes; 0 is the lab's default size
	DateReceived      time.Time
	// ExpirationTime zero: DateReceived + the server's MessageExpirationTimeout.
	ExpirationTime time.Time
	// LastError and RetryCount nil: the queue's.
	LastError  *string
	RetryCount *int
}

type policy struct {
	name      string
	scope     string // Regular, Organization, Global
	recipient *int64 // nil: Unlimited
	message   *int64
	forwardee *int64
	// unset names the limits a Regular or Organization policy leaves unset: they
	// read as $null and are inherited from the next level (Microsoft Learn "User
	// workload management in Exchange Server"). Global sets every limit.
	unset map[string]bool
}

// limit is a policy's value for Get-ThrottlingPolicy: $null when unset.
func (p *policy) limit(name string, v *int64) any {
	if p.unset[name] {
		return nil
	}
	return unlimitedInt(v, "System.UInt32")
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

func (o *org) answer(host, check string, p map[string]any) (any, error) {
	switch check {
	case probe.CheckSMTP, probe.CheckTCP:
		return o.probe(host, check), nil
	case probe.CheckSMTPMX, probe.CheckMX, probe.CheckDNS, probe.CheckDNSBL, probe.CheckSPF, probe.CheckDMARC, probe.CheckDKIM:
		return o.network(check, p)
	}
	if host == Tenant {
		return o.answerGraph(check, p)
	}
	return nil, fmt.Errorf("the lab has no simulation for check %q", check)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
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
