package lab

import (
	"strings"
	"time"
)

// Mail flow as a server itself answers for it: its own SMTP listener on port 25
// (Test-NdrSmtpPort to a lab server's name) and Test-Mailflow. ORGFILE.md
// ("what Test-Mailflow answers") describes the model; SOURCES.md what it rests on.

// refusedText is Windows' WSAECONNREFUSED message, as Test-NetConnection and
// the JEA function report it.
const refusedText = "No connection could be made because the target machine actively refused it"

// selfSMTP is what port 25 of server s answers: its Default Frontend connector's
// banner while MSExchangeTransport and MSExchangeFrontEndTransport run and
// HubTransport is Active; 421 4.3.2 while HubTransport is Inactive (our best
// understanding of the frontend with the component inactive, not verified); a
// refused connection while a service is not running.
func (o *org) selfSMTP(s *server) portView {
	for _, name := range []string{"MSExchangeTransport", "MSExchangeFrontEndTransport"} {
		if sv := s.service(name); sv != nil && sv.status != "Running" {
			return portView{latencyMs: 1, err: refusedText}
		}
	}
	if s.component("HubTransport").state() == "Inactive" {
		return portView{tcpSucceeded: true, banner: "421 4.3.2 Service not available", latencyMs: 1}
	}
	fqdn := s.host
	for _, rc := range s.receiveConnectors() {
		if rc.role == "FrontendTransport" && rc.enabled && rc.fqdn != "" && bindsPort(rc, "25") {
			fqdn = rc.fqdn
			break
		}
	}
	return portView{tcpSucceeded: true, latencyMs: 1,
		banner: "220 " + fqdn + " Microsoft ESMTP MAIL Service ready at " + o.now().UTC().Format(time.RFC1123Z)}
}

func bindsPort(rc *receiveConnector, port string) bool {
	for _, b := range rc.bindings {
		if strings.HasSuffix(b, ":"+port) {
			return true
		}
	}
	return false
}

// The latencies Test-Mailflow reports when the message arrives: a message to
// the server's own system mailbox, and one that leaves the organisation.
const (
	localLatency  = 2156 * time.Millisecond
	remoteLatency = 4213 * time.Millisecond
)

// testMailflow answers Test-Mailflow from the server -Identity names (default:
// the one the command runs on) toward -TargetEmailAddress (default: its own
// system mailbox). Exchange's output is Microsoft.Exchange.Monitoring.TestMailflowOutput,
// whose TestMailflowResult is a string: "Success" or "*FAILURE*".
func testMailflow(c *call) ([]any, error) {
	s := c.local
	if c.has("Identity") {
		if s = c.o.serverByID(c.str("Identity")); s == nil {
			return nil, c.notFound(c.str("Identity"))
		}
	}
	remote := c.has("TargetEmailAddress")
	ok, latency := c.o.mailflow(s, c.str("TargetEmailAddress"))
	result := "Success"
	if !ok {
		result, latency = "*FAILURE*", 0
	}
	return []any{obj(chain("Microsoft.Exchange.Monitoring.TestMailflowOutput", "Microsoft.Exchange.Data.ConfigurableObject"),
		"Microsoft.Exchange.Monitoring.TestMailflowOutput",
		p("RunspaceId", runspaceID),
		p("TestMailflowResult", result),
		p("MessageLatencyTime", span(latency)),
		p("IsRemoteTest", remote),
		p("Identity", nil),
		p("IsValid", true),
		p("ObjectState", objectState()),
	)}, nil
}

// mailflow reports whether a message from s to address would be delivered now,
// and in how long. An empty address is s's own system mailbox.
func (o *org) mailflow(s *server, address string) (bool, time.Duration) {
	if s.transport().status != "Running" || s.component("HubTransport").state() != "Active" {
		return false, 0
	}
	_, domain, _ := strings.Cut(address, "@")
	domain = strings.ToLower(strings.TrimSpace(domain))
	if address == "" || o.local(domain) {
		return true, localLatency
	}
	// Toward Exchange Online (the tenant's routing domain) or the Internet:
	// through the connector that routes the domain, its queue, and past the
	// 5.5.4 failures the incident produces.
	sc := o.route(s, domain)
	if sc == nil {
		return false, 0 // Unreachable: no connector routes the domain
	}
	if q := o.queueToward(s, sc, domain); q != nil && stuck(q) {
		return false, 0
	}
	if len(o.streams) > 0 && o.stoppedAt.IsZero() {
		return false, 0
	}
	return true, remoteLatency
}

// local: the domain is delivered inside the organisation — an Authoritative
// accepted domain other than the tenant's routing domain.
func (o *org) local(domain string) bool {
	if strings.HasSuffix(domain, ".mail.onmicrosoft.com") {
		return false
	}
	for _, d := range o.acceptedDomains {
		if strings.EqualFold(d.domain, domain) && either(d.kind, "Authoritative") == "Authoritative" {
			return true
		}
	}
	return false
}

// route picks the send connector Exchange routes domain through from server s:
// among the enabled connectors s is a source server of, the most specific
// matching address space ("contoso.mail.onmicrosoft.com" over "*.onmicrosoft.com"
// over "*").
func (o *org) route(s *server, domain string) *sendConnector {
	var best *sendConnector
	bestLen := -1
	for _, sc := range o.connectors {
		if sc.disabled || !sourcedBy(sc, s) {
			continue
		}
		for _, a := range sc.addressSpaces {
			if n := spaceMatch(strings.ToLower(a), domain); n > bestLen {
				best, bestLen = sc, n
			}
		}
	}
	return best
}

func sourcedBy(sc *sendConnector, s *server) bool {
	if len(sc.sourceServers) == 0 {
		return true
	}
	for _, id := range sc.sourceServers {
		if strings.EqualFold(id, s.name) || strings.EqualFold(id, s.host) {
			return true
		}
	}
	return false
}

// spaceMatch is how specific address space a is for domain: -1 when it does not
// match, 0 for "*", else its length.
func spaceMatch(a, domain string) int {
	switch {
	case a == "*":
		return 0
	case a == domain:
		return len(a) + 1
	case strings.HasPrefix(a, "*.") && strings.HasSuffix(domain, a[1:]):
		return len(a)
	}
	return -1
}

// queueToward is s's delivery queue for domain through connector sc: the queue
// to the domain itself when sc routes by DNS, else the connector's queue (its
// NextHopDomain is the connector's name, without the " - <id>" suffix the
// Hybrid Configuration Wizard adds). Nil when there is none (Exchange creates
// the queue on demand).
func (o *org) queueToward(s *server, sc *sendConnector, domain string) *queue {
	for _, q := range s.queues {
		hop := strings.ToLower(q.NextHopDomain)
		name := strings.ToLower(sc.identity)
		switch {
		case len(sc.smartHosts) == 0 && hop == domain,
			len(sc.smartHosts) > 0 && (hop == name || strings.HasPrefix(name, hop+" - ")):
			return q
		}
	}
	return nil
}

// stuck: the queue delivers nothing now — in Retry with an error, or suspended.
func stuck(q *queue) bool {
	return q.Status == "Retry" && q.LastError != "" || q.Status == "Suspended"
}
