package bounce

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return data
}

// sampleWant is what one sample in testdata/ says (see testdata/README.md for
// the source of each shape).
type sampleWant struct {
	file string
	err  error

	status, reply, action string
	nested                []string
	recipient, domain     string
	recipients, picked    int
	remote, remoteIP      string
	reporting             string
	sender, senderFrom    string
	messageID, subject    string
	date                  string // RFC 3339; "" for none
	statusFrom            string

	// With realCandidates: the first fit, its parameters and what it misses;
	// or, when nothing fits, the closest ones in order.
	fit        string
	fitRcpt    string
	fitParams  map[string]string
	fitMissing []string
	closest    []string
	// With plannedCandidates.
	planned       string
	plannedParams map[string]string
}

var samples = []sampleWant{
	{file: "exo-5.7.708.eml",
		status: "5.7.708", reply: "550", action: "failed",
		recipient: "bob@fabrikam.com", domain: "fabrikam.com", recipients: 1,
		reporting: "sa1pr11mb8765.namprd11.prod.outlook.com",
		sender:    "alice@contoso.com", senderFrom: "original From",
		messageID: "<SA1PR11MB4321A1B2C3D4E5F60718293A4B5C6D7E8F90@SA1PR11MB4321.namprd11.prod.outlook.com>",
		subject:   "Q3 forecast", date: "2026-11-23T09:41:02Z", statusFrom: FromDSN,
		// "Service unavailable" is in the reply, but 5.7.708 is not a 5.5.4;
		// ndr-5.7.23's codes share its class and subject (5.7: security or policy).
		// hybrid-tls's 5.7.64 is a 5.7 as well.
		closest: []string{"ndr-5.7.23", "hybrid-tls", "ndr-5.5.4", "smtp-421"},
		planned: "ndr-5.7.708", plannedParams: map[string]string{"sender": "alice@contoso.com", "sending_domain": "contoso.com"}},
	{file: "exchange2019-5.5.4.eml",
		status: "5.5.4", reply: "550", action: "failed",
		recipient: "bob@fabrikam.com", domain: "fabrikam.com", recipients: 1,
		remote: "contoso-com.mail.protection.outlook.com", remoteIP: "198.51.100.25",
		reporting: "ex01.contoso.com",
		sender:    "alice@contoso.com", senderFrom: "original From",
		messageID: "<7d2c1e0a3b5f4e6d8c9a0b1c2d3e4f50@EX02.contoso.com>",
		subject:   "Weekly report", date: "2026-11-23T10:15:07Z", statusFrom: FromDSN,
		fit: "ndr-5.5.4", fitRcpt: "bob@fabrikam.com", fitParams: map[string]string{"sender": "alice@contoso.com"},
		planned: "ndr-5.5.4", plannedParams: map[string]string{"sender": "alice@contoso.com"}},
	{file: "postfix-4.3.2.eml",
		status: "4.3.2", reply: "421", action: "failed",
		recipient: "carol@fabrikam.com", domain: "fabrikam.com", recipients: 1,
		remote: "mx1.fabrikam.com", remoteIP: "203.0.113.40",
		reporting: "relay.contoso.com",
		sender:    "dave@contoso.com", senderFrom: "original From",
		messageID: "<3f2e1d0c9b8a4f7e6d5c4b3a2f1e0d9c@EX01.contoso.com>",
		subject:   "Shipping schedule", date: "2026-11-23T11:02:40Z", statusFrom: FromDSN,
		fit: "smtp-421", fitRcpt: "carol@fabrikam.com", fitParams: map[string]string{"domain": "fabrikam.com", "sending_domain": "contoso.com"},
		planned: "smtp-421", plannedParams: map[string]string{"domain": "fabrikam.com", "sending_domain": "contoso.com"}},
	{file: "rfc3464-multi.eml",
		// failed, delayed, failed: the first permanent failure is picked.
		status: "5.0.0", reply: "550", action: "failed",
		recipient: "ann@fabrikam.com", domain: "fabrikam.com", recipients: 3, picked: 0,
		remote:    "mail.fabrikam.com",
		reporting: "gw.contoso.com",
		sender:    "owner-sales@contoso.com", senderFrom: "original From",
		messageID: "<202611231410.JAA13001@gw.contoso.com>",
		subject:   "Price list, December", date: "2026-11-23T09:21:47-05:00", statusFrom: FromDSN,
		closest: []string{"ndr-5.5.4", "ndr-5.7.23", "hybrid-tls"}},
	{file: "rfc3464-simple.eml",
		status: "4.0.0", reply: "426", action: "failed",
		recipient: "louis@larry.fabrikam.com", domain: "larry.fabrikam.com", recipients: 1,
		reporting: "gw.contoso.com",
		sender:    "owner-ups-mib@contoso.com", senderFrom: "original From",
		messageID: "<202611182110.RAA00001@gw.contoso.com>",
		subject:   "ups-mib", date: "2026-11-23T17:16:05-04:00", statusFrom: FromDSN,
		closest: []string{"ndr-5.5.4", "smtp-421", "smtp-auth-432", "hybrid-tls"}},
	{file: "outlook-paste-multi.txt",
		// frank's 5.1.1 is the first permanent failure; no playbook has it, but
		// grace's 5.5.4 in the same report fits ndr-5.5.4.
		status: "5.1.1", reply: "550", action: "failed",
		recipient: "frank@fabrikam.com", domain: "fabrikam.com", recipients: 2, picked: 0,
		remote:    "mx.fabrikam.com",
		reporting: "ex01.contoso.com",
		sender:    "harriet@contoso.com", senderFrom: "original From",
		messageID: "<c81d2e3f4a5b4c6d7e8f9a0b1c2d3e4f@EX02.contoso.com>",
		subject:   "Board pack", date: "2026-11-23T08:30:11Z", statusFrom: FromText,
		fit: "ndr-5.5.4", fitRcpt: "grace@northwind.example", fitParams: map[string]string{"sender": "harriet@contoso.com"},
		planned: "ndr-5.5.4"},
	{file: "outlook-paste-exo-5.1.8.txt",
		status: "5.1.8", reply: "550", action: "failed",
		recipient: "orders@fabrikam.com", domain: "fabrikam.com", recipients: 1,
		reporting: "bn8pr11mb3456.namprd11.prod.outlook.com",
		sender:    "alice@contoso.com", senderFrom: "original From",
		messageID: "<BN8PR11MB12349F8E7D6C5B4A3F2E1D0C9B8A7F6E5D4@BN8PR11MB1234.namprd11.prod.outlook.com>",
		subject:   "Invoice 2026-1142", date: "2026-11-23T09:12:39Z", statusFrom: FromText,
		closest: []string{"ndr-5.5.4", "ndr-5.7.23", "hybrid-tls"},
		planned: "ndr-5.1.8", plannedParams: map[string]string{"sender": "alice@contoso.com"}},
	{file: "owa-paste-exo-5.7.23.txt",
		status: "5.7.23", reply: "550", action: "failed",
		recipient: "ivan@fabrikam.com", domain: "fabrikam.com", recipients: 1,
		remote:    "bn8nam11ft045.mail.protection.outlook.com",
		reporting: "dm6pr11mb1234.namprd11.prod.outlook.com",
		sender:    "alice@contoso.com", senderFrom: "original From",
		messageID: "<DM6PR11MB5678D1E2F3A4B5C6D7E8F9A0B1C2D3E4F5A6@DM6PR11MB5678.namprd11.prod.outlook.com>",
		subject:   "Lunch on Friday", date: "2026-11-23T10:02:10Z", statusFrom: FromText,
		// ndr-5.7.23 lists the code; our sending domain comes from the sender.
		fit: "ndr-5.7.23", fitRcpt: "ivan@fabrikam.com", fitParams: map[string]string{"sending_domain": "contoso.com"},
		planned: "ndr-5.7.23", plannedParams: map[string]string{"sending_domain": "contoso.com"}},
	{file: "dsn-fields-4.4.7.txt",
		// The expiry's own code is 4.4.7; the last attempt's replies are nested.
		status: "4.4.7", reply: "550", action: "failed", nested: []string{"451 4.4.0", "454 4.7.5"},
		recipient: "heidi@fabrikam.com", domain: "fabrikam.com", recipients: 1,
		remote: "contoso-com.mail.protection.outlook.com", remoteIP: "198.51.100.25",
		reporting: "ex01.contoso.com",
		date:      "2026-11-23T08:02:11Z", statusFrom: FromDSN,
		// The 454 4.7.5 behind the 451 4.4.0 fits hybrid-tls as well (listed
		// second: the two nested replies weigh the same).
		fit: "ndr-5.5.4", fitRcpt: "heidi@fabrikam.com",
		planned: "ndr-5.5.4"},
	{file: "ndr-headers-only.txt", err: ErrNoStatus,
		picked: -1,
		sender: "judy@contoso.com", senderFrom: "To of the report",
		messageID: "<0b1c2d3e4f5a4b6c8d7e9f0a1b2c3d4e@EX02.contoso.com>",
		subject:   "Contract draft v3", date: "2026-11-23T12:40:18Z"},
	{file: "exo-qp-5.2.0.eml",
		// The code is cut by a soft line break ("5.2=\n.0"); there is no
		// delivery-status part. ndr-5.5.4 lists 554 5.2.0: a submission
		// quota is its sender-throttling logic.
		status: "5.2.0", reply: "554", action: "failed",
		recipient: "statements@fabrikam.com", domain: "fabrikam.com", recipients: 1,
		reporting: "ch0pr11mb5678.namprd11.prod.outlook.com",
		sender:    "bulk-notices@contoso.com", senderFrom: "original From",
		messageID: "<CH0PR11MB1111E5D4C3B2A1F0E9D8C7B6A5F4E3D2C1B0@CH0PR11MB1111.namprd11.prod.outlook.com>",
		subject:   "December statements", date: "2026-11-23T13:05:44Z", statusFrom: FromText,
		fit: "ndr-5.5.4", fitRcpt: "statements@fabrikam.com", fitParams: map[string]string{"sender": "bulk-notices@contoso.com"},
		planned: "ndr-5.5.4", plannedParams: map[string]string{"sender": "bulk-notices@contoso.com"}},
	{file: "exchange-delay-4.4.7-421.txt",
		status: "4.4.7", reply: "400", action: "delayed", nested: []string{"421 4.3.2"},
		recipient: "dave@fabrikam.com", domain: "fabrikam.com", recipients: 1,
		remote: "mx1.fabrikam.com", remoteIP: "203.0.113.40",
		reporting: "ex01.contoso.com",
		sender:    "erin@contoso.com", senderFrom: "original From",
		messageID: "<e1f2a3b4c5d64e7f8a9b0c1d2e3f4a5b@EX02.contoso.com>",
		subject:   "Purchase order 7781", date: "2026-11-23T10:11:39Z", statusFrom: FromText,
		fit: "smtp-421", fitRcpt: "dave@fabrikam.com", fitParams: map[string]string{"domain": "fabrikam.com", "sending_domain": "contoso.com"},
		planned: "smtp-421"},
	{file: "smtp-auth-432.txt",
		// smtp-auth-432 lists "432 4.3.2" and outranks smtp-421's bare 4.3.2
		// (which still fits: typed "4.3.2" and the NDR watch's button name
		// smtp-421). The application's log does not say which mailbox signed
		// in, so the required sender cannot be filled.
		status: "4.3.2", reply: "432",
		recipients: 1, remote: "bn8pr04mb6339.namprd04.prod.outlook.com", statusFrom: FromText,
		fit: "smtp-auth-432", fitMissing: []string{"sender"},
		planned: "smtp-auth-432"},
	{file: "postfix-gmail-4.7.0.eml",
		status: "4.7.0", reply: "421", action: "delayed",
		recipient: "erin@fabrikam.com", domain: "fabrikam.com", recipients: 1,
		remote: "gmail-smtp-in.l.google.com", remoteIP: "198.51.100.27",
		reporting: "relay.contoso.com",
		sender:    "news@contoso.com", senderFrom: "original From",
		messageID: "<9a8b7c6d5e4f4a3b2c1d0e9f8a7b6c5d@EX01.contoso.com>",
		subject:   "Contoso news – November", date: "2026-11-23T15:34:45Z", statusFrom: FromDSN,
		// smtp-421 lists 4.7.0 inside "421 4.7.0 too many connections": the
		// very code, other words. ndr-5.7.23's 5.7.x shares its subject (7);
		// smtp-auth-432's 4.3.2 is a temporary failure too.
		closest: []string{"smtp-421", "hybrid-tls", "ndr-5.7.23", "ndr-5.5.4", "smtp-auth-432"}},
	{file: "exchange-fr-paste-5.5.4.txt",
		status: "5.5.4", reply: "550", action: "failed",
		recipient: "bob@fabrikam.com", domain: "fabrikam.com", recipients: 1,
		remote: "contoso-com.mail.protection.outlook.com", remoteIP: "198.51.100.25",
		reporting: "ex01.contoso.com",
		sender:    "lea@contoso.com", senderFrom: "original From",
		messageID: "<a0b1c2d3e4f54a6b7c8d9e0f1a2b3c4d@EX02.contoso.com>",
		subject:   "Planning de décembre", date: "2026-11-23T15:01:57Z", statusFrom: FromText,
		fit: "ndr-5.5.4", fitRcpt: "bob@fabrikam.com", fitParams: map[string]string{"sender": "lea@contoso.com"},
		planned: "ndr-5.5.4"},
	{file: "exchange2019-5.7.64.txt",
		// On-premises relays through Exchange Online, which no longer ties the
		// server's certificate to the tenant.
		status: "5.7.64", reply: "550", action: "failed",
		recipient: "carol@fabrikam.com", domain: "fabrikam.com", recipients: 1,
		remote: "contoso-com.mail.protection.outlook.com", remoteIP: "198.51.100.25",
		reporting: "ex01.contoso.com",
		sender:    "alice@contoso.com", senderFrom: "original From",
		messageID: "<4e1d2c3b5a6f4e7d8c9b0a1f2e3d4c5b@EX01.contoso.com>",
		subject:   "Quote 2231", date: "2026-11-23T09:13:39Z", statusFrom: FromText,
		fit: "hybrid-tls", fitRcpt: "carol@fabrikam.com",
		planned: "hybrid-tls"},
	{file: "queue-paste-454-4.7.5.txt",
		// Get-Queue's LastError pasted with the command: no recipient, no sender.
		status: "4.7.5", reply: "454", recipients: 1, statusFrom: FromText,
		fit:     "hybrid-tls",
		planned: "hybrid-tls"},
	{file: "exo-trace-4.4.317.txt",
		// Exchange Online's message trace detail of a deferral toward
		// on-premises; the STARTTLS refusal is nested.
		status: "4.4.317", reply: "450", nested: []string{"5.7.3"}, recipients: 1,
		remote: "mail.contoso.com", remoteIP: "203.0.113.80", statusFrom: FromText,
		fit:     "hybrid-tls",
		planned: "hybrid-tls"},
	{file: "garbage.txt", err: ErrNoStatus, picked: -1},
	{file: "not-a-bounce.eml", err: ErrNoStatus, picked: -1},
}

