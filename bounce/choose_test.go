package bounce

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// report builds a Bounce as Parse would, from recipients; the first permanent
// failure is picked.
func report(sender string, rs ...Recipient) *Bounce {
	b := &Bounce{Recipients: rs, Sender: sender}
	for i := range b.Recipients {
		b.Recipients[i].Domain = domainOf(b.Recipients[i].Address)
	}
	b.Picked, b.PickedWhy = pick(b.Recipients)
	if b.Picked >= 0 {
		r := b.Recipients[b.Picked]
		b.Status, b.Reply, b.Recipient = r.Code.Enhanced, r.Code.Reply, r.Address
	}
	return b
}

func rcpt(addr, reply, enhanced, diag string, nested ...Code) Recipient {
	return Recipient{Address: addr, Action: "failed", Code: Code{Reply: reply, Enhanced: enhanced}, Diagnostic: diag, Nested: nested}
}

func TestChooseFits(t *testing.T) {
	tests := []struct {
		name   string
		b      *Bounce
		cands  []Candidate
		fits   []string
		reason string // a fragment of the first fit's reason
	}{
		{"reply and code beats code alone",
			report("", rcpt("a@fabrikam.com", "432", "4.3.2", "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded")),
			[]Candidate{{ID: "bare", Matches: []string{"4.3.2"}}, {ID: "qualified", Matches: []string{"432 4.3.2"}}},
			[]string{"qualified", "bare"}, `matches "432 4.3.2"`},
		{"a reply+code match needs the same reply",
			report("", rcpt("a@fabrikam.com", "421", "4.3.2", "421 4.3.2 too busy")),
			[]Candidate{{ID: "auth", Matches: []string{"432 4.3.2"}}, {ID: "conn", Matches: []string{"421 4.3.2"}}},
			[]string{"conn"}, ""},
		{"phrase with a listed code fits",
			report("", rcpt("a@fabrikam.com", "550", "5.5.4", "550 5.5.4 Service Unavailable")),
			[]Candidate{{ID: "p", Matches: []string{"4.4.0", "5.5.4", "service unavailable"}}},
			[]string{"p"}, ""},
		{"phrase fits a candidate that lists no code",
			report("", rcpt("a@fabrikam.com", "550", "5.7.1", "550 5.7.1 Message rejected: subscription renewal failed")),
			[]Candidate{{ID: "words", Matches: []string{"subscription renewal"}}},
			[]string{"words"}, `says "subscription renewal"`},
		{"phrase under another code does not fit",
			report("", rcpt("a@fabrikam.com", "550", "5.7.708", "550 5.7.708 Service unavailable. Access denied")),
			[]Candidate{{ID: "ndr", Matches: []string{"5.5.4", "service unavailable"}}},
			nil, ""},
		{"phrase at word boundaries only",
			report("", rcpt("a@fabrikam.com", "550", "5.5.4", "550 5.5.4 eservice unavailableness")),
			[]Candidate{{ID: "p", Matches: []string{"service unavailable"}}},
			nil, ""},
		{"bare reply code only without an enhanced code",
			report("", rcpt("a@fabrikam.com", "503", "", "503 Service Unavailable")),
			[]Candidate{{ID: "g", Matches: []string{"503"}}},
			[]string{"g"}, ""},
		{"bare reply code ignored beside an enhanced code",
			report("", rcpt("a@fabrikam.com", "503", "5.5.1", "503 5.5.1 Bad sequence of commands")),
			[]Candidate{{ID: "g", Matches: []string{"503"}}},
			nil, ""},
		{"own code outranks a nested one",
			report("", rcpt("a@fabrikam.com", "451", "4.4.0", `451 4.4.0 Primary target IP address responded with: "421 4.3.2 Service not available."`, Code{"421", "4.3.2"})),
			[]Candidate{{ID: "conn", Matches: []string{"421 4.3.2"}}, {ID: "ndr", Matches: []string{"4.4.0"}}},
			[]string{"ndr", "conn"}, ""},
		{"behind an expiry the nested reply is the cause",
			report("", Recipient{Address: "a@fabrikam.com", Action: "delayed", Code: Code{"400", "4.4.7"}, Diagnostic: "400 4.4.7 Message delayed", Nested: []Code{{"421", "4.3.2"}}}),
			[]Candidate{{ID: "expired", Matches: []string{"4.4.7"}}, {ID: "conn", Matches: []string{"421 4.3.2"}}},
			[]string{"conn", "expired"}, "the reply behind the report's 400 4.4.7 for a@fabrikam.com is 421 4.3.2"},
		{"the picked recipient outranks another",
			report("", rcpt("a@fabrikam.com", "550", "5.1.1", "550 5.1.1 unknown"), rcpt("b@northwind.example", "550", "5.5.4", "550 5.5.4 Service Unavailable")),
			[]Candidate{{ID: "other", Matches: []string{"550 5.5.4"}}, {ID: "picked", Matches: []string{"5.1.1"}}},
			[]string{"picked", "other"}, ""},
		{"codes compare as numbers",
			report("", rcpt("a@fabrikam.com", "550", "5.7.1", "550 5.7.1 denied")),
			[]Candidate{{ID: "padded", Matches: []string{"5.7.001"}}},
			[]string{"padded"}, ""},
		{"a duplicated id counts once",
			report("", rcpt("a@fabrikam.com", "550", "5.5.4", "550 5.5.4")),
			[]Candidate{{ID: "x", Matches: []string{"5.5.4"}}, {ID: "x", Matches: []string{"550 5.5.4"}}},
			[]string{"x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel := Choose(tt.b, tt.cands)
			assert.Equal(t, tt.fits, ids(sel.Fits))
			if tt.reason != "" && len(sel.Fits) > 0 {
				assert.Contains(t, sel.Fits[0].Reason, tt.reason)
			}
		})
	}
}

