package lab

import (
	"strings"
	"time"
)

type scenario struct {
	about string
	build func() *org
	// playbook is the id of the playbook whose incident the scenario simulates; ""
	// when any playbook can run against it.
	playbook string
}

// Playbook ids the scenarios belong to.
const (
	ndr554   = "ndr-5.5.4"
	smtp421  = "smtp-421"
	graph503 = "graph-503"
)

// base is a healthy two-server organisation; scenarios change what they need.
func base() *org {
	mk := func(name string, o365 int) *server {
		return &server{
			host: strings.ToLower(name) + ".lab.contoso.com", name: name,
			maxOutbound: i64(1000), maxPerDomain: i64(20), // Exchange 2019 defaults
			queues: []*queue{
				{Identity: name + `\Submission`, DeliveryType: "Undefined", NextHopDomain: "Submission", Status: "Ready", MessageCount: 0},
				{Identity: name + `\Shadow\4`, DeliveryType: "ShadowRedundancy", NextHopDomain: name + ".lab.contoso.com", Status: "Ready", MessageCount: 2},
				{Identity: name + `\7`, DeliveryType: "SmartHostConnectorDelivery", NextHopDomain: "outbound to office 365", Status: "Ready", MessageCount: o365},
			},
		}
	}
	return &org{
		servers:         []*server{mk("EX01", 14), mk("EX02", 9)},
		restartHelps:    true,
		throttlingHelps: true,
		mailboxes: []*userMailbox{
			{address: "alice@contoso.com", name: "Alice", policy: "LowVolumeSenders"},
			{address: "billing@contoso.com", name: "Billing"},
			{address: "bob@contoso.com", name: "Bob"},
		},
		policies: []*policy{
			{name: "GlobalThrottlingPolicy_3c1b5d6f-2b5e-4bd2-9c8a-1a2f0b3c4d5e", scope: "Global", recipient: nil, message: nil},
			{name: "LowVolumeSenders", scope: "Regular", recipient: i64(100), message: i64(5)},
		},
		eop: smtpOutcome{status: "ok", code: 220, text: "BN8NAM12FT041.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready"},

		connectors: []*sendConnector{
			{identity: "Internet", addressSpaces: []string{"*"}, dnsRouting: true, sourceServers: []string{"EX01", "EX02"},
				perConnection: 20, inactivity: "00:10:00", sourceIP: ourIP, fqdn: "mail.contoso.com"},
			{identity: "Outbound to Office 365 - 5e6f7a8b", addressSpaces: []string{"contoso.mail.onmicrosoft.com"},
				smartHosts: []string{"contoso-com.mail.protection.outlook.com"}, sourceServers: []string{"EX01", "EX02"},
				perConnection: 20, inactivity: "00:10:00", sourceIP: "0.0.0.0", fqdn: "mail.contoso.com"},
		},
		acceptedDomains: []*acceptedDomain{{name: "contoso.com", domain: "contoso.com", kind: "Authoritative", isDefault: true},
			{name: "contoso.mail.onmicrosoft.com", domain: "contoso.mail.onmicrosoft.com", kind: "Authoritative"}},
		destinations: map[string]*destination{
			fabrikam: {mx: "mx1.fabrikam.com", ip: "198.51.100.10",
				probe: smtpOutcome{status: "ok", code: 220, text: "mx1.fabrikam.com ESMTP ready"}},
			// A destination whose MX does not answer at all: not a 421 problem.
			"adatum.com": {mx: "mx.adatum.com", ip: "198.51.100.40",
				probe: smtpOutcome{status: "timeout", err: "connect 198.51.100.40:25: dial tcp 198.51.100.40:25: i/o timeout"}},
			// One the bot probed moments ago: its own per-destination limit holds it back.
			"wingtiptoys.com": {mx: "mx.wingtiptoys.com", ip: "198.51.100.50",
				probe: smtpOutcome{status: "throttled", err: "per-destination limit for mx.wingtiptoys.com:25 reached (1 per 10s); next connection allowed in 7.5s"}},
		},
		zones: map[string]dnsZone{
			"contoso.com":      {a: []string{"203.0.113.80"}, spf: []string{"v=spf1 ip4:203.0.113.25 include:spf.protection.outlook.com -all"}},
			fabrikam:           {a: []string{"198.51.100.80"}, spf: []string{"v=spf1 include:spf.protection.outlook.com -all"}},
			"litwareinc.com":   {a: []string{"203.0.113.90"}},
			"tailspintoys.com": {a: []string{"203.0.113.95"}, spf: []string{"v=spf1 ip4:203.0.113.0/24 -all", "v=spf1 include:spf.protection.outlook.com ~all"}},
		},
		listings:  map[string]listing{},
		dnsblDown: map[string]string{"198.51.100.99 bl.spamcop.net": "timeout"},
		m365:      baseM365(),
	}
}