func TestParseSamples(t *testing.T) {
	for _, w := range samples {
		t.Run(w.file, func(t *testing.T) {
			b, err := Parse(readSample(t, w.file))
			if w.err != nil {
				require.ErrorIs(t, err, w.err)
			} else {
				require.NoError(t, err)
			}
			require.NotNil(t, b)
			assert.Equal(t, w.status, b.Status, "status")
			assert.Equal(t, w.reply, b.Reply, "reply")
			assert.Equal(t, w.action, b.Action, "action")
			var nested []string
			if b.Picked >= 0 {
				for _, c := range b.Recipients[b.Picked].Nested {
					nested = append(nested, c.String())
				}
			}
			assert.Equal(t, w.nested, nested, "nested")
			assert.Equal(t, w.recipient, b.Recipient, "recipient")
			assert.Equal(t, w.domain, b.RecipientDomain, "recipient domain")
			assert.Len(t, b.Recipients, w.recipients, "recipients")
			assert.Equal(t, w.picked, b.Picked, "picked")
			assert.Equal(t, w.remote, b.RemoteMTA, "remote MTA")
			assert.Equal(t, w.remoteIP, b.RemoteIP, "remote IP")
			assert.Equal(t, w.reporting, b.ReportingMTA, "reporting MTA")
			assert.Equal(t, w.sender, b.Sender, "sender")
			assert.Equal(t, w.senderFrom, b.SenderFrom, "sender from")
			assert.Equal(t, w.messageID, b.MessageID, "message id")
			assert.Equal(t, w.subject, b.Subject, "subject")
			date := ""
			if !b.Date.IsZero() {
				date = b.Date.Format(time.RFC3339)
			}
			assert.Equal(t, w.date, date, "date")
			assert.Equal(t, w.statusFrom, b.StatusFrom, "status from")
			if b.Picked >= 0 {
				assert.NotEmpty(t, b.PickedWhy)
			}

			sel := Choose(b, realCandidates())
			if w.fit == "" {
				assert.Empty(t, sel.Fits, "nothing fits")
				assert.Equal(t, w.closest, ids(sel.Closest), "closest")
			} else if assert.NotEmpty(t, sel.Fits, "fits") {
				got := sel.Fits[0]
				assert.Equal(t, w.fit, got.ID, "fit; all: %v", sel.Fits)
				assert.Equal(t, w.fitRcpt, got.Recipient, "fit recipient")
				assert.Equal(t, w.fitParams, got.Params, "fit params")
				assert.Equal(t, w.fitMissing, got.Missing, "fit missing")
				assert.NotEmpty(t, got.Reason)
				assert.Empty(t, sel.Closest, "closest only when nothing fits")
			}
			planned := Choose(b, plannedCandidates())
			if w.planned == "" {
				assert.Empty(t, planned.Fits, "planned: nothing fits")
			} else if assert.NotEmpty(t, planned.Fits, "planned fits") {
				assert.Equal(t, w.planned, planned.Fits[0].ID, "planned fit; all: %v", planned.Fits)
				if w.plannedParams != nil {
					assert.Equal(t, w.plannedParams, planned.Fits[0].Params, "planned params")
				}
			}
		})
	}
}

