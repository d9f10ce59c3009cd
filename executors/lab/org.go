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
	mailboxes       map[string]string // address → policy name ("" = the global default)
	policies        map[string]*policy
	// eop is the SMTP outcome of the EOP endpoint.
	eop smtpOutcome

	// The smtp-421 side (see smtp421.go).
	connectors     []*sendConnector
	acceptedDomain string
	destinations   map[string]*destination // destination domain → its MX and manners
	zones          map[string]dnsZone      // sending-domain DNS
	listings       map[string]listing      // "ip zone" → DNSBL listing
	dnsblDown      map[string]string       // "ip zone" → the probe status of a zone that does not answer

	// The Microsoft 365 tenant (see graph.go).
	m365 *m365
}

type server struct {
	host      string
	name      string
	transport string // Running, Stopped
	hub       string // Active, Inactive, Draining
	queues    []*queue
	// Get-TransportService limits; nil is Unlimited.
	maxOutbound  *int64
	maxPerDomain *int64
}

// queue mirrors Get-Queue's properties used by the playbooks.
type queue struct {
	Identity      string
	DeliveryType  string
	NextHopDomain string
	Status        string
	MessageCount  int
	LastError     any
	LastRetryTime any // RFC 3339 UTC or nil, as the smtp-421 projection writes it
	NextRetryTime any
}

type policy struct {
	name      string
	scope     string
	recipient *int64
	message   *int64
}

type smtpOutcome struct {
	status   string
	code     int
	enhanced string
	text     string
	err      string
}

func i64(v int64) *int64 { return &v }

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
				"NextHopDomain": q.NextHopDomain, "Status": q.Status, "MessageCount": q.MessageCount, "LastError": q.LastError})
		}
		return rows, nil
	case "Get-ServerComponentState":
		retry := 0
		var lastErr any
		for _, q := range s.queues {
			if q.Status == "Retry" {
				retry++
				if lastErr == nil {
					lastErr = q.LastError
				}
			}
		}
		return map[string]any{"Server": s.name, "TransportService": s.transport, "HubTransport": s.hub, "RetryQueues": retry, "LastError": lastErr}, nil
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
		return map[string]any{"Server": s.name, "TransportService": s.transport, "StartType": "Automatic", "Queued": total}, nil
	case "Restart-Service":
		o.restart(s)
		return map[string]any{"Server": s.name, "TransportService": s.transport}, nil
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
	name, ok := o.mailboxes[strings.ToLower(sender)]
	if !ok {
		return nil, fmt.Errorf("The operation couldn't be performed because object '%s' couldn't be found on 'dc01.lab.contoso.com'.", sender)
	}
	pol := o.policies[name]
	if name == "" {
		pol = o.policies["GlobalThrottlingPolicy"]
	}
	return map[string]any{"Mailbox": sender, "ThrottlingPolicy": pol.name, "Scope": pol.scope, "Custom": name != "",
		"RecipientRateLimit": limit(pol.recipient), "MessageRateLimit": limit(pol.message)}, nil
}

func (o *org) policy(p map[string]any) (*policy, error) {
	name, _ := p["policy"].(string)
	pol, ok := o.policies[name]
	if !ok {
		return nil, fmt.Errorf("Couldn't find object \"%s\". Please make sure that it was spelled correctly or specify a different object.", name)
	}
	return pol, nil
}

func (o *org) onPolicy(name string) int {
	n := 0
	for _, p := range o.mailboxes {
		if p == name {
			n++
		}
	}
	return n
}

func (o *org) restart(s *server) {
	s.transport, s.hub = "Running", "Active"
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
		q.Status, q.LastError = "Ready", nil
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