// The smtp-421 scenarios' destination, our public sending IP and the queue to it.
const (
	fabrikam = "fabrikam.com"
	ourIP    = "203.0.113.25"
	// Exchange's LastError when EOP-style receivers refuse a connection over their
	// concurrency limit: the remote 421 wrapped in the 451 of the failed attempt.
	lastError432  = `451 4.4.0 Primary target IP address responded with: "421 4.3.2 The maximum number of concurrent connections has exceeded a limit, closing transmission channel" Attempted failover to alternate host, but that did not succeed. Either there are no alternate hosts, or delivery failed to all alternate hosts. The last endpoint attempted was 198.51.100.10:25`
	lastErrorBusy = `451 4.4.0 Primary target IP address responded with: "421 4.3.2 Service not available, too many connections" Attempted failover to alternate host, but that did not succeed. Either there are no alternate hosts, or delivery failed to all alternate hosts. The last endpoint attempted was 198.51.100.10:25`
	lastErrorRBL  = `451 4.4.0 Primary target IP address responded with: "421 4.7.0 Connection refused, 203.0.113.25 is listed at zen.spamhaus.org" Attempted failover to alternate host, but that did not succeed. Either there are no alternate hosts, or delivery failed to all alternate hosts. The last endpoint attempted was 198.51.100.10:25`
)

// toFabrikam adds a queue to fabrikam.com on server i, last retried three minutes ago.
func toFabrikam(o *org, i int, identity, status string, count int, lastError string) *queue {
	now := time.Now()
	q := &queue{Identity: identity, DeliveryType: "DnsConnectorDelivery", NextHopDomain: fabrikam, Status: status,
		MessageCount: count, LastError: lastError, LastRetryTime: now.Add(-3 * time.Minute).UTC().Truncate(time.Second),
		NextRetryTime: now.Add(7 * time.Minute).UTC().Truncate(time.Second), RetryCount: 4,
		FirstRetryTime: now.Add(-33 * time.Minute).UTC().Truncate(time.Second)}
	if status == "Suspended" {
		q.NextRetryTime = time.Time{}
	}
	o.servers[i].queues = append(o.servers[i].queues, q)
	return q
}

func concurrencyTooHigh() *org {
	o := base()
	o.destinations[fabrikam].accepts = 10
	o.destinations[fabrikam].refusal = lastError432
	toFabrikam(o, 0, `EX01\18`, "Retry", 800, lastError432)
	o.servers[1].maxPerDomain = i64(5) // lowered on EX02 after an earlier incident
	return o
}

func destinationOverloaded() *org {
	o := base()
	d := o.destinations[fabrikam]
	d.probe = smtpOutcome{status: "421", code: 421, enhanced: "4.3.2", text: "Service not available, too many connections"}
	d.refusal = lastErrorBusy
	toFabrikam(o, 0, `EX01\18`, "Retry", 412, lastErrorBusy)
	toFabrikam(o, 1, `EX02\11`, "Retry", 230, lastErrorBusy)
	return o
}

func ipListed() *org {
	o := base()
	d := o.destinations[fabrikam]
	d.refusesListed, d.refusal = true, lastErrorRBL
	o.listings[ourIP+" zen.spamhaus.org"] = listing{code: "127.0.0.3",
		reason: "Listed by CSS, see https://check.spamhaus.org/query/ip/" + ourIP}
	toFabrikam(o, 0, `EX01\18`, "Retry", 230, lastErrorRBL)
	// Lowered last night; it did not help.
	o.servers[0].maxPerDomain, o.servers[1].maxPerDomain = i64(5), i64(5)
	return o
}