func ids(cs []Choice) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

// Every sample reads the same with LF, CRLF or bare CR line endings.
func TestParseLineEndings(t *testing.T) {
	for _, w := range samples {
		t.Run(w.file, func(t *testing.T) {
			data := readSample(t, w.file)
			lf := bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
			want, wantErr := Parse(lf)
			for name, v := range map[string][]byte{
				"crlf": bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n")),
				"cr":   bytes.ReplaceAll(lf, []byte("\n"), []byte("\r")),
				"file": data,
			} {
				got, err := Parse(v)
				assert.Equal(t, wantErr, err, name)
				assert.Equal(t, want, got, name)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	big := bytes.Repeat([]byte("x"), MaxSize+1)
	b, err := Parse(big)
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Nil(t, b)
	assert.Contains(t, err.Error(), "1 MiB")

	b, err = ParseReader(bytes.NewReader(big))
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Nil(t, b)

	// At the limit the input is read, and a report at the end of it is found.
	report := readSample(t, "exchange2019-5.5.4.eml")
	padded := append(bytes.Repeat([]byte("chat noise\n"), (MaxSize-len(report))/11), report...)
	require.LessOrEqual(t, len(padded), MaxSize)
	b, err = ParseReader(bytes.NewReader(padded))
	require.NoError(t, err)
	assert.Equal(t, "5.5.4", b.Status)
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestParseReaderError(t *testing.T) {
	_, err := ParseReader(failingReader{})
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrNoStatus)
	assert.Contains(t, err.Error(), "connection reset")
}

// A report pasted into chat arrives with words before and after it, sometimes
// inside a code fence, sometimes indented as a quote.
func TestParseJunkAround(t *testing.T) {
	eml := string(readSample(t, "exo-5.7.708.eml"))
	indented := "    " + strings.ReplaceAll(strings.ReplaceAll(eml, "\r\n", "\n"), "\n", "\n    ")
	for name, text := range map[string]string{
		"prose and a fence": "Hi, this came back for Alice:\n\n```\n" + eml + "\n```\nAny idea?\n",
		"indented":          "Forwarding what the user sent:\n" + indented,
		"mbox separator":    "From MAILER-DAEMON  Mon Nov 23 09:41:02 2026\n" + eml,
		"byte order mark":   "\xef\xbb\xbf" + eml,
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Parse([]byte(text))
			require.NoError(t, err)
			assert.Equal(t, "5.7.708", b.Status)
			assert.Equal(t, "alice@contoso.com", b.Sender)
			assert.Equal(t, "bob@fabrikam.com", b.Recipient)
			assert.Equal(t, FromDSN, b.StatusFrom)
		})
	}
}

// Outlook's "From: / Sent: / To: / Subject:" block at the very start of a paste
// is read as the report's header: its addressee is the original sender.
func TestParseOutlookHeaderFirst(t *testing.T) {
	text := string(readSample(t, "outlook-paste-exo-5.1.8.txt"))
	_, text, _ = strings.Cut(text, "\n\n") // drop the chat line
	text = strings.Replace(text, "From: Alice Wilson <alice@contoso.com>\n", "", 1)
	b, err := Parse([]byte(text))
	require.NoError(t, err)
	assert.Equal(t, "5.1.8", b.Status)
	assert.Equal(t, "alice@contoso.com", b.Sender)
	assert.Equal(t, "To of the report", b.SenderFrom, "the original header has no From now")
}

// Without From, Sender or Return-Path in the returned header, an Exchange
// organization header naming a sender is used, and says so.
func TestParseExchangeOrganizationSender(t *testing.T) {
	text := `Diagnostic information for administrators:

Generating server: EX01.contoso.com

bob@fabrikam.com
Remote Server returned '550 5.5.4 Service Unavailable'

Original message headers:

X-MS-Exchange-Organization-OriginalSender: printer@contoso.com
To: bob@fabrikam.com
Subject: Scan
`
	b, err := Parse([]byte(text))
	require.NoError(t, err)
	assert.Equal(t, "printer@contoso.com", b.Sender)
	assert.Equal(t, "X-Ms-Exchange-Organization-Originalsender", b.SenderFrom)
}

// A report forwarded as an attachment: the report is the attached message, and
// the original sender is not the admin the forward went to.
func TestParseForwardedAsAttachment(t *testing.T) {
	inner := strings.ReplaceAll(string(readSample(t, "exchange2019-5.5.4.eml")), "\r\n", "\n")
	outer := "From: Alice Wilson <alice@contoso.com>\nTo: Mail Admins <mailadmins@contoso.com>\n" +
		"Subject: FW: Undeliverable: Weekly report\nDate: Mon, 23 Nov 2026 10:30:00 +0000\nMIME-Version: 1.0\n" +
		"Content-Type: multipart/mixed; boundary=\"fwd\"\n\n--fwd\nContent-Type: text/plain\n\nThis keeps happening.\n\n" +
		"--fwd\nContent-Type: message/rfc822\n\n" + inner + "\n--fwd--\n"
	b, err := Parse([]byte(outer))
	require.NoError(t, err)
	assert.Equal(t, "5.5.4", b.Status)
	assert.Equal(t, "alice@contoso.com", b.Sender)
	assert.Equal(t, "<7d2c1e0a3b5f4e6d8c9a0b1c2d3e4f50@EX02.contoso.com>", b.MessageID)
	assert.Equal(t, "2026-11-23T10:15:07Z", b.Date.Format(time.RFC3339), "the report's date, not the forward's")
}

// Fragments an admin pastes instead of a whole report.
func TestParseFragments(t *testing.T) {
	tests := []struct {
		name, text   string
		status, rply string
		nested       []string
		err          error
	}{
		{"reply line", "550 5.7.708 Access denied, traffic not accepted from this IP.", "5.7.708", "550", nil, nil},
		{"remote server returned", "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'", "5.1.10", "550", nil, nil},
		{"exchange 2010", "#< #5.5.4 smtp;550 5.5.4 Service Unavailable> #SMTP#", "5.5.4", "550", nil, nil},
		{"hyphenated reply", "421-4.7.0 [203.0.113.25 15] Our system has detected an unusual rate", "4.7.0", "421", nil, nil},
		{"expired with a 4.x.x in a 5xx", "550 4.4.7 QUEUE.Expired; message expired", "4.4.7", "550", nil, nil},
		{"nested primary target", `451 4.4.0 Primary target IP address responded with: "421 4.2.1 Unable to connect." Attempted failover to alternate host`, "4.4.0", "451", []string{"421 4.2.1"}, nil},
		{"class mismatch drops the reply", "451 5.7.1 relay denied", "5.7.1", "", nil, nil},
		{"code at a sentence's end", "The server said 5.7.1.", "5.7.1", "", nil, nil},
		{"reply code alone", "421 Too many connections from your host", "", "421", nil, nil},
		{"status code label on its own line", "Status code:\n550 5.5.4", "5.5.4", "550", nil, nil},
		{"version number", "upgraded to 15.20.8158.17 last night", "", "", nil, ErrNoStatus},
		{"isp code", "deferred - 4.16.55.1; see the error codes page", "", "", nil, ErrNoStatus},
		{"success only", "250 2.0.0 OK queued as 7A1B2C3D4E", "", "", nil, ErrNoStatus},
		{"empty", "", "", "", nil, ErrNoStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Parse([]byte(tt.text))
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.status, b.Status)
			assert.Equal(t, tt.rply, b.Reply)
			var nested []string
			for _, c := range b.Recipients[b.Picked].Nested {
				nested = append(nested, c.String())
			}
			assert.Equal(t, tt.nested, nested)
		})
	}
}