func TestChooseClosest(t *testing.T) {
	cands := []Candidate{
		{ID: "same-class", Matches: []string{"4.2.2"}},
		{ID: "same-subject", Matches: []string{"5.4.1"}},
		{ID: "same-class-subject", Matches: []string{"4.4.0"}},
		{ID: "same-condition", Matches: []string{"5.4.7"}},
		{ID: "unrelated", Matches: []string{"5.1.1", "mailbox full"}},
	}
	b := report("", Recipient{Address: "a@fabrikam.com", Action: "delayed", Code: Code{"400", "4.4.7"}, Diagnostic: "400 4.4.7 Message delayed"})
	sel := Choose(b, cands)
	assert.Empty(t, sel.Fits)
	assert.Equal(t, []string{"same-condition", "same-class-subject", "same-subject", "same-class"}, ids(sel.Closest))
	assert.Contains(t, sel.Closest[0].Reason, "no playbook lists 400 4.4.7")
	assert.Contains(t, sel.Closest[0].Reason, "the same condition (x.4.7)")
	assert.Equal(t, "5.4.7", sel.Closest[0].Matched)

	// A phrase of the candidate's in the reply brings it closer, and says so.
	b = report("", rcpt("a@fabrikam.com", "550", "5.7.708", "550 5.7.708 Service unavailable. Access denied"))
	sel = Choose(b, []Candidate{
		{ID: "subject", Matches: []string{"4.7.0"}},
		{ID: "class-and-phrase", Matches: []string{"5.5.4", "service unavailable"}},
		{ID: "phrase-only", Matches: []string{"4.3.2", "access denied"}},
	})
	assert.Empty(t, sel.Fits)
	assert.Equal(t, []string{"class-and-phrase", "subject", "phrase-only"}, ids(sel.Closest))
	assert.Contains(t, sel.Closest[0].Reason, `"service unavailable" appears in the reply`)
	assert.Contains(t, sel.Closest[2].Reason, "is not a code it lists")

	// Nothing at all in common: no closest either.
	sel = Choose(report("", rcpt("a@fabrikam.com", "550", "5.1.1", "550 5.1.1 unknown")), []Candidate{{ID: "t", Matches: []string{"4.3.2"}}})
	assert.Empty(t, sel.Fits)
	assert.Empty(t, sel.Closest)
}