func queueSuspended() *org {
	o := base()
	o.destinations[fabrikam].accepts = 10
	o.destinations[fabrikam].refusal = lastError432
	toFabrikam(o, 0, `EX01\18`, "Suspended", 612, lastError432)
	o.servers[0].maxPerDomain, o.servers[1].maxPerDomain = i64(5), i64(5)
	// Most sites bind the Internet connector to 0.0.0.0: the public IP is unknown.
	o.connectors[0].sourceIP = "0.0.0.0"
	return o
}

func failing(o *org, failures, deferrals int, sender string) *org {
	o.failing, o.failures, o.deferrals, o.topSender = true, failures, deferrals, sender
	return o
}

const lastError451 = `451 4.4.0 Primary target IP address responded with: "451 5.5.4 Service Unavailable" Attempted failover to alternate host, but that did not succeed.`

func overloaded() *org {
	o := failing(base(), 37, 112, "billing@contoso.com")
	q := o.servers[0].queues[2]
	q.MessageCount, q.Status, q.LastError = 1523, "Active", lastError451
	o.servers[1].queues[2].MessageCount = 640
	return o
}

func scenarios() map[string]scenario {
	return map[string]scenario{
		"healthy": {about: "every queue small, transport healthy, EOP answers, no 5.5.4 in tracking, fabrikam.com takes our mail", build: base},
		"overloaded-queue": {about: "EX01's Office 365 connector queue holds 1523 messages; a transport restart drains it",
			build: overloaded, playbook: ndr554},
		"throttled-sender": {about: "queues healthy; alice@contoso.com is on a custom throttling policy with low limits", playbook: ndr554, build: func() *org {
			return failing(base(), 12, 41, "alice@contoso.com")
		}},
		"connector-unhealthy": {about: "EX02's outbound queue is stuck in Retry; a transport restart fixes it", playbook: ndr554, build: func() *org {
			o := failing(base(), 9, 64, "bob@contoso.com")
			q := o.servers[1].queues[2]
			q.MessageCount, q.Status, q.LastError = 214, "Retry", lastError451
			o.servers[1].component("HubTransport").set("HealthAPI", "Inactive", time.Now())
			return o
		}},
		"network-down": {about: "port 25 to Exchange Online Protection times out", playbook: ndr554, build: func() *org {
			o := failing(base(), 0, 58, "bob@contoso.com")
			o.eop = smtpOutcome{status: "timeout", text: "no banner within 30s"}
			return o
		}},
		"eop-side": {about: "everything on-premises is healthy yet 5.5.4 continues, and Microsoft reports an Exchange Online incident: the EOP side", playbook: ndr554, build: func() *org {
			o := failing(base(), 23, 70, "bob@contoso.com")
			o.m365.issues = []*issue{eopIncident()}
			return o
		}},
		"relief-fails": {about: "like overloaded-queue, but the transport restart does not drain the queue", playbook: ndr554, build: func() *org {
			o := overloaded()
			o.restartHelps = false
			return o
		}},

		"concurrency-too-high": {about: "EX01 opens 20 connections per domain; fabrikam.com accepts 10 and refuses the rest with 421 4.3.2 (800 queued); lowering the limit and retrying drains it",
			build: concurrencyTooHigh, playbook: smtp421},
		"destination-overloaded": {about: "fabrikam.com answers even the bot's single polite probe with 421 4.3.2; no relief of ours helps",
			build: destinationOverloaded, playbook: smtp421},
		"ip-listed": {about: "our sending IP 203.0.113.25 is on zen.spamhaus.org and fabrikam.com refuses it with 421 4.7.0",
			build: ipListed, playbook: smtp421},
		"queue-suspended": {about: "EX01's queue to fabrikam.com was suspended during last night's refusals; fabrikam.com accepts again, resuming drains it",
			build: queueSuspended, playbook: smtp421},

		"service-incident": {about: "Microsoft reports Exchange Online incident EX1084523: renewals answer 503; the postmaster subscription expires in 95 minutes; the service recovers while an approved renewal retries",
			build: serviceIncidentOrg, playbook: graph503},
		"renewal-failing": {about: "service health is clean, yet every renewal answers 503 ServiceUnavailable; the postmaster subscription expires in 40 minutes",
			build: renewalFailingOrg, playbook: graph503},
		"subscription-expired": {about: "the postmaster subscription lapsed 95 minutes ago; recreating it and reconciling finds the 11 NDRs whose notifications were lost",
			build: subscriptionExpiredOrg, playbook: graph503},
	}
}
