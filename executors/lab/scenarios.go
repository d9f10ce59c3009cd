package lab

import "strings"

type scenario struct {
	about string
	build func() *org
}

// base is a healthy two-server organisation; scenarios change what they need.
func base() *org {
	mk := func(name string, o365 int) *server {
		return &server{
			host: strings.ToLower(name) + ".lab.contoso.com", name: name, transport: "Running", hub: "Active",
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
		mailboxes: map[string]string{
			"alice@contoso.com":   "LowVolumeSenders",
			"billing@contoso.com": "",
			"bob@contoso.com":     "",
		},
		policies: map[string]*policy{
			"GlobalThrottlingPolicy": {name: "GlobalThrottlingPolicy_3c1b5d6f-2b5e-4bd2-9c8a-1a2f0b3c4d5e", scope: "Global", recipient: nil, message: nil},
			"LowVolumeSenders":       {name: "LowVolumeSenders", scope: "Regular", recipient: i64(100), message: i64(5)},
		},
		eop: smtpOutcome{status: "ok", code: 220, text: "BN8NAM12FT041.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready"},
	}
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
		"healthy":          {"every queue small, transport healthy, EOP answers, no 5.5.4 in tracking", base},
		"overloaded-queue": {"EX01's Office 365 connector queue holds 1523 messages; a transport restart drains it", overloaded},
		"throttled-sender": {"queues healthy; alice@contoso.com is on a custom throttling policy with low limits", func() *org {
			return failing(base(), 12, 41, "alice@contoso.com")
		}},
		"connector-unhealthy": {"EX02's outbound queue is stuck in Retry; a transport restart fixes it", func() *org {
			o := failing(base(), 9, 64, "bob@contoso.com")
			q := o.servers[1].queues[2]
			q.MessageCount, q.Status, q.LastError = 214, "Retry", lastError451
			o.servers[1].hub = "Inactive"
			return o
		}},
		"network-down": {"port 25 to Exchange Online Protection times out", func() *org {
			o := failing(base(), 0, 58, "bob@contoso.com")
			o.eop = smtpOutcome{status: "timeout", text: "no banner within 30s"}
			return o
		}},
		"eop-side": {"everything on-premises is healthy yet 5.5.4 continues: the EOP side", func() *org {
			return failing(base(), 23, 70, "bob@contoso.com")
		}},
		"relief-fails": {"like overloaded-queue, but the transport restart does not drain the queue", func() *org {
			o := overloaded()
			o.restartHelps = false
			return o
		}},
	}
}