func TestChooseParams(t *testing.T) {
	b := report("alice@contoso.com", Recipient{
		Address: "bob@fabrikam.com", Action: "failed", Code: Code{"550", "5.5.4"},
		RemoteMTA: "mx1.fabrikam.com", RemoteIP: "203.0.113.40", Diagnostic: "550 5.5.4",
	})
	b.ReportingMTA = "ex01.contoso.com"
	b.MessageID = "<1@EX02.contoso.com>"
	params := []Param{
		{Name: "sender", Type: "email"},
		{Name: "recipient", Type: "email"},
		{Name: "domain", Type: "domain", Required: true},
		{Name: "sending_domain", Type: "domain"},
		{Name: "remote_host", Type: "hostname"},
		{Name: "remote_ip", Type: "ip"},
		{Name: "generating_server", Type: "hostname"},
		{Name: "message_id", Type: "string"},
		{Name: "code", Type: "string"},
		{Name: "ip", Type: "ip"},               // our own sending IP: never from the bounce
		{Name: "probe_address", Type: "email"}, // not a name the bounce fills
		{Name: "window", Type: "duration"},     // not a name the bounce fills
		{Name: "mailbox", Type: "identity", Required: true},
	}
	sel := Choose(b, []Candidate{{ID: "p", Matches: []string{"5.5.4"}, Params: params}})
	require.Len(t, sel.Fits, 1)
	assert.Equal(t, map[string]string{
		"sender": "alice@contoso.com", "recipient": "bob@fabrikam.com", "domain": "fabrikam.com",
		"sending_domain": "contoso.com", "remote_host": "mx1.fabrikam.com", "remote_ip": "203.0.113.40",
		"generating_server": "ex01.contoso.com", "message_id": "<1@EX02.contoso.com>", "code": "550 5.5.4",
	}, sel.Fits[0].Params)
	assert.Equal(t, []string{"mailbox"}, sel.Fits[0].Missing)

	// A value of the wrong shape is left out: an IP literal is no host name,
	// and a sender that did not parse is no email.
	b.Recipients[0].RemoteMTA = ""
	b.Sender = "postmaster"
	sel = Choose(b, []Candidate{{ID: "p", Matches: []string{"5.5.4"}, Params: []Param{
		{Name: "remote_host", Type: "hostname", Required: true}, {Name: "sender", Type: "email"}, {Name: "domain", Type: "ip"},
	}}})
	require.Len(t, sel.Fits, 1)
	assert.Nil(t, sel.Fits[0].Params)
	assert.Equal(t, []string{"remote_host"}, sel.Fits[0].Missing)
}

func TestChooseEmpty(t *testing.T) {
	assert.Equal(t, Selection{}, Choose(nil, realCandidates()))
	assert.Equal(t, Selection{}, Choose(&Bounce{Picked: -1}, realCandidates()))
	assert.Equal(t, Selection{}, Choose(report("", rcpt("a@fabrikam.com", "550", "5.5.4", "x")), nil))
}

func TestFindCodes(t *testing.T) {
	tests := []struct {
		in   string
		want []Code
	}{
		{"550 5.5.4 Service Unavailable", []Code{{"550", "5.5.4"}}},
		{"550-5.1.1 The email account does not exist", []Code{{"550", "5.1.1"}}},
		{"#550 #5.1.1 x", []Code{{"550", "5.1.1"}}},
		{"smtp;550 5.7.509 Access denied", []Code{{"550", "5.7.509"}}},
		{"4.4.317 Cannot connect", []Code{{"", "4.4.317"}}},
		{"5.07.001 padded", []Code{{"", "5.7.1"}}},
		{"15.20.1771.16 and 4.16.55.1 and 1.2.3", nil},
		{"3.4.5 is not a class", nil},
		{"5.1234.1 too long", nil},
		{"1550 5.1.1 reply with a digit before", []Code{{"", "5.1.1"}}},
		{"451 5.7.1 mismatched", []Code{{"", "5.7.1"}}},
		{"550 4.4.7 QUEUE.Expired", []Code{{"550", "4.4.7"}}},
		{"'421 Too many connections'", []Code{{"421", ""}}},
		{"4210 not a reply", nil},
		{`451 4.4.0 responded with: "421 4.3.2 busy"`, []Code{{"451", "4.4.0"}, {"421", "4.3.2"}}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, findCodes(tt.in), tt.in)
	}
}

func TestCleanHostAndAddress(t *testing.T) {
	hosts := []struct{ in, host, ip string }{
		{"dns; mx1.fabrikam.com.", "mx1.fabrikam.com", ""},
		{"DNS; EX01.Contoso.com", "ex01.contoso.com", ""},
		{"mx1.fabrikam.com (203.0.113.40)", "mx1.fabrikam.com", "203.0.113.40"},
		{"[203.0.113.40]", "", "203.0.113.40"},
		{"dns; [IPv6:2001:db8::1]", "", "2001:db8::1"},
		{"198.51.100.25:25", "", "198.51.100.25"},
		{"EX01", "ex01", ""},
		{"not a host!", "not", ""},
		{"", "", ""},
		{"2026", "", ""},
	}
	for _, h := range hosts {
		host, ip := cleanHost(h.in)
		assert.Equal(t, h.host, host, h.in)
		assert.Equal(t, h.ip, ip, h.in)
	}
	addrs := []struct{ in, want string }{
		{"rfc822; Bob@Fabrikam.COM", "Bob@fabrikam.com"},
		{"<bob@fabrikam.com>", "bob@fabrikam.com"},
		{"bob@fabrikam.com<mailto:bob@fabrikam.com>", "bob@fabrikam.com"},
		{"Bob <bob@fabrikam.com>", "bob@fabrikam.com"},
		{"postmaster", ""},
		{"<>", ""},
	}
	for _, a := range addrs {
		assert.Equal(t, a.want, cleanAddress(a.in), a.in)
	}
}