// A text listing several recipients with statuses picks the first permanent
// failure even when a delayed one comes first, and says why.
func TestPickPermanentOverDelayed(t *testing.T) {
	text := `Reporting-MTA: dns; relay.contoso.com

Final-Recipient: rfc822; a@fabrikam.com
Action: delayed
Status: 4.4.1
Diagnostic-Code: smtp; 421 4.4.1 connection timed out

Final-Recipient: rfc822; b@northwind.example
Action: failed
Status: 5.5.4
Diagnostic-Code: smtp; 550 5.5.4 Service Unavailable

Final-Recipient: rfc822; c@tailspin.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown
`
	b, err := Parse([]byte(text))
	require.NoError(t, err)
	assert.Equal(t, 1, b.Picked)
	assert.Equal(t, "b@northwind.example", b.Recipient)
	assert.Equal(t, "5.5.4", b.Status)
	assert.Equal(t, "the first permanent failure of 3 recipients with a status", b.PickedWhy)

	delayedOnly := strings.ReplaceAll(strings.ReplaceAll(text, "Action: failed", "Action: delayed"), "Status: 5.", "Status: 4.")
	b, err = Parse([]byte(delayedOnly))
	require.NoError(t, err)
	assert.Equal(t, 0, b.Picked)
	assert.Contains(t, b.PickedWhy, "no permanent failure")
}
